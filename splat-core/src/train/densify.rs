//! Adaptive density control as in 3DGS: clone small Gaussians and split large ones where the
//! view-space positional gradient is high, prune transparent and oversized ones, and reset
//! opacities periodically. The policy is [`super::strategy::densify_default`], run through a
//! session's primitives; [`densify`] runs it on host state (the reference device sessions are
//! checked against). The trainer converts its configuration into [`DensifyParams`] here.

pub use crate::backend::densify::reset_opacity;
pub use crate::backend::types::{DensifyParams, DensifyReport, DensifyStats};

use super::config::DensifyConfig;
use crate::backend::{CpuSession, SessionState};
use crate::gaussians::Gaussians;
use crate::optim::Adam;

/// The default strategy on host state: clone, split and prune, then zeroed statistics.
pub fn densify(
    params: &mut Gaussians,
    adam: &mut Adam,
    stats: &mut DensifyStats,
    cfg: &DensifyParams,
    extent: f32,
    prune_large: bool,
    seed: u64,
) -> DensifyReport {
    let state = SessionState {
        params: std::mem::replace(params, Gaussians::empty(params.sh_degree)),
        adam: adam.clone(),
        stats: std::mem::take(stats),
    };
    let fallback = state.clone();
    let (st, report) = match CpuSession::new(state) {
        Ok(mut s) => match super::strategy::densify_default(&mut s, cfg, extent, prune_large, seed)
        {
            Ok(r) => (s.into_state(), r),
            Err(_) => (fallback, DensifyReport::default()),
        },
        // Arrays out of step: left as they were (the trainer refuses such state earlier).
        Err(_) => (fallback, DensifyReport::default()),
    };
    *params = st.params;
    *adam = st.adam;
    *stats = st.stats;
    report
}

impl From<&DensifyConfig> for DensifyParams {
    fn from(c: &DensifyConfig) -> Self {
        Self {
            grad_threshold: c.grad_threshold,
            percent_dense: c.percent_dense,
            prune_opacity: c.prune_opacity,
            prune_world_size: c.prune_world_size,
            prune_screen_size: c.prune_screen_size,
            max_gaussians: c.max_gaussians,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gaussians::{logit, sigmoid, Gaussians};
    use crate::optim::Adam;

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
        let cfg = DensifyParams::from(&DensifyConfig::default());
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
        let cfg = DensifyParams::from(&DensifyConfig {
            max_gaussians: 6,
            ..Default::default()
        });
        let r = densify(&mut g, &mut adam, &mut stats, &cfg, 1.0, false, 0);
        // Room for one: the higher gradient (the split) wins.
        assert_eq!((r.cloned, r.split), (0, 1));
    }
}
