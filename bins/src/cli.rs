//! Arguments of the subcommands. Named flags that change a setting are shorthands for
//! `--set KEY=VALUE` and go through the same overlay as config files (applied after them).

use std::path::PathBuf;

use clap::Args;
use serde_yaml::Value;
use spaceport::tools::SogFormat;
use spaceport::{Device, Preset, Sort, StageName};
use splat_core::config::{flag_assignment as set, parse_assignment};

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
