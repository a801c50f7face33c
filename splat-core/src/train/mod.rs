//! The training loop: the 3DGS recipe written against the [`TrainBackend`] trait, with
//! progressive resolution, PSNR-plateau stopping, evaluation, outputs and resumable checkpoints.

// Without scenes only the configuration, densification, schedules and report types remain, and
// the trainer's imports go unused.
#![cfg_attr(not(feature = "scene"), allow(unused_imports))]

pub mod antialias;
#[cfg(feature = "scene")]
pub mod checkpoint;
pub mod config;
pub mod curve;
pub mod densify;
pub mod exposure;
pub mod schedule;
pub mod strategy;
#[cfg(feature = "scene")]
pub mod sweep;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::{
    BackendError, SessionState, SourceImage, StageTimes, StepParams, Target, TrainBackend,
    TrainSession,
};
use crate::gaussians::Gaussians;
use crate::init::{self, InitOptions};
use crate::loss;
use crate::optim::{Adam, GroupRates};
use crate::render::RenderOptions;
#[cfg(feature = "scene")]
use crate::scene::{Image, Scene, View};
pub use config::{ConfigError, TrainConfig};
use config::{InitMode, Strategy};
pub use curve::LossCurve;
use densify::{DensifyReport, DensifyStats};
use schedule::{PlateauAction, PlateauMonitor};

#[cfg(feature = "scene")]
impl<'d> SourceImage<'d> {
    /// Training view `view`'s image, as the backend seam takes it.
    pub fn of(view: usize, image: &'d Image) -> Self {
        Self {
            view,
            width: image.width,
            height: image.height,
            data: &image.data,
        }
    }
}

/// Errors from training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The scene cannot be trained on.
    #[error("scene {scene}: {reason}")]
    Scene {
        /// Scene name.
        scene: String,
        /// What is wrong.
        reason: String,
    },
    /// Initialisation failed.
    #[error("initialisation: {0}")]
    Init(#[from] init::InitError),
    /// The compute backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Reading or writing an output or checkpoint failed.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Training diverged (non-finite loss).
    #[error("training diverged at iteration {iteration}: the loss is not finite")]
    Diverged {
        /// The iteration.
        iteration: usize,
    },
}

/// Why training ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The configured number of iterations ran.
    Iterations,
    /// A second PSNR plateau.
    Plateau,
    /// The monitor PSNR reached the target.
    TargetPsnr,
    /// The user interrupted.
    Interrupted,
}

/// Seconds spent per phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseTimes {
    /// Training steps in the backend: render, loss, backward, statistics, Adam.
    pub step: f64,
    /// Densification steps and opacity resets.
    pub densify: f64,
    /// Monitor evaluations.
    pub monitor: f64,
    /// Ground-truth resizing.
    pub data: f64,
}

/// One step's figures, for progress displays.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// Iterations done (1-based after the step).
    pub iteration: usize,
    /// Loss of this step.
    pub loss: f64,
    /// PSNR of this step's render against its ground truth.
    pub psnr: f32,
    /// Gaussians now.
    pub gaussians: usize,
    /// Working image size.
    pub size: (u32, u32),
    /// Densification done after this step, if any.
    pub densified: Option<DensifyReport>,
    /// Monitor PSNR, when a check ran.
    pub monitor_psnr: Option<f32>,
}

/// A monitor check, as recorded in the metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitorCheck {
    /// Iteration of the check.
    pub iteration: usize,
    /// Mean PSNR of the monitor views at full size.
    pub psnr: f32,
    /// What the plateau rule decided.
    pub action: PlateauAction,
}

/// Image quality on a set of views.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean PSNR (dB) over views, renders clamped to [0, 1].
    pub psnr: f32,
    /// Mean SSIM over views.
    pub ssim: f32,
    /// Per-view PSNR.
    pub per_view_psnr: Vec<f32>,
}

