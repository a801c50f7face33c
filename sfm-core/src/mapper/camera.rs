//! The SIMPLE_RADIAL camera the mapper refines: one focal length, a fixed principal point and
//! one radial distortion coefficient.

use glam::{DVec2, DVec3};
use serde::{Deserialize, Serialize};

/// SIMPLE_RADIAL intrinsics: pixel = f * (1 + k r^2) * (x/z, y/z) + (cx, cy).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RadialCamera {
    /// Focal length in pixels.
    pub f: f64,
    /// Principal point x (pixels, COLMAP convention).
    pub cx: f64,
    /// Principal point y.
    pub cy: f64,
    /// Radial distortion coefficient.
    pub k: f64,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
}

impl RadialCamera {
    /// Camera with the focal prior, principal point at the image centre and no distortion.
    pub fn with_prior(width: u32, height: u32, f: f64) -> Self {
        Self {
            f,
            cx: width as f64 / 2.0,
            cy: height as f64 / 2.0,
            k: 0.0,
            width,
            height,
        }
    }

    /// Projects a point in camera coordinates to pixels; None behind the camera.
    #[inline]
    pub fn project(&self, xc: DVec3) -> Option<DVec2> {
        if xc.z <= 1e-12 {
            return None;
        }
        let u = xc.x / xc.z;
        let v = xc.y / xc.z;
        let d = 1.0 + self.k * (u * u + v * v);
        Some(DVec2::new(
            self.f * d * u + self.cx,
            self.f * d * v + self.cy,
        ))
    }

    /// Pixel to undistorted normalized coordinates (fixed-point inversion of the radial term,
    /// which converges for the small |k| r^2 that real lenses and the mapper's filter allow).
    pub fn normalize(&self, p: DVec2) -> DVec2 {
        let d = DVec2::new((p.x - self.cx) / self.f, (p.y - self.cy) / self.f);
        if self.k == 0.0 {
            return d;
        }
        let mut u = d;
        for _ in 0..20 {
            let s = 1.0 + self.k * u.length_squared();
            if s.abs() < 1e-6 {
                break;
            }
            u = d / s;
        }
        u
    }
}
