//! Multi-view geometry: minimal solvers (five-point essential, seven/eight-point fundamental,
//! homography, P3P), triangulation, pose refinement and the LO-RANSAC/MSAC driver that composes
//! them.

pub mod essential;
pub mod fundamental;
pub mod homography;
pub mod p3p;
pub mod pose;
pub mod ransac;
pub mod triangulation;

use glam::{DMat3, DVec2, DVec3};

/// Rigid transform from world to camera coordinates: `x_cam = r * x_world + t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// Rotation (camera from world).
    pub r: DMat3,
    /// Translation (camera from world).
    pub t: DVec3,
}

impl Pose {
    /// The identity pose.
    pub const IDENTITY: Pose = Pose {
        r: DMat3::IDENTITY,
        t: DVec3::ZERO,
    };

    /// Maps a world point into the camera frame.
    #[inline]
    pub fn apply(&self, x: DVec3) -> DVec3 {
        self.r * x + self.t
    }

    /// Camera centre in world coordinates.
    pub fn center(&self) -> DVec3 {
        -(self.r.transpose() * self.t)
    }

    /// Composition `self * other` (apply `other` first).
    pub fn compose(&self, other: &Pose) -> Pose {
        Pose {
            r: self.r * other.r,
            t: self.r * other.t + self.t,
        }
    }

    /// Inverse transform.
    pub fn inverse(&self) -> Pose {
        let rt = self.r.transpose();
        Pose {
            r: rt,
            t: -(rt * self.t),
        }
    }
}

/// Lifts a normalized image point to a homogeneous 3-vector.
#[inline]
pub fn hom(p: DVec2) -> DVec3 {
    DVec3::new(p.x, p.y, 1.0)
}

/// Angle in radians between two rotations.
pub fn rotation_angle(a: &DMat3, b: &DMat3) -> f64 {
    let r = *a * b.transpose();
    let c = (r.x_axis.x + r.y_axis.y + r.z_axis.z - 1.0) * 0.5;
    // sin from the skew part: acos alone cannot resolve angles below about 1.5e-8 rad.
    let s = 0.5
        * DVec3::new(
            r.y_axis.z - r.z_axis.y,
            r.z_axis.x - r.x_axis.z,
            r.x_axis.y - r.y_axis.x,
        )
        .length();
    s.atan2(c)
}

/// Hartley normalisation: similarity moving the centroid to 0 and the mean distance to sqrt(2).
pub fn normalize_points(pts: &[DVec2]) -> (Vec<DVec2>, DMat3) {
    let n = pts.len().max(1) as f64;
    let c = pts.iter().fold(DVec2::ZERO, |a, &p| a + p) / n;
    let d = pts.iter().map(|&p| (p - c).length()).sum::<f64>() / n;
    let s = if d > 1e-300 {
        std::f64::consts::SQRT_2 / d
    } else {
        1.0
    };
    let t = crate::linalg::mat3_rows([s, 0.0, -s * c.x], [0.0, s, -s * c.y], [0.0, 0.0, 1.0]);
    (pts.iter().map(|&p| (p - c) * s).collect(), t)
}

/// Squared Sampson distance of a correspondence to the epipolar constraint `x2^T f x1 = 0`.
#[inline]
pub fn sampson_sq(f: &DMat3, x1: DVec2, x2: DVec2) -> f64 {
    let a = hom(x1);
    let b = hom(x2);
    let fa = *f * a;
    let ftb = f.transpose() * b;
    let num = b.dot(fa);
    let den = fa.x * fa.x + fa.y * fa.y + ftb.x * ftb.x + ftb.y * ftb.y;
    if den <= 0.0 {
        return f64::INFINITY;
    }
    num * num / den
}
