//! The spaceport pipeline as a library: photos -> structure from motion -> 3D Gaussian training
//! -> SOG compression -> report, resumable through a job manifest.
//!
//! The `spaceport` command line is a thin layer over this crate: it parses arguments, turns
//! [`Events`] into progress bars and messages, and prints errors. Everything else lives here:
//!
//! - [`args`]: the command line's grammar (clap) and how it resolves into the options below;
//! - [`pipeline`]: the controller: [`Input`], the stage graph and its order, one function per
//!   stage, [`pipeline::run`];
//! - [`job`]: the job manifest `job.json` (per stage status, times, metrics, artifacts);
//! - [`config`]: [`RunConfig`], the schema of every setting, one section per stage;
//! - [`training`]: the one training driver `spaceport run` and `spaceport train` share
//!   (resume from a checkpoint, stop flag, periodic checkpoints, outputs written atomically);
//! - [`report`] and [`eval`]: the report and the checks behind it (test PSNR, pose errors);
//! - [`tools`]: the single-step commands (compress, render, SfM alone, sweep);
//! - [`events`]: what the library reports while it works; [`live`] also feeds it to the
//!   browser page of `--view`.
//!
//! The library never prints and never exits: it returns [`PipelineError`] and tells an
//! [`Events`] observer what it is doing (`()` is a silent one).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use spaceport::{pipeline, Device, Input, Preset, Recipe, RunConfig, RunOptions};
//!
//! # fn main() -> Result<(), spaceport::PipelineError> {
//! // A folder of photos (or Input::Builtin, Input::colmap("scene")?), with the defaults of
//! // its kind of scene and preset, and one dotted key laid over them.
//! let input = Input::images("photos")?;
//! let recipe = Recipe { preset: Preset::Fast, ..input.recipe() };
//! let sets = [splat_core::config::parse_assignment("train.densify.max_gaussians=500000")?];
//! let config = RunConfig::load(&recipe, None, &sets)?;
//! let opts = RunOptions {
//!     input,
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

pub mod args;
pub mod config;
pub mod estimate;
pub mod eval;
pub mod events;
pub mod job;
pub mod live;
pub mod lock;
pub mod pipeline;
pub mod report;
pub mod tools;
pub mod training;
pub mod video;

use std::path::{Path, PathBuf};

pub use config::{CompressConfig, Preset, Recipe, RunConfig, SceneKind, Sort};
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
    Sfm(#[from] sfm_core::SfmError),
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
    /// The viewer cannot open, serve or write what it was given.
    #[error(transparent)]
    View(#[from] spaceport_view::ViewError),
    /// A file or folder operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Training produced a non-finite loss and was stopped.
    #[error("training diverged: the loss was not finite at iteration {iteration}; {kept} (lower the learning rates, e.g. --set train.lr.opacity=..., or start from other settings)")]
    Diverged {
        /// The iteration whose loss was not finite.
        iteration: usize,
        /// What was kept ("the checkpoint of iteration N in PATH is kept").
        kept: String,
    },
    /// The output folder is in use by another run.
    #[error("{}: in use by another spaceport run (pid {pid}); wait for it to finish or use another --out", path.display())]
    Locked {
        /// The folder.
        path: PathBuf,
        /// The process holding it.
        pid: u32,
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

/// Creates `dir` and checks that it takes files, before long work that writes there.
pub fn ensure_output_dir(dir: &Path) -> Result<()> {
    spaceport_io::ensure_writable_dir(dir).map_err(|e| {
        PipelineError::Invalid(format!(
            "cannot write to the output folder {}: {}",
            dir.display(),
            e.source
        ))
    })
}

/// Moves the finished `from` over `to` (both in the output folder): the old `to` stays in place
/// until the new one is, so a failure or Ctrl-C never leaves `to` missing.
pub fn replace_path(from: &Path, to: &Path) -> Result<()> {
    spaceport_io::replace_dir(from, to).map_err(|e| {
        PipelineError::Invalid(format!(
            "cannot move {} to {}: {}",
            from.display(),
            to.display(),
            e.source
        ))
    })
}

/// Serialises `value` as JSON for job.json and the report (our own types cannot fail to).
fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
