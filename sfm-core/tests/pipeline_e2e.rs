//! End to end: Strecha fountain-P11 downscaled, every image registered, rotations against the
//! ground truth, output model readable.

use glam::{DMat3, DVec3};
use sfm_core::estimators::rotation_angle;
use sfm_core::internals::mat3_rows;
use sfm_core::SiftOptions;
use sfm_core::{run, SfmOptions};
use std::path::{Path, PathBuf};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

/// Ground-truth world-to-camera rotation and camera centre from a Strecha `.camera` file.
fn read_gt(path: &Path) -> (DMat3, DVec3) {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Vec<f64> = s
        .split_whitespace()
        .map(|t| t.parse().expect("number"))
        .collect();
    // K (9), distortion (3), R camera-to-world (9), C (3), w h
    let r = mat3_rows(
        [v[12], v[13], v[14]],
        [v[15], v[16], v[17]],
        [v[18], v[19], v[20]],
    );
    (r.transpose(), DVec3::new(v[21], v[22], v[23]))
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sfm-core-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn fountain_p11_downscaled_registers_all_with_accurate_rotations() {
    let scene = Path::new(DATA).join("strecha/fountain-P11");
    let out = out_dir("fountain");
    // Downscale 4x into a scratch folder so every stage, output included, runs at CI size.
    let small = out.join("input");
    std::fs::create_dir_all(&small).unwrap();
    let names: Vec<String> = (0..11).map(|i| format!("{i:04}.jpg")).collect();
    std::thread::scope(|s| {
        for chunk in names.chunks(6) {
            let (scene, small) = (&scene, &small);
            s.spawn(move || {
                for n in chunk {
                    let img = image::open(scene.join("images").join(n)).expect("decode");
                    let img = img.resize_exact(768, 512, image::imageops::FilterType::Triangle);
                    img.to_rgb8().save(small.join(n)).expect("write");
                }
            });
        }
    });
    let opt = SfmOptions {
        sift: SiftOptions {
            max_features: 4096,
            ..Default::default()
        },
        ..Default::default()
    };
    let report = run(&opt, &small, &out.join("model"), &|_, _, _| {}).expect("pipeline");
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report.num_images, 11);
    assert_eq!(
        report.registered_images, 11,
        "unregistered: {:?}",
        report.unregistered
    );
    assert!(
        report.mean_reprojection_error < 1.0,
        "reprojection error {}",
        report.mean_reprojection_error
    );
    assert!(report.num_points > 1000, "points {}", report.num_points);

    let rec = sfm_core::colmap::read(out.join("model/sparse/0")).expect("model readable");
    assert_eq!(rec.images.len(), 11);
    let mut est = Vec::new();
    let mut gt = Vec::new();
    for im in &rec.images {
        est.push(im.rotation());
        gt.push(
            read_gt(
                &scene
                    .join("gt_dense_cameras")
                    .join(format!("{}.camera", im.name)),
            )
            .0,
        );
    }
    // Relative rotations are gauge-free: compare every pair.
    let mut errs = Vec::new();
    for a in 0..est.len() {
        for b in a + 1..est.len() {
            let re = est[b] * est[a].transpose();
            let rg = gt[b] * gt[a].transpose();
            errs.push(rotation_angle(&re, &rg).to_degrees());
        }
    }
    errs.sort_by(f64::total_cmp);
    let median = errs[errs.len() / 2];
    let max = errs[errs.len() - 1];
    eprintln!("relative rotation error: median {median:.3} deg, max {max:.3} deg");
    assert!(median < 0.4, "median rotation error {median}");
    assert!(max < 1.0, "max rotation error {max}");
    let _ = std::fs::remove_dir_all(&out);
}

/// The message of the error that a run on the photos in `dir` must end with.
fn refusal(dir: &Path) -> String {
    let err = run(&SfmOptions::default(), dir, &dir.join("out"), &|_, _, _| {});
    err.expect_err("the run must fail").to_string()
}

#[test]
fn too_few_images_is_a_clear_error() {
    let dir = out_dir("few");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("broken.jpg"), b"not a jpeg").unwrap();
    let msg = refusal(&dir);
    assert!(
        msg.contains("at least 2") && msg.contains("broken.jpg"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn images_that_share_no_view_are_a_clear_error() {
    // A fountain photo and a bonsai photo: features match only by accident, nothing verifies
    // into a two-view model that can start a reconstruction.
    let dir = out_dir("disjoint");
    std::fs::create_dir_all(&dir).unwrap();
    let srcs = [
        Path::new(DATA).join("strecha/fountain-P11/images/0000.jpg"),
        Path::new(DATA).join("mipnerf360_bonsai_800/images/DSCF5565.JPG"),
    ];
    for (k, src) in srcs.iter().enumerate() {
        let img = image::open(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        img.resize(480, 480, image::imageops::FilterType::Triangle)
            .to_rgb8()
            .save(dir.join(format!("{k}.jpg")))
            .unwrap();
    }
    let msg = refusal(&dir);
    assert!(
        msg.contains("share") || msg.contains("initial"),
        "unexpected error: {msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
