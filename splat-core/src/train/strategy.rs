//! Densification strategies, decided once on the host from per-Gaussian statistics and carried
//! out through the primitives of [`TrainSession`] (gather, append, compact, scatter, relocate,
//! noise). `default` is 3DGS's clone / split / prune with a budget; `mcmc` is Kheradmand et al.
//! 2024, "3D Gaussian Splatting as Markov Chain Monte Carlo" (relocation with the paper's
//! opacity and scale correction, growth to a cap, position noise). A session with a fused
//! densification ([`TrainSession::fuses_densify`]) runs the default strategy in one step that
//! must agree with [`densify_default`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::backend::densify::{rotate, standard_normal_sample, SPLIT_SCALE_DIVISOR};
use crate::backend::{BackendError, DensifyParams, DensifyReport, TrainSession};
use crate::gaussians::{logit, sigmoid};

/// The candidates (indices) a budget of `room` keeps: the highest mean gradient x opacity,
/// ties to the lower index, returned in index order. The one selection rule of the default
/// strategy, also used by the CUDA session's fused step.
pub fn select_within_budget(
    candidates: &[usize],
    avg_grad: &[f32],
    opacity_logits: &[f32],
    room: usize,
) -> Vec<usize> {
    if candidates.len() <= room {
        return candidates.to_vec();
    }
    let score = |i: usize| avg_grad[i] * sigmoid(opacity_logits[i]);
    let mut all = candidates.to_vec();
    all.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
    all.truncate(room);
    all.sort_unstable();
    all
}

fn max_scale(ls: &[f32; 3]) -> f32 {
    ls.iter().cloned().fold(f32::NEG_INFINITY, f32::max).exp()
}

/// 3DGS's densification through the session primitives (gsplat's order: clone, then split the
/// originals, then prune), then zeroed statistics. `prune_large` enables the world/screen size
/// tests (after the first opacity reset). Never grows past `cfg.max_gaussians`.
pub fn densify_default<S: TrainSession + ?Sized>(
    s: &mut S,
    cfg: &DensifyParams,
    extent: f32,
    prune_large: bool,
    seed: u64,
) -> Result<DensifyReport, BackendError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let inp = s.strategy_inputs()?;
    let n = inp.opacity_logits.len();
    let stats = &inp.stats;
    let avg: Vec<f32> = (0..n)
        .map(|i| {
            if stats.count[i] > 0 {
                stats.grad_accum[i] / stats.count[i] as f32
            } else {
                0.0
            }
        })
        .collect();
    let split_limit = cfg.percent_dense * extent;
    let room = if cfg.max_gaussians == 0 {
        usize::MAX
    } else {
        cfg.max_gaussians.saturating_sub(n)
    };
    let candidates: Vec<usize> = (0..n).filter(|&i| avg[i] > cfg.grad_threshold).collect();
    // A split adds one net Gaussian, like a clone.
    let chosen = select_within_budget(&candidates, &avg, &inp.opacity_logits, room);
    let (clones, splits): (Vec<usize>, Vec<usize>) = chosen
        .iter()
        .partition(|&&i| max_scale(&inp.log_scales[i]) <= split_limit);
    let mut report = DensifyReport {
        cloned: clones.len(),
        split: splits.len(),
        ..Default::default()
    };

    // New Gaussians: the clones (exact copies), then two children per split sampled from the
    // parent's Gaussian with scales / SPLIT_SCALE_DIVISOR.
    let mut new = s.gather(&clones)?;
    let parents = s.gather(&splits)?;
    let nsh = parents.sh_coeffs() * 3;
    for j in 0..parents.len() {
        let scale = parents.log_scales[j].map(f32::exp);
        let q = parents.quats[j];
        for _ in 0..2 {
            let local = [0, 1, 2].map(|k| standard_normal_sample(&mut rng) * scale[k]);
            let off = rotate(q, local);
            let m = parents.means[j];
            let ls = parents.log_scales[j].map(|v| v - SPLIT_SCALE_DIVISOR.ln());
            new.push(
                [m[0] + off[0], m[1] + off[1], m[2] + off[2]],
                ls,
                q,
                parents.opacity_logits[j],
                &parents.sh[j * nsh..(j + 1) * nsh],
            );
        }
    }
    s.append(&new)?;

    let total = n + new.len();
    let mut keep = vec![true; total];
    for &i in &splits {
        keep[i] = false;
    }
    let world_limit = cfg.prune_world_size * extent;
    let opacity_of = |i: usize| {
        if i < n {
            inp.opacity_logits[i]
        } else {
            new.opacity_logits[i - n]
        }
    };
    let scales_of = |i: usize| {
        if i < n {
            inp.log_scales[i]
        } else {
            new.log_scales[i - n]
        }
    };
    for (i, k) in keep.iter_mut().enumerate() {
        if !*k {
            continue;
        }
        let mut prune = sigmoid(opacity_of(i)) < cfg.prune_opacity;
        if prune_large {
            prune |= max_scale(&scales_of(i)) > world_limit;
            if cfg.prune_screen_size > 0 && i < n {
                prune |= stats.max_radius[i] > cfg.prune_screen_size;
            }
        }
        if prune {
            *k = false;
            report.pruned += 1;
        }
    }
    // Never prune everything: an empty scene cannot recover.
    if keep.iter().all(|k| !k) {
        keep.iter_mut().for_each(|k| *k = true);
        report.pruned = 0;
    }
    s.compact(&keep)?;
    s.reset_stats()?;
    Ok(report)
}

