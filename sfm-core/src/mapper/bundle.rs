//! Bundle adjustment: Levenberg-Marquardt on reprojection errors with a Cauchy loss, points
//! eliminated by the Schur complement, a dense Cholesky solve of the reduced camera system.

// Index loops mirror the matrix formulas they implement; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use super::camera::RadialCamera;
use crate::geometry::Pose;
use crate::linalg::{cholesky_solve, rodrigues, skew};
use glam::{DMat3, DVec2, DVec3};
use rayon::prelude::*;

/// One observation: image, camera, pixel, point.
#[derive(Clone, Copy, Debug)]
pub struct Observation {
    /// Index into the poses.
    pub image: usize,
    /// Index into the cameras.
    pub camera: usize,
    /// Index into the points.
    pub point: usize,
    /// Measured pixel.
    pub xy: DVec2,
}

/// What the adjustment may change.
#[derive(Clone, Debug)]
pub struct BaConfig {
    /// Per pose: optimised or held fixed.
    pub pose_var: Vec<bool>,
    /// Per camera: refine focal length and k.
    pub intr_var: Vec<bool>,
    /// Also refine the principal point of the cameras in `intr_var`.
    pub refine_principal_point: bool,
    /// Per point: optimised or held fixed.
    pub point_var: Vec<bool>,
    /// Pose index and translation axis held fixed to remove the scale gauge.
    pub fix_translation: Option<(usize, usize)>,
    /// Cauchy loss scale in pixels.
    pub loss_scale: f64,
    /// Iteration cap.
    pub max_iters: usize,
}

/// Outcome of an adjustment.
#[derive(Clone, Debug, Default)]
pub struct BaSummary {
    /// Robust cost before.
    pub initial_cost: f64,
    /// Robust cost after.
    pub final_cost: f64,
    /// Iterations run.
    pub iterations: usize,
}

struct Lin {
    idx: [usize; NP],
    jc: [[f64; NP]; 2],
    jp: [[f64; 3]; 2],
    r: [f64; 2],
    w: f64,
}

const NONE: usize = usize::MAX;
/// Camera-side parameters an observation can touch: pose (6), f, k, cx, cy.
const NP: usize = 10;

fn residual(cam: &RadialCamera, pose: &Pose, x: DVec3, xy: DVec2) -> Option<DVec2> {
    cam.project(pose.apply(x)).map(|p| p - xy)
}

fn robust_cost(c2: f64, r2: f64) -> f64 {
    c2 * (1.0 + r2 / c2).ln()
}

fn total_cost(
    cams: &[RadialCamera],
    poses: &[Pose],
    pts: &[DVec3],
    obs: &[Observation],
    used: &[usize],
    c2: f64,
) -> f64 {
    // Fixed-size chunks summed in order: the same total whatever the thread count.
    let partial: Vec<f64> = used
        .par_chunks(4096)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&o| {
                    let ob = &obs[o];
                    match residual(&cams[ob.camera], &poses[ob.image], pts[ob.point], ob.xy) {
                        Some(r) => robust_cost(c2, r.length_squared()),
                        // Points behind a camera get the cost of a large residual so steps
                        // that flip them are rejected rather than ignored.
                        None => robust_cost(c2, 1e6),
                    }
                })
                .sum::<f64>()
        })
        .collect();
    partial.iter().sum()
}

fn inv3(m: &[f64; 9]) -> Option<[f64; 9]> {
    let a = DMat3::from_cols_array(m);
    let d = a.determinant();
    if d.abs() < 1e-30 || !d.is_finite() {
        return None;
    }
    Some(a.inverse().to_cols_array())
}

/// Where each variable block starts in the reduced camera system (`NONE`: held fixed).
struct Layout {
    pose_off: Vec<usize>,
    intr_off: Vec<usize>,
    nc: usize,
}

