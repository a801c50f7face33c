//! The `spaceport` command line.

mod codec_cmd;
mod config;
mod job;
mod report;
mod run_cmd;
mod train_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use splat_core::{Backend, CpuBackend, RenderOptions};

#[derive(Parser)]
#[command(
    name = "spaceport",
    version,
    about = "Photos to a trained, compressed 3D Gaussian Splatting scene"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Photos in, trained splat and .sog out: sfm -> train -> compress -> report, resumable
    /// (job.json). With no input it runs on the built-in scene.
    Run(run_cmd::RunArgs),
    /// Render Gaussians to a PNG: a PLY file, or the built-in demo scene when none is given.
    Render {
        /// Gaussians in the standard 3DGS PLY layout (default: the built-in demo scene).
        #[arg(long)]
        ply: Option<PathBuf>,
        /// Output PNG.
        #[arg(long, short, default_value = "render.png")]
        out: PathBuf,
        /// Image width.
        #[arg(long, default_value_t = 640)]
        width: u32,
        /// Image height.
        #[arg(long, default_value_t = 480)]
        height: u32,
        /// Camera angle on the orbit around the scene, in degrees.
        #[arg(long, default_value_t = 30.0)]
        angle: f64,
    },
    /// Train a 3DGS scene from posed images (COLMAP or NeRF/nerfstudio transforms).
    Train(train_cmd::TrainArgs),
    /// Structure from motion: a folder of photos to a COLMAP model and undistorted images.
    Sfm {
        /// Folder of photos.
        #[arg(long)]
        images: PathBuf,
        /// Output folder (sparse/0, images/, sfm_report.json).
        #[arg(long)]
        out: PathBuf,
        /// Longest image side used for features (larger images are downscaled).
        #[arg(long)]
        max_image_size: Option<u32>,
        /// A `spaceport run` config file; its `sfm` section is used (e.g. configs/*.yaml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Compress a 3DGS PLY to PlayCanvas's SOG format.
    Compress {
        /// Input PLY (standard 3DGS layout).
        input: PathBuf,
        /// Output `.sog` file (or folder with `--format sog-dir`).
        #[arg(short, long)]
        out: PathBuf,
        /// Output form.
        #[arg(long, value_enum, default_value = "sog")]
        format: codec_cmd::SogFormat,
        /// SH bands above DC to keep (default: all the input has).
        #[arg(long)]
        sh_bands: Option<usize>,
        /// Texel layout.
        #[arg(long, value_enum, default_value = "hilbert")]
        sort: codec_cmd::Sort,
    },
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
    /// Run a grid of training configurations on one scene (results.csv + chart.png).
    Sweep {
        /// Sweep description (YAML: scene, downscale, base, grid).
        spec: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "sweep-out")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render {
            ply,
            out,
            width,
            height,
            angle,
        } => cmd_render(ply.as_deref(), &out, width, height, angle).map(|_| ExitCode::SUCCESS),
        Command::Run(args) => run_cmd::run(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Sfm {
            images,
            out,
            max_image_size,
            config,
        } => cmd_sfm(&images, &out, max_image_size, config.as_deref()).map(|_| ExitCode::SUCCESS),
        Command::Compress {
            input,
            out,
            format,
            sh_bands,
            sort,
        } => codec_cmd::compress(&input, &out, format, sh_bands, sort).map(|_| ExitCode::SUCCESS),
        Command::Decompress { input, out } => {
            codec_cmd::decompress(&input, &out).map(|_| ExitCode::SUCCESS)
        }
        Command::GpuInfo => cmd_gpu_info().map(|_| ExitCode::SUCCESS),
        Command::Sweep { spec, out } => train_cmd::sweep(&spec, &out).map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors bins report: any library error, printed once.
pub type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs SfM with a progress bar per stage.
pub fn run_sfm(
    opts: &sfm_core::pipeline::SfmOptions,
    images: &Path,
    out: &Path,
) -> AnyResult<sfm_core::pipeline::SfmReport> {
    let bar = progress_bar(1, "{bar:30} {pos}/{len} {msg} [{elapsed_precise}]");
    let report = sfm_core::pipeline::run(opts, images, out, &|stage, done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("{stage:?}"));
    })?;
    bar.finish_and_clear();
    Ok(report)
}

/// A progress bar of `len` steps drawn with `template` (indicatif syntax).
pub fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn cmd_render(
    ply: Option<&Path>,
    out: &Path,
    width: u32,
    height: u32,
    angle: f64,
) -> AnyResult<()> {
    let gaussians = match ply {
        Some(p) => splat_core::ply::read_ply(p)?,
        None => splat_core::demo::demo_gaussians(),
    };
    let camera = splat_core::demo::demo_camera(width, height, angle.to_radians());
    let started = std::time::Instant::now();
    let mut backend = CpuBackend;
    let opts = RenderOptions {
        background: [1.0; 3],
        ..Default::default()
    };
    let img = backend.render(&gaussians, &camera, &opts)?;
    let secs = started.elapsed().as_secs_f64();
    let image = splat_core::scene::Image {
        width,
        height,
        data: img.image.iter().map(|v| v.clamp(0.0, 1.0)).collect(),
    };
    splat_core::scene::save_png(out, &image)?;
    println!(
        "rendered {} Gaussians ({} visible) at {width}x{height} on {} in {:.3} s -> {}",
        gaussians.len(),
        img.n_visible(),
        backend.name(),
        secs,
        out.display()
    );
    Ok(())
}

fn cmd_gpu_info() -> AnyResult<()> {
    let mut gpu = splat_cuda::CudaBackend::new().map_err(|e| format!("no usable GPU: {e}"))?;
    println!("{}", gpu.describe()?);
    // Self-test: the demo scene on the GPU against the CPU reference.
    let g = splat_core::demo::demo_gaussians();
    let cam = splat_core::demo::demo_camera(160, 120, 0.7);
    let opts = RenderOptions {
        background: [1.0; 3],
        ..Default::default()
    };
    let a = gpu.render(&g, &cam, &opts)?;
    let b = CpuBackend.render(&g, &cam, &opts)?;
    let max = a
        .image
        .iter()
        .zip(&b.image)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    if max > 1e-4 {
        return Err(
            format!("self-test FAILED: GPU and CPU renders differ by up to {max:.2e}").into(),
        );
    }
    println!(
        "self-test passed: {} Gaussians at 160x120, GPU and CPU renders agree within {max:.1e}",
        g.len()
    );
    Ok(())
}

fn cmd_sfm(
    images: &Path,
    out: &Path,
    max_image_size: Option<u32>,
    config: Option<&Path>,
) -> AnyResult<()> {
    let mut opts = match config {
        Some(p) => run_cmd::RunConfig::load(Some(p), false)?.sfm,
        None => sfm_core::pipeline::SfmOptions::default(),
    };
    if let Some(m) = max_image_size {
        opts.max_image_size = m;
    }
    let report = run_sfm(&opts, images, out)?;
    println!(
        "registered {}/{} images, {} points, mean track length {:.2}, mean reprojection error {:.3} px -> {}",
        report.registered_images,
        report.num_images,
        report.num_points,
        report.mean_track_length,
        report.mean_reprojection_error,
        out.display()
    );
    if !report.unregistered.is_empty() {
        println!("not registered: {}", report.unregistered.join(", "));
    }
    Ok(())
}
