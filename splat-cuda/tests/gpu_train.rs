//! The device training session against the CPU reference: loss and gradient, Adam,
//! densification, and a short training run. The GPU tests are `#[ignore]`d: a plain `cargo
//! test` lists them as ignored, and `cargo test -p splat-cuda -- --ignored` on a GPU machine
//! runs them (and fails them where there is no GPU).

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splat_core::backend::{SessionState, SourceImage, TrainSession};
use splat_core::gaussians::{logit, Gaussians};
use splat_core::loss;
use splat_core::optim::Adam;
use splat_core::render::RenderOptions;
use splat_core::scene::Scene;
use splat_core::train::config::{DensifyConfig, LrConfig};
use splat_core::train::densify::{self, DensifyParams, DensifyStats};
use splat_core::train::Trainer;
use splat_core::CpuBackend;

use common::{backend, notice};

fn random_image(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-0.1..1.1)).collect()
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn loss_and_gradient_match_the_cpu() {
    let be = backend();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for &(w, h) in &[(19usize, 14usize), (64, 48), (200, 200), (3, 1)] {
        let x = random_image(w * h * 3, &mut rng);
        // A target near the render, as in training, plus an exact tie for the L1 kink.
        let mut y: Vec<f32> = x
            .iter()
            .map(|v| (v + rng.random_range(-0.2..0.2f32)).clamp(0.0, 1.0))
            .collect();
        y[0] = x[0];
        let cpu = loss::l1_ssim_loss(&x, &y, w, h, 0.2);
        let gpu = be
            .loss_host(&x, &y, w as u32, h as u32, 0.2)
            .expect("device loss");
        assert!(
            (cpu.loss - gpu.loss).abs() < 1e-5 * cpu.loss.abs().max(1e-3),
            "{w}x{h}: loss cpu {} gpu {}",
            cpu.loss,
            gpu.loss
        );
        assert!((cpu.ssim - gpu.ssim).abs() < 1e-5, "{w}x{h}: ssim");
        assert!((cpu.l1 - gpu.l1).abs() < 1e-6, "{w}x{h}: l1");
        let psnr = loss::psnr(&x, &y);
        assert!(
            (psnr - gpu.psnr).abs() < 1e-3,
            "psnr {psnr} vs {}",
            gpu.psnr
        );
        let gmax = cpu.grad.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in cpu.grad.iter().zip(&gpu.grad).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * gmax,
                "{w}x{h}: grad[{i}] cpu {a:e} gpu {b:e} (max {gmax:e})"
            );
        }
    }
    // Wrong sizes are refused, not read out of bounds.
    assert!(be.loss_host(&[0.0; 6], &[0.0; 3], 2, 1, 0.2).is_err());
}

fn random_gaussians(n: usize, sh_degree: usize, rng: &mut ChaCha8Rng) -> Gaussians {
    let mut g = Gaussians::empty(sh_degree);
    let nsh = (sh_degree + 1) * (sh_degree + 1) * 3;
    for _ in 0..n {
        let sh: Vec<f32> = (0..nsh).map(|_| rng.random_range(-1.0..1.0)).collect();
        g.push(
            [0, 1, 2].map(|_| rng.random_range(-2.0..2.0)),
            [0, 1, 2].map(|_| rng.random_range(-6.0..0.5f32)),
            [0, 1, 2, 3].map(|_| rng.random_range(-1.0..1.0)),
            rng.random_range(-7.0..4.0),
            &sh,
        );
    }
    g
}

