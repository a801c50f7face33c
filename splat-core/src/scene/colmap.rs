//! Scenes from a COLMAP model: `<scene>/images` plus `<scene>/sparse/0` (or `sparse/`).

use std::path::{Path, PathBuf};

use glam::{DMat3, DQuat, DVec3};
use sfm_core::colmap;

use super::{
    holdout_every, load_views, scene_name, LoadOptions, PartialIntrinsics, Scene, SceneError,
    ViewSource,
};

/// The model directory of a COLMAP scene, if it has one.
pub(super) fn model_dir(scene: &Path) -> Option<PathBuf> {
    let has_model = |d: &Path| {
        ["cameras.bin", "cameras.txt"]
            .iter()
            .any(|f| d.join(f).is_file())
    };
    [scene.join("sparse").join("0"), scene.join("sparse")]
        .into_iter()
        .find(|d| has_model(d))
}

/// Loads a COLMAP scene directory; distorted cameras are undistorted to pinhole with the
/// same intrinsics, and the model's points come along for initialisation.
pub fn load_colmap(scene: impl AsRef<Path>, options: &LoadOptions) -> Result<Scene, SceneError> {
    let scene = scene.as_ref();
    options.validate()?;
    let sparse = model_dir(scene).ok_or_else(|| SceneError::UnknownLayout {
        path: scene.to_path_buf(),
    })?;
    let model = colmap::read(&sparse)?;
    let images_dir = match &options.images_dir {
        Some(dir) => scene.join(dir),
        None => scene.join("images"),
    };
    let images_file = if sparse.join("images.bin").is_file() {
        sparse.join("images.bin")
    } else {
        sparse.join("images.txt")
    };
    if model.images.is_empty() {
        return Err(SceneError::NoImages { path: images_file });
    }

    let mut sources = Vec::with_capacity(model.images.len());
    for im in &model.images {
        // The reader has checked that every image's camera exists.
        let Some(cam) = model.camera(im.camera_id) else {
            return Err(colmap::ColmapError::MissingCamera {
                path: images_file,
                image_id: im.id,
                camera_id: im.camera_id,
            }
            .into());
        };
        let invalid = |reason: String| SceneError::InvalidCamera {
            path: images_file.clone(),
            view: im.name.clone(),
            reason,
        };
        let (Ok(width), Ok(height)) = (u32::try_from(cam.width), u32::try_from(cam.height)) else {
            return Err(invalid(format!(
                "camera {} size {}x{} is too large",
                cam.id, cam.width, cam.height
            )));
        };
        let q = im.qvec;
        let norm = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
        if norm < 1e-9 {
            return Err(invalid("zero rotation quaternion".into()));
        }
        let rotation = DMat3::from_quat(DQuat::from_xyzw(
            q[1] / norm,
            q[2] / norm,
            q[3] / norm,
            q[0] / norm,
        ));
        let k = cam.intrinsics();
        sources.push(ViewSource {
            name: im.name.clone(),
            image_path: images_dir.join(&im.name),
            camera_file: images_file.clone(),
            intrinsics: PartialIntrinsics {
                width: Some(width),
                height: Some(height),
                fx: Some(k.fx),
                fy: Some(k.fy),
                cx: Some(k.cx),
                cy: Some(k.cy),
                ..Default::default()
            },
            distortion: cam.distortion(),
            rotation,
            translation: DVec3::from_array(im.tvec),
            is_test: false,
        });
    }
    holdout_every(&mut sources, options.test_every);
    let (train, test) = load_views(sources, options)?;

    let positions = model
        .points3d
        .iter()
        .map(|p| p.xyz.map(|v| v as f32))
        .collect();
    let colors = model.points3d.iter().map(|p| p.rgb).collect();
    Ok(Scene {
        name: scene_name(scene),
        train,
        test,
        points: Some((positions, colors)),
        background: options.background,
    })
}
