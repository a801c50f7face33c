//! Single steps the command line offers beside `run`: SfM alone, compression and
//! decompression, a render of a PLY or the demo scene, the GPU self-test and the sweep.
//! Each returns what it measured; the caller prints it.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use splat_core::scene::{Downscale, Scene};
use splat_core::{Backend, CpuBackend, Gaussians, RenderOptions};

use crate::config::{CompressConfig, Sort};
use crate::events::{Events, Task};
use crate::{PipelineError, Result};

/// The feature backend of SfM on `device`: `cuda` matches descriptors on the GPU (SIFT stays
/// on the CPU) and is an error without one; `auto` and `cpu` are the CPU.
pub fn sfm_backend(
    device: crate::Device,
    events: &dyn Events,
) -> Result<Box<dyn sfm_core::FeatureBackend>> {
    match device {
        // `auto` keeps SfM on the CPU, GPU or not: the CUDA matcher was written without a GPU
        // at hand and stays opt-in until its parity tests (`cargo test --release -p
        // splat-cuda --test gpu_match -- --ignored`) have passed on one.
        crate::Device::Auto | crate::Device::Cpu => Ok(Box::new(sfm_core::CpuFeatures)),
        crate::Device::Cuda => {
            let m = splat_cuda::CudaMatcher::new()
                .map_err(|e| PipelineError::Invalid(format!("--device cuda (SfM): {e}")))?;
            events.note(&format!(
                "SfM descriptor matching on {} (SIFT extraction on the CPU; this matcher has not yet been checked against the CPU's on a GPU)",
                sfm_core::FeatureBackend::name(&m)
            ));
            Ok(Box::new(m))
        }
    }
}

/// Runs SfM on the photos in `images` with feature matching on `device`, writing the COLMAP
/// scene into `out`.
pub fn sfm(
    opts: &sfm_core::SfmOptions,
    device: crate::Device,
    images: &Path,
    out: &Path,
    events: &dyn Events,
) -> Result<sfm_core::SfmReport> {
    let need =
        crate::estimate::dir_bytes(images) * crate::estimate::SFM_DISK_PER_INPUT_BYTE + (16 << 20);
    let free = spaceport_io::free_space(out);
    if let Some(w) = crate::estimate::check_disk(free, out, "structure from motion", need, need)? {
        events.note(&w);
    }
    let backend = sfm_backend(device, events)?;
    let report = sfm_core::run_with(
        opts,
        backend.as_ref(),
        images,
        out,
        &|stage, done, total| {
            events.progress(Task::Sfm, &format!("{stage:?}"), done as u64, total as u64);
        },
    );
    events.progress_end(Task::Sfm);
    let report = report?;
    announce_sfm_losses(&report, events);
    Ok(report)
}

/// One line for the user about a finished SfM run.
pub fn sfm_summary(r: &sfm_core::SfmReport) -> String {
    format!(
        "registered {}/{} images, {} points, mean track length {:.2}, mean reprojection error {:.3} px",
        r.registered_images, r.num_images, r.num_points, r.mean_track_length, r.mean_reprojection_error
    )
}

/// One line for the user about a finished training run.
pub fn train_summary(m: &splat_core::train::TrainMetrics) -> String {
    format!(
        "{} iterations ({:?}) on {} in {:.1} s: {} Gaussians, test PSNR {:.2} dB, SSIM {:.4}",
        m.iterations,
        m.stop_reason,
        m.backend,
        m.train_seconds,
        m.gaussians,
        m.test.psnr,
        m.test.ssim
    )
}

impl std::fmt::Display for Compressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} Gaussians: {} B PLY -> {} B SOG ({:.1}x smaller) in {:.1} s",
            self.gaussians, self.ply_bytes, self.sog_bytes, self.ratio, self.seconds
        )
    }
}

