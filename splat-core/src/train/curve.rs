//! The per-step loss and PSNR of a run, down-sampled to a bounded number of points so that
//! `metrics.json` stays small on a 30k-step run.

use serde::{Deserialize, Serialize};

/// Most points a [`LossCurve`] keeps; when full, neighbouring points are merged pairwise, so a
/// run keeps between half this and this many.
pub const LOSS_CURVE_POINTS: usize = 256;

/// Means of the step loss and step PSNR over windows of `every` consecutive steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossCurve {
    /// Steps per point (a power of two).
    pub every: usize,
    /// The last iteration of each point's window.
    pub iteration: Vec<usize>,
    /// Mean training loss of the window.
    pub loss: Vec<f32>,
    /// Mean PSNR (dB) of the window's training views.
    pub psnr: Vec<f32>,
    /// The window in progress: steps, loss sum, PSNR sum (kept by checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<(usize, f64, f64)>,
}

impl Default for LossCurve {
    fn default() -> Self {
        LossCurve {
            every: 1,
            iteration: vec![],
            loss: vec![],
            psnr: vec![],
            pending: None,
        }
    }
}

impl LossCurve {
    /// Records the step that ended at `iteration`; non-finite values are left out.
    pub fn record(&mut self, iteration: usize, loss: f64, psnr: f32) {
        if !loss.is_finite() || !psnr.is_finite() {
            return;
        }
        let (n, l, p) = self.pending.unwrap_or((0, 0.0, 0.0));
        let (n, l, p) = (n + 1, l + loss, p + psnr as f64);
        if n < self.every.max(1) {
            self.pending = Some((n, l, p));
            return;
        }
        self.pending = None;
        self.push(iteration, l / n as f64, p / n as f64);
    }

    fn push(&mut self, iteration: usize, loss: f64, psnr: f64) {
        self.iteration.push(iteration);
        self.loss.push(loss as f32);
        self.psnr.push(psnr as f32);
        if self.iteration.len() >= LOSS_CURVE_POINTS {
            let pairs = self.iteration.len() / 2;
            let mean = |v: &[f32], i: usize| 0.5 * (v[2 * i] + v[2 * i + 1]);
            self.loss = (0..pairs).map(|i| mean(&self.loss, i)).collect();
            self.psnr = (0..pairs).map(|i| mean(&self.psnr, i)).collect();
            self.iteration = (0..pairs).map(|i| self.iteration[2 * i + 1]).collect();
            self.every *= 2;
        }
    }

    /// The curve with the window in progress closed at `iteration` (for the final metrics).
    pub fn finished(&self, iteration: usize) -> LossCurve {
        let mut c = self.clone();
        if let Some((n, l, p)) = c.pending.take() {
            if n > 0 && c.iteration.last().is_none_or(|&last| last < iteration) {
                c.push(iteration, l / n as f64, p / n as f64);
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_the_means() {
        let mut c = LossCurve::default();
        for it in 1..=30_000 {
            c.record(it, 1.0 / it as f64, 10.0 + (it as f32).ln());
        }
        let f = c.finished(30_000);
        assert!(f.iteration.len() <= LOSS_CURVE_POINTS);
        assert!(f.iteration.len() >= LOSS_CURVE_POINTS / 2);
        assert_eq!(f.iteration.len(), f.loss.len());
        assert_eq!(f.iteration.len(), f.psnr.len());
        assert_eq!(*f.iteration.last().unwrap(), 30_000);
        assert!(f.iteration.windows(2).all(|w| w[0] < w[1]));
        assert!(f.loss.windows(2).all(|w| w[0] >= w[1]), "loss falls");
        // The first point is the mean over the first window.
        let e = f.every;
        let want = (1..=e).map(|i| 1.0 / i as f64).sum::<f64>() / e as f64;
        assert!(
            (f.loss[0] as f64 - want).abs() < 1e-5,
            "{} vs {want}",
            f.loss[0]
        );
        assert_eq!(f.iteration[0], e);
    }

    #[test]
    fn short_runs_keep_every_step_and_skip_nan() {
        let mut c = LossCurve::default();
        c.record(1, 0.5, 12.0);
        c.record(2, f64::NAN, 12.0);
        c.record(3, 0.25, 14.0);
        let f = c.finished(3);
        assert_eq!(f.iteration, vec![1, 3]);
        assert_eq!(f.loss, vec![0.5, 0.25]);
    }
}
