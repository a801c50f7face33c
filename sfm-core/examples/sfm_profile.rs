//! Runs the SfM pipeline on a folder and prints per-stage times, the report and, given a
//! reference (a COLMAP `sparse/0` folder or Strecha `gt_dense_cameras`), pose AUC: the driver
//! behind the sfm-core numbers in BENCHMARKS.md.
//!
//! `cargo run --release -p sfm-core --example sfm_profile -- IMAGES OUT [REFERENCE]`
//!
//! Environment: `SFM_MATCH_CACHE` (features and verified matches saved there, or reused when the
//! file exists, so that only the mapper re-runs), `SFM_MAX_SIZE` (default 800).
use std::error::Error;
use std::path::{Path, PathBuf};

use glam::{DMat3, DVec3};
use sfm_core::colmap;
use sfm_core::eval::{relative_pose_errors, Pose};
use sfm_core::{run, SfmOptions};

/// Reference poses by image name.
fn reference(dir: &Path) -> Result<Vec<(String, Pose)>, Box<dyn Error>> {
    if dir.join("cameras.bin").exists() || dir.join("cameras.txt").exists() {
        let m = colmap::read(dir)?;
        return Ok(m
            .images
            .iter()
            .map(|im| {
                let pose = Pose {
                    rotation: im.rotation(),
                    translation: DVec3::from_array(im.tvec),
                };
                (im.name.clone(), pose)
            })
            .collect());
    }
    // Strecha: K (9), distortion (3), R camera-to-world (9), centre (3), width height.
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(img) = name.strip_suffix(".camera") else {
            continue;
        };
        let v: Vec<f64> = std::fs::read_to_string(&p)?
            .split_whitespace()
            .map(|s| s.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        if v.len() < 24 {
            return Err(format!("{}: expected 24 numbers", p.display()).into());
        }
        let r = DMat3::from_cols_array(&[
            v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19], v[20],
        ])
        .transpose();
        let c = DVec3::new(v[21], v[22], v[23]);
        let rotation = r.transpose();
        out.push((
            img.to_string(),
            Pose {
                rotation,
                translation: -(rotation * c),
            },
        ));
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [images, out, rest @ ..] = args.as_slice() else {
        return Err("usage: sfm_profile IMAGES OUT [REFERENCE]".into());
    };
    let mut opts = SfmOptions::default();
    if let Ok(s) = std::env::var("SFM_MAX_SIZE") {
        opts.max_image_size = s.parse()?;
    }
    opts.match_cache = std::env::var("SFM_MATCH_CACHE").ok().map(PathBuf::from);
    let out = PathBuf::from(out);
    let report = run(&opts, images.as_ref(), &out, &|_, _, _| {})?;
    for s in &report.stages {
        println!("stage {:?}: {:.2} s", s.stage, s.seconds);
    }
    println!(
        "registered {}/{}, points {}, track {:.2}, reproj {:.4} px, matching cpu {:.1} s, verify cpu {:.1} s, total {:.2} s",
        report.registered_images,
        report.num_images,
        report.num_points,
        report.mean_track_length,
        report.mean_reprojection_error,
        report.descriptor_matching_cpu_seconds,
        report.verification_cpu_seconds,
        report.total_seconds
    );
    if let Some(r) = rest.first() {
        let truth = reference(Path::new(r))?;
        let model = colmap::read(out.join("sparse/0"))?;
        let mut est = Vec::new();
        let mut gt = Vec::new();
        for (name, p) in &truth {
            if let Some(im) = model.images.iter().find(|im| &im.name == name) {
                est.push(Pose {
                    rotation: im.rotation(),
                    translation: DVec3::from_array(im.tvec),
                });
                gt.push(*p);
            }
        }
        println!(
            "reference: {} of {} images in the model",
            est.len(),
            truth.len()
        );
        if let Some(e) = relative_pose_errors(&est, &gt) {
            println!(
                "AUC@1/3/5/10 {:.2} {:.2} {:.2} {:.2}, rot median {:.4} deg, trans median {:.4} deg",
                e.auc[0], e.auc[1], e.auc[2], e.auc[3], e.rotation_median_deg, e.translation_median_deg
            );
        }
    }
    Ok(())
}
