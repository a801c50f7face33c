//! The controller of `spaceport run`: photos in, trained splat and `.sog` out. It owns the order
//! of the stages (scene -> sfm -> train -> compress -> report), the job manifest that makes a
//! rerun resume, and the final report. The stages' work lives in the library crates.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use splat_core::demo::photos;
use splat_core::scene::{load_scene, Downscale, LoadOptions, Scene};

use crate::config::RunConfig;
use crate::events::Events;
use crate::job::{Job, StageName, Status};
use crate::training::{self, Device, Resume, TrainOptions, Trained};
use crate::{replace_path, to_json, PipelineError, Result};

/// Where the job's input comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// The built-in scene, generated into `input/`.
    Builtin,
    /// A folder of photos.
    Images {
        /// The folder.
        path: PathBuf,
    },
    /// A video file, or a folder holding videos (and perhaps photos), whose frames are
    /// extracted into `input/images`.
    Video {
        /// The file or folder.
        path: PathBuf,
    },
    /// A COLMAP scene folder.
    Colmap {
        /// The folder.
        path: PathBuf,
    },
    /// A NeRF/nerfstudio scene.
    Transforms {
        /// The folder or JSON file.
        path: PathBuf,
    },
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| PipelineError::io(p, e))
}

impl Input {
    /// A folder of photos, a video, or a folder holding videos (an error unless it is one of
    /// those; for videos, also unless FFmpeg is installed).
    pub fn images(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let video = if p.is_file() {
            if !crate::video::is_video(p) {
                return Err(PipelineError::Invalid(format!(
                    "{}: not a folder of photos nor a video ({})",
                    p.display(),
                    crate::video::VIDEO_EXTENSIONS.join(", ")
                )));
            }
            true
        } else if p.is_dir() {
            !crate::video::videos_in(p)?.is_empty()
        } else {
            return Err(PipelineError::Invalid(format!(
                "{}: not a folder of photos",
                p.display()
            )));
        };
        if video {
            crate::video::check_tools()?;
            return Ok(Input::Video { path: absolute(p)? });
        }
        Ok(Input::Images { path: absolute(p)? })
    }

    /// The input the command line names: `--colmap`, `--transforms`, photos or videos, or
    /// (none given) the built-in scene.
    pub fn from_args(
        colmap: Option<&Path>,
        transforms: Option<&Path>,
        images: Option<&Path>,
    ) -> Result<Self> {
        match (colmap, transforms, images) {
            (Some(p), _, _) => Input::colmap(p),
            (_, Some(p), _) => Input::transforms(p),
            (_, _, Some(p)) => Input::images(p),
            _ => Ok(Input::Builtin),
        }
    }

    /// A COLMAP scene folder (images/ + sparse/0).
    pub fn colmap(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Input::Colmap {
            path: absolute(path.as_ref())?,
        })
    }

    /// A NeRF/nerfstudio scene folder or transforms JSON.
    pub fn transforms(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Input::Transforms {
            path: absolute(path.as_ref())?,
        })
    }

    /// The defaults this input starts from (the default preset, not quick).
    pub fn recipe(&self) -> crate::config::Recipe {
        use crate::config::SceneKind;
        let scene = match self {
            Input::Builtin => SceneKind::Builtin,
            Input::Images { .. } | Input::Video { .. } | Input::Colmap { .. } => {
                SceneKind::Captured
            }
            Input::Transforms { .. } => SceneKind::Synthetic,
        };
        crate::config::Recipe {
            scene,
            ..Default::default()
        }
    }

    /// The stages this input goes through, in order.
    pub fn stages(&self) -> Vec<StageName> {
        use StageName::*;
        match self {
            Input::Builtin => vec![Scene, Sfm, Train, Compress, Report],
            Input::Images { .. } => vec![Sfm, Train, Compress, Report],
            Input::Video { .. } => vec![Frames, Sfm, Train, Compress, Report],
            Input::Colmap { .. } | Input::Transforms { .. } => vec![Train, Compress, Report],
        }
    }
}

