//! GPU against the CPU reference on random scenes. The GPU tests are `#[ignore]`d: a plain
//! `cargo test` lists them as ignored, and `cargo test -p splat-cuda -- --ignored` on a GPU
//! machine runs them (and fails them where there is no GPU).

mod common;

use glam::DVec3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splat_core::camera::Camera;
use splat_core::gaussians::{sh_coeffs_for_degree, Gaussians};
use splat_core::render::RenderOptions;
use splat_core::{Backend, BackendError, CpuBackend};
use splat_cuda::CudaBackend;

use common::{backend, notice};

#[test]
fn new_reports_unavailable_instead_of_panicking() {
    match CudaBackend::new() {
        Ok(b) => eprintln!("CUDA present: {}", b.name()),
        Err(BackendError::Unavailable(why)) => {
            assert!(!why.is_empty());
            notice(&format!("no CUDA here ({why}); checked that new() says so"));
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; enough for test data.
    let u: f32 = rng.random_range(1e-6..1.0);
    let v: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

/// A random scene: Gaussians straddling tiles, some behind the camera or near it, tiny and
/// huge ones, opacities that reach the 0.99 clamp, colours that clamp at zero.
fn scene(seed: u64) -> (Gaussians, Camera, RenderOptions) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sh_degree = (seed % 4) as usize;
    let sizes = [
        (97, 61),
        (128, 128),
        (33, 250),
        (200, 150),
        (1, 1),
        (17, 16),
        (255, 129),
    ];
    let (w, h) = sizes[(seed as usize / 4) % sizes.len()];
    let eye = DVec3::new(
        rng.random_range(-1.0..1.0),
        rng.random_range(-1.0..1.0),
        rng.random_range(-1.0..1.0),
    )
    .normalize()
        * rng.random_range(2.5..5.0);
    let fov = rng.random_range(0.6..1.5);
    let mut cam = Camera::look_at(w, h, fov, eye, DVec3::ZERO, DVec3::new(0.0, 0.0, 1.0));
    // Off-centre principal point and unequal focal lengths for some views.
    if seed % 3 == 1 {
        cam.cx += 0.13 * w as f64;
        cam.fy *= 1.1;
    }
    let n = rng.random_range(500..3000);
    let mut g = Gaussians::empty(sh_degree);
    let k = sh_coeffs_for_degree(sh_degree) * 3;
    for i in 0..n {
        let mean = if i % 50 == 0 {
            // Behind or just in front of the camera.
            let t = rng.random_range(-0.5f64..0.3);
            let p = eye * (1.0 - t / eye.length()) * 1.0 + eye.normalize() * t;
            [p.x as f32, p.y as f32, p.z as f32]
        } else {
            [0, 1, 2].map(|_| rng.random_range(-1.5f32..1.5))
        };
        let base: f32 = match i % 20 {
            0 => rng.random_range(-9.0..-6.0), // tiny
            1 => rng.random_range(0.0..1.0),   // huge
            _ => rng.random_range(-5.0..-1.5),
        };
        let ls = [0, 1, 2].map(|_| base + rng.random_range(-1.0f32..1.0));
        let q = [0, 1, 2, 3].map(|_| normal(&mut rng));
        let op = rng.random_range(-4.0f32..6.0);
        let sh: Vec<f32> = (0..k)
            .map(|j| {
                let s = if j < 3 { 1.2 } else { 0.3 };
                s * normal(&mut rng)
            })
            .collect();
        g.push(mean, ls, q, op, &sh);
    }
    let opts = RenderOptions {
        background: [0, 1, 2].map(|_| rng.random_range(0.0f32..1.0)),
        sh_degree: if seed % 5 == 4 && sh_degree > 0 {
            Some(sh_degree - 1)
        } else {
            None
        },
        ..RenderOptions::default()
    };
    (g, cam, opts)
}

/// Largest |a - b| and largest relative error where |b| exceeds `floor`.
fn compare(name: &str, gpu: &[f32], cpu: &[f32], rel_tol: f32, floor: f32) -> usize {
    assert_eq!(gpu.len(), cpu.len(), "{name}: lengths");
    let mut bad = 0;
    let mut worst = (0f32, 0usize);
    for (i, (&a, &b)) in gpu.iter().zip(cpu).enumerate() {
        let err = (a - b).abs();
        let ok = a.is_finite() && err <= rel_tol * b.abs().max(floor);
        if !ok {
            bad += 1;
        }
        let r = err / b.abs().max(floor);
        if !(r <= worst.0) {
            worst = (r, i);
        }
    }
    if bad > 0 {
        let i = worst.1;
        eprintln!(
            "{name}: {bad}/{} outside tolerance; worst at {i}: gpu {} cpu {} (floor {floor})",
            gpu.len(),
            gpu[i],
            cpu[i]
        );
    }
    bad
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn forward_and_backward_match_the_cpu_reference_on_random_scenes() {
    let mut gpu = backend();
    let mut cpu = CpuBackend;
    let mut failures = Vec::new();
    for seed in 0..40u64 {
        let (g, cam, opts) = scene(seed);
        let a = gpu.render(&g, &cam, &opts).expect("gpu render");
        let b = cpu.render(&g, &cam, &opts).expect("cpu render");
        let mut bad = 0;
        // Forward: images within 1e-4 absolute (rel_tol 1 with floor 1e-4 is |d| <= 1e-4).
        bad += compare("image", &a.image, &b.image, 1.0, 1e-4);
        bad += compare("alpha", &a.alpha, &b.alpha, 1.0, 1e-4);
        if a.radii != b.radii {
            eprintln!("radii differ");
            bad += 1;
        }
        if a.n_intersections != b.n_intersections {
            eprintln!(
                "intersections: gpu {} cpu {}",
                a.n_intersections, b.n_intersections
            );
            bad += 1;
        }
        let m2a: Vec<f32> = a.means2d.iter().flatten().copied().collect();
        let m2b: Vec<f32> = b.means2d.iter().flatten().copied().collect();
        bad += compare("means2d", &m2a, &m2b, 1e-5, 1.0);
        bad += compare("depths", &a.depths, &b.depths, 1e-6, 1e-3);

        // Backward of a random linear loss.
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 1000);
        let d_img: Vec<f32> = (0..a.image.len())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let ga = gpu.render_backward(&g, &a, &d_img).expect("gpu backward");
        let gb = cpu.render_backward(&g, &b, &d_img).expect("cpu backward");
        let flat3 = |v: &[[f32; 3]]| v.iter().flatten().copied().collect::<Vec<f32>>();
        let flat4 = |v: &[[f32; 4]]| v.iter().flatten().copied().collect::<Vec<f32>>();
        let flat2 = |v: &[[f32; 2]]| v.iter().flatten().copied().collect::<Vec<f32>>();
        let pairs: Vec<(&str, Vec<f32>, Vec<f32>)> = vec![
            ("d_means", flat3(&ga.params.means), flat3(&gb.params.means)),
            (
                "d_log_scales",
                flat3(&ga.params.log_scales),
                flat3(&gb.params.log_scales),
            ),
            ("d_quats", flat4(&ga.params.quats), flat4(&gb.params.quats)),
            (
                "d_opacity",
                ga.params.opacity_logits.clone(),
                gb.params.opacity_logits.clone(),
            ),
            ("d_sh", ga.params.sh.clone(), gb.params.sh.clone()),
            ("d_means2d", flat2(&ga.means2d), flat2(&gb.means2d)),
        ];
        for (name, x, y) in &pairs {
            // Sums of many terms in another order differ by rounding relative to the terms'
            // size, not the sum's; the floor is a small fraction of the largest gradient.
            let floor = 1e-3 * max_abs(y) + 1e-8;
            bad += compare(name, x, y, 1e-3, floor);
        }
        eprintln!(
            "seed {seed}: {} Gaussians, SH {}, {}x{}, {} intersections: {}",
            g.len(),
            g.sh_degree,
            cam.width,
            cam.height,
            b.n_intersections,
            if bad == 0 { "ok" } else { "MISMATCH" }
        );
        if bad > 0 {
            failures.push(seed);
        }
    }
    assert!(failures.is_empty(), "mismatching scenes: {failures:?}");
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn backward_refuses_another_backends_render() {
    // A CPU render cannot be passed at all (its frame type differs: see the compile_fail
    // example on `CudaFrame`); another CUDA backend's render is refused at run time.
    let mut gpu = backend();
    let mut other = backend();
    let (g, cam, opts) = scene(3);
    let out = other.render(&g, &cam, &opts).expect("render");
    let d = vec![0.0f32; out.image.len()];
    assert!(matches!(
        gpu.render_backward(&g, &out, &d),
        Err(BackendError::InvalidInput(_))
    ));
    assert!(other.render_backward(&g, &out, &d).is_ok());
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn gpu_radix_sort_matches_a_stable_cpu_sort() {
    let mut gpu = backend();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for &(m, bits) in &[
        (1usize, 40u32),
        (1000, 36),
        (4096, 44),
        (4097, 44),
        (100_000, 44),
        (1_234_567, 48),
        (300_000, 64),
    ] {
        // Few distinct high parts and many repeated low parts, so equal keys are common and
        // stability is visible; keys never exceed `bits`.
        let keys: Vec<u64> = (0..m)
            .map(|_| {
                let hi = rng.random_range(0..(1u64 << (bits - 32).min(20)));
                let lo = rng.random_range(0..1000u64) * 4_000_037;
                let k = (hi << 32) | (lo & 0xffff_ffff);
                if bits == 64 {
                    k | (rng.random_range(0..4u64) << 62)
                } else {
                    k
                }
            })
            .collect();
        let vals: Vec<u32> = (0..m as u32).collect();
        let (ks, vs) = gpu.sort_pairs_host(&keys, &vals, bits).expect("sort");
        let mut want: Vec<(u64, u32)> = keys.iter().copied().zip(vals.iter().copied()).collect();
        want.sort_by_key(|p| p.0); // stable
        let wk: Vec<u64> = want.iter().map(|p| p.0).collect();
        let wv: Vec<u32> = want.iter().map(|p| p.1).collect();
        assert!(ks == wk, "keys differ for m={m}, bits={bits}");
        assert!(vs == wv, "values (stability) differ for m={m}, bits={bits}");
        eprintln!("sort m={m} bits={bits}: ok");
    }
}
