//! The `spaceport` command line: argument parsing, progress bars and messages over the
//! `spaceport` library, which does the work.

mod cli;
mod console;
mod live;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use console::{Console, STOP};
use spaceport::pipeline::{self, RunOutcome};
use spaceport::training::{self, Resume, TrainOptions, Trained};
use spaceport::{tools, Input, PipelineError, RunConfig, RunOptions};
use splat_core::scene::{load_scene, Downscale, LoadOptions};
use splat_core::train::TrainConfig;

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
    Run(cli::RunArgs),
    /// Render Gaussians to a PNG: a PLY file, or the built-in demo scene when none is given.
    Render(cli::RenderArgs),
    /// Train a 3DGS scene from posed images (COLMAP or NeRF/nerfstudio transforms).
    Train(cli::TrainArgs),
    /// Structure from motion: a folder of photos to a COLMAP model and undistorted images.
    Sfm(cli::SfmArgs),
    /// Compress a 3DGS PLY to PlayCanvas's SOG format.
    Compress(cli::CompressArgs),
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
    View(cli::ViewArgs),
    /// Run a grid of training configurations on one scene (results.csv + chart.png).
    Sweep {
        /// Sweep description (YAML: scene, downscale, base, grid).
        spec: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "sweep-out")]
        out: PathBuf,
    },
}

type CmdResult = Result<ExitCode, PipelineError>;

