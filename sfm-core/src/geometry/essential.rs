//! Five-point relative pose (Stewénius' action-matrix formulation) and essential-matrix
//! decomposition with a cheirality check.

// Index loops mirror the matrix formulas they implement; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use super::{hom, Pose};
use crate::linalg::{char_poly, lu_solve, mat3_from_slice, null_space, real_roots, svd3, Mat};
use glam::{DMat3, DVec2};

/// Exponents (x, y, z) of the 20 monomials of degree <= 3: the ten cubics first, then the
/// quotient-ring basis {x^2, xy, xz, y^2, yz, z^2, x, y, z, 1}.
const EXPS: [(u8, u8, u8); 20] = [
    (3, 0, 0),
    (2, 1, 0),
    (2, 0, 1),
    (1, 2, 0),
    (1, 1, 1),
    (1, 0, 2),
    (0, 3, 0),
    (0, 2, 1),
    (0, 1, 2),
    (0, 0, 3),
    (2, 0, 0),
    (1, 1, 0),
    (1, 0, 1),
    (0, 2, 0),
    (0, 1, 1),
    (0, 0, 2),
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (0, 0, 0),
];

type Poly = [f64; 20];

fn mono_index(a: u8, b: u8, c: u8) -> usize {
    EXPS.iter()
        .position(|&e| e == (a, b, c))
        .unwrap_or(usize::MAX)
}

struct PolyRing {
    /// Product table: index of monomial i * monomial j, or usize::MAX if degree > 3.
    table: [[usize; 20]; 20],
}

impl PolyRing {
    fn new() -> Self {
        let mut table = [[usize::MAX; 20]; 20];
        for i in 0..20 {
            for j in 0..20 {
                let (a, b) = (EXPS[i], EXPS[j]);
                if a.0 + a.1 + a.2 + b.0 + b.1 + b.2 <= 3 {
                    table[i][j] = mono_index(a.0 + b.0, a.1 + b.1, a.2 + b.2);
                }
            }
        }
        Self { table }
    }

    fn mul(&self, p: &Poly, q: &Poly) -> Poly {
        let mut out = [0.0; 20];
        for i in 0..20 {
            if p[i] == 0.0 {
                continue;
            }
            for j in 0..20 {
                if q[j] == 0.0 {
                    continue;
                }
                let k = self.table[i][j];
                debug_assert!(k != usize::MAX);
                if k != usize::MAX {
                    out[k] += p[i] * q[j];
                }
            }
        }
        out
    }
}

fn padd(p: &Poly, q: &Poly) -> Poly {
    let mut o = *p;
    for i in 0..20 {
        o[i] += q[i];
    }
    o
}

fn pscale(p: &Poly, s: f64) -> Poly {
    let mut o = *p;
    for v in o.iter_mut() {
        *v *= s;
    }
    o
}

