//! Fundamental matrix from seven (minimal) or eight and more (normalised linear) correspondences.

// Index loops mirror the matrix formulas they implement; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use super::{hom, normalize_points};
use crate::linalg::{lu_solve, mat3_from_slice, null_space, real_roots, svd3, Mat};
use glam::{DMat3, DVec2};

fn design(x1: &[DVec2], x2: &[DVec2]) -> Mat {
    let mut a = Mat::zeros(x1.len(), 9);
    for i in 0..x1.len() {
        let (p, q) = (hom(x1[i]).to_array(), hom(x2[i]).to_array());
        for r in 0..3 {
            for c in 0..3 {
                *a.at_mut(i, r * 3 + c) = q[r] * p[c];
            }
        }
    }
    a
}

fn normalized_frobenius(f: DMat3) -> DMat3 {
    let n = f.to_cols_array().iter().map(|v| v * v).sum::<f64>().sqrt();
    if n > 0.0 {
        f * (1.0 / n)
    } else {
        f
    }
}

/// Up to three fundamental matrices through exactly seven correspondences (`x2^T F x1 = 0`).
pub fn seven_point(x1: &[DVec2], x2: &[DVec2]) -> Vec<DMat3> {
    if x1.len() != 7 || x2.len() != 7 {
        return Vec::new();
    }
    let (n1, t1) = normalize_points(x1);
    let (n2, t2) = normalize_points(x2);
    let ns = null_space(&design(&n1, &n2), 2);
    let f1 = mat3_from_slice(&ns[0]);
    let f2 = mat3_from_slice(&ns[1]);
    // det(a F1 + (1 - a) F2) is a cubic in a: recover it by interpolating four samples.
    let xs: [f64; 4] = [0.0, 1.0, -1.0, 2.0];
    let mut v = vec![0.0; 16];
    let mut b = vec![0.0; 4];
    for (i, &a) in xs.iter().enumerate() {
        for k in 0..4 {
            v[i * 4 + k] = a.powi(k as i32);
        }
        b[i] = (f1 * a + f2 * (1.0 - a)).determinant();
    }
    if !lu_solve(&mut v, 4, &mut b, 1) {
        return Vec::new();
    }
    real_roots(&b)
        .into_iter()
        .map(|a| normalized_frobenius(t2.transpose() * (f1 * a + f2 * (1.0 - a)) * t1))
        .collect()
}

/// Least-squares fundamental matrix from >= 8 correspondences, rank two enforced.
pub fn eight_point(x1: &[DVec2], x2: &[DVec2]) -> Option<DMat3> {
    if x1.len() < 8 || x2.len() != x1.len() {
        return None;
    }
    let (n1, t1) = normalize_points(x1);
    let (n2, t2) = normalize_points(x2);
    let ns = null_space(&design(&n1, &n2), 1);
    let f = mat3_from_slice(&ns[0]);
    let (u, s, v) = svd3(&f);
    let f = u * DMat3::from_diagonal(glam::DVec3::new(s.x, s.y, 0.0)) * v.transpose();
    Some(normalized_frobenius(t2.transpose() * f * t1))
}
