//! Pose accuracy against known cameras: relative-pose errors over all image pairs and their AUC,
//! the measure `compare_models.py` (and most SfM papers) report. Relative poses are free of the
//! reconstruction's gauge (its origin, rotation and scale), so no alignment is needed.

use glam::{DMat3, DVec3};
use serde::{Deserialize, Serialize};

use crate::geometry::rotation_angle;

/// A world-to-camera pose: `x_cam = rotation * x_world + translation`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// World-to-camera rotation.
    pub rotation: DMat3,
    /// World-to-camera translation.
    pub translation: DVec3,
}

/// Summary of relative-pose errors over all pairs of matched images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoseErrors {
    /// Image pairs compared.
    pub pairs: usize,
    /// Median relative-rotation error, degrees.
    pub rotation_median_deg: f64,
    /// Largest relative-rotation error, degrees.
    pub rotation_max_deg: f64,
    /// Median angle between estimated and true relative translation directions, degrees.
    pub translation_median_deg: f64,
    /// AUC (percent) of the pair error max(rotation, translation angle) at 1, 3, 5 and 10 degrees.
    pub auc: [f64; 4],
}

/// Thresholds of [`PoseErrors::auc`], degrees.
pub const AUC_THRESHOLDS_DEG: [f64; 4] = [1.0, 3.0, 5.0, 10.0];

/// Relative-pose errors of `estimated` against `truth`, matched by index; `None` with fewer
/// than two poses or a length mismatch.
pub fn relative_pose_errors(estimated: &[Pose], truth: &[Pose]) -> Option<PoseErrors> {
    if estimated.len() != truth.len() || estimated.len() < 2 {
        return None;
    }
    let relative = |a: &Pose, b: &Pose| {
        let r = b.rotation * a.rotation.transpose();
        (r, b.translation - r * a.translation)
    };
    let mut rot = Vec::new();
    let mut trans = Vec::new();
    let mut pair = Vec::new();
    for i in 0..estimated.len() {
        for j in i + 1..estimated.len() {
            let (re, te) = relative(&estimated[i], &estimated[j]);
            let (rg, tg) = relative(&truth[i], &truth[j]);
            let r = rotation_angle(&re, &rg).to_degrees();
            let t = direction_angle(te, tg).to_degrees();
            rot.push(r);
            trans.push(t);
            pair.push(r.max(t));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let pairs = pair.len();
    pair.sort_by(f64::total_cmp);
    Some(PoseErrors {
        pairs,
        rotation_median_deg: median(&mut rot),
        rotation_max_deg: rot[rot.len() - 1],
        translation_median_deg: median(&mut trans),
        auc: AUC_THRESHOLDS_DEG.map(|t| 100.0 * auc(&pair, t)),
    })
}

/// Angle between two directions in radians; zero-length vectors count as a full miss.
fn direction_angle(a: DVec3, b: DVec3) -> f64 {
    let n = a.length() * b.length();
    if n <= 0.0 || !n.is_finite() {
        return std::f64::consts::PI;
    }
    (a.dot(b) / n).clamp(-1.0, 1.0).acos()
}

/// Area under the recall-versus-error curve up to `threshold`, divided by `threshold`, for
/// errors sorted ascending (1.0 when every error is zero).
pub fn auc(sorted_errors: &[f64], threshold: f64) -> f64 {
    let n = sorted_errors.len();
    if n == 0 || threshold <= 0.0 {
        return 0.0;
    }
    // Recall is a step function rising by 1/n at each error; integrate it over [0, threshold].
    let mut area = 0.0;
    for (i, &e) in sorted_errors.iter().enumerate() {
        if e >= threshold {
            break;
        }
        let next = sorted_errors
            .get(i + 1)
            .copied()
            .unwrap_or(threshold)
            .min(threshold);
        area += (i + 1) as f64 / n as f64 * (next - e.max(0.0));
    }
    area / threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::DQuat;

    fn ring(n: usize) -> Vec<Pose> {
        (0..n)
            .map(|i| {
                let a = i as f64 * 0.4;
                let rotation = DMat3::from_quat(DQuat::from_rotation_y(a));
                let centre = DVec3::new(3.0 * a.sin(), 0.1 * i as f64, -3.0 * a.cos());
                Pose {
                    rotation,
                    translation: -(rotation * centre),
                }
            })
            .collect()
    }

    #[test]
    fn a_similar_copy_is_exact() {
        let truth = ring(6);
        // The same cameras in another gauge: rotated, scaled and shifted world.
        let g = DMat3::from_quat(DQuat::from_euler(glam::EulerRot::XYZ, 0.3, -0.2, 1.1));
        let (s, shift) = (2.5, DVec3::new(1.0, -2.0, 0.5));
        let est: Vec<Pose> = truth
            .iter()
            .map(|p| {
                // x_world' = s g x_world + shift  =>  R' = R g^T, t' = s t - R' shift.
                let rotation = p.rotation * g.transpose();
                Pose {
                    rotation,
                    translation: s * p.translation - rotation * shift,
                }
            })
            .collect();
        let e = relative_pose_errors(&est, &truth).unwrap();
        assert_eq!(e.pairs, 15);
        assert!(
            e.rotation_max_deg < 1e-6 && e.translation_median_deg < 1e-6,
            "{e:?}"
        );
        assert!(e.auc.iter().all(|a| *a > 99.99), "{e:?}");
    }

    #[test]
    fn a_perturbed_camera_lowers_the_auc() {
        let truth = ring(6);
        let mut est = truth.clone();
        est[2].rotation =
            DMat3::from_quat(DQuat::from_rotation_x(2f64.to_radians())) * est[2].rotation;
        let e = relative_pose_errors(&est, &truth).unwrap();
        assert!((e.rotation_max_deg - 2.0).abs() < 1e-6, "{e:?}");
        // 5 of 15 pairs have error >= 2 deg: AUC@1 at most 10/15.
        assert!(e.auc[0] < 100.0 * 10.0 / 15.0 + 1e-9, "{e:?}");
        assert!(e.auc[3] > e.auc[0]);
    }

    #[test]
    fn auc_of_uniform_errors() {
        let errs: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0 * 2.0).collect();
        // Errors uniform on [0, 2): recall(e) = e/2, area to 1 = 1/4.
        assert!((auc(&errs, 1.0) - 0.25).abs() < 2e-3);
        assert_eq!(auc(&[], 1.0), 0.0);
    }
}
