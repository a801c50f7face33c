//! Descriptor matching (nearest neighbour with Lowe's ratio test, a distance cap and a mutual
//! check) and the choice of image pairs to match: exhaustive, sequential window, or retrieval
//! by VLAD similarity for large unordered sets.

// Index loops mirror the matrix formulas they implement; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use crate::features::Features;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Matching settings (defaults follow COLMAP's SiftMatching options).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatchOptions {
    /// Lowe's ratio between the best and second-best descriptor distance.
    pub max_ratio: f32,
    /// Maximum Euclidean distance between unit descriptors.
    pub max_distance: f32,
    /// Keep only matches that are each other's nearest neighbour.
    pub cross_check: bool,
}

impl Default for MatchOptions {
    fn default() -> Self {
        Self {
            max_ratio: 0.8,
            max_distance: 0.7,
            cross_check: true,
        }
    }
}

/// How image pairs are chosen for matching.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum PairSelection {
    /// Every pair.
    Exhaustive,
    /// Each image with the next `window` images (ordered captures, e.g. video).
    Sequential {
        /// Number of following images to pair with.
        window: usize,
    },
    /// Each image with its `k` most similar images by global descriptor, plus a sequential
    /// window (0 for none).
    Retrieval {
        /// Neighbours per image.
        k: usize,
        /// Additional sequential window.
        window: usize,
    },
    /// Exhaustive up to `max_exhaustive` images, retrieval above.
    Auto {
        /// Largest set matched exhaustively.
        max_exhaustive: usize,
    },
}

impl Default for PairSelection {
    fn default() -> Self {
        PairSelection::Auto { max_exhaustive: 60 }
    }
}

/// Unit-length f32 descriptors of one image, ready for dot products.
pub struct DescriptorSet {
    /// Number of descriptors.
    pub n: usize,
    /// Row-major `n x 128`.
    pub data: Vec<f32>,
}

impl DescriptorSet {
    /// Converts the byte descriptors of `f` to unit f32 vectors.
    pub fn from_features(f: &Features) -> Self {
        let n = f.len();
        let mut data = Vec::with_capacity(n * 128);
        for i in 0..n {
            let d = f.descriptor(i);
            let norm = d
                .iter()
                .map(|&v| (v as f32) * (v as f32))
                .sum::<f32>()
                .sqrt()
                .max(1e-6);
            data.extend(d.iter().map(|&v| v as f32 / norm));
        }
        Self { n, data }
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * 128..(i + 1) * 128]
    }
}

