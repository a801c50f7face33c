//! `spaceport run`: photos in, trained splat and `.sog` out. This is the controller: it owns the
//! order of the stages (scene -> sfm -> train -> compress -> report), the job manifest that
//! makes a rerun resume, and the final report. The stages themselves live in the library crates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use splat_core::demo::photos::{self, PhotoSetOptions};
use splat_core::scene::{load_scene, Downscale, LoadOptions, Scene};
use splat_core::train::{checkpoint, StopReason, TrainConfig, Trainer};

use crate::job::{Job, StageName, Status};
use crate::train_cmd::{make_backend, Device};
use crate::AnyResult;

/// Arguments of `spaceport run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Folder of photos; leave out to run on the built-in scene.
    images: Option<PathBuf>,
    /// Output folder (job.json, sparse/, images/, point_cloud.ply, scene.sog, renders/, report.md).
    #[arg(long, default_value = "spaceport-out")]
    out: PathBuf,
    /// Start from an existing COLMAP scene (images/ + sparse/0), skipping SfM.
    #[arg(long, conflicts_with_all = ["images", "transforms"])]
    colmap: Option<PathBuf>,
    /// Start from a NeRF/nerfstudio scene (folder or transforms JSON), skipping SfM.
    #[arg(long, conflicts_with = "images")]
    transforms: Option<PathBuf>,
    /// YAML with any of the sections `builtin`, `sfm`, `train`, `compress` (see --dump-config).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Compute device for training.
    #[arg(long, value_enum, default_value = "auto")]
    device: Device,
    /// Rerun from this stage even if it finished before.
    #[arg(long, value_enum)]
    from: Option<StageName>,
    /// Training iterations (overrides the config).
    #[arg(long)]
    iters: Option<usize>,
    /// Train on images shrunk so that their longer side is at most this (overrides the config).
    #[arg(long)]
    max_side: Option<u32>,
    /// A smaller built-in scene and a shorter training run (for CI and quick checks).
    #[arg(long)]
    quick: bool,
    /// Print the effective configuration as YAML and exit.
    #[arg(long)]
    dump_config: bool,
}

/// Compression settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompressConfig {
    /// SH bands above DC to keep (`null`: all).
    pub sh_bands: Option<usize>,
    /// Texel layout: hilbert, morton or plas.
    pub sort: crate::codec_cmd::Sort,
    /// Seed of the encoder's random choices.
    pub seed: u64,
}

/// Everything `spaceport run` can be told, one section per stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// The built-in scene (used only without input).
    pub builtin: PhotoSetOptions,
    /// Structure from motion.
    pub sfm: sfm_core::pipeline::SfmOptions,
    /// Training.
    pub train: TrainConfig,
    /// Train on images shrunk so that their longer side is at most this (`null`: as given).
    pub train_max_side: Option<u32>,
    /// Write a training checkpoint every this many iterations, so a killed run resumes.
    pub checkpoint_every: usize,
    /// Compression.
    pub compress: CompressConfig,
}

impl RunConfig {
    /// Defaults; `quick` shrinks the built-in scene and the training run.
    pub fn defaults(quick: bool) -> Self {
        let (width, height, views, iters) = if quick {
            (200, 150, 24, 500)
        } else {
            (320, 240, 36, 2000)
        };
        let mut train = TrainConfig::default();
        train.iterations = iters;
        // The built-in scene is small and its photos are sharp: a schedule laid out for 1.5x the
        // iterations (densify from 1/10, every 1/20, until the end; SH bands every third),
        // measured better than one for the exact count (25.9 vs 25.5 dB, 64k vs 72k Gaussians).
        let span = iters * 3 / 2;
        train.densify.from = (span / 15).max(50);
        train.densify.interval = (span / 30).clamp(25, 100);
        train.densify.until = iters;
        train.densify.opacity_reset_interval = (span / 3).max(200);
        train.sh_degree_interval = (span / 6).max(100);
        train.plateau.enabled = false;
        // Twice the paper's gradient threshold: at these image sizes the default grows three
        // times more Gaussians for no test-view gain (measured on the built-in scene).
        train.densify.grad_threshold = 0.0004;
        let mut sfm = sfm_core::pipeline::SfmOptions::default();
        // Few, small photos: the undistorted images are written as PNG-quality inputs anyway.
        sfm.max_image_size = 1600;
        Self {
            builtin: PhotoSetOptions {
                width,
                height,
                views,
                samples: 3,
            },
            sfm,
            train,
            train_max_side: None,
            checkpoint_every: (iters / 6).max(100),
            compress: CompressConfig {
                sh_bands: None,
                sort: crate::codec_cmd::Sort::Hilbert,
                seed: 0,
            },
        }
    }