/// Linearises one observation: its camera-side and point Jacobians, residual and Cauchy weight.
#[allow(clippy::too_many_arguments)]
fn linearise(
    ob: &Observation,
    cams: &[RadialCamera],
    poses: &[Pose],
    pts: &[DVec3],
    lay: &Layout,
    cfg: &BaConfig,
    c2: f64,
) -> Option<Lin> {
    let cam = &cams[ob.camera];
    let pose = &poses[ob.image];
    let xc = pose.apply(pts[ob.point]);
    if xc.z <= 1e-12 {
        return None;
    }
    let r = cam.project(xc)? - ob.xy;
    let w = 1.0 / (1.0 + r.length_squared() / c2);
    let iz = 1.0 / xc.z;
    let (un, vn) = (xc.x * iz, xc.y * iz);
    let r2 = un * un + vn * vn;
    let d = 1.0 + cam.k * r2;
    // d(pixel)/d(un, vn)
    let a = [
        [
            cam.f * (d + 2.0 * cam.k * un * un),
            cam.f * 2.0 * cam.k * un * vn,
        ],
        [
            cam.f * 2.0 * cam.k * un * vn,
            cam.f * (d + 2.0 * cam.k * vn * vn),
        ],
    ];
    // d(un, vn)/d(xc)
    let b = [[iz, 0.0, -un * iz], [0.0, iz, -vn * iz]];
    let mut dp = [[0.0f64; 3]; 2];
    for i in 0..2 {
        for j in 0..3 {
            dp[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j];
        }
    }
    let mut lin = Lin {
        idx: [NONE; NP],
        jc: [[0.0; NP]; 2],
        jp: [[0.0; 3]; 2],
        r: [r.x, r.y],
        w,
    };
    let po = lay.pose_off[ob.image];
    if po != NONE {
        // R' = exp(dw) R, t' = t + dt (t is not rotated, so a fixed translation
        // coordinate really stays fixed): d xc/d dw = -[R x]_x, d xc/d dt = I.
        let sk = skew(xc - pose.t);
        for i in 0..2 {
            for c in 0..3 {
                let col = sk.col(c);
                lin.jc[i][c] = -(dp[i][0] * col.x + dp[i][1] * col.y + dp[i][2] * col.z);
                lin.jc[i][3 + c] = dp[i][c];
            }
        }
        for k in 0..6 {
            lin.idx[k] = po + k;
        }
    }
    let io = lay.intr_off[ob.camera];
    if io != NONE {
        lin.jc[0][6] = d * un;
        lin.jc[1][6] = d * vn;
        lin.jc[0][7] = cam.f * r2 * un;
        lin.jc[1][7] = cam.f * r2 * vn;
        lin.idx[6] = io;
        lin.idx[7] = io + 1;
        if cfg.refine_principal_point {
            lin.jc[0][8] = 1.0;
            lin.jc[1][9] = 1.0;
            lin.idx[8] = io + 2;
            lin.idx[9] = io + 3;
        }
    }
    if cfg.point_var[ob.point] {
        let rm = pose.r;
        for i in 0..2 {
            for c in 0..3 {
                let col = rm.col(c);
                lin.jp[i][c] = dp[i][0] * col.x + dp[i][1] * col.y + dp[i][2] * col.z;
            }
        }
    }
    Some(lin)
}

impl Lin {
    /// W = w Jc^T Jp (NP x 3): the camera-point block of the normal equations.
    fn w_block(&self) -> [[f64; 3]; NP] {
        let mut wa = [[0.0f64; 3]; NP];
        for a in 0..NP {
            if self.idx[a] == NONE {
                continue;
            }
            for j in 0..3 {
                wa[a][j] = self.w * (self.jc[0][a] * self.jp[0][j] + self.jc[1][a] * self.jp[1][j]);
            }
        }
        wa
    }
}

/// One chunk of points' share of the Schur complement: what it subtracts from the reduced
/// matrix and adds to its right-hand side, and the damped inverse of each point's block.
struct SchurPart {
    s: Vec<f64>,
    rhs: Vec<f64>,
    vinv: Vec<Option<[f64; 9]>>,
}

