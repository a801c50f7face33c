//! The pipeline's settings: [`RunConfig`] is the schema (one section per stage), and every
//! source of settings goes through [`splat_core::config`]'s overlay: the defaults, then a YAML
//! file, then dotted-key assignments (`--set train.densify.grad_threshold=0.0004` and the
//! named command-line flags, which are spelled as assignments). Defaults live here, one
//! function per section.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use splat_core::demo::photos::PhotoSetOptions;
use splat_core::train::TrainConfig;

use crate::job::StageName;

/// Texel layout of the SOG images (a command-line and config-file value).
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Hilbert order of positions (default: smallest files on the scenes measured).
    Hilbert,
    /// Morton (Z) order of positions, as splat-transform.
    Morton,
    /// Hilbert refined by a PLAS-style self-organizing sort over all attributes.
    Plas,
}

impl Sort {
    /// The encoder's layout.
    pub fn mode(self) -> sogs_codec::SortMode {
        match self {
            Sort::Hilbert => sogs_codec::SortMode::Hilbert,
            Sort::Morton => sogs_codec::SortMode::Morton,
            Sort::Plas => sogs_codec::SortMode::Plas,
        }
    }

    /// The value naming the encoder's `mode`.
    pub fn of_mode(mode: sogs_codec::SortMode) -> Self {
        match mode {
            sogs_codec::SortMode::Hilbert => Sort::Hilbert,
            sogs_codec::SortMode::Morton => Sort::Morton,
            sogs_codec::SortMode::Plas => Sort::Plas,
        }
    }
}

/// Compression settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressConfig {
    /// SH bands above DC to keep (`null`: all).
    pub sh_bands: Option<usize>,
    /// Texel layout: hilbert, morton or plas.
    pub sort: Sort,
    /// Seed of the encoder's random choices.
    pub seed: u64,
}

impl Default for CompressConfig {
    /// The encoder's own defaults ([`sogs_codec::EncodeOptions`]), kept in one place.
    fn default() -> Self {
        let e = sogs_codec::EncodeOptions::default();
        Self {
            sh_bands: e.sh_bands,
            sort: Sort::of_mode(e.sort),
            seed: e.seed,
        }
    }
}

/// Everything `spaceport run` can be told, one section per stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The built-in scene (used only without input).
    pub builtin: PhotoSetOptions,
    /// Structure from motion.
    pub sfm: sfm_core::SfmOptions,
    /// Training.
    pub train: TrainConfig,
    /// Train on images shrunk so that their longer side is at most this (`null`: as given).
    pub train_max_side: Option<u32>,
    /// Write a training checkpoint every this many iterations, so a killed run resumes.
    pub checkpoint_every: usize,
    /// Compression.
    pub compress: CompressConfig,
    /// Frame extraction from video input.
    pub video: VideoConfig,
}

/// Frame extraction from video input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    /// Frames kept in all (the sharpest of each window of candidates).
    pub frames: usize,
    /// Longest side of the extracted frames.
    pub max_side: u32,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            frames: crate::video::DEFAULT_FRAMES,
            max_side: DEFAULT_MAX_SIDE,
        }
    }
}

/// The built-in scene's photos: `quick` is the CI size.
pub fn builtin_photos(quick: bool) -> PhotoSetOptions {
    let (width, height, views) = if quick {
        (200, 150, 24)
    } else {
        (320, 240, 36)
    };
    PhotoSetOptions {
        width,
        height,
        views,
        samples: 3,
    }
}

/// Training iterations for the built-in scene: `quick` is the CI length.
pub fn builtin_iterations(quick: bool) -> usize {
    if quick {
        500
    } else {
        2000
    }
}

/// Training defaults of `spaceport run` for a run of `iters` iterations on small, sharp photos
/// such as the built-in scene's.
pub fn run_train_defaults(iters: usize) -> TrainConfig {
    let mut train = TrainConfig {
        iterations: iters,
        ..Default::default()
    };
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
    train
}

/// How long and how hard `spaceport run` trains (`--preset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 7,000 iterations: a first look in a fraction of the time.
    Fast,
    /// 30,000 iterations, stopped early when the PSNR of held-in views stops rising.
    #[default]
    Default,
    /// 30,000 iterations without early stop, growing more Gaussians (lower gradient
    /// threshold): the most detail, the most time and memory.
    Best,
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preset::Fast => "fast",
            Preset::Default => "default",
            Preset::Best => "best",
        })
    }
}

