//! Per-Gaussian preprocessing: camera transform, EWA projection with the low-pass (3DGS's
//! 0.3 px² unless the render options set another), screen extent, tile rectangle and SH
//! colour; the optional anti-aliasing filters (gsplat's 2D compensation, Mip-Splatting's 3D
//! smoothing); and the backward of all of it.

use std::sync::Arc;

use super::{Real, RenderOptions, TILE_SIZE};
use crate::camera::Camera;
use crate::gaussians::{sigmoid, Splats};
use crate::sh;

/// Variance added to the projected covariance: a one-pixel low-pass that also keeps it invertible.
pub const LOW_PASS: f64 = 0.3;
/// Extent of a Gaussian on screen in standard deviations.
pub const EXTENT_SIGMAS: f64 = 3.0;
/// Relative size of the guard band beyond the image used to clamp the projection Jacobian.
pub const GUARD_BAND: f64 = 0.3;

/// The limits `[x0, x1, y0, y1]` of x/z and y/z at which the projection Jacobian is clamped:
/// the image plus [`GUARD_BAND`] of the half field of view on each side. Asymmetric limits
/// follow the principal point so that off-centre cameras clamp alike. Every backend converts
/// these (f64) values to its precision once.
pub fn jacobian_limits(c: &Camera) -> [f64; 4] {
    let (tx, ty) = c.tan_half_fov();
    [
        -(c.cx / c.fx + GUARD_BAND * tx),
        (c.width as f64 - c.cx) / c.fx + GUARD_BAND * tx,
        -(c.cy / c.fy + GUARD_BAND * ty),
        (c.height as f64 - c.cy) / c.fy + GUARD_BAND * ty,
    ]
}

/// The anti-aliasing filters of one render, as the projection reads them.
#[derive(Clone, Debug, Default)]
pub(crate) struct AaMode {
    pub mip2d: bool,
    pub filter3d: Option<Arc<[f32]>>,
    /// The low-pass variance (px²).
    pub low_pass: f64,
}

impl AaMode {
    pub fn of(opts: &RenderOptions) -> Self {
        Self {
            mip2d: opts.mip2d,
            filter3d: opts.filter3d.clone(),
            low_pass: opts.low_pass_variance(),
        }
    }

    /// Gaussian `i`'s 3D filter variance (0 without a filter or an entry).
    fn var<T: Real>(&self, i: usize) -> T {
        let v = self
            .filter3d
            .as_ref()
            .and_then(|f| f.get(i).copied())
            .unwrap_or(0.0);
        c(v as f64)
    }
}

/// Mip-Splatting's 3D smoothing filter on one Gaussian: Σ + var I = R (S² + var I) Rᵀ, so the
/// filtered Gaussian keeps its rotation, has scales sqrt(s_k² + var), and its opacity is
/// multiplied by sqrt(det Σ / det(Σ + var I)) = Π_k s_k / sqrt(s_k² + var) so that its
/// integral is unchanged. Returns (filtered scales, opacity factor); `var = 0` is the identity.
pub fn filter3d<T: Real>(log_scale: [T; 3], var: T) -> ([T; 3], T) {
    let s = log_scale.map(|v| v.exp());
    if var == T::zero() {
        return (s, T::one());
    }
    let f = s.map(|v| (v * v + var).sqrt());
    (f, s[0] / f[0] * (s[1] / f[1]) * (s[2] / f[2]))
}

/// gsplat's anti-aliasing compensation for a projected covariance `cov` = (a, b, c) before the
/// low-pass of variance `low_pass`: sqrt(det Σ2 / det(Σ2 + low_pass I)), 0 for a degenerate Σ2.
pub fn mip2d_compensation<T: Real>(cov: [T; 3], low_pass: f64) -> T {
    let lp: T = c(low_pass);
    let det0 = cov[0] * cov[2] - cov[1] * cov[1];
    let det1 = (cov[0] + lp) * (cov[2] + lp) - cov[1] * cov[1];
    if det0 > T::zero() && det1 > T::zero() {
        (det0 / det1).sqrt()
    } else {
        T::zero()
    }
}

