//! The plain data that crosses the backend seam: step inputs and outputs, the training state a
//! session holds, the densification statistics and parameters. Nothing here names a trainer or
//! scene type; `train/` converts its configuration and images into these.

use serde::{Deserialize, Serialize};

use super::BackendError;
use crate::camera::Camera;
use crate::gaussians::Gaussians;
use crate::optim::{Adam, GroupRates};
use crate::render::RenderOptions;

/// The ground truth of one step: `data` at the working size, with an identity (`view`) and a
/// `key` that changes whenever the data does, so a device backend can keep it resident.
#[derive(Clone, Copy, Debug)]
pub struct Target<'d> {
    /// Training view index.
    pub view: usize,
    /// Changes with the working size or blur.
    pub key: u64,
    /// RGB, `height x width x 3`, matching the step's camera.
    pub data: &'d [f32],
}

/// A training view's full-size ground truth, for sessions that make each step's target
/// themselves (see [`super::TrainSession::step_from_source`]).
#[derive(Clone, Copy, Debug)]
pub struct SourceImage<'d> {
    /// Training view index (the data never changes for a view).
    pub view: usize,
    /// Full width.
    pub width: u32,
    /// Full height.
    pub height: u32,
    /// RGB, `height x width x 3`.
    pub data: &'d [f32],
}

impl Target<'_> {
    /// Checks that the target has the `height x width x 3` values of `camera`'s render; every
    /// backend's step makes this check, so all of them refuse a wrong target alike.
    pub fn check_size(&self, camera: &Camera) -> Result<(), BackendError> {
        let npix = 3 * camera.width as usize * camera.height as usize;
        if self.data.len() != npix {
            return Err(BackendError::InvalidInput(format!(
                "target of view {} has {} values, the render has {npix}",
                self.view,
                self.data.len(),
            )));
        }
        Ok(())
    }
}

impl SourceImage<'_> {
    /// The number of values (`height x width x 3`) of a non-empty source whose data fits its
    /// size, else the error naming the view.
    pub fn check_size(&self) -> Result<usize, BackendError> {
        let full = 3 * self.width as usize * self.height as usize;
        if self.data.len() != full || full == 0 {
            return Err(BackendError::InvalidInput(format!(
                "source image of view {} has {} values for {}x{}x3",
                self.view,
                self.data.len(),
                self.width,
                self.height
            )));
        }
        Ok(full)
    }
}

/// What a training step reports back to the host.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// The loss of this step.
    pub loss: f64,
    /// PSNR of this step's render against its target (dB).
    pub psnr: f32,
    /// dLoss/d(exposure transform) when the step had one.
    pub exposure_grad: Option<super::exposure::Exposure>,
}

/// The settings of one training step.
#[derive(Clone, Debug)]
pub struct StepParams {
    /// Render settings (background, active SH degree).
    pub render: RenderOptions,
    /// Weight of (1 - SSIM) in the loss.
    pub ssim_weight: f32,
    /// Learning rates of this step.
    pub rates: GroupRates,
    /// Whether to add this step to the densification statistics.
    pub accumulate_stats: bool,
    /// Weight of the mean opacity added to the loss (MCMC's opacity regulariser; 0: off).
    pub opacity_reg: f32,
    /// Weight of the mean scale added to the loss (MCMC's scale regulariser; 0: off).
    pub scale_reg: f32,
    /// This image's exposure transform, applied to the render before the loss
    /// ([`super::exposure`]); `None`: off.
    pub exposure: Option<super::exposure::Exposure>,
}

/// Device time per stage of a window of training steps, from a backend that measures it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    /// Steps in the window.
    pub steps: usize,
    /// (stage, milliseconds summed over the window), in pipeline order.
    pub ms: Vec<(String, f64)>,
    /// Peak device memory in use so far (bytes), where known.
    pub peak_device_bytes: Option<u64>,
}

/// The host-side copy of a training session's state.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionState {
    /// Gaussian parameters.
    pub params: Gaussians,
    /// Optimizer state.
    pub adam: Adam,
    /// Densification statistics.
    pub stats: DensifyStats,
}

impl SessionState {
    /// The number of Gaussians, after checking that every per-Gaussian array of the parameters,
    /// both optimizer moments and the statistics has it (and the moments the parameters' SH
    /// degree); every backend checks a state so before starting a session on it.
    pub fn check(&self) -> Result<usize, String> {
        self.params.check_lengths()?;
        let n = self.params.len();
        let (m, v, st) = (&self.adam.m, &self.adam.v, &self.stats);
        let moments_fit = |g: &Gaussians| {
            g.len() == n && g.sh_degree == self.params.sh_degree && g.check_lengths().is_ok()
        };
        let stats_fit = st.len() == n && st.grad_accum.len() == n && st.max_radius.len() == n;
        if !(moments_fit(m) && moments_fit(v) && stats_fit) {
            return Err("parameter, optimizer and statistics counts differ".into());
        }
        Ok(n)
    }
}

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
    /// Dead Gaussians moved onto live ones (MCMC).
    #[serde(default)]
    pub relocated: usize,
    /// Gaussians added by sampling (MCMC's growth).
    #[serde(default)]
    pub added: usize,
}

/// What a densification strategy decides from: the statistics with the opacities and scales,
/// read back from a session without the rest of its state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StrategyInputs {
    /// Densification statistics.
    pub stats: DensifyStats,
    /// Opacity logits.
    pub opacity_logits: Vec<f32>,
    /// Log-scales.
    pub log_scales: Vec<[f32; 3]>,
}

/// The thresholds of one densification step, as plain data (the trainer derives them from
/// its configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DensifyParams {
    /// Mean view-space positional gradient (NDC units) above which a Gaussian grows.
    pub grad_threshold: f32,
    /// Gaussians larger than this fraction of the extent split; smaller ones clone.
    pub percent_dense: f32,
    /// Prune below this opacity.
    pub prune_opacity: f32,
    /// With large pruning on, prune Gaussians larger than this fraction of the extent.
    pub prune_world_size: f32,
    /// With large pruning on, prune Gaussians whose screen radius exceeded this many pixels
    /// (0: off).
    pub prune_screen_size: u32,
    /// Most Gaussians densification may grow to (0: no cap).
    pub max_gaussians: usize,
}
