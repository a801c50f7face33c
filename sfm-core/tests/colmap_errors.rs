//! Bad COLMAP models give typed errors that name the file and the problem, and bad data
//! is never written.

use std::path::Path;

use sfm_core::colmap::{self, Camera, ColmapError, Image, Point2D, Point3D, Reconstruction};
use spaceport_io::scratch_dir;

fn small_model() -> Reconstruction {
    Reconstruction {
        cameras: vec![Camera::pinhole(1, 640, 480, 500.0, 500.0, 320.0, 240.0)],
        images: vec![Image {
            points2d: vec![Point2D {
                xy: [1.5, 2.5],
                point3d_id: Some(3),
            }],
            ..Image::new(1, 1, "a.png", [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
        }],
        points3d: vec![Point3D {
            id: 3,
            xyz: [0.0, 0.0, 2.0],
            rgb: [1, 2, 3],
            error: 0.5,
            track: vec![(1, 0)],
        }],
    }
}

fn write_txt(dir: &Path, cameras: &str, images: &str, points: &str) {
    std::fs::write(dir.join("cameras.txt"), cameras).unwrap();
    std::fs::write(dir.join("images.txt"), images).unwrap();
    std::fs::write(dir.join("points3D.txt"), points).unwrap();
}

#[test]
fn truncated_binary_files_name_the_file_and_the_field() {
    let dir = scratch_dir("truncated");
    colmap::write_binary(&dir, &small_model()).unwrap();
    for (name, expect_in_what) in [
        ("cameras.bin", "camera #0"),
        ("images.bin", "image #0"),
        ("points3D.bin", "point3D #0"),
    ] {
        let path = dir.join(name);
        let full = std::fs::read(&path).unwrap();
        // Every proper prefix is truncated; the exact cut decides which field is named.
        for cut in 0..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            match colmap::read_binary(&dir) {
                Err(ColmapError::Truncated { path: p, what }) => {
                    assert_eq!(p, path);
                    if cut >= 8 {
                        assert!(what.contains(expect_in_what), "{name} cut at {cut}: {what}");
                    } else {
                        assert_eq!(what, "the record count");
                    }
                }
                other => panic!("{name} cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
        let cut = full.len() - 3;
        std::fs::write(&path, &full[..cut]).unwrap();
        let msg = colmap::read_binary(&dir).unwrap_err().to_string();
        assert!(msg.contains(name) && msg.contains("truncated"), "{msg}");
        std::fs::write(&path, &full).unwrap();
    }
    assert_eq!(colmap::read_binary(&dir).unwrap(), small_model());

    let path = dir.join("images.bin");
    let mut extra = std::fs::read(&path).unwrap();
    extra.push(0);
    std::fs::write(&path, &extra).unwrap();
    assert!(matches!(
        colmap::read_binary(&dir),
        Err(ColmapError::TrailingData { bytes: 1, .. })
    ));
}

#[test]
fn missing_files_and_directories() {
    let dir = scratch_dir("missing");
    assert!(matches!(
        colmap::read(&dir),
        Err(ColmapError::ModelNotFound { .. })
    ));
    colmap::write_binary(&dir, &small_model()).unwrap();
    std::fs::remove_file(dir.join("points3D.bin")).unwrap();
    match colmap::read(&dir) {
        Err(ColmapError::MissingFile { path }) => assert_eq!(path, dir.join("points3D.bin")),
        other => panic!("expected MissingFile, got {other:?}"),
    }
}

#[test]
fn unsupported_camera_models_are_named() {
    let dir = scratch_dir("unsupported_bin");
    colmap::write_binary(&dir, &small_model()).unwrap();
    let path = dir.join("cameras.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    // The model id follows the u64 count and the u32 camera id.
    bytes[12..16].copy_from_slice(&5i32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    match colmap::read_binary(&dir) {
        Err(e @ ColmapError::UnsupportedCameraModel { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("OPENCV_FISHEYE") && msg.contains("cameras.bin"),
                "{msg}"
            );
        }
        other => panic!("expected UnsupportedCameraModel, got {other:?}"),
    }
    bytes[12..16].copy_from_slice(&99i32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(colmap::read_binary(&dir)
        .unwrap_err()
        .to_string()
        .contains("id 99"));

    let dir = scratch_dir("unsupported_txt");
    write_txt(
        &dir,
        "1 FULL_OPENCV 10 10 1 1 5 5 0 0 0 0 0 0 0 0\n",
        "",
        "",
    );
    match colmap::read_text(&dir) {
        Err(ColmapError::UnsupportedCameraModel { path, model }) => {
            assert_eq!(path, dir.join("cameras.txt"));
            assert_eq!(model, "FULL_OPENCV");
        }
        other => panic!("expected UnsupportedCameraModel, got {other:?}"),
    }
}

#[test]
fn malformed_text_lines_report_file_and_line() {
    let good_images = "1 1 0 0 0 0 0 1 1 a.png\n1.5 2.5 3\n";
    let good_points = "3 0 0 2 1 2 3 0.5 1 0\n";
    let cases: [(&str, &str, &str, &str, usize); 6] = [
        (
            "cameras.txt",
            "# header\n1 PINHOLE 640 480 500 500 320\n",
            good_images,
            good_points,
            2,
        ),
        (
            "cameras.txt",
            "1 PINHOLE 640 480 500 500 320 240 7\n",
            good_images,
            good_points,
            1,
        ),
        (
            "cameras.txt",
            "1 PINHOLE wide 480 500 500 320 240\n",
            good_images,
            good_points,
            1,
        ),
        (
            "images.txt",
            "1 PINHOLE 640 480 500 500 320 240\n",
            "#\n#\n1 1 0 0 0 0 0 1 1 a.png\n1.5 2.5\n",
            good_points,
            4,
        ),
        (
            "images.txt",
            "1 PINHOLE 640 480 500 500 320 240\n",
            "1 1 0 0 zero 0 0 1 1 a.png\n\n",
            good_points,
            1,
        ),
        (
            "points3D.txt",
            "1 PINHOLE 640 480 500 500 320 240\n",
            good_images,
            "\n3 0 0 2 1 2 300 0.5 1 0\n",
            2,
        ),
    ];
    for (i, (file, cameras, images, points, line)) in cases.into_iter().enumerate() {
        let dir = scratch_dir(&format!("malformed_{i}"));
        write_txt(&dir, cameras, images, points);
        match colmap::read_text(&dir) {
            Err(ColmapError::MalformedLine {
                path,
                line: l,
                reason,
            }) => {
                assert_eq!(path, dir.join(file), "case {i}: {reason}");
                assert_eq!(l, line, "case {i}: {reason}");
            }
            other => panic!("case {i}: expected MalformedLine, got {other:?}"),
        }
    }
}

#[test]
fn non_finite_values_are_rejected_on_read_and_write() {
    let dir = scratch_dir("nonfinite_txt");
    write_txt(&dir, "1 PINHOLE 640 480 500 nan 320 240\n", "", "");
    match colmap::read_text(&dir) {
        Err(ColmapError::NonFinite { path, what }) => {
            assert_eq!(path, dir.join("cameras.txt"));
            assert!(what.contains("line 1"), "{what}");
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    write_txt(
        &dir,
        "1 PINHOLE 640 480 500 500 320 240\n",
        "1 1 0 0 0 inf 0 1 1 a.png\n\n",
        "",
    );
    assert!(matches!(
        colmap::read_text(&dir),
        Err(ColmapError::NonFinite { .. })
    ));

    let dir = scratch_dir("nonfinite_bin");
    colmap::write_binary(&dir, &small_model()).unwrap();
    let path = dir.join("images.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    // qw follows the u64 count and the u32 image id.
    bytes[12..20].copy_from_slice(&f64::NAN.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(
        matches!(colmap::read_binary(&dir), Err(ColmapError::NonFinite { path: p, .. }) if p == path)
    );

    let mut bad = small_model();
    bad.points3d[0].xyz[1] = f64::INFINITY;
    let out = scratch_dir("nonfinite_write");
    assert!(matches!(
        colmap::write_binary(&out, &bad),
        Err(ColmapError::NonFinite { .. })
    ));
    assert!(matches!(
        colmap::write_text(&out, &bad),
        Err(ColmapError::NonFinite { .. })
    ));
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing may be written for bad data"
    );
}

#[test]
fn references_to_missing_cameras_images_or_keypoints_are_errors() {
    let dir = scratch_dir("references");
    write_txt(
        &dir,
        "1 PINHOLE 640 480 500 500 320 240\n",
        "1 1 0 0 0 0 0 1 2 a.png\n\n",
        "",
    );
    match colmap::read_text(&dir) {
        Err(ColmapError::MissingCamera {
            path,
            image_id: 1,
            camera_id: 2,
        }) => assert_eq!(path, dir.join("images.txt")),
        other => panic!("expected MissingCamera, got {other:?}"),
    }

    let mut bad = small_model();
    bad.points3d[0].track.push((1, 5));
    let out = scratch_dir("bad_track");
    assert!(matches!(
        colmap::write_binary(&out, &bad),
        Err(ColmapError::InvalidTrack {
            point3d_id: 3,
            image_id: 1,
            point2d_idx: 5,
            ..
        })
    ));
    let mut bad = small_model();
    bad.images[0].camera_id = 8;
    assert!(matches!(
        colmap::write_binary(&out, &bad),
        Err(ColmapError::MissingCamera { camera_id: 8, .. })
    ));
    let mut bad = small_model();
    bad.cameras.push(bad.cameras[0].clone());
    assert!(matches!(
        colmap::write_text(&out, &bad),
        Err(ColmapError::DuplicateId {
            kind: "camera",
            id: 1,
            ..
        })
    ));
    let mut bad = small_model();
    bad.images[0].name = "line\nbreak.png".into();
    assert!(matches!(
        colmap::write_text(&out, &bad),
        Err(ColmapError::InvalidName { image_id: 1, .. })
    ));
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing may be written for bad data"
    );
}

#[test]
fn wrong_parameter_count_is_refused_by_the_constructor() {
    use sfm_core::colmap::CameraModel;
    let err = Camera::new(1, CameraModel::OpenCv, 10, 10, vec![1.0; 4]).unwrap_err();
    assert!(matches!(
        err,
        ColmapError::ParamCount {
            expected: 8,
            got: 4,
            ..
        }
    ));
}
