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

/// The layouts both scoring paths read: A padded with zero rows to a multiple of `TA`, and B
/// transposed per block of `cols` columns (zero padded); also the padded row count of A and
/// the number of B blocks.
fn pack(a: &DescriptorSet, b: &DescriptorSet, cols: usize) -> (Vec<f32>, Vec<f32>, usize, usize) {
    let na = a.n.div_ceil(TA) * TA;
    let mut ap = a.data.clone();
    ap.resize(na * 128, 0.0);
    let nbb = b.n.div_ceil(cols);
    let mut bt = vec![0.0f32; nbb * 128 * cols];
    for j in 0..b.n {
        let (blk, jj) = (j / cols, j % cols);
        for k in 0..128 {
            bt[blk * 128 * cols + k * cols + jj] = b.data[j * 128 + k];
        }
    }
    (ap, bt, na, nbb)
}

/// The nearest neighbours that matching decides on, for one image pair (A, B): per row of A
/// the best and second-best similarity (dot product of unit descriptors) and the column of the
/// best; per column of B the best similarity and its row. Ties go to the lowest index, and the
/// second best is the second largest of all scores (equal to the best when the best occurs
/// twice). A device that computes these can hand them to [`select_matches`] and so give the
/// CPU's matches exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct NearestTwo {
    /// Per row of A: (best similarity, second-best similarity, column of the best).
    pub rows: Vec<(f32, f32, u32)>,
    /// Per column of B: (best similarity, row of the best).
    pub cols: Vec<(f32, u32)>,
}

/// The nearest two of every row of A in B and the nearest row of every column of B, on the
/// CPU (AVX2 where the processor has it, else the portable tiled path).
pub fn nearest_two(a: &DescriptorSet, b: &DescriptorSet) -> NearestTwo {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU reports AVX2 and FMA.
        let (rows, cols) = unsafe { best_two_avx2(a, b) };
        return NearestTwo { rows, cols };
    }
    nearest_two_tiled(a, b)
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
    select_matches(&nearest_two(a, b), opt)
}

/// The 4 x 8 tile path with scalar bookkeeping: the portable fallback, and the reference the
/// AVX2 path is tested against (both compute every score with the same sequence of fused
/// multiply-adds, so they agree bit for bit).
fn nearest_two_tiled(a: &DescriptorSet, b: &DescriptorSet) -> NearestTwo {
    let avx2 = has_avx2();
    let (ap, bt, na, nbb) = pack(a, b, TB);
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
    NearestTwo {
        rows: best_a,
        cols: best_b,
    }
}

/// Ratio, distance and mutual checks on the nearest neighbours of one pair: the matches
/// (index in A, index in B). Empty when A has no descriptors or B fewer than two (no ratio
/// can be formed), as [`match_descriptors`] returns.
pub fn select_matches(nearest: &NearestTwo, opt: &MatchOptions) -> Vec<(u32, u32)> {
    if nearest.rows.is_empty() || nearest.cols.len() < 2 {
        return Vec::new();
    }
    let dist = |s: f32| (2.0 - 2.0 * s).max(0.0).sqrt();
    let mut out = Vec::new();
    for (i, &(s1, s2, j)) in nearest.rows.iter().enumerate() {
        let (d1, d2) = (dist(s1), dist(s2));
        if d1 > opt.max_distance || d1 >= opt.max_ratio * d2 {
            continue;
        }
        // A column outside B (only a faulty device could report one) is never a match.
        let Some(&(_, back)) = nearest.cols.get(j as usize) else {
            continue;
        };
        if opt.cross_check && back != i as u32 {
            continue;
        }
        out.push((i as u32, j));
    }
    out
}

/// Columns of B per cache block of the AVX2 path (256 x 128 f32 = 128 KiB, which stays in L2
/// while every row of A streams past it).
#[cfg(target_arch = "x86_64")]
const CHUNK_BLOCKS: usize = 16;

