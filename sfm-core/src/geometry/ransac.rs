//! LO-RANSAC with MSAC scoring, and the estimators that plug the minimal solvers into it.

use super::essential::five_point;
use super::fundamental::{eight_point, seven_point};
use super::homography::{homography_dlt, transfer_error_sq};
use super::p3p::p3p;
use super::pose::refine_pose;
use super::{sampson_sq, Pose};
use glam::{DMat3, DVec2, DVec3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A model family RANSAC can fit: a minimal solver, a residual and a non-minimal refit.
pub trait Estimator {
    /// The model type.
    type Model: Clone;
    /// Size of a minimal sample.
    fn min_samples(&self) -> usize;
    /// Number of data points.
    fn num_data(&self) -> usize;
    /// Appends every model consistent with the sample.
    fn fit(&self, sample: &[usize], out: &mut Vec<Self::Model>);
    /// Squared residual of datum `i` under `m`.
    fn residual_sq(&self, m: &Self::Model, i: usize) -> f64;
    /// Non-minimal refit on inliers, used by the local optimisation step.
    fn refine(&self, m: &Self::Model, inliers: &[usize]) -> Option<Self::Model>;
}

/// RANSAC settings.
#[derive(Clone, Debug)]
pub struct RansacOptions {
    /// Inlier threshold on the (non-squared) residual.
    pub max_error: f64,
    /// Desired probability of drawing at least one all-inlier sample.
    pub confidence: f64,
    /// Lower bound on iterations.
    pub min_iters: usize,
    /// Upper bound on iterations.
    pub max_iters: usize,
    /// Seed of the sampler, so that results are reproducible.
    pub seed: u64,
}

impl Default for RansacOptions {
    fn default() -> Self {
        Self {
            max_error: 1.0,
            confidence: 0.999,
            min_iters: 30,
            max_iters: 10_000,
            seed: 0,
        }
    }
}

/// Result of a RANSAC run.
#[derive(Clone, Debug)]
pub struct RansacResult<M> {
    /// The best model.
    pub model: M,
    /// Inlier flag per datum.
    pub inliers: Vec<bool>,
    /// Number of inliers.
    pub num_inliers: usize,
    /// Iterations run.
    pub iterations: usize,
}

fn score<E: Estimator>(est: &E, m: &E::Model, t2: f64) -> (f64, usize) {
    let mut s = 0.0;
    let mut n = 0;
    for i in 0..est.num_data() {
        let r = est.residual_sq(m, i);
        if r < t2 {
            s += r;
            n += 1;
        } else {
            s += t2;
        }
    }
    (s, n)
}

fn inlier_indices<E: Estimator>(est: &E, m: &E::Model, t2: f64) -> Vec<usize> {
    (0..est.num_data())
        .filter(|&i| est.residual_sq(m, i) < t2)
        .collect()
}

/// Runs LO-RANSAC: MSAC scoring (truncated squared residuals), an adaptive number of trials, and
/// iterated non-minimal refits on the inliers of each new best model.
pub fn ransac<E: Estimator>(est: &E, opt: &RansacOptions) -> Option<RansacResult<E::Model>> {
    let n = est.num_data();
    let s = est.min_samples();
    if n < s {
        return None;
    }
    let t2 = opt.max_error * opt.max_error;
    let mut rng = ChaCha8Rng::seed_from_u64(opt.seed);
    let mut best: Option<(E::Model, f64, usize)> = None;
    let mut max_iters = opt.max_iters;
    let mut sample = vec![0usize; s];
    let mut models = Vec::new();
    let mut it = 0;
    while it < max_iters.max(opt.min_iters).min(opt.max_iters) {
        it += 1;
        // Draw s distinct indices (rejection is cheap since s << n).
        let mut k = 0;
        while k < s {
            let c = rng.random_range(0..n);
            if !sample[..k].contains(&c) {
                sample[k] = c;
                k += 1;
            }
        }
        models.clear();
        est.fit(&sample, &mut models);
        for m in models.drain(..) {
            let (sc, ni) = score(est, &m, t2);
            if best.as_ref().is_some_and(|b| sc >= b.1) {
                continue;
            }
            let mut cur = (m, sc, ni);
            // Local optimisation: refit on the inliers while the score improves.
            for _ in 0..4 {
                let inl = inlier_indices(est, &cur.0, t2);
                if inl.len() <= s {
                    break;
                }
                match est.refine(&cur.0, &inl) {
                    Some(r) => {
                        let (sc2, ni2) = score(est, &r, t2);
                        if sc2 < cur.1 {
                            cur = (r, sc2, ni2);
                        } else {
                            break;
                        }
                    }
                    None => break,
                }
            }
            let ratio = cur.2 as f64 / n as f64;
            best = Some(cur);
            let denom = (1.0 - ratio.powi(s as i32)).max(1e-12).ln();
            if denom < 0.0 {
                let need = ((1.0 - opt.confidence).ln() / denom).ceil();
                max_iters = if need.is_finite() {
                    (need as usize).min(opt.max_iters)
                } else {
                    opt.max_iters
                };
            } else {
                max_iters = 0;
            }
        }
    }
    let (model, _, _) = best?;
    let inliers: Vec<bool> = (0..n).map(|i| est.residual_sq(&model, i) < t2).collect();
    let num_inliers = inliers.iter().filter(|&&b| b).count();
    Some(RansacResult {
        model,
        inliers,
        num_inliers,
        iterations: it,
    })
}

fn gather<T: Copy>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| v[i]).collect()
}

