//! `spaceport train`: the trainer with a progress bar, checkpoints and Ctrl-C handling.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use splat_core::backend::TrainBackend;
use splat_core::scene::{load_scene, Downscale, LoadOptions};
use splat_core::train::{checkpoint, StopReason, TrainConfig, Trainer};
use splat_core::CpuBackend;

use crate::AnyResult;

/// Compute device choice.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Device {
    /// CUDA when a driver and a GPU exist, else the CPU.
    Auto,
    /// The CPU reference backend.
    Cpu,
    /// The CUDA backend (an error without a GPU).
    Cuda,
}

/// Arguments of `spaceport train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Scene: a COLMAP scene directory, a NeRF/nerfstudio directory or transforms JSON.
    #[arg(long, required_unless_present = "dump_config")]
    scene: Option<PathBuf>,
    /// Output directory.
    #[arg(long, required_unless_present = "dump_config")]
    out: Option<PathBuf>,
    /// YAML configuration (see --dump-config).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Iterations (overrides the config).
    #[arg(long)]
    iters: Option<usize>,
    /// Downscale images on load by this factor.
    #[arg(long)]
    downscale: Option<f64>,
    /// Composite transparent images on white and render on white (overrides the config).
    #[arg(long)]
    white_background: bool,
    /// Compute device.
    #[arg(long, value_enum, default_value = "auto")]
    device: Device,
    /// Write a resumable checkpoint every N iterations (0: only on interrupt).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: usize,
    /// Continue from OUT/checkpoint.bin.
    #[arg(long)]
    resume: bool,
    /// Print the default configuration as YAML and exit.
    #[arg(long)]
    dump_config: bool,
}

/// The backend for `device`: `auto` takes CUDA when a driver and a device work, else the CPU
/// with a notice; `cuda` without one is an error.
pub fn make_backend(device: Device) -> AnyResult<Box<dyn TrainBackend>> {
    match device {
        Device::Cpu => Ok(Box::new(CpuBackend)),
        Device::Cuda => Ok(Box::new(
            splat_cuda::CudaBackend::new().map_err(|e| format!("--device cuda: {e}"))?,
        )),
        Device::Auto => match splat_cuda::CudaBackend::new() {
            Ok(b) => Ok(Box::new(b)),
            Err(e) => {
                eprintln!("note: no usable GPU ({e}); using the CPU backend");
                Ok(Box::new(CpuBackend))
            }
        },
    }
}

