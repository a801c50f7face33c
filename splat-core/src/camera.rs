//! Pinhole cameras in the OpenCV convention (x right, y down, looking down +z).

use glam::{DMat3, DQuat, DVec3};

/// A pinhole camera: intrinsics in pixels and a world-to-camera rigid transform.
#[derive(Clone, Debug, PartialEq)]
pub struct Camera {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Focal length along x, in pixels.
    pub fx: f64,
    /// Focal length along y, in pixels.
    pub fy: f64,
    /// Principal point x, in pixels (pixel centres are at integer + 0.5).
    pub cx: f64,
    /// Principal point y, in pixels.
    pub cy: f64,
    /// World-to-camera rotation.
    pub rotation: DMat3,
    /// World-to-camera translation: x_cam = rotation * x_world + translation.
    pub translation: DVec3,
}

impl Camera {
    /// A camera from intrinsics and a world-to-camera rotation and translation.
    pub fn new(
        width: u32,
        height: u32,
        fx: f64,
        fy: f64,
        cx: f64,
        cy: f64,
        rotation: DMat3,
        translation: DVec3,
    ) -> Self {
        Self {
            width,
            height,
            fx,
            fy,
            cx,
            cy,
            rotation,
            translation,
        }
    }

    /// A camera from COLMAP's world-to-camera quaternion (w, x, y, z) and translation.
    pub fn from_colmap_pose(
        width: u32,
        height: u32,
        fx: f64,
        fy: f64,
        cx: f64,
        cy: f64,
        qvec: [f64; 4],
        tvec: [f64; 3],
    ) -> Self {
        let q = DQuat::from_xyzw(qvec[1], qvec[2], qvec[3], qvec[0]).normalize();
        Self::new(
            width,
            height,
            fx,
            fy,
            cx,
            cy,
            DMat3::from_quat(q),
            DVec3::from_array(tvec),
        )
    }

    /// A camera at `eye` looking at `target`, with `up` roughly up in the image.
    pub fn look_at(
        width: u32,
        height: u32,
        fov_x: f64,
        eye: DVec3,
        target: DVec3,
        up: DVec3,
    ) -> Self {
        let f = (target - eye).normalize();
        let r = f.cross(up).normalize();
        let d = f.cross(r);
        // Rows are the camera axes in world coordinates: x right, y down, z forward.
        let rotation = DMat3::from_cols(r, d, f).transpose();
        let translation = -(rotation * eye);
        let fx = 0.5 * width as f64 / (0.5 * fov_x).tan();
        Self::new(
            width,
            height,
            fx,
            fx,
            width as f64 / 2.0,
            height as f64 / 2.0,
            rotation,
            translation,
        )
    }

    /// The camera centre in world coordinates.
    pub fn center(&self) -> DVec3 {
        -(self.rotation.transpose() * self.translation)
    }

    /// The same view resized to `width` x `height`, with intrinsics scaled to match.
    pub fn scaled_to(&self, width: u32, height: u32) -> Self {
        let sx = width as f64 / self.width as f64;
        let sy = height as f64 / self.height as f64;
        Self {
            width,
            height,
            fx: self.fx * sx,
            fy: self.fy * sy,
            cx: self.cx * sx,
            cy: self.cy * sy,
            ..self.clone()
        }
    }

    /// Horizontal and vertical half-angle tangents of the field of view.
    pub fn tan_half_fov(&self) -> (f64, f64) {
        (
            0.5 * self.width as f64 / self.fx,
            0.5 * self.height as f64 / self.fy,
        )
    }
}