/// One `spaceport run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The input.
    pub input: Input,
    /// The output folder (job.json, sparse/, images/, point_cloud.ply, scene.sog, report.md).
    pub out: PathBuf,
    /// The settings.
    pub config: RunConfig,
    /// Compute device for training and SfM's descriptor matching.
    pub device: Device,
    /// Rerun from this stage even if it finished before.
    pub from: Option<StageName>,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub enum RunOutcome {
    /// Every stage is done.
    Finished {
        /// `report.md`.
        report: String,
        /// Wall time of this invocation.
        seconds: f64,
    },
    /// Stopped by the flag during `stage`; running again resumes.
    Interrupted {
        /// The stage.
        stage: StageName,
        /// What was kept and how to resume.
        message: String,
    },
}

/// Runs the pipeline: stages that finished before (with the same settings, their artifacts
/// still there) are skipped, training resumes from its checkpoint, and raising `stop` ends
/// training after the current step with a checkpoint.
pub fn run(opts: &RunOptions, stop: &AtomicBool, events: &dyn Events) -> Result<RunOutcome> {
    let (input, out, cfg) = (&opts.input, &opts.out, &opts.config);
    let stages = input.stages();
    crate::ensure_output_dir(out)?;
    let _lock = crate::lock::FolderLock::acquire(out)?;
    let mut job = Job::open(out, input, &stages)?;
    // A changed config section reruns its stage and everything after it.
    let first_reset = opts.from.or_else(|| {
        let changed = stages.iter().copied().find(|&s| {
            job.stage(s).is_some_and(|r| r.status == Status::Done)
                && job.config_section(s) != cfg.section(s)
        })?;
        events.note(&format!(
            "the {changed} settings changed since the last run; rerunning from {changed}"
        ));
        Some(changed)
    });
    if let Some(from) = first_reset {
        if !stages.contains(&from) {
            return Err(PipelineError::Invalid(format!(
                "--from {from}: this input has no {from} stage"
            )));
        }
        job.reset_from(from);
        if from <= StageName::Train {
            let _ = std::fs::remove_dir_all(out.join("train"));
        }
    }
    job.config = to_json(cfg);
    job.save()?;

    let started = Instant::now();
    let mut ctx = Ctx {
        opts,
        events,
        stop,
        scene: None,
    };
    for stage in stages {
        if job.is_done(stage) {
            events.stage_begin(stage, true);
            continue;
        }
        events.stage_begin(stage, false);
        job.begin(stage, &cfg.section(stage))?;
        let t = Instant::now();
        match ctx.run_stage(stage, &job) {
            Ok(StageOutcome::Done { metrics, artifacts }) => {
                job.finish(stage, metrics, artifacts)?;
                events.stage_end(stage, t.elapsed().as_secs_f64());
            }
            Ok(StageOutcome::Interrupted(message)) => {
                job.fail(stage, &message)?;
                return Ok(RunOutcome::Interrupted { stage, message });
            }
            Err(e) => {
                job.fail(stage, &e.to_string())?;
                return Err(PipelineError::Stage {
                    stage,
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(RunOutcome::Finished {
        report: std::fs::read_to_string(out.join("report.md")).unwrap_or_default(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What a stage produced.
enum StageOutcome {
    /// Finished: metrics and artifact paths (relative to the output folder).
    Done {
        /// Stage metrics for job.json and the report.
        metrics: Value,
        /// Files and folders it wrote.
        artifacts: Vec<String>,
    },
    /// Stopped by the flag with what was kept.
    Interrupted(String),
}

/// State shared by the stages of one run.
struct Ctx<'a> {
    opts: &'a RunOptions,
    events: &'a dyn Events,
    stop: &'a AtomicBool,
    /// The training scene, loaded once for training, compression checks and the report.
    scene: Option<Scene>,
}

impl Ctx<'_> {
    fn run_stage(&mut self, stage: StageName, job: &Job) -> Result<StageOutcome> {
        match stage {
            StageName::Scene => self.stage_scene(),
            StageName::Frames => self.stage_frames(),
            StageName::Sfm => self.stage_sfm(),
            StageName::Train => self.stage_train(),
            StageName::Compress => self.stage_compress(),
            StageName::Report => self.stage_report(job),
        }
    }

    fn out(&self) -> &Path {
        &self.opts.out
    }

    fn cfg(&self) -> &RunConfig {
        &self.opts.config
    }

    /// Renders the built-in photos into `input/images` and their true cameras into
    /// `input/ground_truth` (a COLMAP text model).
    fn stage_scene(&mut self) -> Result<StageOutcome> {
        let opt = self.cfg().builtin;
        let tmp = self.out().join(".tmp-input");
        let _ = std::fs::remove_dir_all(&tmp);
        let views = photos::write_photo_set(&tmp.join("images"), &opt)?;
        let truth = crate::eval::ground_truth_model(&views)?;
        let gt_dir = tmp.join("ground_truth");
        std::fs::create_dir_all(&gt_dir).map_err(|e| PipelineError::io(&gt_dir, e))?;
        sfm_core::colmap::write_text(&gt_dir, &truth)?;
        replace_path(&tmp, &self.out().join("input"))?;
        Ok(StageOutcome::Done {
            metrics: json!({ "views": views.len(), "width": opt.width, "height": opt.height }),
            artifacts: vec!["input/images".into(), "input/ground_truth".into()],
        })
    }

    /// Extracts the sharpest frames of the input videos into `input/images`, beside copies of
    /// any photos in the input folder.
    fn stage_frames(&mut self) -> Result<StageOutcome> {
        let Input::Video { path } = &self.opts.input else {
            return Err(PipelineError::Invalid(
                "frames: the input is not a video".into(),
            ));
        };
        let (videos, photos) = if path.is_dir() {
            let photos = crate::video::files_in(path, sfm_core::photo::is_photo_name)?;
            (crate::video::videos_in(path)?, photos)
        } else {
            (vec![path.clone()], Vec::new())
        };
        let tmp = self.out().join(".tmp-frames");
        let _ = std::fs::remove_dir_all(&tmp);
        let images = tmp.join("images");
        let v = &self.cfg().video;
        let events = self.events;
        let got = crate::video::extract_frames(&videos, &images, v.frames, v.max_side, &|d, t| {
            events.progress(crate::events::Task::Frames, "", d as u64, t as u64)
        })?;
        events.progress_end(crate::events::Task::Frames);
        for p in &photos {
            let dst = images.join(p.file_name().unwrap_or_default());
            std::fs::copy(p, &dst).map_err(|e| PipelineError::io(&dst, e))?;
        }
        replace_path(&tmp, &self.out().join("input"))?;
        events.info(&format!(
            "kept the sharpest {} of {} frames from {} video(s){}",
            got.frames,
            got.candidates,
            got.videos,
            if photos.is_empty() {
                String::new()
            } else {
                format!(", plus {} photos", photos.len())
            }
        ));
        let mut metrics = to_json(&got);
        metrics["photos"] = json!(photos.len());
        Ok(StageOutcome::Done {
            metrics,
            artifacts: vec!["input/images".into()],
        })
    }

    fn stage_sfm(&mut self) -> Result<StageOutcome> {
        let out = self.out().to_path_buf();
        let images = match &self.opts.input {
            Input::Images { path } => path.clone(),
            _ => out.join("input/images"),
        };
        let tmp = out.join(".tmp-sfm");
        let _ = std::fs::remove_dir_all(&tmp);
        let report = crate::tools::sfm(
            &self.cfg().sfm,
            self.opts.device,
            &images,
            &tmp,
            self.events,
        )?;
        let mut artifacts = Vec::new();
        for name in ["sparse", "images", "distorted", "sfm_report.json"] {
            if tmp.join(name).exists() {
                replace_path(&tmp.join(name), &out.join(name))?;
                artifacts.push(name.to_string());
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
        let mut metrics = to_json(&report);
        self.events.info(&crate::tools::sfm_summary(&report));
        if matches!(self.opts.input, Input::Builtin) {
            let e = crate::eval::pose_errors(&out.join("sparse/0"), &self.cfg().builtin)?;
            self.events.info(&format!(
                "poses against the true cameras: rotation median {:.3} deg, translation median {:.3} deg, AUC@1/3/5/10 {:.1}/{:.1}/{:.1}/{:.1}",
                e.rotation_median_deg,
                e.translation_median_deg,
                e.auc[0],
                e.auc[1],
                e.auc[2],
                e.auc[3]
            ));
            metrics["pose_errors"] = to_json(&e);
        }
        Ok(StageOutcome::Done { metrics, artifacts })
    }

    fn load_scene(&mut self) -> Result<&Scene> {
        if self.scene.is_none() {
            let cfg = self.cfg();
            let load = LoadOptions {
                background: cfg.train.background.unwrap_or([0.0; 3]),
                downscale: cfg
                    .train_max_side
                    .map(Downscale::MaxSide)
                    .unwrap_or_default(),
                ..Default::default()
            };
            let path = match &self.opts.input {
                Input::Builtin | Input::Images { .. } | Input::Video { .. } => {
                    self.opts.out.clone()
                }
                Input::Colmap { path } | Input::Transforms { path } => path.clone(),
            };
            self.scene = Some(load_scene(path, &load)?);
        }
        Ok(self.scene.as_ref().expect("loaded above"))
    }

    fn stage_train(&mut self) -> Result<StageOutcome> {
        let (events, stop, opts) = (self.events, self.stop, self.opts);
        let work = opts.out.join("train");
        std::fs::create_dir_all(&work).map_err(|e| PipelineError::io(&work, e))?;
        let topts = TrainOptions {
            out: opts.out.clone(),
            checkpoint: work.join("checkpoint.bin"),
            checkpoint_every: opts.config.checkpoint_every,
            resume: Resume::IfPresent,
            final_checkpoint: false,
        };
        let scene = self.load_scene()?;
        events.info(&format!(
            "{}: {} training and {} test views",
            scene.name,
            scene.train.len(),
            scene.test.len()
        ));
        let cfg = opts.config.train.clone();
        let mut compute = training::make_backend(opts.device, &cfg, events)?;
        training::preflight(scene, &cfg, &compute, &opts.out, events)?;
        let backend = compute.backend.as_mut();
        let m = match training::train(scene, cfg, backend, &topts, stop, events)? {
            Trained::Done(m) => m,
            Trained::Interrupted {
                iteration,
                checkpoint,
            } => {
                return Ok(StageOutcome::Interrupted(format!(
                    "interrupted at iteration {iteration}: checkpoint in {}; run the same command again to resume",
                    checkpoint.display()
                )))
            }
        };
        let _ = std::fs::remove_dir_all(&work);
        events.info(&crate::tools::train_summary(&m));
        let mut metrics = to_json(&m);
        if let Some(o) = metrics.as_object_mut() {
            o.remove("config");
        }
        Ok(StageOutcome::Done {
            metrics,
            artifacts: training::OUTPUTS.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn stage_compress(&mut self) -> Result<StageOutcome> {
        let events = self.events;
        let (ply, sog) = (
            self.out().join("point_cloud.ply"),
            self.out().join("scene.sog"),
        );
        let c = self.cfg().compress.clone();
        let scene = self.load_scene()?;
        let s = crate::tools::compress_for_scene(&ply, &sog, &c, scene, events)?;
        events.info(&format!(
            "{}; test PSNR {:.2} -> {:.2} dB",
            s.sizes, s.test_psnr_ply, s.test_psnr_sog
        ));
        Ok(StageOutcome::Done {
            metrics: to_json(&s),
            artifacts: vec!["scene.sog".into()],
        })
    }

    fn stage_report(&mut self, job: &Job) -> Result<StageOutcome> {
        let out = self.out().to_path_buf();
        let scene = self.load_scene()?;
        let picture = crate::report::side_by_side(scene, &out.join("renders"), 4)?;
        splat_core::scene::save_png(out.join("report.png"), &picture)?;
        let report = crate::report::summary(job);
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        splat_core::train::write_atomic(&out.join("report.json"), &json)?;
        let md = crate::report::markdown(&report);
        splat_core::train::write_atomic(&out.join("report.md"), md.as_bytes())?;
        // The same report as one HTML file with the viewer on scene.sog, openable from disk.
        spaceport_view::report::write_report_html(&out)?;
        Ok(StageOutcome::Done {
            metrics: Value::Null,
            artifacts: vec![
                "report.json".into(),
                "report.md".into(),
                "report.png".into(),
                "report.html".into(),
            ],
        })
    }
}
