//! Every training knob in one YAML-serialisable structure; defaults are the original 3DGS recipe
//! plus progressive resolution and PSNR-plateau stopping.

use serde::{Deserialize, Serialize};

use crate::optim::GroupRates;

/// The full training configuration (unknown keys are an error).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Maximum number of iterations.
    pub iterations: usize,
    /// Seed of every random choice (initialisation, view order, splits).
    pub seed: u64,
    /// Highest SH degree.
    pub sh_degree: usize,
    /// Iterations between SH degree increases.
    pub sh_degree_interval: usize,
    /// Weight of (1 - SSIM) in the loss; L1 gets the rest.
    pub ssim_weight: f32,
    /// Background colour; `null` takes the scene's.
    pub background: Option<[f32; 3]>,
    /// Learning rates.
    pub lr: LrConfig,
    /// Initial Gaussians.
    pub init: InitConfig,
    /// Adaptive density control.
    pub densify: DensifyConfig,
    /// Progressive resolution (and blur).
    pub progressive: ProgressiveConfig,
    /// PSNR-plateau stopping.
    pub plateau: PlateauConfig,
    /// Per-image exposure compensation (off by default).
    pub exposure: super::exposure::ExposureConfig,
    /// Anti-aliasing filters (off by default).
    pub antialias: super::antialias::AntialiasConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            iterations: 30_000,
            seed: 0,
            sh_degree: 3,
            sh_degree_interval: 1000,
            ssim_weight: 0.2,
            background: None,
            lr: LrConfig::default(),
            init: InitConfig::default(),
            densify: DensifyConfig::default(),
            progressive: ProgressiveConfig::default(),
            plateau: PlateauConfig::default(),
            exposure: Default::default(),
            antialias: Default::default(),
        }
    }
}

/// Learning rates per parameter group (Adam).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrConfig {
    /// Initial position rate, times the scene extent.
    pub means: f32,
    /// Final position rate, times the scene extent (log-linear decay).
    pub means_final: f32,
    /// SH degree-0 rate.
    pub sh_dc: f32,
    /// Higher-SH rate.
    pub sh_rest: f32,
    /// Opacity-logit rate.
    pub opacity: f32,
    /// Log-scale rate.
    pub scales: f32,
    /// Quaternion rate.
    pub rotations: f32,
}

impl Default for LrConfig {
    fn default() -> Self {
        Self {
            means: 1.6e-4,
            means_final: 1.6e-6,
            sh_dc: 2.5e-3,
            sh_rest: 2.5e-3 / 20.0,
            opacity: 0.05,
            scales: 5e-3,
            rotations: 1e-3,
        }
    }
}

impl LrConfig {
    /// A step's rates when its position rate (before scaling by the scene `extent`) is `means`.
    pub fn rates(&self, means: f32, extent: f32) -> GroupRates {
        GroupRates {
            means: means * extent,
            sh_dc: self.sh_dc,
            sh_rest: self.sh_rest,
            opacity: self.opacity,
            scales: self.scales,
            rotations: self.rotations,
        }
    }

    /// The first step's rates for a scene of size `extent`.
    pub fn initial_rates(&self, extent: f32) -> GroupRates {
        self.rates(self.means, extent)
    }
}

/// Where the initial Gaussians come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitMode {
    /// SfM points when the scene has them, else random.
    Auto,
    /// The scene's SfM points (an error without them).
    Sfm,
    /// Uniform in a box.
    Random,
}

/// Initial Gaussians.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InitConfig {
    /// Source of the initial positions.
    pub mode: InitMode,
    /// Keep at most this many SfM points (random subsample).
    pub max_points: Option<usize>,
    /// Gaussians for random initialisation.
    pub random_count: usize,
    /// Half-side of the random box centred at the origin, in scene units (3DGS's synthetic
    /// scenes: 1.3); `null` uses 0.25 x the camera extent.
    pub random_box: Option<f32>,
    /// Initial opacity; `null`: the strategy's ([`InitConfig::DEFAULT_OPACITY`] for `default`,
    /// [`InitConfig::MCMC_OPACITY`] for `mcmc`).
    pub opacity: Option<f32>,
    /// Factor on the initial scales from the neighbour distance; `null`: the strategy's (1 for
    /// `default`, [`InitConfig::MCMC_SCALE`] for `mcmc`).
    pub scale: Option<f32>,
}

