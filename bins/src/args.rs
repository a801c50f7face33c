//! The command line's grammar as a schema: every subcommand's arguments (clap derive) and how
//! they resolve into this library's options, so that the binary only parses and prints and
//! another front end (or a test) gets the same meaning from the same arguments.
//!
//! Named flags that change a setting are shorthands for `--set KEY=VALUE` and go through the
//! same overlay as config files (applied after them), so the config structs stay the one schema.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_yaml::Value;
use splat_core::config::{flag_assignment as set, parse_assignment};
use splat_core::train::TrainConfig;

use crate::tools::SogFormat;
use crate::training::TrainJob;
use crate::{Device, Input, PipelineError, Preset, Recipe, RunConfig, RunOptions, Sort, StageName};

/// `spaceport`: the command line.
#[derive(Parser)]
#[command(
    name = "spaceport",
    version,
    about = "Photos to a trained, compressed 3D Gaussian Splatting scene"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Photos in, trained splat and .sog out: sfm -> train -> compress -> report, resumable
    /// (job.json). With no input it runs on the built-in scene.
    Run(RunArgs),
    /// Render Gaussians to a PNG: a PLY file, or the built-in demo scene when none is given.
    Render(RenderArgs),
    /// Train a 3DGS scene from posed images (COLMAP or NeRF/nerfstudio transforms).
    Train(TrainArgs),
    /// Structure from motion: a folder of photos to a COLMAP model and undistorted images.
    Sfm(SfmArgs),
    /// Compress a 3DGS PLY to PlayCanvas's SOG format.
    Compress(CompressArgs),
    /// Decompress a SOG (v1 or v2, bundle or folder) to a 3DGS PLY.
    Decompress {
        /// Input `.sog`, SOG folder or its meta.json.
        input: PathBuf,
        /// Output PLY.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Print the GPU, driver and memory, and run a short render self-test against the CPU.
    GpuInfo,
    /// Look at a .sog, a .ply or a run folder in the browser (a local page on 127.0.0.1).
    View(ViewArgs),
    /// Run a grid of training configurations on one scene (results.csv + chart.png).
    Sweep {
        /// Sweep description (YAML: scene, downscale, base, grid).
        spec: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "sweep-out")]
        out: PathBuf,
    },
}

/// `--config FILE` and `--set KEY=VALUE`: every command's settings go through the same
/// overlay (defaults, then the file, then the assignments, then the named flags).
#[derive(Args, Debug)]
pub struct Settings {
    /// YAML settings file (see --dump-config for every key).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Set one setting by its dotted key (repeatable; after --config).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_assignment)]
    pub sets: Vec<(String, Value)>,
}

impl Settings {
    /// The `--set` assignments followed by the named flags that are set.
    pub fn with<const N: usize>(
        &self,
        named: [Option<(String, Value)>; N],
    ) -> Vec<(String, Value)> {
        self.sets
            .iter()
            .cloned()
            .chain(named.into_iter().flatten())
            .collect()
    }
}

/// The flags of the commands that train (`run` and `train`).
#[derive(Args, Debug)]
pub struct TrainingFlags {
    /// Compute device for training (auto: the GPU when there is one), and with `run` for
    /// SfM's descriptor matching (auto: the CPU for now; cuda: the GPU).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: Device,
    /// Print the effective configuration as YAML and exit.
    #[arg(long)]
    pub dump_config: bool,
    /// Show the Gaussians as they train in the browser (`spaceport view`'s page, live).
    #[arg(long)]
    pub view: bool,
    /// Densification strategy: default (3DGS's clone/split/prune) or mcmc (needs
    /// --max-gaussians) (`--set densify.strategy=...`).
    #[arg(long, value_parser = ["default", "mcmc"])]
    pub strategy: Option<String>,
    /// Never grow more Gaussians than this (`--set densify.max_gaussians=N`).
    #[arg(long)]
    pub max_gaussians: Option<usize>,
}

impl TrainingFlags {
    /// `--strategy` and `--max-gaussians` as assignments under `section` ("" or "train.").
    fn densify(&self, section: &str) -> [Option<(String, Value)>; 2] {
        [
            set(&format!("{section}densify.strategy"), self.strategy.clone()),
            set(
                &format!("{section}densify.max_gaussians"),
                self.max_gaussians,
            ),
        ]
    }
}

