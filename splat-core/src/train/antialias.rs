//! The trainer's side of anti-aliasing: the settings, and Mip-Splatting's per-Gaussian 3D
//! filter computed from the training cameras (the renderer applies both filters:
//! [`crate::render::RenderOptions::mip2d`], [`crate::render::RenderOptions::filter3d`]).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::camera::Camera;

/// Anti-aliasing settings (both filters off by default: the original 3DGS image formation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AntialiasConfig {
    /// gsplat's `antialiased` mode: opacities times sqrt(det Σ2 / det(Σ2 + ε I)), ε the
    /// low-pass variance (`low_pass`), so the low-pass no longer brightens Gaussians smaller
    /// than a pixel (renders at other scales than the training one keep their brightness).
    pub mip2d: bool,
    /// Mip-Splatting's 3D smoothing filter: each Gaussian gets a variance of
    /// `filter3d_scale / nu²` added to its covariance, nu the highest sampling rate
    /// (focal / depth) of the training cameras that see its centre; its opacity is scaled to
    /// keep its energy. Exported files have it baked into scales and opacities; checkpoints
    /// keep the raw Gaussians and the filter.
    pub filter3d: bool,
    /// s of the 3D filter, in squared pixels of the training images (Mip-Splatting's 0.2).
    pub filter3d_scale: f32,
    /// The screen-space low-pass variance in px² that every projected covariance gets (3DGS's
    /// 0.3; Mip-Splatting's 2D Mip filter uses 0.1 beside its 3D filter, so that the total blur
    /// at the training scale stays about 3DGS's).
    pub low_pass: f32,
    /// Once the Gaussian count stops changing, the 3D filter is recomputed every this many
    /// iterations (Mip-Splatting: 100); while it changes, after every densification.
    pub filter3d_interval: usize,
}

impl Default for AntialiasConfig {
    fn default() -> Self {
        Self {
            mip2d: false,
            filter3d: false,
            filter3d_scale: 0.2,
            filter3d_interval: 100,
            low_pass: crate::render::project::LOW_PASS as f32,
        }
    }
}

impl AntialiasConfig {
    /// Range checks (called from [`super::TrainConfig::validate`]).
    pub fn validate(&self) -> Result<(), String> {
        if !(self.filter3d_scale.is_finite() && self.filter3d_scale > 0.0) {
            return Err(format!(
                "antialias.filter3d_scale {}: must be finite and > 0",
                self.filter3d_scale
            ));
        }
        if !(self.low_pass.is_finite() && self.low_pass > 0.0 && self.low_pass <= 10.0) {
            return Err(format!(
                "antialias.low_pass {}: must be in (0, 10] px²",
                self.low_pass
            ));
        }
        if self.filter3d_interval == 0 {
            return Err("antialias.filter3d_interval must be positive".into());
        }
        Ok(())
    }

    /// Whether the image formation differs from 3DGS's (either filter, or another low-pass).
    pub fn any(&self) -> bool {
        self.mip2d || self.filter3d || self.low_pass != crate::render::project::LOW_PASS as f32
    }
}

/// Centres closer to a camera than this (camera-space z, scene units) do not count as seen by
/// it: Mip-Splatting's bound, which keeps a Gaussian next to one camera from getting an
/// unbounded sampling rate.
pub const FILTER3D_MIN_DEPTH: f64 = 0.2;
/// A centre counts as seen by a camera when it projects within the image widened by this
/// fraction of its size on each side (Mip-Splatting's 15 %).
pub const FILTER3D_SCREEN_MARGIN: f64 = 0.15;

/// Mip-Splatting's 3D filter: for each centre, `scale / nu²` with nu the largest
/// `max(fx, fy) / depth` over the `cameras` that see it (in front beyond
/// [`FILTER3D_MIN_DEPTH`], projecting within the image and [`FILTER3D_SCREEN_MARGIN`]).
/// A centre no camera sees gets the filter of the least-sampled seen one (the widest); with
/// no centre seen at all, every variance is 0.
pub fn filter3d_variances(means: &[[f32; 3]], cameras: &[Camera], scale: f32) -> Vec<f32> {
    let nu: Vec<f64> = means
        .par_iter()
        .map(|m| {
            let p = glam::DVec3::new(m[0] as f64, m[1] as f64, m[2] as f64);
            cameras
                .iter()
                .filter_map(|c| {
                    let q = c.rotation * p + c.translation;
                    if !(q.z > FILTER3D_MIN_DEPTH) {
                        return None;
                    }
                    let (w, h) = (c.width as f64, c.height as f64);
                    let (u, v) = (c.fx * q.x / q.z + c.cx, c.fy * q.y / q.z + c.cy);
                    let mx = FILTER3D_SCREEN_MARGIN;
                    let inside =
                        u >= -mx * w && u <= (1.0 + mx) * w && v >= -mx * h && v <= (1.0 + mx) * h;
                    inside.then(|| c.fx.max(c.fy) / q.z)
                })
                .fold(0.0f64, f64::max)
        })
        .collect();
    let least_seen = nu
        .iter()
        .copied()
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min);
    nu.iter()
        .map(|&v| {
            let v = if v > 0.0 { v } else { least_seen };
            if v.is_finite() {
                (scale as f64 / (v * v)) as f32
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::DVec3;

    #[test]
    fn filter_follows_the_nearest_seeing_camera() {
        let look = |eye: DVec3| Camera::look_at(100, 80, 1.0, eye, DVec3::ZERO, DVec3::Z);
        let cams = [
            look(DVec3::new(0.0, -4.0, 0.0)),
            look(DVec3::new(0.0, -2.0, 0.0)),
        ];
        let fx = cams[0].fx;
        let means = [
            [0.0, 0.0, 0.0],  // seen by both: the nearer camera (depth 2) decides
            [0.0, -3.0, 0.0], // behind the second camera: only the first sees it (depth 1)
            [0.0, -1.9, 0.0], // 0.1 in front of the second (under the depth bound): first only
            [50.0, 0.0, 0.0], // seen by neither: the widest filter of the seen ones
        ];
        let v = filter3d_variances(&means, &cams, 0.2);
        let want = |d: f64| (0.2 * d * d / (fx * fx)) as f32;
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 * b;
        assert!(close(v[0], want(2.0)), "{v:?}");
        assert!(close(v[1], want(1.0)), "{v:?}");
        assert!(close(v[2], want(2.1)), "{v:?}");
        assert!(close(v[3], want(2.1)), "{v:?}");
        assert_eq!(filter3d_variances(&means[3..], &cams, 0.2), vec![0.0]);
    }
}