impl InitConfig {
    /// 3DGS's initial opacity.
    pub const DEFAULT_OPACITY: f32 = 0.1;
    /// MCMC's initial opacity (gsplat's MCMC recipe; measured better for MCMC, BENCHMARKS.md).
    pub const MCMC_OPACITY: f32 = 0.5;
    /// MCMC's factor on the initial scales (gsplat's MCMC recipe): small Gaussians that
    /// relocation and growth spread, instead of 3DGS's neighbour-sized ones.
    pub const MCMC_SCALE: f32 = 0.1;

    /// The initial opacity and scale factor under `strategy`.
    pub fn resolved(&self, strategy: Strategy) -> (f32, f32) {
        let mcmc = strategy == Strategy::Mcmc;
        (
            self.opacity.unwrap_or(if mcmc {
                Self::MCMC_OPACITY
            } else {
                Self::DEFAULT_OPACITY
            }),
            self.scale
                .unwrap_or(if mcmc { Self::MCMC_SCALE } else { 1.0 }),
        )
    }
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            mode: InitMode::Auto,
            max_points: None,
            random_count: 100_000,
            random_box: None,
            opacity: None,
            scale: None,
        }
    }
}

/// Which densification strategy runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// 3DGS's adaptive density control: clone, split, prune, opacity resets.
    #[default]
    Default,
    /// 3DGS as Markov chain Monte Carlo (Kheradmand et al. 2024): relocate dead Gaussians,
    /// grow to `max_gaussians`, position noise, opacity and scale regularisers.
    Mcmc,
}

/// MCMC's settings (defaults: the paper's and gsplat's `MCMCStrategy`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McmcConfig {
    /// Position noise: times the current position learning rate (gsplat's `noise_lr`).
    pub noise_lr: f32,
    /// Weight of the mean opacity in the loss.
    pub opacity_reg: f32,
    /// Weight of the mean scale in the loss.
    pub scale_reg: f32,
    /// Gaussians at or below this opacity are dead and get relocated; relocated opacities are
    /// clamped at or above it.
    pub min_opacity: f32,
    /// Each refinement grows the count by this fraction, until `densify.max_gaussians`.
    pub growth: f32,
    /// Relocation and growth stop at this iteration (the noise goes on).
    pub until: usize,
}

impl Default for McmcConfig {
    fn default() -> Self {
        Self {
            noise_lr: 5e5,
            opacity_reg: 0.01,
            scale_reg: 0.01,
            min_opacity: 0.005,
            growth: 0.05,
            until: 25_000,
        }
    }
}

/// Adaptive density control (clone, split, prune, opacity reset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DensifyConfig {
    /// Mean view-space positional gradient (NDC units) above which a Gaussian grows.
    pub grad_threshold: f32,
    /// Gaussians larger than this fraction of the extent split; smaller ones clone.
    pub percent_dense: f32,
    /// Iterations between densification steps.
    pub interval: usize,
    /// First iteration that densifies (exclusive).
    pub from: usize,
    /// Densification stops at this iteration.
    pub until: usize,
    /// Iterations between opacity resets (0: never).
    pub opacity_reset_interval: usize,
    /// Prune below this opacity.
    pub prune_opacity: f32,
    /// After the first opacity reset, prune Gaussians larger than this fraction of the extent.
    pub prune_world_size: f32,
    /// After the first opacity reset, prune Gaussians whose screen radius exceeded this many
    /// pixels (0: off, as gsplat's default).
    pub prune_screen_size: u32,
    /// Stop growing beyond this many Gaussians (0: no cap; MCMC needs one). Over the cap,
    /// the default strategy keeps the candidates of highest mean gradient x opacity.
    pub max_gaussians: usize,
    /// The strategy: `default` (the settings above) or `mcmc` (shares `from`, `interval` and
    /// `max_gaussians`; its own settings under `mcmc`).
    pub strategy: Strategy,
    /// MCMC's settings.
    pub mcmc: McmcConfig,
}

impl Default for DensifyConfig {
    fn default() -> Self {
        Self {
            grad_threshold: 2e-4,
            percent_dense: 0.01,
            interval: 100,
            from: 500,
            until: 15_000,
            opacity_reset_interval: 3000,
            prune_opacity: 0.005,
            prune_world_size: 0.1,
            prune_screen_size: 0,
            max_gaussians: 0,
            strategy: Strategy::Default,
            mcmc: McmcConfig::default(),
        }
    }
}

/// Progressive resolution and blur.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgressiveConfig {
    /// Train at reduced size early on.
    pub enabled: bool,
    /// Size factor at the start.
    pub start_scale: f32,
    /// Full size is reached at min(this x iterations, densify.until).
    pub ramp_fraction: f32,
    /// Blur the ground truth early on.
    pub blur: bool,
    /// Blur sigma (pixels of the working size) at the start, falling to 0 along the ramp.
    pub blur_start_sigma: f32,
}