/// Camera constants converted once to the render precision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cam<T> {
    pub w: [[T; 3]; 3],
    pub t: [T; 3],
    pub center: [T; 3],
    pub fx: T,
    pub fy: T,
    pub cx: T,
    pub cy: T,
    pub lim_x: (T, T),
    pub lim_y: (T, T),
    pub width: u32,
    pub height: u32,
}

impl<T: Real> Cam<T> {
    pub fn new(c: &Camera) -> Self {
        let f = |v: f64| T::from(v).unwrap_or_else(T::nan);
        let r = c.rotation;
        let w = [0, 1, 2].map(|i| [0, 1, 2].map(|j| f(r.col(j)[i])));
        let ctr = c.center();
        let [x0, x1, y0, y1] = jacobian_limits(c);
        let (lim_x, lim_y) = ((f(x0), f(x1)), (f(y0), f(y1)));
        Cam {
            w,
            t: c.translation.to_array().map(f),
            center: ctr.to_array().map(f),
            fx: f(c.fx),
            fy: f(c.fy),
            cx: f(c.cx),
            cy: f(c.cy),
            lim_x,
            lim_y,
            width: c.width,
            height: c.height,
        }
    }

    pub fn tiles(&self) -> (u32, u32) {
        (
            self.width.div_ceil(TILE_SIZE),
            self.height.div_ceil(TILE_SIZE),
        )
    }
}

/// The result of projecting one Gaussian.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Projected<T> {
    pub visible: bool,
    pub mean2d: [T; 2],
    /// Inverse of the 2D covariance as (a, b, c) of [[a, b], [b, c]].
    pub conic: [T; 3],
    pub opacity: T,
    pub color: [T; 3],
    pub depth: T,
    pub radius: u32,
    /// Tile rectangle [x0, y0, x1, y1), in tiles.
    pub rect: [u32; 4],
    pub color_clamped: [bool; 3],
    pub guard_clamped: [bool; 2],
}

fn c<T: Real>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

fn matvec<T: Real>(m: &[[T; 3]; 3], v: [T; 3]) -> [T; 3] {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

fn mat_t_vec<T: Real>(m: &[[T; 3]; 3], v: [T; 3]) -> [T; 3] {
    [0, 1, 2].map(|i| m[0][i] * v[0] + m[1][i] * v[1] + m[2][i] * v[2])
}

fn matmul<T: Real>(a: &[[T; 3]; 3], b: &[[T; 3]; 3]) -> [[T; 3]; 3] {
    [0, 1, 2].map(|i| [0, 1, 2].map(|j| a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j]))
}

fn transpose<T: Real>(a: &[[T; 3]; 3]) -> [[T; 3]; 3] {
    [0, 1, 2].map(|i| [0, 1, 2].map(|j| a[j][i]))
}

/// Rotation matrix of a unit quaternion (w, x, y, z).
fn quat_to_mat<T: Real>(q: [T; 4]) -> [[T; 3]; 3] {
    let [w, x, y, z] = q;
    let one = T::one();
    let two: T = c(2.0);
    [
        [
            one - two * (y * y + z * z),
            two * (x * y - w * z),
            two * (x * z + w * y),
        ],
        [
            two * (x * y + w * z),
            one - two * (x * x + z * z),
            two * (y * z - w * x),
        ],
        [
            two * (x * z - w * y),
            two * (y * z + w * x),
            one - two * (x * x + y * y),
        ],
    ]
}

