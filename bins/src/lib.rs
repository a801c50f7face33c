//! The spaceport pipeline as a library: photos -> structure from motion -> 3D Gaussian training
//! -> SOG compression -> report, resumable through a job manifest.
//!
//! The `spaceport` command line is a thin layer over this crate: it parses arguments, turns
//! [`Events`] into progress bars and messages, and prints errors. Everything else lives here:
//!
//! - [`pipeline`]: the controller: [`Input`], the stage graph and its order, one function per
//!   stage, [`pipeline::run`];
//! - [`job`]: the job manifest `job.json` (per stage status, times, metrics, artifacts);
//! - [`config`]: [`RunConfig`], the schema of every setting, one section per stage;
//! - [`training`]: the one training driver `spaceport run` and `spaceport train` share
//!   (resume from a checkpoint, stop flag, periodic checkpoints, outputs written atomically);
//! - [`report`] and [`eval`]: the report and the checks behind it (test PSNR, pose errors);
//! - [`tools`]: the single-step commands (compress, render, SfM alone, sweep);
//! - [`events`]: what the library reports while it works.
//!
//! The library never prints and never exits: it returns [`PipelineError`] and tells an
//! [`Events`] observer what it is doing (`()` is a silent one).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use spaceport::{pipeline, Device, Input, RunConfig, RunOptions};
//!
//! # fn main() -> Result<(), spaceport::PipelineError> {
//! // The built-in scene's defaults, with a YAML file and one dotted key laid over them.
//! let sets = [splat_core::config::parse_assignment("train.iterations=300")?];
//! let config = RunConfig::load(None, false, &sets)?;
//! let opts = RunOptions {
//!     input: Input::images("photos")?, // or Input::Builtin, Input::colmap("scene")?
//!     out: "my-scene".into(),
//!     config,
//!     device: Device::Auto,
//!     from: None,
//! };
//! // Raise the flag (e.g. from a Ctrl-C handler) to stop training after the current step
//! // with a checkpoint; running again resumes.
//! let stop = AtomicBool::new(false);
//! match pipeline::run(&opts, &stop, &())? {
//!     pipeline::RunOutcome::Finished { report, .. } => println!("{report}"),
//!     pipeline::RunOutcome::Interrupted { message, .. } => eprintln!("{message}"),
//! }
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod eval;
pub mod events;
pub mod job;
pub mod pipeline;
pub mod report;
pub mod tools;
pub mod training;

use std::path::{Path, PathBuf};

pub use config::{CompressConfig, RunConfig, Sort};
pub use events::{Events, Message, Task, TrainStep};
pub use job::{Job, StageName, Status};
pub use pipeline::{Input, RunOptions, RunOutcome};
pub use training::{Device, Resume, TrainOptions, Trained};

/// Errors of the pipeline, each naming the file or stage it concerns.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A configuration file, `--set` assignment or value is invalid.
    #[error(transparent)]
    Config(#[from] splat_core::config::ConfigError),
    /// Structure from motion failed.
    #[error(transparent)]
    Sfm(#[from] sfm_core::pipeline::SfmError),
    /// A COLMAP model cannot be read or written.
    #[error(transparent)]
    Colmap(#[from] sfm_core::colmap::ColmapError),
    /// A scene cannot be loaded.
    #[error(transparent)]
    Scene(#[from] splat_core::scene::SceneError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] splat_core::train::TrainError),
    /// A PLY file cannot be read or written.
    #[error(transparent)]
    Ply(#[from] splat_core::ply::PlyError),
    /// A compute backend failed.
    #[error(transparent)]
    Backend(#[from] splat_core::BackendError),
    /// SOG encoding, decoding or writing failed.
    #[error(transparent)]
    Sog(#[from] sogs_codec::SogError),
    /// A file or folder operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The input or the output folder cannot be used as given.
    #[error("{0}")]
    Invalid(String),
    /// A stage of `spaceport run` failed.
    #[error("stage {stage} failed: {source}")]
    Stage {
        /// The stage.
        stage: StageName,
        /// Why.
        source: Box<PipelineError>,
    },
}

/// Results of this crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl PipelineError {
    /// An I/O error about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        PipelineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Moves `from` over `to`, removing what was at `to` first (both in the output folder, so the
/// rename is atomic for files and quick for folders).
pub fn replace_path(from: &Path, to: &Path) -> Result<()> {
    if to.is_dir() {
        std::fs::remove_dir_all(to).map_err(|e| PipelineError::io(to, e))?;
    } else if to.exists() {
        std::fs::remove_file(to).map_err(|e| PipelineError::io(to, e))?;
    }
    std::fs::rename(from, to).map_err(|e| {
        PipelineError::Invalid(format!(
            "cannot move {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })
}

/// Serialises `value` as JSON for job.json and the report (our own types cannot fail to).
fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
