//! The one training driver behind `spaceport run` and `spaceport train`: resume from a
//! checkpoint, stop on a flag (Ctrl-C) with a checkpoint, periodic checkpoints, and the
//! outputs (`point_cloud.ply`, `renders/`, `metrics.json`) moved into place only when complete.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use splat_core::backend::TrainBackend;
use splat_core::scene::Scene;
use splat_core::train::{checkpoint, StopReason, TrainConfig, TrainMetrics, Trainer};
use splat_core::CpuBackend;

use crate::events::{Events, Task, TrainStep};
use crate::{replace_path, PipelineError, Result};

/// Compute device choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// CUDA when a driver and a GPU exist, else the CPU.
    Auto,
    /// The CPU reference backend.
    Cpu,
    /// The CUDA backend (an error without a GPU).
    Cuda,
}

/// A training backend and what the pre-flight check needs to know of its device.
pub struct Compute {
    /// The backend.
    pub backend: Box<dyn TrainBackend>,
    /// Whether it is a GPU.
    pub gpu: bool,
    /// Memory free for training now (device memory for a GPU, host memory for the CPU).
    pub free_memory: Option<u64>,
}

/// The settings of `cfg` that only the CPU backend implements so far (the CUDA backend refuses
/// them at the first step; asking here lets `auto` choose the CPU and `cuda` fail up front).
pub fn cpu_only_settings(cfg: &TrainConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg.antialias.any() {
        v.push("anti-aliasing (antialias.mip2d / filter3d / low_pass)");
    }
    if cfg.exposure.enabled {
        v.push("exposure compensation (exposure.enabled)");
    }
    v
}

/// The backend for `device` and the settings `cfg`: `auto` takes CUDA when a driver and a
/// device work and `cfg` needs nothing CPU-only, else the CPU with a note; `cuda` without a
/// GPU, or with CPU-only settings, is an error.
pub fn make_backend(device: Device, cfg: &TrainConfig, events: &dyn Events) -> Result<Compute> {
    let cuda = |b: splat_cuda::CudaBackend| Compute {
        free_memory: b.memory_info().ok().map(|(free, _)| free),
        backend: Box::new(b),
        gpu: true,
    };
    let cpu = || Compute {
        backend: Box::new(CpuBackend),
        gpu: false,
        free_memory: crate::estimate::host_available_bytes(),
    };
    let cpu_only = cpu_only_settings(cfg).join(" and ");
    match device {
        Device::Cpu => Ok(cpu()),
        Device::Cuda if !cpu_only.is_empty() => Err(PipelineError::Invalid(format!(
            "--device cuda: {cpu_only} is not implemented on the CUDA backend yet; use --device cpu or turn it off"
        ))),
        Device::Cuda => {
            Ok(cuda(splat_cuda::CudaBackend::new().map_err(|e| {
                PipelineError::Invalid(format!("--device cuda: {e}"))
            })?))
        }
        Device::Auto if !cpu_only.is_empty() => {
            events.note(&format!(
                "{cpu_only}: only the CPU backend implements it so far; training on the CPU"
            ));
            Ok(cpu())
        }
        Device::Auto => match splat_cuda::CudaBackend::new() {
            Ok(b) => Ok(cuda(b)),
            Err(e) => {
                events.note(&format!("no usable GPU ({e}); using the CPU backend"));
                Ok(cpu())
            }
        },
    }
}