/// What a run's input is, which decides its training recipe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SceneKind {
    /// The built-in ray-cast scene: small, sharp photos, a quick schedule of its own.
    #[default]
    Builtin,
    /// Photos or a COLMAP model of a real capture: unbounded, exposure varies.
    Captured,
    /// A NeRF/nerfstudio transforms scene (synthetic objects such as lego).
    Synthetic,
}

/// Which defaults a run starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recipe {
    /// The kind of input.
    pub scene: SceneKind,
    /// The preset (`--preset`); the built-in scene keeps its own schedule.
    pub preset: Preset,
    /// `--quick`: a short run (CI and smoke tests) whatever the input.
    pub quick: bool,
}

impl Recipe {
    /// The built-in scene's recipe.
    pub fn builtin(quick: bool) -> Self {
        Self {
            quick,
            ..Self::default()
        }
    }

    /// One line for the user: what will be trained and how.
    pub fn describe(&self, train: &TrainConfig) -> String {
        let stop = if train.plateau.enabled {
            ", stopped early on a PSNR plateau"
        } else {
            ""
        };
        let what = match (self.scene, self.quick) {
            (_, true) => "a quick run (--quick)".to_string(),
            (SceneKind::Builtin, false) => "the built-in scene's schedule".to_string(),
            (SceneKind::Captured, false) => format!("preset {} for a captured scene", self.preset),
            (SceneKind::Synthetic, false) => {
                format!("preset {} for a synthetic scene", self.preset)
            }
        };
        format!("{what}: {} iterations{stop}", train.iterations)
    }
}

/// Training defaults for a real capture: the recipe of `configs/unbounded-train.yaml`
/// (measured on Mip-NeRF 360 bonsai: 29.92 dB at 7k and 31.22 dB at 30k against gsplat's
/// 29.36 and 31.10 dB) at the preset's length.
pub fn captured_train_defaults(preset: Preset) -> TrainConfig {
    let mut train = synthetic_train_defaults(preset);
    // No opacity reset: on bonsai the resets cost more Gaussians back than they prune and the
    // test PSNR drops after each.
    train.densify.opacity_reset_interval = 0;
    // Full size at a third of the run: more full-size iterations for a capture's fine detail.
    train.progressive.ramp_fraction = 0.3333;
    train
}

/// Training defaults for a synthetic (transforms) scene: the library's (the 3DGS paper's and
/// gsplat's) at the preset's length.
pub fn synthetic_train_defaults(preset: Preset) -> TrainConfig {
    let mut train = TrainConfig::default();
    match preset {
        Preset::Fast => train.iterations = 7_000,
        Preset::Default => {}
        Preset::Best => {
            train.plateau.enabled = false;
            // Three quarters of the paper's threshold grows more, smaller Gaussians.
            train.densify.grad_threshold = 1.5e-4;
        }
    }
    train
}

/// SfM defaults of `spaceport run`.
pub fn run_sfm_defaults() -> sfm_core::SfmOptions {
    sfm_core::SfmOptions {
        // The 3DGS convention for training images: larger photos cost SfM time and memory
        // and train at most at this size anyway.
        max_image_size: DEFAULT_MAX_SIDE,
        ..Default::default()
    }
}

/// Longest side of the images SfM and training use by default (the 3DGS convention).
pub const DEFAULT_MAX_SIDE: u32 = 1600;

impl RunConfig {
    /// The defaults of `recipe`.
    pub fn defaults(recipe: &Recipe) -> Self {
        let train = match (recipe.quick, recipe.scene) {
            (true, _) | (false, SceneKind::Builtin) => {
                run_train_defaults(builtin_iterations(recipe.quick))
            }
            (false, SceneKind::Captured) => captured_train_defaults(recipe.preset),
            (false, SceneKind::Synthetic) => synthetic_train_defaults(recipe.preset),
        };
        Self {
            builtin: builtin_photos(recipe.quick),
            sfm: run_sfm_defaults(),
            checkpoint_every: (train.iterations / 6).max(100),
            train,
            train_max_side: Some(DEFAULT_MAX_SIDE),
            compress: CompressConfig::default(),
            video: VideoConfig::default(),
        }
    }