/// The loop's own state between steps; with the session's [`SessionState`] it is what a
/// checkpoint saves.
#[derive(Clone, Debug)]
pub struct TrainState {
    /// Iterations done.
    pub iteration: usize,
    /// Random state.
    pub rng: ChaCha8Rng,
    /// The current epoch's view order and the position in it.
    pub order: Vec<usize>,
    /// Next position in `order`.
    pub order_pos: usize,
    /// Plateau rule state.
    pub plateau: PlateauMonitor,
    /// Whether the first plateau dropped the position learning rate.
    pub lr_dropped: bool,
    /// Monitor checks so far.
    pub checks: Vec<MonitorCheck>,
    /// Step loss and PSNR so far, down-sampled.
    pub loss_curve: LossCurve,
    /// Per-image exposure transforms (empty when compensation is off).
    pub exposures: exposure::Exposures,
    /// Why training stopped early, if it did.
    pub stop: Option<StopReason>,
    /// Phase timings so far.
    pub times: PhaseTimes,
    /// Training seconds before this process (resumed runs).
    pub prior_seconds: f64,
}

/// Per-stage device times of the steps up to `iteration` (see [`TrainSession::take_stage_times`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageWindow {
    /// Iterations done at the end of the window.
    pub iteration: usize,
    /// The backend's measurements.
    #[serde(flatten)]
    pub times: StageTimes,
}

#[cfg(feature = "scene")]
/// The 3DGS trainer.
pub struct Trainer<'a> {
    /// Configuration in force.
    pub cfg: TrainConfig,
    /// Training state.
    pub state: TrainState,
    scene: &'a Scene,
    session: Box<dyn TrainSession>,
    backend_name: String,
    /// Scene extent: 1.1 x the largest camera distance from the camera centroid.
    pub extent: f32,
    background: [f32; 3],
    monitor: Vec<usize>,
    gt_cache: HashMap<usize, ((u32, u32, u32), Vec<f32>)>,
    started: Instant,
    /// Per-stage device times every 1000 iterations, where the backend measures them.
    pub stage_times: Vec<StageWindow>,
    /// Mip-Splatting's 3D filter of the current Gaussians, when `antialias.filter3d` is on.
    filter3d: Option<Arc<[f32]>>,
    /// The training cameras at full size (what the 3D filter is computed from).
    train_cameras: Vec<crate::camera::Camera>,
}

#[cfg(feature = "scene")]
/// 1.1 x the largest distance of a camera centre from the centroid of all of them.
pub fn scene_extent(views: &[View]) -> f32 {
    if views.is_empty() {
        return 1.0;
    }
    let centers: Vec<glam::DVec3> = views.iter().map(|v| v.camera.center()).collect();
    let mean = centers.iter().copied().sum::<glam::DVec3>() / centers.len() as f64;
    let max = centers
        .iter()
        .map(|c| (*c - mean).length())
        .fold(0.0, f64::max);
    let e = (1.1 * max) as f32;
    if e > 0.0 && e.is_finite() {
        e
    } else {
        1.0
    }
}

#[cfg(feature = "scene")]
/// Initial Gaussians for `scene` as the configuration asks.
pub fn initial_gaussians(
    scene: &Scene,
    cfg: &TrainConfig,
    extent: f32,
) -> Result<Gaussians, TrainError> {
    let (initial_opacity, scale_factor) = cfg.init.resolved(cfg.densify.strategy);
    let opts = InitOptions {
        sh_degree: cfg.sh_degree,
        max_points: cfg.init.max_points,
        seed: cfg.seed,
        initial_opacity,
        scale_factor,
        ..Default::default()
    };
    let use_sfm = match cfg.init.mode {
        InitMode::Sfm => {
            if scene.points.as_ref().is_none_or(|(p, _)| p.is_empty()) {
                return Err(TrainError::Scene {
                    scene: scene.name.clone(),
                    reason: "init.mode is sfm but the scene has no SfM points".into(),
                });
            }
            true
        }
        InitMode::Auto => scene.points.as_ref().is_some_and(|(p, _)| !p.is_empty()),
        InitMode::Random => false,
    };
    if use_sfm {
        let (pts, cols) = scene
            .points
            .as_ref()
            .map(|(p, c)| (p.as_slice(), c.as_slice()))
            .unwrap_or((&[], &[]));
        Ok(init::from_points_u8(pts, cols, &opts)?)
    } else {
        let h = cfg.init.random_box.unwrap_or(0.25 * extent);
        let mut g = init::random_in_box(cfg.init.random_count, [-h; 3], [h; 3], &opts)?;
        // As 3DGS does for synthetic scenes: near-grey colours, SH DC uniform in [0, 1/255).
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xc010);
        let nsh = g.sh_coeffs() * 3;
        for i in 0..g.len() {
            for c in 0..3 {
                g.sh[i * nsh + c] = rand::Rng::random::<f32>(&mut rng) / 255.0;
            }
        }
        Ok(g)
    }
}