/// Before training `scene` with `cfg` on `compute`: says what it will cost (time, memory,
/// device), and refuses a run whose images cannot fit in the device's memory.
pub fn preflight(
    scene: &Scene,
    cfg: &TrainConfig,
    compute: &Compute,
    out: &Path,
    events: &dyn Events,
) -> Result<()> {
    use crate::estimate::{gib, human_seconds, Estimate};
    let initial = match &scene.points {
        Some((p, _)) if cfg.init.mode != splat_core::train::config::InitMode::Random => {
            cfg.init.max_points.map_or(p.len(), |m| m.min(p.len()))
        }
        _ => cfg.init.random_count,
    };
    let e = Estimate::new(scene, cfg, initial, compute.gpu);
    let name = compute.backend.name();
    // The CPU backend's images are already in host memory.
    let free = compute
        .free_memory
        .map(|f| if compute.gpu { f } else { f + e.image_bytes });
    let (w, h) = scene
        .train
        .first()
        .map_or((0, 0), |v| (v.camera.width, v.camera.height));
    events.info(&format!(
        "training on {name}: {} views at {w}x{h}, {} iterations, roughly {} (measured rates; a plateau stop ends sooner); memory {} of images + {} per million Gaussians{}",
        scene.train.len(),
        cfg.iterations,
        human_seconds(e.seconds),
        gib(e.image_bytes),
        gib(crate::estimate::BYTES_PER_GAUSSIAN * 1_000_000),
        free.map_or(String::new(), |f| format!(", {} free", gib(f)))
    ));
    if let Some(warning) = e.check(free, &name)? {
        events.note(&warning);
    }
    use crate::estimate::{check_disk, DISK_BYTES_PER_GAUSSIAN, PLY_BYTES_PER_GAUSSIAN};
    let disk = check_disk(
        spaceport_io::free_space(out),
        out,
        "training",
        (initial as u64 * PLY_BYTES_PER_GAUSSIAN).max(1 << 20),
        e.gaussians as u64 * DISK_BYTES_PER_GAUSSIAN,
    )?;
    if let Some(warning) = disk {
        events.note(&warning);
    }
    Ok(())
}

/// `spaceport train`: a posed scene on disk to a trained model in `out`.
#[derive(Clone, Debug)]
pub struct TrainJob {
    /// A COLMAP scene folder, a NeRF/nerfstudio folder or a transforms JSON.
    pub scene: PathBuf,
    /// The output folder (`point_cloud.ply`, `renders/`, `metrics.json`, `checkpoint.bin`).
    pub out: PathBuf,
    /// Downscale images on load by this factor.
    pub downscale: Option<f64>,
    /// The compute device.
    pub device: Device,
    /// Write a checkpoint every this many iterations (0: only when stopped).
    pub checkpoint_every: usize,
    /// Continue from `out/checkpoint.bin` (an error when there is none).
    pub resume: bool,
}

/// Runs a [`TrainJob`]: checks the output folder first, loads the scene, says what training
/// will cost, and trains with the same driver as `spaceport run`.
pub fn train_job(
    job: &TrainJob,
    cfg: TrainConfig,
    stop: &AtomicBool,
    events: &dyn Events,
) -> Result<Trained> {
    crate::ensure_output_dir(&job.out)?;
    let mut compute = make_backend(job.device, &cfg, events)?;
    let load = splat_core::scene::LoadOptions {
        downscale: job
            .downscale
            .map(splat_core::scene::Downscale::Factor)
            .unwrap_or_default(),
        background: cfg.background.unwrap_or([0.0; 3]),
        ..Default::default()
    };
    let t = Instant::now();
    let scene = splat_core::scene::load_scene(&job.scene, &load)?;
    events.info(&format!(
        "loaded {}: {} training and {} test views in {:.1} s",
        scene.name,
        scene.train.len(),
        scene.test.len(),
        t.elapsed().as_secs_f64()
    ));
    let opts = TrainOptions {
        checkpoint: job.out.join("checkpoint.bin"),
        out: job.out.clone(),
        checkpoint_every: job.checkpoint_every,
        resume: if job.resume {
            Resume::Required
        } else {
            Resume::Never
        },
        final_checkpoint: job.checkpoint_every > 0,
    };
    preflight(&scene, &cfg, &compute, &job.out, events)?;
    train(&scene, cfg, compute.backend.as_mut(), &opts, stop, events)
}

/// Whether training starts from the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Start afresh.
    Never,
    /// Resume when the checkpoint exists (`spaceport run`).
    IfPresent,
    /// Resume; a missing checkpoint is an error (`spaceport train --resume`).
    Required,
}