impl Default for ProgressiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            start_scale: 0.3,
            ramp_fraction: 0.7,
            blur: false,
            blur_start_sigma: 2.0,
        }
    }
}

/// PSNR-plateau stopping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlateauConfig {
    /// Stop on a plateau of the monitor PSNR.
    pub enabled: bool,
    /// Iterations between monitor evaluations.
    pub interval: usize,
    /// Training views in the monitor set (fixed, evenly spaced).
    pub monitor_views: usize,
    /// A plateau: the best PSNR improved by less than this over the last `patience` checks.
    pub min_improvement_db: f32,
    /// Checks that make up a plateau window.
    pub patience: usize,
    /// Stop as soon as the monitor PSNR reaches this.
    pub target_psnr: Option<f32>,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: 500,
            monitor_views: 16,
            min_improvement_db: 0.05,
            patience: 3,
            target_psnr: None,
        }
    }
}

pub use crate::config::ConfigError;

impl TrainConfig {
    /// The defaults with the YAML file at `path` laid over them (keys it leaves out keep their
    /// defaults; unknown keys are an error naming the key), validated.
    pub fn from_yaml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        Self::default().overlaid(Some(path), &[])
    }

    /// The defaults with YAML text laid over them, validated.
    pub fn from_yaml_str(text: &str) -> Result<Self, ConfigError> {
        let cfg = crate::config::overlay_str(&Self::default(), text, "<string>")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// `self` with the YAML file `file` (if any) and then the dotted-key assignments `sets`
    /// (`--set densify.grad_threshold=0.0004`, named flags) laid over it, validated: the one
    /// path every training setting takes.
    pub fn overlaid(
        &self,
        file: Option<&std::path::Path>,
        sets: &[(String, serde_yaml::Value)],
    ) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(p) => crate::config::from_yaml_file_over(self, p)?,
            None => self.clone(),
        };
        if !sets.is_empty() {
            cfg = crate::config::overlay_assignments(&cfg, sets, "--set")?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The configuration as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// Checks ranges that would make training meaningless.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Value(m));
        if self.sh_degree > 3 {
            return bad(format!("sh_degree {} (at most 3)", self.sh_degree));
        }
        if !(0.0..=1.0).contains(&self.ssim_weight) {
            return bad(format!("ssim_weight {} not in [0, 1]", self.ssim_weight));
        }
        if self.densify.interval == 0 || self.plateau.interval == 0 || self.sh_degree_interval == 0
        {
            return bad(
                "densify.interval, plateau.interval and sh_degree_interval must be positive".into(),
            );
        }
        if !(self.progressive.start_scale > 0.0 && self.progressive.start_scale <= 1.0) {
            return bad(format!(
                "progressive.start_scale {} not in (0, 1]",
                self.progressive.start_scale
            ));
        }
        if let Some(o) = self.init.opacity.filter(|o| !(*o > 0.0 && *o < 1.0)) {
            return bad(format!("init.opacity {o} not in (0, 1)"));
        }
        if let Some(f) = self.init.scale.filter(|f| !(*f > 0.0 && f.is_finite())) {
            return bad(format!("init.scale {f} is not a positive number"));
        }
        // A NaN or negative rate is accepted by Adam and silently ruins the run, so it is
        // refused when the config is loaded.
        let lr = &self.lr;
        for (name, v) in [
            ("lr.means", lr.means),
            ("lr.means_final", lr.means_final),
            ("lr.sh_dc", lr.sh_dc),
            ("lr.sh_rest", lr.sh_rest),
            ("lr.opacity", lr.opacity),
            ("lr.scales", lr.scales),
            ("lr.rotations", lr.rotations),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!(
                    "{name} {v}: a learning rate must be finite and >= 0"
                ));
            }
        }
        let d = &self.densify;
        for (name, v) in [
            ("densify.grad_threshold", d.grad_threshold),
            ("densify.percent_dense", d.percent_dense),
            ("densify.prune_opacity", d.prune_opacity),
            ("densify.prune_world_size", d.prune_world_size),
            ("progressive.ramp_fraction", self.progressive.ramp_fraction),
            (
                "progressive.blur_start_sigma",
                self.progressive.blur_start_sigma,
            ),
            (
                "plateau.min_improvement_db",
                self.plateau.min_improvement_db,
            ),
            ("densify.mcmc.noise_lr", d.mcmc.noise_lr),
            ("densify.mcmc.opacity_reg", d.mcmc.opacity_reg),
            ("densify.mcmc.scale_reg", d.mcmc.scale_reg),
            ("exposure.lr", self.exposure.lr),
            ("exposure.lr_final", self.exposure.lr_final),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} {v}: must be finite and >= 0"));
            }
        }
        if !(d.mcmc.min_opacity > 0.0 && d.mcmc.min_opacity < 1.0) {
            return bad(format!(
                "densify.mcmc.min_opacity {} not in (0, 1)",
                d.mcmc.min_opacity
            ));
        }
        if !(d.mcmc.growth > 0.0 && d.mcmc.growth <= 1.0) {
            return bad(format!(
                "densify.mcmc.growth {} not in (0, 1]",
                d.mcmc.growth
            ));
        }
        if d.strategy == Strategy::Mcmc && d.max_gaussians == 0 {
            return bad(
                "densify.max_gaussians must be positive with densify.strategy mcmc (it grows to the cap)"
                    .into(),
            );
        }
        if let Some(bg) = self.background {
            if bg
                .iter()
                .any(|c| !(c.is_finite() && (0.0..=1.0).contains(c)))
            {
                return bad(format!("background {bg:?}: each channel in [0, 1]"));
            }
        }
        if self.iterations == 0 {
            return bad("iterations must be positive".into());
        }
        self.antialias.validate().map_err(ConfigError::Value)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value that used to be accepted and fail late (or never) is refused on load,
    /// naming the key.
    #[test]
    fn bad_values_are_refused_on_load() {
        for (yaml, key) in [
            ("lr: {means: .nan}", "lr.means"),
            ("lr: {opacity: -0.05}", "lr.opacity"),
            ("lr: {scales: .inf}", "lr.scales"),
            ("densify: {grad_threshold: -1}", "densify.grad_threshold"),
            ("background: [0, 2, 0]", "background"),
            ("iterations: 0", "iterations"),
            ("sh_degree: 5", "sh_degree"),
            ("densify: {strategy: mcmc}", "densify.max_gaussians"),
            ("densify: {strategy: foo}", "expected `default` or `mcmc`"),
            (
                "densify: {mcmc: {min_opacity: 0}}",
                "densify.mcmc.min_opacity",
            ),
            ("densify: {mcmc: {growth: 2}}", "densify.mcmc.growth"),
            ("densify: {mcmc: {noise_lr: -1}}", "densify.mcmc.noise_lr"),
            (
                "densify: {mcmc: {scale_reg: .nan}}",
                "densify.mcmc.scale_reg",
            ),
            ("init: {opacity: 1}", "init.opacity"),
            ("init: {scale: 0}", "init.scale"),
            ("init: {scale: .nan}", "init.scale"),
            ("antialias: {filter3d_scale: 0}", "antialias.filter3d_scale"),
            (
                "antialias: {filter3d_interval: 0}",
                "antialias.filter3d_interval",
            ),
            ("antialias: {mip_2d: true}", "mip_2d"),
        ] {
            let err = TrainConfig::from_yaml_str(yaml).expect_err(yaml);
            assert!(err.to_string().contains(key), "{yaml}: {err}");
        }
        TrainConfig::from_yaml_str("lr: {means: 0.0}").expect("a zero rate freezes a group");
        let c = TrainConfig::from_yaml_str("densify: {strategy: mcmc, max_gaussians: 1000}")
            .expect("mcmc with a cap");
        assert_eq!(c.densify.strategy, Strategy::Mcmc);
        assert_eq!(c.densify.mcmc, McmcConfig::default());
        assert_eq!(TrainConfig::default().densify.strategy, Strategy::Default);
        assert!(!TrainConfig::default().antialias.any());
        let c = TrainConfig::from_yaml_str("antialias: {mip2d: true, filter3d_scale: 0.1}")
            .expect("anti-aliasing on");
        assert!(c.antialias.mip2d && !c.antialias.filter3d);
        assert_eq!(c.antialias.filter3d_scale, 0.1);
    }

    #[test]
    fn initial_opacity_and_scale_follow_the_strategy_unless_set() {
        let d = TrainConfig::default();
        assert_eq!(d.init.resolved(d.densify.strategy), (0.1, 1.0));
        let m = TrainConfig::from_yaml_str("densify: {strategy: mcmc, max_gaussians: 10}").unwrap();
        assert_eq!(m.init.resolved(m.densify.strategy), (0.5, 0.1));
        let set = TrainConfig::from_yaml_str(
            "densify: {strategy: mcmc, max_gaussians: 10}\ninit: {opacity: 0.2, scale: 2}",
        )
        .unwrap();
        assert_eq!(set.init.resolved(set.densify.strategy), (0.2, 2.0));
    }
}