#[cfg(feature = "scene")]
/// Evenly spaced indices of at most `k` out of `n`.
fn evenly_spaced(n: usize, k: usize) -> Vec<usize> {
    if n == 0 || k == 0 {
        return vec![];
    }
    let k = k.min(n);
    (0..k).map(|i| i * n / k).collect()
}

#[cfg(feature = "scene")]
/// Separable Gaussian blur of an RGB image (zero-padded edges renormalised).
fn blur_image(data: &[f32], w: usize, h: usize, sigma: f32) -> Vec<f32> {
    if w == 0 || h == 0 {
        return data.to_vec();
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    // Rows are independent: the trainer blurs a target at nearly every step of the
    // resolution ramp, so both passes run in parallel.
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        out.par_chunks_exact_mut(w * 3)
            .enumerate()
            .for_each(|(y, row)| {
                let y = y as isize;
                for x in 0..w as isize {
                    let mut acc = [0f32; 3];
                    let mut wsum = 0f32;
                    for (j, kv) in k.iter().enumerate() {
                        let d = j as isize - r;
                        let (xx, yy) = if horizontal { (x + d, y) } else { (x, y + d) };
                        if xx < 0 || yy < 0 || xx >= w as isize || yy >= h as isize {
                            continue;
                        }
                        let p = (yy as usize * w + xx as usize) * 3;
                        for c in 0..3 {
                            acc[c] += kv * src[p + c];
                        }
                        wsum += kv;
                    }
                    let p = x as usize * 3;
                    for c in 0..3 {
                        row[p + c] = acc[c] / wsum;
                    }
                }
            });
        out
    };
    pass(&pass(data, true), false)
}

#[cfg(feature = "scene")]
impl<'a> Trainer<'a> {
    /// A trainer for `scene`, with Gaussians initialised as configured.
    pub fn new(
        scene: &'a Scene,
        cfg: TrainConfig,
        backend: &mut dyn TrainBackend,
    ) -> Result<Self, TrainError> {
        cfg.validate()?;
        if scene.train.is_empty() {
            return Err(TrainError::Scene {
                scene: scene.name.clone(),
                reason: "no training views".into(),
            });
        }
        let extent = scene_extent(&scene.train);
        let mut params = initial_gaussians(scene, &cfg, extent)?;
        // The cap holds from the start: an evenly spaced subset of a larger initialisation.
        let cap = cfg.densify.max_gaussians;
        if cap > 0 && params.len() > cap {
            let mut keep = vec![false; params.len()];
            evenly_spaced(params.len(), cap)
                .into_iter()
                .for_each(|i| keep[i] = true);
            params.retain_mask(&keep);
        }
        let adam = Adam::new(&params);
        let stats = DensifyStats::new(params.len());
        Self::from_session_state(
            scene,
            cfg,
            backend,
            SessionState {
                params,
                adam,
                stats,
            },
            extent,
        )
    }

