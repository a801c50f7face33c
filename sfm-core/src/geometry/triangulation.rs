//! Linear (DLT) triangulation and triangulation-angle helpers.

use super::Pose;
use crate::linalg::{null_space, Mat};
use glam::{DVec2, DVec3};

/// DLT triangulation from any number of views (normalized image coordinates).
pub fn triangulate_multi(poses: &[Pose], pts: &[DVec2]) -> Option<DVec3> {
    if poses.len() < 2 || poses.len() != pts.len() {
        return None;
    }
    // Accumulate A^T A (4x4): same null vector as A, independent of the number of views.
    let mut ata = Mat::zeros(4, 4);
    for (p, x) in poses.iter().zip(pts) {
        let r = p.r.transpose();
        let row = |i: usize| [r.col(i).x, r.col(i).y, r.col(i).z, p.t[i]];
        let (r0, r1, r2) = (row(0), row(1), row(2));
        let a0: [f64; 4] = std::array::from_fn(|k| x.x * r2[k] - r0[k]);
        let a1: [f64; 4] = std::array::from_fn(|k| x.y * r2[k] - r1[k]);
        for a in [a0, a1] {
            let n = a.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
            for i in 0..4 {
                for j in 0..4 {
                    *ata.at_mut(i, j) += a[i] * a[j] / (n * n);
                }
            }
        }
    }
    let v = &null_space(&ata, 1)[0];
    if v[3].abs() < 1e-14 {
        return None;
    }
    let x = DVec3::new(v[0] / v[3], v[1] / v[3], v[2] / v[3]);
    x.is_finite().then_some(x)
}

/// DLT triangulation from two views.
pub fn triangulate_two_view(p1: &Pose, p2: &Pose, x1: DVec2, x2: DVec2) -> Option<DVec3> {
    triangulate_multi(&[*p1, *p2], &[x1, x2])
}

/// Angle in radians between the rays from two camera centres to a point.
pub fn triangulation_angle(c1: DVec3, c2: DVec3, x: DVec3) -> f64 {
    let a = (x - c1).normalize_or_zero();
    let b = (x - c2).normalize_or_zero();
    a.dot(b).clamp(-1.0, 1.0).acos()
}
