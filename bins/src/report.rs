//! The run's report: `report.json` (the key numbers of every stage), `report.md` and a picture
//! of test renders beside their ground truth.

use std::path::Path;

use serde_json::{json, Value};
use splat_core::scene::{load_image, Image, Scene};

use crate::job::{Job, StageName};
use crate::{PipelineError, Result};

/// Up to `max` test views as rows of [ground truth | render], from the renders the trainer
/// wrote (`NNN_name.png`, in test-view order).
pub fn side_by_side(scene: &Scene, renders: &Path, max: usize) -> Result<Image> {
    let mut files: Vec<_> = std::fs::read_dir(renders)
        .map_err(|e| PipelineError::io(renders, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    files.sort();
    let rows: Vec<(Image, Image)> = scene
        .test
        .iter()
        .zip(&files)
        .take(max)
        .map(|(v, f)| Ok((v.image.clone(), load_image(f, scene.background)?)))
        .collect::<Result<_>>()?;
    let Some((first, _)) = rows.first() else {
        return Err(PipelineError::Invalid(format!(
            "no test renders in {}",
            renders.display()
        )));
    };
    let (w, h) = (first.width, first.height);
    let gap = 4;
    let mut out = Image::filled(2 * w + gap, rows.len() as u32 * (h + gap) - gap, [1.0; 3]);
    for (r, (truth, render)) in rows.iter().enumerate() {
        for (c, img) in [truth, render].into_iter().enumerate() {
            let img = if (img.width, img.height) == (w, h) {
                img.clone()
            } else {
                img.resize_area(w, h)
            };
            for y in 0..h {
                for x in 0..w {
                    out.set_pixel(
                        c as u32 * (w + gap) + x,
                        r as u32 * (h + gap) + y,
                        img.pixel(x, y),
                    );
                }
            }
        }
    }
    Ok(out)
}

/// The key numbers of a finished job.
pub fn summary(job: &Job) -> Value {
    let m = |s: StageName| {
        job.stage(s)
            .map(|r| r.metrics.clone())
            .unwrap_or(Value::Null)
    };
    let secs = |s: StageName| job.stage(s).and_then(|r| r.seconds);
    let sfm = m(StageName::Sfm);
    let train = m(StageName::Train);
    let compress = m(StageName::Compress);
    json!({
        "input": job.input,
        "sfm": if sfm.is_null() { Value::Null } else { json!({
            "images": sfm["num_images"],
            "registered": sfm["registered_images"],
            "unregistered": sfm["unregistered"],
            "unreadable": sfm["unreadable"],
            "disconnected_groups": sfm["other_models"],
            "points": sfm["num_points"],
            "mean_reprojection_error_px": sfm["mean_reprojection_error"],
            "pose_errors": sfm.get("pose_errors").cloned().unwrap_or(Value::Null),
            "seconds": secs(StageName::Sfm),
        })},
        "train": json!({
            "backend": train["backend"],
            "iterations": train["iterations"],
            "gaussians": train["gaussians"],
            "test_psnr": train["test"]["psnr"],
            "test_ssim": train["test"]["ssim"],
            "seconds": secs(StageName::Train),
        }),
        "compress": json!({
            "ply_bytes": compress["ply_bytes"],
            "sog_bytes": compress["sog_bytes"],
            "ratio": compress["ratio"],
            "test_psnr_ply": compress["test_psnr_ply"],
            "test_psnr_sog": compress["test_psnr_sog"],
            "psnr_views": compress["psnr_views"],
            "seconds": secs(StageName::Compress),
        }),
        "total_seconds": job.stages.iter().filter_map(|s| s.seconds).sum::<f64>(),
    })
}

/// `report.md` from [`summary`]'s numbers.
pub fn markdown(r: &Value) -> String {
    let f = |v: &Value, digits: usize| {
        v.as_f64()
            .map(|x| format!("{x:.digits$}"))
            .unwrap_or_else(|| "-".into())
    };
    let mut s = String::from("# Spaceport run\n\n| | |\n|---|---|\n");
    let sfm = &r["sfm"];
    if !sfm.is_null() {
        s += &format!(
            "| registered images | {} / {} |\n| 3D points | {} |\n| mean reprojection error | {} px |\n",
            sfm["registered"], sfm["images"], sfm["points"], f(&sfm["mean_reprojection_error_px"], 3)
        );
        let pe = &sfm["pose_errors"];
        if !pe.is_null() {
            s += &format!(
                "| poses vs the true cameras | rotation median {} deg, translation median {} deg, AUC@1/3/5 deg {} / {} / {} |\n",
                f(&pe["rotation_median_deg"], 3),
                f(&pe["translation_median_deg"], 3),
                f(&pe["auc"][0], 1),
                f(&pe["auc"][1], 1),
                f(&pe["auc"][2], 1)
            );
        }
        let names = |v: &Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        if sfm["unreadable"].as_array().is_some_and(|a| !a.is_empty()) {
            s += &format!("| skipped (unreadable) | {} |\n", names(&sfm["unreadable"]));
        }
        if sfm["unregistered"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            s += &format!("| not registered | {} |\n", names(&sfm["unregistered"]));
        }
        if let Some(groups) = sfm["disconnected_groups"].as_array() {
            for (i, g) in groups.iter().enumerate() {
                s += &format!(
                    "| disconnected group {} (dropped) | {} |\n",
                    i + 1,
                    names(g)
                );
            }
        }
        s += &format!("| SfM time | {} s |\n", f(&sfm["seconds"], 1));
    }
    let t = &r["train"];
    s += &format!(
        "| training | {} iterations on {}, {} s, {} Gaussians |\n| test PSNR / SSIM | {} dB / {} |\n",
        t["iterations"],
        t["backend"].as_str().unwrap_or("-"),
        f(&t["seconds"], 1),
        t["gaussians"],
        f(&t["test_psnr"], 2),
        f(&t["test_ssim"], 4)
    );
    let c = &r["compress"];
    s += &format!(
        "| compression | {} B PLY -> {} B `scene.sog` ({}x) in {} s |\n| PSNR before -> after compression ({} test views) | {} -> {} dB |\n",
        c["ply_bytes"],
        c["sog_bytes"],
        f(&c["ratio"], 1),
        f(&c["seconds"], 1),
        c["psnr_views"],
        f(&c["test_psnr_ply"], 2),
        f(&c["test_psnr_sog"], 2)
    );
    s += &format!("| total | {} s |\n\n", f(&r["total_seconds"], 1));
    s += "Test views: ground truth (left) and render (right).\n\n![test views](report.png)\n";
    s
}
