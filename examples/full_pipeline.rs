//! The whole pipeline through the three library crates: photos -> SfM (sfm-core) -> 3D Gaussian
//! training on the CPU (splat-core) -> `.sog` compression (sogs-codec).
//!
//! `cargo run --release -p spaceport-examples --example full_pipeline -- [IMAGES] [OUT] [ITERS] [SFM_SIZE] [TRAIN_SIZE]`
//!
//! Defaults: `builtin` (the built-in scene's 36 photos, rendered into `OUT/input` first; give a
//! folder such as `../shared/data/strecha/fountain-P11/images` for real photos),
//! `$TMPDIR/spaceport-examples/full_pipeline`, 300 iterations, SfM on images of at most 800 px,
//! training on images of at most 400 px.
use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use sfm_core::SfmOptions;
use sogs_codec::EncodeOptions;
use spaceport_examples::{arg, file_size, temp_out};
use splat_core::scene::{load_scene, Downscale, LoadOptions};
use splat_core::train::{TrainConfig, Trainer};
use splat_core::CpuBackend;

fn main() -> Result<(), Box<dyn Error>> {
    let images: String = arg(0, "IMAGES", "builtin".to_string())?;
    let out: PathBuf = arg(1, "OUT", temp_out("full_pipeline"))?;
    let images = if images == "builtin" {
        // 0. The built-in scene: photos ray-cast from a ring of known cameras.
        let dir = out.join("input");
        let opt = splat_core::demo::photos::PhotoSetOptions::default();
        splat_core::demo::photos::write_photo_set(&dir, &opt)?;
        dir
    } else {
        PathBuf::from(images)
    };
    let iterations: usize = arg(2, "ITERS", 300)?;
    let sfm_size: u32 = arg(3, "SFM_SIZE", 800)?;
    let train_size: u32 = arg(4, "TRAIN_SIZE", 400)?;

    // 1. SfM writes a COLMAP scene folder: sparse/0 (PINHOLE) and undistorted images/.
    let sfm = SfmOptions {
        max_image_size: sfm_size,
        ..Default::default()
    };
    let report = sfm_core::run(&sfm, &images, &out, &|_, _, _| {})?;
    println!(
        "sfm: {}/{} images registered, {} points, reprojection error {:.3} px, {:.1} s",
        report.registered_images,
        report.num_images,
        report.num_points,
        report.mean_reprojection_error,
        report.total_seconds
    );

    // 2. That folder is a scene splat-core loads like any COLMAP scene; SfM points seed the Gaussians.
    let scene = load_scene(
        &out,
        &LoadOptions {
            downscale: Downscale::MaxSide(train_size),
            ..Default::default()
        },
    )?;
    let cfg = TrainConfig {
        iterations,
        ..Default::default()
    };
    let mut trainer = Trainer::new(&scene, cfg, &mut CpuBackend)?;
    let reason = trainer.run(&AtomicBool::new(false), &mut |_, _| {})?;
    let metrics = trainer.write_outputs(&out, reason)?;
    println!(
        "train: {} iterations in {:.1} s, {} Gaussians, test PSNR {:.2} dB over {} views",
        metrics.iterations,
        metrics.train_seconds,
        metrics.gaussians,
        metrics.test.psnr,
        scene.test.len()
    );

    // 3. The trained PLY -> single-file SOG, then read back as a check.
    let ply = out.join("point_cloud.ply");
    let gaussians = splat_core::ply::read_ply(&ply)?;
    let files = sogs_codec::encode_sog(&gaussians, &EncodeOptions::default(), &mut |_| {})?;
    let sog = out.join("scene.sog");
    sogs_codec::write_sog_bundle(&files, &sog)?;
    let decoded = sogs_codec::read_sog(&sog)?;
    let (ply_bytes, sog_bytes) = (file_size(&ply)?, file_size(&sog)?);
    println!(
        "compress: {} Gaussians, {} -> {} bytes ({:.1}x), decoded {} -> {}",
        gaussians.len(),
        ply_bytes,
        sog_bytes,
        ply_bytes as f64 / sog_bytes as f64,
        decoded.len(),
        sog.display()
    );
    Ok(())
}
