//! Texel order of the Gaussians: Morton (Z-order) on positions, and a PLAS-style self-organizing
//! sort that starts from Morton order and swaps Gaussians within small groups so that every
//! texel resembles a blurred version of its neighbourhood — neighbouring texels end up alike in
//! all attributes, which is what lets the lossless WebP files shrink.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Spreads the low 21 bits of `v` so that they occupy every third bit.
fn spread21(v: u64) -> u64 {
    let mut x = v & 0x1f_ffff;
    x = (x | (x << 32)) & 0x1f_0000_0000_ffff;
    x = (x | (x << 16)) & 0x1f_0000_ff00_00ff;
    x = (x | (x << 8)) & 0x100f_00f0_0f00_f00f;
    x = (x | (x << 4)) & 0x10c3_0c30_c30c_30c3;
    x = (x | (x << 2)) & 0x1249_2492_4924_9249;
    x
}

/// 63-bit Morton code of a point quantised to 21 bits per axis in the box `[lo, hi]`.
pub fn morton_code(p: [f32; 3], lo: [f64; 3], hi: [f64; 3]) -> u64 {
    let mut code = 0;
    for a in 0..3 {
        let span = hi[a] - lo[a];
        let t = if span > 0.0 {
            ((p[a] as f64 - lo[a]) / span).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let q = (t * ((1u64 << 21) - 1) as f64).round() as u64;
        code |= spread21(q) << a;
    }
    code
}

/// The axis-aligned bounding box of `means` (lower and upper corners).
fn bounds(means: &[[f32; 3]]) -> ([f64; 3], [f64; 3]) {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in means {
        for a in 0..3 {
            lo[a] = lo[a].min(p[a] as f64);
            hi[a] = hi[a].max(p[a] as f64);
        }
    }
    (lo, hi)
}

/// Gaussian indices sorted by one 63-bit Morton key over the bounding box (ties by index),
/// so dense cells are not scrambled the way recursive 10-bit re-sorting leaves them.
pub fn morton_order(means: &[[f32; 3]]) -> Vec<u32> {
    let (lo, hi) = bounds(means);
    let mut keyed: Vec<(u64, u32)> = means
        .par_iter()
        .enumerate()
        .map(|(i, &p)| (morton_code(p, lo, hi), i as u32))
        .collect();
    keyed.par_sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Position of a point with 21-bit coordinates along the 3-D Hilbert curve (Skilling's
/// transpose algorithm): unlike Z-order the curve never jumps, so consecutive Gaussians stay
/// adjacent in space and every image row is smoother.
pub fn hilbert_index(mut x: [u32; 3], bits: u32) -> u64 {
    let m = 1u32 << (bits - 1);
    let mut q = m;
    while q > 1 {
        let p = q - 1;
        for i in 0..3 {
            if x[i] & q != 0 {
                x[0] ^= p;
            } else {
                let t = (x[0] ^ x[i]) & p;
                x[0] ^= t;
                x[i] ^= t;
            }
        }
        q >>= 1;
    }
    x[1] ^= x[0];
    x[2] ^= x[1];
    let mut t = 0;
    let mut q = m;
    while q > 1 {
        if x[2] & q != 0 {
            t ^= q - 1;
        }
        q >>= 1;
    }
    for v in &mut x {
        *v ^= t;
    }
    let mut h = 0u64;
    for b in (0..bits).rev() {
        for v in &x {
            h = (h << 1) | ((v >> b) & 1) as u64;
        }
    }
    h
}

/// Gaussian indices sorted along a 21-bit-per-axis Hilbert curve over the bounding box.
pub fn hilbert_order(means: &[[f32; 3]]) -> Vec<u32> {
    let (lo, hi) = bounds(means);
    let quant = |p: [f32; 3]| {
        [0, 1, 2].map(|a| {
            let span = hi[a] - lo[a];
            let t = if span > 0.0 {
                ((p[a] as f64 - lo[a]) / span).clamp(0.0, 1.0)
            } else {
                0.0
            };
            (t * ((1u64 << 21) - 1) as f64).round() as u32
        })
    };
    let mut keyed: Vec<(u64, u32)> = means
        .par_iter()
        .enumerate()
        .map(|(i, &p)| (hilbert_index(quant(p), 21), i as u32))
        .collect();
    keyed.par_sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Settings of the self-organizing sort.
#[derive(Clone, Debug)]
pub struct PlasOptions {
    /// Each blur radius is this fraction of the previous one (PLAS: 0.95; smaller is faster).
    pub radius_decay: f32,
    /// Swap passes per radius.
    pub passes_per_radius: usize,
    /// Seed of the random grouping.
    pub seed: u64,
}

impl Default for PlasOptions {
    fn default() -> Self {
        Self {
            radius_decay: 0.85,
            passes_per_radius: 2,
            seed: 0,
        }
    }
}

/// Reorders `order` (texel -> Gaussian, `n` entries on a `width`-wide grid, row-major) to make
/// neighbouring texels similar in `features` (`dim` values per Gaussian, already scaled).
/// Returns the improved order; `progress(step, steps)` is called after each radius.
pub fn plas_order(
    features: &[f32],
    dim: usize,
    width: usize,
    mut order: Vec<u32>,
    opts: &PlasOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<u32> {
    let n = order.len();
    if n < 8 || dim == 0 || width == 0 {
        return order;
    }
    let height = n.div_ceil(width);
    let decay = opts.radius_decay.clamp(0.1, 0.99) as f64;
    let mut radii = Vec::new();
    let mut r = (width.max(height) as f64 / 4.0).max(1.0);
    while r >= 1.0 {
        radii.push(r.round() as usize);
        r *= decay;
    }
    radii.dedup();
    let steps = radii.len();
    let mut grid = vec![0f32; n * dim];
    for (step, &radius) in radii.iter().enumerate() {
        for pass in 0..opts.passes_per_radius {
            grid.par_chunks_mut(dim)
                .zip(order.par_iter())
                .for_each(|(g, &s)| g.copy_from_slice(&features[s as usize * dim..][..dim]));
            let target = box_blur(&grid, dim, width, n, radius);
            let block = (radius + 1).clamp(4, 64);
            let mut rng =
                ChaCha8Rng::seed_from_u64(opts.seed ^ ((step as u64) << 32) ^ pass as u64);
            use rand::Rng;
            let (ox, oy) = (rng.random_range(0..block), rng.random_range(0..block));
            let bx = (width + ox).div_ceil(block);
            let by = (height + oy).div_ceil(block);
            let seed = rng.random::<u64>();
            // Each block of texels is independent: gather its occupied texels, shuffle them into
            // groups of four and give each group the best of the 24 assignments.
            let moves: Vec<Vec<(u32, u32)>> = (0..bx * by)
                .into_par_iter()
                .map(|b| {
                    let (cx, cy) = (b % bx, b / bx);
                    let x0 = (cx * block).saturating_sub(ox);
                    let x1 = ((cx + 1) * block).saturating_sub(ox).min(width);
                    let y0 = (cy * block).saturating_sub(oy);
                    let y1 = ((cy + 1) * block).saturating_sub(oy).min(height);
                    let mut pos: Vec<u32> = Vec::new();
                    for y in y0..y1 {
                        for x in x0..x1 {
                            let p = y * width + x;
                            if p < n {
                                pos.push(p as u32);
                            }
                        }
                    }
                    let mut rng = ChaCha8Rng::seed_from_u64(
                        seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    );
                    pos.shuffle(&mut rng);
                    let mut out = Vec::new();
                    for g in pos.chunks_exact(4) {
                        best_assignment(g, &order, features, &target, dim, &mut out);
                    }
                    out
                })
                .collect();
            for (p, s) in moves.into_iter().flatten() {
                order[p as usize] = s;
            }
        }
        progress(step + 1, steps);
    }
    order
}

const PERMS: [[usize; 4]; 24] = [
    [0, 1, 2, 3],
    [0, 1, 3, 2],
    [0, 2, 1, 3],
    [0, 2, 3, 1],
    [0, 3, 1, 2],
    [0, 3, 2, 1],
    [1, 0, 2, 3],
    [1, 0, 3, 2],
    [1, 2, 0, 3],
    [1, 2, 3, 0],
    [1, 3, 0, 2],
    [1, 3, 2, 0],
    [2, 0, 1, 3],
    [2, 0, 3, 1],
    [2, 1, 0, 3],
    [2, 1, 3, 0],
    [2, 3, 0, 1],
    [2, 3, 1, 0],
    [3, 0, 1, 2],
    [3, 0, 2, 1],
    [3, 1, 0, 2],
    [3, 1, 2, 0],
    [3, 2, 0, 1],
    [3, 2, 1, 0],
];

/// Picks the permutation of the four Gaussians at `pos` that best matches the target there;
/// pushes `(texel, gaussian)` for texels that change.
fn best_assignment(
    pos: &[u32],
    order: &[u32],
    features: &[f32],
    target: &[f32],
    dim: usize,
    out: &mut Vec<(u32, u32)>,
) {
    let s: [u32; 4] = [0, 1, 2, 3].map(|i| order[pos[i] as usize]);
    let mut cost = [[0f32; 4]; 4];
    for (a, &sa) in s.iter().enumerate() {
        let f = &features[sa as usize * dim..][..dim];
        for (b, &pb) in pos.iter().enumerate() {
            let t = &target[pb as usize * dim..][..dim];
            cost[a][b] = f.iter().zip(t).map(|(x, y)| (x - y) * (x - y)).sum();
        }
    }
    let mut best = (f32::INFINITY, 0usize);
    for (k, p) in PERMS.iter().enumerate() {
        // p[b] = which Gaussian goes to position b.
        let c = cost[p[0]][0] + cost[p[1]][1] + cost[p[2]][2] + cost[p[3]][3];
        if c < best.0 - 1e-12 {
            best = (c, k);
        }
    }
    if best.1 != 0 {
        let p = PERMS[best.1];
        for b in 0..4 {
            out.push((pos[b], s[p[b]]));
        }
    }
}

/// Box blur of radius `r` over the occupied texels (the first `n` of a `width`-wide grid);
/// empty texels carry no weight, so the padding does not pull the target towards zero.
fn box_blur(grid: &[f32], dim: usize, width: usize, n: usize, r: usize) -> Vec<f32> {
    let height = n.div_ceil(width);
    // Horizontal pass per row: sums of features and of occupancy.
    let mut hsum = vec![0f32; height * width * dim];
    let mut hcnt = vec![0f32; height * width];
    hsum.par_chunks_mut(width * dim)
        .zip(hcnt.par_chunks_mut(width))
        .enumerate()
        .for_each(|(y, (hs, hc))| {
            let row_n = n.saturating_sub(y * width).min(width);
            let mut pre = vec![0f64; (width + 1) * dim];
            for x in 0..width {
                for d in 0..dim {
                    let v = if x < row_n {
                        grid[(y * width + x) * dim + d] as f64
                    } else {
                        0.0
                    };
                    pre[(x + 1) * dim + d] = pre[x * dim + d] + v;
                }
            }
            for x in 0..width {
                let a = x.saturating_sub(r);
                let b = (x + r + 1).min(width);
                for d in 0..dim {
                    hs[x * dim + d] = (pre[b * dim + d] - pre[a * dim + d]) as f32;
                }
                hc[x] = (b.min(row_n).saturating_sub(a.min(row_n))) as f32;
            }
        });
    // Vertical pass per column, then normalise by the occupied count.
    let mut out = vec![0f32; n * dim];
    let cols: Vec<(Vec<f32>, Vec<f32>)> = (0..width)
        .into_par_iter()
        .map(|x| {
            let mut pre = vec![0f64; (height + 1) * (dim + 1)];
            for y in 0..height {
                for d in 0..dim {
                    pre[(y + 1) * (dim + 1) + d] =
                        pre[y * (dim + 1) + d] + hsum[(y * width + x) * dim + d] as f64;
                }
                pre[(y + 1) * (dim + 1) + dim] =
                    pre[y * (dim + 1) + dim] + hcnt[y * width + x] as f64;
            }
            let mut col = vec![0f32; height * dim];
            let mut cnt = vec![0f32; height];
            for y in 0..height {
                let a = y.saturating_sub(r);
                let b = (y + r + 1).min(height);
                for d in 0..=dim {
                    let v = (pre[b * (dim + 1) + d] - pre[a * (dim + 1) + d]) as f32;
                    if d < dim {
                        col[y * dim + d] = v;
                    } else {
                        cnt[y] = v;
                    }
                }
            }
            (col, cnt)
        })
        .collect();
    for (x, (col, cnt)) in cols.iter().enumerate() {
        for y in 0..height {
            let p = y * width + x;
            if p >= n {
                continue;
            }
            let c = cnt[y].max(1.0);
            for d in 0..dim {
                out[p * dim + d] = col[y * dim + d] / c;
            }
        }
    }
    out
}

/// Sum over horizontally and vertically adjacent occupied texels of the squared feature
/// difference: the quantity the sort lowers.
#[cfg(test)]
pub fn neighbour_cost(features: &[f32], dim: usize, width: usize, order: &[u32]) -> f64 {
    let n = order.len();
    let f = |p: usize| &features[order[p] as usize * dim..][..dim];
    let d = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((x - y) * (x - y)) as f64)
            .sum::<f64>()
    };
    (0..n)
        .into_par_iter()
        .map(|p| {
            let mut c = 0.0;
            if (p + 1) % width != 0 && p + 1 < n {
                c += d(f(p), f(p + 1));
            }
            if p + width < n {
                c += d(f(p), f(p + width));
            }
            c
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn morton_interleaves_bits() {
        assert_eq!(spread21(0b111), 0b1001001);
        let lo = [0.0; 3];
        let hi = [1.0; 3];
        assert!(morton_code([0.0, 0.0, 0.0], lo, hi) < morton_code([1.0, 0.0, 0.0], lo, hi));
        assert_eq!(morton_code([1.0, 1.0, 1.0], lo, hi), (1u64 << 63) - 1);
        let means = [
            [1.0, 1.0, 1.0],
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.0, 0.0, 0.0],
        ];
        assert_eq!(morton_order(&means), vec![1, 3, 2, 0]);
    }

    #[test]
    fn hilbert_curve_visits_neighbours_in_turn() {
        // On an 8x8x8 lattice consecutive Hilbert indices are always unit steps apart.
        let mut cells: Vec<(u64, [u32; 3])> = Vec::new();
        for x in 0..8 {
            for y in 0..8 {
                for z in 0..8 {
                    cells.push((hilbert_index([x, y, z], 3), [x, y, z]));
                }
            }
        }
        cells.sort_unstable();
        assert!(
            cells.iter().enumerate().all(|(i, c)| c.0 == i as u64),
            "a bijection onto 0..512"
        );
        for w in cells.windows(2) {
            let d: i64 = (0..3)
                .map(|a| (w[0].1[a] as i64 - w[1].1[a] as i64).abs())
                .sum();
            assert_eq!(d, 1, "{:?} -> {:?}", w[0].1, w[1].1);
        }
        let means = [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]];
        assert_eq!(hilbert_order(&means)[0], 1);
    }

    #[test]
    fn plas_lowers_neighbour_cost_and_keeps_a_permutation() {
        // Random 2-D colours on a 40x40 grid: sorting must make neighbours much more alike.
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 1590; // not a full grid: the last row is partial
        let feats: Vec<f32> = (0..n * 3).map(|_| rng.random::<f32>()).collect();
        let start: Vec<u32> = (0..n as u32).collect();
        let before = neighbour_cost(&feats, 3, 40, &start);
        let sorted = plas_order(
            &feats,
            3,
            40,
            start,
            &PlasOptions::default(),
            &mut |_, _| {},
        );
        let after = neighbour_cost(&feats, 3, 40, &sorted);
        let mut check = sorted.clone();
        check.sort_unstable();
        assert_eq!(check, (0..n as u32).collect::<Vec<_>>());
        assert!(after < 0.5 * before, "{before} -> {after}");
        let again = plas_order(
            &feats,
            3,
            40,
            (0..n as u32).collect(),
            &PlasOptions::default(),
            &mut |_, _| {},
        );
        assert_eq!(again, sorted, "same seed, same order");
    }
}
