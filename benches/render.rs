//! CPU renderer forward and forward+backward at 100k and 1M Gaussians, 800x800.

use criterion::{criterion_group, criterion_main, Criterion};
use glam::DVec3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splat_core::gaussians::sh_coeffs_for_degree;
use splat_core::{render, render_backward, Camera, Gaussians, RenderOptions};

/// Random SH-degree-3 Gaussians in a cube seen whole by an 800x800 camera.
fn scene(n: usize) -> (Gaussians, Camera) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut g = Gaussians::empty(3);
    let nsh = sh_coeffs_for_degree(3) * 3;
    for _ in 0..n {
        let mean = [0, 1, 2].map(|_| rng.random_range(-1.0..1.0f32));
        // Sizes like a trained scene's: a few pixels across, heavy-tailed.
        let s = (0.004f32 * (rng.random_range(0.0..2.5f32)).exp()).ln();
        let ls = [
            s + rng.random_range(-0.5..0.5),
            s + rng.random_range(-0.5..0.5),
            s + rng.random_range(-0.5..0.5),
        ];
        let q = [0, 1, 2, 3].map(|_| rng.random_range(-1.0..1.0f32));
        let sh: Vec<f32> = (0..nsh)
            .map(|j| {
                if j < 3 {
                    rng.random_range(-1.0..1.0)
                } else {
                    rng.random_range(-0.1..0.1)
                }
            })
            .collect();
        g.push(mean, ls, q, rng.random_range(-3.0..3.0), &sh);
    }
    let cam = Camera::look_at(
        800,
        800,
        0.69,
        DVec3::new(0.0, -3.2, 1.2),
        DVec3::ZERO,
        DVec3::Z,
    );
    (g, cam)
}

fn bench(c: &mut Criterion) {
    let opts = RenderOptions {
        background: [1.0; 3],
        ..Default::default()
    };
    for n in [100_000usize, 1_000_000] {
        let (g, cam) = scene(n);
        let mut group = c.benchmark_group(format!("cpu_render_{}k_800x800", n / 1000));
        group.sample_size(10);
        group.bench_function("forward", |b| b.iter(|| render(&g, &cam, &opts)));
        let out = render(&g, &cam, &opts);
        let d: Vec<f32> = out.image.iter().map(|v| v - 0.5).collect();
        group.bench_function("forward_backward", |b| {
            b.iter(|| {
                let out = render(&g, &cam, &opts);
                render_backward(&g, &out, &d)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
