//! sogs-codec hot paths: the PLAS-style self-organizing sort of a texture grid, the hierarchical
//! k-means of the SH palette and the 256-entry scalar codebooks.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sogs_codec::internals::{build_codebook, palette, plas_order};
use sogs_codec::{default_palette_size, grid_size, PlasOptions};

/// `n` rows of `dim` values drawn around `clusters` random centres, as trained attributes cluster.
fn clustered(n: usize, dim: usize, clusters: usize, spread: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * dim)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let mut v = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.random_range(0..clusters);
        for d in 0..dim {
            v.push(centres[c * dim + d] + rng.random_range(-spread..spread));
        }
    }
    v
}

fn plas(c: &mut Criterion) {
    // The sort's 10 features per Gaussian (positions, colour, scales, opacity), 65,536 Gaussians.
    let n = 65_536;
    let (width, _) = grid_size(n);
    let features = clustered(n, 10, 512, 0.2, 1);
    let opts = PlasOptions::default();
    let mut group = c.benchmark_group(format!("plas_{n}_gaussians_{width}_wide"));
    group.sample_size(10);
    group.bench_function("plas_order", |b| {
        b.iter_batched(
            || (0..n as u32).collect::<Vec<u32>>(),
            |order| plas_order(&features, 10, width, order, &opts, &mut |_, _| {}),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn kmeans(c: &mut Criterion) {
    // Higher SH bands of degree 3: 45 values per Gaussian; palette size by splat-transform's rule
    // (65,536 for both; 400k is the size of the gsplat-trained lego).
    for n in [100_000, 400_000] {
        let k = default_palette_size(n);
        let data = clustered(n, 45, 4096, 0.05, 2);
        let mut group = c.benchmark_group(format!("kmeans_sh_palette_{}k_x45_to_{k}", n / 1000));
        group.sample_size(10);
        group.bench_function("palette_10_iters", |b| {
            b.iter(|| palette(&data, 45, k, 10, 0, None, &|_, _| {}))
        });
        group.finish();
    }

    let values = clustered(1_000_000, 1, 64, 0.1, 3);
    let mut group = c.benchmark_group("codebook_1M_values_to_256");
    group.sample_size(10);
    group.bench_function("build_codebook", |b| {
        b.iter(|| build_codebook(&values, None))
    });
    group.finish();
}

criterion_group!(benches, plas, kmeans);
criterion_main!(benches);