/// Accumulates the Schur complement of the points `first..first + lists.len()`.
#[allow(clippy::too_many_arguments)]
fn schur_part(
    first: usize,
    lists: &[Vec<usize>],
    lins: &[Option<Lin>],
    vmat: &[[f64; 9]],
    gp: &[[f64; 3]],
    point_var: &[bool],
    lambda: f64,
    nc: usize,
) -> SchurPart {
    let mut part = SchurPart {
        s: vec![0.0; nc * nc],
        rhs: vec![0.0; nc],
        vinv: vec![None; lists.len()],
    };
    // Active camera-side parameters of each observation of the point: (reduced-system index,
    // row of T = W V^-1, row of W); `blocks` holds each observation's range in `act`.
    let mut act: Vec<(usize, [f64; 3], [f64; 3])> = Vec::new();
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    for (k, list) in lists.iter().enumerate() {
        let p = first + k;
        if !point_var[p] || list.is_empty() {
            continue;
        }
        let mut v = vmat[p];
        for i in 0..3 {
            v[i * 3 + i] += lambda * vmat[p][i * 3 + i].max(1e-9);
        }
        // glam arrays are column-major; V is symmetric so the layout does not matter.
        let Some(vi) = inv3(&v) else { continue };
        part.vinv[k] = Some(vi);
        if nc == 0 {
            continue;
        }
        act.clear();
        blocks.clear();
        for &o in list {
            let Some(l) = &lins[o] else { continue };
            let wa = l.w_block();
            let start = act.len();
            for a in 0..NP {
                if l.idx[a] == NONE {
                    continue;
                }
                let mut t = [0.0f64; 3];
                for j in 0..3 {
                    t[j] =
                        wa[a][0] * vi[j * 3] + wa[a][1] * vi[j * 3 + 1] + wa[a][2] * vi[j * 3 + 2];
                }
                part.rhs[l.idx[a]] += t[0] * gp[p][0] + t[1] * gp[p][1] + t[2] * gp[p][2];
                act.push((l.idx[a], t, wa[a]));
            }
            blocks.push((start, act.len()));
        }
        // S -= sum over observation pairs (a, b) of T_a W_b^T. V^-1 is symmetric, so the
        // (b, a) term is the transpose of the (a, b) term: each unordered pair is computed
        // once and written to both places, half the work of visiting ordered pairs.
        for (bi, &(s0, e0)) in blocks.iter().enumerate() {
            for x in s0..e0 {
                let (r, t, _) = act[x];
                let row = &mut part.s[r * nc..(r + 1) * nc];
                for &(c, _, w) in &act[s0..e0] {
                    row[c] += t[0] * w[0] + t[1] * w[1] + t[2] * w[2];
                }
            }
            for &(s1, e1) in &blocks[bi + 1..] {
                for x in s0..e0 {
                    let (r, t, _) = act[x];
                    for &(c, _, w) in &act[s1..e1] {
                        let m = t[0] * w[0] + t[1] * w[1] + t[2] * w[2];
                        part.s[r * nc + c] += m;
                        part.s[c * nc + r] += m;
                    }
                }
            }
        }
    }
    part
}

/// Points per chunk of the parallel Schur complement: one chunk per thread, fewer when the
/// per-chunk copies of the reduced matrix would take more than about 1 GiB in all.
fn schur_chunk(npts: usize, nc: usize) -> usize {
    let per_copy = (nc * nc * 8).max(1);
    let copies = rayon::current_num_threads()
        .min((1usize << 30) / per_copy)
        .max(1);
    npts.div_ceil(copies).max(1)
}

