//! The checks behind the report: test PSNR of a set of Gaussians, and the SfM poses against
//! the built-in scene's true cameras.

use std::path::Path;

use splat_core::demo::photos::{self, PhotoSetOptions};
use splat_core::scene::Scene;

use crate::{PipelineError, Result};

/// Test views rendered for the compression check (the CPU renderer takes seconds per view on
/// large scenes; the first few views are enough to compare before and after).
pub const PSNR_CHECK_VIEWS: usize = 8;

/// Mean PSNR of `g` over the scene's first test views (its training views when it has no
/// test views), rendered on the CPU reference renderer.
pub fn test_psnr(g: &splat_core::Gaussians, scene: &Scene) -> f64 {
    let opts = splat_core::RenderOptions {
        background: scene.background,
        ..Default::default()
    };
    let views = if scene.test.is_empty() {
        &scene.train
    } else {
        &scene.test
    };
    let views = &views[..views.len().min(PSNR_CHECK_VIEWS)];
    let sum: f64 = views
        .iter()
        .map(|v| {
            let out = splat_core::render(g, &v.camera, &opts);
            splat_core::loss::psnr(&out.image, &v.image.data) as f64
        })
        .sum();
    sum / views.len().max(1) as f64
}

/// Relative-pose errors of the COLMAP model in `sparse` against the true cameras of the
/// built-in scene `builtin` (images that did not register count as missing pairs, not as
/// errors; the report names them).
pub fn pose_errors(sparse: &Path, builtin: &PhotoSetOptions) -> Result<sfm_core::eval::PoseErrors> {
    let est = sfm_core::colmap::read(sparse)?;
    let truth = photos::photo_cameras(builtin);
    let mut e = Vec::new();
    let mut g = Vec::new();
    for im in &est.images {
        if let Some(v) = truth.iter().find(|v| v.name == im.name) {
            e.push(sfm_core::eval::Pose {
                rotation: im.rotation(),
                translation: glam::DVec3::from_array(im.tvec),
            });
            g.push(sfm_core::eval::Pose {
                rotation: v.camera.rotation,
                translation: v.camera.translation,
            });
        }
    }
    sfm_core::eval::relative_pose_errors(&e, &g).ok_or_else(|| {
        PipelineError::Invalid(format!(
            "{}: fewer than two registered images to compare",
            sparse.display()
        ))
    })
}

/// The true cameras as a COLMAP model (one PINHOLE camera, no points).
pub fn ground_truth_model(views: &[photos::PhotoView]) -> Result<sfm_core::colmap::Reconstruction> {
    use sfm_core::colmap::{Camera, CameraModel, Image, Reconstruction};
    let c = &views
        .first()
        .ok_or_else(|| PipelineError::Invalid("the built-in scene has no views".into()))?
        .camera;
    let camera = Camera::new(
        1,
        CameraModel::Pinhole,
        c.width as u64,
        c.height as u64,
        vec![c.fx, c.fy, c.cx, c.cy],
    )?;
    let images = views
        .iter()
        .enumerate()
        .map(|(i, v)| Image {
            id: i as u32 + 1,
            qvec: sfm_core::colmap::qvec_from_rotation(&v.camera.rotation),
            tvec: v.camera.translation.to_array(),
            camera_id: 1,
            name: v.name.clone(),
            points2d: Vec::new(),
        })
        .collect();
    Ok(Reconstruction {
        cameras: vec![camera],
        images,
        points3d: Vec::new(),
    })
}
