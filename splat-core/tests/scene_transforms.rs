//! NeRF / nerfstudio transforms: intrinsics, axis conversion, extension-less paths,
//! compositing, downscaling and the train/test split.

use std::path::Path;

use glam::{DMat3, DQuat, DVec3};
use serde_json::json;
use spaceport_io::scratch_dir;
use splat_core::scene::{load_scene, load_transforms, Downscale, LoadOptions, View};

/// A camera-to-world matrix in OpenGL axes, as rows, from a rotation and a centre.
fn c2w(i: usize) -> [[f64; 4]; 4] {
    let rot = DMat3::from_quat(DQuat::from_euler(
        glam::EulerRot::YXZ,
        0.4 * i as f64,
        0.3 - 0.05 * i as f64,
        0.1 * i as f64,
    ));
    let centre = DVec3::new(i as f64 * 0.5, -1.0, 2.0 + i as f64);
    let mut m = [
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    for r in 0..3 {
        for c in 0..3 {
            m[r][c] = rot.col(c)[r];
        }
        m[r][3] = centre[r];
    }
    m
}

fn write_rgba(path: &Path, width: u32, height: u32, rgba: [u8; 4]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbaImage::from_pixel(width, height, image::Rgba(rgba))
        .save(path)
        .unwrap();
}

fn assert_axes(view: &View, m: &[[f64; 4]; 4]) {
    let col = |c: usize| DVec3::new(m[0][c], m[1][c], m[2][c]);
    assert!(
        (view.camera.center() - col(3)).length() < 1e-9,
        "{}",
        view.name
    );
    let rt = view.camera.rotation.transpose();
    assert!(
        (rt * DVec3::Z + col(2)).length() < 1e-9,
        "{}: optical axis is c2w's -z",
        view.name
    );
    assert!(
        (rt * DVec3::Y + col(1)).length() < 1e-9,
        "{}: image down is c2w's -y",
        view.name
    );
    assert!(
        (rt * DVec3::X - col(0)).length() < 1e-9,
        "{}: image right is c2w's x",
        view.name
    );
}

#[test]
fn nerfstudio_single_file_with_every_8th_holdout() {
    let dir = scratch_dir("nerfstudio");
    // 17 frames listed out of name order: the split must follow sorted names.
    let order: Vec<usize> = (0..17).map(|i| (i * 5) % 17).collect();
    let mut frames = Vec::new();
    for &i in &order {
        let name = format!("images/frame_{i:02}.png");
        write_rgba(&dir.join(&name), 12, 8, [10 * i as u8, 100, 200, 255]);
        let mut frame = json!({ "file_path": name, "transform_matrix": c2w(i) });
        if i == 4 {
            frame["fl_x"] = json!(20.0);
        }
        frames.push(frame);
    }
    let transforms = json!({ "fl_x": 10.0, "fl_y": 11.0, "cx": 6.5, "cy": 3.5, "w": 12, "h": 8, "camera_model": "OPENCV", "frames": frames });
    std::fs::write(
        dir.join("transforms.json"),
        serde_json::to_vec_pretty(&transforms).unwrap(),
    )
    .unwrap();

    let options = LoadOptions {
        downscale: Downscale::MaxSide(6),
        ..Default::default()
    };
    let scene = load_scene(&dir, &options).unwrap();
    let test: Vec<_> = scene.test.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        test,
        [
            "images/frame_00.png",
            "images/frame_08.png",
            "images/frame_16.png"
        ]
    );
    assert_eq!(scene.train.len(), 14);
    for view in scene.train.iter().chain(&scene.test) {
        let i: usize = view.name[13..15].parse().unwrap();
        let cam = &view.camera;
        assert_eq!(
            (cam.width, cam.height, view.image.width, view.image.height),
            (6, 4, 6, 4)
        );
        let fx = if i == 4 { 20.0 } else { 10.0 };
        assert_eq!(
            (cam.fx, cam.fy, cam.cx, cam.cy),
            (fx / 2.0, 11.0 / 2.0, 6.5 / 2.0, 3.5 / 2.0)
        );
        assert_axes(view, &c2w(i));
        assert_eq!(
            view.image.pixel(2, 1),
            [(10 * i) as f32 / 255.0, 100.0 / 255.0, 200.0 / 255.0]
        );
    }
    // The JSON file itself is accepted too, and every view can go to training.
    let all = load_transforms(
        dir.join("transforms.json"),
        &LoadOptions {
            test_every: 0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((all.train.len(), all.test.len()), (17, 0));
    assert_eq!(
        (all.train[0].image.width, all.train[0].camera.fx),
        (12, 10.0)
    );
}

#[test]
fn nerf_split_files_with_fov_and_extensionless_paths() {
    let dir = scratch_dir("nerf");
    let angle = 0.9f64;
    let split = |name: &str, ids: &[usize]| {
        let frames: Vec<_> = ids
            .iter()
            .map(|&i| {
                write_rgba(&dir.join(format!("{name}/r_{i}.png")), 10, 10, [255, 0, 0, if i % 2 == 0 { 255 } else { 0 }]);
                json!({ "file_path": format!("./{name}/r_{i}"), "rotation": 0.1, "transform_matrix": c2w(i) })
            })
            .collect();
        let body = json!({ "camera_angle_x": angle, "frames": frames });
        std::fs::write(
            dir.join(format!("transforms_{name}.json")),
            serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
    };
    split("train", &[0, 1, 2, 3]);
    split("val", &[5]);
    split("test", &[6, 7]);

    let options = LoadOptions {
        background: [0.0, 1.0, 0.0],
        ..Default::default()
    };
    let scene = load_scene(&dir, &options).unwrap();
    let names = |views: &[View]| views.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&scene.train),
        [
            "train/r_0.png",
            "train/r_1.png",
            "train/r_2.png",
            "train/r_3.png"
        ]
    );
    assert_eq!(names(&scene.test), ["test/r_6.png", "test/r_7.png"]);
    let f = 5.0 / (0.5 * angle).tan();
    for (view, i) in scene.train.iter().zip(0..) {
        assert!((view.camera.fx - f).abs() < 1e-12 && view.camera.fy == view.camera.fx);
        assert_eq!((view.camera.cx, view.camera.cy), (5.0, 5.0));
        assert_axes(view, &c2w(i));
    }
    // Transparent frames show the background.
    assert_eq!(scene.train[0].image.pixel(3, 3), [1.0, 0.0, 0.0]);
    assert_eq!(scene.train[1].image.pixel(3, 3), [0.0, 1.0, 0.0]);

    // Without a test file the val file is the test split...
    std::fs::remove_file(dir.join("transforms_test.json")).unwrap();
    let scene = load_scene(dir.join("transforms_train.json"), &options).unwrap();
    assert_eq!(names(&scene.test), ["val/r_5.png"]);
    // ...and without either, every 8th training view (here the first of four) is held out.
    std::fs::remove_file(dir.join("transforms_val.json")).unwrap();
    let scene = load_scene(&dir, &options).unwrap();
    assert_eq!(names(&scene.test), ["train/r_0.png"]);
    assert_eq!(scene.train.len(), 3);
}

#[test]
fn images_dir_override_and_distortion_coefficients() {
    let dir = scratch_dir("override");
    write_rgba(&dir.join("elsewhere/a.png"), 16, 12, [50, 60, 70, 255]);
    let body = json!({
        "fl_x": 14.0, "fl_y": 14.0, "cx": 8.0, "cy": 6.0, "w": 16, "h": 12,
        "k1": -0.1, "k2": 0.01, "p1": 0.001, "p2": 0.0,
        "frames": [{ "file_path": "a.png", "transform_matrix": c2w(1) }]
    });
    std::fs::write(
        dir.join("transforms.json"),
        serde_json::to_vec(&body).unwrap(),
    )
    .unwrap();
    let options = LoadOptions {
        images_dir: Some("elsewhere".into()),
        test_every: 0,
        ..Default::default()
    };
    let scene = load_scene(&dir, &options).unwrap();
    let view = &scene.train[0];
    // A flat image stays flat through undistortion, and the camera keeps its intrinsics.
    assert!(view
        .image
        .data
        .chunks(3)
        .all(|p| p == [50.0 / 255.0, 60.0 / 255.0, 70.0 / 255.0]));
    assert_eq!(
        (view.camera.fx, view.camera.cx, view.camera.cy),
        (14.0, 8.0, 6.0)
    );
}
