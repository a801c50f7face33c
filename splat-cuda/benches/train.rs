//! Trains a scene with `splat_core::train::Trainer` on the CUDA backend (or the CPU with
//! `--cpu`) and prints one JSON line of metrics: the lego protocol's GPU run.
//!
//! `cargo bench -p splat-cuda --bench train -- SCENE_DIR [--iters N] [--downscale F]
//! [--white-bg] [--cpu]`; without a scene (a plain `cargo bench`) it says so and trains nothing.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use splat_core::backend::TrainBackend;
use splat_core::scene::{load_scene, Downscale, LoadOptions};
use splat_core::train::config::TrainConfig;
use splat_core::train::Trainer;
use splat_core::CpuBackend;
use splat_cuda::CudaBackend;

fn run() -> Result<String, String> {
    let args = bench_args();
    let scene_path = args.first().ok_or(USAGE)?;
    let value = |flag: &str| -> Option<&String> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let mut cfg = TrainConfig::default();
    if let Some(v) = value("--iters") {
        cfg.iterations = v
            .parse()
            .map_err(|_| format!("--iters {v}: not a number"))?;
    }
    let downscale = match value("--downscale") {
        Some(v) => Downscale::Factor(v.parse().map_err(|_| format!("--downscale {v}"))?),
        None => Downscale::None,
    };
    if args.iter().any(|a| a == "--white-bg") {
        cfg.background = Some([1.0; 3]);
    }
    let load = LoadOptions {
        downscale,
        background: cfg.background.unwrap_or([0.0; 3]),
        ..Default::default()
    };
    let scene = load_scene(scene_path, &load).map_err(|e| e.to_string())?;
    let mut backend: Box<dyn TrainBackend> = if args.iter().any(|a| a == "--cpu") {
        Box::new(CpuBackend)
    } else {
        Box::new(CudaBackend::new().map_err(|e| e.to_string())?)
    };
    let t0 = Instant::now();
    let mut trainer = Trainer::new(&scene, cfg, backend.as_mut()).map_err(|e| e.to_string())?;
    let stop = AtomicBool::new(false);
    let mut last_log = Instant::now();
    trainer
        .run(&stop, &mut |info, _| {
            if info.iteration % 500 == 0 || last_log.elapsed().as_secs() >= 30 {
                last_log = Instant::now();
                eprintln!(
                    "[{}] loss {:.4} psnr {:.2} gaussians {}",
                    info.iteration, info.loss, info.psnr, info.gaussians
                );
            }
        })
        .map_err(|e| e.to_string())?;
    let train_wall = t0.elapsed().as_secs_f64();
    let train_seconds = trainer.elapsed_seconds();
    let t1 = Instant::now();
    let eval = trainer
        .evaluate(&scene.test, &mut |_, _, _| Ok(()))
        .map_err(|e| e.to_string())?;
    let out = serde_json::json!({
        "backend": trainer.backend_name(),
        "scene": scene.name,
        "iterations": trainer.state.iteration,
        "train_views": scene.train.len(),
        "test_views": scene.test.len(),
        "test_psnr": eval.psnr,
        "test_ssim": eval.ssim,
        "gaussians": trainer.gaussians_len(),
        "train_seconds": train_seconds,
        "train_wall_seconds_incl_init": train_wall,
        "eval_seconds": t1.elapsed().as_secs_f64(),
    });
    Ok(out.to_string())
}

const USAGE: &str = "usage: cargo bench -p splat-cuda --bench train -- SCENE_DIR [--iters N] [--downscale F] [--white-bg] [--cpu]";

/// The arguments after the program name, without the `--bench` that cargo bench adds.
fn bench_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}

fn main() -> ExitCode {
    if bench_args().is_empty() {
        eprintln!("train bench SKIPPED: no scene given ({USAGE})");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("train bench: {e}");
            ExitCode::FAILURE
        }
    }
}
