//! Training schedules, each a pure function of the iteration so they can be tested alone.

use super::config::{ProgressiveConfig, TrainConfig};

/// Log-linear interpolation from `start` to `end` as `t` goes from 0 to 1 (clamped).
pub fn log_lerp(start: f32, end: f32, t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    (start.ln() * (1.0 - t) + end.ln() * t).exp()
}

/// Position learning rate (before the extent factor) at `iter`: constant until `decay_start`,
/// then log-linear to the final rate at `total`.
pub fn position_lr(cfg: &TrainConfig, iter: usize, decay_start: usize, total: usize) -> f32 {
    if iter <= decay_start || total <= decay_start {
        return cfg.lr.means;
    }
    log_lerp(
        cfg.lr.means,
        cfg.lr.means_final,
        (iter - decay_start) as f32 / (total - decay_start) as f32,
    )
}

/// Active SH degree at `iter`.
pub fn sh_degree(cfg: &TrainConfig, iter: usize) -> usize {
    (iter / cfg.sh_degree_interval).min(cfg.sh_degree)
}

/// Iteration at which progressive training reaches full size.
pub fn ramp_end(cfg: &TrainConfig) -> usize {
    if !cfg.progressive.enabled {
        return 0;
    }
    ((cfg.progressive.ramp_fraction * cfg.iterations as f32) as usize).min(cfg.densify.until)
}

/// Size factor at `iter` on the cosine ramp, changed only at densification boundaries.
pub fn resolution_scale(cfg: &TrainConfig, iter: usize) -> f32 {
    let p: &ProgressiveConfig = &cfg.progressive;
    let end = ramp_end(cfg);
    if !p.enabled || end == 0 {
        return 1.0;
    }
    let step = iter - iter % cfg.densify.interval;
    if step >= end {
        return 1.0;
    }
    let t = step as f32 / end as f32;
    1.0 + 0.5 * (p.start_scale - 1.0) * (1.0 + (std::f32::consts::PI * t).cos())
}

/// Working image size for a full size of `width` x `height` at scale `s` (whole pixels, >= 1).
pub fn working_size(width: u32, height: u32, s: f32) -> (u32, u32) {
    if s >= 1.0 {
        return (width, height);
    }
    (
        ((width as f32 * s).round() as u32).max(1),
        ((height as f32 * s).round() as u32).max(1),
    )
}

/// Ground-truth blur sigma (working pixels) at `iter`: falls with the resolution ramp.
pub fn blur_sigma(cfg: &TrainConfig, iter: usize) -> f32 {
    if !cfg.progressive.blur {
        return 0.0;
    }
    let s = if cfg.progressive.enabled {
        resolution_scale(cfg, iter)
    } else {
        // Without the resolution ramp the blur follows the same cosine on its own.
        let mut c = cfg.clone();
        c.progressive.enabled = true;
        resolution_scale(&c, iter)
    };
    let start = cfg.progressive.start_scale;
    if start >= 1.0 {
        return 0.0;
    }
    cfg.progressive.blur_start_sigma * (1.0 - s) / (1.0 - start)
}

/// What the plateau monitor asks the trainer to do after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PlateauAction {
    /// Keep going.
    Continue,
    /// First plateau: drop the position learning rate to its final value.
    DropPositionLr,
    /// Second plateau: stop.
    Stop,
    /// The target PSNR was reached: stop.
    TargetReached,
}

/// The PSNR-plateau rule: a plateau is when the best value improved by less than
/// `min_improvement` over the last `patience` checks.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlateauMonitor {
    /// Monitor PSNR of the eligible checks since the last plateau.
    pub history: Vec<f32>,
    /// Plateaus seen so far.
    pub plateaus: usize,
}

