//! The seam between the trainer and a compute backend: the CPU reference renderer here, the
//! CUDA backend in `splat-cuda`.
//!
//! The seam names no trainer or scene type: what crosses it is plain data ([`types`]), and the
//! reference densification ([`densify`]) sits beside it. A backend's render keeps whatever its
//! backward needs in a type of its own ([`Backend::Frame`]), so no render output is ever
//! downcast.

mod cpu;
pub mod densify;
pub mod types;

pub use cpu::{CpuBackend, CpuSession};
pub use types::{
    DensifyParams, DensifyReport, DensifyStats, SessionState, SourceImage, StageTimes, StepParams,
    StepStats, Target,
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
    /// Clone, split and prune (see [`densify::densify`]); `seed` drives the split samples so
    /// that a resumed run repeats them.
    fn densify(
        &mut self,
        cfg: &DensifyParams,
        extent: f32,
        prune_large: bool,
        seed: u64,
    ) -> Result<DensifyReport, BackendError>;
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