/// One line for the user about one configuration of a sweep.
pub fn sweep_summary(r: &splat_core::train::sweep::SweepResult) -> String {
    let vals: Vec<String> = r.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{} -> {:.2} dB, SSIM {:.4}, {:.1} s, {} Gaussians",
        vals.join(" "),
        r.psnr,
        r.ssim,
        r.seconds,
        r.gaussians
    )
}

/// Names, on the console as well as in `sfm_report.json`, every photo that did not make it
/// into the model and why: unreadable files, photos left unregistered, and the groups of
/// photos that formed models of their own, disconnected from the kept one.
fn announce_sfm_losses(r: &sfm_core::SfmReport, events: &dyn Events) {
    for u in &r.unreadable {
        events.note(&format!("skipped unreadable file {u}"));
    }
    if !r.unregistered.is_empty() {
        events.note(&format!(
            "{} of {} photos not registered: {}",
            r.unregistered.len(),
            r.num_images,
            r.unregistered.join(", ")
        ));
    }
    for (i, m) in r.other_models.iter().enumerate() {
        events.note(&format!(
            "disconnected group {} ({} photos, dropped: they share no verified view with the kept model): {}",
            i + 1,
            m.len(),
            m.join(", ")
        ));
    }
}

/// Encodes `g` to SOG, reporting progress.
pub fn encode(
    g: &Gaussians,
    opts: &sogs_codec::EncodeOptions,
    events: &dyn Events,
) -> Result<sogs_codec::SogFiles> {
    let files = sogs_codec::encode_sog(g, opts, &mut |p| {
        let label = format!("{:?}", p.stage);
        events.progress(Task::Encode, &label, p.done as u64, p.total as u64);
    });
    events.progress_end(Task::Encode);
    Ok(files?)
}

/// SOG output form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SogFormat {
    /// The single-file `.sog` bundle.
    Sog,
    /// A folder of meta.json and WebP images.
    SogDir,
}

/// What a compression wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Compressed {
    /// Gaussians.
    pub gaussians: usize,
    /// Size of the input PLY.
    pub ply_bytes: u64,
    /// Size of the output (all files of a folder).
    pub sog_bytes: u64,
    /// `ply_bytes / sog_bytes`.
    pub ratio: f64,
    /// Encoding wall time.
    pub seconds: f64,
}