    /// The defaults overlaid with the YAML in `path` (keys it leaves out keep their defaults;
    /// unknown keys are an error naming the key).
    pub fn load(path: Option<&Path>, quick: bool) -> AnyResult<Self> {
        let base = Self::defaults(quick);
        let Some(path) = path else {
            return Ok(base);
        };
        let cfg = crate::config::load_over(&base, path)?;
        cfg.train
            .validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// The config section a stage depends on, to detect a changed config on resume.
    fn section(&self, stage: StageName) -> Value {
        match stage {
            StageName::Scene => json!(self.builtin),
            StageName::Sfm => json!(self.sfm),
            StageName::Train => json!([self.train, self.train_max_side, self.checkpoint_every]),
            StageName::Compress => json!(self.compress),
            StageName::Report => Value::Null,
        }
    }
}

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

impl Input {
    /// The stages this input goes through.
    fn stages(&self) -> Vec<StageName> {
        use StageName::*;
        match self {
            Input::Builtin => vec![Scene, Sfm, Train, Compress, Report],
            Input::Images { .. } => vec![Sfm, Train, Compress, Report],
            Input::Colmap { .. } | Input::Transforms { .. } => vec![Train, Compress, Report],
        }
    }
}

fn absolute(p: &Path) -> AnyResult<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()).into())
}