impl PlateauMonitor {
    /// Records a check; `eligible` is false before full size and the end of densification,
    /// when values are not comparable.
    pub fn check(
        &mut self,
        psnr: f32,
        eligible: bool,
        min_improvement: f32,
        patience: usize,
        target: Option<f32>,
        plateau_enabled: bool,
    ) -> PlateauAction {
        if let Some(t) = target {
            if psnr >= t {
                return PlateauAction::TargetReached;
            }
        }
        if !plateau_enabled || !eligible {
            return PlateauAction::Continue;
        }
        self.history.push(psnr);
        let n = self.history.len();
        if n <= patience {
            return PlateauAction::Continue;
        }
        let best_before = self.history[..n - patience]
            .iter()
            .cloned()
            .fold(f32::NEG_INFINITY, f32::max);
        let best_now = self
            .history
            .iter()
            .cloned()
            .fold(f32::NEG_INFINITY, f32::max);
        if best_now - best_before >= min_improvement {
            return PlateauAction::Continue;
        }
        self.plateaus += 1;
        self.history.clear();
        if self.plateaus == 1 {
            PlateauAction::DropPositionLr
        } else {
            PlateauAction::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_lr_decays_log_linearly_after_its_start() {
        let cfg = TrainConfig::default();
        assert_eq!(position_lr(&cfg, 0, 0, 30_000), cfg.lr.means);
        assert!((position_lr(&cfg, 30_000, 0, 30_000) - cfg.lr.means_final).abs() < 1e-9);
        // Half way in log space: the geometric mean.
        let mid = position_lr(&cfg, 15_000, 0, 30_000);
        assert!((mid - (cfg.lr.means * cfg.lr.means_final).sqrt()).abs() < 1e-8);
        // No decay before full size.
        assert_eq!(position_lr(&cfg, 2000, 2100, 3000), cfg.lr.means);
        assert!(position_lr(&cfg, 2500, 2100, 3000) < cfg.lr.means);
    }

    #[test]
    fn sh_degree_rises_every_interval_to_the_maximum() {
        let cfg = TrainConfig::default();
        let d: Vec<usize> = [0, 999, 1000, 2500, 3000, 9000]
            .iter()
            .map(|&i| sh_degree(&cfg, i))
            .collect();
        assert_eq!(d, vec![0, 0, 1, 2, 3, 3]);
    }

    #[test]
    fn resolution_ramp_starts_low_ends_full_and_changes_only_at_boundaries() {
        let cfg = TrainConfig {
            iterations: 3000,
            ..Default::default()
        };
        assert_eq!(ramp_end(&cfg), 2100);
        assert!((resolution_scale(&cfg, 0) - 0.3).abs() < 1e-6);
        assert_eq!(resolution_scale(&cfg, 2100), 1.0);
        assert_eq!(resolution_scale(&cfg, 2999), 1.0);
        assert_eq!(resolution_scale(&cfg, 1001), resolution_scale(&cfg, 1099));
        assert!(resolution_scale(&cfg, 1100) > resolution_scale(&cfg, 1099));
        // Monotone.
        let mut last = 0.0;
        for i in (0..3000).step_by(100) {
            let s = resolution_scale(&cfg, i);
            assert!(s >= last);
            last = s;
        }
        // Long runs: full size by the end of densification.
        let long = TrainConfig {
            iterations: 30_000,
            ..Default::default()
        };
        assert_eq!(ramp_end(&long), 15_000);
        let off = TrainConfig {
            progressive: ProgressiveConfig {
                enabled: false,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(resolution_scale(&off, 0), 1.0);
        assert_eq!(working_size(200, 100, 0.3), (60, 30));
    }

    #[test]
    fn blur_falls_to_zero_with_the_ramp() {
        let mut cfg = TrainConfig {
            iterations: 3000,
            ..Default::default()
        };
        assert_eq!(blur_sigma(&cfg, 0), 0.0);
        cfg.progressive.blur = true;
        assert!((blur_sigma(&cfg, 0) - 2.0).abs() < 1e-6);
        assert_eq!(blur_sigma(&cfg, 2100), 0.0);
    }

    #[test]
    fn plateau_first_drops_lr_then_stops() {
        let mut m = PlateauMonitor::default();
        let step = |m: &mut PlateauMonitor, v: f32| m.check(v, true, 0.05, 3, None, true);
        // Not eligible: ignored.
        assert_eq!(
            m.check(10.0, false, 0.05, 3, None, true),
            PlateauAction::Continue
        );
        for v in [20.0, 21.0, 22.0, 23.0] {
            assert_eq!(step(&mut m, v), PlateauAction::Continue);
        }
        assert_eq!(step(&mut m, 23.02), PlateauAction::Continue);
        assert_eq!(step(&mut m, 23.03), PlateauAction::Continue);
        // Best over the last 3 checks improved by 0.03 < 0.05.
        assert_eq!(step(&mut m, 23.01), PlateauAction::DropPositionLr);
        for v in [23.2, 23.3, 23.4] {
            assert_eq!(step(&mut m, v), PlateauAction::Continue);
        }
        assert_eq!(step(&mut m, 23.5), PlateauAction::Continue);
        for v in [23.5, 23.51] {
            assert_eq!(step(&mut m, v), PlateauAction::Continue);
        }
        assert_eq!(step(&mut m, 23.52), PlateauAction::Stop);
        // The target stops at once, eligible or not.
        let mut t = PlateauMonitor::default();
        assert_eq!(
            t.check(31.0, false, 0.05, 3, Some(30.0), true),
            PlateauAction::TargetReached
        );
    }
}