    /// Refuses values that would fail late or silently, naming the key.
    pub fn validate(&self) -> Result<(), splat_core::config::ConfigError> {
        use splat_core::config::ConfigError;
        self.train.validate().map_err(|e| match e {
            ConfigError::Value(m) => ConfigError::Value(format!("train.{m}")),
            e => e,
        })?;
        self.sfm
            .validate()
            .map_err(|e| ConfigError::Value(format!("sfm: {e}")))?;
        if let Some(b) = self.compress.sh_bands.filter(|&b| b > 3) {
            return Err(ConfigError::Value(format!(
                "compress.sh_bands {b}: at most 3 (SH degree 3)"
            )));
        }
        if self.video.frames < 2 || self.video.max_side < 16 {
            return Err(ConfigError::Value(format!(
                "video.frames {} / video.max_side {}: at least 2 frames of at least 16 pixels",
                self.video.frames, self.video.max_side
            )));
        }
        if let Some(s) = self.train_max_side.filter(|&s| s < 16) {
            return Err(ConfigError::Value(format!(
                "train_max_side {s}: at least 16 pixels"
            )));
        }
        Ok(())
    }

    /// The defaults, with the YAML file `file` (if any) and then the dotted-key assignments
    /// `sets` laid over them (keys left out keep their defaults; unknown keys are an error
    /// naming the key), validated.
    pub fn load(
        recipe: &Recipe,
        file: Option<&Path>,
        sets: &[(String, serde_yaml::Value)],
    ) -> Result<Self, splat_core::config::ConfigError> {
        let mut cfg = Self::defaults(recipe);
        if let Some(p) = file {
            cfg = splat_core::config::from_yaml_file_over(&cfg, p)?;
        }
        if !sets.is_empty() {
            cfg = splat_core::config::overlay_assignments(&cfg, sets, "--set")?;
        }
        cfg.validate().map_err(|e| match (e, file) {
            (splat_core::config::ConfigError::Value(m), Some(p)) => {
                splat_core::config::ConfigError::Value(format!("{}: {m}", p.display()))
            }
            (e, _) => e,
        })?;
        Ok(cfg)
    }

    /// The settings of `spaceport sfm`: with a config file, the `sfm` section of `spaceport
    /// run`'s config (its defaults, then the file); without one, the SfM library's defaults;
    /// then the assignments (`sfm.*` keys).
    pub fn sfm_options(
        file: Option<&Path>,
        sets: &[(String, serde_yaml::Value)],
    ) -> Result<sfm_core::SfmOptions, splat_core::config::ConfigError> {
        let base = match file {
            Some(_) => Self::defaults(&Recipe::default()),
            None => Self {
                sfm: Default::default(),
                ..Self::defaults(&Recipe::default())
            },
        };
        let mut cfg = base;
        if let Some(p) = file {
            cfg = splat_core::config::from_yaml_file_over(&cfg, p)?;
        }
        let sfm = splat_core::config::overlay_assignments(&cfg, sets, "--set")?.sfm;
        sfm.validate()
            .map_err(|e| splat_core::config::ConfigError::Value(e.to_string()))?;
        Ok(sfm)
    }

    /// The effective configuration as YAML (what `--dump-config` prints).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// The config section a stage depends on, to detect a changed config on resume.
    pub fn section(&self, stage: StageName) -> Value {
        match stage {
            StageName::Scene => json!(self.builtin),
            StageName::Frames => json!(self.video),
            StageName::Sfm => json!(self.sfm),
            StageName::Train => json!([self.train, self.train_max_side, self.checkpoint_every]),
            StageName::Compress => json!(self.compress),
            StageName::Report => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each file under configs/ loads with its command's loader, so a renamed knob cannot
    /// leave a shipped config broken.
    #[test]
    fn shipped_configs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let run = RunConfig::load(
            &Recipe::default(),
            Some(&dir.join("large-unordered.yaml")),
            &[],
        )
        .expect("large-unordered.yaml");
        assert_eq!(run.sfm.mapper.final_rounds, 5);
        let train = TrainConfig::from_yaml_file(&dir.join("unbounded-train.yaml"))
            .expect("unbounded-train.yaml");
        let default = TrainConfig::default();
        assert_eq!(train.densify.opacity_reset_interval, 0);
        assert!((train.progressive.ramp_fraction - 0.3333).abs() < 1e-6);
        assert_eq!(train.iterations, default.iterations);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("configs/")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "a new config needs a line here: {names:?}");
    }

