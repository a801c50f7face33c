//! Each kind of bad scene input gives its own typed error naming the file at fault.

use std::path::PathBuf;

use serde_json::json;
use sfm_core::colmap::{
    self, Camera as ColmapCamera, ColmapError, Image as ColmapImage, Reconstruction,
};
use spaceport_io::scratch_dir;
use splat_core::scene::{load_scene, save_png, Downscale, Image, LoadOptions, SceneError};

fn opts() -> LoadOptions {
    LoadOptions::default()
}

/// A valid COLMAP scene with two 8x6 images; returns its directory.
fn colmap_scene(name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut rec = Reconstruction {
        cameras: vec![ColmapCamera::pinhole(1, 8, 6, 7.0, 7.0, 4.0, 3.0)],
        ..Default::default()
    };
    for (id, name) in [(1, "a.png"), (2, "b.png")] {
        save_png(
            dir.join("images").join(name),
            &Image::filled(8, 6, [0.2, 0.4, 0.6]),
        )
        .unwrap();
        let tvec = [0.0, 0.0, id as f64];
        rec.images
            .push(ColmapImage::new(id, 1, name, [1.0, 0.0, 0.0, 0.0], tvec));
    }
    colmap::write_text(dir.join("sparse/0"), &rec).unwrap();
    assert_eq!(
        load_scene(&dir, &opts()).unwrap().train.len() + 1,
        2,
        "the fixture itself loads"
    );
    dir
}

