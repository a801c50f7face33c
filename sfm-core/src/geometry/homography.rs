//! Homography `x2 ~ H x1` from four or more correspondences (normalised DLT).

// Index loops mirror the matrix formulas they implement; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use super::{hom, normalize_points};
use crate::linalg::{mat3_from_slice, null_space, Mat};
use glam::{DMat3, DVec2};

/// Homography mapping x1 to x2, least squares for more than four points.
pub fn homography_dlt(x1: &[DVec2], x2: &[DVec2]) -> Option<DMat3> {
    let n = x1.len();
    if n < 4 || x2.len() != n {
        return None;
    }
    let (n1, t1) = normalize_points(x1);
    let (n2, t2) = normalize_points(x2);
    let mut a = Mat::zeros(2 * n, 9);
    for i in 0..n {
        let p = hom(n1[i]).to_array();
        let (u, v) = (n2[i].x, n2[i].y);
        for k in 0..3 {
            *a.at_mut(2 * i, 3 + k) = -p[k];
            *a.at_mut(2 * i, 6 + k) = v * p[k];
            *a.at_mut(2 * i + 1, k) = p[k];
            *a.at_mut(2 * i + 1, 6 + k) = -u * p[k];
        }
    }
    let h = mat3_from_slice(&null_space(&a, 1)[0]);
    let t2inv = t2.inverse();
    let h = t2inv * h * t1;
    let s = h.z_axis.z;
    let h = if s.abs() > 1e-12 { h * (1.0 / s) } else { h };
    h.is_finite().then_some(h)
}

/// Squared transfer error |x2 - H x1|^2.
#[inline]
pub fn transfer_error_sq(h: &DMat3, x1: DVec2, x2: DVec2) -> f64 {
    let p = *h * hom(x1);
    if p.z.abs() < 1e-300 {
        return f64::INFINITY;
    }
    (DVec2::new(p.x / p.z, p.y / p.z) - x2).length_squared()
}
