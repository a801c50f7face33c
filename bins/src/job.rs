//! The job manifest `job.json`: per stage its status, times, metrics, artifacts and the config
//! it ran with. It is rewritten atomically after every change so that a killed run leaves a
//! manifest that says exactly which stages finished.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{PipelineError, Result};

/// Pipeline stages in their order.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    /// Generate the built-in scene's photos.
    Scene,
    /// Extract frames from video input.
    Frames,
    /// Structure from motion.
    Sfm,
    /// Gaussian training.
    Train,
    /// SOG compression.
    Compress,
    /// report.json, report.md, report.png.
    Report,
}

impl StageName {
    /// The name used in job.json and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Scene => "scene",
            StageName::Frames => "frames",
            StageName::Sfm => "sfm",
            StageName::Train => "train",
            StageName::Compress => "compress",
            StageName::Report => "report",
        }
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not started (or reset by `--from` or a changed config).
    Pending,
    /// Started and not finished: the process is running or was killed.
    Running,
    /// Finished; its artifacts are complete.
    Done,
    /// Failed or interrupted; `error` says why.
    Failed,
}

/// One stage's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageRecord {
    /// Stage.
    pub name: StageName,
    /// Status.
    pub status: Status,
    /// Start time (UTC, ISO 8601) of the last attempt.
    pub started: Option<String>,
    /// End time (UTC, ISO 8601) of the last attempt.
    pub finished: Option<String>,
    /// Wall time of the last attempt in seconds.
    pub seconds: Option<f64>,
    /// Stage metrics (registered images, PSNR, sizes, ...).
    pub metrics: Value,
    /// Files and folders written, relative to the output folder.
    pub artifacts: Vec<String>,
    /// The error of a failed attempt.
    pub error: Option<String>,
    /// The config section the stage last ran with.
    pub config: Value,
}

/// The manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    /// Format version.
    pub version: u32,
    /// Where the input comes from.
    pub input: Value,
    /// The effective configuration (set by the controller before the first stage runs).
    pub config: Value,
    /// Stages in order.
    pub stages: Vec<StageRecord>,
    #[serde(skip)]
    path: PathBuf,
    #[serde(skip)]
    started_at: Option<std::time::Instant>,
}

impl Job {
    /// Opens `out/job.json`, or starts a new one; a manifest for another input is an error,
    /// so that two jobs never mix their artifacts.
    pub fn open<I: Serialize>(out: &Path, input: &I, stages: &[StageName]) -> Result<Self> {
        let path = out.join("job.json");
        let input = crate::to_json(input);
        let bad = |m: String| PipelineError::Invalid(format!("{}{m}", path.display()));
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| PipelineError::io(&path, e))?;
            let mut job: Job = serde_json::from_str(&text)
                .map_err(|e| bad(format!(" is not a spaceport job manifest: {e}")))?;
            if job.input != input {
                return Err(bad(format!(
                    " belongs to a job with another input ({}); use another --out or remove it",
                    job.input
                )));
            }
            let names: Vec<StageName> = job.stages.iter().map(|s| s.name).collect();
            if names != stages {
                return Err(bad(format!(": unexpected stage list {names:?}")));
            }
            job.path = path;
            return Ok(job);
        }
        Ok(Job {
            version: 1,
            input,
            config: Value::Null,
            stages: stages
                .iter()
                .map(|&name| StageRecord {
                    name,
                    status: Status::Pending,
                    started: None,
                    finished: None,
                    seconds: None,
                    metrics: Value::Null,
                    artifacts: Vec::new(),
                    error: None,
                    config: Value::Null,
                })
                .collect(),
            path,
            started_at: None,
        })
    }

    /// The record of `stage`.
    pub fn stage(&self, stage: StageName) -> Option<&StageRecord> {
        self.stages.iter().find(|s| s.name == stage)
    }

    fn stage_mut(&mut self, stage: StageName) -> &mut StageRecord {
        self.stages
            .iter_mut()
            .find(|s| s.name == stage)
            .expect("stage list fixed at open")
    }

    /// The config section `stage` last ran with.
    pub fn config_section(&self, stage: StageName) -> Value {
        self.stage(stage)
            .map(|s| s.config.clone())
            .unwrap_or(Value::Null)
    }

    /// Whether `stage` finished and its artifacts still exist.
    pub fn is_done(&self, stage: StageName) -> bool {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        self.stage(stage).is_some_and(|s| {
            s.status == Status::Done && s.artifacts.iter().all(|a| dir.join(a).exists())
        })
    }

    /// Marks `from` and every later stage pending.
    pub fn reset_from(&mut self, from: StageName) {
        for s in self.stages.iter_mut().filter(|s| s.name >= from) {
            s.status = Status::Pending;
            s.error = None;
        }
    }

    /// Records the start of `stage`.
    pub fn begin(&mut self, stage: StageName, config: &Value) -> Result<()> {
        self.started_at = Some(std::time::Instant::now());
        let s = self.stage_mut(stage);
        s.status = Status::Running;
        s.started = Some(now_rfc3339());
        s.finished = None;
        s.seconds = None;
        s.error = None;
        s.config = config.clone();
        self.save()
    }

    /// Records the successful end of `stage`.
    pub fn finish(
        &mut self,
        stage: StageName,
        metrics: Value,
        artifacts: Vec<String>,
    ) -> Result<()> {
        let s = self.end(stage, Status::Done);
        s.metrics = metrics;
        s.artifacts = artifacts;
        self.save()
    }

    /// Records the failure of `stage`.
    pub fn fail(&mut self, stage: StageName, error: &str) -> Result<()> {
        self.end(stage, Status::Failed).error = Some(error.to_string());
        self.save()
    }

    /// Stamps the end of the attempt begun by [`Job::begin`] with `status`.
    fn end(&mut self, stage: StageName, status: Status) -> &mut StageRecord {
        let secs = self.started_at.map(|t| t.elapsed().as_secs_f64());
        let s = self.stage_mut(stage);
        s.status = status;
        s.finished = Some(now_rfc3339());
        s.seconds = secs;
        s
    }

    /// Writes the manifest atomically.
    pub fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| PipelineError::Invalid(format!("{}: {e}", self.path.display())))?;
        splat_core::train::write_atomic(&self.path, &bytes)?;
        Ok(())
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, whole seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_seconds() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2026-11-26T13:33:20Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        let parsed = humantime::parse_rfc3339(&t).expect("parses back");
        let age = std::time::SystemTime::now()
            .duration_since(parsed)
            .expect("not future");
        assert!(age.as_secs() < 5);
    }

    #[test]
    fn a_manifest_resets_later_stages_and_refuses_another_input() {
        let dir = std::env::temp_dir().join(format!("spaceport-job-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stages = [StageName::Sfm, StageName::Train, StageName::Report];
        let mut job = Job::open(&dir, &"a", &stages).unwrap();
        for s in stages {
            job.begin(s, &Value::Null).unwrap();
            job.finish(s, Value::Null, vec![]).unwrap();
        }
        let mut job = Job::open(&dir, &"a", &stages).unwrap();
        assert!(stages.iter().all(|&s| job.is_done(s)));
        job.reset_from(StageName::Train);
        assert!(job.is_done(StageName::Sfm) && !job.is_done(StageName::Train));
        let err = Job::open(&dir, &"b", &stages).unwrap_err().to_string();
        assert!(err.contains("another input"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
