//! Scalar quantisers of the SOG format: symmetric-log 16-bit positions, smallest-three quaternions,
//! and the 256-entry 1-D codebooks for scales, DC colour and SH values. All round to nearest.

use std::f64::consts::SQRT_2;

/// Symmetric log used for positions: sign(v)·ln(1+|v|).
pub fn log_transform(v: f64) -> f64 {
    v.signum() * v.abs().ln_1p()
}

/// Inverse of [`log_transform`].
pub fn inv_log_transform(n: f64) -> f64 {
    n.signum() * n.abs().exp_m1()
}

/// Quantises `v` in `[lo, hi]` to `0..=levels` by rounding; a zero-width range maps to 0.
#[inline]
pub fn quantize_range(v: f64, lo: f64, hi: f64, levels: u32) -> u32 {
    let span = hi - lo;
    if span <= 0.0 || !span.is_finite() {
        return 0;
    }
    let t = ((v - lo) / span * levels as f64).round();
    t.clamp(0.0, levels as f64) as u32
}

/// Inverse of [`quantize_range`] as readers implement it (a zero span counts as 1).
#[inline]
pub fn dequantize_range(q: u32, lo: f64, hi: f64, levels: u32) -> f64 {
    let span = hi - lo;
    let span = if span == 0.0 { 1.0 } else { span };
    lo + span * (q as f64 / levels as f64)
}

/// Packs a (w, x, y, z) quaternion as smallest-three: RGB = the other three components scaled
/// to bytes, A = 252 + index of the largest component. Zero or non-finite input packs identity.
pub fn pack_quat(q: [f32; 4]) -> [u8; 4] {
    let q = q.map(|v| v as f64);
    let norm = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return [128, 128, 128, 252];
    }
    let mut q = q.map(|v| v / norm);
    let mut m = 0;
    for i in 1..4 {
        if q[i].abs() > q[m].abs() {
            m = i;
        }
    }
    if q[m] < 0.0 {
        q = q.map(|v| -v);
    }
    let mut out = [0u8; 4];
    let mut j = 0;
    for (i, &v) in q.iter().enumerate() {
        if i == m {
            continue;
        }
        let b = ((v * SQRT_2 * 0.5 + 0.5) * 255.0).round().clamp(0.0, 255.0);
        out[j] = b as u8;
        j += 1;
    }
    out[3] = 252 + m as u8;
    out
}

/// Unpacks smallest-three bytes to a unit (w, x, y, z) quaternion; `None` for an invalid tag.
pub fn unpack_quat(t: [u8; 4]) -> Option<[f32; 4]> {
    if t[3] < 252 {
        return None;
    }
    let m = (t[3] - 252) as usize;
    let mut q = [0f64; 4];
    let mut j = 0;
    let mut ss = 0.0;
    for (i, qi) in q.iter_mut().enumerate() {
        if i == m {
            continue;
        }
        let c = (t[j] as f64 / 255.0 * 2.0 - 1.0) / SQRT_2;
        *qi = c;
        ss += c * c;
        j += 1;
    }
    q[m] = (1.0 - ss).max(0.0).sqrt();
    Some(q.map(|v| v as f32))
}

/// A sorted 256-entry codebook and the index of each input value's nearest entry.
#[derive(Clone, Debug)]
pub struct Codebook {
    /// 256 ascending values (unused slots repeat the last value).
    pub values: Vec<f32>,
}

/// Exponent of a histogram bin's count in its weight when codebooks are fitted.
const TAIL_EXPONENT: f64 = 0.75;

/// Number of codebook entries in SOG v2.
pub const CODEBOOK_SIZE: usize = 256;

