//! The per-step training work besides the renderer: the L1 + SSIM loss with its gradient, the
//! SSIM metric alone, and one Adam update of every parameter of 1M SH-degree-3 Gaussians.

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splat_core::gaussians::sh_coeffs_for_degree;
use splat_core::loss::{l1_ssim_loss, ssim};
use splat_core::optim::Adam;
use splat_core::train::config::LrConfig;
use splat_core::Gaussians;

/// A smooth RGB pattern plus noise, so SSIM's window statistics are not degenerate.
fn image(w: usize, h: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let s = ((x as f32 * 0.05 + c as f32).sin() * (y as f32 * 0.03).cos() + 1.0) * 0.5;
                v.push((s + rng.random_range(-0.05..0.05f32)).clamp(0.0, 1.0));
            }
        }
    }
    v
}

fn loss(c: &mut Criterion) {
    for (w, h) in [(200usize, 200usize), (800, 800)] {
        let render = image(w, h, 1);
        let target = image(w, h, 2);
        let mut group = c.benchmark_group(format!("ssim_{w}x{h}"));
        group.sample_size(10);
        group.bench_function("l1_ssim_loss_and_grad", |b| {
            b.iter(|| l1_ssim_loss(&render, &target, w, h, 0.2))
        });
        group.bench_function("ssim_metric", |b| b.iter(|| ssim(&render, &target, w, h)));
        group.finish();
    }
}

/// `n` Gaussians of SH degree 3 with every parameter random (values do not change Adam's cost).
fn gaussians(n: usize, rng: &mut ChaCha8Rng) -> Gaussians {
    let mut r = |_| rng.random_range(-1.0..1.0f32);
    Gaussians {
        means: (0..n).map(|_| [0, 1, 2].map(&mut r)).collect(),
        log_scales: (0..n).map(|_| [0, 1, 2].map(&mut r)).collect(),
        quats: (0..n).map(|_| [0, 1, 2, 3].map(&mut r)).collect(),
        opacity_logits: (0..n).map(&mut r).collect(),
        sh: (0..n * sh_coeffs_for_degree(3) * 3).map(&mut r).collect(),
        sh_degree: 3,
    }
}

fn adam(c: &mut Criterion) {
    let n = 1_000_000;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut params = gaussians(n, &mut rng);
    let grads = gaussians(n, &mut rng);
    let mut opt = Adam::new(&params);
    // The default (3DGS) rates at unit scene extent.
    let lr = LrConfig::default().initial_rates(1.0);
    let mut group = c.benchmark_group("adam_1M_gaussians_sh3");
    group.sample_size(10);
    // 59 parameters per Gaussian: 59M values, each read and written with its two moments.
    group.bench_function("step", |b| b.iter(|| opt.step(&mut params, &grads, &lr)));
    group.finish();
}

criterion_group!(benches, loss, adam);
criterion_main!(benches);
