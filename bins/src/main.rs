//! The `spaceport` command line: argument parsing, progress bars and messages over the
//! `spaceport` library, which does the work.

mod console;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use console::{Console, STOP};
use spaceport::args::{self, Cli, Command};
use spaceport::pipeline::{self, RunOutcome};
use spaceport::training::{self, Trained};
use spaceport::{live, tools, Events, PipelineError};

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

fn cmd_run(a: args::RunArgs, con: &Console) -> CmdResult {
    let (recipe, opts) = a.resolve()?;
    if a.training.dump_config {
        print!("{}", opts.config.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    (con as &dyn Events).note(&recipe.describe(&opts.config.train));
    match with_view(con, a.training.view, |events| {
        pipeline::run(&opts, &STOP, events)
    })? {
        RunOutcome::Finished { report, seconds } => {
            println!("{report}");
            Ok(done(format!(
                "finished in {seconds:.1} s -> {}",
                opts.out.display()
            )))
        }
        RunOutcome::Interrupted { message, .. } => interrupted(&message),
    }
}

fn cmd_train(a: args::TrainArgs, con: &Console) -> CmdResult {
    let cfg = a.config()?;
    if a.training.dump_config {
        print!("{}", cfg.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let job = a.job()?;
    match with_view(con, a.training.view, |events| {
        training::train_job(&job, cfg, &STOP, events)
    })? {
        Trained::Done(m) => Ok(done(format!(
            "done: {} -> {}",
            tools::train_summary(&m),
            job.out.display()
        ))),
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

fn cmd_sfm(a: args::SfmArgs, con: &Console) -> CmdResult {
    let opts = a.options()?;
    spaceport::ensure_output_dir(&a.out)?;
    let r = tools::sfm(&opts, a.device, &a.images, &a.out, con)?;
    Ok(done(format!(
        "{} -> {}",
        tools::sfm_summary(&r),
        a.out.display()
    )))
}

fn cmd_sweep(spec: &Path, out: &Path, con: &Console) -> CmdResult {
    for (i, r) in tools::sweep(spec, out, con)?.iter().enumerate() {
        println!("{i}: {}", tools::sweep_summary(r));
    }
    Ok(done(format!(
        "results in {}",
        out.join("results.csv").display()
    )))
}

fn cmd_view(a: args::ViewArgs) -> CmdResult {
    if a.html {
        let out = spaceport_view::report::write_report_html(&a.path)?;
        return Ok(done(format!("wrote {}", out.display())));
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
