//! Structure from motion: photos to camera poses, intrinsics and a sparse point cloud,
//! read and written as COLMAP models.

pub mod colmap;
pub mod eval;
pub mod features;
pub mod geometry;
pub mod linalg;
pub mod mapper;
pub mod matching;
pub mod photo;
pub mod pipeline;
pub mod twoview;
