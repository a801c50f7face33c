//! The seam between the trainer and a compute backend: the CPU reference renderer here, the
//! CUDA backend in `splat-cuda`.
//!
//! The seam names no trainer or scene type: what crosses it is plain data ([`types`]), and the
//! reference densification ([`densify`]) sits beside it. A backend's render keeps whatever its
//! backward needs in a type of its own ([`Backend::Frame`]), so no render output is ever
//! downcast.

mod cpu;
pub mod densify;
pub mod exposure;
pub mod types;

pub use cpu::{CpuBackend, CpuSession};
pub use types::{
    DensifyParams, DensifyReport, DensifyStats, SessionState, SourceImage, StageTimes, StepParams,
    StepStats, StrategyInputs, Target,
};

use crate::camera::Camera;
use crate::gaussians::Gaussians;
use crate::loss;
use crate::render::{RenderGrads, RenderOptions, RenderOutput};

/// Errors a backend reports.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The device cannot hold the work (names what was asked for).
    #[error("out of device memory rendering {gaussians} Gaussians at {width}x{height}")]
    OutOfMemory {
        /// Gaussians in the scene.
        gaussians: usize,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// The backend is not available on this machine.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Inputs the backend cannot use.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An operation this backend does not provide.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Any other device failure.
    #[error("device error: {0}")]
    Device(String),
}

/// Rendering on a compute backend: a render and its backward, for tools and tests. Training
/// goes through [`TrainBackend`] instead.
pub trait Backend: Send {
    /// What a render keeps for its backward (the CPU renderer's [`crate::render::ForwardState`],
    /// device buffers for a GPU backend).
    type Frame: Send + Sync;

    /// A short name for logs ("cpu", "cuda:0 NVIDIA H100 ...").
    fn name(&self) -> String;

    /// Renders `gaussians` from `camera`.
    fn render(
        &mut self,
        gaussians: &Gaussians,
        camera: &Camera,
        opts: &RenderOptions,
    ) -> Result<RenderOutput<f32, Self::Frame>, BackendError>;

    /// Gradients of a loss from its gradient with respect to the image of `fwd`.
    fn render_backward(
        &mut self,
        gaussians: &Gaussians,
        fwd: &RenderOutput<f32, Self::Frame>,
        d_image: &[f32],
    ) -> Result<RenderGrads<f32>, BackendError>;
}

