//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splat_core::Gaussians;

/// The shared data folder, as seen from this crate.
pub const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

/// A fresh empty folder for one test.
#[allow(unused_imports)] // not every test file makes scratch folders
pub use spaceport_io::scratch_dir as scratch;

/// A random scene shaped like trained Gaussians: clustered positions with a far tail, small
/// log-scales, bimodal opacities, SH rest shrinking with band, a few exact duplicates.
pub fn random_scene(n: usize, degree: usize, seed: u64) -> Gaussians {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = Gaussians::empty(degree);
    let coeffs = g.sh_coeffs();
    let centres: Vec<[f32; 3]> = (0..8)
        .map(|_| [0, 1, 2].map(|_| rng.random_range(-3.0..3.0)))
        .collect();
    // A handful of SH "materials" so the palette has structure to find.
    let materials: Vec<Vec<f32>> = (0..20)
        .map(|_| {
            (0..(coeffs - 1) * 3)
                .map(|j| rng.random_range(-0.3..0.3) / (1.0 + (j / 9) as f32))
                .collect()
        })
        .collect();
    for i in 0..n {
        let mean = if i % 20 == 0 {
            [0, 1, 2].map(|_| rng.random_range(-40.0..40.0))
        } else {
            let c = centres[rng.random_range(0..centres.len())];
            [0, 1, 2].map(|a| c[a] + rng.random_range(-0.5..0.5))
        };
        let ls = [0, 1, 2].map(|_| rng.random_range(-7.0..-1.0));
        let q = [0, 1, 2, 3].map(|_| rng.random_range(-1.0..1.0));
        let op = if rng.random::<bool>() {
            rng.random_range(1.0..6.0)
        } else {
            rng.random_range(-6.0..-1.0)
        };
        let mut sh = vec![0f32; coeffs * 3];
        for s in sh.iter_mut().take(3) {
            *s = rng.random_range(-1.8..1.8);
        }
        let m = &materials[rng.random_range(0..materials.len())];
        for (j, s) in sh[3..].iter_mut().enumerate() {
            *s = m[j] + rng.random_range(-0.01..0.01);
        }
        g.push(mean, ls, q, op, &sh);
    }
    g
}