/// Backward of [`quat_to_mat`]: dL/dq for a unit quaternion given dL/dR.
fn quat_to_mat_backward<T: Real>(q: [T; 4], g: &[[T; 3]; 3]) -> [T; 4] {
    let [w, x, y, z] = q;
    let two: T = c(2.0);
    let dw = two * (x * (g[2][1] - g[1][2]) + y * (g[0][2] - g[2][0]) + z * (g[1][0] - g[0][1]));
    let dx = two
        * (-two * x * (g[1][1] + g[2][2])
            + y * (g[1][0] + g[0][1])
            + z * (g[2][0] + g[0][2])
            + w * (g[2][1] - g[1][2]));
    let dy = two
        * (x * (g[1][0] + g[0][1]) - two * y * (g[0][0] + g[2][2])
            + z * (g[2][1] + g[1][2])
            + w * (g[0][2] - g[2][0]));
    let dz = two
        * (x * (g[2][0] + g[0][2]) + y * (g[2][1] + g[1][2]) - two * z * (g[0][0] + g[1][1])
            + w * (g[1][0] - g[0][1]));
    [dw, dx, dy, dz]
}

/// Intermediate values of one projection, shared by the forward and the backward.
struct Geometry<T> {
    qn: [T; 4],
    qnorm: T,
    rot: [[T; 3]; 3],
    /// Scales after the 3D filter (the Gaussian's own without one).
    scale: [T; 3],
    /// The 3D filter's variance and opacity factor.
    var3d: T,
    comp3d: T,
    /// Camera-space covariance W Σ Wᵀ.
    cov_cam: [[T; 3]; 3],
    /// Camera-space centre.
    t: [T; 3],
    /// Centre with x and y clamped to the guard band, used only by the Jacobian.
    t_clamped: [T; 2],
    guard: [bool; 2],
    jac: [[T; 3]; 2],
    /// 2D covariance after the low-pass, (a, b, c).
    cov2d: [T; 3],
    /// The 2D compensation (1 with `mip2d` off).
    comp2d: T,
}

fn geometry<T: Real>(s: &Splats<T>, i: usize, cam: &Cam<T>, aa: &AaMode) -> Geometry<T> {
    let q = s.quats[i];
    let qnorm = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
    let qn = q.map(|v| v / qnorm);
    let rot = quat_to_mat(qn);
    let var3d: T = aa.var(i);
    let (scale, comp3d) = filter3d(s.log_scales[i], var3d);
    // M = R S, Σ = M Mᵀ.
    let m = [0, 1, 2].map(|r| [0, 1, 2].map(|k| rot[r][k] * scale[k]));
    let sigma = matmul(&m, &transpose(&m));
    let cov_cam = matmul(&matmul(&cam.w, &sigma), &transpose(&cam.w));
    let mu = s.means[i];
    let wm = matvec(&cam.w, mu);
    let t = [wm[0] + cam.t[0], wm[1] + cam.t[1], wm[2] + cam.t[2]];
    let (xr, yr) = (t[0] / t[2], t[1] / t[2]);
    let xc = xr.max(cam.lim_x.0).min(cam.lim_x.1);
    let yc = yr.max(cam.lim_y.0).min(cam.lim_y.1);
    let guard = [xc != xr, yc != yr];
    let t_clamped = [xc * t[2], yc * t[2]];
    let z2 = t[2] * t[2];
    let jac = [
        [cam.fx / t[2], T::zero(), -cam.fx * t_clamped[0] / z2],
        [T::zero(), cam.fy / t[2], -cam.fy * t_clamped[1] / z2],
    ];
    let lp: T = c(aa.low_pass);
    let js = |r: usize, k: usize| -> T {
        let mut acc = T::zero();
        for a in 0..3 {
            for b in 0..3 {
                acc = acc + jac[r][a] * cov_cam[a][b] * jac[k][b];
            }
        }
        acc
    };
    let raw = [js(0, 0), js(0, 1), js(1, 1)];
    let comp2d = if aa.mip2d {
        mip2d_compensation(raw, aa.low_pass)
    } else {
        T::one()
    };
    let cov2d = [raw[0] + lp, raw[1], raw[2] + lp];
    Geometry {
        qn,
        qnorm,
        rot,
        scale,
        var3d,
        comp3d,
        comp2d,
        cov_cam,
        t,
        t_clamped,
        guard,
        jac,
        cov2d,
    }
}

