//! The seam between the trainer and a compute backend: the CPU reference renderer here, the
//! CUDA backend in `splat-cuda`.

use crate::camera::Camera;
use crate::gaussians::Gaussians;
use crate::loss;
use crate::optim::{Adam, GroupRates};
use crate::render::{self, RenderGrads, RenderOptions, RenderOutput};
use crate::train::config::DensifyConfig;
use crate::train::densify::{self, DensifyReport, DensifyStats};

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
/// themselves (see [`TrainSession::step_from_source`]).
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

impl<'d> SourceImage<'d> {
    /// Training view `view`'s image.
    #[cfg(feature = "scene")]
    pub fn of(view: usize, image: &'d crate::scene::Image) -> Self {
        Self {
            view,
            width: image.width,
            height: image.height,
            data: &image.data,
        }
    }
}

/// What a training step reports back to the host.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// The loss of this step.
    pub loss: f64,
    /// PSNR of this step's render against its target (dB).
    pub psnr: f32,
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
}

/// Device time per stage of a window of training steps, from a backend that measures it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageTimes {
    /// Steps in the window.
    pub steps: usize,
    /// (stage, milliseconds summed over the window), in pipeline order.
    pub ms: Vec<(String, f64)>,
    /// Peak device memory in use so far (bytes), where known.
    pub peak_device_bytes: Option<u64>,
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
    /// Clone, split and prune (see [`crate::train::densify::densify`]); `seed` drives the
    /// split samples so that a resumed run repeats them.
    fn densify(
        &mut self,
        cfg: &DensifyConfig,
        extent: f32,
        prune_large: bool,
        seed: u64,
    ) -> Result<DensifyReport, BackendError>;
    /// Caps opacities and clears their optimizer moments.
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
    /// A step whose target is `src` area-downscaled to the camera's size exactly as
    /// [`crate::scene::Image::resize_area`] does, made where the session computes (no blur).
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

/// Backends that can hold a whole training session.
pub trait TrainBackend: Backend {
    /// Starts a session from host state.
    fn start_session(&mut self, state: SessionState)
        -> Result<Box<dyn TrainSession>, BackendError>;
}

/// The CPU training session: the reference implementation of every step operation.
pub struct CpuSession {
    state: SessionState,
}

impl TrainSession for CpuSession {
    fn len(&self) -> usize {
        self.state.params.len()
    }

    fn step(
        &mut self,
        camera: &Camera,
        target: Target<'_>,
        p: &StepParams,
    ) -> Result<StepStats, BackendError> {
        let st = &mut self.state;
        let out = render::render(&st.params, camera, &p.render);
        if target.data.len() != out.image.len() {
            return Err(BackendError::InvalidInput(format!(
                "target of view {} has {} values, the render has {}",
                target.view,
                target.data.len(),
                out.image.len()
            )));
        }
        let (w, h) = (camera.width as usize, camera.height as usize);
        let l = loss::l1_ssim_loss(&out.image, target.data, w, h, p.ssim_weight);
        let psnr = loss::psnr(&out.image, target.data);
        let grads = render::render_backward(&st.params, &out, &l.grad);
        if p.accumulate_stats {
            st.stats
                .accumulate(&grads.means2d, &out.radii, camera.width, camera.height);
        }
        st.adam.step(&mut st.params, &grads.params, &p.rates);
        Ok(StepStats { loss: l.loss, psnr })
    }

    fn densify(
        &mut self,
        cfg: &DensifyConfig,
        extent: f32,
        prune_large: bool,
        seed: u64,
    ) -> Result<DensifyReport, BackendError> {
        let st = &mut self.state;
        Ok(densify::densify(
            &mut st.params,
            &mut st.adam,
            &mut st.stats,
            cfg,
            extent,
            prune_large,
            seed,
        ))
    }

    fn reset_opacity(&mut self, prune_opacity: f32) -> Result<(), BackendError> {
        densify::reset_opacity(&mut self.state.params, &mut self.state.adam, prune_opacity);
        Ok(())
    }

    fn render(&mut self, camera: &Camera, opts: &RenderOptions) -> Result<Vec<f32>, BackendError> {
        Ok(render::render(&self.state.params, camera, opts).image)
    }

    fn snapshot(&mut self) -> Result<SessionState, BackendError> {
        Ok(self.state.clone())
    }
}

impl TrainBackend for CpuBackend {
    fn start_session(
        &mut self,
        state: SessionState,
    ) -> Result<Box<dyn TrainSession>, BackendError> {
        state
            .params
            .check_lengths()
            .map_err(BackendError::InvalidInput)?;
        Ok(Box::new(CpuSession { state }))
    }
}