    /// A trainer over given session state (fresh Gaussians or a checkpoint's).
    pub fn from_session_state(
        scene: &'a Scene,
        cfg: TrainConfig,
        backend: &mut dyn TrainBackend,
        session: SessionState,
        extent: f32,
    ) -> Result<Self, TrainError> {
        cfg.validate()?;
        session.check().map_err(|reason| TrainError::Scene {
            scene: scene.name.clone(),
            reason,
        })?;
        let session = backend.start_session(session)?;
        let background = cfg.background.unwrap_or(scene.background);
        let monitor = evenly_spaced(scene.train.len(), cfg.plateau.monitor_views);
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed);
        let state = TrainState {
            iteration: 0,
            rng,
            order: vec![],
            order_pos: 0,
            plateau: PlateauMonitor::default(),
            lr_dropped: false,
            checks: vec![],
            loss_curve: LossCurve::default(),
            exposures: if cfg.exposure.enabled {
                exposure::Exposures::new(scene.train.len())
            } else {
                exposure::Exposures::default()
            },
            stop: None,
            times: PhaseTimes::default(),
            prior_seconds: 0.0,
        };
        let mut t = Self {
            cfg,
            state,
            scene,
            session,
            backend_name: backend.name(),
            extent,
            background,
            monitor,
            gt_cache: HashMap::new(),
            started: Instant::now(),
            stage_times: Vec::new(),
            filter3d: None,
            train_cameras: scene.train.iter().map(|v| v.camera.clone()).collect(),
        };
        t.update_filter3d()?;
        Ok(t)
    }

    /// Recomputes the 3D filter from the session's current centres (when it is on).
    fn update_filter3d(&mut self) -> Result<(), TrainError> {
        if !self.cfg.antialias.filter3d {
            return Ok(());
        }
        let all: Vec<usize> = (0..self.session.len()).collect();
        let means = self.session.gather(&all)?.means;
        let var = antialias::filter3d_variances(
            &means,
            &self.train_cameras,
            self.cfg.antialias.filter3d_scale,
        );
        self.filter3d = Some(var.into());
        Ok(())
    }

    /// The current 3D filter (one variance per Gaussian), when `antialias.filter3d` is on.
    pub fn filter3d(&self) -> Option<&[f32]> {
        self.filter3d.as_deref()
    }

    /// The Gaussians as exported: the session's parameters with the 3D filter, if on, baked
    /// into scales and opacities ([`crate::render::bake_filter3d`]), so that viewers without
    /// the filter draw what training rendered.
    pub fn export_gaussians(&mut self) -> Result<Gaussians, TrainError> {
        let params = self.session.snapshot()?.params;
        Ok(match &self.filter3d {
            Some(f) => crate::render::bake_filter3d(&params, f),
            None => params,
        })
    }

    /// Render settings shared by training steps and evaluation: background, SH degree, and
    /// the anti-aliasing filters.
    fn render_options(&self, sh_degree: usize) -> RenderOptions {
        RenderOptions {
            background: self.background,
            sh_degree: Some(sh_degree),
            mip2d: self.cfg.antialias.mip2d,
            filter3d: self.filter3d.clone(),
            low_pass: Some(self.cfg.antialias.low_pass),
            ..Default::default()
        }
    }

    /// The backend's name.
    pub fn backend_name(&self) -> String {
        self.backend_name.clone()
    }

    /// The scene being trained.
    pub fn scene(&self) -> &Scene {
        self.scene
    }

    /// Number of Gaussians now.
    pub fn gaussians_len(&self) -> usize {
        self.session.len()
    }

    /// A host copy of the parameters, optimizer state and statistics.
    pub fn snapshot(&mut self) -> Result<SessionState, TrainError> {
        Ok(self.session.snapshot()?)
    }

    /// Training seconds so far, across resumes.
    pub fn elapsed_seconds(&self) -> f64 {
        self.state.prior_seconds + self.started.elapsed().as_secs_f64()
    }

    fn next_view(&mut self) -> usize {
        let st = &mut self.state;
        if st.order_pos >= st.order.len() {
            st.order = (0..self.scene.train.len()).collect();
            st.order.shuffle(&mut st.rng);
            st.order_pos = 0;
        }
        st.order_pos += 1;
        st.order[st.order_pos - 1]
    }

    /// Makes sure the cache holds training view `v` at the working size (antialiased) and
    /// blur; returns the key of that version.
    fn prepare_ground_truth(&mut self, v: usize, w: u32, h: u32, sigma: f32) -> u64 {
        let key = (w, h, sigma.to_bits());
        let fresh = self.gt_cache.get(&v).is_none_or(|(k, _)| *k != key);
        if fresh {
            let img = &self.scene.train[v].image;
            let resized: Image = if (w, h) == (img.width, img.height) {
                img.clone()
            } else {
                img.resize_area(w, h)
            };
            let data = if sigma > 0.0 {
                blur_image(&resized.data, w as usize, h as usize, sigma)
            } else {
                resized.data
            };
            self.gt_cache.insert(v, (key, data));
        }
        (w as u64) << 48 | (h as u64) << 32 | sigma.to_bits() as u64
    }

    fn rates(&self) -> GroupRates {
        let c = &self.cfg;
        let decay_start = schedule::ramp_end(c);
        let means = if self.state.lr_dropped {
            c.lr.means_final
        } else {
            schedule::position_lr(c, self.state.iteration, decay_start, c.iterations)
        };
        c.lr.rates(means, self.extent)
    }

    /// The iteration the strategy stops changing the Gaussian count at.
    fn refine_until(&self) -> usize {
        match self.cfg.densify.strategy {
            Strategy::Default => self.cfg.densify.until,
            Strategy::Mcmc => self.cfg.densify.mcmc.until,
        }
    }

    /// Whether training has finished (iterations done or stopped early).
    pub fn finished(&self) -> bool {
        self.state.stop.is_some() || self.state.iteration >= self.cfg.iterations
    }

    /// One training step: render a view, loss, backward, Adam (in the session), then
    /// densification and the plateau check when due.
    pub fn step(&mut self) -> Result<StepInfo, TrainError> {
        let it = self.state.iteration;
        let v = self.next_view();
        let full = &self.scene.train[v].camera;
        let scale = schedule::resolution_scale(&self.cfg, it);
        let (w, h) = schedule::working_size(full.width, full.height, scale);
        let cam = full.scaled_to(w, h);
        let sigma = schedule::blur_sigma(&self.cfg, it);
        let t0 = Instant::now();
        // A session that resizes targets itself gets the full-size image (unblurred steps).
        let on_device = sigma == 0.0 && self.session.resizes_targets();
        let key = if on_device {
            0
        } else {
            self.prepare_ground_truth(v, w, h, sigma)
        };
        let mcmc = self.cfg.densify.strategy == Strategy::Mcmc;
        let (opacity_reg, scale_reg) = if mcmc {
            (
                self.cfg.densify.mcmc.opacity_reg,
                self.cfg.densify.mcmc.scale_reg,
            )
        } else {
            (0.0, 0.0)
        };
        let params = StepParams {
            render: self.render_options(schedule::sh_degree(&self.cfg, it)),
            ssim_weight: self.cfg.ssim_weight,
            rates: self.rates(),
            // MCMC decides from opacities alone.
            accumulate_stats: !mcmc && it < self.cfg.densify.until,
            opacity_reg,
            scale_reg,
            exposure: self.state.exposures.get(v),
        };
        let t1 = Instant::now();
        let stats = if on_device {
            let src = SourceImage::of(v, &self.scene.train[v].image);
            self.session.step_from_source(&cam, src, &params)?
        } else {
            let data = self
                .gt_cache
                .get(&v)
                .map(|(_, d)| d.as_slice())
                .unwrap_or(&[]);
            self.session
                .step(&cam, Target { view: v, key, data }, &params)?
        };
        if !stats.loss.is_finite() {
            return Err(TrainError::Diverged { iteration: it });
        }
        if let Some(g) = stats.exposure_grad {
            let lr = self.cfg.exposure.rate(it, self.cfg.iterations);
            self.state.exposures.update(v, &g, lr);
        }
        let t2 = Instant::now();

        // gsplat's schedule: densify when it > from, it % interval == 0, it < until; then reset.
        let dcfg = &self.cfg.densify;
        let seed = self
            .cfg
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(it as u64);
        let mut densified = None;
        let due = |until: usize| it > dcfg.from && it % dcfg.interval == 0 && it < until;
        match dcfg.strategy {
            Strategy::Default => {
                if due(dcfg.until) {
                    let prune_large =
                        dcfg.opacity_reset_interval > 0 && it > dcfg.opacity_reset_interval;
                    let params = densify::DensifyParams::from(dcfg);
                    let report = if self.session.fuses_densify() {
                        self.session
                            .densify(&params, self.extent, prune_large, seed)?
                    } else {
                        strategy::densify_default(
                            &mut *self.session,
                            &params,
                            self.extent,
                            prune_large,
                            seed,
                        )?
                    };
                    densified = Some(report);
                }
                if dcfg.opacity_reset_interval > 0
                    && it > 0
                    && it % dcfg.opacity_reset_interval == 0
                    && it < dcfg.until
                {
                    self.session.reset_opacity(dcfg.prune_opacity)?;
                }
            }
            Strategy::Mcmc => {
                if due(dcfg.mcmc.until) {
                    let p = strategy::McmcParams {
                        min_opacity: dcfg.mcmc.min_opacity,
                        growth: dcfg.mcmc.growth,
                        max_gaussians: dcfg.max_gaussians,
                    };
                    densified = Some(strategy::mcmc_refine(&mut *self.session, &p, seed)?);
                }
                // After every step, with this step's position rate (gsplat's order).
                let scale = dcfg.mcmc.noise_lr * params.rates.means;
                if scale > 0.0 {
                    self.session
                        .add_position_noise(scale, seed ^ 0x6e01_5e00_0000_0000)?;
                }
            }
        }
        // Mip-Splatting's cadence: after every change of the set, then every interval while
        // the positions still move (not in the last interval).
        let ai = self.cfg.antialias.filter3d_interval;
        if densified.is_some()
            || (it > self.refine_until() && it % ai == 0 && it + ai < self.cfg.iterations)
        {
            self.update_filter3d()?;
        }
        let t3 = Instant::now();
        self.state.iteration += 1;
        self.state
            .loss_curve
            .record(self.state.iteration, stats.loss, stats.psnr);

        let mut monitor_psnr = None;
        let pc = self.cfg.plateau.clone();
        if (pc.enabled || pc.target_psnr.is_some())
            && self.state.iteration % pc.interval == 0
            && self.state.iteration < self.cfg.iterations
        {
            let p = self.monitor_psnr()?;
            monitor_psnr = Some(p);
            let eligible = self.state.iteration >= schedule::ramp_end(&self.cfg)
                && self.state.iteration >= self.refine_until();
            let action = self.state.plateau.check(
                p,
                eligible,
                pc.min_improvement_db,
                pc.patience,
                pc.target_psnr,
                pc.enabled,
            );
            match action {
                PlateauAction::DropPositionLr => self.state.lr_dropped = true,
                PlateauAction::Stop => self.state.stop = Some(StopReason::Plateau),
                PlateauAction::TargetReached => self.state.stop = Some(StopReason::TargetPsnr),
                PlateauAction::Continue => {}
            }
            self.state.checks.push(MonitorCheck {
                iteration: self.state.iteration,
                psnr: p,
                action,
            });
        }
        let t4 = Instant::now();
        let tm = &mut self.state.times;
        tm.data += (t1 - t0).as_secs_f64();
        tm.step += (t2 - t1).as_secs_f64();
        tm.densify += (t3 - t2).as_secs_f64();
        tm.monitor += (t4 - t3).as_secs_f64();
        if self.state.iteration % 1000 == 0 || self.finished() {
            if let Some(times) = self.session.take_stage_times() {
                if times.steps > 0 {
                    self.stage_times.push(StageWindow {
                        iteration: self.state.iteration,
                        times,
                    });
                }
            }
        }
        Ok(StepInfo {
            iteration: self.state.iteration,
            loss: stats.loss,
            psnr: stats.psnr,
            gaussians: self.session.len(),
            size: (w, h),
            densified,
            monitor_psnr,
        })
    }

    /// Mean PSNR of the monitor views at full size.
    pub fn monitor_psnr(&mut self) -> Result<f32, TrainError> {
        let opts = self.eval_options();
        let mut sum = 0.0;
        for &i in &self.monitor {
            let v = &self.scene.train[i];
            sum += self
                .session
                .view_psnr(&v.camera, &opts, SourceImage::of(i, &v.image))?;
        }
        Ok(sum / self.monitor.len().max(1) as f32)
    }

    fn eval_options(&self) -> RenderOptions {
        // The degree of the last step taken: higher bands have not been trained yet.
        let deg = schedule::sh_degree(&self.cfg, self.state.iteration.saturating_sub(1));
        self.render_options(deg)
    }

    /// Trains until done, the stop flag is raised, or an error; `on_step` sees every step.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        on_step: &mut dyn FnMut(&StepInfo, &mut Self),
    ) -> Result<StopReason, TrainError> {
        while !self.finished() {
            if stop.load(Ordering::Relaxed) {
                return Ok(StopReason::Interrupted);
            }
            let info = self.step()?;
            on_step(&info, self);
        }
        Ok(self.state.stop.unwrap_or(StopReason::Iterations))
    }

    /// Renders `views` at full size and measures PSNR and SSIM; `save` receives each render.
    pub fn evaluate(
        &mut self,
        views: &[View],
        save: &mut dyn FnMut(usize, &View, &Image) -> Result<(), TrainError>,
    ) -> Result<Evaluation, TrainError> {
        let mut e = Evaluation::default();
        let opts = self.eval_options();
        for (i, v) in views.iter().enumerate() {
            let image = self.session.render(&v.camera, &opts)?;
            let img: Vec<f32> = image.iter().map(|x| x.clamp(0.0, 1.0)).collect();
            let p = loss::psnr(&img, &v.image.data);
            let s = loss::ssim(
                &img,
                &v.image.data,
                v.camera.width as usize,
                v.camera.height as usize,
            );
            e.per_view_psnr.push(p);
            e.psnr += p;
            e.ssim += s;
            save(
                i,
                v,
                &Image {
                    width: v.camera.width,
                    height: v.camera.height,
                    data: img,
                },
            )?;
        }
        let n = views.len().max(1) as f32;
        e.psnr /= n;
        e.ssim /= n;
        Ok(e)
    }
}

