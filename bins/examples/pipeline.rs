//! The whole pipeline from another program: the `spaceport` library with an observer of its
//! own (here: plain log lines instead of progress bars), and the job manifest read back.
//!
//! `cargo run --release -p spaceport --example pipeline -- [PHOTOS|builtin] [OUT] [fast|default|best]`
//!
//! Defaults: the built-in scene (`--quick` size), `$TMPDIR/spaceport-example-pipeline`, the
//! default preset. Give a folder of photos or a video for a real capture.
use std::sync::atomic::AtomicBool;

use spaceport::{
    pipeline, Device, Events, Input, Job, Message, Preset, Recipe, RunConfig, RunOptions,
    StageName, Task, TrainStep,
};

/// Prints what the pipeline reports, one line each.
struct Log;

impl Events for Log {
    fn stage_begin(&self, stage: StageName, skipped: bool) {
        println!(
            "{stage}: {}",
            if skipped { "done earlier" } else { "start" }
        );
    }
    fn stage_end(&self, stage: StageName, seconds: f64) {
        println!("{stage}: done in {seconds:.1} s");
    }
    fn message(&self, _kind: Message, text: &str) {
        println!("  {text}");
    }
    fn progress(&self, task: Task, label: &str, done: u64, total: u64) {
        if done == total {
            println!("  {task:?} {label}: {total} done");
        }
    }
    fn train_step(&self, s: &TrainStep) {
        if s.iteration % 250 == 0 {
            println!(
                "  iteration {}/{}: {:.2} dB, {} Gaussians",
                s.iteration, s.total, s.psnr, s.gaussians
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let input = match args.first().map(String::as_str) {
        None | Some("builtin") => Input::Builtin,
        Some(p) => Input::images(p)?,
    };
    let out = args
        .get(1)
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join("spaceport-example-pipeline"));
    let preset = match args.get(2).map(String::as_str) {
        Some("fast") => Preset::Fast,
        Some("best") => Preset::Best,
        _ => Preset::Default,
    };
    // The defaults of this kind of input and preset (the built-in scene at its quick size),
    // with one setting changed the way `--set` does.
    let recipe = Recipe {
        preset,
        quick: matches!(input, Input::Builtin),
        ..input.recipe()
    };
    let sets = [splat_core::config::parse_assignment(
        "compress.sort=morton",
    )?];
    let config = RunConfig::load(&recipe, None, &sets)?;
    let opts = RunOptions {
        input,
        out,
        config,
        device: Device::Auto,
        from: None,
    };
    let stop = AtomicBool::new(false);
    match pipeline::run(&opts, &stop, &Log)? {
        pipeline::RunOutcome::Finished { seconds, .. } => println!("finished in {seconds:.1} s"),
        pipeline::RunOutcome::Interrupted { message, .. } => println!("{message}"),
    }
    // job.json holds each stage's status, times, metrics and artifacts.
    let job: Job = serde_json::from_str(&std::fs::read_to_string(opts.out.join("job.json"))?)?;
    for s in &job.stages {
        println!(
            "{}: {:?}, {:.1} s",
            s.name,
            s.status,
            s.seconds.unwrap_or(0.0)
        );
    }
    Ok(())
}
