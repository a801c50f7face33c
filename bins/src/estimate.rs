//! Before training: how much memory and time it will take, against what the device has, so a
//! run that cannot fit stops with the numbers instead of an out-of-memory abort hours in.
//! The rates are measured figures (BENCHMARKS.md), not a model: they give an order of magnitude.

use splat_core::scene::Scene;
use splat_core::train::TrainConfig;

use crate::{PipelineError, Result};

/// Device and host memory per Gaussian while training: parameters, gradients, two Adam moments
/// and per-Gaussian statistics at SH degree 3 (bonsai 30k on an H200: about 1.2 KB each beyond
/// the images).
pub const BYTES_PER_GAUSSIAN: u64 = 1200;
/// Gaussians assumed when no cap is set (bonsai grew 2.0M at 30k; most captures fewer).
pub const UNCAPPED_GAUSSIANS: usize = 3_000_000;
/// Fixed cost: the CUDA context, kernels and per-frame buffers.
pub const FIXED_BYTES: u64 = 512 << 20;
/// Seconds per iteration per pixel of the working image, on an H200 (bonsai 7k: 24.5 s at
/// 800x533) and on 2 CPU cores (built-in scene: 2000 iterations at 320x240 in 175 s).
pub const SECONDS_PER_PIXEL_GPU: f64 = 8.2e-9;
/// See [`SECONDS_PER_PIXEL_GPU`].
pub const SECONDS_PER_PIXEL_CPU: f64 = 1.14e-6;

/// What a training run needs, estimated before it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Bytes of the training images as the backend holds them (RGB f32).
    pub image_bytes: u64,
    /// Gaussians the estimate assumes (the cap, or [`UNCAPPED_GAUSSIANS`]).
    pub gaussians: usize,
    /// Bytes for those Gaussians.
    pub gaussian_bytes: u64,
    /// Bytes at the start (images, initial Gaussians, fixed cost): below this nothing runs.
    pub minimum_bytes: u64,
    /// Seconds of training at the full iteration count.
    pub seconds: f64,
}

impl Estimate {
    /// The estimate for training `scene` with `cfg`, starting from `initial` Gaussians, on the
    /// GPU (`gpu`) or the CPU.
    pub fn new(scene: &Scene, cfg: &TrainConfig, initial: usize, gpu: bool) -> Self {
        let px = |v: &splat_core::scene::View| v.camera.width as u64 * v.camera.height as u64;
        let image_bytes: u64 = scene.train.iter().map(|v| px(v) * 12).sum();
        let mean_px =
            scene.train.iter().map(px).sum::<u64>() as f64 / scene.train.len().max(1) as f64;
        let gaussians = match cfg.densify.max_gaussians {
            0 => UNCAPPED_GAUSSIANS.max(initial),
            cap => cap.max(initial),
        };
        let rate = if gpu {
            SECONDS_PER_PIXEL_GPU
        } else {
            SECONDS_PER_PIXEL_CPU
        };
        Self {
            image_bytes,
            gaussians,
            gaussian_bytes: gaussians as u64 * BYTES_PER_GAUSSIAN,
            minimum_bytes: image_bytes + initial as u64 * BYTES_PER_GAUSSIAN + FIXED_BYTES,
            seconds: cfg.iterations as f64 * mean_px * rate,
        }
    }

    /// Bytes the whole run may need.
    pub fn total_bytes(&self) -> u64 {
        self.image_bytes + self.gaussian_bytes + FIXED_BYTES
    }

    /// An error naming the numbers when even the start cannot fit in `available` bytes; a
    /// warning (returned) when the grown model may not.
    pub fn check(&self, available: Option<u64>, device: &str) -> Result<Option<String>> {
        let Some(free) = available else {
            return Ok(None);
        };
        if self.minimum_bytes > free {
            return Err(PipelineError::Invalid(format!(
                "not enough memory on {device}: training needs at least {} ({} of training images, plus the initial Gaussians) but {} is free; lower the image size (--max-side, or --set train_max_side=N) or train on fewer photos",
                gib(self.minimum_bytes),
                gib(self.image_bytes),
                gib(free)
            )));
        }
        if self.total_bytes() > free {
            let fit = (free - self.image_bytes - FIXED_BYTES.min(free - self.image_bytes))
                / BYTES_PER_GAUSSIAN;
            return Ok(Some(format!(
                "warning: {} may need up to {} ({} of images, {} for up to {} Gaussians) but {} is free; cap the model with --set train.densify.max_gaussians={}",
                device,
                gib(self.total_bytes()),
                gib(self.image_bytes),
                gib(self.gaussian_bytes),
                self.gaussians,
                gib(free),
                fit / 100_000 * 100_000
            )));
        }
        Ok(None)
    }
}