/// The `metrics.json` of a training run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainMetrics {
    /// Scene name.
    pub scene: String,
    /// Backend used.
    pub backend: String,
    /// Test-view quality.
    pub test: Evaluation,
    /// Iterations run.
    pub iterations: usize,
    /// Why training ended.
    pub stop_reason: StopReason,
    /// Training wall time in seconds (without test evaluation).
    pub train_seconds: f64,
    /// Final Gaussian count.
    pub gaussians: usize,
    /// Per-phase seconds.
    pub phases: PhaseTimes,
    /// Monitor checks.
    pub monitor: Vec<MonitorCheck>,
    /// Training loss and step PSNR, down-sampled to a few hundred points.
    #[serde(default)]
    pub loss_curve: LossCurve,
    /// Scene extent used for learning rates and densification.
    pub extent: f32,
    /// Peak resident memory in bytes, where the OS reports it.
    pub peak_memory_bytes: Option<u64>,
    /// Per-stage device times per 1000 iterations (device backends that measure them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_stages: Vec<StageWindow>,
    /// The configuration in force.
    pub config: TrainConfig,
}

pub use spaceport_io::peak_memory_bytes;

/// Writes `bytes` to `path` atomically ([`spaceport_io::write_atomic`]) with the trainer's error type.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    spaceport_io::write_atomic(path, bytes).map_err(|e| TrainError::Io {
        path: e.path,
        message: e.source.to_string(),
    })
}