/// Essential matrix from normalized correspondences; residual is the Sampson distance.
pub struct EssentialEstimator<'a> {
    /// Normalized points in image 1.
    pub x1: &'a [DVec2],
    /// Normalized points in image 2.
    pub x2: &'a [DVec2],
}

impl Estimator for EssentialEstimator<'_> {
    type Model = DMat3;
    fn min_samples(&self) -> usize {
        5
    }
    fn num_data(&self) -> usize {
        self.x1.len()
    }
    fn fit(&self, s: &[usize], out: &mut Vec<DMat3>) {
        out.extend(five_point(&gather(self.x1, s), &gather(self.x2, s)));
    }
    fn residual_sq(&self, m: &DMat3, i: usize) -> f64 {
        sampson_sq(m, self.x1[i], self.x2[i])
    }
    fn refine(&self, m: &DMat3, inl: &[usize]) -> Option<DMat3> {
        // Algebraic refits (least-squares five- or eight-point) score worse than good minimal
        // samples under noise, so refine the relative pose on the Sampson error instead.
        let (a, b) = (gather(self.x1, inl), gather(self.x2, inl));
        let (pose, _) = super::essential::pose_from_essential(m, &a, &b)?;
        let refined = super::pose::refine_relative_pose(&pose, &a, &b, 10);
        Some(super::essential::essential_from_pose(&refined))
    }
}

/// Fundamental matrix from pixel correspondences; residual is the Sampson distance.
pub struct FundamentalEstimator<'a> {
    /// Points in image 1.
    pub x1: &'a [DVec2],
    /// Points in image 2.
    pub x2: &'a [DVec2],
}

impl Estimator for FundamentalEstimator<'_> {
    type Model = DMat3;
    fn min_samples(&self) -> usize {
        7
    }
    fn num_data(&self) -> usize {
        self.x1.len()
    }
    fn fit(&self, s: &[usize], out: &mut Vec<DMat3>) {
        out.extend(seven_point(&gather(self.x1, s), &gather(self.x2, s)));
    }
    fn residual_sq(&self, m: &DMat3, i: usize) -> f64 {
        sampson_sq(m, self.x1[i], self.x2[i])
    }
    fn refine(&self, _m: &DMat3, inl: &[usize]) -> Option<DMat3> {
        eight_point(&gather(self.x1, inl), &gather(self.x2, inl))
    }
}

/// Homography from pixel correspondences; residual is the transfer error in image 2.
pub struct HomographyEstimator<'a> {
    /// Points in image 1.
    pub x1: &'a [DVec2],
    /// Points in image 2.
    pub x2: &'a [DVec2],
}

impl Estimator for HomographyEstimator<'_> {
    type Model = DMat3;
    fn min_samples(&self) -> usize {
        4
    }
    fn num_data(&self) -> usize {
        self.x1.len()
    }
    fn fit(&self, s: &[usize], out: &mut Vec<DMat3>) {
        out.extend(homography_dlt(&gather(self.x1, s), &gather(self.x2, s)));
    }
    fn residual_sq(&self, m: &DMat3, i: usize) -> f64 {
        transfer_error_sq(m, self.x1[i], self.x2[i])
    }
    fn refine(&self, _m: &DMat3, inl: &[usize]) -> Option<DMat3> {
        homography_dlt(&gather(self.x1, inl), &gather(self.x2, inl))
    }
}

/// Absolute pose from normalized image points and world points; residual is the reprojection
/// error in normalized coordinates.
pub struct AbsolutePoseEstimator<'a> {
    /// Normalized image points.
    pub pts: &'a [DVec2],
    /// Corresponding world points.
    pub world: &'a [DVec3],
}

impl Estimator for AbsolutePoseEstimator<'_> {
    type Model = Pose;
    fn min_samples(&self) -> usize {
        3
    }
    fn num_data(&self) -> usize {
        self.pts.len()
    }
    fn fit(&self, s: &[usize], out: &mut Vec<Pose>) {
        let b = [0, 1, 2].map(|k| super::hom(self.pts[s[k]]).normalize());
        let w = [0, 1, 2].map(|k| self.world[s[k]]);
        out.extend(p3p(&b, &w));
    }
    fn residual_sq(&self, m: &Pose, i: usize) -> f64 {
        let xc = m.apply(self.world[i]);
        if xc.z <= 1e-12 {
            return f64::INFINITY;
        }
        (DVec2::new(xc.x / xc.z, xc.y / xc.z) - self.pts[i]).length_squared()
    }
    fn refine(&self, m: &Pose, inl: &[usize]) -> Option<Pose> {
        let scale = inl
            .iter()
            .map(|&i| self.residual_sq(m, i))
            .sum::<f64>()
            .sqrt()
            .max(1e-6)
            / (inl.len() as f64).sqrt();
        Some(refine_pose(
            m,
            &gather(self.pts, inl),
            &gather(self.world, inl),
            scale.max(1e-4),
            10,
        ))
    }
}