/// Compresses the PLY `input` to `out` (`spaceport compress`).
pub fn compress_file(
    input: &Path,
    out: &Path,
    format: SogFormat,
    sh_bands: Option<usize>,
    sort: Sort,
    events: &dyn Events,
) -> Result<Compressed> {
    if let Some(b) = sh_bands.filter(|&b| b > 3) {
        return Err(PipelineError::Invalid(format!(
            "--sh-bands {b}: at most 3 (SH degree 3 has 3 bands above DC)"
        )));
    }
    let g = splat_core::ply::read_ply(input)?;
    let opts = sogs_codec::EncodeOptions {
        sh_bands,
        sort: sort.mode(),
        ..Default::default()
    };
    let t = Instant::now();
    let files = encode(&g, &opts, events)?;
    match format {
        SogFormat::Sog => sogs_codec::write_sog_bundle(&files, out)?,
        SogFormat::SogDir => sogs_codec::write_sog_dir(&files, out)?,
    }
    let ply_bytes = size_of(input);
    let sog_bytes = size_of(out);
    Ok(Compressed {
        gaussians: g.len(),
        ply_bytes,
        sog_bytes,
        ratio: ply_bytes as f64 / sog_bytes.max(1) as f64,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// The size of a file, or of the files in a folder (0 when unreadable).
fn size_of(p: &Path) -> u64 {
    if p.is_dir() {
        std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    } else {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }
}

/// Training views (at most) that weight the SH palette, and their longer side in pixels.
const PALETTE_WEIGHT_VIEWS: usize = 24;
const PALETTE_WEIGHT_SIZE: u32 = 256;

/// A compression checked against the scene it was trained on (the `compress` stage).
#[derive(Clone, Debug, Serialize)]
pub struct CheckedCompression {
    /// Sizes and time.
    #[serde(flatten)]
    pub sizes: Compressed,
    /// Test PSNR of the PLY.
    pub test_psnr_ply: f64,
    /// Test PSNR of the decoded SOG.
    pub test_psnr_sog: f64,
    /// Test views the PSNRs average.
    pub psnr_views: usize,
}

impl std::ops::Deref for CheckedCompression {
    type Target = Compressed;
    fn deref(&self) -> &Compressed {
        &self.sizes
    }
}

/// Compresses the PLY `ply` into the bundle `sog` with the SH palette weighted by the scene's
/// training cameras, and measures test PSNR before and after.
pub fn compress_for_scene(
    ply: &Path,
    sog: &Path,
    cfg: &CompressConfig,
    scene: &Scene,
    events: &dyn Events,
) -> Result<CheckedCompression> {
    let g = splat_core::ply::read_ply(ply)?;
    // The SH palette is fitted where the capture looks: weight it by how much each Gaussian
    // shows from (a sample of) the training cameras, not from virtual ones.
    let palette_weights = (g.sh_degree > 0 && cfg.sh_bands != Some(0)).then(|| {
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
        sogs_codec::blending_weights(&g, &cams, &mut |_, _| {})
    });
    let opts = sogs_codec::EncodeOptions {
        sh_bands: cfg.sh_bands,
        sort: cfg.sort.mode(),
        seed: cfg.seed,
        palette_weights,
        ..Default::default()
    };
    let t = Instant::now();
    let files = encode(&g, &opts, events)?;
    sogs_codec::write_sog_bundle(&files, sog)?;
    let seconds = t.elapsed().as_secs_f64();
    let ply_bytes = std::fs::metadata(ply)
        .map_err(|e| PipelineError::io(ply, e))?
        .len();
    let sog_bytes = std::fs::metadata(sog)
        .map_err(|e| PipelineError::io(sog, e))?
        .len();
    // Quality after compression: the decoded file rendered from the test views.
    let decoded = sogs_codec::read_sog(sog)?;
    Ok(CheckedCompression {
        sizes: Compressed {
            gaussians: g.len(),
            ply_bytes,
            sog_bytes,
            ratio: ply_bytes as f64 / sog_bytes.max(1) as f64,
            seconds,
        },
        test_psnr_ply: crate::eval::test_psnr(&g, scene),
        test_psnr_sog: crate::eval::test_psnr(&decoded, scene),
        psnr_views: scene.test.len().clamp(1, crate::eval::PSNR_CHECK_VIEWS),
    })
}

/// Decodes a SOG (v1 or v2, bundle or folder) to the PLY `out`; returns the Gaussians.
pub fn decompress(input: &Path, out: &Path) -> Result<Gaussians> {
    let g = sogs_codec::read_sog(input)?;
    splat_core::ply::write_ply(out, &g)?;
    Ok(g)
}

/// What a render drew.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Gaussians in the scene.
    pub gaussians: usize,
    /// Gaussians in view.
    pub visible: usize,
    /// Render wall time.
    pub seconds: f64,
    /// The renderer.
    pub backend: String,
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rendered {} Gaussians ({} visible) at {}x{} on {} in {:.3} s",
            self.gaussians, self.visible, self.width, self.height, self.backend, self.seconds
        )
    }
}

/// Renders the PLY `ply` (or the built-in demo scene) on the CPU from the demo orbit at
/// `angle_deg`, on white, into the PNG `out`.
pub fn render(
    ply: Option<&Path>,
    out: &Path,
    size: (u32, u32),
    angle_deg: f64,
) -> Result<Rendered> {
    check_render_request(size, angle_deg)?;
    let gaussians = match ply {
        Some(p) => splat_core::ply::read_ply(p)?,
        None => splat_core::demo::demo_gaussians(),
    };
    let (width, height) = size;
    let camera = splat_core::demo::demo_camera(width, height, angle_deg.to_radians());
    let started = Instant::now();
    let mut backend = CpuBackend;
    let opts = RenderOptions {
        background: [1.0; 3],
        ..Default::default()
    };
    let img = backend.render(&gaussians, &camera, &opts)?;
    let seconds = started.elapsed().as_secs_f64();
    let image = splat_core::scene::Image {
        width,
        height,
        data: img.image.iter().map(|v| v.clamp(0.0, 1.0)).collect(),
    };
    splat_core::scene::save_png(out, &image)?;
    Ok(Rendered {
        width,
        height,
        gaussians: gaussians.len(),
        visible: img.n_visible(),
        seconds,
        backend: backend.name(),
    })
}