    #[test]
    fn file_then_assignments_overlay_the_defaults() {
        let dir = std::env::temp_dir().join(format!("spaceport-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("run.yaml");
        std::fs::write(
            &file,
            "train:\n  iterations: 40\n  densify: {interval: 30}\n",
        )
        .unwrap();
        let parse = |s: &str| splat_core::config::parse_assignment(s).unwrap();
        let sets = [parse("train.iterations=50"), parse("train_max_side=100")];
        let cfg = RunConfig::load(&Recipe::builtin(true), Some(&file), &sets).unwrap();
        let quick = RunConfig::defaults(&Recipe::builtin(true));
        assert_eq!(cfg.train.iterations, 50, "assignments come after the file");
        assert_eq!(cfg.train.densify.interval, 30);
        assert_eq!(cfg.train.densify.from, quick.train.densify.from);
        assert_eq!(cfg.train_max_side, Some(100));
        assert_eq!(cfg.builtin, quick.builtin);

        let err = RunConfig::load(&Recipe::builtin(true), None, &[parse("train.iteratons=5")])
            .unwrap_err();
        assert!(err.to_string().contains("train.iteratons"), "{err}");
        std::fs::write(&file, "compress: {sort: spiral}\n").unwrap();
        let err = RunConfig::load(&Recipe::builtin(true), Some(&file), &[]).unwrap_err();
        assert!(err.to_string().contains("run.yaml"), "{err}");
        std::fs::write(&file, "train: {sh_degree: 7}\n").unwrap();
        let err = RunConfig::load(&Recipe::builtin(true), Some(&file), &[]).unwrap_err();
        assert!(err.to_string().contains("sh_degree 7"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_dumped_config_loads_back_unchanged() {
        let cfg = RunConfig::defaults(&Recipe::builtin(false));
        let back: RunConfig = splat_core::config::overlay_str(
            &RunConfig::defaults(&Recipe::builtin(true)),
            &cfg.to_yaml(),
            "dump",
        )
        .unwrap();
        for s in [
            StageName::Scene,
            StageName::Frames,
            StageName::Sfm,
            StageName::Train,
            StageName::Compress,
        ] {
            assert_eq!(back.section(s), cfg.section(s), "{s}");
        }
    }

    /// Photos get the captured-scene recipe (the measured bonsai one), the built-in scene
    /// keeps its schedule, and `--quick` is short whatever the input.
    #[test]
    fn the_recipe_follows_the_input_and_preset() {
        let captured = |preset| {
            RunConfig::defaults(&Recipe {
                scene: SceneKind::Captured,
                preset,
                quick: false,
            })
        };
        let d = captured(Preset::Default);
        assert_eq!(d.train.iterations, 30_000);
        assert!(d.train.plateau.enabled);
        assert_eq!(d.train.densify.opacity_reset_interval, 0);
        assert_eq!(d.train_max_side, Some(1600));
        assert_eq!(d.sfm.max_image_size, 1600);
        assert_eq!(captured(Preset::Fast).train.iterations, 7_000);
        let best = captured(Preset::Best);
        assert!(!best.train.plateau.enabled);
        assert!(best.train.densify.grad_threshold < d.train.densify.grad_threshold);
        // The shipped config file and the captured default agree.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let file = TrainConfig::from_yaml_file(&dir.join("unbounded-train.yaml")).unwrap();
        assert_eq!(file.densify, d.train.densify);
        assert_eq!(file.progressive, d.train.progressive);
        let builtin = RunConfig::defaults(&Recipe::builtin(false));
        assert_eq!(builtin.train.iterations, builtin_iterations(false));
        let quick = RunConfig::defaults(&Recipe {
            scene: SceneKind::Captured,
            preset: Preset::Best,
            quick: true,
        });
        assert_eq!(quick.train.iterations, builtin_iterations(true));
        let synthetic = RunConfig::defaults(&Recipe {
            scene: SceneKind::Synthetic,
            ..Recipe::default()
        });
        assert_eq!(synthetic.train.densify, TrainConfig::default().densify);
    }

    #[test]
    fn out_of_range_run_settings_are_refused_on_load() {
        let parse = |s: &str| splat_core::config::parse_assignment(s).unwrap();
        for (set, key) in [
            ("sfm.max_image_size=0", "max_image_size 0"),
            ("compress.sh_bands=5", "compress.sh_bands 5"),
            ("train_max_side=0", "train_max_side 0"),
            ("train.lr.means=-1", "lr.means"),
        ] {
            let err = RunConfig::load(&Recipe::default(), None, &[parse(set)]).unwrap_err();
            assert!(err.to_string().contains(key), "{set}: {err}");
        }
    }
}