/// Arguments of `spaceport run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Folder of photos, a video, or a folder of videos; leave out to run on the built-in scene.
    pub images: Option<PathBuf>,
    /// Output folder (job.json, sparse/, images/, point_cloud.ply, scene.sog, renders/, report.md).
    #[arg(long, default_value = "spaceport-out")]
    pub out: PathBuf,
    /// Start from an existing COLMAP scene (images/ + sparse/0), skipping SfM.
    #[arg(long, conflicts_with_all = ["images", "transforms"])]
    pub colmap: Option<PathBuf>,
    /// Start from a NeRF/nerfstudio scene (folder or transforms JSON), skipping SfM.
    #[arg(long, conflicts_with = "images")]
    pub transforms: Option<PathBuf>,
    /// Settings (sections `builtin`, `sfm`, `train`, `compress`, `video`; keys as
    /// `train.densify.grad_threshold`).
    #[command(flatten)]
    pub settings: Settings,
    /// Training recipe: fast (7k iterations), default (30k, early stop on a plateau) or best
    /// (30k, more Gaussians); the built-in scene keeps its own schedule.
    #[arg(long, value_enum, default_value = "default")]
    pub preset: Preset,
    /// Rerun from this stage even if it finished before.
    #[arg(long, value_enum)]
    pub from: Option<StageName>,
    /// Training iterations (`--set train.iterations=N`).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Train on images shrunk so that their longer side is at most this (`--set train_max_side=N`).
    #[arg(long)]
    pub max_side: Option<u32>,
    /// A smaller built-in scene and a shorter training run (for CI and quick checks).
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub training: TrainingFlags,
}

impl RunArgs {
    /// The run these arguments ask for, and the recipe its defaults came from: the input, its
    /// kind's defaults, then `--config`, `--set` and the named flags.
    pub fn resolve(&self) -> Result<(Recipe, RunOptions), PipelineError> {
        let input = Input::from_args(
            self.colmap.as_deref(),
            self.transforms.as_deref(),
            self.images.as_deref(),
        )?;
        let recipe = Recipe {
            preset: self.preset,
            quick: self.quick,
            ..input.recipe()
        };
        let config = RunConfig::load(
            &recipe,
            self.settings.config.as_deref(),
            &self.assignments(),
        )?;
        let options = RunOptions {
            input,
            out: self.out.clone(),
            config,
            device: self.training.device,
            from: self.from,
        };
        Ok((recipe, options))
    }

    /// `--set` and the named flags, as assignments in the order they apply.
    pub fn assignments(&self) -> Vec<(String, Value)> {
        let [strategy, cap] = self.training.densify("train.");
        self.settings.with([
            set("train.iterations", self.iters),
            set("train_max_side", self.max_side),
            strategy,
            cap,
        ])
    }
}

/// Arguments of `spaceport train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Scene: a COLMAP scene directory, a NeRF/nerfstudio directory or transforms JSON.
    #[arg(long, required_unless_present = "dump_config")]
    pub scene: Option<PathBuf>,
    /// Output directory.
    #[arg(long, required_unless_present = "dump_config")]
    pub out: Option<PathBuf>,
    /// Training settings (keys as `densify.grad_threshold`).
    #[command(flatten)]
    pub settings: Settings,
    /// Iterations (`--set iterations=N`).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Downscale images on load by this factor.
    #[arg(long)]
    pub downscale: Option<f64>,
    /// Composite transparent images on white and render on white (`--set background=[1,1,1]`).
    #[arg(long)]
    pub white_background: bool,
    /// Write a resumable checkpoint every N iterations (0: only on interrupt).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Continue from OUT/checkpoint.bin.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub training: TrainingFlags,
}

impl TrainArgs {
    /// The training settings: defaults, then `--config`, `--set` and the named flags.
    pub fn config(&self) -> Result<TrainConfig, PipelineError> {
        Ok(
            TrainConfig::default()
                .overlaid(self.settings.config.as_deref(), &self.assignments())?,
        )
    }

    /// The training job (an error without `--scene` and `--out`, which only `--dump-config`
    /// may leave out).
    pub fn job(&self) -> Result<TrainJob, PipelineError> {
        let (Some(scene), Some(out)) = (&self.scene, &self.out) else {
            return Err(PipelineError::Invalid(
                "--scene and --out are required".into(),
            ));
        };
        Ok(TrainJob {
            scene: scene.clone(),
            out: out.clone(),
            downscale: self.downscale,
            device: self.training.device,
            checkpoint_every: self.checkpoint_every,
            resume: self.resume,
        })
    }

    /// `--set` and the named flags, as assignments in the order they apply.
    pub fn assignments(&self) -> Vec<(String, Value)> {
        let white = self.white_background.then_some([1.0f32; 3]);
        let [strategy, cap] = self.training.densify("");
        self.settings.with([
            set("iterations", self.iters),
            set("background", white),
            strategy,
            cap,
        ])
    }
}

