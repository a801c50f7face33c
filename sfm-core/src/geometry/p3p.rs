//! P3P: camera pose from three 2D-3D correspondences (Grunert's distance formulation,
//! with the quartic built by polynomial arithmetic rather than transcribed coefficients).

use super::Pose;
use crate::linalg::{poly_add, poly_mul, poly_scale, real_roots, svd3};
use glam::{DMat3, DVec3};

/// Rigid transform mapping points `p` onto `q` (least squares, Kabsch).
pub fn align_rigid(p: &[DVec3], q: &[DVec3]) -> Option<Pose> {
    let n = p.len();
    if n < 3 || q.len() != n {
        return None;
    }
    let cp = p.iter().fold(DVec3::ZERO, |a, &x| a + x) / n as f64;
    let cq = q.iter().fold(DVec3::ZERO, |a, &x| a + x) / n as f64;
    let mut h = DMat3::ZERO;
    for i in 0..n {
        let a = p[i] - cp;
        let b = q[i] - cq;
        // h = sum a b^T (column j of h is a * b_j)
        h += DMat3::from_cols(a * b.x, a * b.y, a * b.z);
    }
    let (u, _, v) = svd3(&h);
    let mut r = v * u.transpose();
    if r.determinant() < 0.0 {
        let v2 = DMat3::from_cols(v.x_axis, v.y_axis, -v.z_axis);
        r = v2 * u.transpose();
    }
    let t = cq - r * cp;
    r.is_finite().then_some(Pose { r, t })
}

/// Up to four poses that map the world points onto rays along the unit bearings.
pub fn p3p(bearings: &[DVec3; 3], world: &[DVec3; 3]) -> Vec<Pose> {
    let f = bearings.map(|b| b.normalize_or_zero());
    let a2 = (world[1] - world[2]).length_squared();
    let b2 = (world[0] - world[2]).length_squared();
    let c2 = (world[0] - world[1]).length_squared();
    if a2 < 1e-18 || b2 < 1e-18 || c2 < 1e-18 {
        return Vec::new();
    }
    let ca = f[1].dot(f[2]);
    let cb = f[0].dot(f[2]);
    let cg = f[0].dot(f[1]);
    // Depths s2 = u s1, s3 = v s1. From the law of cosines:
    //  b2 (u^2 + v^2 - 2uv ca) = a2 (1 + v^2 - 2v cb)
    //  b2 (1 + u^2 - 2u cg)    = c2 (1 + v^2 - 2v cb)
    // Their difference is linear in u: u = N(v) / D(v).
    let k = (a2 - c2) / b2;
    let n = [1.0 + k, -2.0 * k * cb, k - 1.0];
    let d = [2.0 * cg, -2.0 * ca];
    // Substitute into u^2 - 2u cg + 1 - (c2/b2)(1 + v^2 - 2v cb) = 0, times D^2.
    let g = [1.0 - c2 / b2, 2.0 * (c2 / b2) * cb, -(c2 / b2)];
    let quartic = poly_add(
        &poly_add(&poly_mul(&n, &n), &poly_scale(&poly_mul(&n, &d), -2.0 * cg)),
        &poly_mul(&g, &poly_mul(&d, &d)),
    );
    let mut out = Vec::new();
    for v in real_roots(&quartic) {
        let dv = d[0] + d[1] * v;
        if v <= 0.0 || dv.abs() < 1e-12 {
            continue;
        }
        let u = (n[0] + n[1] * v + n[2] * v * v) / dv;
        if u <= 0.0 {
            continue;
        }
        let den = 1.0 + v * v - 2.0 * v * cb;
        if den <= 0.0 {
            continue;
        }
        let s1 = (b2 / den).sqrt();
        let q = [f[0] * s1, f[1] * (u * s1), f[2] * (v * s1)];
        if let Some(pose) = align_rigid(world, &q) {
            out.push(pose);
        }
    }
    out
}
