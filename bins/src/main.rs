//! The `spaceport` command line: argument parsing, progress bars and messages over the
//! `spaceport` library, which does the work.

mod cli;
mod console;
mod live;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use console::{Console, STOP};
use spaceport::pipeline::{self, RunOutcome};
use spaceport::training::{self, Trained};
use spaceport::{tools, Events, Input, PipelineError, Recipe, RunConfig, RunOptions};
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
    if a.dump_config {
        print!("{}", config.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    (con as &dyn Events).note(&recipe.describe(&config.train));
    let (device, from, out) = (a.device, a.from, a.out);
    let opts = RunOptions {
        input,
        out,
        config,
        device,
        from,
    };
    console::install_ctrlc();
    let live = a.view.then(|| live::start(con)).transpose()?;
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
    let cfg = TrainConfig::default().overlaid(a.settings.config.as_deref(), &a.assignments())?;
    if a.dump_config {
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
        device: a.device,
        checkpoint_every: a.checkpoint_every,
        resume: a.resume,
    };
    console::install_ctrlc();
    let live = a.view.then(|| live::start(con)).transpose()?;
    let events: &dyn spaceport::Events = match &live {
        Some(l) => l,
        None => con,
    };
    match training::train_job(&job, cfg, &STOP, events)? {
        Trained::Done(m) => {
            println!("done: {} -> {}", tools::train_summary(&m), out.display());
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
    let opts = RunConfig::sfm_options(a.settings.config.as_deref(), &a.assignments())?;
    spaceport::ensure_output_dir(&a.out)?;
    let r = tools::sfm(&opts, &a.images, &a.out, con)?;
    println!("{} -> {}", tools::sfm_summary(&r), a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_compress(a: cli::CompressArgs, con: &Console) -> CmdResult {
    let c = tools::compress_file(&a.input, &a.out, a.format, a.sh_bands, a.sort, con)?;
    println!("{c} -> {}", a.out.display());
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
