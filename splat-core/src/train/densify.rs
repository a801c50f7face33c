//! Adaptive density control as in 3DGS: clone small Gaussians and split large ones where the
//! view-space positional gradient is high, prune transparent and oversized ones, and reset
//! opacities periodically. Every operation edits parameters and optimizer state together.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::DensifyConfig;
use crate::gaussians::{logit, sigmoid, Gaussians};
use crate::optim::Adam;

/// Per-Gaussian statistics gathered between densification steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DensifyStats {
    /// Sum of NDC-space positional gradient norms over the steps a Gaussian was visible.
    pub grad_accum: Vec<f32>,
    /// Steps a Gaussian was visible.
    pub count: Vec<u32>,
    /// Largest screen radius seen, in pixels.
    pub max_radius: Vec<u32>,
}

impl DensifyStats {
    /// Zeroed statistics for `n` Gaussians.
    pub fn new(n: usize) -> Self {
        Self {
            grad_accum: vec![0.0; n],
            count: vec![0; n],
            max_radius: vec![0; n],
        }
    }

    /// Adds one step: `means2d_grad` in pixels, converted to NDC with the working size.
    pub fn accumulate(
        &mut self,
        means2d_grad: &[[f32; 2]],
        radii: &[u32],
        width: u32,
        height: u32,
    ) {
        let (sx, sy) = (width as f32 * 0.5, height as f32 * 0.5);
        for (i, (g, &r)) in means2d_grad.iter().zip(radii).enumerate() {
            if r == 0 {
                continue;
            }
            let (gx, gy) = (g[0] * sx, g[1] * sy);
            self.grad_accum[i] += (gx * gx + gy * gy).sqrt();
            self.count[i] += 1;
            self.max_radius[i] = self.max_radius[i].max(r);
        }
    }

    /// Number of Gaussians tracked.
    pub fn len(&self) -> usize {
        self.count.len()
    }

    /// Whether no Gaussians are tracked.
    pub fn is_empty(&self) -> bool {
        self.count.is_empty()
    }
}

/// What one densification step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DensifyReport {
    /// Gaussians cloned.
    pub cloned: usize,
    /// Gaussians split (each replaced by two).
    pub split: usize,
    /// Gaussians pruned.
    pub pruned: usize,
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
    cfg: &DensifyConfig,
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

    // Split: two children sampled from the parent's Gaussian, scales / 1.6; the parent goes.
    let nsh = params.sh_coeffs() * 3;
    for &i in &splits {
        let scale = params.log_scales[i].map(f32::exp);
        let q = params.quats[i];
        for _ in 0..2 {
            let local = [0, 1, 2].map(|k| standard_normal(rng) * scale[k]);
            let off = quat_rotate(q, local);
            let m = params.means[i];
            let ls = params.log_scales[i].map(|v| v - 1.6f32.ln());
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
    let cap = logit(2.0 * prune_opacity);
    params
        .opacity_logits
        .iter_mut()
        .for_each(|v| *v = v.min(cap));
    adam.reset_opacity();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene() -> Gaussians {
        let mut g = Gaussians::empty(1);
        let sh = [0.1f32; 12];
        // 0: small, high gradient -> clone; 1: large, high gradient -> split;
        // 2: transparent -> prune; 3: untouched; 4: huge -> pruned when large pruning is on.
        g.push(
            [0.0; 3],
            [(0.001f32).ln(); 3],
            [1.0, 0.0, 0.0, 0.0],
            0.0,
            &sh,
        );
        g.push(
            [1.0; 3],
            [(0.5f32).ln(), (0.1f32).ln(), (0.1f32).ln()],
            [0.9, 0.1, 0.0, 0.2],
            0.5,
            &sh,
        );
        g.push(
            [2.0; 3],
            [(0.01f32).ln(); 3],
            [1.0, 0.0, 0.0, 0.0],
            logit(0.001),
            &sh,
        );
        g.push(
            [3.0; 3],
            [(0.01f32).ln(); 3],
            [1.0, 0.0, 0.0, 0.0],
            1.0,
            &sh,
        );
        g.push([4.0; 3], [(5.0f32).ln(); 3], [1.0, 0.0, 0.0, 0.0], 1.0, &sh);
        g
    }

    #[test]
    fn clone_split_prune_keep_every_array_in_step() {
        let mut g = scene();
        let mut adam = Adam::new(&g);
        adam.m.opacity_logits = vec![1.0, 2.0, 3.0, 4.0, 5.0];
        let mut stats = DensifyStats::new(5);
        stats.accumulate(
            &[[1e-3, 0.0], [1e-3, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
            &[3, 3, 3, 3, 3],
            200,
            200,
        );
        let cfg = DensifyConfig::default();
        let r = densify(&mut g, &mut adam, &mut stats, &cfg, 10.0, true, 0);
        assert_eq!((r.cloned, r.split, r.pruned), (1, 1, 2));
        // 5 + 1 clone + 2 children - 1 parent - 2 pruned (transparent, huge).
        assert_eq!(g.len(), 5);
        g.check_lengths().unwrap();
        adam.m.check_lengths().unwrap();
        adam.v.check_lengths().unwrap();
        assert_eq!(adam.m.len(), g.len());
        assert_eq!(stats.len(), g.len());
        // Survivors keep their state in order; new Gaussians start with zero moments.
        assert_eq!(adam.m.opacity_logits, vec![1.0, 4.0, 0.0, 0.0, 0.0]);
        // The clone is an exact copy; the children are smaller by 1.6 and near the parent.
        assert_eq!(g.means[2], [0.0; 3]);
        for c in 3..5 {
            assert!((g.log_scales[c][0] - ((0.5f32).ln() - 1.6f32.ln())).abs() < 1e-6);
            assert!(g.means[c].iter().all(|v| (v - 1.0).abs() < 3.0));
        }
    }

    #[test]
    fn opacity_reset_caps_and_clears_moments() {
        let mut g = scene();
        let mut adam = Adam::new(&g);
        adam.v.opacity_logits = vec![1.0; 5];
        reset_opacity(&mut g, &mut adam, 0.005);
        assert!(g.opacity_logits.iter().all(|&v| sigmoid(v) <= 0.01 + 1e-6));
        assert_eq!(g.opacity_logits[2], logit(0.001));
        assert!(adam.v.opacity_logits.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn cap_limits_growth() {
        let mut g = scene();
        let mut adam = Adam::new(&g);
        let mut stats = DensifyStats::new(5);
        stats.accumulate(
            &[[1e-3, 0.0], [2e-3, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
            &[3; 5],
            200,
            200,
        );
        let cfg = DensifyConfig {
            max_gaussians: 6,
            ..Default::default()
        };
        let r = densify(&mut g, &mut adam, &mut stats, &cfg, 1.0, false, 0);
        // Room for one: the higher gradient (the split) wins.
        assert_eq!((r.cloned, r.split), (0, 1));
    }
}
