//! The CPU renderer's backward against central finite differences in f64, on many random
//! small scenes: overlapping Gaussians, Gaussians on tile borders and near the near plane,
//! every SH degree, odd image sizes.

use std::sync::Arc;

use glam::DVec3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splat_core::gaussians::sh_coeffs_for_degree;
use splat_core::{render, render_backward, Camera, RenderOptions, Splats};

fn random_scene(seed: u64) -> (Splats<f64>, Camera, RenderOptions, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = rng.random_range(17..42);
    let h = rng.random_range(17..42);
    let dir = DVec3::new(
        rng.random_range(-1.0..1.0),
        rng.random_range(-1.0..1.0),
        rng.random_range(-1.0..1.0),
    )
    .normalize();
    let eye = dir * 4.0;
    let cam = Camera::look_at(
        w,
        h,
        rng.random_range(0.6..1.2),
        eye,
        DVec3::ZERO,
        DVec3::new(0.1, 0.2, 1.0).normalize(),
    );
    let degree = (seed % 4) as usize;
    let ncoef = sh_coeffs_for_degree(degree);
    let mut s = Splats::<f64>::empty(degree);
    let n = rng.random_range(5..11);
    let cam_to_world = cam.rotation.transpose();
    for k in 0..n {
        // Pixel position inside the image; every third Gaussian sits on a tile border.
        let mut u = rng.random_range(0.0..w as f64);
        let v = rng.random_range(0.0..h as f64);
        if k % 3 == 0 {
            u = 16.0 + rng.random_range(-1.5..1.5);
        }
        // A few close to the near plane (0.01).
        let z = if k % 4 == 1 {
            rng.random_range(0.03..0.08)
        } else {
            rng.random_range(1.0..6.0)
        };
        let pc = DVec3::new((u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z);
        let pw = cam_to_world * (pc - cam.translation);
        // Screen footprint of a few pixels to a good part of the image.
        let px = rng.random_range(1.5..9.0);
        let base = px * z / cam.fx;
        let ls = [0, 1, 2].map(|_| (base * rng.random_range(0.4..2.5f64)).ln());
        let q = [0, 1, 2, 3].map(|_| rng.random_range(-1.0..1.0f64));
        let op = rng.random_range(-2.0..2.5);
        let sh: Vec<f64> = (0..ncoef * 3)
            .map(|j| {
                if j < 3 {
                    rng.random_range(-1.2..1.5)
                } else {
                    rng.random_range(-0.4..0.4)
                }
            })
            .collect();
        s.push(pw.to_array(), ls, q, op, &sh);
    }
    let opts = RenderOptions {
        background: [
            rng.random_range(0.0..1.0),
            rng.random_range(0.0..1.0),
            rng.random_range(0.0..1.0),
        ],
        sh_degree: None,
        near: 0.01,
        record_signature: true,
        mip2d: false,
        filter3d: None,
        low_pass: None,
    };
    let weights: Vec<f64> = (0..(w * h * 3) as usize)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    (s, cam, opts, weights)
}

fn loss(s: &Splats<f64>, cam: &Camera, opts: &RenderOptions, w: &[f64]) -> (f64, u64) {
    let out = render(s, cam, opts);
    (
        out.image.iter().zip(w).map(|(a, b)| a * b).sum(),
        out.signature,
    )
}

/// Which parameter a finite difference perturbs.
#[derive(Clone, Copy, Debug)]
enum Group {
    Mean,
    LogScale,
    Quat,
    Opacity,
    Sh,
}

fn param(s: &mut Splats<f64>, g: Group, i: usize, k: usize) -> &mut f64 {
    let nsh = s.sh_coeffs() * 3;
    match g {
        Group::Mean => &mut s.means[i][k],
        Group::LogScale => &mut s.log_scales[i][k],
        Group::Quat => &mut s.quats[i][k],
        Group::Opacity => &mut s.opacity_logits[i],
        Group::Sh => &mut s.sh[i * nsh + k],
    }
}

#[derive(Default)]
struct Tally {
    checked: usize,
    skipped: usize,
    nonzero: [usize; 5],
}

/// Compares one analytic derivative with a central difference; returns false where a
/// discrete decision changes within the step, so the difference is not a derivative.
fn check_one(
    s: &Splats<f64>,
    cam: &Camera,
    opts: &RenderOptions,
    w: &[f64],
    base_sig: u64,
    g: Group,
    i: usize,
    k: usize,
    analytic: f64,
    ctx: &str,
) -> bool {
    let h = 1e-6;
    let mut sp = s.clone();
    *param(&mut sp, g, i, k) += h;
    let (lp, sigp) = loss(&sp, cam, opts, w);
    let mut sm = s.clone();
    *param(&mut sm, g, i, k) -= h;
    let (lm, sigm) = loss(&sm, cam, opts, w);
    if sigp != base_sig || sigm != base_sig {
        return false;
    }
    let fd = (lp - lm) / (2.0 * h);
    let tol = 1e-6 + 1e-5 * analytic.abs().max(fd.abs());
    assert!(
        (fd - analytic).abs() <= tol,
        "{ctx}: {g:?}[{i}][{k}] analytic {analytic:.9e} vs finite difference {fd:.9e}"
    );
    true
}

/// Checks every parameter's derivative on the scenes of `seeds`, with `aa` setting the
/// anti-aliasing filters of each scene's options; asserts that nearly all were smooth and that
/// each group of `groups_needed` had more than `min_nonzero` non-zero checks.
fn check_seeds(
    seeds: std::ops::Range<u64>,
    aa: &dyn Fn(u64, &Splats<f64>, &mut RenderOptions),
    min_nonzero: usize,
) {
    let mut tally = Tally::default();
    for seed in seeds {
        let (s, cam, mut opts, w) = random_scene(seed);
        aa(seed, &s, &mut opts);
        let out = render(&s, &cam, &opts);
        assert!(out.n_visible() > 0, "seed {seed}: nothing visible");
        let grads = render_backward(&s, &out, &w);
        let ctx = format!(
            "seed {seed} ({}x{}, SH degree {}, {} Gaussians, mip2d {}, 3D filter {})",
            cam.width,
            cam.height,
            s.sh_degree,
            s.len(),
            opts.mip2d,
            opts.filter3d.is_some()
        );
        for i in 0..s.len() {
            let nsh = s.sh_coeffs() * 3;
            let groups: [(Group, usize); 5] = [
                (Group::Mean, 3),
                (Group::LogScale, 3),
                (Group::Quat, 4),
                (Group::Opacity, 1),
                (Group::Sh, nsh),
            ];
            for (gi, (g, count)) in groups.into_iter().enumerate() {
                for k in 0..count {
                    let an = match g {
                        Group::Mean => grads.params.means[i][k],
                        Group::LogScale => grads.params.log_scales[i][k],
                        Group::Quat => grads.params.quats[i][k],
                        Group::Opacity => grads.params.opacity_logits[i],
                        Group::Sh => grads.params.sh[i * nsh + k],
                    };
                    if check_one(&s, &cam, &opts, &w, out.signature, g, i, k, an, &ctx) {
                        tally.checked += 1;
                        if an.abs() > 1e-8 {
                            tally.nonzero[gi] += 1;
                        }
                    } else {
                        tally.skipped += 1;
                    }
                }
            }
        }
    }
    // Discontinuities are rare: nearly every derivative must have been checked, and every
    // group must have been exercised with non-zero gradients.
    assert!(
        tally.checked > 9 * tally.skipped,
        "too many discontinuous checks: {} checked, {} skipped",
        tally.checked,
        tally.skipped
    );
    for (gi, n) in tally.nonzero.iter().enumerate() {
        assert!(
            *n > min_nonzero,
            "group {gi} had only {n} non-zero checked gradients"
        );
    }
}

#[test]
fn every_parameter_gradient_matches_finite_differences() {
    check_seeds(0..40, &|_, _, _| {}, 20);
}

/// A 3D filter variance per Gaussian from 0 to about twice its mean squared scale, so that
/// the filter changes both its footprint and its opacity markedly; every fifth has none.
fn random_filter(seed: u64, s: &Splats<f64>) -> Arc<[f32]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xf117);
    (0..s.len())
        .map(|i| {
            if i % 5 == 4 {
                return 0.0;
            }
            let ls = s.log_scales[i];
            let mean_sq = (2.0 * (ls[0] + ls[1] + ls[2]) / 3.0).exp();
            (mean_sq * rng.random_range(0.05..2.0)) as f32
        })
        .collect()
}