/// Runs `spaceport run`.
pub fn run(args: RunArgs) -> AnyResult<ExitCode> {
    let cfg = {
        let mut c = RunConfig::load(args.config.as_deref(), args.quick)?;
        if let Some(n) = args.iters {
            c.train.iterations = n;
        }
        if args.max_side.is_some() {
            c.train_max_side = args.max_side;
        }
        c
    };
    if args.dump_config {
        print!("{}", serde_yaml::to_string(&cfg)?);
        return Ok(ExitCode::SUCCESS);
    }
    let input = if let Some(p) = &args.colmap {
        Input::Colmap { path: absolute(p)? }
    } else if let Some(p) = &args.transforms {
        Input::Transforms { path: absolute(p)? }
    } else if let Some(p) = &args.images {
        if !p.is_dir() {
            return Err(format!("{}: not a folder of photos", p.display()).into());
        }
        Input::Images { path: absolute(p)? }
    } else {
        Input::Builtin
    };
    let out = args.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut job = Job::open(&out, &input, &input.stages())?;
    // A changed config section reruns its stage and everything after it.
    let first_reset = args.from.or_else(|| {
        let changed = input.stages().into_iter().find(|&s| {
            job.stage(s).is_some_and(|r| r.status == Status::Done)
                && job.config_section(s) != cfg.section(s)
        })?;
        eprintln!(
            "note: the {changed} settings changed since the last run; rerunning from {changed}"
        );
        Some(changed)
    });
    if let Some(from) = first_reset {
        if !input.stages().contains(&from) {
            return Err(format!("--from {from}: this input has no {from} stage").into());
        }
        job.reset_from(from);
        if from <= StageName::Train {
            let _ = std::fs::remove_dir_all(out.join("train"));
        }
    }
    job.config = serde_json::to_value(&cfg)?;
    job.save()?;

    let started = Instant::now();
    let mut ctx = Ctx {
        out: out.clone(),
        input: input.clone(),
        cfg,
        device: args.device,
        scene: None,
    };
    for stage in input.stages() {
        if job.is_done(stage) {
            eprintln!("[{stage}] done earlier, skipped");
            continue;
        }
        eprintln!("[{stage}] running");
        job.begin(stage, &ctx.cfg.section(stage))?;
        let t = Instant::now();
        match ctx.run_stage(stage, &job) {
            Ok(StageOutcome::Done { metrics, artifacts }) => {
                job.finish(stage, metrics, artifacts)?;
                eprintln!("[{stage}] done in {:.1} s", t.elapsed().as_secs_f64());
            }
            Ok(StageOutcome::Interrupted(msg)) => {
                job.fail(stage, &msg)?;
                eprintln!("{msg}");
                return Ok(ExitCode::from(130));
            }
            Err(e) => {
                job.fail(stage, &e.to_string())?;
                return Err(format!("stage {stage} failed: {e}").into());
            }
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    println!("{report}");
    println!(
        "finished in {:.1} s -> {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
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
    /// Stopped by Ctrl-C with what was kept.
    Interrupted(String),
}

/// State shared by the stages of one run.
struct Ctx {
    out: PathBuf,
    input: Input,
    cfg: RunConfig,
    device: Device,
    /// The training scene, loaded once for training, compression checks and the report.
    scene: Option<Scene>,
}

impl Ctx {
    fn run_stage(&mut self, stage: StageName, job: &Job) -> AnyResult<StageOutcome> {
        match stage {
            StageName::Scene => self.stage_scene(),
            StageName::Sfm => self.stage_sfm(),
            StageName::Train => self.stage_train(),
            StageName::Compress => self.stage_compress(),
            StageName::Report => self.stage_report(job),
        }
    }

    /// Renders the built-in photos into `input/images` and their true cameras into
    /// `input/ground_truth` (a COLMAP text model).
    fn stage_scene(&mut self) -> AnyResult<StageOutcome> {
        let opt = self.cfg.builtin;
        let tmp = self.out.join(".tmp-input");
        let _ = std::fs::remove_dir_all(&tmp);
        let views = photos::write_photo_set(&tmp.join("images"), &opt)?;
        let truth = ground_truth_model(&views);
        let gt_dir = tmp.join("ground_truth");
        std::fs::create_dir_all(&gt_dir)?;
        sfm_core::colmap::write_text(&gt_dir, &truth)?;
        replace_path(&tmp, &self.out.join("input"))?;
        Ok(StageOutcome::Done {
            metrics: json!({ "views": views.len(), "width": opt.width, "height": opt.height }),
            artifacts: vec!["input/images".into(), "input/ground_truth".into()],
        })
    }

    fn images_dir(&self) -> PathBuf {
        match &self.input {
            Input::Images { path } => path.clone(),
            _ => self.out.join("input/images"),
        }
    }

    fn stage_sfm(&mut self) -> AnyResult<StageOutcome> {
        let tmp = self.out.join(".tmp-sfm");
        let _ = std::fs::remove_dir_all(&tmp);
        let report = crate::run_sfm(&self.cfg.sfm, &self.images_dir(), &tmp)?;
        let mut artifacts = Vec::new();
        for name in ["sparse", "images", "distorted", "sfm_report.json"] {
            if tmp.join(name).exists() {
                replace_path(&tmp.join(name), &self.out.join(name))?;
                artifacts.push(name.to_string());
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
        let mut metrics = serde_json::to_value(&report)?;
        eprintln!(
            "registered {}/{} images, {} points, mean reprojection error {:.3} px",
            report.registered_images,
            report.num_images,
            report.num_points,
            report.mean_reprojection_error
        );
        if matches!(self.input, Input::Builtin) {
            let errors = self.pose_errors()?;
            eprintln!(
                "poses against the true cameras: rotation median {:.3} deg, translation median {:.3} deg, AUC@1/3/5/10 {:.1}/{:.1}/{:.1}/{:.1}",
                errors.rotation_median_deg,
                errors.translation_median_deg,
                errors.auc[0],
                errors.auc[1],
                errors.auc[2],
                errors.auc[3]
            );
            metrics["pose_errors"] = serde_json::to_value(&errors)?;
        }
        Ok(StageOutcome::Done { metrics, artifacts })
    }

    /// Relative-pose errors of `sparse/0` against the built-in scene's true cameras (images
    /// that did not register count as missing pairs, not as errors; the report names them).
    fn pose_errors(&self) -> AnyResult<sfm_core::eval::PoseErrors> {
        let est = sfm_core::colmap::read(self.out.join("sparse/0"))?;
        let truth = photos::photo_cameras(&self.cfg.builtin);
        let mut e = Vec::new();
        let mut g = Vec::new();
        for im in &est.images {
            if let Some(v) = truth.iter().find(|v| v.name == im.name) {
                e.push(sfm_core::eval::Pose {
                    rotation: im.rotation(),
                    translation: glam::DVec3::from_array(im.tvec),
                });
                g.push(sfm_core::eval::Pose {
                    rotation: v.camera.rotation,
                    translation: v.camera.translation,
                });
            }
        }
        sfm_core::eval::relative_pose_errors(&e, &g)
            .ok_or_else(|| "fewer than two registered images to compare".into())
    }

    /// The folder or file the trainer reads.
    fn scene_path(&self) -> PathBuf {
        match &self.input {
            Input::Builtin | Input::Images { .. } => self.out.clone(),
            Input::Colmap { path } | Input::Transforms { path } => path.clone(),
        }
    }

    fn load_scene(&mut self) -> AnyResult<&Scene> {
        if self.scene.is_none() {
            let load = LoadOptions {
                background: self.cfg.train.background.unwrap_or([0.0; 3]),
                downscale: self
                    .cfg
                    .train_max_side
                    .map(Downscale::MaxSide)
                    .unwrap_or_default(),
                ..Default::default()
            };
            self.scene = Some(load_scene(self.scene_path(), &load)?);
        }
        Ok(self.scene.as_ref().expect("loaded above"))
    }

    fn stage_train(&mut self) -> AnyResult<StageOutcome> {
        let device = self.device;
        let every = self.cfg.checkpoint_every;
        let cfg = self.cfg.train.clone();
        let work = self.out.join("train");
        std::fs::create_dir_all(&work)?;
        let ckpt = work.join("checkpoint.bin");
        let out = self.out.clone();
        let scene = self.load_scene()?;
        eprintln!(
            "{}: {} training and {} test views",
            scene.name,
            scene.train.len(),
            scene.test.len()
        );
        let mut backend = make_backend(device)?;
        let mut trainer = if ckpt.exists() {
            let t = checkpoint::load(&ckpt, scene, backend.as_mut())?;
            eprintln!("resuming training at iteration {}", t.state.iteration);
            t
        } else {
            Trainer::new(scene, cfg, backend.as_mut())?
        };
        let stop = Arc::new(AtomicBool::new(false));
        crate::train_cmd::install_ctrlc(&stop);
        let reason = crate::train_cmd::drive(&mut trainer, &ckpt, every, &stop)?;
        if reason == StopReason::Interrupted {
            checkpoint::save(&mut trainer, &ckpt)?;
            return Ok(StageOutcome::Interrupted(format!(
                "interrupted at iteration {}: checkpoint in {}; run the same command again to resume",
                trainer.state.iteration,
                ckpt.display()
            )));
        }
        let tmp = out.join(".tmp-train");
        let _ = std::fs::remove_dir_all(&tmp);
        let m = trainer.write_outputs(&tmp, reason)?;
        for name in ["point_cloud.ply", "renders", "metrics.json"] {
            replace_path(&tmp.join(name), &out.join(name))?;
        }
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_dir_all(&work);
        eprintln!(
            "{} iterations on {} in {:.1} s: {} Gaussians, test PSNR {:.2} dB, SSIM {:.4}",
            m.iterations, m.backend, m.train_seconds, m.gaussians, m.test.psnr, m.test.ssim
        );
        let mut metrics = serde_json::to_value(&m)?;
        if let Some(o) = metrics.as_object_mut() {
            o.remove("config");
        }
        Ok(StageOutcome::Done {
            metrics,
            artifacts: vec![
                "point_cloud.ply".into(),
                "renders".into(),
                "metrics.json".into(),
            ],
        })
    }

    fn stage_compress(&mut self) -> AnyResult<StageOutcome> {
        let ply = self.out.join("point_cloud.ply");
        let sog = self.out.join("scene.sog");
        let g = splat_core::ply::read_ply(&ply)?;
        let sort = self.cfg.compress.sort.mode();
        let (sh_bands, seed) = (self.cfg.compress.sh_bands, self.cfg.compress.seed);
        let scene = self.load_scene()?;
        // The SH palette is fitted where the capture looks: weight it by how much each
        // Gaussian shows from (a sample of) the training cameras, not from virtual ones.
        let palette_weights = (g.sh_degree > 0 && sh_bands != Some(0)).then(|| {
            let step = scene.train.len().div_ceil(PALETTE_WEIGHT_VIEWS).max(1);
            let cams: Vec<splat_core::Camera> = scene
                .train
                .iter()
                .step_by(step)
                .map(|v| {
                    let (w, h) = Downscale::MaxSide(PALETTE_WEIGHT_SIZE)
                        .target_size(v.camera.width, v.camera.height);
                    v.camera.scaled_to(w, h)
                })
                .collect();
            sogs_codec::importance::blending_weights(&g, &cams, &mut |_, _| {})
        });
        let opts = sogs_codec::EncodeOptions {
            sh_bands,
            sort,
            seed,
            palette_weights,
            ..Default::default()
        };
        let t = Instant::now();
        let files = crate::codec_cmd::encode(&g, &opts)?;
        sogs_codec::write_sog_bundle(&files, &sog)?;
        let seconds = t.elapsed().as_secs_f64();
        let ply_bytes = std::fs::metadata(&ply)?.len();
        let sog_bytes = std::fs::metadata(&sog)?.len();
        // Quality after compression: the decoded file rendered from the test views.
        let decoded = sogs_codec::read_sog(&sog)?;
        let (psnr_ply, psnr_sog) = (test_psnr(&g, scene), test_psnr(&decoded, scene));
        eprintln!(
            "{} Gaussians: {ply_bytes} B PLY -> {sog_bytes} B SOG ({:.1}x) in {seconds:.1} s; test PSNR {psnr_ply:.2} -> {psnr_sog:.2} dB",
            g.len(),
            ply_bytes as f64 / sog_bytes.max(1) as f64
        );
        Ok(StageOutcome::Done {
            metrics: json!({
                "gaussians": g.len(),
                "ply_bytes": ply_bytes,
                "sog_bytes": sog_bytes,
                "ratio": ply_bytes as f64 / sog_bytes.max(1) as f64,
                "seconds": seconds,
                "test_psnr_ply": psnr_ply,
                "test_psnr_sog": psnr_sog,
                "psnr_views": scene.test.len().max(1).min(PSNR_CHECK_VIEWS),
            }),
            artifacts: vec!["scene.sog".into()],
        })
    }

    fn stage_report(&mut self, job: &Job) -> AnyResult<StageOutcome> {
        let out = self.out.clone();
        let scene = self.load_scene()?;
        let picture = crate::report::side_by_side(scene, &out.join("renders"), 4)?;
        let png = out.join("report.png");
        splat_core::scene::save_png(&png, &picture)?;
        let report = crate::report::summary(job);
        let json_path = out.join("report.json");
        splat_core::train::write_atomic(&json_path, &serde_json::to_vec_pretty(&report)?)?;
        let md = crate::report::markdown(&report);
        splat_core::train::write_atomic(&out.join("report.md"), md.as_bytes())?;
        Ok(StageOutcome::Done {
            metrics: Value::Null,
            artifacts: vec![
                "report.json".into(),
                "report.md".into(),
                "report.png".into(),
            ],
        })
    }
}

/// Training views (at most) that weight the SH palette, and their longer side in pixels.
const PALETTE_WEIGHT_VIEWS: usize = 24;
const PALETTE_WEIGHT_SIZE: u32 = 256;

/// Test views rendered for the compression check (the CPU renderer takes seconds per view on
/// large scenes; the first few views are enough to compare before and after).
const PSNR_CHECK_VIEWS: usize = 8;

/// Mean PSNR of `g` over the scene's first test views, rendered on the CPU reference renderer.
fn test_psnr(g: &splat_core::Gaussians, scene: &Scene) -> f64 {
    let opts = splat_core::RenderOptions {
        background: scene.background,
        ..Default::default()
    };
    let views = if scene.test.is_empty() {
        &scene.train
    } else {
        &scene.test
    };
    let views = &views[..views.len().min(PSNR_CHECK_VIEWS)];
    let sum: f64 = views
        .iter()
        .map(|v| {
            let out = splat_core::render(g, &v.camera, &opts);
            splat_core::loss::psnr(&out.image, &v.image.data) as f64
        })
        .sum();
    sum / views.len().max(1) as f64
}

/// The true cameras as a COLMAP model (one PINHOLE camera, no points).
fn ground_truth_model(views: &[photos::PhotoView]) -> sfm_core::colmap::Reconstruction {
    use sfm_core::colmap::{Camera, CameraModel, Image, Reconstruction};
    let c = &views[0].camera;
    let camera = Camera::new(
        1,
        CameraModel::Pinhole,
        c.width as u64,
        c.height as u64,
        vec![c.fx, c.fy, c.cx, c.cy],
    )
    .expect("PINHOLE takes four parameters");
    let images = views
        .iter()
        .enumerate()
        .map(|(i, v)| Image {
            id: i as u32 + 1,
            qvec: sfm_core::colmap::qvec_from_rotation(&v.camera.rotation),
            tvec: v.camera.translation.to_array(),
            camera_id: 1,
            name: v.name.clone(),
            points2d: Vec::new(),
        })
        .collect();
    Reconstruction {
        cameras: vec![camera],
        images,
        points3d: Vec::new(),
    }
}

/// Moves `from` over `to`, removing what was at `to` first (both in the output folder, so the
/// rename is atomic for files and quick for folders).
fn replace_path(from: &Path, to: &Path) -> AnyResult<()> {
    if to.is_dir() {
        std::fs::remove_dir_all(to).map_err(|e| format!("cannot replace {}: {e}", to.display()))?;
    } else if to.exists() {
        std::fs::remove_file(to).map_err(|e| format!("cannot replace {}: {e}", to.display()))?;
    }
    std::fs::rename(from, to)
        .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()).into())
}

/// The `--from` values, printable.
impl ValueEnum for StageName {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            StageName::Scene,
            StageName::Sfm,
            StageName::Train,
            StageName::Compress,
            StageName::Report,
        ]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}
