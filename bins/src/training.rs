//! The one training driver behind `spaceport run` and `spaceport train`: resume from a
//! checkpoint, stop on a flag (Ctrl-C) with a checkpoint, periodic checkpoints, and the
//! outputs (`point_cloud.ply`, `renders/`, `metrics.json`) moved into place only when complete.

use std::path::PathBuf;
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

/// The backend for `device`: `auto` takes CUDA when a driver and a device work, else the CPU
/// with a note; `cuda` without one is an error.
pub fn make_backend(device: Device, events: &dyn Events) -> Result<Box<dyn TrainBackend>> {
    match device {
        Device::Cpu => Ok(Box::new(CpuBackend)),
        Device::Cuda => {
            Ok(Box::new(splat_cuda::CudaBackend::new().map_err(|e| {
                PipelineError::Invalid(format!("--device cuda: {e}"))
            })?))
        }
        Device::Auto => match splat_cuda::CudaBackend::new() {
            Ok(b) => Ok(Box::new(b)),
            Err(e) => {
                events.note(&format!("no usable GPU ({e}); using the CPU backend"));
                Ok(Box::new(CpuBackend))
            }
        },
    }
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
    events.info(&format!(
        "training on {} with {} Gaussians, extent {:.3}",
        trainer.backend_name(),
        trainer.gaussians_len(),
        trainer.extent
    ));
    let reason = drive(&mut trainer, opts, stop, events);
    let result = reason.and_then(|reason| finish(&mut trainer, reason, opts));
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
    let mut ckpt_err: Option<splat_core::train::TrainError> = None;
    let every = opts.checkpoint_every;
    let reason = trainer.run(stop, &mut |info, t| {
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
        if every > 0 && info.iteration % every == 0 && ckpt_err.is_none() {
            if let Err(e) = checkpoint::save(t, &opts.checkpoint) {
                ckpt_err = Some(e);
            }
        }
    })?;
    match ckpt_err {
        Some(e) => Err(PipelineError::Invalid(format!(
            "writing a checkpoint failed: {e}"
        ))),
        None => Ok(reason),
    }
}

/// The checkpoint after a stop, or the outputs (written beside `opts.out` in a temporary
/// folder and moved in) after a finished run.
fn finish(trainer: &mut Trainer, reason: StopReason, opts: &TrainOptions) -> Result<Trained> {
    if reason == StopReason::Interrupted {
        checkpoint::save(trainer, &opts.checkpoint)?;
        return Ok(Trained::Interrupted {
            iteration: trainer.state.iteration,
            checkpoint: opts.checkpoint.clone(),
        });
    }
    if opts.final_checkpoint {
        checkpoint::save(trainer, &opts.checkpoint)?;
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
