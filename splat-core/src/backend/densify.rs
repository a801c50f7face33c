//! The reference densification operations that every training session repeats: clone, split
//! and prune as in 3DGS, and the periodic opacity reset. Each edits parameters and optimizer
//! state together. The CUDA kernels (splat-cuda kernels/train.cu) follow the same rules and
//! take their constants from here.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::types::{DensifyParams, DensifyReport, DensifyStats};
use crate::gaussians::{logit, sigmoid, Gaussians};
use crate::optim::Adam;

/// A split child's scales are its parent's divided by this (3DGS's 1.6).
pub const SPLIT_SCALE_DIVISOR: f32 = 1.6;

/// An opacity reset caps every opacity at this multiple of the prune threshold.
pub const OPACITY_RESET_FACTOR: f32 = 2.0;

/// The opacity logit an opacity reset caps at, for a prune threshold `prune_opacity`.
pub fn opacity_reset_cap(prune_opacity: f32) -> f32 {
    logit(OPACITY_RESET_FACTOR * prune_opacity)
}

fn quat_rotate(q: [f32; 4], v: [f32; 3]) -> [f32; 3] {
    let n = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
        .sqrt()
        .max(1e-12);
    let glam_q = glam::Quat::from_xyzw(q[1] / n, q[2] / n, q[3] / n, q[0] / n);
    (glam_q * glam::Vec3::from_array(v)).to_array()
}

fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; u1 is kept away from 0 so the log is finite.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Clones, splits and prunes (gsplat's order: clone, then split the originals, then prune), and
/// resets the statistics. `prune_large` enables the world/screen size tests (after the first
/// opacity reset).
pub fn densify(
    params: &mut Gaussians,
    adam: &mut Adam,
    stats: &mut DensifyStats,
    cfg: &DensifyParams,
    extent: f32,
    prune_large: bool,
    seed: u64,
) -> DensifyReport {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rng = &mut rng;
    let n = params.len();
    let mut report = DensifyReport::default();
    let avg: Vec<f32> = (0..n)
        .map(|i| {
            if stats.count[i] > 0 {
                stats.grad_accum[i] / stats.count[i] as f32
            } else {
                0.0
            }
        })
        .collect();
    let max_scale = |p: &Gaussians, i: usize| {
        p.log_scales[i]
            .iter()
            .cloned()
            .fold(f32::NEG_INFINITY, f32::max)
            .exp()
    };
    let split_limit = cfg.percent_dense * extent;
    let room = if cfg.max_gaussians == 0 {
        usize::MAX
    } else {
        cfg.max_gaussians.saturating_sub(n)
    };
    let mut clones = Vec::new();
    let mut splits = Vec::new();
    for i in 0..n {
        if avg[i] > cfg.grad_threshold {
            if max_scale(params, i) <= split_limit {
                clones.push(i);
            } else {
                splits.push(i);
            }
        }
    }
    // Under a cap, keep the highest gradients (a split adds one net Gaussian, like a clone).
    if clones.len() + splits.len() > room {
        let mut all: Vec<usize> = clones.iter().chain(&splits).cloned().collect();
        all.sort_by(|&a, &b| avg[b].total_cmp(&avg[a]).then(a.cmp(&b)));
        all.truncate(room);
        all.sort_unstable();
        let keep: std::collections::HashSet<usize> = all.into_iter().collect();
        clones.retain(|i| keep.contains(i));
        splits.retain(|i| keep.contains(i));
    }
    report.cloned = clones.len();
    report.split = splits.len();

    params.append_copies(&clones);
    adam.append_zeros(clones.len());

    // Split: two children sampled from the parent's Gaussian, scales / SPLIT_SCALE_DIVISOR; the
    // parent goes.
    let nsh = params.sh_coeffs() * 3;
    for &i in &splits {
        let scale = params.log_scales[i].map(f32::exp);
        let q = params.quats[i];
        for _ in 0..2 {
            let local = [0, 1, 2].map(|k| standard_normal(rng) * scale[k]);
            let off = quat_rotate(q, local);
            let m = params.means[i];
            let ls = params.log_scales[i].map(|v| v - SPLIT_SCALE_DIVISOR.ln());
            let sh: Vec<f32> = params.sh[i * nsh..(i + 1) * nsh].to_vec();
            params.push(
                [m[0] + off[0], m[1] + off[1], m[2] + off[2]],
                ls,
                q,
                params.opacity_logits[i],
                &sh,
            );
        }
    }
    adam.append_zeros(2 * splits.len());

    let total = params.len();
    let mut keep = vec![true; total];
    for &i in &splits {
        keep[i] = false;
    }
    let world_limit = cfg.prune_world_size * extent;
    for (i, k) in keep.iter_mut().enumerate() {
        if !*k {
            continue;
        }
        let mut prune = sigmoid(params.opacity_logits[i]) < cfg.prune_opacity;
        if prune_large {
            prune |= max_scale(params, i) > world_limit;
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
    params.retain_mask(&keep);
    adam.retain_mask(&keep);
    *stats = DensifyStats::new(params.len());
    report
}

/// Caps every opacity at twice the prune threshold and zeroes its optimizer moments.
pub fn reset_opacity(params: &mut Gaussians, adam: &mut Adam, prune_opacity: f32) {
    let cap = opacity_reset_cap(prune_opacity);
    params
        .opacity_logits
        .iter_mut()
        .for_each(|v| *v = v.min(cap));
    adam.reset_opacity();
}