/// Where a training run keeps its state and puts its outputs.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The folder that receives `point_cloud.ply`, `renders/` and `metrics.json`.
    pub out: PathBuf,
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// Write the checkpoint every this many iterations (0: only when stopped).
    pub checkpoint_every: usize,
    /// Whether to start from the checkpoint.
    pub resume: Resume,
    /// Write the checkpoint once more after the last iteration (so it can be trained further).
    pub final_checkpoint: bool,
}

/// How a training run ended.
#[derive(Debug)]
pub enum Trained {
    /// Finished; the outputs are in place.
    Done(Box<TrainMetrics>),
    /// Stopped by the flag; the checkpoint holds every finished iteration.
    Interrupted {
        /// Iterations done.
        iteration: usize,
        /// The checkpoint written.
        checkpoint: PathBuf,
    },
}

/// Trains on `scene` with `cfg` (ignored when resuming: the checkpoint holds its own) until done
/// or until `stop` is raised.
pub fn train(
    scene: &Scene,
    cfg: TrainConfig,
    backend: &mut dyn TrainBackend,
    opts: &TrainOptions,
    stop: &AtomicBool,
    events: &dyn Events,
) -> Result<Trained> {
    let ckpt = &opts.checkpoint;
    let resume = match opts.resume {
        Resume::Never => false,
        Resume::IfPresent => ckpt.exists(),
        Resume::Required => true,
    };
    let mut trainer = if resume {
        let t = checkpoint::load(ckpt, scene, backend)?;
        events.info(&format!(
            "resuming training at iteration {} from {}",
            t.state.iteration,
            ckpt.display()
        ));
        t
    } else {
        Trainer::new(scene, cfg, backend)?
    };
    events.training_views(&scene.train);
    events.info(&format!(
        "training on {} with {} Gaussians, extent {:.3}",
        trainer.backend_name(),
        trainer.gaussians_len(),
        trainer.extent
    ));
    let reason = drive(&mut trainer, opts, stop, events);
    let result = reason.and_then(|reason| finish(&mut trainer, reason, opts, events));
    events.progress_end(Task::Train);
    result
}

/// Runs `trainer` to the end (or until `stop`), reporting every step and writing the
/// checkpoint every `opts.checkpoint_every` iterations.
fn drive(
    trainer: &mut Trainer,
    opts: &TrainOptions,
    stop: &AtomicBool,
    events: &dyn Events,
) -> Result<StopReason> {
    let total = trainer.cfg.iterations;
    events.progress(
        Task::Train,
        "",
        trainer.state.iteration as u64,
        total as u64,
    );
    let started = Instant::now();
    let first = trainer.state.iteration;
    let every = opts.checkpoint_every;
    let mut last_good: Option<usize> = None;
    let mut ckpt_failed = false;
    let run = trainer.run(stop, &mut |info, t| {
        let rate = (info.iteration - first) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        events.train_step(&TrainStep {
            iteration: info.iteration,
            total,
            loss: info.loss,
            psnr: info.psnr,
            gaussians: info.gaussians,
            size: info.size,
            rate,
            monitor_psnr: info.monitor_psnr,
        });
        // A failed snapshot only costs the live view a frame, never the training.
        if events.wants_snapshot(info.iteration) {
            if let Ok(s) = t.snapshot() {
                events.snapshot(info.iteration, &s.params);
            }
        }
        if every > 0 && info.iteration % every == 0 {
            // A failed checkpoint (a full disk) costs only the ability to resume: training
            // goes on and the final outputs are still written.
            match checkpoint::save(t, &opts.checkpoint) {
                Ok(()) => last_good = Some(info.iteration),
                Err(e) if !ckpt_failed => {
                    ckpt_failed = true;
                    events.note(&format!(
                        "warning: writing the checkpoint failed ({e}); training goes on, but an interrupted run will not resume from here"
                    ));
                }
                Err(_) => {}
            }
        }
    });
    // The trainer refuses a step with a non-finite loss before it reaches a checkpoint: say
    // what is kept.
    let reason = match run {
        Err(splat_core::train::TrainError::Diverged { iteration }) => {
            let kept = match last_good {
                Some(i) => format!(
                    "the checkpoint of iteration {i} in {} is kept",
                    opts.checkpoint.display()
                ),
                None => "no checkpoint of this run was written".to_string(),
            };
            return Err(PipelineError::Diverged { iteration, kept });
        }
        r => r?,
    };
    Ok(reason)
}

