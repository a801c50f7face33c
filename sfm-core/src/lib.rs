//! Structure from motion: photos to camera poses, intrinsics and a sparse point cloud,
//! read and written as COLMAP models.
//!
//! The public API:
//! - [`run`]: the whole pipeline (features, matching, two-view verification, incremental
//!   mapping, COLMAP output and `sfm_report.json`), set by [`SfmOptions`] and its sections
//!   ([`SiftOptions`], [`MatchOptions`], [`PairSelection`], [`VerifyOptions`],
//!   [`MapperOptions`]), reported by [`SfmReport`], failing with [`SfmError`].
//! - [`run_with`]: the same on another [`FeatureBackend`] (the device seam, module
//!   [`backend`]: feature extraction and descriptor matching; [`CpuFeatures`] is what
//!   [`run`] uses, and splat-cuda implements matching on a GPU).
//! - [`colmap`]: COLMAP sparse models, read and written in binary and text form.
//! - [`eval`]: pose accuracy against known cameras (relative-pose errors and their AUC).
//! - [`photo`]: photos as cameras write them (EXIF orientation, truncation, focal length).
//! - [`estimators`]: the minimal solvers, refinements and the LO-RANSAC driver, each usable on
//!   its own.
//!
//! ```no_run
//! let opts = sfm_core::SfmOptions::default();
//! let report = sfm_core::run(&opts, "photos".as_ref(), "out".as_ref(), &|_, _, _| {})?;
//! println!("{} of {} images registered", report.registered_images, report.num_images);
//! let model = sfm_core::colmap::read("out/sparse/0")?;
//! println!("{} points", model.points3d.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod backend;
pub mod colmap;
pub mod estimators;
pub mod eval;
pub mod photo;

mod features;
mod geometry;
mod linalg;
mod mapper;
mod matching;
mod pipeline;
mod twoview;

pub use backend::{CpuFeatures, FeatureBackend, FeatureBackendError};
pub use features::SiftOptions;
pub use mapper::{MapperError, MapperOptions};
pub use matching::{MatchOptions, PairSelection};
pub use pipeline::{
    run, run_with, CameraMode, SfmError, SfmOptions, SfmReport, Stage, StageReport,
};
pub use twoview::VerifyOptions;

/// Stages below the pipeline that tests and benchmarks drive directly (SIFT extraction,
/// descriptor matching, bundle adjustment, small linear-algebra helpers). Not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::features::{extract, Features, Gray};
    pub use crate::linalg::{mat3_rows, rodrigues};
    pub use crate::mapper::bundle::{bundle_adjust, BaConfig, Observation};
    pub use crate::mapper::RadialCamera;
    pub use crate::matching::{match_descriptors, DescriptorSet};

    /// The files directly in `dir` (a model folder), by name, with their bytes: what the tests
    /// compare when two runs must write the same model byte for byte.
    pub fn model_files(dir: &std::path::Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            v.push((name.unwrap_or_default(), std::fs::read(&p)?));
        }
        v.sort();
        Ok(v)
    }
}
