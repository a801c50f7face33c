//! Every posed scene in the shared data loads, with the expected views, sizes, intrinsics
//! and poses.

use std::path::{Path, PathBuf};

use glam::DVec3;
use splat_core::scene::{load_scene, Downscale, LoadOptions, View};

fn data(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")).join(name)
}

/// Raw JSON frames of a NeRF transforms file: (file_path, 4x4 camera-to-world rows).
fn json_frames(path: &Path) -> (f64, Vec<(String, [[f64; 4]; 4])>) {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let angle = v["camera_angle_x"].as_f64().unwrap();
    let frames = v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let mut m = [[0.0; 4]; 4];
            for (r, row) in f["transform_matrix"].as_array().unwrap().iter().enumerate() {
                for (c, x) in row.as_array().unwrap().iter().enumerate() {
                    m[r][c] = x.as_f64().unwrap();
                }
            }
            (f["file_path"].as_str().unwrap().to_string(), m)
        })
        .collect();
    (angle, frames)
}

fn assert_pose_matches_c2w(view: &View, m: &[[f64; 4]; 4]) {
    let col = |c: usize| DVec3::new(m[0][c], m[1][c], m[2][c]);
    let centre = view.camera.center();
    assert!(
        (centre - col(3)).length() < 1e-5,
        "{}: centre {centre} vs {}",
        view.name,
        col(3)
    );
    // The optical axis (+z of an OpenCV camera) is the OpenGL camera's -z, in world axes.
    let axis = view.camera.rotation.transpose() * DVec3::Z;
    assert!(
        (axis + col(2).normalize()).length() < 1e-5,
        "{}: axis {axis} vs -{}",
        view.name,
        col(2)
    );
    // Image "down" (+y) is OpenGL's -y.
    let down = view.camera.rotation.transpose() * DVec3::Y;
    assert!(
        (down + col(1).normalize()).length() < 1e-5,
        "{}: down {down}",
        view.name
    );
}