impl Codebook {
    /// Index of the entry nearest to `v` (binary search on midpoints).
    #[inline]
    pub fn index(&self, v: f32) -> u8 {
        let cb = &self.values;
        // First entry whose upper midpoint is not below v.
        let (mut lo, mut hi) = (0usize, cb.len() - 1);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let boundary = 0.5 * (cb[mid] as f64 + cb[mid + 1] as f64);
            if (v as f64) <= boundary {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo as u8
    }
}

/// Builds a 256-entry codebook minimising the weighted squared error of `values`:
/// exact when there are at most 256 distinct values, otherwise an optimal partition (dynamic
/// programming) of up to `BINS` fine histogram bins into 256 groups.
pub fn build_codebook(values: &[f32], weights: Option<&[f32]>) -> Codebook {
    const BINS: usize = 4096;
    let mut pairs: Vec<(f32, f64)> = match weights {
        Some(w) => values
            .iter()
            .zip(w)
            .filter(|(_, &w)| w > 0.0)
            .map(|(&v, &w)| (v, w as f64))
            .collect(),
        None => values.iter().map(|&v| (v, 1.0)).collect(),
    };
    if pairs.is_empty() {
        return Codebook {
            values: vec![0.0; CODEBOOK_SIZE],
        };
    }
    {
        use rayon::slice::ParallelSliceMut;
        pairs.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    }
    // Collapse equal values.
    let mut distinct: Vec<(f32, f64)> = Vec::new();
    for (v, w) in pairs {
        match distinct.last_mut() {
            Some(last) if last.0 == v => last.1 += w,
            _ => distinct.push((v, w)),
        }
    }
    if distinct.len() <= CODEBOOK_SIZE {
        let mut cb: Vec<f32> = distinct.iter().map(|d| d.0).collect();
        let last = *cb.last().unwrap_or(&0.0);
        cb.resize(CODEBOOK_SIZE, last);
        return Codebook { values: cb };
    }
    // Bins: the union of quantile edges (resolution where the mass is) and uniform edges (no bin
    // wider than range/BINS·2, so sparse tails such as the few largest Gaussians keep bins of
    // their own instead of being merged into one wide last quantile).
    let lo = distinct[0].0 as f64;
    let hi = distinct[distinct.len() - 1].0 as f64;
    let total_w: f64 = distinct.iter().map(|d| d.1).sum();
    let half = BINS / 2;
    let mut edges = Vec::with_capacity(BINS);
    {
        let mut cum = 0.0;
        let mut k = 0usize;
        for b in 1..half {
            let target = total_w * b as f64 / half as f64;
            while k < distinct.len() - 1 && cum + distinct[k].1 < target {
                cum += distinct[k].1;
                k += 1;
            }
            edges.push(distinct[k].0 as f64);
            edges.push(lo + (hi - lo) * b as f64 / half as f64);
        }
    }
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    // Per-bin weighted sums, centred on the mean to keep the f64 prefix sums accurate.
    let centre = distinct.iter().map(|d| d.0 as f64 * d.1).sum::<f64>() / total_w;
    let mut bins: Vec<[f64; 3]> = Vec::with_capacity(BINS);
    let mut e = 0usize;
    let mut cur = [0.0f64; 3];
    for &(v, w) in &distinct {
        let v = v as f64;
        while e < edges.len() && v > edges[e] {
            if cur[0] > 0.0 {
                bins.push(cur);
                cur = [0.0; 3];
            }
            e += 1;
        }
        let x = v - centre;
        cur[0] += w;
        cur[1] += w * x;
        cur[2] += w * x * x;
    }
    if cur[0] > 0.0 {
        bins.push(cur);
    }
    // Each bin's weight grows as count^0.75 rather than count: a little MSE (0.1 % on trained
    // scenes) buys centroids spread further into the tails, fewer distinct busy indices and
    // smaller WebP files (splat-transform uses count^0.5).
    for b in bins.iter_mut() {
        let f = b[0].powf(TAIL_EXPONENT - 1.0);
        b[0] *= f;
        b[1] *= f;
        b[2] *= f;
    }
    let groups = optimal_partition(&bins, CODEBOOK_SIZE);
    let mut cb: Vec<f32> = groups
        .iter()
        .map(|&(a, b)| {
            let (w, s) = bins[a..b]
                .iter()
                .fold((0.0, 0.0), |acc, x| (acc.0 + x[0], acc.1 + x[1]));
            (s / w + centre) as f32
        })
        .collect();
    cb.sort_by(f32::total_cmp);
    let last = *cb.last().unwrap_or(&0.0);
    cb.resize(CODEBOOK_SIZE, last);
    Codebook { values: cb }
}

/// Splits `bins` (weight, weighted sum, weighted sum of squares) into at most `k` contiguous
/// groups minimising the total within-group squared error; returns half-open bin ranges.
/// Divide-and-conquer DP: the optimal split point is monotone for this cost.
fn optimal_partition(bins: &[[f64; 3]], k: usize) -> Vec<(usize, usize)> {
    let n = bins.len();
    if n <= k {
        return (0..n).map(|i| (i, i + 1)).collect();
    }
    let mut pw = vec![0.0f64; n + 1];
    let mut ps = vec![0.0f64; n + 1];
    let mut pq = vec![0.0f64; n + 1];
    for i in 0..n {
        pw[i + 1] = pw[i] + bins[i][0];
        ps[i + 1] = ps[i] + bins[i][1];
        pq[i + 1] = pq[i] + bins[i][2];
    }
    let cost = |a: usize, b: usize| -> f64 {
        let w = pw[b] - pw[a];
        if w <= 0.0 {
            return 0.0;
        }
        let s = ps[b] - ps[a];
        (pq[b] - pq[a] - s * s / w).max(0.0)
    };
    // prev[j] = best cost of the first j bins in g groups; arg[g][j] = start of the last group.
    let mut prev: Vec<f64> = (0..=n).map(|j| cost(0, j)).collect();
    let mut args: Vec<Vec<u32>> = Vec::with_capacity(k);
    args.push(vec![0; n + 1]);
    for _g in 1..k {
        let mut cur = vec![f64::INFINITY; n + 1];
        let mut arg = vec![0u32; n + 1];
        // Solve cur[j] for j in [lo, hi] knowing the argmin lies in [olo, ohi].
        let mut stack = vec![(1usize, n, 0usize, n)];
        while let Some((lo, hi, olo, ohi)) = stack.pop() {
            if lo > hi {
                continue;
            }
            let mid = (lo + hi) / 2;
            let mut best = (f64::INFINITY, olo);
            for i in olo..=ohi.min(mid) {
                let c = prev[i] + cost(i, mid);
                if c < best.0 {
                    best = (c, i);
                }
            }
            cur[mid] = best.0;
            arg[mid] = best.1 as u32;
            if mid > lo {
                stack.push((lo, mid - 1, olo, best.1));
            }
            stack.push((mid + 1, hi, best.1, ohi));
        }
        cur[0] = 0.0;
        prev = cur;
        args.push(arg);
    }
    let mut groups = Vec::with_capacity(k);
    let mut j = n;
    for g in (0..k).rev() {
        if j == 0 {
            break;
        }
        let i = if g == 0 { 0 } else { args[g][j] as usize };
        if i < j {
            groups.push((i, j));
        }
        j = i;
    }
    groups.reverse();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quaternions_round_trip_within_a_step() {
        let qs = [
            [1.0, 0.0, 0.0, 0.0],
            [0.1, -0.9, 0.3, 0.2],
            [-0.5, 0.5, -0.5, 0.5],
            [0.0, 0.0, 0.0, -2.0],
            [0.3, 0.2, -0.1, -0.7],
        ];
        for q in qs {
            let n = (q.iter().map(|v: &f32| v * v).sum::<f32>()).sqrt();
            let u = q.map(|v| v / n);
            let d = unpack_quat(pack_quat(q)).unwrap();
            // Same rotation: |<u, d>| close to 1.
            let dot: f32 = u.iter().zip(&d).map(|(a, b)| a * b).sum();
            assert!(dot.abs() > 0.9999, "{q:?} -> {d:?}");
        }
        assert_eq!(pack_quat([0.0; 4])[3], 252);
        assert!(unpack_quat([1, 2, 3, 251]).is_none());
    }

    #[test]
    fn codebook_is_exact_for_few_values_and_optimal_ish_for_many() {
        let few: Vec<f32> = (0..1000).map(|i| (i % 17) as f32 * 0.5).collect();
        let cb = build_codebook(&few, None);
        for &v in &few {
            assert_eq!(cb.values[cb.index(v) as usize], v);
        }
        assert!(cb.values.windows(2).all(|w| w[0] <= w[1]));

        // Normal-ish data plus far outliers: every value within a small step, outliers kept.
        let mut s = 12345u64;
        let mut many: Vec<f32> = (0..100_000)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32;
                (u - 0.5) * 4.0
            })
            .collect();
        many.extend([50.0, -80.0]);
        let cb = build_codebook(&many, None);
        assert!(cb.values.windows(2).all(|w| w[0] <= w[1]));
        let max_err = many
            .iter()
            .map(|&v| (cb.values[cb.index(v) as usize] - v).abs())
            .fold(0.0f32, f32::max);
        // 4.0 spread over ~254 centroids: uniform step 0.016, so half a step is about 0.008.
        let inlier_err = many[..100_000]
            .iter()
            .map(|&v| (cb.values[cb.index(v) as usize] - v).abs())
            .fold(0.0f32, f32::max);
        assert!(inlier_err < 0.012, "{inlier_err}");
        assert!(
            max_err < 0.012,
            "outliers must get their own entries: {max_err}"
        );
    }

    #[test]
    fn nearest_index_picks_the_closer_neighbour() {
        let mut v: Vec<f32> = (0..256).map(|i| i as f32).collect();
        v[255] = 1000.0;
        let cb = Codebook { values: v };
        assert_eq!(cb.index(-5.0), 0);
        assert_eq!(cb.index(3.4), 3);
        assert_eq!(cb.index(3.6), 4);
        assert_eq!(cb.index(600.0), 254);
        assert_eq!(cb.index(700.0), 255);
    }

    #[test]
    fn range_quantiser_rounds() {
        assert_eq!(quantize_range(0.5, 0.0, 1.0, 65535), 32768);
        assert_eq!(quantize_range(-1.0, 0.0, 1.0, 255), 0);
        assert_eq!(quantize_range(3.0, 3.0, 3.0, 255), 0);
        assert_eq!(dequantize_range(0, 3.0, 3.0, 255), 3.0);
        for v in [-20.0, -0.3, 0.0, 1e-4, 7.5] {
            assert!((inv_log_transform(log_transform(v)) - v).abs() < 1e-12);
        }
    }
}