/// Essential matrices consistent with >= 5 correspondences in normalized image coordinates
/// (`x2^T E x1 = 0`). With more than five points the null space is taken in the least-squares
/// sense, which is what the local optimisation of LO-RANSAC uses.
pub fn five_point(x1: &[DVec2], x2: &[DVec2]) -> Vec<DMat3> {
    let n = x1.len();
    if n < 5 || x2.len() != n {
        return Vec::new();
    }
    let mut a = Mat::zeros(n, 9);
    for i in 0..n {
        let p = hom(x1[i]);
        let q = hom(x2[i]);
        let (pa, qa) = (p.to_array(), q.to_array());
        for r in 0..3 {
            for c in 0..3 {
                *a.at_mut(i, r * 3 + c) = qa[r] * pa[c];
            }
        }
    }
    let ns = null_space(&a, 4);
    static RING: std::sync::OnceLock<PolyRing> = std::sync::OnceLock::new();
    let ring = RING.get_or_init(PolyRing::new);
    // E(x, y, z) = x X + y Y + z Z + W, entries as degree-one polynomials.
    let mut e: [[Poly; 3]; 3] = [[[0.0; 20]; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            let k = r * 3 + c;
            e[r][c][16] = ns[0][k];
            e[r][c][17] = ns[1][k];
            e[r][c][18] = ns[2][k];
            e[r][c][19] = ns[3][k];
        }
    }
    let mut eet: [[Poly; 3]; 3] = [[[0.0; 20]; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            let mut s = [0.0; 20];
            for k in 0..3 {
                s = padd(&s, &ring.mul(&e[r][k], &e[c][k]));
            }
            eet[r][c] = s;
        }
    }
    let tr = padd(&padd(&eet[0][0], &eet[1][1]), &eet[2][2]);
    let mut rows: Vec<Poly> = Vec::with_capacity(10);
    // det(E) = 0
    let det = {
        let m = |r: usize, c: usize| &e[r][c];
        let c0 = padd(
            &ring.mul(m(1, 1), m(2, 2)),
            &pscale(&ring.mul(m(1, 2), m(2, 1)), -1.0),
        );
        let c1 = padd(
            &ring.mul(m(1, 2), m(2, 0)),
            &pscale(&ring.mul(m(1, 0), m(2, 2)), -1.0),
        );
        let c2 = padd(
            &ring.mul(m(1, 0), m(2, 1)),
            &pscale(&ring.mul(m(1, 1), m(2, 0)), -1.0),
        );
        padd(
            &padd(&ring.mul(m(0, 0), &c0), &ring.mul(m(0, 1), &c1)),
            &ring.mul(m(0, 2), &c2),
        )
    };
    rows.push(det);
    // 2 E E^T E - tr(E E^T) E = 0
    for r in 0..3 {
        for c in 0..3 {
            let mut s = [0.0; 20];
            for k in 0..3 {
                s = padd(&s, &ring.mul(&eet[r][k], &e[k][c]));
            }
            let s = padd(&pscale(&s, 2.0), &pscale(&ring.mul(&tr, &e[r][c]), -1.0));
            rows.push(s);
        }
    }
    // Eliminate the cubic monomials: [C1 | C2] m = 0  =>  cubics = -C1^{-1} C2 basis.
    let mut c1 = vec![0.0; 100];
    let mut c2 = vec![0.0; 100];
    for (i, row) in rows.iter().enumerate() {
        c1[i * 10..i * 10 + 10].copy_from_slice(&row[..10]);
        c2[i * 10..i * 10 + 10].copy_from_slice(&row[10..]);
    }
    if !lu_solve(&mut c1, 10, &mut c2, 10) {
        return Vec::new();
    }
    let mut m = Mat::zeros(10, 10);
    for r in 0..6 {
        for c in 0..10 {
            *m.at_mut(r, c) = -c2[r * 10 + c];
        }
    }
    *m.at_mut(6, 0) = 1.0;
    *m.at_mut(7, 1) = 1.0;
    *m.at_mut(8, 2) = 1.0;
    *m.at_mut(9, 6) = 1.0;
    let roots = real_roots(&char_poly(&m));
    let mut out = Vec::new();
    for lambda in roots {
        // Eigenvector with its last entry (the monomial 1) fixed to one: solve the first nine
        // rows of (M - lambda I) v = 0, which is far cheaper than a null space per root.
        let mut a9 = vec![0.0; 81];
        let mut b9 = vec![0.0; 9];
        for r in 0..9 {
            for c in 0..9 {
                a9[r * 9 + c] = m.at(r, c) - if r == c { lambda } else { 0.0 };
            }
            b9[r] = -m.at(r, 9);
        }
        if !lu_solve(&mut a9, 9, &mut b9, 1) {
            continue;
        }
        let mut vec = b9;
        vec.push(1.0);
        let (x, y, z) = (vec[6] / vec[9], vec[7] / vec[9], vec[8] / vec[9]);
        let mut ev = [0.0; 9];
        for k in 0..9 {
            ev[k] = x * ns[0][k] + y * ns[1][k] + z * ns[2][k] + ns[3][k];
        }
        let norm = ev.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm < 1e-300 || !norm.is_finite() {
            continue;
        }
        out.push(mat3_from_slice(&ev) * (1.0 / norm));
    }
    out
}

/// The four (R, t) factorisations of an essential matrix (t has unit length).
pub fn decompose(e: &DMat3) -> [Pose; 4] {
    let (mut u, _, mut v) = svd3(e);
    if u.determinant() < 0.0 {
        u = -u;
    }
    if v.determinant() < 0.0 {
        v = -v;
    }
    let w = crate::linalg::mat3_rows([0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]);
    let r1 = u * w * v.transpose();
    let r2 = u * w.transpose() * v.transpose();
    let t = u.z_axis;
    [
        Pose { r: r1, t },
        Pose { r: r1, t: -t },
        Pose { r: r2, t },
        Pose { r: r2, t: -t },
    ]
}

/// Depths of a correspondence along both rays (least squares on `d1 R a + t = d2 b`).
#[inline]
fn ray_depths(p: &Pose, x1: DVec2, x2: DVec2) -> Option<(f64, f64)> {
    let ra = p.r * hom(x1);
    let b = hom(x2);
    // Columns u = Ra, v = -b; solve [u v] d = -t in the least-squares sense.
    let (uu, uv, vv) = (ra.dot(ra), -ra.dot(b), b.dot(b));
    let (ut, vt) = (-ra.dot(p.t), b.dot(p.t));
    let det = uu * vv - uv * uv;
    if det.abs() < 1e-14 * uu * vv {
        return None;
    }
    Some(((vv * ut - uv * vt) / det, (uu * vt - uv * ut) / det))
}

/// Picks the factorisation of `e` that puts the most correspondences in front of both cameras.
///
/// Returns the pose of camera 2 relative to camera 1 and how many correspondences pass the
/// cheirality test. At most 500 evenly spaced correspondences are checked: the vote is
/// decided long before that, and callers pass thousands.
pub fn pose_from_essential(e: &DMat3, x1: &[DVec2], x2: &[DVec2]) -> Option<(Pose, usize)> {
    let step = (x1.len() / 500).max(1);
    let mut best: Option<(Pose, usize)> = None;
    for cand in decompose(e) {
        let mut n = 0;
        for i in (0..x1.len()).step_by(step) {
            if let Some((d1, d2)) = ray_depths(&cand, x1[i], x2[i]) {
                if d1 > 0.0 && d2 > 0.0 {
                    n += 1;
                }
            }
        }
        if best.as_ref().is_none_or(|b| n > b.1) {
            best = Some((cand, n));
        }
    }
    best.filter(|b| b.1 > 0)
}

/// Essential matrix of a relative pose: `E = [t]_x R`.
pub fn essential_from_pose(p: &Pose) -> DMat3 {
    crate::linalg::skew(p.t) * p.r
}