/// Training state held where a backend computes: parameters, optimizer moments and
/// densification statistics, with the operations of the training loop.
pub trait TrainSession: Send {
    /// Number of Gaussians.
    fn len(&self) -> usize;
    /// Whether there are no Gaussians.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Render, loss, backward, statistics and an Adam update.
    fn step(
        &mut self,
        camera: &Camera,
        target: Target<'_>,
        p: &StepParams,
    ) -> Result<StepStats, BackendError>;
    /// Whether [`TrainSession::densify`] is implemented: a fused clone / split / prune step
    /// that must agree with the default strategy (`crate::train::strategy`), which otherwise
    /// runs through the primitives below.
    fn fuses_densify(&self) -> bool {
        false
    }
    /// The default strategy's clone, split and prune in one fused step; `seed` drives the split
    /// samples so that a resumed run repeats them.
    fn densify(
        &mut self,
        _cfg: &DensifyParams,
        _extent: f32,
        _prune_large: bool,
        _seed: u64,
    ) -> Result<DensifyReport, BackendError> {
        Err(BackendError::Unsupported(
            "this session densifies through the strategy primitives".into(),
        ))
    }
    /// Replaces the whole state (the fallback of every primitive below: snapshot, edit on the
    /// host, restore).
    fn restore(&mut self, state: SessionState) -> Result<(), BackendError>;
    /// Statistics, opacities and scales (what a strategy decides from).
    fn strategy_inputs(&mut self) -> Result<StrategyInputs, BackendError> {
        let st = self.snapshot()?;
        Ok(StrategyInputs {
            stats: st.stats,
            opacity_logits: st.params.opacity_logits,
            log_scales: st.params.log_scales,
        })
    }
    /// Host copies of the parameters of the Gaussians at `idx` (repeats allowed).
    fn gather(&mut self, idx: &[usize]) -> Result<Gaussians, BackendError> {
        let st = self.snapshot()?;
        if let Some(&i) = idx.iter().find(|&&i| i >= st.params.len()) {
            return Err(BackendError::InvalidInput(format!(
                "gather: index {i} of {} Gaussians",
                st.params.len()
            )));
        }
        Ok(densify::gather(&st.params, idx))
    }
    /// Appends Gaussians with zero optimizer moments and statistics.
    fn append(&mut self, g: &Gaussians) -> Result<(), BackendError> {
        let mut st = self.snapshot()?;
        densify::check_edit(st.params.len(), st.params.sh_degree, None, g)
            .map_err(|e| BackendError::InvalidInput(format!("append: {e}")))?;
        densify::append(&mut st, g);
        self.restore(st)
    }
    /// Keeps the Gaussians whose flag is set (one flag per Gaussian), with their moments and
    /// statistics, in order.
    fn compact(&mut self, keep: &[bool]) -> Result<(), BackendError> {
        let mut st = self.snapshot()?;
        if keep.len() != st.params.len() {
            return Err(BackendError::InvalidInput(format!(
                "compact: {} flags for {} Gaussians",
                keep.len(),
                st.params.len()
            )));
        }
        densify::compact(&mut st, keep);
        self.restore(st)
    }
    /// Overwrites the Gaussians at `idx` with `g`, zeroing their moments and statistics.
    fn scatter(&mut self, idx: &[usize], g: &Gaussians) -> Result<(), BackendError> {
        let mut st = self.snapshot()?;
        densify::check_edit(st.params.len(), st.params.sh_degree, Some(idx), g)
            .map_err(|e| BackendError::InvalidInput(format!("scatter: {e}")))?;
        densify::scatter(&mut st, idx, g);
        self.restore(st)
    }
    /// MCMC's relocation: the Gaussians at `src` take the opacity logits and log-scales given
    /// (one per pair), and each `dst[j]` becomes a copy of `src[j]`; both lose their moments
    /// and statistics.
    fn relocate(
        &mut self,
        dst: &[usize],
        src: &[usize],
        opacity_logits: &[f32],
        log_scales: &[[f32; 3]],
    ) -> Result<(), BackendError> {
        if dst.len() != src.len()
            || opacity_logits.len() != src.len()
            || log_scales.len() != src.len()
        {
            return Err(BackendError::InvalidInput(
                "relocate: destinations, sources, opacities and scales differ in count".into(),
            ));
        }
        let mut g = self.gather(src)?;
        g.opacity_logits.copy_from_slice(opacity_logits);
        g.log_scales.copy_from_slice(log_scales);
        self.scatter(src, &g)?;
        self.scatter(dst, &g)
    }
    /// Zeroes the densification statistics.
    fn reset_stats(&mut self) -> Result<(), BackendError> {
        let mut st = self.snapshot()?;
        st.stats = DensifyStats::new(st.params.len());
        self.restore(st)
    }
    /// MCMC's position noise ([`densify::add_position_noise`]).
    fn add_position_noise(&mut self, scale: f32, seed: u64) -> Result<(), BackendError> {
        let mut st = self.snapshot()?;
        densify::add_position_noise(&mut st.params, scale, seed);
        self.restore(st)
    }
    /// Caps opacities (at [`densify::opacity_reset_cap`]) and clears their optimizer moments.
    fn reset_opacity(&mut self, prune_opacity: f32) -> Result<(), BackendError>;
    /// Renders the current Gaussians (evaluation); RGB `height x width x 3`, unclamped.
    fn render(&mut self, camera: &Camera, opts: &RenderOptions) -> Result<Vec<f32>, BackendError>;
    /// PSNR of a render from `camera` against a training view's image at its full size (the
    /// plateau monitor's measure); by default rendered, read back and compared on the host.
    fn view_psnr(
        &mut self,
        camera: &Camera,
        opts: &RenderOptions,
        src: SourceImage<'_>,
    ) -> Result<f32, BackendError> {
        let image = self.render(camera, opts)?;
        Ok(loss::psnr(&image, src.data))
    }
    /// Copies the state back to the host (checkpoints, outputs).
    fn snapshot(&mut self) -> Result<SessionState, BackendError>;
    /// Whether [`TrainSession::step_from_source`] is implemented.
    fn resizes_targets(&self) -> bool {
        false
    }
    /// A step whose target is `src` area-downscaled to the camera's size (each output pixel the
    /// area-weighted mean of the source pixels it covers, as the scene loader's `resize_area`
    /// computes it), made where the session computes (no blur).
    fn step_from_source(
        &mut self,
        _camera: &Camera,
        _src: SourceImage<'_>,
        _p: &StepParams,
    ) -> Result<StepStats, BackendError> {
        Err(BackendError::Unavailable(
            "this session takes prepared targets".into(),
        ))
    }
    /// Per-stage device times since the last call, then starts a new window; `None` where the
    /// backend does not measure them.
    fn take_stage_times(&mut self) -> Option<StageTimes> {
        None
    }
}

/// Backends that can hold a whole training session. Independent of [`Backend`] so that it
/// stays usable as `dyn TrainBackend` whatever a backend's render keeps.
pub trait TrainBackend: Send {
    /// A short name for logs ("cpu", "cuda:0 NVIDIA H100 ...").
    fn name(&self) -> String;
    /// Starts a session from host state.
    fn start_session(&mut self, state: SessionState)
        -> Result<Box<dyn TrainSession>, BackendError>;
}
