//! Small dense linear algebra for the geometry solvers: Jacobi SVD, Cholesky,
//! Hessenberg characteristic polynomials and real polynomial roots.

// Index loops mirror the matrix formulas they implement; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use glam::{DMat3, DVec3};
use rayon::prelude::*;

/// Row-major dense matrix of f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Mat {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row-major entries.
    pub data: Vec<f64>,
}

impl Mat {
    /// All-zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Entry (r, c).
    #[inline]
    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    /// Mutable entry (r, c).
    #[inline]
    pub fn at_mut(&mut self, r: usize, c: usize) -> &mut f64 {
        &mut self.data[r * self.cols + c]
    }

    /// Column c copied out.
    pub fn col(&self, c: usize) -> Vec<f64> {
        (0..self.rows).map(|r| self.at(r, c)).collect()
    }
}

/// Singular value decomposition `A = U diag(s) V^T` of a matrix with any shape.
///
/// Returns the singular values in descending order and V (cols x cols, columns are right singular
/// vectors). Shorter-than-wide inputs are padded with zero rows so the null space is complete.
pub fn svd_right(a: &Mat) -> (Vec<f64>, Mat) {
    let n = a.cols;
    let m = a.rows.max(n);
    // One-sided Jacobi works on columns; store the working matrix column-major for locality.
    let mut w = vec![0.0; m * n];
    for r in 0..a.rows {
        for c in 0..n {
            w[c * m + r] = a.at(r, c);
        }
    }
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    // Rotations below this absolute size change V by less than machine precision; without it,
    // pairs of (numerically) null columns never meet the relative criterion.
    let frob2: f64 = w.iter().map(|x| x * x).sum();
    let abs_tol = 1e-17 * frob2;
    for _sweep in 0..40 {
        let mut rotated = false;
        for p in 0..n {
            for q in (p + 1)..n {
                let (mut alpha, mut beta, mut gamma) = (0.0, 0.0, 0.0);
                {
                    let cp = &w[p * m..(p + 1) * m];
                    let cq = &w[q * m..(q + 1) * m];
                    for k in 0..m {
                        alpha += cp[k] * cp[k];
                        beta += cq[k] * cq[k];
                        gamma += cp[k] * cq[k];
                    }
                }
                if gamma.abs() <= abs_tol || gamma.abs() <= 1e-15 * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for k in 0..m {
                    let xp = w[p * m + k];
                    let xq = w[q * m + k];
                    w[p * m + k] = c * xp - s * xq;
                    w[q * m + k] = s * xp + c * xq;
                }
                for k in 0..n {
                    let xp = v[p * n + k];
                    let xq = v[q * n + k];
                    v[p * n + k] = c * xp - s * xq;
                    v[q * n + k] = s * xp + c * xq;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut s: Vec<(f64, usize)> = (0..n)
        .map(|c| {
            (
                w[c * m..(c + 1) * m]
                    .iter()
                    .map(|x| x * x)
                    .sum::<f64>()
                    .sqrt(),
                c,
            )
        })
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut vout = Mat::zeros(n, n);
    for (j, &(_, c)) in s.iter().enumerate() {
        for k in 0..n {
            *vout.at_mut(k, j) = v[c * n + k];
        }
    }
    (s.into_iter().map(|x| x.0).collect(), vout)
}

/// Right singular vectors for the `k` smallest singular values (the approximate null space).
pub fn null_space(a: &Mat, k: usize) -> Vec<Vec<f64>> {
    let (_, v) = svd_right(a);
    let n = a.cols;
    (n - k..n).rev().map(|c| v.col(c)).collect()
}

/// Builds a 3x3 matrix from rows.
pub fn mat3_rows(r0: [f64; 3], r1: [f64; 3], r2: [f64; 3]) -> DMat3 {
    DMat3::from_cols(
        DVec3::new(r0[0], r1[0], r2[0]),
        DVec3::new(r0[1], r1[1], r2[1]),
        DVec3::new(r0[2], r1[2], r2[2]),
    )
}

/// Builds a 3x3 matrix from 9 row-major values.
pub fn mat3_from_slice(e: &[f64]) -> DMat3 {
    mat3_rows([e[0], e[1], e[2]], [e[3], e[4], e[5]], [e[6], e[7], e[8]])
}

/// Entry (r, c) of a glam matrix (which is column-major).
#[inline]
pub fn m3(m: &DMat3, r: usize, c: usize) -> f64 {
    m.col(c)[r]
}

/// Full SVD of a 3x3 matrix: `m = u * diag(s) * v^T` with s descending, u and v orthonormal.
pub fn svd3(m: &DMat3) -> (DMat3, DVec3, DMat3) {
    let mut a = Mat::zeros(3, 3);
    for r in 0..3 {
        for c in 0..3 {
            *a.at_mut(r, c) = m3(m, r, c);
        }
    }
    let (s, v) = svd_right(&a);
    let vm = DMat3::from_cols(
        DVec3::new(v.at(0, 0), v.at(1, 0), v.at(2, 0)),
        DVec3::new(v.at(0, 1), v.at(1, 1), v.at(2, 1)),
        DVec3::new(v.at(0, 2), v.at(1, 2), v.at(2, 2)),
    );
    let mut u_cols = [DVec3::ZERO; 3];
    for j in 0..3 {
        let av = *m * vm.col(j);
        u_cols[j] = if s[j] > 1e-12 * s[0].max(1e-300) {
            av / s[j]
        } else {
            DVec3::ZERO
        };
    }
    // Complete U for (near) rank-deficient inputs so it stays orthonormal.
    if u_cols[1] == DVec3::ZERO {
        u_cols[1] = u_cols[0].any_orthonormal_vector();
    }
    if u_cols[2] == DVec3::ZERO || s[2] <= 1e-12 * s[0].max(1e-300) {
        u_cols[2] = u_cols[0].cross(u_cols[1]).normalize();
    }
    (
        DMat3::from_cols(u_cols[0], u_cols[1], u_cols[2]),
        DVec3::new(s[0], s[1], s[2]),
        vm,
    )
}

/// Closest rotation (in Frobenius norm) to a 3x3 matrix.
pub fn nearest_rotation(m: &DMat3) -> DMat3 {
    let (u, _, v) = svd3(m);
    let mut r = u * v.transpose();
    if r.determinant() < 0.0 {
        let u2 = DMat3::from_cols(u.x_axis, u.y_axis, -u.z_axis);
        r = u2 * v.transpose();
    }
    r
}

/// Dot product with eight independent partial sums: the compiler keeps them in vector
/// registers, so the loop runs at the machine's add throughput rather than one add latency
/// per element. The summation order is fixed by this code, so results do not depend on the
/// machine or the thread count.
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = [0.0f64; 8];
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Solves the symmetric positive definite system `a x = b` in place (a is n x n row-major).
///
/// Only the lower triangle of `a` (column <= row) is read; it is overwritten by the Cholesky
/// factor. Returns false when `a` is not positive definite; `b` then holds garbage.
pub fn cholesky_solve(a: &mut [f64], n: usize, b: &mut [f64]) -> bool {
    for j in 0..n {
        let d = a[j * n + j] - dot(&a[j * n..j * n + j], &a[j * n..j * n + j]);
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        let (head, tail) = a.split_at_mut((j + 1) * n);
        let rowj = &head[j * n..j * n + j];
        let update = |rowi: &mut [f64]| {
            rowi[j] = (rowi[j] - dot(&rowi[..j], rowj)) / d;
        };
        // The rows below j are independent given row j; the reduced camera systems of
        // bundle adjustment (thousands of unknowns) are worth spreading over the cores.
        if (n - j) * j > 1 << 15 {
            tail.par_chunks_mut(n).for_each(update);
        } else {
            tail.chunks_mut(n).for_each(update);
        }
    }
    for i in 0..n {
        let s = b[i] - dot(&a[i * n..i * n + i], &b[..i]);
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in (i + 1)..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    true
}

/// Solves a general square system with partial pivoting; `a` is n x n row-major, `b` n x m.
///
/// Returns false for a (numerically) singular matrix.
pub fn lu_solve(a: &mut [f64], n: usize, b: &mut [f64], m: usize) -> bool {
    for col in 0..n {
        let mut piv = col;
        for r in col + 1..n {
            if a[r * n + col].abs() > a[piv * n + col].abs() {
                piv = r;
            }
        }
        if a[piv * n + col].abs() < 1e-14 {
            return false;
        }
        if piv != col {
            for k in 0..n {
                a.swap(piv * n + k, col * n + k);
            }
            for k in 0..m {
                b.swap(piv * m + k, col * m + k);
            }
        }
        let d = a[col * n + col];
        for r in col + 1..n {
            let f = a[r * n + col] / d;
            if f == 0.0 {
                continue;
            }
            for k in col..n {
                a[r * n + k] -= f * a[col * n + k];
            }
            for k in 0..m {
                b[r * m + k] -= f * b[col * m + k];
            }
        }
    }
    for col in (0..n).rev() {
        let d = a[col * n + col];
        for k in 0..m {
            let mut s = b[col * m + k];
            for j in col + 1..n {
                s -= a[col * n + j] * b[j * m + k];
            }
            b[col * m + k] = s / d;
        }
    }
    true
}

/// Characteristic polynomial `det(lambda I - A)` of a square matrix, lowest degree first.
///
/// Reduces to Hessenberg form with Householder reflections, then uses La Budde's recurrence,
/// which is stable enough for the 10x10 action matrices of the five-point solver.
pub fn char_poly(a: &Mat) -> Vec<f64> {
    let n = a.rows;
    let mut h = a.clone();
    for k in 0..n.saturating_sub(2) {
        let mut x: Vec<f64> = (k + 1..n).map(|r| h.at(r, k)).collect();
        let alpha = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        if alpha < 1e-300 {
            continue;
        }
        let sign = if x[0] >= 0.0 { 1.0 } else { -1.0 };
        x[0] += sign * alpha;
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm < 1e-300 {
            continue;
        }
        for v in x.iter_mut() {
            *v /= norm;
        }
        // H <- P H P with P = I - 2 x x^T acting on rows/cols k+1..n.
        for c in 0..n {
            let d: f64 = (0..x.len()).map(|i| x[i] * h.at(k + 1 + i, c)).sum();
            for i in 0..x.len() {
                *h.at_mut(k + 1 + i, c) -= 2.0 * x[i] * d;
            }
        }
        for r in 0..n {
            let d: f64 = (0..x.len()).map(|i| x[i] * h.at(r, k + 1 + i)).sum();
            for i in 0..x.len() {
                *h.at_mut(r, k + 1 + i) -= 2.0 * x[i] * d;
            }
        }
    }
    // p[i] is the characteristic polynomial of the leading i x i block.
    let mut p: Vec<Vec<f64>> = vec![vec![1.0]];
    for i in 1..=n {
        let hii = h.at(i - 1, i - 1);
        let prev = &p[i - 1];
        let mut cur = vec![0.0; i + 1];
        for (d, &c) in prev.iter().enumerate() {
            cur[d + 1] += c;
            cur[d] -= hii * c;
        }
        let mut prod = 1.0;
        for m in 1..i {
            prod *= h.at(i - m, i - m - 1);
            let coef = h.at(i - m - 1, i - 1) * prod;
            for (d, &c) in p[i - m - 1].iter().enumerate() {
                cur[d] -= coef * c;
            }
        }
        p.push(cur);
    }
    p.pop().unwrap_or_default()
}

/// Evaluates a polynomial given lowest degree first.
pub fn poly_eval(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &k| acc * x + k)
}

/// Product of two polynomials (lowest degree first).
pub fn poly_mul(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, &x) in a.iter().enumerate() {
        for (j, &y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

/// Sum of two polynomials (lowest degree first).
pub fn poly_add(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len().max(b.len())];
    for (i, &x) in a.iter().enumerate() {
        out[i] += x;
    }
    for (i, &y) in b.iter().enumerate() {
        out[i] += y;
    }
    out
}

/// Scales a polynomial.
pub fn poly_scale(a: &[f64], s: f64) -> Vec<f64> {
    a.iter().map(|x| x * s).collect()
}

/// Real roots of a polynomial (lowest degree first), ascending.
///
/// Isolates roots between consecutive critical points (roots of the derivative, found
/// recursively) and bisects each bracket; double roots that only touch zero are skipped, which is
/// acceptable for the minimal solvers since RANSAC scores every candidate anyway.
pub fn real_roots(c: &[f64]) -> Vec<f64> {
    let scale = c.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if scale == 0.0 || !scale.is_finite() {
        return Vec::new();
    }
    let mut deg = c.len() - 1;
    while deg > 0 && c[deg].abs() <= 1e-14 * scale {
        deg -= 1;
    }
    let c = &c[..=deg];
    match deg {
        0 => return Vec::new(),
        1 => return vec![-c[0] / c[1]],
        _ => {}
    }
    let lead = c[deg];
    let bound = 1.0 + c[..deg].iter().fold(0.0f64, |m, x| m.max((x / lead).abs()));
    let deriv: Vec<f64> = (1..=deg).map(|i| c[i] * i as f64).collect();
    let mut pts = vec![-bound];
    pts.extend(real_roots(&deriv).into_iter().filter(|x| x.abs() < bound));
    pts.push(bound);
    let mut roots = Vec::new();
    for w in pts.windows(2) {
        let (mut lo, mut hi) = (w[0], w[1]);
        let (mut flo, fhi) = (poly_eval(c, lo), poly_eval(c, hi));
        if flo == 0.0 {
            if roots.last().is_none_or(|&r: &f64| (r - lo).abs() > 1e-12) {
                roots.push(lo);
            }
            continue;
        }
        if flo.signum() == fhi.signum() {
            continue;
        }
        // Illinois (modified regula falsi): superlinear, and the bracket always shrinks.
        let mut fhi = fhi;
        let mut side = 0i32;
        for _ in 0..100 {
            let mid = (lo * fhi - hi * flo) / (fhi - flo);
            let mid = if mid > lo && mid < hi {
                mid
            } else {
                0.5 * (lo + hi)
            };
            let fm = poly_eval(c, mid);
            if fm == 0.0 {
                lo = mid;
                hi = mid;
                break;
            }
            if fm.signum() == flo.signum() {
                lo = mid;
                flo = fm;
                if side == -1 {
                    fhi *= 0.5;
                }
                side = -1;
            } else {
                hi = mid;
                fhi = fm;
                if side == 1 {
                    flo *= 0.5;
                }
                side = 1;
            }
            if (hi - lo) <= 1e-15 * (lo.abs() + hi.abs()).max(1e-300) {
                break;
            }
        }
        roots.push(0.5 * (lo + hi));
    }
    roots
}

/// Skew-symmetric cross-product matrix of v.
pub fn skew(v: DVec3) -> DMat3 {
    mat3_rows([0.0, -v.z, v.y], [v.z, 0.0, -v.x], [-v.y, v.x, 0.0])
}

/// Rotation matrix from an axis-angle vector (Rodrigues).
pub fn rodrigues(w: DVec3) -> DMat3 {
    let th = w.length();
    if th < 1e-12 {
        return DMat3::IDENTITY + skew(w);
    }
    DMat3::from_axis_angle(w / th, th)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svd_reconstructs_and_orders() {
        let a = Mat {
            rows: 4,
            cols: 3,
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, -1.0, 0.5, 2.0],
        };
        let (s, v) = svd_right(&a);
        assert!(s[0] >= s[1] && s[1] >= s[2]);
        // Columns of A V must have norms equal to the singular values and be orthogonal.
        for j in 0..3 {
            let av: Vec<f64> = (0..4)
                .map(|r| (0..3).map(|c| a.at(r, c) * v.at(c, j)).sum())
                .collect();
            let n = av.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((n - s[j]).abs() < 1e-10);
        }
    }

    #[test]
    fn svd3_rank_deficient() {
        let m = mat3_rows([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]);
        let (u, s, v) = svd3(&m);
        let back = u * DMat3::from_diagonal(s) * v.transpose();
        assert!((back - m).abs_diff_eq(DMat3::ZERO, 1e-9));
        assert!(s.z < 1e-9);
        assert!((u.transpose() * u).abs_diff_eq(DMat3::IDENTITY, 1e-9));
    }

    #[test]
    fn roots_of_known_polynomial() {
        // (x-1)(x+2)(x-3.5)(x^2+1)
        let p = poly_mul(
            &poly_mul(&poly_mul(&[-1.0, 1.0], &[2.0, 1.0]), &[-3.5, 1.0]),
            &[1.0, 0.0, 1.0],
        );
        let r = real_roots(&p);
        assert_eq!(r.len(), 3);
        for (a, b) in r.iter().zip([-2.0, 1.0, 3.5]) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn char_poly_matches_eigenvalues() {
        // Upper triangular after a similarity: eigenvalues 1, 2, 3, -4.
        let t = Mat {
            rows: 4,
            cols: 4,
            data: vec![
                1.0, 5.0, -2.0, 1.0, 0.0, 2.0, 3.0, 0.5, 0.0, 0.0, 3.0, 7.0, 0.0, 0.0, 0.0, -4.0,
            ],
        };
        let mut s = Mat::zeros(4, 4);
        let vals = [
            2.0, 1.0, 0.3, -1.0, 0.5, 3.0, 1.0, 0.2, -0.7, 0.1, 2.5, 1.0, 1.0, 1.0, 0.0, 4.0,
        ];
        s.data.copy_from_slice(&vals);
        // a = s t s^-1
        let mut sinv_b = vec![0.0; 16];
        for i in 0..4 {
            sinv_b[i * 4 + i] = 1.0;
        }
        let mut sc = s.data.clone();
        assert!(lu_solve(&mut sc, 4, &mut sinv_b, 4));
        let mul = |x: &[f64], y: &[f64]| {
            let mut o = vec![0.0; 16];
            for i in 0..4 {
                for j in 0..4 {
                    o[i * 4 + j] = (0..4).map(|k| x[i * 4 + k] * y[k * 4 + j]).sum();
                }
            }
            o
        };
        let a = Mat {
            rows: 4,
            cols: 4,
            data: mul(&mul(&s.data, &t.data), &sinv_b),
        };
        let r = real_roots(&char_poly(&a));
        assert_eq!(r.len(), 4);
        for (x, e) in r.iter().zip([-4.0, 1.0, 2.0, 3.0]) {
            assert!((x - e).abs() < 1e-8, "{x} vs {e}");
        }
    }

    #[test]
    fn cholesky_solves_spd() {
        let mut a = vec![4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let a0 = a.clone();
        let mut b = vec![1.0, 2.0, 3.0];
        assert!(cholesky_solve(&mut a, 3, &mut b));
        for i in 0..3 {
            let r: f64 = (0..3).map(|k| a0[i * 3 + k] * b[k]).sum();
            assert!((r - [1.0, 2.0, 3.0][i]).abs() < 1e-12);
        }
    }
}
