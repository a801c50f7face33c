//! The seam between the trainer and a compute backend: the CPU reference renderer here, the
//! CUDA backend in `splat-cuda`.

use crate::camera::Camera;
use crate::gaussians::Gaussians;
use crate::render::{self, RenderGrads, RenderOptions, RenderOutput};

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

/// What the trainer needs from a compute backend for each step: render and its backward.
/// Optimizer and densification operations join this trait with the trainer.
pub trait Backend: Send {
    /// A short name for logs ("cpu", "cuda:0 NVIDIA H100 ...").
    fn name(&self) -> String;

    /// Renders `gaussians` from `camera`.
    fn render(
        &mut self,
        gaussians: &Gaussians,
        camera: &Camera,
        opts: &RenderOptions,
    ) -> Result<RenderOutput<f32>, BackendError>;

    /// Gradients of a loss from its gradient with respect to the image of `fwd`.
    fn render_backward(
        &mut self,
        gaussians: &Gaussians,
        fwd: &RenderOutput<f32>,
        d_image: &[f32],
    ) -> Result<RenderGrads<f32>, BackendError>;
}

/// The CPU reference backend (rayon over tiles).
#[derive(Clone, Debug, Default)]
pub struct CpuBackend;

fn check_input(gaussians: &Gaussians, d_len: Option<(usize, usize)>) -> Result<(), BackendError> {
    gaussians
        .check_lengths()
        .map_err(BackendError::InvalidInput)?;
    if let Some((got, want)) = d_len {
        if got != want {
            return Err(BackendError::InvalidInput(format!(
                "image gradient has {got} values, the render has {want}"
            )));
        }
    }
    Ok(())
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn render(
        &mut self,
        gaussians: &Gaussians,
        camera: &Camera,
        opts: &RenderOptions,
    ) -> Result<RenderOutput<f32>, BackendError> {
        check_input(gaussians, None)?;
        Ok(render::render(gaussians, camera, opts))
    }

    fn render_backward(
        &mut self,
        gaussians: &Gaussians,
        fwd: &RenderOutput<f32>,
        d_image: &[f32],
    ) -> Result<RenderGrads<f32>, BackendError> {
        check_input(gaussians, Some((d_image.len(), fwd.image.len())))?;
        render::try_render_backward(gaussians, fwd, d_image).ok_or_else(|| {
            BackendError::InvalidInput(
                "the render to differentiate was not made by the CPU backend".into(),
            )
        })
    }
}