fn main() -> ExitCode {
    let con = Console::new();
    let result = match Cli::parse().command {
        Command::Run(a) => cmd_run(a, &con),
        Command::Train(a) => cmd_train(a, &con),
        Command::Render(a) => cmd_render(a),
        Command::Sfm(a) => cmd_sfm(a, &con),
        Command::Compress(a) => cmd_compress(a, &con),
        Command::Decompress { input, out } => tools::decompress(&input, &out).map(|g| {
            let deg = g.sh_degree;
            println!("{} Gaussians (SH degree {deg}) -> {}", g.len(), out.display());
            ExitCode::SUCCESS
        }),
        Command::GpuInfo => tools::gpu_self_test().map(|(description, max, n)| {
            println!("{description}");
            println!("self-test passed: {n} Gaussians at 160x120, GPU and CPU renders agree within {max:.1e}");
            ExitCode::SUCCESS
        }),
        Command::Sweep { spec, out } => cmd_sweep(&spec, &out, &con),
        Command::View(a) => cmd_view(a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

fn cmd_run(a: cli::RunArgs, con: &Console) -> CmdResult {
    let config = RunConfig::load(a.config.as_deref(), a.quick, &a.assignments())?;
    if a.dump_config {
        print!("{}", config.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let input = match (&a.colmap, &a.transforms, &a.images) {
        (Some(p), _, _) => Input::colmap(p)?,
        (_, Some(p), _) => Input::transforms(p)?,
        (_, _, Some(p)) => Input::images(p)?,
        _ => Input::Builtin,
    };
    let (device, from, out) = (a.device, a.from, a.out);
    let opts = RunOptions {
        input,
        out,
        config,
        device,
        from,
    };
    console::install_ctrlc();
    let live = a.view.then(|| live::start(con, vec![])).transpose()?;
    let events: &dyn spaceport::Events = match &live {
        Some(l) => l,
        None => con,
    };
    match pipeline::run(&opts, &STOP, events)? {
        RunOutcome::Finished { report, seconds } => {
            println!("{report}");
            println!("finished in {seconds:.1} s -> {}", opts.out.display());
            Ok(ExitCode::SUCCESS)
        }
        RunOutcome::Interrupted { message, .. } => {
            eprintln!("{message}");
            Ok(ExitCode::from(130))
        }
    }
}

fn cmd_train(a: cli::TrainArgs, con: &Console) -> CmdResult {
    let cfg = TrainConfig::default().overlaid(a.config.as_deref(), &a.assignments())?;
    if a.dump_config {
        print!("{}", cfg.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(scene_path), Some(out)) = (a.scene, a.out) else {
        return Err(PipelineError::Invalid(
            "--scene and --out are required".into(),
        ));
    };
    let mut backend = training::make_backend(a.device, con)?;
    let load = LoadOptions {
        downscale: a.downscale.map(Downscale::Factor).unwrap_or_default(),
        background: cfg.background.unwrap_or([0.0; 3]),
        ..Default::default()
    };
    let t = Instant::now();
    let scene = load_scene(&scene_path, &load)?;
    let secs = t.elapsed().as_secs_f64();
    let (train, test) = (scene.train.len(), scene.test.len());
    eprintln!(
        "loaded {}: {train} training and {test} test views in {secs:.1} s",
        scene.name
    );
    let opts = TrainOptions {
        checkpoint: out.join("checkpoint.bin"),
        out: out.clone(),
        checkpoint_every: a.checkpoint_every,
        resume: if a.resume {
            Resume::Required
        } else {
            Resume::Never
        },
        final_checkpoint: a.checkpoint_every > 0,
    };
    console::install_ctrlc();
    let cams = || scene.train.iter().map(live::camera).collect();
    let live = a.view.then(|| live::start(con, cams())).transpose()?;
    let events: &dyn spaceport::Events = match &live {
        Some(l) => l,
        None => con,
    };
    match training::train(&scene, cfg, backend.as_mut(), &opts, &STOP, events)? {
        Trained::Done(m) => {
            println!(
                "done: {} iterations ({:?}) in {:.1} s, {} Gaussians, test PSNR {:.2} dB, SSIM {:.4} -> {}",
                m.iterations, m.stop_reason, m.train_seconds, m.gaussians, m.test.psnr, m.test.ssim,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Trained::Interrupted {
            iteration,
            checkpoint,
        } => {
            let at = checkpoint.display();
            eprintln!("interrupted at iteration {iteration}: checkpoint written to {at} (continue with --resume)");
            Ok(ExitCode::from(130))
        }
    }
}

fn cmd_render(a: cli::RenderArgs) -> CmdResult {
    let r = tools::render(a.ply.as_deref(), &a.out, (a.width, a.height), a.angle)?;
    println!(
        "rendered {} Gaussians ({} visible) at {}x{} on {} in {:.3} s -> {}",
        r.gaussians,
        r.visible,
        a.width,
        a.height,
        r.backend,
        r.seconds,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_sfm(a: cli::SfmArgs, con: &Console) -> CmdResult {
    let opts = RunConfig::sfm_options(a.config.as_deref(), &a.assignments())?;
    let r = tools::sfm(&opts, &a.images, &a.out, con)?;
    println!(
        "registered {}/{} images, {} points, mean track length {:.2}, mean reprojection error {:.3} px -> {}",
        r.registered_images, r.num_images, r.num_points, r.mean_track_length,
        r.mean_reprojection_error, a.out.display()
    );
    if !r.unregistered.is_empty() {
        println!("not registered: {}", r.unregistered.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_compress(a: cli::CompressArgs, con: &Console) -> CmdResult {
    let c = tools::compress_file(&a.input, &a.out, a.format, a.sh_bands, a.sort, con)?;
    println!(
        "{} Gaussians -> {} ({} bytes, {:.1}x smaller than the PLY) in {:.1} s",
        c.gaussians,
        a.out.display(),
        c.sog_bytes,
        c.ratio,
        c.seconds
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_sweep(spec: &std::path::Path, out: &std::path::Path, con: &Console) -> CmdResult {
    let results = tools::sweep(spec, out, con)?;
    for (i, r) in results.iter().enumerate() {
        let vals: Vec<String> = r.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{i}: {} -> {:.2} dB, SSIM {:.4}, {:.1} s, {} Gaussians",
            vals.join(" "),
            r.psnr,
            r.ssim,
            r.seconds,
            r.gaussians
        );
    }
    println!("results in {}", out.join("results.csv").display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_view(a: cli::ViewArgs) -> CmdResult {
    let err = |e: spaceport_view::ViewError| PipelineError::Invalid(e.to_string());
    if a.html {
        let out = spaceport_view::report::write_report_html(&a.path).map_err(err)?;
        println!("wrote {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let target = spaceport_view::Target::open(&a.path).map_err(err)?;
    if let Some(p) = &target.problem {
        eprintln!("warning: {p} (the page will show this)");
    }
    let opts = spaceport_view::ServeOptions {
        port: a.port,
        ..Default::default()
    };
    let viewer = spaceport_view::Viewer::start(target, &opts).map_err(err)?;
    let url = viewer.url();
    println!("serving {} on {url} (Ctrl-C to stop)", a.path.display());
    if !a.no_browser && !spaceport_view::open_browser(&url) {
        eprintln!("could not start a browser; open {url} yourself");
    }
    viewer.wait();
    Ok(ExitCode::SUCCESS)
}
