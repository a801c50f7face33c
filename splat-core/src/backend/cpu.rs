//! The CPU reference backend and training session.

use super::densify;
use super::exposure;
use super::types::DensifyStats;
use super::types::{SessionState, StepParams, StepStats, StrategyInputs, Target};
use super::{Backend, BackendError, TrainBackend, TrainSession};
use crate::camera::Camera;
use crate::gaussians::Gaussians;
use crate::loss;
use crate::render::{self, ForwardState, RenderGrads, RenderOptions, RenderOutput};

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
    type Frame = ForwardState<f32>;

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
        opts.check_filter3d(gaussians.len())
            .map_err(BackendError::InvalidInput)?;
        Ok(render::render(gaussians, camera, opts))
    }

    fn render_backward(
        &mut self,
        gaussians: &Gaussians,
        fwd: &RenderOutput<f32>,
        d_image: &[f32],
    ) -> Result<RenderGrads<f32>, BackendError> {
        check_input(gaussians, Some((d_image.len(), fwd.image.len())))?;
        if gaussians.len() != fwd.radii.len() || gaussians.sh_degree < fwd.state.sh_degree {
            return Err(BackendError::InvalidInput(
                "the Gaussians differ from those rendered".into(),
            ));
        }
        Ok(render::render_backward(gaussians, fwd, d_image))
    }
}

/// The CPU training session: the reference implementation of every step operation.
pub struct CpuSession {
    state: SessionState,
}

impl CpuSession {
    /// A session over host state (checked: every per-Gaussian array the same length).
    pub fn new(state: SessionState) -> Result<Self, BackendError> {
        state.check().map_err(BackendError::InvalidInput)?;
        Ok(Self { state })
    }

    /// The state, giving up the session.
    pub fn into_state(self) -> SessionState {
        self.state
    }
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
        target.check_size(camera)?;
        p.render
            .check_filter3d(self.state.params.len())
            .map_err(BackendError::InvalidInput)?;
        let st = &mut self.state;
        let out = render::render(&st.params, camera, &p.render);
        let (w, h) = (camera.width as usize, camera.height as usize);
        let shown = p.exposure.map(|m| exposure::apply(&m, &out.image));
        let image = shown.as_deref().unwrap_or(&out.image);
        let mut l = loss::l1_ssim_loss(image, target.data, w, h, p.ssim_weight);
        let psnr = loss::psnr(image, target.data);
        let exposure_grad = p
            .exposure
            .map(|m| exposure::backward(&m, &out.image, &mut l.grad));
        let mut grads = render::render_backward(&st.params, &out, &l.grad);
        let reg =
            densify::add_regularisers(&st.params, &mut grads.params, p.opacity_reg, p.scale_reg);
        if p.accumulate_stats {
            st.stats
                .accumulate(&grads.means2d, &out.radii, camera.width, camera.height);
        }
        st.adam.step(&mut st.params, &grads.params, &p.rates);
        Ok(StepStats {
            loss: l.loss + reg,
            psnr,
            exposure_grad,
        })
    }

    fn restore(&mut self, state: SessionState) -> Result<(), BackendError> {
        *self = CpuSession::new(state)?;
        Ok(())
    }

    fn strategy_inputs(&mut self) -> Result<StrategyInputs, BackendError> {
        let st = &self.state;
        Ok(StrategyInputs {
            stats: st.stats.clone(),
            opacity_logits: st.params.opacity_logits.clone(),
            log_scales: st.params.log_scales.clone(),
        })
    }

    fn gather(&mut self, idx: &[usize]) -> Result<Gaussians, BackendError> {
        let n = self.state.params.len();
        if let Some(&i) = idx.iter().find(|&&i| i >= n) {
            return Err(BackendError::InvalidInput(format!(
                "gather: index {i} of {n} Gaussians"
            )));
        }
        Ok(densify::gather(&self.state.params, idx))
    }

    fn append(&mut self, g: &Gaussians) -> Result<(), BackendError> {
        let p = &self.state.params;
        densify::check_edit(p.len(), p.sh_degree, None, g)
            .map_err(|e| BackendError::InvalidInput(format!("append: {e}")))?;
        densify::append(&mut self.state, g);
        Ok(())
    }

    fn compact(&mut self, keep: &[bool]) -> Result<(), BackendError> {
        let n = self.state.params.len();
        if keep.len() != n {
            return Err(BackendError::InvalidInput(format!(
                "compact: {} flags for {n} Gaussians",
                keep.len()
            )));
        }
        densify::compact(&mut self.state, keep);
        Ok(())
    }

    fn scatter(&mut self, idx: &[usize], g: &Gaussians) -> Result<(), BackendError> {
        let p = &self.state.params;
        densify::check_edit(p.len(), p.sh_degree, Some(idx), g)
            .map_err(|e| BackendError::InvalidInput(format!("scatter: {e}")))?;
        densify::scatter(&mut self.state, idx, g);
        Ok(())
    }

    fn reset_stats(&mut self) -> Result<(), BackendError> {
        self.state.stats = DensifyStats::new(self.state.params.len());
        Ok(())
    }

    fn add_position_noise(&mut self, scale: f32, seed: u64) -> Result<(), BackendError> {
        densify::add_position_noise(&mut self.state.params, scale, seed);
        Ok(())
    }

    fn reset_opacity(&mut self, prune_opacity: f32) -> Result<(), BackendError> {
        densify::reset_opacity(&mut self.state.params, &mut self.state.adam, prune_opacity);
        Ok(())
    }

    fn render(&mut self, camera: &Camera, opts: &RenderOptions) -> Result<Vec<f32>, BackendError> {
        opts.check_filter3d(self.state.params.len())
            .map_err(BackendError::InvalidInput)?;
        Ok(render::render(&self.state.params, camera, opts).image)
    }

    fn snapshot(&mut self) -> Result<SessionState, BackendError> {
        Ok(self.state.clone())
    }
}

impl TrainBackend for CpuBackend {
    fn name(&self) -> String {
        Backend::name(self)
    }

    fn start_session(
        &mut self,
        state: SessionState,
    ) -> Result<Box<dyn TrainSession>, BackendError> {
        Ok(Box::new(CpuSession::new(state)?))
    }
}

#[cfg(all(test, feature = "scene"))]
mod tests {
    use super::*;

    #[test]
    fn backward_refuses_gaussians_other_than_those_rendered() {
        let g = crate::demo::demo_gaussians();
        let cam = crate::demo::demo_camera(40, 30, 0.3);
        let mut cpu = CpuBackend;
        let out = Backend::render(&mut cpu, &g, &cam, &RenderOptions::default()).expect("render");
        let d = vec![1.0f32; out.image.len()];
        let grads = cpu.render_backward(&g, &out, &d).expect("backward");
        assert_eq!(grads.params.len(), g.len());
        let mut fewer = g.clone();
        fewer.retain_mask(&(0..g.len()).map(|i| i > 0).collect::<Vec<_>>());
        assert!(matches!(
            cpu.render_backward(&fewer, &out, &d),
            Err(BackendError::InvalidInput(_))
        ));
        assert!(matches!(
            cpu.render_backward(&g, &out, &d[1..]),
            Err(BackendError::InvalidInput(_))
        ));
    }
}
