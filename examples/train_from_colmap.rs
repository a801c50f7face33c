//! Trains 3D Gaussians on a COLMAP scene folder (`sparse/0` + `images/`) with the CPU backend and
//! writes `point_cloud.ply`, test-view renders and `metrics.json`.
//!
//! `cargo run --release -p spaceport-examples --example train_from_colmap -- [SCENE] [OUT] [ITERS] [DOWNSCALE]`
//!
//! Defaults: `../shared/data/mipnerf360_bonsai_800`, `$TMPDIR/spaceport-examples/train_from_colmap`,
//! 300 iterations, images downscaled 4x (200x133).
use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use spaceport_examples::{arg, shared_data, temp_out};
use splat_core::scene::{load_scene, Downscale, LoadOptions};
use splat_core::train::{TrainConfig, Trainer};
use splat_core::CpuBackend;

fn main() -> Result<(), Box<dyn Error>> {
    let scene_dir: PathBuf = arg(0, "SCENE", shared_data("mipnerf360_bonsai_800"))?;
    let out: PathBuf = arg(1, "OUT", temp_out("train_from_colmap"))?;
    let iterations: usize = arg(2, "ITERS", 300)?;
    let downscale: f64 = arg(3, "DOWNSCALE", 4.0)?;

    // Without a test list, every 8th image by name is held out (the Mip-NeRF 360 convention).
    let scene = load_scene(
        &scene_dir,
        &LoadOptions {
            downscale: Downscale::Factor(downscale),
            ..Default::default()
        },
    )?;
    println!(
        "{}: {} train / {} test views, {} SfM points",
        scene.name,
        scene.train.len(),
        scene.test.len(),
        scene.points.as_ref().map_or(0, |(p, _)| p.len())
    );

    // The 3DGS recipe with a shorter run; `TrainConfig::from_yaml_file` reads the same knobs.
    let cfg = TrainConfig {
        iterations,
        ..Default::default()
    };
    let mut trainer = Trainer::new(&scene, cfg, &mut CpuBackend)?;
    // Raising this flag (e.g. from a Ctrl-C handler) stops the loop after the current step.
    let stop = AtomicBool::new(false);
    let reason = trainer.run(&stop, &mut |info, _| {
        if info.iteration % 50 == 0 {
            println!(
                "iter {:5}  loss {:.4}  psnr {:.2} dB  {} Gaussians",
                info.iteration, info.loss, info.psnr, info.gaussians
            );
        }
    })?;

    // Creates OUT if needed; every file is written to a temporary name and renamed into place.
    let m = trainer.write_outputs(&out, reason)?;
    println!(
        "{} iterations in {:.1} s: test PSNR {:.2} dB, SSIM {:.4}, {} Gaussians -> {}",
        m.iterations,
        m.train_seconds,
        m.test.psnr,
        m.test.ssim,
        m.gaussians,
        out.join("point_cloud.ply").display()
    );
    Ok(())
}