#[cfg(feature = "scene")]
impl Trainer<'_> {
    /// Writes `point_cloud.ply`, test-view renders under `renders/` and `metrics.json` to `out`
    /// (each file atomically) and returns the metrics.
    pub fn write_outputs(
        &mut self,
        out: &Path,
        reason: StopReason,
    ) -> Result<TrainMetrics, TrainError> {
        let train_seconds = self.elapsed_seconds();
        let io = |p: &Path, e: String| TrainError::Io {
            path: p.to_path_buf(),
            message: e,
        };
        let renders = out.join("renders");
        std::fs::create_dir_all(&renders).map_err(|e| io(&renders, e.to_string()))?;
        let ply = out.join("point_cloud.ply");
        let exported = self.export_gaussians()?;
        crate::ply::write_ply(&ply, &exported).map_err(|e| io(&ply, e.to_string()))?;
        let test = self.scene.test.clone();
        let test = self.evaluate(&test, &mut |i, v, img| {
            let stem = Path::new(&v.name)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("view")
                .to_string();
            let p = renders.join(format!("{i:03}_{stem}.png"));
            crate::scene::save_png(&p, img).map_err(|e| io(&p, e.to_string()))
        })?;
        let metrics = TrainMetrics {
            scene: self.scene.name.clone(),
            backend: self.backend_name(),
            test,
            iterations: self.state.iteration,
            stop_reason: reason,
            train_seconds,
            gaussians: exported.len(),
            phases: self.state.times.clone(),
            monitor: self.state.checks.clone(),
            loss_curve: self.state.loss_curve.finished(self.state.iteration),
            extent: self.extent,
            peak_memory_bytes: peak_memory_bytes(),
            device_stages: self.stage_times.clone(),
            config: self.cfg.clone(),
        };
        let p = out.join("metrics.json");
        let json = serde_json::to_vec_pretty(&metrics).map_err(|e| io(&p, e.to_string()))?;
        write_atomic(&p, &json)?;
        Ok(metrics)
    }
}
