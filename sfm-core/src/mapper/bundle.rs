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

/// Linearisation of one observation. Camera-side columns are local (pose 6, f, k, cx, cy);
/// the columns of blocks held fixed are zero.
struct Lin {
    jc: [[f64; NP]; 2],
    jp: [[f64; 3]; 2],
    r: [f64; 2],
    w: f64,
}

const NONE: usize = usize::MAX;
/// Camera-side parameters an observation can touch: pose (6), f, k, cx, cy.
const NP: usize = 10;
/// Points per task when per-point quantities are computed in parallel.
const POINT_CHUNK: usize = 1024;

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

/// What a block of the reduced camera system belongs to.
#[derive(Clone, Copy, Debug)]
enum Owner {
    /// Focal length, k (and principal point) of a camera.
    Intr(usize),
    /// Rotation and translation of an image.
    Pose(usize),
}

/// A variable block of the reduced camera system: rows `off..off + size`.
#[derive(Clone, Copy, Debug)]
struct Group {
    off: usize,
    size: usize,
    owner: Owner,
}

/// Where each variable block sits in the reduced camera system. Intrinsic blocks come first,
/// so that in the lower triangle (all the Cholesky solve reads) every pose row holds its
/// camera's intrinsic columns and an intrinsic row holds only intrinsic columns.
struct Layout {
    pose_off: Vec<usize>,
    intr_off: Vec<usize>,
    /// Intrinsic parameters per camera: 2 (f, k) or 4 (and cx, cy).
    intr_size: usize,
    groups: Vec<Group>,
    nc: usize,
}