/// Projects Gaussian `i`. Culls those behind the near plane, with a singular footprint,
/// non-finite values, or no tile on screen.
pub(crate) fn project_one<T: Real>(
    s: &Splats<T>,
    i: usize,
    cam: &Cam<T>,
    near: T,
    sh_degree: usize,
    aa: &AaMode,
) -> Projected<T> {
    let mut p = Projected::<T>::default();
    let mu = s.means[i];
    let wm = matvec(&cam.w, mu);
    let tz = wm[2] + cam.t[2];
    if !(tz > near) {
        return p;
    }
    let g = geometry(s, i, cam, aa);
    let [a, b, cc] = g.cov2d;
    let det = a * cc - b * b;
    if !(det > T::zero()) || !det.is_finite() {
        return p;
    }
    let conic = [cc / det, -b / det, a / det];
    let mean2d = [
        cam.fx * g.t[0] / g.t[2] + cam.cx,
        cam.fy * g.t[1] / g.t[2] + cam.cy,
    ];
    let mid = c::<T>(0.5) * (a + cc);
    let lambda = mid + (mid * mid - det).max(c(0.1)).sqrt();
    let r = (c::<T>(EXTENT_SIGMAS) * lambda.sqrt()).ceil();
    if !r.is_finite() || !mean2d[0].is_finite() || !mean2d[1].is_finite() {
        return p;
    }
    let (tiles_x, tiles_y) = cam.tiles();
    let ts: T = c(TILE_SIZE as f64);
    let rect = [
        clamp_tile(((mean2d[0] - r) / ts).floor(), 0, tiles_x),
        clamp_tile(((mean2d[1] - r) / ts).floor(), 0, tiles_y),
        clamp_tile(((mean2d[0] + r) / ts).ceil(), 0, tiles_x),
        clamp_tile(((mean2d[1] + r) / ts).ceil(), 0, tiles_y),
    ];
    if rect[0] >= rect[2] || rect[1] >= rect[3] {
        return p;
    }
    let dir = view_dir(mu, cam);
    let (color, color_clamped) = sh::eval_color(sh_degree, s.sh_of(i), dir.0);
    p.visible = true;
    p.mean2d = mean2d;
    p.conic = conic;
    p.opacity = sigmoid(s.opacity_logits[i]) * g.comp2d * g.comp3d;
    p.color = color;
    p.depth = g.t[2];
    p.radius = r.to_u32().unwrap_or(0);
    p.rect = rect;
    p.color_clamped = color_clamped;
    p.guard_clamped = g.guard;
    p
}

/// A tile coordinate clamped to `lo..=hi` (NaN gives `lo`), as the kernels' clamp does.
fn clamp_tile<T: Real>(v: T, lo: u32, hi: u32) -> u32 {
    let v = v.to_f64().unwrap_or(0.0);
    v.max(lo as f64).min(hi as f64) as u32
}

/// Pixels added on every side of a tile before testing it against a Gaussian's alpha ellipse,
/// so that the float rounding of the test can never drop a tile the compositor would use.
pub const COVER_MARGIN_PX: f64 = 1.0;
/// The alpha-ellipse bound k = 2 ln(255 o) is widened to `k * COVER_K_SCALE + COVER_K_MARGIN`
/// before the tile test, so that rounding can only keep extra tiles.
pub const COVER_K_SCALE: f64 = 1.002;
/// See [`COVER_K_SCALE`].
pub const COVER_K_MARGIN: f64 = 0.02;

