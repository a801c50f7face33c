//! Structure from motion alone: a folder of photos -> a COLMAP model (`sparse/0`, undistorted
//! `images/`, `distorted/sparse/0`) and `sfm_report.json`.
//!
//! `cargo run --release -p spaceport-examples --example sfm_only -- [IMAGES] [OUT] [MAX_SIZE]`
//!
//! Defaults: `../shared/data/strecha/fountain-P11/images` (11 photos, 3072x2048),
//! `$TMPDIR/spaceport-examples/sfm_only`, images downscaled to at most 800 px.
use std::error::Error;
use std::path::PathBuf;

use sfm_core::colmap;
use sfm_core::{run, SfmOptions};
use spaceport_examples::{arg, shared_data, temp_out};

fn main() -> Result<(), Box<dyn Error>> {
    let images: PathBuf = arg(0, "IMAGES", shared_data("strecha/fountain-P11/images"))?;
    let out: PathBuf = arg(1, "OUT", temp_out("sfm_only"))?;
    let max_size: u32 = arg(2, "MAX_SIZE", 800)?;

    // Defaults follow COLMAP's (SIFT, ratio-tested mutual matches, incremental mapping).
    let opts = SfmOptions {
        max_image_size: max_size,
        ..Default::default()
    };
    let report = run(&opts, &images, &out, &|stage, done, total| {
        if done == total {
            println!("  {stage:?}: {total} done");
        }
    })?;
    println!(
        "registered {}/{} images, {} points, track length {:.2}, reprojection error {:.3} px, {:.1} s",
        report.registered_images,
        report.num_images,
        report.num_points,
        report.mean_track_length,
        report.mean_reprojection_error,
        report.total_seconds
    );

    // The model is plain COLMAP: any tool that reads COLMAP (or `colmap::read`) can take it.
    let model = colmap::read(out.join("sparse/0"))?;
    for img in model.images.iter().take(3) {
        let cam = model
            .camera(img.camera_id)
            .ok_or("image without a camera")?;
        let seen = img
            .points2d
            .iter()
            .filter(|p| p.point3d_id.is_some())
            .count();
        println!(
            "  {}: {} {}x{} params {:.1?}, sees {seen} points",
            img.name,
            cam.model.name(),
            cam.width,
            cam.height,
            cam.params()
        );
    }
    println!("model -> {}", out.join("sparse/0").display());
    Ok(())
}