/// The anti-aliasing filters' backward (gsplat's 2D compensation, Mip-Splatting's 3D filter,
/// and both) against finite differences on the same kind of scenes.
#[test]
fn antialiased_gradients_match_finite_differences() {
    check_seeds(
        200..212,
        &|_, _, o| {
            o.mip2d = true;
        },
        5,
    );
    check_seeds(
        212..224,
        &|seed, s, o| {
            o.filter3d = Some(random_filter(seed, s));
        },
        5,
    );
    check_seeds(
        224..236,
        &|seed, s, o| {
            o.mip2d = true;
            o.filter3d = Some(random_filter(seed, s));
        },
        5,
    );
    // Mip-Splatting's pairing: both filters over a 0.1 px² low-pass.
    check_seeds(
        236..242,
        &|seed, s, o| {
            o.mip2d = true;
            o.filter3d = Some(random_filter(seed, s));
            o.low_pass = Some(0.1);
        },
        5,
    );
}

/// The filters do something: the 2D compensation dims a sub-pixel Gaussian by about its
/// expected factor, and the 3D filter widens and dims a small Gaussian while a large one
/// barely changes.
#[test]
fn antialias_filters_change_the_image_as_expected() {
    use splat_core::render::project::{filter3d, mip2d_compensation};
    // A 0.5 px std Gaussian: compensation sqrt(0.25² / 0.55²) = 0.4545...
    let c = mip2d_compensation([0.25f64, 0.0, 0.25], 0.3);
    let c01 = mip2d_compensation([0.25f64, 0.0, 0.25], 0.1);
    assert!((c01 - 0.25 / 0.35).abs() < 1e-12, "{c01}");
    assert!((c - 0.25 / 0.55).abs() < 1e-12, "{c}");
    assert_eq!(mip2d_compensation([0.0f64, 0.0, 1.0], 0.3), 0.0);
    let (f, k) = filter3d([0.01f64.ln(), 0.0, 0.0], 1e-4);
    assert!((f[0] - (1e-4f64 + 1e-4).sqrt()).abs() < 1e-12);
    assert!((f[1] - (1.0f64 + 1e-4).sqrt()).abs() < 1e-12);
    assert!(
        (k - 0.01 / 2e-4f64.sqrt() / (1.0 + 1e-4)).abs() < 1e-9,
        "{k}"
    );
    // In a render: the compensation dims every pixel, never brightens one.
    let (s, cam, opts, _) = random_scene(3);
    let plain = render(&s, &cam, &opts);
    let aa = render(
        &s,
        &cam,
        &RenderOptions {
            mip2d: true,
            background: [0.0; 3],
            ..opts.clone()
        },
    );
    let plain_black = render(
        &s,
        &cam,
        &RenderOptions {
            background: [0.0; 3],
            ..opts.clone()
        },
    );
    assert!(plain.image != aa.image);
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    assert!(sum(&aa.alpha) < sum(&plain_black.alpha));
}