#[test]
fn lego_loads_from_transforms_with_downscale_8() {
    let root = data("nerf_synthetic_lego");
    let options = LoadOptions {
        downscale: Downscale::Factor(8.0),
        background: [1.0; 3],
        ..Default::default()
    };
    let scene = load_scene(&root, &options).unwrap();
    assert_eq!(scene.name, "nerf_synthetic_lego");
    assert_eq!((scene.train.len(), scene.test.len()), (100, 50));
    assert!(scene.points.is_none());
    assert_eq!(scene.background, [1.0; 3]);

    let (angle, train_frames) = json_frames(&root.join("transforms_train.json"));
    let (_, test_frames) = json_frames(&root.join("transforms_test.json"));
    let full_focal = 0.5 * 800.0 / (0.5 * angle).tan();
    for (view, (file_path, m)) in scene
        .train
        .iter()
        .zip(&train_frames)
        .chain(scene.test.iter().zip(&test_frames))
    {
        assert_eq!(format!("./{}", view.name), format!("{file_path}.png"));
        assert_eq!((view.image.width, view.image.height), (100, 100));
        assert_eq!((view.camera.width, view.camera.height), (100, 100));
        assert!(
            (view.camera.fx - full_focal / 8.0).abs() < 1e-9 && view.camera.fx == view.camera.fy
        );
        assert_eq!((view.camera.cx, view.camera.cy), (50.0, 50.0));
        assert_pose_matches_c2w(view, m);
        assert_eq!(view.image.data.len(), 100 * 100 * 3);
        assert!(view.image.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // Lego's background is transparent, so corners composite to the white background.
    let corner = scene.train[0].image.pixel(0, 0);
    assert!(corner.iter().all(|&c| c > 0.99), "corner {corner:?}");
    // And the model in the middle is not background.
    let centre = scene.train[0].image.pixel(50, 50);
    assert!(centre.iter().any(|&c| c < 0.9), "centre {centre:?}");
}

#[test]
fn bonsai_loads_from_colmap_with_every_8th_test_view() {
    let root = data("mipnerf360_bonsai_800");
    let options = LoadOptions {
        downscale: Downscale::Factor(4.0),
        ..Default::default()
    };
    let scene = load_scene(&root, &options).unwrap();
    assert_eq!(scene.name, "mipnerf360_bonsai_800");
    assert_eq!((scene.train.len(), scene.test.len()), (255, 37));

    let mut names: Vec<_> = std::fs::read_dir(root.join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let expected_test: Vec<_> = names.iter().step_by(8).cloned().collect();
    let test_names: Vec<_> = scene.test.iter().map(|v| v.name.clone()).collect();
    assert_eq!(test_names, expected_test);
    assert!(scene.train.iter().all(|v| !expected_test.contains(&v.name)));
    assert!(
        scene.train.windows(2).all(|w| w[0].name < w[1].name),
        "train views are sorted by name"
    );

    for view in scene.train.iter().chain(&scene.test) {
        assert_eq!((view.image.width, view.image.height), (200, 133));
        assert!((view.camera.fx - 826.2348867138938 / 4.0).abs() < 1e-9);
        assert!((view.camera.fy - 826.2348867138938 * 133.0 / 533.0).abs() < 1e-9);
        assert!(
            (view.camera.cx - 100.0).abs() < 1e-9
                && (view.camera.cy - 266.5 * 133.0 / 533.0).abs() < 1e-9
        );
    }

    let (positions, colors) = scene.points.as_ref().unwrap();
    assert_eq!((positions.len(), colors.len()), (92_736, 92_736));

    // Poses, intrinsics and pixels agree: the nearest SfM point on each pixel (a z-buffer
    // removes occluded ones) has that pixel's colour, and clearly less so with the
    // projection shifted by a few pixels or the rotation transposed.
    for view in [&scene.train[10], &scene.train[100], &scene.test[3]] {
        let median_diff = |du: f64, dv: f64, transpose: bool| {
            let cam = &view.camera;
            let rotation = if transpose {
                cam.rotation.transpose()
            } else {
                cam.rotation
            };
            let mut nearest: Vec<Option<(f64, usize)>> = vec![None; 200 * 133];
            for (i, p) in positions.iter().enumerate() {
                let x =
                    rotation * DVec3::new(p[0] as f64, p[1] as f64, p[2] as f64) + cam.translation;
                if x.z <= 0.1 {
                    continue;
                }
                let (u, v) = (cam.fx * x.x / x.z + cam.cx, cam.fy * x.y / x.z + cam.cy);
                if u < 0.0 || v < 0.0 || u >= 200.0 || v >= 133.0 {
                    continue;
                }
                let slot = &mut nearest[v as usize * 200 + u as usize];
                if slot.is_none_or(|(z, _)| x.z < z) {
                    *slot = Some((x.z, i));
                }
            }
            let mut diffs = Vec::new();
            for (pixel, slot) in nearest.iter().enumerate() {
                let Some((_, i)) = slot else { continue };
                let (u, v) = (
                    (pixel % 200) as f64 + 0.5 + du,
                    (pixel / 200) as f64 + 0.5 + dv,
                );
                if u < 0.0 || v < 0.0 || u >= 200.0 || v >= 133.0 {
                    continue;
                }
                let px = view.image.pixel(u as u32, v as u32);
                diffs.push(
                    (0..3)
                        .map(|c| (px[c] - colors[*i][c] as f32 / 255.0).abs())
                        .sum::<f32>()
                        / 3.0,
                );
            }
            diffs.sort_by(f32::total_cmp);
            (
                diffs.len(),
                diffs.get(diffs.len() / 2).copied().unwrap_or(f32::INFINITY),
            )
        };
        let (seen, aligned) = median_diff(0.0, 0.0, false);
        assert!(seen > 3000, "{}: only {seen} pixels with points", view.name);
        assert!(
            aligned < 0.12,
            "{}: median colour difference {aligned}",
            view.name
        );
        for (du, dv) in [(6.0, 0.0), (-6.0, 0.0), (0.0, 6.0), (0.0, -6.0)] {
            let (_, shifted) = median_diff(du, dv, false);
            assert!(
                aligned < 0.8 * shifted,
                "{}: aligned {aligned} vs shifted ({du},{dv}) {shifted}",
                view.name
            );
        }
        let (_, transposed) = median_diff(0.0, 0.0, true);
        assert!(
            aligned < 0.8 * transposed,
            "{}: aligned {aligned} vs transposed {transposed}",
            view.name
        );
    }
}