/// Runs bundle adjustment in place; only the variables flagged in `cfg` change.
///
/// Linearisation, the per-point blocks and the Schur complement run on every core; the
/// chunking depends only on the thread count, so a run is reproducible on one machine.
pub fn bundle_adjust(
    cams: &mut [RadialCamera],
    poses: &mut [Pose],
    pts: &mut [DVec3],
    obs: &[Observation],
    cfg: &BaConfig,
) -> BaSummary {
    // Parameter layout of the reduced (camera) system.
    let mut lay = Layout {
        pose_off: vec![NONE; poses.len()],
        intr_off: vec![NONE; cams.len()],
        nc: 0,
    };
    for (i, &v) in cfg.pose_var.iter().enumerate() {
        if v {
            lay.pose_off[i] = lay.nc;
            lay.nc += 6;
        }
    }
    for (i, &v) in cfg.intr_var.iter().enumerate() {
        if v {
            lay.intr_off[i] = lay.nc;
            lay.nc += if cfg.refine_principal_point { 4 } else { 2 };
        }
    }
    let nc = lay.nc;
    let (pose_off, intr_off) = (&lay.pose_off, &lay.intr_off);
    // Observations that touch something variable, grouped by point.
    let mut by_point: Vec<Vec<usize>> = vec![Vec::new(); pts.len()];
    let mut used = Vec::new();
    for (o, ob) in obs.iter().enumerate() {
        if cfg.point_var[ob.point] || pose_off[ob.image] != NONE || intr_off[ob.camera] != NONE {
            // Lists index `used` (and so `lins`), not `obs`.
            by_point[ob.point].push(used.len());
            used.push(o);
        }
    }
    let c2 = cfg.loss_scale * cfg.loss_scale;
    let mut cost = total_cost(cams, poses, pts, obs, &used, c2);
    let mut summary = BaSummary {
        initial_cost: cost,
        final_cost: cost,
        iterations: 0,
    };
    if used.is_empty() {
        return summary;
    }
    let chunk = schur_chunk(pts.len(), nc);
    let mut lambda = 1e-4;
    // One linearisation per used observation, in the order of `used`.
    let mut lins: Vec<Option<Lin>> = Vec::with_capacity(used.len());
    for it in 0..cfg.max_iters {
        summary.iterations = it + 1;
        lins.clear();
        used.par_iter()
            .map(|&o| linearise(&obs[o], cams, poses, pts, &lay, cfg, c2))
            .collect_into_vec(&mut lins);
        let mut u = vec![0.0f64; nc * nc];
        let mut gc = vec![0.0f64; nc];
        for lin in lins.iter().flatten() {
            let w = lin.w;
            for p in 0..NP {
                if lin.idx[p] == NONE {
                    continue;
                }
                gc[lin.idx[p]] += w * (lin.jc[0][p] * lin.r[0] + lin.jc[1][p] * lin.r[1]);
                for q in 0..NP {
                    if lin.idx[q] == NONE {
                        continue;
                    }
                    u[lin.idx[p] * nc + lin.idx[q]] +=
                        w * (lin.jc[0][p] * lin.jc[0][q] + lin.jc[1][p] * lin.jc[1][q]);
                }
            }
        }
        // Per point: V (3x3) and g_p.
        let (vmat, gp): (Vec<[f64; 9]>, Vec<[f64; 3]>) = by_point
            .par_iter()
            .enumerate()
            .map(|(p, list)| {
                let mut v = [0.0f64; 9];
                let mut g = [0.0f64; 3];
                if cfg.point_var[p] {
                    for &o in list {
                        let Some(l) = &lins[o] else { continue };
                        for i in 0..3 {
                            g[i] += l.w * (l.jp[0][i] * l.r[0] + l.jp[1][i] * l.r[1]);
                            for j in 0..3 {
                                v[i * 3 + j] +=
                                    l.w * (l.jp[0][i] * l.jp[0][j] + l.jp[1][i] * l.jp[1][j]);
                            }
                        }
                    }
                }
                (v, g)
            })
            .unzip();
        let mut accepted = false;
        for _trial in 0..10 {
            let parts: Vec<SchurPart> = by_point
                .par_chunks(chunk)
                .enumerate()
                .map(|(ci, lists)| {
                    schur_part(
                        ci * chunk,
                        lists,
                        &lins,
                        &vmat,
                        &gp,
                        &cfg.point_var,
                        lambda,
                        nc,
                    )
                })
                .collect();
            let mut s = u.clone();
            for i in 0..nc {
                s[i * nc + i] += lambda * u[i * nc + i].max(1e-9);
            }
            if let Some((pi, axis)) = cfg.fix_translation {
                if pose_off[pi] != NONE {
                    let k = pose_off[pi] + 3 + axis;
                    s[k * nc + k] += 1e12 * (1.0 + u[k * nc + k]);
                }
            }
            let mut rhs: Vec<f64> = gc.iter().map(|v| -v).collect();
            let mut vinv: Vec<Option<[f64; 9]>> = Vec::with_capacity(pts.len());
            for part in parts {
                s.par_iter_mut()
                    .zip(part.s.par_iter())
                    .for_each(|(x, d)| *x -= d);
                for (x, d) in rhs.iter_mut().zip(&part.rhs) {
                    *x += d;
                }
                vinv.extend(part.vinv);
            }
            let mut dc = rhs;
            if nc > 0 && !cholesky_solve(&mut s, nc, &mut dc) {
                lambda *= 10.0;
                continue;
            }
            // Candidate update.
            let mut new_poses = poses.to_vec();
            for (i, &off) in pose_off.iter().enumerate() {
                if off == NONE {
                    continue;
                }
                let rot = rodrigues(DVec3::new(dc[off], dc[off + 1], dc[off + 2]));
                let p = &poses[i];
                new_poses[i] = Pose {
                    r: rot * p.r,
                    t: p.t + DVec3::new(dc[off + 3], dc[off + 4], dc[off + 5]),
                };
            }
            let mut new_cams = cams.to_vec();
            for (c, &off) in intr_off.iter().enumerate() {
                if off != NONE {
                    new_cams[c].f += dc[off];
                    new_cams[c].k += dc[off + 1];
                    if cfg.refine_principal_point {
                        new_cams[c].cx += dc[off + 2];
                        new_cams[c].cy += dc[off + 3];
                    }
                }
            }
            let mut new_pts = pts.to_vec();
            new_pts.par_iter_mut().enumerate().for_each(|(p, x)| {
                let Some(vi) = vinv[p] else { return };
                let mut b = [-gp[p][0], -gp[p][1], -gp[p][2]];
                for &o in &by_point[p] {
                    let Some(l) = &lins[o] else { continue };
                    let wa = l.w_block();
                    for a in 0..NP {
                        if l.idx[a] == NONE {
                            continue;
                        }
                        let y = dc[l.idx[a]];
                        for j in 0..3 {
                            b[j] -= wa[a][j] * y;
                        }
                    }
                }
                *x += DVec3::new(
                    vi[0] * b[0] + vi[3] * b[1] + vi[6] * b[2],
                    vi[1] * b[0] + vi[4] * b[1] + vi[7] * b[2],
                    vi[2] * b[0] + vi[5] * b[1] + vi[8] * b[2],
                );
            });
            let new_cost = total_cost(&new_cams, &new_poses, &new_pts, obs, &used, c2);
            if new_cost.is_finite() && new_cost < cost {
                let rel = (cost - new_cost) / cost.max(1e-300);
                cams.copy_from_slice(&new_cams);
                poses.copy_from_slice(&new_poses);
                pts.copy_from_slice(&new_pts);
                cost = new_cost;
                lambda = (lambda / 3.0).max(1e-12);
                accepted = rel > 1e-7;
                break;
            }
            lambda *= 4.0;
        }
        if !accepted {
            break;
        }
    }
    for p in poses.iter_mut() {
        p.r = crate::linalg::nearest_rotation(&p.r);
    }
    summary.final_cost = cost;
    summary
}