/// The checkpoint after a stop, or the outputs (written beside `opts.out` in a temporary
/// folder and moved in) after a finished run.
fn finish(
    trainer: &mut Trainer,
    reason: StopReason,
    opts: &TrainOptions,
    events: &dyn Events,
) -> Result<Trained> {
    if reason == StopReason::Interrupted {
        checkpoint::save(trainer, &opts.checkpoint)?;
        return Ok(Trained::Interrupted {
            iteration: trainer.state.iteration,
            checkpoint: opts.checkpoint.clone(),
        });
    }
    if opts.final_checkpoint {
        // The outputs matter more than a checkpoint for training further: write them anyway.
        if let Err(e) = checkpoint::save(trainer, &opts.checkpoint) {
            events.note(&format!(
                "warning: writing the final checkpoint failed ({e}); the outputs are written, but training cannot be continued from this run"
            ));
        }
    }
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| PipelineError::io(out, e))?;
    let tmp = out.join(".tmp-train");
    let _ = std::fs::remove_dir_all(&tmp);
    let metrics = trainer.write_outputs(&tmp, reason)?;
    for name in OUTPUTS {
        replace_path(&tmp.join(name), &out.join(name))?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(Trained::Done(Box::new(metrics)))
}

/// What a finished training run leaves in its output folder.
pub const OUTPUTS: [&str; 3] = ["point_cloud.ply", "renders", "metrics.json"];

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records what the driver tells a live view.
    #[derive(Default)]
    struct Seen {
        views: Mutex<Vec<String>>,
        steps: Mutex<usize>,
    }

    impl Events for Seen {
        fn training_views(&self, views: &[splat_core::scene::View]) {
            let mut v = self.views.lock().unwrap();
            assert!(v.is_empty(), "training views handed over twice");
            assert_eq!(*self.steps.lock().unwrap(), 0, "views after the first step");
            v.extend(views.iter().map(|v| v.name.clone()));
        }
        fn train_step(&self, _step: &TrainStep) {
            *self.steps.lock().unwrap() += 1;
        }
    }

    /// The shared driver (behind `run --view` and `train --view`) hands the training views to
    /// its observer before the first step, and metrics.json gets the loss curve.
    #[test]
    fn driver_hands_over_the_views_and_writes_the_loss_curve() {
        let scene = splat_core::demo::synthetic_ring_scene(32, 24);
        let out = std::env::temp_dir().join(format!("spaceport-drv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let opts = TrainOptions {
            checkpoint: out.join("checkpoint.bin"),
            out: out.clone(),
            checkpoint_every: 0,
            resume: Resume::Never,
            final_checkpoint: false,
        };
        let seen = Seen::default();
        let r = train(
            &scene,
            splat_core::demo::synthetic_ring_config(30),
            &mut CpuBackend,
            &opts,
            &AtomicBool::new(false),
            &seen,
        )
        .unwrap();
        let names: Vec<String> = scene.train.iter().map(|v| v.name.clone()).collect();
        assert_eq!(*seen.views.lock().unwrap(), names);
        assert_eq!(*seen.steps.lock().unwrap(), 30);
        let Trained::Done(m) = r else {
            panic!("not finished")
        };
        assert_eq!(
            m.loss_curve.iteration.len(),
            30,
            "short runs keep every step"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        let loss = json["loss_curve"]["loss"].as_array().unwrap();
        assert_eq!(loss.len(), 30);
        assert!(loss.iter().all(|v| v.as_f64().is_some_and(f64::is_finite)));
        let _ = std::fs::remove_dir_all(&out);
    }
}