/// Most copies one relocation correction accounts for (gsplat's binomial table size).
pub const RELOCATION_MAX_COPIES: usize = 51;

/// The paper's correction when a Gaussian of opacity `opacity` is shared by `copies` Gaussians
/// at the same place (itself included): the new opacity `1 - (1 - o)^(1/N)` (clamped to
/// [`min_opacity`, 1 - eps]) and the factor on its scales, `o / sum_{i=1..N} sum_{k=0..i-1}
/// C(i-1, k) (-1)^k o_new^(k+1) / sqrt(k+1)` (Eq. 9), so that the copies together render as the
/// one did. Computed in f64: the alternating sum cancels heavily for many copies.
pub fn relocation_correction(opacity: f32, copies: usize, min_opacity: f32) -> (f32, f32) {
    let n = copies.clamp(1, RELOCATION_MAX_COPIES);
    let o = opacity as f64;
    let o_new =
        (1.0 - (1.0 - o).powf(1.0 / n as f64)).clamp(min_opacity as f64, 1.0 - f32::EPSILON as f64);
    let mut denom = 0.0f64;
    for i in 1..=n {
        // C(i-1, k) built incrementally.
        let mut c = 1.0f64;
        for k in 0..i {
            if k > 0 {
                c = c * (i - k) as f64 / k as f64;
            }
            let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
            denom += c * sign * o_new.powi(k as i32 + 1) / ((k + 1) as f64).sqrt();
        }
    }
    let factor = if denom > 0.0 { o / denom } else { 1.0 };
    (o_new as f32, factor as f32)
}

/// MCMC's refinement settings, as plain data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct McmcParams {
    /// Dead at or below this opacity; relocated opacities are clamped at or above it.
    pub min_opacity: f32,
    /// Growth per refinement, a fraction of the count.
    pub growth: f32,
    /// The cap growth stops at.
    pub max_gaussians: usize,
}

/// `k` draws with replacement from `weights` (proportional; uniform if they sum to zero).
fn sample_weighted(weights: &[f32], k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(weights.len());
    let mut acc = 0.0f64;
    for &w in weights {
        acc += w.max(0.0) as f64;
        cdf.push(acc);
    }
    (0..k)
        .map(|_| {
            if acc <= 0.0 {
                return rng.random_range(0..weights.len());
            }
            let u = rng.random::<f64>() * acc;
            cdf.partition_point(|&c| c <= u).min(weights.len() - 1)
        })
        .collect()
}

/// For each sampled source, how many copies will share it (times sampled + 1).
fn copies_of(sampled: &[usize], n: usize) -> Vec<usize> {
    let mut count = vec![0usize; n];
    sampled.iter().for_each(|&i| count[i] += 1);
    sampled.iter().map(|&i| count[i] + 1).collect()
}

/// One MCMC refinement: dead Gaussians move onto live ones drawn in proportion to opacity,
/// then the count grows by `growth` (up to the cap) with new Gaussians drawn the same way;
/// each source and its copies share its opacity and scale through [`relocation_correction`].
pub fn mcmc_refine<S: TrainSession + ?Sized>(
    s: &mut S,
    p: &McmcParams,
    seed: u64,
) -> Result<DensifyReport, BackendError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let inp = s.strategy_inputs()?;
    let n = inp.opacity_logits.len();
    let mut report = DensifyReport::default();
    if n == 0 {
        return Ok(report);
    }
    let mut opac: Vec<f32> = inp.opacity_logits.iter().map(|&l| sigmoid(l)).collect();
    let mut log_scales = inp.log_scales;
    let corrected = |src: &[usize], opac: &[f32], ls: &[[f32; 3]], n: usize| {
        let copies = copies_of(src, n);
        let mut ol = Vec::with_capacity(src.len());
        let mut sl = Vec::with_capacity(src.len());
        for (&i, &c) in src.iter().zip(&copies) {
            let (o, f) = relocation_correction(opac[i], c, p.min_opacity);
            ol.push(logit(o));
            sl.push(ls[i].map(|v| v + f.ln()));
        }
        (ol, sl)
    };

    let dead: Vec<usize> = (0..n).filter(|&i| opac[i] <= p.min_opacity).collect();
    let alive: Vec<usize> = (0..n).filter(|&i| opac[i] > p.min_opacity).collect();
    if !dead.is_empty() && !alive.is_empty() {
        let w: Vec<f32> = alive.iter().map(|&i| opac[i]).collect();
        let src: Vec<usize> = sample_weighted(&w, dead.len(), &mut rng)
            .into_iter()
            .map(|j| alive[j])
            .collect();
        let (ol, sl) = corrected(&src, &opac, &log_scales, n);
        s.relocate(&dead, &src, &ol, &sl)?;
        for j in 0..src.len() {
            for i in [src[j], dead[j]] {
                opac[i] = sigmoid(ol[j]);
                log_scales[i] = sl[j];
            }
        }
        report.relocated = dead.len();
    }

    let target = ((n as f64 * (1.0 + p.growth as f64)) as usize).min(p.max_gaussians);
    let add = target.saturating_sub(n);
    if add > 0 {
        let src = sample_weighted(&opac, add, &mut rng);
        let (ol, sl) = corrected(&src, &opac, &log_scales, n);
        let mut g = s.gather(&src)?;
        g.opacity_logits.copy_from_slice(&ol);
        g.log_scales.copy_from_slice(&sl);
        s.scatter(&src, &g)?;
        s.append(&g)?;
        report.added = add;
    }
    Ok(report)
}