/// Bytes of a PLY per Gaussian at SH degree 3 (62 f32 properties).
pub const PLY_BYTES_PER_GAUSSIAN: u64 = 248;
/// Disk per Gaussian while training: the final PLY, and a checkpoint (parameters and two Adam
/// moments) twice over while a new one replaces the last.
pub const DISK_BYTES_PER_GAUSSIAN: u64 = PLY_BYTES_PER_GAUSSIAN * 7;
/// Disk that SfM needs per byte of input photos: the upright, undistorted copies for training
/// (same format as the input) with room for the model beside them.
pub const SFM_DISK_PER_INPUT_BYTE: u64 = 2;

/// Disk space before long work: an error naming the numbers when `free` is below `minimum`
/// (the outputs cannot be written), a warning (returned) when it is below `expected`.
pub fn check_disk(
    free: Option<u64>,
    dir: &std::path::Path,
    what: &str,
    minimum: u64,
    expected: u64,
) -> Result<Option<String>> {
    let Some(free) = free else {
        return Ok(None);
    };
    if free < minimum {
        return Err(PipelineError::Invalid(format!(
            "not enough disk space for {what} in {}: it needs at least {} but {} is free; free some space or write elsewhere (--out)",
            dir.display(),
            gib(minimum),
            gib(free)
        )));
    }
    Ok((free < expected).then(|| {
        format!(
            "warning: {what} may write up to {} in {} but {} is free",
            gib(expected),
            dir.display(),
            gib(free)
        )
    }))
}

/// Sum of the sizes of the files directly in `dir` (the photos SfM reads).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `bytes` as "1.2 GiB".
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// A duration for the user: "40 s", "12 min", "3.5 h".
pub fn human_seconds(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// Memory the operating system can give this process now (Linux `MemAvailable`).
pub fn host_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use splat_core::scene::{Image, View};
    use splat_core::Camera;

    fn scene(views: usize, w: u32, h: u32) -> Scene {
        let view = |i: usize| View {
            name: format!("{i}.png"),
            camera: Camera::new(
                w,
                h,
                w as f64,
                w as f64,
                w as f64 / 2.0,
                h as f64 / 2.0,
                glam::DMat3::IDENTITY,
                glam::DVec3::ZERO,
            ),
            image: Image {
                width: w,
                height: h,
                data: Vec::new(),
            },
        };
        Scene {
            name: "s".into(),
            train: (0..views).map(view).collect(),
            test: Vec::new(),
            points: None,
            background: [0.0; 3],
        }
    }

    #[test]
    fn a_scene_too_big_for_the_device_is_refused_with_the_numbers() {
        let cfg = TrainConfig::default();
        // 200 photos at 8000x6000 (what a phone gives without the size cap): 115 GB of images.
        let e = Estimate::new(&scene(200, 8000, 6000), &cfg, 100_000, true);
        assert_eq!(e.image_bytes, 200 * 8000 * 6000 * 12);
        let err = e.check(Some(80 << 30), "cuda:0").unwrap_err().to_string();
        assert!(
            err.contains("107.3 GiB") && err.contains("80.0 GiB is free"),
            "{err}"
        );
        // The same photos at the 1600 px default fit the images, and a warning names a cap.
        let e = Estimate::new(&scene(200, 1600, 1200), &cfg, 100_000, true);
        let warn = e
            .check(Some(6 << 30), "cuda:0")
            .unwrap()
            .expect("a warning");
        assert!(warn.contains("max_gaussians="), "{warn}");
        assert!(e.check(Some(64 << 30), "cuda:0").unwrap().is_none());
        assert!(e.check(None, "cpu").unwrap().is_none());
        // Time scales with iterations and pixels.
        let fast = TrainConfig {
            iterations: 7000,
            ..Default::default()
        };
        let e7 = Estimate::new(&scene(200, 1600, 1200), &fast, 100_000, true);
        assert!((e.seconds / e7.seconds - 30_000.0 / 7000.0).abs() < 1e-9);
    }

    #[test]
    fn too_little_disk_is_an_error_with_the_numbers_and_a_tight_one_a_warning() {
        let dir = std::path::Path::new("/out");
        let gb = 1u64 << 30;
        let err = check_disk(Some(gb), dir, "training", 2 * gb, 3 * gb).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/out") && msg.contains("2.0 GiB") && msg.contains("1.0 GiB"),
            "{msg}"
        );
        let warn = check_disk(Some(2 * gb + 1), dir, "training", 2 * gb, 3 * gb).unwrap();
        assert!(warn.expect("a warning").contains("3.0 GiB"));
        assert_eq!(
            check_disk(Some(4 * gb), dir, "training", 2 * gb, 3 * gb).unwrap(),
            None
        );
        assert_eq!(
            check_disk(None, dir, "training", 2 * gb, 3 * gb).unwrap(),
            None
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_seconds(40.0), "40 s");
        assert_eq!(human_seconds(720.0), "12 min");
        assert_eq!(human_seconds(12_600.0), "3.5 h");
    }
}
