//! The `spaceport` command line: argument parsing, progress bars and messages over the
//! `spaceport` library, which does the work.

mod cli;
mod console;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use console::{Console, STOP};
use spaceport::pipeline::{self, RunOutcome};
use spaceport::training::{self, Trained};
use spaceport::{live, tools, Events, Input, PipelineError, Recipe, RunConfig, RunOptions};
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
        Command::Render(a) => tools::render(a.ply.as_deref(), &a.out, (a.width, a.height), a.angle)
            .map(|r| done(format!("{r} -> {}", a.out.display()))),
        Command::Sfm(a) => cmd_sfm(a, &con),
        Command::Compress(a) => tools::compress_file(&a.input, &a.out, a.format, a.sh_bands, a.sort, &con)
            .map(|c| done(format!("{c} -> {}", a.out.display()))),
        Command::Decompress { input, out } => tools::decompress(&input, &out).map(|g| {
            let deg = g.sh_degree;
            done(format!("{} Gaussians (SH degree {deg}) -> {}", g.len(), out.display()))
        }),
        Command::GpuInfo => tools::gpu_self_test().map(|(description, max, n)| {
            done(format!("{description}\nself-test passed: {n} Gaussians at 160x120, GPU and CPU renders agree within {max:.1e}"))
        }),
        Command::Sweep { spec, out } => cmd_sweep(&spec, &out, &con),
        Command::View(a) => cmd_view(a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

/// A command that finished: its one-line result on stdout.
fn done(line: String) -> ExitCode {
    println!("{line}");
    ExitCode::SUCCESS
}

fn cmd_run(a: cli::RunArgs, con: &Console) -> CmdResult {
    let input = Input::from_args(
        a.colmap.as_deref(),
        a.transforms.as_deref(),
        a.images.as_deref(),
    )?;
    let recipe = Recipe {
        preset: a.preset,
        quick: a.quick,
        ..input.recipe()
    };
    let config = RunConfig::load(&recipe, a.settings.config.as_deref(), &a.assignments())?;
    if a.training.dump_config {
        print!("{}", config.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    (con as &dyn Events).note(&recipe.describe(&config.train));
    let (device, from, out) = (a.training.device, a.from, a.out);
    let opts = RunOptions {
        input,
        out,
        config,
        device,
        from,
    };
    match with_view(con, a.training.view, |events| {
        pipeline::run(&opts, &STOP, events)
    })? {
        RunOutcome::Finished { report, seconds } => {
            println!("{report}");
            println!("finished in {seconds:.1} s -> {}", opts.out.display());
            Ok(ExitCode::SUCCESS)
        }
        RunOutcome::Interrupted { message, .. } => interrupted(&message),
    }
}

fn cmd_train(a: cli::TrainArgs, con: &Console) -> CmdResult {
    let cfg = TrainConfig::default().overlaid(a.settings.config.as_deref(), &a.assignments())?;
    if a.training.dump_config {
        print!("{}", cfg.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(scene_path), Some(out)) = (a.scene, a.out) else {
        return Err(PipelineError::Invalid(
            "--scene and --out are required".into(),
        ));
    };
    let job = training::TrainJob {
        scene: scene_path,
        out: out.clone(),
        downscale: a.downscale,
        device: a.training.device,
        checkpoint_every: a.checkpoint_every,
        resume: a.resume,
    };
    match with_view(con, a.training.view, |events| {
        training::train_job(&job, cfg, &STOP, events)
    })? {
        Trained::Done(m) => {
            println!("done: {} -> {}", tools::train_summary(&m), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Trained::Interrupted {
            iteration,
            checkpoint,
        } => interrupted(&format!(
            "interrupted at iteration {iteration}: checkpoint written to {} (continue with --resume)",
            checkpoint.display()
        )),
    }
}

/// Runs `f` with Ctrl-C stopping training at a checkpoint and the console's events, which with
/// `--view` also feed a live page (the training cameras reach it when training starts).
fn with_view<T>(
    con: &Console,
    view: bool,
    f: impl FnOnce(&dyn Events) -> Result<T, PipelineError>,
) -> Result<T, PipelineError> {
    console::install_ctrlc();
    match view.then(|| live::start(con)).transpose()? {
        Some(l) => f(&l),
        None => f(con),
    }
}

/// A run stopped by Ctrl-C: `message` on stderr and the shell's exit status for SIGINT.
fn interrupted(message: &str) -> CmdResult {
    eprintln!("{message}");
    Ok(ExitCode::from(130))
}

fn cmd_sfm(a: cli::SfmArgs, con: &Console) -> CmdResult {
    let opts = RunConfig::sfm_options(a.settings.config.as_deref(), &a.assignments())?;
    spaceport::ensure_output_dir(&a.out)?;
    let r = tools::sfm(&opts, a.device, &a.images, &a.out, con)?;
    println!("{} -> {}", tools::sfm_summary(&r), a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_sweep(spec: &std::path::Path, out: &std::path::Path, con: &Console) -> CmdResult {
    for (i, r) in tools::sweep(spec, out, con)?.iter().enumerate() {
        println!("{i}: {}", tools::sweep_summary(r));
    }
    println!("results in {}", out.join("results.csv").display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_view(a: cli::ViewArgs) -> CmdResult {
    if a.html {
        let out = spaceport_view::report::write_report_html(&a.path)?;
        println!("wrote {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let (viewer, problem) = tools::serve(&a.path, a.port)?;
    if let Some(p) = problem {
        eprintln!("warning: {p} (the page will show this)");
    }
    let url = viewer.url();
    println!("serving {} on {url} (Ctrl-C to stop)", a.path.display());
    if !a.no_browser && !spaceport_view::open_browser(&url) {
        eprintln!("could not start a browser; open {url} yourself");
    }
    viewer.wait();
    Ok(ExitCode::SUCCESS)
}
