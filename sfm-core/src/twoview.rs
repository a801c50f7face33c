//! Geometric verification of putative matches: essential (five-point), fundamental
//! (seven-point) and homography models with LO-RANSAC, classified as COLMAP does.

use crate::geometry::essential::pose_from_essential;
use crate::geometry::ransac::{
    ransac, EssentialEstimator, FundamentalEstimator, HomographyEstimator, RansacOptions,
};
use crate::geometry::Pose;
use glam::DVec2;
use serde::{Deserialize, Serialize};

/// Verification settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerifyOptions {
    /// RANSAC threshold in pixels.
    pub max_error: f64,
    /// Minimum number of inliers for a verified pair.
    pub min_inliers: usize,
    /// Minimum inlier ratio for a verified pair.
    pub min_inlier_ratio: f64,
    /// RANSAC confidence.
    pub confidence: f64,
    /// RANSAC iteration cap.
    pub max_iters: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            max_error: 4.0,
            min_inliers: 15,
            min_inlier_ratio: 0.25,
            confidence: 0.999,
            max_iters: 10_000,
        }
    }
}

/// Which model explains a verified pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairConfig {
    /// Essential matrix fits as well as the fundamental matrix (calibration is consistent).
    Calibrated,
    /// Only the fundamental matrix fits.
    Uncalibrated,
    /// A homography explains most inliers (planar scene or pure rotation).
    Planar,
}

/// A verified image pair.
#[derive(Clone, Debug)]
pub struct TwoViewGeometry {
    /// Model class.
    pub config: PairConfig,
    /// Inlier matches (feature index in image 1, in image 2).
    pub inliers: Vec<(u32, u32)>,
    /// Relative pose of image 2 from the essential matrix, when calibrated.
    pub relative_pose: Option<Pose>,
    /// Inliers of the homography.
    pub num_h_inliers: usize,
}

/// Pinhole intrinsics used to normalise points for the essential matrix.
#[derive(Clone, Copy, Debug)]
pub struct PinholePrior {
    /// Focal length in pixels.
    pub f: f64,
    /// Principal point x.
    pub cx: f64,
    /// Principal point y.
    pub cy: f64,
}

impl PinholePrior {
    /// Pixel to normalized coordinates.
    pub fn normalize(&self, p: DVec2) -> DVec2 {
        DVec2::new((p.x - self.cx) / self.f, (p.y - self.cy) / self.f)
    }
}

/// Verifies matches between two images with keypoints `k1`, `k2` (pixels).
pub fn verify_pair(
    k1: &[DVec2],
    k2: &[DVec2],
    matches: &[(u32, u32)],
    cam1: &PinholePrior,
    cam2: &PinholePrior,
    opt: &VerifyOptions,
    seed: u64,
) -> Option<TwoViewGeometry> {
    if matches.len() < opt.min_inliers {
        return None;
    }
    let x1: Vec<DVec2> = matches.iter().map(|m| k1[m.0 as usize]).collect();
    let x2: Vec<DVec2> = matches.iter().map(|m| k2[m.1 as usize]).collect();
    let n1: Vec<DVec2> = x1.iter().map(|&p| cam1.normalize(p)).collect();
    let n2: Vec<DVec2> = x2.iter().map(|&p| cam2.normalize(p)).collect();
    let ro = |err: f64| RansacOptions {
        max_error: err,
        confidence: opt.confidence,
        min_iters: 50,
        max_iters: opt.max_iters,
        seed,
    };
    let f_mean = 0.5 * (cam1.f + cam2.f);
    let e = ransac(
        &EssentialEstimator { x1: &n1, x2: &n2 },
        &ro(opt.max_error / f_mean),
    );
    let f = ransac(
        &FundamentalEstimator { x1: &x1, x2: &x2 },
        &ro(opt.max_error),
    );
    let h = ransac(
        &HomographyEstimator { x1: &x1, x2: &x2 },
        &ro(opt.max_error),
    );
    let ne = e.as_ref().map_or(0, |r| r.num_inliers);
    let nf = f.as_ref().map_or(0, |r| r.num_inliers);
    let nh = h.as_ref().map_or(0, |r| r.num_inliers);
    let (mut config, mask) = if ne > 0 && ne as f64 >= 0.95 * nf as f64 {
        (PairConfig::Calibrated, &e.as_ref()?.inliers)
    } else if nf > 0 {
        (PairConfig::Uncalibrated, &f.as_ref()?.inliers)
    } else {
        return None;
    };
    let n_in = ne.max(nf);
    if n_in < opt.min_inliers || (n_in as f64) < opt.min_inlier_ratio * matches.len() as f64 {
        return None;
    }
    if nh as f64 > 0.8 * n_in as f64 {
        config = PairConfig::Planar;
    }
    let inliers: Vec<(u32, u32)> = matches
        .iter()
        .zip(mask)
        .filter(|(_, &b)| b)
        .map(|(m, _)| *m)
        .collect();
    let relative_pose = e.as_ref().and_then(|r| {
        let idx: Vec<usize> = (0..n1.len()).filter(|&i| r.inliers[i]).collect();
        let a: Vec<DVec2> = idx.iter().map(|&i| n1[i]).collect();
        let b: Vec<DVec2> = idx.iter().map(|&i| n2[i]).collect();
        pose_from_essential(&r.model, &a, &b).map(|p| p.0)
    });
    Some(TwoViewGeometry {
        config,
        inliers,
        relative_pose,
        num_h_inliers: nh,
    })
}