impl Layout {
    fn new(cfg: &BaConfig, n_poses: usize, n_cams: usize) -> Self {
        let intr_size = if cfg.refine_principal_point { 4 } else { 2 };
        let mut lay = Layout {
            pose_off: vec![NONE; n_poses],
            intr_off: vec![NONE; n_cams],
            intr_size,
            groups: Vec::new(),
            nc: 0,
        };
        for c in 0..n_cams {
            if cfg.intr_var.get(c).copied().unwrap_or(false) {
                lay.intr_off[c] = lay.nc;
                lay.groups.push(Group {
                    off: lay.nc,
                    size: intr_size,
                    owner: Owner::Intr(c),
                });
                lay.nc += intr_size;
            }
        }
        for i in 0..n_poses {
            if cfg.pose_var.get(i).copied().unwrap_or(false) {
                lay.pose_off[i] = lay.nc;
                lay.groups.push(Group {
                    off: lay.nc,
                    size: 6,
                    owner: Owner::Pose(i),
                });
                lay.nc += 6;
            }
        }
        lay
    }
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
        jc: [[0.0; NP]; 2],
        jp: [[0.0; 3]; 2],
        r: [r.x, r.y],
        w,
    };
    if lay.pose_off[ob.image] != NONE {
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
    }
    if lay.intr_off[ob.camera] != NONE {
        lin.jc[0][6] = d * un;
        lin.jc[1][6] = d * vn;
        lin.jc[0][7] = cam.f * r2 * un;
        lin.jc[1][7] = cam.f * r2 * vn;
        if cfg.refine_principal_point {
            lin.jc[0][8] = 1.0;
            lin.jc[1][9] = 1.0;
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

/// A camera-point block `W = sum of w Jc^T Jp` over the observations of one point that touch
/// one group (rows beyond the group's size are zero).
type WBlock = [[f64; 3]; 6];

/// Which groups each point touches and which points each group touches: fixed for one
/// adjustment, so built once and reused by every iteration and damping trial.
struct Structure {
    /// Observations (indices into `used`) of each point.
    by_point: Vec<Vec<usize>>,
    /// The (image, camera) pairs that have observations, in that order.
    views: Vec<(usize, usize)>,
    /// View of each observation.
    obs_view: Vec<usize>,
    /// Views of image i: `img_views[i]..img_views[i + 1]`.
    img_views: Vec<usize>,
    /// Entries of point p: `pt_start[p]..pt_start[p + 1]` (variable points only).
    pt_start: Vec<usize>,
    /// Group of each entry.
    ent_group: Vec<usize>,
    /// Per observation: its entry for the pose group and for the intrinsic group, or `NONE`.
    obs_ent: Vec<[usize; 2]>,
    /// Per group: (point, entry) in increasing point order, `grp_start[g]..grp_start[g + 1]`.
    grp_start: Vec<usize>,
    grp_items: Vec<(usize, usize)>,
}

impl Structure {
    fn new(
        obs: &[Observation],
        used: &[usize],
        lay: &Layout,
        cfg: &BaConfig,
        npts: usize,
        nimg: usize,
    ) -> Self {
        let mut by_point: Vec<Vec<usize>> = vec![Vec::new(); npts];
        let mut views: Vec<(usize, usize)> = Vec::new();
        for (u, &o) in used.iter().enumerate() {
            by_point[obs[o].point].push(u);
            views.push((obs[o].image, obs[o].camera));
        }
        views.sort_unstable();
        views.dedup();
        let obs_view: Vec<usize> = used
            .iter()
            .map(|&o| {
                views
                    .binary_search(&(obs[o].image, obs[o].camera))
                    .unwrap_or_default()
            })
            .collect();
        let mut img_views = vec![0usize; nimg + 1];
        for &(i, _) in &views {
            img_views[i + 1] += 1;
        }
        for i in 0..nimg {
            img_views[i + 1] += img_views[i];
        }
        let mut group_of_off = vec![NONE; lay.nc];
        for (g, gr) in lay.groups.iter().enumerate() {
            group_of_off[gr.off] = g;
        }
        let mut pt_start = Vec::with_capacity(npts + 1);
        let mut ent_group = Vec::new();
        let mut obs_ent = vec![[NONE; 2]; used.len()];
        pt_start.push(0);
        for p in 0..npts {
            let first = ent_group.len();
            if cfg.point_var[p] {
                for &u in &by_point[p] {
                    let ob = &obs[used[u]];
                    for (slot, off) in [lay.pose_off[ob.image], lay.intr_off[ob.camera]]
                        .into_iter()
                        .enumerate()
                    {
                        if off == NONE {
                            continue;
                        }
                        let g = group_of_off[off];
                        let e = match ent_group[first..].iter().position(|&x| x == g) {
                            Some(k) => first + k,
                            None => {
                                ent_group.push(g);
                                ent_group.len() - 1
                            }
                        };
                        obs_ent[u][slot] = e;
                    }
                }
            }
            pt_start.push(ent_group.len());
        }
        let ng = lay.groups.len();
        let mut grp_start = vec![0usize; ng + 1];
        for &g in &ent_group {
            grp_start[g + 1] += 1;
        }
        for g in 0..ng {
            grp_start[g + 1] += grp_start[g];
        }
        let mut fill = grp_start.clone();
        let mut grp_items = vec![(0usize, 0usize); ent_group.len()];
        for p in 0..npts {
            for e in pt_start[p]..pt_start[p + 1] {
                let g = ent_group[e];
                grp_items[fill[g]] = (p, e);
                fill[g] += 1;
            }
        }
        Structure {
            by_point,
            views,
            obs_view,
            img_views,
            pt_start,
            ent_group,
            obs_ent,
            grp_start,
            grp_items,
        }
    }
}

/// The camera-side normal equations of one image: `sum of w Jc^T Jc` and `sum of w Jc^T r`
/// over its observations, in local columns.
#[derive(Clone, Copy)]
struct ImageBlock {
    h: [[f64; NP]; NP],
    g: [f64; NP],
}

impl Default for ImageBlock {
    fn default() -> Self {
        ImageBlock {
            h: [[0.0; NP]; NP],
            g: [0.0; NP],
        }
    }
}

/// Asks the cache for the lines holding `x`: the per-view and per-group passes visit
/// linearisations and W blocks out of storage order, and without it each visit waits on memory.
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (x as *const T).cast::<i8>();
        for off in (0..std::mem::size_of::<T>()).step_by(64) {
            // SAFETY: prefetching has no architectural effect, and `p + off` lies inside `*x`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// How many items ahead the out-of-order passes prefetch.
const AHEAD: usize = 4;

/// Splits `buf` into consecutive pieces of the given lengths.
fn split_lengths<T>(mut buf: &mut [T], lengths: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for n in lengths {
        let (a, b) = buf.split_at_mut(n);
        out.push(a);
        buf = b;
    }
    out
}

/// Runs bundle adjustment in place; only the variables flagged in `cfg` change.
///
/// Linearisation, the per-image and per-point blocks, the Schur complement (each block row of
/// the reduced camera system built by one task, from its points in increasing order) and the
/// cost run on every core. No sum depends on how work is split between threads, so the result
/// is the same whatever the thread count.
pub fn bundle_adjust(
    cams: &mut [RadialCamera],
    poses: &mut [Pose],
    pts: &mut [DVec3],
    obs: &[Observation],
    cfg: &BaConfig,
) -> BaSummary {
    let lay = Layout::new(cfg, poses.len(), cams.len());
    let nc = lay.nc;
    let isz = lay.intr_size;
    let (pose_off, intr_off) = (&lay.pose_off, &lay.intr_off);
    // Observations that touch something variable.
    let used: Vec<usize> = (0..obs.len())
        .filter(|&o| {
            let ob = &obs[o];
            cfg.point_var[ob.point] || pose_off[ob.image] != NONE || intr_off[ob.camera] != NONE
        })
        .collect();
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
    let st = Structure::new(obs, &used, &lay, cfg, pts.len(), poses.len());
    let npts = pts.len();
    let mut lambda = 1e-4;
    // Buffers reused by every iteration and damping trial.
    let mut lins: Vec<Option<Lin>> = Vec::with_capacity(used.len());
    let nviews = st.views.len();
    let mut view_blocks = vec![ImageBlock::default(); nviews];
    // At most 64 chunks, so the per-chunk blocks stay small; the size depends on the problem
    // only, never on the thread count.
    let vchunk = used.len().div_ceil(64).max(4096);
    let nvc = used.len().div_ceil(vchunk);
    let mut view_parts = vec![ImageBlock::default(); nvc * nviews];
    // Local columns of the blocks that vary, per view.
    let view_cols: Vec<([usize; NP], usize)> = st
        .views
        .iter()
        .map(|&(image, camera)| {
            let mut cols = [0usize; NP];
            let mut n = 0;
            if pose_off[image] != NONE {
                for k in 0..6 {
                    cols[n] = k;
                    n += 1;
                }
            }
            if intr_off[camera] != NONE {
                for k in 6..6 + isz {
                    cols[n] = k;
                    n += 1;
                }
            }
            (cols, n)
        })
        .collect();
    let mut cam_h = vec![[[0.0f64; 4]; 4]; cams.len()];
    let mut cam_g = vec![[0.0f64; 4]; cams.len()];
    let mut vmat = vec![[0.0f64; 9]; npts];
    let mut gp = vec![[0.0f64; 3]; npts];
    let mut wblocks: Vec<WBlock> = vec![[[0.0; 3]; 6]; st.ent_group.len()];
    let mut vinv: Vec<Option<[f64; 9]>> = vec![None; npts];
    let mut s = vec![0.0f64; nc * nc];
    let mut dc = vec![0.0f64; nc];
    let mut new_poses = poses.to_vec();
    let mut new_cams = cams.to_vec();
    let mut new_pts = pts.to_vec();
    for it in 0..cfg.max_iters {
        summary.iterations = it + 1;
        lins.clear();
        used.par_iter()
            .map(|&o| linearise(&obs[o], cams, poses, pts, &lay, cfg, c2))
            .collect_into_vec(&mut lins);
        // Camera side per view: fixed chunks of observations (in storage order, so the
        // linearisations stream from memory) each sum into their own per-view blocks, and
        // each view then adds its chunks' blocks in chunk order.
        view_parts
            .par_chunks_mut(nviews)
            .enumerate()
            .for_each(|(c, parts)| {
                parts.fill(ImageBlock::default());
                for u in c * vchunk..((c + 1) * vchunk).min(used.len()) {
                    let Some(l) = &lins[u] else { continue };
                    let v = st.obs_view[u];
                    let blk = &mut parts[v];
                    let cols = &view_cols[v].0[..view_cols[v].1];
                    for (ia, &p) in cols.iter().enumerate() {
                        let (a0, a1) = (l.w * l.jc[0][p], l.w * l.jc[1][p]);
                        blk.g[p] += a0 * l.r[0] + a1 * l.r[1];
                        for &q in &cols[..=ia] {
                            blk.h[p][q] += a0 * l.jc[0][q] + a1 * l.jc[1][q];
                        }
                    }
                }
            });
        view_blocks.par_iter_mut().enumerate().for_each(|(v, blk)| {
            *blk = ImageBlock::default();
            let cols = &view_cols[v].0[..view_cols[v].1];
            for c in 0..nvc {
                let part = &view_parts[c * nviews + v];
                for (ia, &p) in cols.iter().enumerate() {
                    blk.g[p] += part.g[p];
                    for &q in &cols[..=ia] {
                        blk.h[p][q] += part.h[p][q];
                    }
                }
            }
            for (ia, &p) in cols.iter().enumerate() {
                for &q in &cols[..ia] {
                    blk.h[q][p] = blk.h[p][q];
                }
            }
        });
        // A camera's intrinsic block gathers its views' in image order.
        for c in 0..cams.len() {
            cam_h[c] = [[0.0; 4]; 4];
            cam_g[c] = [0.0; 4];
        }
        for (blk, &(_, c)) in view_blocks.iter().zip(&st.views) {
            for a in 0..isz {
                cam_g[c][a] += blk.g[6 + a];
                for b in 0..isz {
                    cam_h[c][a][b] += blk.h[6 + a][6 + b];
                }
            }
        }
        // Per point: V (3x3), g_p and the W block of each group it touches.
        let ent_bounds: Vec<usize> = (0..npts.div_ceil(POINT_CHUNK) + 1)
            .map(|k| st.pt_start[(k * POINT_CHUNK).min(npts)])
            .collect();
        let w_chunks = split_lengths(&mut wblocks, ent_bounds.windows(2).map(|w| w[1] - w[0]));
        vmat.par_chunks_mut(POINT_CHUNK)
            .zip(gp.par_chunks_mut(POINT_CHUNK))
            .zip(w_chunks.into_par_iter())
            .enumerate()
            .for_each(|(k, ((vs, gs), ws))| {
                let base = ent_bounds[k];
                for (i, (v, g)) in vs.iter_mut().zip(gs.iter_mut()).enumerate() {
                    let p = k * POINT_CHUNK + i;
                    *v = [0.0; 9];
                    *g = [0.0; 3];
                    for e in st.pt_start[p]..st.pt_start[p + 1] {
                        ws[e - base] = [[0.0; 3]; 6];
                    }
                    if !cfg.point_var[p] {
                        continue;
                    }
                    for &u in &st.by_point[p] {
                        let Some(l) = &lins[u] else { continue };
                        for i in 0..3 {
                            g[i] += l.w * (l.jp[0][i] * l.r[0] + l.jp[1][i] * l.r[1]);
                            for j in 0..3 {
                                v[i * 3 + j] +=
                                    l.w * (l.jp[0][i] * l.jp[0][j] + l.jp[1][i] * l.jp[1][j]);
                            }
                        }
                        let [ep, ei] = st.obs_ent[u];
                        for (e, first, size) in [(ep, 0, 6), (ei, 6, isz)] {
                            if e == NONE {
                                continue;
                            }
                            let wb = &mut ws[e - base];
                            for a in 0..size {
                                let (a0, a1) = (l.w * l.jc[0][first + a], l.w * l.jc[1][first + a]);
                                for j in 0..3 {
                                    wb[a][j] += a0 * l.jp[0][j] + a1 * l.jp[1][j];
                                }
                            }
                        }
                    }
                }
            });
        let mut accepted = false;
        for _trial in 0..10 {
            vinv.par_iter_mut().enumerate().for_each(|(p, out)| {
                *out = None;
                if !cfg.point_var[p] || st.by_point[p].is_empty() {
                    return;
                }
                let mut v = vmat[p];
                for i in 0..3 {
                    v[i * 3 + i] += lambda * vmat[p][i * 3 + i].max(1e-9);
                }
                // glam arrays are column-major; V is symmetric so the layout does not matter.
                *out = inv3(&v);
            });
            // Reduced camera system, lower triangle: each group's rows by one task.
            let rows = split_lengths(&mut s, lay.groups.iter().map(|g| g.size * nc));
            let rhs = split_lengths(&mut dc, lay.groups.iter().map(|g| g.size));
            rows.into_par_iter()
                .zip(rhs.into_par_iter())
                .enumerate()
                .for_each(|(gi, (rows, rhs))| {
                    let gr = lay.groups[gi];
                    let n = gr.size;
                    let hi = gr.off + n;
                    for r in 0..n {
                        rows[r * nc..r * nc + hi].fill(0.0);
                    }
                    // U and -g_c.
                    match gr.owner {
                        Owner::Pose(i) => {
                            rhs.fill(0.0);
                            for v in st.img_views[i]..st.img_views[i + 1] {
                                let blk = &view_blocks[v];
                                for a in 0..6 {
                                    rhs[a] -= blk.g[a];
                                    for b in 0..6 {
                                        rows[a * nc + gr.off + b] += blk.h[a][b];
                                    }
                                }
                                let io = intr_off[st.views[v].1];
                                if io != NONE {
                                    for a in 0..6 {
                                        for b in 0..isz {
                                            rows[a * nc + io + b] += blk.h[a][6 + b];
                                        }
                                    }
                                }
                            }
                        }
                        Owner::Intr(c) => {
                            for a in 0..n {
                                rhs[a] = -cam_g[c][a];
                                for b in 0..n {
                                    rows[a * nc + gr.off + b] = cam_h[c][a][b];
                                }
                            }
                        }
                    }
                    let mut u_diag = [0.0f64; 6];
                    for a in 0..n {
                        let k = a * nc + gr.off + a;
                        u_diag[a] = rows[k];
                        rows[k] += lambda * rows[k].max(1e-9);
                    }
                    if let (Some((pi, axis)), Owner::Pose(i)) = (cfg.fix_translation, gr.owner) {
                        if pi == i {
                            let k = (3 + axis) * nc + gr.off + 3 + axis;
                            rows[k] += 1e12 * (1.0 + u_diag[3 + axis]);
                        }
                    }
                    // S -= W V^-1 W^T, rhs += W V^-1 g_p, over this group's points.
                    let items = &st.grp_items[st.grp_start[gi]..st.grp_start[gi + 1]];
                    for (k, &(p, e)) in items.iter().enumerate() {
                        if let Some(&(pa, _)) = items.get(k + AHEAD) {
                            prefetch(&vinv[pa]);
                            prefetch(&gp[pa]);
                            let (e0, e1) = (st.pt_start[pa], st.pt_start[pa + 1]);
                            for ea in e0..e1 {
                                prefetch(&wblocks[ea]);
                                prefetch(&st.ent_group[ea]);
                            }
                        }
                        let Some(vi) = vinv[p] else { continue };
                        let wa = &wblocks[e];
                        let mut t = [[0.0f64; 3]; 6];
                        for a in 0..n {
                            for j in 0..3 {
                                t[a][j] = wa[a][0] * vi[j * 3]
                                    + wa[a][1] * vi[j * 3 + 1]
                                    + wa[a][2] * vi[j * 3 + 2];
                            }
                            rhs[a] += t[a][0] * gp[p][0] + t[a][1] * gp[p][1] + t[a][2] * gp[p][2];
                        }
                        for e2 in st.pt_start[p]..st.pt_start[p + 1] {
                            let g2 = lay.groups[st.ent_group[e2]];
                            if g2.off > gr.off {
                                continue;
                            }
                            let wb = &wblocks[e2];
                            for a in 0..n {
                                let row = &mut rows[a * nc + g2.off..a * nc + g2.off + g2.size];
                                let ta = t[a];
                                for (x, w) in row.iter_mut().zip(wb) {
                                    *x -= ta[0] * w[0] + ta[1] * w[1] + ta[2] * w[2];
                                }
                            }
                        }
                    }
                });
            if nc > 0 && !cholesky_solve(&mut s, nc, &mut dc) {
                lambda *= 10.0;
                continue;
            }
            // Candidate update.
            new_poses.copy_from_slice(poses);
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
            new_cams.copy_from_slice(cams);
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
            new_pts
                .par_iter_mut()
                .zip(pts.par_iter())
                .enumerate()
                .for_each(|(p, (x, &x0))| {
                    *x = x0;
                    let Some(vi) = vinv[p] else { return };
                    let mut b = [-gp[p][0], -gp[p][1], -gp[p][2]];
                    for e in st.pt_start[p]..st.pt_start[p + 1] {
                        let g = lay.groups[st.ent_group[e]];
                        let wa = &wblocks[e];
                        for a in 0..g.size {
                            let y = dc[g.off + a];
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers in [-1, 1).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
    }

    /// Ten images on an arc, two cameras (even / odd images), 300 points of which every tenth
    /// is held fixed; returns truth, a perturbed start, the observations and the config.
    #[allow(clippy::type_complexity)]
    fn problem(
        noise: f64,
    ) -> (
        (Vec<RadialCamera>, Vec<Pose>, Vec<DVec3>),
        (Vec<RadialCamera>, Vec<Pose>, Vec<DVec3>),
        Vec<Observation>,
        BaConfig,
    ) {
        let mut rng = Lcg(42);
        let cams = vec![
            RadialCamera {
                f: 900.0,
                cx: 480.0,
                cy: 360.0,
                k: -0.05,
                width: 960,
                height: 720,
            },
            RadialCamera {
                f: 1100.0,
                cx: 505.0,
                cy: 395.0,
                k: 0.03,
                width: 1000,
                height: 800,
            },
        ];
        let poses: Vec<Pose> = (0..10)
            .map(|i| {
                let a = (i as f64 - 4.5) * 0.1;
                let c = DVec3::new(6.0 * a.sin(), 0.4 * (i as f64).sin(), -6.0 * a.cos());
                let z = (-c).normalize();
                let x = DVec3::Y.cross(z).normalize();
                let y = z.cross(x);
                let r = DMat3::from_cols(x, y, z).transpose();
                Pose { r, t: -(r * c) }
            })
            .collect();
        let pts: Vec<DVec3> = (0..300)
            .map(|_| DVec3::new(rng.next(), rng.next(), rng.next()) * 1.5)
            .collect();
        let mut obs = Vec::new();
        for (p, x) in pts.iter().enumerate() {
            for (i, pose) in poses.iter().enumerate() {
                // Each point seen by a window of images, so tracks differ.
                if (i + p) % 10 > 6 {
                    continue;
                }
                let c = i % 2;
                if let Some(px) = cams[c].project(pose.apply(*x)) {
                    obs.push(Observation {
                        image: i,
                        camera: c,
                        point: p,
                        xy: px + DVec2::new(rng.next(), rng.next()) * noise,
                    });
                }
            }
        }
        let mut start_cams = cams.clone();
        for c in start_cams.iter_mut() {
            c.f *= 1.03;
            c.k = 0.0;
            c.cx += 4.0;
            c.cy -= 3.0;
        }
        let start_poses: Vec<Pose> = poses
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if i == 0 {
                    return *p;
                }
                let w = DVec3::new(rng.next(), rng.next(), rng.next()) * 0.01;
                let mut t = p.t + DVec3::new(rng.next(), rng.next(), rng.next()) * 0.05;
                if i == 1 {
                    t.z = p.t.z;
                }
                Pose {
                    r: rodrigues(w) * p.r,
                    t,
                }
            })
            .collect();
        let point_var: Vec<bool> = (0..pts.len()).map(|p| p % 10 != 0).collect();
        let start_pts = pts
            .iter()
            .zip(&point_var)
            .map(|(x, &v)| {
                if v {
                    *x + DVec3::new(rng.next(), rng.next(), rng.next()) * 0.03
                } else {
                    *x
                }
            })
            .collect();
        let mut pose_var = vec![true; poses.len()];
        pose_var[0] = false;
        let cfg = BaConfig {
            pose_var,
            intr_var: vec![true, true],
            refine_principal_point: true,
            point_var,
            fix_translation: Some((1, 2)),
            loss_scale: 2.0,
            max_iters: 100,
        };
        (
            (cams, poses, pts),
            (start_cams, start_poses, start_pts),
            obs,
            cfg,
        )
    }

    #[test]
    fn two_cameras_and_fixed_points_recover_the_exact_solution() {
        let ((cams, poses, _), (mut c, mut p, mut x), obs, cfg) = problem(0.0);
        bundle_adjust(&mut c, &mut p, &mut x, &obs, &cfg);
        for (a, b) in c.iter().zip(&cams) {
            assert!((a.f - b.f).abs() < 1e-4, "focal {} vs {}", a.f, b.f);
            assert!((a.k - b.k).abs() < 1e-7, "k {} vs {}", a.k, b.k);
            assert!((a.cx - b.cx).abs() < 1e-4 && (a.cy - b.cy).abs() < 1e-4);
        }
        for (a, b) in p.iter().zip(&poses) {
            assert!(
                (a.t - b.t).length() < 1e-6,
                "translation {}",
                (a.t - b.t).length()
            );
        }
    }

    #[test]
    fn result_does_not_depend_on_thread_count() {
        let (_, start, obs, cfg) = problem(0.7);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            let (mut c, mut p, mut x) = start.clone();
            let sum = pool.install(|| bundle_adjust(&mut c, &mut p, &mut x, &obs, &cfg));
            (c, p, x, sum.final_cost, sum.iterations)
        };
        let one = run(1);
        let three = run(3);
        assert!(one.4 > 1, "only {} iterations", one.4);
        assert_eq!(one.3.to_bits(), three.3.to_bits(), "final cost differs");
        assert_eq!(one.0, three.0);
        assert_eq!(one.1, three.1);
        assert_eq!(one.2, three.2);
    }
}