fn state(params: Gaussians) -> SessionState {
    let adam = Adam::new(&params);
    let stats = DensifyStats::new(params.len());
    SessionState {
        params,
        adam,
        stats,
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn adam_matches_optim_rs() {
    let be = backend();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let params = random_gaussians(1000, 3, &mut rng);
    // The default (3DGS) rates at unit scene extent.
    let rates = LrConfig::default().initial_rates(1.0);
    let mut cpu = state(params.clone());
    let mut gpu = be.start_cuda_session(state(params)).expect("session");
    for _ in 0..5 {
        let mut g = random_gaussians(1000, 3, &mut rng);
        g.opacity_logits[0] = 0.0;
        cpu.adam.step(&mut cpu.params, &g, &rates);
        gpu.apply_gradients(&g, &rates).expect("adam");
    }
    let snap = gpu.snapshot().expect("snapshot");
    assert_eq!(snap.adam.step, 5);
    // --fmad=false and the same operation order: the update is bit-equal, tolerance is only
    // for a differently rounded sqrt or division somewhere.
    let close = |a: &[f32], b: &[f32], what: &str| {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6 * x.abs().max(1e-3),
                "{what}[{i}]: cpu {x} gpu {y}"
            );
        }
    };
    for (c, d, what) in [
        (&cpu.params, &snap.params, "params"),
        (&cpu.adam.m, &snap.adam.m, "m"),
        (&cpu.adam.v, &snap.adam.v, "v"),
    ] {
        close(c.means.as_flattened(), d.means.as_flattened(), what);
        close(
            c.log_scales.as_flattened(),
            d.log_scales.as_flattened(),
            what,
        );
        close(c.quats.as_flattened(), d.quats.as_flattened(), what);
        close(&c.opacity_logits, &d.opacity_logits, what);
        close(&c.sh, &d.sh, what);
    }
}