/// Largest image `render` makes, in pixels (16384 x 16384 needs 3 GiB for the image alone).
pub const MAX_RENDER_PIXELS: u64 = 16384 * 16384;

/// Refuses an empty, huge or NaN render request before any work.
pub fn check_render_request((width, height): (u32, u32), angle_deg: f64) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(PipelineError::Invalid(format!(
            "render size {width}x{height}: width and height must be positive"
        )));
    }
    let px = width as u64 * height as u64;
    if px > MAX_RENDER_PIXELS || width > 16384 || height > 16384 {
        return Err(PipelineError::Invalid(format!(
            "render size {width}x{height}: at most 16384 pixels on a side"
        )));
    }
    if !angle_deg.is_finite() {
        return Err(PipelineError::Invalid(format!(
            "--angle {angle_deg}: must be a finite number of degrees"
        )));
    }
    Ok(())
}

/// The GPU's description and the largest difference between its render of the demo scene
/// and the CPU's; an error when there is no usable GPU or they differ by more than 1e-4.
pub fn gpu_self_test() -> Result<(String, f32, usize)> {
    let mut gpu = splat_cuda::CudaBackend::new()
        .map_err(|e| PipelineError::Invalid(format!("no usable GPU: {e}")))?;
    let description = gpu.describe()?;
    let g = splat_core::demo::demo_gaussians();
    let cam = splat_core::demo::demo_camera(160, 120, 0.7);
    let opts = RenderOptions {
        background: [1.0; 3],
        ..Default::default()
    };
    let a = gpu.render(&g, &cam, &opts)?;
    let b = CpuBackend.render(&g, &cam, &opts)?;
    let max = splat_core::loss::max_abs_diff(&a.image, &b.image);
    if max > 1e-4 {
        return Err(PipelineError::Invalid(format!(
            "{description}\nself-test FAILED: GPU and CPU renders differ by up to {max:.2e}"
        )));
    }
    Ok((description, max, g.len()))
}

/// Starts serving `path` (a `.sog`, a `.ply`, a SOG folder or a run folder) to the viewer page
/// on 127.0.0.1:`port` (0: a free one); also what is wrong with it, which the page shows too.
pub fn serve(path: &Path, port: u16) -> Result<(spaceport_view::Viewer, Option<String>)> {
    let target = spaceport_view::Target::open(path)?;
    let problem = target.problem.clone();
    let opts = spaceport_view::ServeOptions {
        port,
        ..Default::default()
    };
    Ok((spaceport_view::Viewer::start(target, &opts)?, problem))
}

/// Runs the sweep described in `spec` (YAML: scene, downscale, base, grid) on the CPU, writing
/// `results.csv` and `chart.png` into `out`.
pub fn sweep(
    spec: &Path,
    out: &Path,
    events: &dyn Events,
) -> Result<Vec<splat_core::train::sweep::SweepResult>> {
    use splat_core::train::sweep;
    let spec = sweep::SweepSpec::from_yaml_file(spec)?;
    let total = sweep::combinations(&spec.grid).len() as u64;
    events.progress(Task::Sweep, "", 0, total);
    let results = sweep::run_sweep(&spec, out, &mut CpuBackend, &mut |i, _, r| {
        let label = format!("last: {:.2} dB in {:.0} s", r.psnr, r.seconds);
        events.progress(Task::Sweep, &label, i as u64 + 1, total);
    });
    events.progress_end(Task::Sweep);
    Ok(results?)
}
