//! Non-linear refinement of a single camera pose from 2D-3D correspondences.

// Index loops mirror the matrix formulas they implement; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use super::Pose;
use crate::linalg::{cholesky_solve, rodrigues, skew};
use glam::{DVec2, DVec3};

/// Refines `pose` by Levenberg-Marquardt on the reprojection error in normalized coordinates,
/// with a Cauchy loss of scale `loss_scale` (normalized units) so that outliers left by RANSAC
/// cannot drag the pose.
pub fn refine_pose(
    pose: &Pose,
    pts: &[DVec2],
    world: &[DVec3],
    loss_scale: f64,
    iters: usize,
) -> Pose {
    let mut cur = *pose;
    let c2 = loss_scale * loss_scale;
    let cost = |p: &Pose| -> f64 {
        let mut s = 0.0;
        for (x, w) in pts.iter().zip(world) {
            let xc = p.apply(*w);
            if xc.z <= 0.0 {
                s += c2 * (1.0 + 1e4f64).ln();
                continue;
            }
            let r = DVec2::new(xc.x / xc.z, xc.y / xc.z) - *x;
            s += c2 * (1.0 + r.length_squared() / c2).ln();
        }
        s
    };
    let mut lambda = 1e-3;
    let mut c_cur = cost(&cur);
    for _ in 0..iters {
        let mut h = [0.0f64; 36];
        let mut g = [0.0f64; 6];
        for (x, w) in pts.iter().zip(world) {
            let xc = cur.apply(*w);
            if xc.z <= 1e-12 {
                continue;
            }
            let iz = 1.0 / xc.z;
            let r = DVec2::new(xc.x * iz, xc.y * iz) - *x;
            let wgt = 1.0 / (1.0 + r.length_squared() / c2);
            // d(proj)/d(xc)
            let dp = [[iz, 0.0, -xc.x * iz * iz], [0.0, iz, -xc.y * iz * iz]];
            // xc' = exp(dw) xc + dt  =>  d xc / d dw = -[xc]_x, d xc / d dt = I
            let sk = skew(xc);
            let mut j = [[0.0f64; 6]; 2];
            for row in 0..2 {
                for c in 0..3 {
                    let mut s = 0.0;
                    for k in 0..3 {
                        s += dp[row][k] * -sk.col(c)[k];
                    }
                    j[row][c] = s;
                    j[row][3 + c] = dp[row][c];
                }
            }
            let res = [r.x, r.y];
            for a in 0..6 {
                for row in 0..2 {
                    g[a] += wgt * j[row][a] * res[row];
                    for b in 0..6 {
                        h[a * 6 + b] += wgt * j[row][a] * j[row][b];
                    }
                }
            }
        }
        let mut improved = false;
        for _ in 0..10 {
            let mut hh = h;
            for a in 0..6 {
                hh[a * 6 + a] += lambda * (h[a * 6 + a] + 1e-12);
            }
            let mut d = g.map(|v| -v);
            if !cholesky_solve(&mut hh, 6, &mut d) {
                lambda *= 10.0;
                continue;
            }
            let rot = rodrigues(DVec3::new(d[0], d[1], d[2]));
            let cand = Pose {
                r: rot * cur.r,
                t: rot * cur.t + DVec3::new(d[3], d[4], d[5]),
            };
            let c_new = cost(&cand);
            if c_new < c_cur {
                let rel = (c_cur - c_new) / c_cur.max(1e-300);
                cur = cand;
                c_cur = c_new;
                lambda = (lambda * 0.3).max(1e-9);
                improved = rel > 1e-10;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    cur.r = crate::linalg::nearest_rotation(&cur.r);
    cur
}

/// Refines a relative pose (camera 2 from camera 1, |t| = 1) by Levenberg-Marquardt on the
/// Sampson error of normalized correspondences; five degrees of freedom (rotation and the
/// direction of t). A Cauchy loss scaled to twice the robust spread of the initial residuals
/// keeps near-threshold outliers, which RANSAC inlier sets always contain, from bending the
/// weakly constrained directions.
pub fn refine_relative_pose(pose: &Pose, x1: &[DVec2], x2: &[DVec2], iters: usize) -> Pose {
    use super::essential::essential_from_pose;
    let residuals = |p: &Pose, out: &mut Vec<f64>| {
        out.clear();
        let e = essential_from_pose(p);
        for (a, b) in x1.iter().zip(x2) {
            let pa = super::hom(*a);
            let pb = super::hom(*b);
            let ea = e * pa;
            let etb = e.transpose() * pb;
            let den = (ea.x * ea.x + ea.y * ea.y + etb.x * etb.x + etb.y * etb.y).max(1e-300);
            out.push(pb.dot(ea) / den.sqrt());
        }
    };
    let apply = |p: &Pose, d: &[f64; 5]| -> Pose {
        let t = p.t.normalize();
        let b1 = t.any_orthonormal_vector();
        let b2 = t.cross(b1);
        let nt = (t + b1 * d[3] + b2 * d[4]).normalize();
        Pose {
            r: rodrigues(DVec3::new(d[0], d[1], d[2])) * p.r,
            t: nt,
        }
    };
    let mut cur = Pose {
        r: pose.r,
        t: pose.t.normalize(),
    };
    let mut r0 = Vec::new();
    let mut rp = Vec::new();
    let mut rm = Vec::new();
    residuals(&cur, &mut r0);
    let c2 = {
        let mut a: Vec<f64> = r0.iter().map(|v| v.abs()).collect();
        if a.is_empty() {
            return cur;
        }
        let mid = a.len() / 2;
        a.select_nth_unstable_by(mid, f64::total_cmp);
        let c = 2.0 * 1.4826 * a[mid];
        (c * c).max(1e-24)
    };
    let robust = |r: &[f64]| r.iter().map(|v| c2 * (1.0 + v * v / c2).ln()).sum::<f64>();
    let mut cost: f64 = robust(&r0);
    let mut lambda = 1e-4;
    for _ in 0..iters {
        let n = r0.len();
        let mut jac = vec![[0.0f64; 5]; n];
        for k in 0..5 {
            let mut d = [0.0; 5];
            let h = 1e-7;
            d[k] = h;
            residuals(&apply(&cur, &d), &mut rp);
            d[k] = -h;
            residuals(&apply(&cur, &d), &mut rm);
            for i in 0..n {
                jac[i][k] = (rp[i] - rm[i]) / (2.0 * h);
            }
        }
        let mut h = [0.0f64; 25];
        let mut g = [0.0f64; 5];
        for i in 0..n {
            let w = 1.0 / (1.0 + r0[i] * r0[i] / c2);
            for a in 0..5 {
                g[a] += w * jac[i][a] * r0[i];
                for b in 0..5 {
                    h[a * 5 + b] += w * jac[i][a] * jac[i][b];
                }
            }
        }
        let mut improved = false;
        for _ in 0..8 {
            let mut hh = h;
            for a in 0..5 {
                hh[a * 5 + a] += lambda * (h[a * 5 + a] + 1e-18);
            }
            let mut d = g.map(|v| -v);
            if !cholesky_solve(&mut hh, 5, &mut d) {
                lambda *= 10.0;
                continue;
            }
            let cand = apply(&cur, &d);
            residuals(&cand, &mut rp);
            let c = robust(&rp);
            if c < cost {
                improved = (cost - c) > 1e-12 * cost;
                cur = cand;
                cost = c;
                std::mem::swap(&mut r0, &mut rp);
                lambda = (lambda * 0.3).max(1e-10);
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    cur.r = crate::linalg::nearest_rotation(&cur.r);
    cur
}
