//! The geometric estimators of the pipeline as small units that can be used on their own, in the
//! manner of COLMAP's `estimators/`:
//!
//! - minimal solvers, each mapping a minimal sample of correspondences to every model consistent
//!   with it: [`five_point`] (essential matrix), [`seven_point`] / [`eight_point`] (fundamental),
//!   [`homography_dlt`], [`p3p`] (absolute pose);
//! - the model-to-pose steps and refinements: [`pose_from_essential`], [`decompose`],
//!   [`essential_from_pose`], [`refine_pose`], [`refine_relative_pose`], [`align_rigid`];
//! - triangulation: [`triangulate_two_view`], [`triangulate_multi`], [`triangulation_angle`];
//! - residuals: [`sampson_sq`], [`transfer_error_sq`];
//! - robust fitting: [`ransac`] (LO-RANSAC with MSAC scoring) over any [`Estimator`]; the
//!   pipeline's model families are [`EssentialEstimator`], [`FundamentalEstimator`],
//!   [`HomographyEstimator`] and [`AbsolutePoseEstimator`].
//!
//! Conventions: points are normalized image coordinates (pixels with the intrinsics removed)
//! except for the fundamental matrix and the homography, which take pixels; a [`Pose`] maps
//! world to camera (`x_cam = r * x_world + t`); a relative pose is camera 2 from camera 1.
//!
//! A relative pose from noise-free correspondences:
//!
//! ```
//! use glam::{DMat3, DVec2, DVec3};
//! use sfm_core::estimators::{
//!     pose_from_essential, ransac, rotation_angle, EssentialEstimator, Pose, RansacOptions,
//! };
//!
//! // Camera 2 one unit to the side of camera 1 and turned 0.1 rad, both seeing 50 points.
//! let truth = Pose { r: DMat3::from_rotation_y(0.1), t: DVec3::new(-1.0, 0.0, 0.0) };
//! let world: Vec<DVec3> = (0..50)
//!     .map(|i| {
//!         let f = i as f64;
//!         DVec3::new((f * 0.37).sin(), (f * 0.73).cos(), 4.0 + (f * 0.21).sin())
//!     })
//!     .collect();
//! let image = |p: DVec3| DVec2::new(p.x / p.z, p.y / p.z);
//! let x1: Vec<DVec2> = world.iter().map(|&p| image(p)).collect();
//! let x2: Vec<DVec2> = world.iter().map(|&p| image(truth.apply(p))).collect();
//!
//! let opts = RansacOptions { max_error: 1e-4, ..Default::default() };
//! let fit = ransac(&EssentialEstimator { x1: &x1, x2: &x2 }, &opts).expect("a model");
//! assert_eq!(fit.num_inliers, 50);
//! let (pose, in_front) = pose_from_essential(&fit.model, &x1, &x2).expect("a pose");
//! assert_eq!(in_front, 50);
//! assert!(rotation_angle(&pose.r, &truth.r) < 1e-6);
//! assert!(pose.t.angle_between(truth.t) < 1e-6);
//! ```

pub use crate::geometry::essential::{
    decompose, essential_from_pose, five_point, pose_from_essential,
};
pub use crate::geometry::fundamental::{eight_point, seven_point};
pub use crate::geometry::homography::{homography_dlt, transfer_error_sq};
pub use crate::geometry::p3p::{align_rigid, p3p};
pub use crate::geometry::pose::{refine_pose, refine_relative_pose};
pub use crate::geometry::ransac::{
    ransac, AbsolutePoseEstimator, EssentialEstimator, Estimator, FundamentalEstimator,
    HomographyEstimator, RansacOptions, RansacResult,
};
pub use crate::geometry::triangulation::{
    triangulate_multi, triangulate_two_view, triangulation_angle,
};
pub use crate::geometry::{normalize_points, rotation_angle, sampson_sq, Pose};