/// The tiles of `p.rect` that a pixel centre with alpha at or above the 1/255 floor can lie in,
/// in row-major order; `f(tx, ty)` is called for each. The 3-sigma rectangle alone lists many
/// tiles where every pixel is skipped (low opacity, thin or diagonal ellipses); dropping them
/// leaves every image and gradient unchanged and shortens the tile lists and the sort.
///
/// alpha >= 1/255 needs q = dᵀ Q d <= k with k = 2 ln(255 o), Q the conic. The test widens k
/// and each tile by margins, so it only ever keeps extra tiles. The CUDA kernels
/// (`cover_init` and `cover_hit` in tiles.cu) repeat these float operations in the same order,
/// ln in double.
pub(crate) fn for_each_covered_tile<T: Real>(p: &Projected<T>, mut f: impl FnMut(u32, u32)) {
    let [x0, y0, x1, y1] = p.rect;
    let o = p.opacity.to_f64().unwrap_or(f64::NAN);
    let k: T = c((o * 255.0).ln() * 2.0);
    let thr = k * c(COVER_K_SCALE) + c(COVER_K_MARGIN);
    let [a, b, cc] = p.conic;
    let det = a * cc - b * b;
    if !(thr > T::zero()) {
        return;
    }
    if !(det > T::zero()) {
        for ty in y0..y1 {
            for tx in x0..x1 {
                f(tx, ty);
            }
        }
        return;
    }
    let one: T = c(COVER_MARGIN_PX);
    let ts: T = c(TILE_SIZE as f64);
    let [mx, my] = p.mean2d;
    // Half-sides of the ellipse's box: sqrt(thr Σxx), sqrt(thr Σyy) with Σ = Q⁻¹.
    let hx = (thr * cc / det).sqrt() + one;
    let hy = (thr * a / det).sqrt() + one;
    let bx0 = clamp_tile(((mx - hx) / ts).floor(), x0, x1);
    let by0 = clamp_tile(((my - hy) / ts).floor(), y0, y1);
    let bx1 = clamp_tile(((mx + hx) / ts).ceil(), x0, x1);
    let by1 = clamp_tile(((my + hy) / ts).ceil(), y0, y1);
    let two: T = c(2.0);
    let half: T = c(0.5);
    let q = |dx: T, dy: T| a * dx * dx + two * b * dx * dy + cc * dy * dy;
    // Widened tile side, in pixels: the 16 pixel centres span 15, plus a margin each side.
    let span: T = c((TILE_SIZE - 1) as f64 + 2.0 * COVER_MARGIN_PX);
    for ty in by0..by1 {
        let top = T::from(ty * TILE_SIZE).unwrap_or_else(T::nan) + half - one;
        let bottom = top + span;
        for tx in bx0..bx1 {
            let left = T::from(tx * TILE_SIZE).unwrap_or_else(T::nan) + half - one;
            let right = left + span;
            // The least q over the widened tile lies on the sides that face the centre (the
            // segment from the centre to any other boundary point crosses a facing side).
            let out_x = mx < left || mx > right;
            let out_y = my < top || my > bottom;
            let mut best = if out_x || out_y {
                T::infinity()
            } else {
                T::zero()
            };
            if out_x {
                let dx = if mx < left { left - mx } else { right - mx };
                let dy = (-(b * dx) / cc).max(top - my).min(bottom - my);
                best = best.min(q(dx, dy));
            }
            if out_y {
                let dy = if my < top { top - my } else { bottom - my };
                let dx = (-(b * dy) / a).max(left - mx).min(right - mx);
                best = best.min(q(dx, dy));
            }
            if !(best > thr) {
                f(tx, ty);
            }
        }
    }
}

/// Unit direction from the camera centre to `mu`, and the distance.
fn view_dir<T: Real>(mu: [T; 3], cam: &Cam<T>) -> ([T; 3], T) {
    let v = [
        mu[0] - cam.center[0],
        mu[1] - cam.center[1],
        mu[2] - cam.center[2],
    ];
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    (v.map(|x| x / n), n)
}

/// Screen-space gradients of one Gaussian, as accumulated by the rasterizer backward.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ScreenGrad<T> {
    pub mean2d: [T; 2],
    pub conic: [T; 3],
    pub opacity: T,
    pub color: [T; 3],
}

/// Parameter gradients of one Gaussian.
pub(crate) struct ParamGrad<T> {
    pub mean: [T; 3],
    pub log_scale: [T; 3],
    pub quat: [T; 4],
    pub opacity_logit: T,
}