/// A valid nerfstudio scene with one 8x6 image, with `patch` applied to its JSON.
fn transforms_scene(name: &str, patch: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = scratch_dir(name);
    save_png(dir.join("a.png"), &Image::filled(8, 6, [0.5; 3])).unwrap();
    let mut body = json!({
        "fl_x": 7.0, "fl_y": 7.0, "w": 8, "h": 6,
        "frames": [{ "file_path": "a.png", "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]] }]
    });
    patch(&mut body);
    std::fs::write(
        dir.join("transforms.json"),
        serde_json::to_string_pretty(&body).unwrap(),
    )
    .unwrap();
    dir
}

#[test]
fn missing_image() {
    let dir = colmap_scene("missing_image");
    std::fs::remove_file(dir.join("images/b.png")).unwrap();
    match load_scene(&dir, &opts()) {
        Err(SceneError::MissingImage { path }) => assert_eq!(path, dir.join("images/b.png")),
        other => panic!("expected MissingImage, got {other:?}"),
    }
    let dir = transforms_scene("missing_image_json", |b| {
        b["frames"][0]["file_path"] = json!("./nowhere/r_0")
    });
    match load_scene(&dir, &opts()) {
        Err(SceneError::MissingImage { path }) => assert_eq!(path, dir.join("nowhere/r_0")),
        other => panic!("expected MissingImage, got {other:?}"),
    }
}

#[test]
fn corrupt_image() {
    let dir = colmap_scene("corrupt_image");
    std::fs::write(dir.join("images/a.png"), b"this is not a png at all").unwrap();
    match load_scene(&dir, &opts()) {
        Err(e @ SceneError::CorruptImage { .. }) => assert!(e.to_string().contains("a.png"), "{e}"),
        other => panic!("expected CorruptImage, got {other:?}"),
    }
    // A PNG cut short is named as truncated, not decoded as a partly grey picture.
    let dir = colmap_scene("truncated_image");
    let bytes = std::fs::read(dir.join("images/b.png")).unwrap();
    std::fs::write(dir.join("images/b.png"), &bytes[..bytes.len() / 2]).unwrap();
    match load_scene(&dir, &opts()) {
        Err(e @ SceneError::TruncatedImage { .. }) => {
            assert!(e.to_string().contains("b.png"), "{e}");
        }
        other => panic!("expected TruncatedImage, got {other:?}"),
    }
}

#[test]
fn image_size_disagreeing_with_its_camera() {
    let dir = colmap_scene("size_mismatch");
    save_png(dir.join("images/a.png"), &Image::filled(10, 6, [0.0; 3])).unwrap();
    // Downscaling happens after the check, so it cannot hide the mismatch.
    let options = LoadOptions {
        downscale: Downscale::Factor(2.0),
        ..opts()
    };
    match load_scene(&dir, &options) {
        Err(SceneError::SizeMismatch {
            path,
            image,
            camera,
        }) => {
            assert_eq!(
                (path, image, camera),
                (dir.join("images/a.png"), (10, 6), (8, 6))
            );
        }
        other => panic!("expected SizeMismatch, got {other:?}"),
    }
    let dir = transforms_scene("size_mismatch_json", |b| b["h"] = json!(5));
    assert!(matches!(
        load_scene(&dir, &opts()),
        Err(SceneError::SizeMismatch {
            image: (8, 6),
            camera: (8, 5),
            ..
        })
    ));
}

#[test]
fn unsupported_camera_model() {
    let dir = colmap_scene("unsupported_model");
    std::fs::write(
        dir.join("sparse/0/cameras.txt"),
        "1 OPENCV_FISHEYE 8 6 7 7 4 3 0 0 0 0\n",
    )
    .unwrap();
    match load_scene(&dir, &opts()) {
        Err(SceneError::Colmap(ColmapError::UnsupportedCameraModel { path, model })) => {
            assert_eq!(
                (path, model.as_str()),
                (dir.join("sparse/0/cameras.txt"), "OPENCV_FISHEYE")
            );
        }
        other => panic!("expected an unsupported model error, got {other:?}"),
    }
    let dir = transforms_scene("unsupported_model_json", |b| {
        b["camera_model"] = json!("OPENCV_FISHEYE")
    });
    assert!(
        matches!(load_scene(&dir, &opts()), Err(SceneError::UnsupportedModel { model, .. }) if model == "OPENCV_FISHEYE")
    );
    let dir = transforms_scene("unsupported_k3", |b| b["k3"] = json!(0.01));
    assert!(matches!(
        load_scene(&dir, &opts()),
        Err(SceneError::UnsupportedModel { .. })
    ));
}

#[test]
fn nan_pose() {
    // Python's json.dump writes NaN as a bare token; it must surface as a non-finite pose.
    let dir = transforms_scene("nan_pose", |_| {});
    let text = std::fs::read_to_string(dir.join("transforms.json"))
        .unwrap()
        .replacen("3", "NaN", 1);
    assert!(text.contains("NaN"));
    std::fs::write(dir.join("transforms.json"), text).unwrap();
    match load_scene(&dir, &opts()) {
        Err(SceneError::NonFinite { path, what }) => {
            assert_eq!(path, dir.join("transforms.json"));
            assert!(what.contains("transform_matrix"), "{what}");
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    let dir = transforms_scene("inf_focal", |_| {});
    let text = std::fs::read_to_string(dir.join("transforms.json"))
        .unwrap()
        .replace("7.0", "-Infinity");
    std::fs::write(dir.join("transforms.json"), text).unwrap();
    assert!(
        matches!(load_scene(&dir, &opts()), Err(SceneError::NonFinite { what, .. }) if what.contains("fl_x"))
    );

    let dir = colmap_scene("nan_pose_colmap");
    let images = dir.join("sparse/0/images.txt");
    let text = std::fs::read_to_string(&images)
        .unwrap()
        .replace("1 1 0 0 0 0 0 1 1 a.png", "1 1 0 0 0 nan 0 1 1 a.png");
    std::fs::write(&images, text).unwrap();
    assert!(
        matches!(load_scene(&dir, &opts()), Err(SceneError::Colmap(ColmapError::NonFinite { path, .. })) if path == images)
    );
}

#[test]
fn truncated_or_malformed_json_and_models() {
    let dir = transforms_scene("truncated_json", |_| {});
    let path = dir.join("transforms.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    match load_scene(&dir, &opts()) {
        Err(e @ SceneError::MalformedJson { .. }) => {
            assert!(e.to_string().contains("transforms.json"), "{e}")
        }
        other => panic!("expected MalformedJson, got {other:?}"),
    }
    let dir = transforms_scene("not_a_rotation", |b| {
        b["frames"][0]["transform_matrix"][0][0] = json!(2.0)
    });
    assert!(matches!(
        load_scene(&dir, &opts()),
        Err(SceneError::InvalidTransforms { .. })
    ));
    let dir = transforms_scene("no_pose", |b| {
        b["frames"][0] = json!({ "file_path": "a.png" })
    });
    assert!(
        matches!(load_scene(&dir, &opts()), Err(SceneError::InvalidTransforms { reason, .. }) if reason.contains("transform_matrix"))
    );
    let dir = transforms_scene("no_focal", |b| {
        b.as_object_mut().unwrap().remove("fl_x");
        b.as_object_mut().unwrap().remove("fl_y");
    });
    assert!(matches!(
        load_scene(&dir, &opts()),
        Err(SceneError::InvalidCamera { .. })
    ));

    let dir = colmap_scene("truncated_model");
    let rec = colmap::read(dir.join("sparse/0")).unwrap();
    colmap::write_binary(dir.join("sparse/0"), &rec).unwrap();
    let bin = dir.join("sparse/0/images.bin");
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, &bytes[..bytes.len() - 5]).unwrap();
    assert!(
        matches!(load_scene(&dir, &opts()), Err(SceneError::Colmap(ColmapError::Truncated { path, .. })) if path == bin)
    );
}

#[test]
fn no_images_unknown_layouts_and_bad_options() {
    let dir = transforms_scene("no_frames", |b| b["frames"] = json!([]));
    assert!(matches!(
        load_scene(&dir, &opts()),
        Err(SceneError::NoImages { .. })
    ));
    let dir = colmap_scene("no_images_colmap");
    std::fs::write(dir.join("sparse/0/images.txt"), "# no images\n").unwrap();
    std::fs::write(dir.join("sparse/0/points3D.txt"), "").unwrap();
    assert!(matches!(
        load_scene(&dir, &opts()),
        Err(SceneError::NoImages { .. })
    ));

    let empty = scratch_dir("empty");
    assert!(matches!(
        load_scene(&empty, &opts()),
        Err(SceneError::UnknownLayout { .. })
    ));
    assert!(matches!(
        load_scene(empty.join("nope"), &opts()),
        Err(SceneError::NotFound { .. })
    ));

    let dir = colmap_scene("bad_options");
    for downscale in [
        Downscale::Factor(0.5),
        Downscale::Factor(f64::NAN),
        Downscale::MaxSide(0),
    ] {
        let options = LoadOptions {
            downscale,
            ..opts()
        };
        assert!(
            matches!(
                load_scene(&dir, &options),
                Err(SceneError::InvalidOptions { .. })
            ),
            "{downscale:?}"
        );
    }
}