#[inline]
fn dot128(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise without fast-math.
    let mut acc = [0.0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    acc.iter().sum()
}

const TA: usize = 4;
const TB: usize = 8;

/// Scores of a 4 x 8 tile: rows of A against a transposed block of B (`bt[k * 8 + j]`).
/// Broadcasting one A value against eight contiguous B values keeps all 32 accumulators in
/// registers, which is what makes brute-force matching affordable.
#[inline(always)]
fn tile_kernel<const FMA: bool>(a: &[f32], bt: &[f32], out: &mut [[f32; TB]; TA]) {
    let mut acc = [[0.0f32; TB]; TA];
    let a = &a[..TA * 128];
    let bt = &bt[..128 * TB];
    for k in 0..128 {
        let b: &[f32; TB] = bt[k * TB..k * TB + TB].try_into().expect("tile width");
        for r in 0..TA {
            let av = a[r * 128 + k];
            for j in 0..TB {
                acc[r][j] = if FMA {
                    av.mul_add(b[j], acc[r][j])
                } else {
                    acc[r][j] + av * b[j]
                };
            }
        }
    }
    *out = acc;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_kernel_avx2(a: &[f32], bt: &[f32], out: &mut [[f32; TB]; TA]) {
    tile_kernel::<true>(a, bt, out)
}

fn score_tile(a: &[f32], bt: &[f32], out: &mut [[f32; TB]; TA], avx2: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: only called when the CPU reports AVX2 support.
        unsafe { tile_kernel_avx2(a, bt, out) };
        return;
    }
    let _ = avx2;
    tile_kernel::<false>(a, bt, out)
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Matches descriptors of image A to image B; returns (index in A, index in B) pairs.
pub fn match_descriptors(
    a: &DescriptorSet,
    b: &DescriptorSet,
    opt: &MatchOptions,
) -> Vec<(u32, u32)> {
    if a.n == 0 || b.n < 2 {
        return Vec::new();
    }
    let avx2 = has_avx2();
    // A padded to a multiple of TA rows; B transposed per TB-column block (zero padded).
    let na = a.n.div_ceil(TA) * TA;
    let mut ap = a.data.clone();
    ap.resize(na * 128, 0.0);
    let nbb = b.n.div_ceil(TB);
    let mut bt = vec![0.0f32; nbb * 128 * TB];
    for j in 0..b.n {
        let (blk, jj) = (j / TB, j % TB);
        for k in 0..128 {
            bt[blk * 128 * TB + k * TB + jj] = b.data[j * 128 + k];
        }
    }
    // Best and second-best similarity per row of A; best per column of B for the mutual check.
    let mut best_a = vec![(f32::MIN, f32::MIN, 0u32); a.n];
    let mut best_b = vec![(f32::MIN, 0u32); b.n];
    let mut tile = [[0.0f32; TB]; TA];
    for i0 in (0..na).step_by(TA) {
        let arows = &ap[i0 * 128..(i0 + TA) * 128];
        for blk in 0..nbb {
            score_tile(
                arows,
                &bt[blk * 128 * TB..(blk + 1) * 128 * TB],
                &mut tile,
                avx2,
            );
            for r in 0..TA {
                let i = i0 + r;
                if i >= a.n {
                    break;
                }
                let ba = &mut best_a[i];
                for jj in 0..TB {
                    let j = blk * TB + jj;
                    if j >= b.n {
                        break;
                    }
                    let s = tile[r][jj];
                    if s > ba.0 {
                        ba.1 = ba.0;
                        ba.0 = s;
                        ba.2 = j as u32;
                    } else if s > ba.1 {
                        ba.1 = s;
                    }
                    if s > best_b[j].0 {
                        best_b[j] = (s, i as u32);
                    }
                }
            }
        }
    }
    let dist = |s: f32| (2.0 - 2.0 * s).max(0.0).sqrt();
    let mut out = Vec::new();
    for (i, &(s1, s2, j)) in best_a.iter().enumerate() {
        let (d1, d2) = (dist(s1), dist(s2));
        if d1 > opt.max_distance || d1 >= opt.max_ratio * d2 {
            continue;
        }
        if opt.cross_check && best_b[j as usize].1 != i as u32 {
            continue;
        }
        out.push((i as u32, j));
    }
    out
}

/// Image pairs (i < j) to match for `n` images under the given selection.
pub fn select_pairs(
    sel: &PairSelection,
    descs: &[DescriptorSet],
    seed: u64,
) -> Vec<(usize, usize)> {
    let n = descs.len();
    let mut pairs: Vec<(usize, usize)> = match sel {
        PairSelection::Exhaustive => (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .collect(),
        PairSelection::Sequential { window } => (0..n)
            .flat_map(|i| (i + 1..(i + 1 + window).min(n)).map(move |j| (i, j)))
            .collect(),
        PairSelection::Retrieval { k, window } => retrieval_pairs(descs, *k, *window, seed),
        PairSelection::Auto { max_exhaustive } => {
            if n <= *max_exhaustive {
                return select_pairs(&PairSelection::Exhaustive, descs, seed);
            }
            retrieval_pairs(descs, 25, 5, seed)
        }
    };
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// VLAD global descriptors: residuals to a small k-means vocabulary, power- and L2-normalised.
pub fn vlad(descs: &[DescriptorSet], words: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut sample: Vec<&[f32]> = Vec::new();
    for d in descs {
        for _ in 0..(20_000 / descs.len().max(1)).max(50).min(d.n) {
            sample.push(d.row(rng.random_range(0..d.n)));
        }
    }
    if sample.len() < words {
        return descs.iter().map(|_| vec![0.0; words * 128]).collect();
    }
    let mut centers: Vec<Vec<f32>> = (0..words)
        .map(|_| sample[rng.random_range(0..sample.len())].to_vec())
        .collect();
    let nearest = |centers: &Vec<Vec<f32>>, v: &[f32]| -> usize {
        let mut best = (f32::MIN, 0);
        for (c, ctr) in centers.iter().enumerate() {
            let s = dot128(v, ctr);
            if s > best.0 {
                best = (s, c);
            }
        }
        best.1
    };
    for _ in 0..8 {
        let assign: Vec<usize> = sample.par_iter().map(|v| nearest(&centers, v)).collect();
        let mut sums = vec![vec![0.0f32; 128]; words];
        let mut counts = vec![0usize; words];
        for (v, &a) in sample.iter().zip(&assign) {
            counts[a] += 1;
            for k in 0..128 {
                sums[a][k] += v[k];
            }
        }
        for c in 0..words {
            if counts[c] > 0 {
                let norm = sums[c].iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                centers[c] = sums[c].iter().map(|x| x / norm).collect();
            }
        }
    }
    descs
        .par_iter()
        .map(|d| {
            let mut v = vec![0.0f32; words * 128];
            for i in 0..d.n {
                let r = d.row(i);
                let c = nearest(&centers, r);
                for k in 0..128 {
                    v[c * 128 + k] += r[k] - centers[c][k];
                }
            }
            for x in v.iter_mut() {
                *x = x.signum() * x.abs().sqrt();
            }
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

fn retrieval_pairs(
    descs: &[DescriptorSet],
    k: usize,
    window: usize,
    seed: u64,
) -> Vec<(usize, usize)> {
    let n = descs.len();
    let g = vlad(descs, 64, seed);
    let mut pairs = Vec::new();
    for i in 0..n {
        let mut sims: Vec<(f32, usize)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| (g[i].iter().zip(&g[j]).map(|(a, b)| a * b).sum(), j))
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, j) in sims.iter().take(k) {
            pairs.push((i.min(j), i.max(j)));
        }
        for j in i + 1..(i + 1 + window).min(n) {
            pairs.push((i, j));
        }
    }
    pairs
}