/// Backward of [`project_one`] for a visible Gaussian: chains the screen-space gradients to the
/// parameters, writing the SH gradient into `d_sh`.
pub(crate) fn project_one_backward<T: Real>(
    s: &Splats<T>,
    i: usize,
    cam: &Cam<T>,
    p: &Projected<T>,
    sg: &ScreenGrad<T>,
    sh_degree: usize,
    aa: &AaMode,
    d_sh: &mut [T],
) -> ParamGrad<T> {
    let zero = T::zero();
    let g = geometry(s, i, cam, aa);
    let mu = s.means[i];

    // Opacity o' = sigmoid(logit) c2 c3: through the sigmoid and both compensations.
    let o = sigmoid(s.opacity_logits[i]);
    let d_logit = sg.opacity * g.comp2d * g.comp3d * o * (T::one() - o);
    let d_comp2d = sg.opacity * o * g.comp3d;
    let d_comp3d = sg.opacity * o * g.comp2d;

    // Colour through SH, and the view direction back to the mean.
    let (dir, dist) = view_dir(mu, cam);
    let d_dir =
        sh::eval_color_backward(sh_degree, s.sh_of(i), dir, p.color_clamped, sg.color, d_sh);
    let dd = dir[0] * d_dir[0] + dir[1] * d_dir[1] + dir[2] * d_dir[2];
    let mut d_mu = [0, 1, 2].map(|k| (d_dir[k] - dir[k] * dd) / dist);

    // Conic -> 2D covariance: dΣ2 = -Σ2⁻¹ dConic Σ2⁻¹ on symmetric matrices, where the scalar
    // b of the conic stands for both off-diagonal entries.
    let [ca, cb, cc] = p.conic;
    let ginv = [
        [sg.conic[0], sg.conic[1] * c(0.5)],
        [sg.conic[1] * c(0.5), sg.conic[2]],
    ];
    let inv = [[ca, cb], [cb, cc]];
    let mut g2 = [[zero; 2]; 2];
    for r in 0..2 {
        for k in 0..2 {
            let mut acc = zero;
            for a in 0..2 {
                for b in 0..2 {
                    acc = acc + inv[r][a] * ginv[a][b] * inv[b][k];
                }
            }
            g2[r][k] = -acc;
        }
    }
    // c2 = sqrt(det M / det(M + εI)) with M the covariance before the low-pass: with the conic
    // Q = (M + εI)⁻¹, dc2/dM = ((1 - c2²) Q - ε det(Q) I) / (2 c2) (det M = det(M + εI) - ε tr
    // adj, as adj(M) = adj(M + εI) - εI for 2x2). The low-pass shifts M by a constant, so the
    // gradient adds to that of the low-passed covariance.
    if aa.mip2d && g.comp2d > zero {
        let c2 = g.comp2d;
        let lp: T = c(aa.low_pass);
        let det_q = ca * cc - cb * cb;
        let k = d_comp2d / (c::<T>(2.0) * c2);
        let one_m = T::one() - c2 * c2;
        g2[0][0] = g2[0][0] + k * (one_m * ca - lp * det_q);
        g2[1][1] = g2[1][1] + k * (one_m * cc - lp * det_q);
        g2[0][1] = g2[0][1] + k * one_m * cb;
        g2[1][0] = g2[1][0] + k * one_m * cb;
    }

    // Σ2 = J Σc Jᵀ: dΣc = Jᵀ G J, dJ = 2 G J Σc.
    let jac = &g.jac;
    let mut g_cov_cam = [[zero; 3]; 3];
    for a in 0..3 {
        for b in 0..3 {
            let mut acc = zero;
            for r in 0..2 {
                for k in 0..2 {
                    acc = acc + jac[r][a] * g2[r][k] * jac[k][b];
                }
            }
            g_cov_cam[a][b] = acc;
        }
    }
    let mut g_j = [[zero; 3]; 2];
    let two: T = c(2.0);
    for r in 0..2 {
        for a in 0..3 {
            let mut acc = zero;
            for k in 0..2 {
                for b in 0..3 {
                    acc = acc + g2[r][k] * jac[k][b] * g.cov_cam[b][a];
                }
            }
            g_j[r][a] = two * acc;
        }
    }

    // J depends on the camera-space centre t (clamped x, y only through t_z).
    let (tz, tz2) = (g.t[2], g.t[2] * g.t[2]);
    let tz3 = tz2 * tz;
    let mut d_t = [zero; 3];
    d_t[2] = d_t[2] - g_j[0][0] * cam.fx / tz2 - g_j[1][1] * cam.fy / tz2;
    let f = [cam.fx, cam.fy];
    for (r, fr) in f.iter().enumerate() {
        let tc = g.t_clamped[r];
        if g.guard[r] {
            // t' = x_c t_z with x_c fixed: J = -f x_c / t_z.
            let xc = tc / tz;
            d_t[2] = d_t[2] + g_j[r][2] * *fr * xc / tz2;
        } else {
            d_t[r] = d_t[r] - g_j[r][2] * *fr / tz2;
            d_t[2] = d_t[2] + g_j[r][2] * two * *fr * tc / tz3;
        }
    }

    // Projected mean.
    d_t[0] = d_t[0] + sg.mean2d[0] * cam.fx / tz;
    d_t[1] = d_t[1] + sg.mean2d[1] * cam.fy / tz;
    d_t[2] = d_t[2] - sg.mean2d[0] * cam.fx * g.t[0] / tz2 - sg.mean2d[1] * cam.fy * g.t[1] / tz2;

    let d_mu_t = mat_t_vec(&cam.w, d_t);
    for k in 0..3 {
        d_mu[k] = d_mu[k] + d_mu_t[k];
    }

    // Σc = W Σ Wᵀ -> dΣ = Wᵀ dΣc W; Σ = M Mᵀ -> dM = 2 dΣ M (dΣ symmetric).
    let g_sigma = matmul(&matmul(&transpose(&cam.w), &g_cov_cam), &cam.w);
    let m = [0, 1, 2].map(|r| [0, 1, 2].map(|k| g.rot[r][k] * g.scale[k]));
    let g_m = [0, 1, 2].map(|r| {
        [0, 1, 2].map(|k| {
            two * (g_sigma[r][0] * m[0][k] + g_sigma[r][1] * m[1][k] + g_sigma[r][2] * m[2][k])
        })
    });
    // M = R S: dS_k = (Rᵀ dM)_kk, dR = dM S.
    let d_scale = [0, 1, 2]
        .map(|k| g.rot[0][k] * g_m[0][k] + g.rot[1][k] * g_m[1][k] + g.rot[2][k] * g_m[2][k]);
    // Filtered scales f_k = sqrt(s_k² + v): df_k/d ln s_k = s_k² / f_k; the opacity factor
    // c3 = Π s_k / f_k: d c3 / d ln s_k = c3 v / f_k².
    let d_log_scale = if g.var3d == zero {
        [0, 1, 2].map(|k| d_scale[k] * g.scale[k])
    } else {
        let s_own = s.log_scales[i].map(|v| v.exp());
        [0, 1, 2].map(|k| {
            let f = g.scale[k];
            d_scale[k] * s_own[k] * s_own[k] / f + d_comp3d * g.comp3d * g.var3d / (f * f)
        })
    };
    let g_rot = [0, 1, 2].map(|r| [0, 1, 2].map(|k| g_m[r][k] * g.scale[k]));
    let d_qn = quat_to_mat_backward(g.qn, &g_rot);
    let dot = g.qn[0] * d_qn[0] + g.qn[1] * d_qn[1] + g.qn[2] * d_qn[2] + g.qn[3] * d_qn[3];
    let d_quat = [0, 1, 2, 3].map(|k| (d_qn[k] - g.qn[k] * dot) / g.qnorm);

    ParamGrad {
        mean: d_mu,
        log_scale: d_log_scale,
        quat: d_quat,
        opacity_logit: d_logit,
    }
}