/// Runs `spaceport train`.
pub fn run(args: TrainArgs) -> AnyResult<ExitCode> {
    if args.dump_config {
        print!("{}", TrainConfig::default().to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(scene_path), Some(out)) = (args.scene.clone(), args.out.clone()) else {
        return Err("--scene and --out are required".into());
    };
    let mut cfg = match &args.config {
        Some(p) => TrainConfig::from_yaml_file(p)?,
        None => TrainConfig::default(),
    };
    if let Some(n) = args.iters {
        cfg.iterations = n;
    }
    if args.white_background {
        cfg.background = Some([1.0; 3]);
    }
    cfg.validate()?;
    let mut backend = make_backend(args.device)?;
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;

    let load = LoadOptions {
        downscale: args.downscale.map(Downscale::Factor).unwrap_or_default(),
        background: cfg.background.unwrap_or([0.0; 3]),
        ..Default::default()
    };
    let t = Instant::now();
    let scene = load_scene(&scene_path, &load)?;
    eprintln!(
        "loaded {}: {} training and {} test views in {:.1} s",
        scene.name,
        scene.train.len(),
        scene.test.len(),
        t.elapsed().as_secs_f64()
    );

    let ckpt = out.join("checkpoint.bin");
    let mut trainer = if args.resume {
        let t = checkpoint::load(&ckpt, &scene, backend.as_mut())?;
        eprintln!(
            "resuming from {} at iteration {}",
            ckpt.display(),
            t.state.iteration
        );
        t
    } else {
        Trainer::new(&scene, cfg, backend.as_mut())?
    };
    eprintln!(
        "training on {} with {} Gaussians, extent {:.3}",
        trainer.backend_name(),
        trainer.gaussians_len(),
        trainer.extent
    );

    let stop = Arc::new(AtomicBool::new(false));
    install_ctrlc(&stop);
    let reason = drive(&mut trainer, &ckpt, args.checkpoint_every, &stop)?;
    if reason == StopReason::Interrupted {
        checkpoint::save(&mut trainer, &ckpt)?;
        eprintln!(
            "interrupted at iteration {}: checkpoint written to {} (continue with --resume)",
            trainer.state.iteration,
            ckpt.display()
        );
        return Ok(ExitCode::from(130));
    }
    if args.checkpoint_every > 0 {
        checkpoint::save(&mut trainer, &ckpt)?;
    }
    let m = trainer.write_outputs(&out, reason)?;
    println!(
        "done: {} iterations ({:?}) in {:.1} s, {} Gaussians, test PSNR {:.2} dB, SSIM {:.4} -> {}",
        m.iterations,
        m.stop_reason,
        m.train_seconds,
        m.gaussians,
        m.test.psnr,
        m.test.ssim,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Sets `stop` on Ctrl-C; the trainer then stops at the end of the step and the caller writes
/// a checkpoint, so nothing finished is lost.
pub fn install_ctrlc(stop: &Arc<AtomicBool>) {
    let stop = stop.clone();
    // A second Ctrl-C while the checkpoint is being written is ignored on purpose.
    let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
}

/// Runs `trainer` to the end (or until `stop`) with a progress bar, writing a checkpoint to
/// `ckpt` every `every` iterations (0: never).
pub fn drive(
    trainer: &mut Trainer,
    ckpt: &std::path::Path,
    every: usize,
    stop: &AtomicBool,
) -> AnyResult<StopReason> {
    let bar = crate::progress_bar(
        trainer.cfg.iterations as u64,
        "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
    );
    bar.set_position(trainer.state.iteration as u64);
    let started = Instant::now();
    let first = trainer.state.iteration;
    let mut ckpt_err: Option<String> = None;
    // Without a terminal the bar is hidden; log a line now and then instead.
    let log_lines = !std::io::stderr().is_terminal();
    let reason = trainer.run(stop, &mut |info, t| {
        bar.set_position(info.iteration as u64);
        if info.iteration % 10 == 0 || info.monitor_psnr.is_some() {
            let rate = (info.iteration - first) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let mon = info
                .monitor_psnr
                .map(|p| format!(" monitor {p:.2} dB"))
                .unwrap_or_default();
            let msg = format!(
                "loss {:.4} psnr {:.2} | {} G | {}x{} | {:.1} it/s{mon}",
                info.loss, info.psnr, info.gaussians, info.size.0, info.size.1, rate
            );
            if log_lines && (info.iteration % 100 == 0 || info.monitor_psnr.is_some()) {
                eprintln!("[{}/{}] {msg}", info.iteration, t.cfg.iterations);
            }
            bar.set_message(msg);
        }
        if every > 0 && info.iteration % every == 0 {
            if let Err(e) = checkpoint::save(t, ckpt) {
                ckpt_err = Some(e.to_string());
            }
        }
    })?;
    bar.finish();
    if let Some(e) = ckpt_err {
        return Err(format!("writing a checkpoint failed: {e}").into());
    }
    Ok(reason)
}

/// Runs `spaceport sweep`.
pub fn sweep(spec_path: &std::path::Path, out: &std::path::Path) -> AnyResult<()> {
    let text = std::fs::read_to_string(spec_path)
        .map_err(|e| format!("cannot read {}: {e}", spec_path.display()))?;
    let mut spec: splat_core::train::sweep::SweepSpec = serde_yaml::from_str(&text)
        .map_err(|e| format!("invalid sweep {}: {e}", spec_path.display()))?;
    if spec.scene.is_relative() {
        if let Some(dir) = spec_path.parent() {
            spec.scene = dir.join(&spec.scene);
        }
    }
    let total = splat_core::train::sweep::combinations(&spec.grid).len();
    let bar = crate::progress_bar(
        total as u64,
        "{bar:30} {pos}/{len} configurations {msg} [{elapsed_precise}]",
    );
    let results =
        splat_core::train::sweep::run_sweep(&spec, out, &mut CpuBackend, &mut |i, _, r| {
            bar.set_position(i as u64 + 1);
            bar.set_message(format!("last: {:.2} dB in {:.0} s", r.psnr, r.seconds));
        })?;
    bar.finish();
    for (i, r) in results.iter().enumerate() {
        let vals: Vec<String> = r.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{i}: {} -> {:.2} dB, SSIM {:.4}, {:.1} s, {} Gaussians",
            vals.join(" "),
            r.psnr,
            r.ssim,
            r.seconds,
            r.gaussians
        );
    }
    println!("results in {}", out.join("results.csv").display());
    Ok(())
}