/// Arguments of `spaceport sfm`.
#[derive(Args, Debug)]
pub struct SfmArgs {
    /// Folder of photos.
    #[arg(long)]
    pub images: PathBuf,
    /// Output folder (sparse/0, images/, sfm_report.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Longest image side used for features (`--set sfm.max_image_size=N`).
    #[arg(long)]
    pub max_image_size: Option<u32>,
    /// Device for descriptor matching: auto (the CPU for now), cpu, or cuda (the GPU; an error
    /// without one).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: Device,
    /// Settings: a `spaceport run` config file, of which the `sfm` section is used, and keys
    /// as `sfm.sift.max_features`.
    #[command(flatten)]
    pub settings: Settings,
}

impl SfmArgs {
    /// The SfM settings: the `sfm` section of the defaults, `--config`, `--set` and the flags.
    pub fn options(&self) -> Result<sfm_core::SfmOptions, PipelineError> {
        Ok(RunConfig::sfm_options(
            self.settings.config.as_deref(),
            &self.assignments(),
        )?)
    }

    /// `--set` and the named flags, as assignments in the order they apply.
    pub fn assignments(&self) -> Vec<(String, Value)> {
        self.settings
            .with([set("sfm.max_image_size", self.max_image_size)])
    }
}

/// Arguments of `spaceport render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Gaussians in the standard 3DGS PLY layout (default: the built-in demo scene).
    #[arg(long)]
    pub ply: Option<PathBuf>,
    /// Output PNG.
    #[arg(long, short, default_value = "render.png")]
    pub out: PathBuf,
    /// Image width.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Image height.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Camera angle on the orbit around the scene, in degrees.
    #[arg(long, default_value_t = 30.0)]
    pub angle: f64,
}

/// Arguments of `spaceport compress`.
#[derive(Args, Debug)]
pub struct CompressArgs {
    /// Input PLY (standard 3DGS layout).
    pub input: PathBuf,
    /// Output `.sog` file (or folder with `--format sog-dir`).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Output form.
    #[arg(long, value_enum, default_value = "sog")]
    pub format: SogFormat,
    /// SH bands above DC to keep (default: all the input has).
    #[arg(long)]
    pub sh_bands: Option<usize>,
    /// Texel layout.
    #[arg(long, value_enum, default_value = "hilbert")]
    pub sort: Sort,
}

/// Arguments of `spaceport view`.
#[derive(Args, Debug)]
pub struct ViewArgs {
    /// A `.sog`, a `.ply`, a SOG folder, or a `spaceport run` output folder.
    pub path: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8321)]
    pub port: u16,
    /// Print the URL without opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Write PATH/report.html (report.md, pictures and the viewer in one file) instead of serving.
    #[arg(long)]
    pub html: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(argv: &[&str]) -> RunArgs {
        let argv = ["spaceport", "run"].iter().chain(argv);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Run(a)) => a,
            Ok(_) => panic!("not a run command"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn named_flags_apply_after_set_and_reach_the_config() {
        let a = run_args(&[
            "--quick",
            "--set",
            "train.iterations=7",
            "--iters",
            "9",
            "--max-gaussians",
            "1234",
            "--strategy",
            "mcmc",
        ]);
        let (recipe, o) = a.resolve().unwrap();
        assert!(recipe.quick);
        assert!(matches!(o.input, Input::Builtin));
        assert_eq!(o.config.train.iterations, 9);
        assert_eq!(o.config.train.densify.max_gaussians, 1234);
        assert!(matches!(
            o.config.train.densify.strategy,
            splat_core::train::config::Strategy::Mcmc
        ));
        assert_eq!(o.out, PathBuf::from("spaceport-out"));
    }

    #[test]
    fn bad_values_are_refused_when_resolved() {
        let a = run_args(&["--quick", "--set", "train.lr.opacity=-1"]);
        assert!(a.resolve().is_err());
        let a = run_args(&["--quick", "--set", "train.no_such_key=1"]);
        let e = a.resolve().unwrap_err().to_string();
        assert!(e.contains("no_such_key"), "{e}");
    }

    #[test]
    fn train_needs_scene_and_out_unless_dumping() {
        let parse =
            |argv: &[&str]| match Cli::try_parse_from(["spaceport", "train"].iter().chain(argv))
                .map(|c| c.command)
            {
                Ok(Command::Train(a)) => Ok(a),
                Ok(_) => panic!("not a train command"),
                Err(e) => Err(e),
            };
        assert!(parse(&[]).is_err());
        let a = parse(&["--dump-config", "--iters", "5"]).unwrap();
        assert_eq!(a.config().unwrap().iterations, 5);
        assert!(a.job().is_err());
        let a = parse(&["--scene", "s", "--out", "o", "--resume"]).unwrap();
        let job = a.job().unwrap();
        assert!(job.resume && job.out == PathBuf::from("o"));
    }
}