/// Best two similarities per row of A and best row per column of B, as the tiled path finds
/// them (same scores, same tie-breaking: the lowest index wins), with a 4 x 16 register tile,
/// B blocked to stay in L2 and the running best kept in vector lanes instead of scalar
/// compare-and-branch per score.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn best_two_avx2(
    a: &DescriptorSet,
    b: &DescriptorSet,
) -> (Vec<(f32, f32, u32)>, Vec<(f32, u32)>) {
    use std::arch::x86_64::*;
    const W: usize = 16;
    let (ap, bt, na, nbb) = pack(a, b, W);
    let mut best_a = vec![(f32::MIN, f32::MIN, 0u32); a.n];
    let mut col_s = vec![f32::MIN; nbb * W];
    let mut col_i = vec![0i32; nbb * W];
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let min = _mm256_set1_ps(f32::MIN);
    for c0 in (0..nbb).step_by(CHUNK_BLOCKS) {
        let c1 = (c0 + CHUNK_BLOCKS).min(nbb);
        for i0 in (0..na).step_by(TA) {
            let rows = (a.n - i0).min(TA);
            let mut m1 = [[min; 2]; TA];
            let mut m2 = [[min; 2]; TA];
            let mut ix = [[_mm256_setzero_si256(); 2]; TA];
            let arow = ap.as_ptr().add(i0 * 128);
            for blk in c0..c1 {
                let bp = bt.as_ptr().add(blk * 128 * W);
                let mut acc = [[_mm256_setzero_ps(); 2]; TA];
                for k in 0..128 {
                    let b0 = _mm256_loadu_ps(bp.add(k * W));
                    let b1 = _mm256_loadu_ps(bp.add(k * W + 8));
                    for r in 0..TA {
                        let av = _mm256_broadcast_ss(&*arow.add(r * 128 + k));
                        acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                        acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
                    }
                }
                let base = (blk * W) as i32;
                for h in 0..2 {
                    let jv = _mm256_add_epi32(lane, _mm256_set1_epi32(base + 8 * h as i32));
                    // Padding columns score as f32::MIN: never a best or second best.
                    let valid =
                        _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(b.n as i32), jv));
                    let cs = col_s.as_mut_ptr().add(blk * W + 8 * h);
                    let ci = col_i.as_mut_ptr().add(blk * W + 8 * h) as *mut __m256i;
                    let mut bs = _mm256_loadu_ps(cs);
                    let mut bi = _mm256_loadu_si256(ci);
                    for r in 0..TA {
                        let s = _mm256_blendv_ps(min, acc[r][h], valid);
                        let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(s, m1[r][h]);
                        m2[r][h] = _mm256_max_ps(m2[r][h], _mm256_min_ps(m1[r][h], s));
                        m1[r][h] = _mm256_blendv_ps(m1[r][h], s, gt);
                        ix[r][h] = _mm256_castps_si256(_mm256_blendv_ps(
                            _mm256_castsi256_ps(ix[r][h]),
                            _mm256_castsi256_ps(jv),
                            gt,
                        ));
                        if r < rows {
                            let g = _mm256_cmp_ps::<_CMP_GT_OQ>(s, bs);
                            bs = _mm256_blendv_ps(bs, s, g);
                            bi = _mm256_castps_si256(_mm256_blendv_ps(
                                _mm256_castsi256_ps(bi),
                                _mm256_castsi256_ps(_mm256_set1_epi32((i0 + r) as i32)),
                                g,
                            ));
                        }
                    }
                    _mm256_storeu_ps(cs, bs);
                    _mm256_storeu_si256(ci, bi);
                }
            }
            // Lanes -> this chunk's best two per row, merged into the running best.
            for r in 0..rows {
                let (mut v1, mut v2, mut vi) = ([0f32; W], [0f32; W], [0i32; W]);
                for h in 0..2 {
                    _mm256_storeu_ps(v1.as_mut_ptr().add(8 * h), m1[r][h]);
                    _mm256_storeu_ps(v2.as_mut_ptr().add(8 * h), m2[r][h]);
                    _mm256_storeu_si256(vi.as_mut_ptr().add(8 * h) as *mut __m256i, ix[r][h]);
                }
                let mut bl = 0;
                for l in 1..W {
                    if v1[l] > v1[bl] || (v1[l] == v1[bl] && vi[l] < vi[bl]) {
                        bl = l;
                    }
                }
                let mut second = f32::MIN;
                for l in 0..W {
                    second = second.max(v2[l]);
                    if l != bl {
                        second = second.max(v1[l]);
                    }
                }
                let (c1s, cj) = (v1[bl], vi[bl] as u32);
                let ba = &mut best_a[i0 + r];
                if c1s > ba.0 {
                    ba.1 = ba.0.max(second);
                    ba.0 = c1s;
                    ba.2 = cj;
                } else {
                    ba.1 = ba.1.max(c1s);
                }
            }
        }
    }
    let best_b = (0..b.n).map(|j| (col_s[j], col_i[j] as u32)).collect();
    (best_a, best_b)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Random unit descriptors with quantised values (as SIFT bytes give), some rows repeated
    /// so that ties between best and second best occur.
    fn set(n: usize, seed: u64, repeats: bool) -> DescriptorSet {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::with_capacity(n * 128);
        for i in 0..n {
            if repeats && i % 7 == 3 {
                let prev: Vec<f32> = data[(i - 1) * 128..i * 128].to_vec();
                data.extend(prev);
                continue;
            }
            let v: Vec<f32> = (0..128).map(|_| rng.random_range(0..6) as f32).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            data.extend(v.iter().map(|x| x / norm));
        }
        DescriptorSet { n, data }
    }

    #[test]
    fn fast_path_gives_the_tiled_matches_exactly() {
        let strict = MatchOptions::default();
        let loose = MatchOptions {
            max_ratio: 1.0,
            max_distance: 2.0,
            cross_check: false,
        };
        let mutual_only = MatchOptions {
            max_ratio: 1.0,
            max_distance: 2.0,
            cross_check: true,
        };
        for (na, nb, seed) in [(37, 300, 1), (4, 2, 2), (130, 517, 3), (1, 17, 4)] {
            let a = set(na, seed, true);
            // B shares some rows of A so that strong matches exist too.
            let mut b = set(nb, seed + 100, true);
            for j in 0..nb.min(na) / 2 {
                b.data[j * 128..(j + 1) * 128]
                    .copy_from_slice(&a.data[2 * j * 128..(2 * j + 1) * 128]);
            }
            for opt in [&strict, &loose, &mutual_only] {
                let fast = match_descriptors(&a, &b, opt);
                // The tiled path only (select_matches returns nothing for fewer than two in B).
                let tiled = select_matches(&nearest_two_tiled(&a, &b), opt);
                assert_eq!(fast, tiled, "na {na} nb {nb} opt {opt:?}");
            }
            assert!(!match_descriptors(&a, &b, &loose).is_empty());
        }
    }
}