#[test]
fn screen_space_mean_gradients_match_principal_point_shift() {
    // Moving the principal point moves every projected centre by the same amount, so the
    // derivative of the loss with respect to cx (cy) is the sum of the x (y) mean2d gradients.
    let mut checked = 0;
    for seed in 100..130u64 {
        let (s, cam, opts, w) = random_scene(seed);
        let out = render(&s, &cam, &opts);
        let grads = render_backward(&s, &out, &w);
        let sum = grads
            .means2d
            .iter()
            .fold([0.0, 0.0], |a, m| [a[0] + m[0], a[1] + m[1]]);
        let h = 1e-6;
        for axis in 0..2 {
            let shifted = |d: f64| {
                let mut c = cam.clone();
                if axis == 0 {
                    c.cx += d;
                } else {
                    c.cy += d;
                }
                loss(&s, &c, &opts, &w)
            };
            let ((lp, sp), (lm, sm)) = (shifted(h), shifted(-h));
            if sp != out.signature || sm != out.signature {
                continue;
            }
            let fd = (lp - lm) / (2.0 * h);
            assert!(
                (fd - sum[axis]).abs() <= 1e-6 + 1e-5 * fd.abs(),
                "seed {seed} axis {axis}: sum of mean2d gradients {} vs finite difference {fd}",
                sum[axis]
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 40,
        "only {checked} principal-point checks were smooth"
    );
}