/// Densification on the device against densify.rs: counts, every array in step, survivors
/// identical, children at the right place and scale.
#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn densify_matches_cpu_counts_and_keeps_arrays_in_step() {
    let be = backend();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (case, &(n, cap, prune_large)) in [
        (4000usize, 0usize, true),
        (4000, 4300, false),
        (3000, 0, false),
    ]
    .iter()
    .enumerate()
    {
        let params = random_gaussians(n, 1, &mut rng);
        let mut st = state(params);
        // Moments to tell survivors apart after compaction.
        for i in 0..n {
            st.adam.m.opacity_logits[i] = i as f32;
            st.adam.v.means[i] = [i as f32; 3];
        }
        let mut gpu = be.start_cuda_session(st.clone()).expect("session");
        let (w, h) = (200u32, 150u32);
        for _ in 0..3 {
            let g: Vec<[f32; 2]> = (0..n)
                .map(|_| [rng.random_range(-4e-4..4e-4), rng.random_range(-4e-4..4e-4)])
                .collect();
            let r: Vec<u32> = (0..n)
                .map(|_| {
                    if rng.random_bool(0.2) {
                        0
                    } else {
                        rng.random_range(1..60)
                    }
                })
                .collect();
            st.stats.accumulate(&g, &r, w, h);
            gpu.accumulate_stats_host(&g, &r, w, h).expect("stats");
        }
        let snap = gpu.snapshot().expect("snapshot");
        assert_eq!(snap.stats.count, st.stats.count, "case {case}: counts");
        assert_eq!(snap.stats.max_radius, st.stats.max_radius);
        for (a, b) in st.stats.grad_accum.iter().zip(&snap.stats.grad_accum) {
            assert!((a - b).abs() <= 1e-6 * a.abs().max(1e-6));
        }
        let cfg = DensifyParams::from(&DensifyConfig {
            max_gaussians: cap,
            prune_screen_size: 40,
            ..Default::default()
        });
        let extent = 3.0;
        let mut cpu = st.clone();
        let report = densify::densify(
            &mut cpu.params,
            &mut cpu.adam,
            &mut cpu.stats,
            &cfg,
            extent,
            prune_large,
            5,
        );
        let gr = gpu.densify(&cfg, extent, prune_large, 5).expect("densify");
        assert_eq!(gr, report, "case {case}");
        assert!(
            report.cloned > 0 && report.split > 0 && report.pruned > 0,
            "{report:?}"
        );
        let snap = gpu.snapshot().expect("snapshot");
        let m = snap
            .check()
            .expect("one length for every per-Gaussian array");
        assert_eq!(m, cpu.params.len());
        assert_eq!(m, gpu.len());
        assert!(snap.stats.count.iter().all(|&c| c == 0));
        // Same order: originals, clones, children. Everything but the children's positions
        // is identical; the children sit within a few parent scales of the CPU's.
        let children = 2 * report.split;
        let children = children.min(m);
        assert_eq!(snap.params.sh, cpu.params.sh);
        assert_eq!(snap.params.quats, cpu.params.quats);
        assert_eq!(snap.params.opacity_logits, cpu.params.opacity_logits);
        assert_eq!(snap.params.log_scales, cpu.params.log_scales);
        assert_eq!(
            snap.params.means[..m - children],
            cpu.params.means[..m - children]
        );
        assert_eq!(snap.adam.m.opacity_logits, cpu.adam.m.opacity_logits);
        assert_eq!(snap.adam.v.means, cpu.adam.v.means);
        for i in m - children..m {
            let s = snap.params.log_scales[i]
                .iter()
                .fold(f32::MIN, |a, &b| a.max(b))
                .exp()
                * 1.6;
            let d: f32 = (0..3)
                .map(|k| (snap.params.means[i][k] - cpu.params.means[i][k]).powi(2))
                .sum::<f32>()
                .sqrt();
            assert!(
                d < 12.0 * s,
                "child {i}: {d} from the CPU's sample, parent scale {s}"
            );
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn opacity_reset_caps_and_clears_moments() {
    let be = backend();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut st = state(random_gaussians(500, 0, &mut rng));
    st.adam.v.opacity_logits.iter_mut().for_each(|v| *v = 1.0);
    st.adam.m.means.iter_mut().for_each(|v| *v = [2.0; 3]);
    let mut gpu = be.start_cuda_session(st.clone()).expect("session");
    gpu.reset_opacity(0.005).expect("reset");
    densify::reset_opacity(&mut st.params, &mut st.adam, 0.005);
    let snap = gpu.snapshot().expect("snapshot");
    assert_eq!(snap.params.opacity_logits, st.params.opacity_logits);
    assert!(snap
        .params
        .opacity_logits
        .iter()
        .all(|&v| v <= logit(0.01f32)));
    assert_eq!(snap.adam, st.adam);
}

/// A small object seen from a ring of cameras (the ground truth to fit).
fn tiny_scene() -> Scene {
    splat_core::demo::synthetic_ring_scene(64, 48)
}

/// Anti-aliased training is refused on the device with the typed error, at the first step and
/// in evaluation renders, never run without the filters.
#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn antialiasing_is_refused_not_ignored() {
    let mut be = backend();
    let scene = tiny_scene();
    for (mip2d, filter3d) in [(true, false), (false, true)] {
        let mut cfg = splat_core::demo::synthetic_ring_config(10);
        cfg.antialias.mip2d = mip2d;
        cfg.antialias.filter3d = filter3d;
        let mut t = Trainer::new(&scene, cfg, &mut be).expect("trainer");
        let err = t.step().err().expect("refused");
        assert!(
            err.to_string()
                .contains("not yet implemented on the CUDA backend"),
            "{err}"
        );
        let eval = t.evaluate(&scene.test, &mut |_, _, _| Ok(()));
        assert!(eval.is_err(), "evaluation renders are refused too");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn short_training_reaches_the_cpu_psnr() {
    let mut be = backend();
    let scene = tiny_scene();
    let cfg = splat_core::demo::synthetic_ring_config(400);
    let run = |b: &mut dyn splat_core::backend::TrainBackend| {
        let mut t = Trainer::new(&scene, cfg.clone(), b).expect("trainer");
        let before = t
            .evaluate(&scene.test, &mut |_, _, _| Ok(()))
            .expect("eval")
            .psnr;
        while !t.finished() {
            t.step().expect("step");
        }
        let after = t
            .evaluate(&scene.test, &mut |_, _, _| Ok(()))
            .expect("eval")
            .psnr;
        (before, after, t.gaussians_len())
    };
    let (b_cpu, a_cpu, n_cpu) = run(&mut CpuBackend);
    let (b_gpu, a_gpu, n_gpu) = run(&mut be);
    eprintln!(
        "cpu {b_cpu:.2} -> {a_cpu:.2} dB ({n_cpu} G); gpu {b_gpu:.2} -> {a_gpu:.2} dB ({n_gpu} G)"
    );
    assert!(
        (b_cpu - b_gpu).abs() < 0.01,
        "same start: {b_cpu} vs {b_gpu}"
    );
    assert!(
        a_gpu > b_gpu + 5.0,
        "GPU training did not learn: {b_gpu} -> {a_gpu}"
    );
    assert!(
        (a_cpu - a_gpu).abs() < 1.0,
        "cpu {a_cpu} dB vs gpu {a_gpu} dB"
    );
}

/// The lego scene for the full-protocol test: `SPLAT_LEGO_DIR`, else the shared copy beside
/// the workspace.
fn lego_dir() -> std::path::PathBuf {
    match std::env::var_os("SPLAT_LEGO_DIR") {
        Some(d) => d.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/nerf_synthetic_lego"),
    }
}

/// The lego protocol at 200x200 (800 px views downscaled 4x on load, white background, random
/// init, default recipe), 3000 iterations on each backend: the GPU's test PSNR must come
/// within 0.2 dB of the CPU's (or above it). Slow on the CPU (minutes on 16 cores), so it runs
/// only where a GPU is; without the lego data it reports itself SKIPPED on stderr.
#[test]
#[ignore = "needs an NVIDIA GPU and the lego scene: run with --ignored on a GPU machine"]
fn lego_200px_3000_iterations_reach_the_cpu_psnr() {
    use splat_core::scene::{load_scene, Downscale, LoadOptions};
    use splat_core::train::TrainConfig;
    let mut be = backend();
    let dir = lego_dir();
    if !dir.join("transforms_train.json").is_file() {
        notice(&format!(
            "SKIPPED the lego test, nothing checked: no scene at {} (set SPLAT_LEGO_DIR)",
            dir.display()
        ));
        return;
    }
    let cfg = TrainConfig {
        iterations: 3000,
        background: Some([1.0; 3]),
        ..TrainConfig::default()
    };
    let load = LoadOptions {
        downscale: Downscale::Factor(4.0),
        background: [1.0; 3],
        ..Default::default()
    };
    let scene = load_scene(&dir, &load).expect("lego scene");
    let run = |b: &mut dyn splat_core::backend::TrainBackend| {
        let t0 = std::time::Instant::now();
        let mut t = Trainer::new(&scene, cfg.clone(), b).expect("trainer");
        while !t.finished() {
            t.step().expect("step");
        }
        let secs = t0.elapsed().as_secs_f64();
        let e = t
            .evaluate(&scene.test, &mut |_, _, _| Ok(()))
            .expect("eval");
        (e.psnr, e.ssim, t.gaussians_len(), secs)
    };
    let (p_gpu, s_gpu, n_gpu, t_gpu) = run(&mut be);
    eprintln!("lego 200 px 3000 it, gpu: {p_gpu:.2} dB, SSIM {s_gpu:.4}, {n_gpu} G, {t_gpu:.1} s");
    let (p_cpu, s_cpu, n_cpu, t_cpu) = run(&mut CpuBackend);
    eprintln!("lego 200 px 3000 it, cpu: {p_cpu:.2} dB, SSIM {s_cpu:.4}, {n_cpu} G, {t_cpu:.1} s");
    assert!(p_gpu > 25.0, "the GPU run did not train: {p_gpu} dB");
    assert!(
        p_gpu >= p_cpu - 0.2,
        "GPU {p_gpu:.2} dB is more than 0.2 dB below the CPU's {p_cpu:.2} dB"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn device_resize_equals_image_resize_area() {
    let be = backend();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for &((sw, sh), (ow, oh)) in &[
        ((800u32, 800u32), (245u32, 245u32)),
        ((800, 533), (641, 427)),
        ((37, 23), (11, 7)),
        ((100, 60), (99, 59)),
        ((13, 9), (1, 1)),
        ((64, 48), (64, 17)),
    ] {
        let img = splat_core::scene::Image {
            width: sw,
            height: sh,
            data: random_image(sw as usize * sh as usize * 3, &mut rng),
        };
        let cpu = img.resize_area(ow, oh);
        let gpu = be
            .resize_area_host(&img.data, (sw, sh), (ow, oh))
            .expect("device resize");
        assert_eq!(cpu.data.len(), gpu.len());
        for (i, (a, b)) in cpu.data.iter().zip(&gpu).enumerate() {
            assert!(
                a.to_bits() == b.to_bits(),
                "{sw}x{sh} -> {ow}x{oh}: value {i} cpu {a} gpu {b}"
            );
        }
    }
    assert!(be.resize_area_host(&[0.0; 5], (2, 1), (1, 1)).is_err());
}

/// The monitor's PSNR computed on the device equals the host's loss::psnr of the read-back
/// render, on a view of the tiny scene and a size mismatch is refused.
#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn view_psnr_on_the_device_equals_the_host_psnr() {
    let be = backend();
    let scene = tiny_scene();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut gpu = be
        .start_cuda_session(state(random_gaussians(800, 1, &mut rng)))
        .expect("session");
    let opts = RenderOptions::default();
    for (i, v) in scene.train.iter().enumerate().take(3) {
        let dev = gpu
            .view_psnr(&v.camera, &opts, SourceImage::of(i, &v.image))
            .expect("device psnr");
        let host = loss::psnr(
            &gpu.render(&v.camera, &opts).expect("render"),
            &v.image.data,
        );
        assert!(
            (dev - host).abs() < 1e-4,
            "view {i}: device {dev} dB, host {host} dB"
        );
    }
    let v = &scene.train[0];
    let short = SourceImage {
        view: 0,
        width: v.image.width - 1,
        height: v.image.height,
        data: &v.image.data,
    };
    assert!(gpu.view_psnr(&v.camera, &opts, short).is_err());
}

/// MCMC's opacity and scale regularisers on the device against densify.rs: with the camera
/// looking away from every Gaussian the step's parameter gradient is theirs alone, so the first
/// Adam moments and the loss they add compare directly.
#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn mcmc_regularisers_match_the_cpu() {
    use glam::DVec3;
    use splat_core::backend::{StepParams, Target, TrainBackend};
    let be = backend();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let params = random_gaussians(777, 1, &mut rng);
    let (w, h) = (32u32, 24u32);
    let cam = splat_core::Camera::look_at(
        w,
        h,
        1.0,
        DVec3::new(0.0, 0.0, 10.0),
        DVec3::new(0.0, 0.0, 20.0),
        DVec3::Y,
    );
    let target = random_image((w * h * 3) as usize, &mut rng);
    let t = Target {
        view: 0,
        key: 0,
        data: &target,
    };
    let mut p = StepParams {
        render: RenderOptions::default(),
        ssim_weight: 0.2,
        rates: LrConfig::default().initial_rates(1.0),
        accumulate_stats: false,
        opacity_reg: 0.4,
        scale_reg: 0.3,
        exposure: None,
    };
    let mut cpu = CpuBackend
        .start_session(state(params.clone()))
        .expect("cpu");
    let mut gpu = be
        .start_cuda_session(state(params.clone()))
        .expect("session");
    let a = cpu.step(&cam, t, &p).expect("cpu step");
    let b = gpu.step(&cam, t, &p).expect("gpu step");
    p.opacity_reg = 0.0;
    p.scale_reg = 0.0;
    let plain = be
        .start_cuda_session(state(params))
        .expect("session")
        .step(&cam, t, &p)
        .expect("gpu step");
    let reg = a.loss - plain.loss;
    assert!(reg > 1e-4, "the regularisers add to the loss: {reg}");
    assert!(
        (a.loss - b.loss).abs() < 1e-5 * a.loss.abs(),
        "loss cpu {} gpu {}",
        a.loss,
        b.loss
    );
    let (c, d) = (cpu.snapshot().expect("cpu"), gpu.snapshot().expect("gpu"));
    let close = |x: &[f32], y: &[f32], what: &str| {
        let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max > 0.0, "{what}: no gradient reached the moments");
        for (i, (u, v)) in x.iter().zip(y).enumerate() {
            assert!(
                (u - v).abs() <= 1e-5 * max,
                "{what}[{i}]: cpu {u:e} gpu {v:e}"
            );
        }
    };
    close(
        &c.adam.m.opacity_logits,
        &d.adam.m.opacity_logits,
        "opacity moments",
    );
    close(
        c.adam.m.log_scales.as_flattened(),
        d.adam.m.log_scales.as_flattened(),
        "scale moments",
    );
    // Nothing else moves: the means see no gradient from an empty render.
    assert!(d.adam.m.means.as_flattened().iter().all(|&v| v == 0.0));
}

/// MCMC's position noise on the device draws from its own counter hash, so it is checked in
/// distribution: opaque Gaussians stay, and in each Gaussian's own frame the displacement of a
/// transparent one has the variance (gate x scale x s_k^2)^2 that densify.rs's formula gives.
#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn position_noise_has_the_cpu_distribution() {
    use splat_core::backend::densify::{rotate, NOISE_OPACITY_K, NOISE_OPACITY_T};
    let be = backend();
    let n = 200_000;
    let q = [0.8f32, 0.2, -0.4, 0.4];
    let qn = q.iter().map(|v| v * v).sum::<f32>().sqrt();
    let q = q.map(|v| v / qn);
    let scales = [0.5f32, 0.2, 0.1];
    let mut g = Gaussians::empty(0);
    for i in 0..n {
        // Every other Gaussian opaque: its gate is e^-98, so it must not move at all.
        let logit = if i % 2 == 0 { -8.0 } else { 5.0 };
        g.push([0.0; 3], scales.map(f32::ln), q, logit, &[0.5, 0.5, 0.5]);
    }
    let scale = 0.1f32;
    let mut gpu = be.start_cuda_session(state(g)).expect("session");
    gpu.add_position_noise(scale, 42).expect("noise");
    let moved = gpu.snapshot().expect("snapshot").params.means;
    let o = 1.0 / (1.0 + 8f32.exp());
    let gate = 1.0 / (1.0 + (NOISE_OPACITY_K * (o - NOISE_OPACITY_T)).exp());
    let conj = [q[0], -q[1], -q[2], -q[3]];
    let mut var = [0f64; 3];
    let mut mean = [0f64; 3];
    for (i, m) in moved.iter().enumerate() {
        if i % 2 == 1 {
            assert_eq!(*m, [0.0; 3], "opaque Gaussian {i} moved");
            continue;
        }
        let local = rotate(conj, *m);
        for k in 0..3 {
            mean[k] += local[k] as f64;
            var[k] += (local[k] as f64).powi(2);
        }
    }
    let half = (n / 2) as f64;
    for k in 0..3 {
        let sd = (gate * scale * scales[k] * scales[k]) as f64;
        let got = (var[k] / half).sqrt();
        assert!(
            (got / sd - 1.0).abs() < 0.02,
            "axis {k}: sd {got:e}, formula {sd:e}"
        );
        assert!(
            (mean[k] / half).abs() < 5.0 * sd / half.sqrt(),
            "axis {k}: mean {}",
            mean[k] / half
        );
    }
}
