//! The terminal side of [`spaceport::Events`]: progress bars, `[stage]` lines and notes on
//! stderr, and the Ctrl-C handler that stops training with a checkpoint.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use spaceport::{Events, Message, StageName, Task, TrainStep};

/// Raised by Ctrl-C while training runs; the trainer then stops at the end of the step and
/// the driver writes a checkpoint, so nothing finished is lost.
pub static STOP: AtomicBool = AtomicBool::new(false);
/// Whether training runs (outside it, Ctrl-C ends the process at once: every other stage
/// writes to temporary paths, so nothing half-written is left behind).
static TRAINING: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler described at [`STOP`].
pub fn install_ctrlc() {
    // A second Ctrl-C while the checkpoint is being written is ignored on purpose.
    let _ = ctrlc::set_handler(|| {
        if TRAINING.load(Ordering::SeqCst) {
            STOP.store(true, Ordering::SeqCst);
        } else {
            std::process::exit(130);
        }
    });
}

/// Draws the pipeline's events on stderr.
pub struct Console {
    bars: Mutex<HashMap<Task, ProgressBar>>,
    /// Without a terminal the bars are hidden; training logs a line now and then instead.
    log_lines: bool,
}

impl Console {
    /// A console for this process's stderr.
    pub fn new() -> Self {
        Self {
            bars: Mutex::new(HashMap::new()),
            log_lines: !std::io::stderr().is_terminal(),
        }
    }

    fn with_bar(&self, task: Task, f: impl FnOnce(&ProgressBar)) {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bars.entry(task).or_insert_with(|| {
            let template = match task {
                Task::Train => "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
                Task::Sweep => "{bar:30} {pos}/{len} configurations {msg} [{elapsed_precise}]",
                Task::Sfm | Task::Encode => "{bar:30} {pos}/{len} {msg} [{elapsed_precise}]",
                Task::Frames => "{bar:30} {pos}/{len} videos [{elapsed_precise}]",
            };
            let bar = ProgressBar::new(1);
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        f(bar);
    }
}

impl Events for Console {
    fn stage_begin(&self, stage: StageName, skipped: bool) {
        match skipped {
            true => eprintln!("[{stage}] done earlier, skipped"),
            false => eprintln!("[{stage}] running"),
        }
    }

    fn stage_end(&self, stage: StageName, seconds: f64) {
        eprintln!("[{stage}] done in {seconds:.1} s");
    }

    fn message(&self, kind: Message, text: &str) {
        match kind {
            Message::Info => eprintln!("{text}"),
            Message::Note => eprintln!("note: {text}"),
        }
    }

    fn progress(&self, task: Task, label: &str, done: u64, total: u64) {
        if task == Task::Train {
            TRAINING.store(true, Ordering::SeqCst);
        }
        self.with_bar(task, |bar| {
            bar.set_length(total);
            bar.set_position(done);
            if !label.is_empty() {
                bar.set_message(label.to_string());
            }
        });
    }

    fn progress_end(&self, task: Task) {
        let bar = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&task);
        if let Some(bar) = bar {
            match task {
                Task::Train | Task::Sweep => bar.finish(),
                Task::Sfm | Task::Encode | Task::Frames => bar.finish_and_clear(),
            }
        }
        if task == Task::Train {
            TRAINING.store(false, Ordering::SeqCst);
        }
    }

    fn train_step(&self, s: &TrainStep) {
        self.with_bar(Task::Train, |bar| {
            bar.set_position(s.iteration as u64);
            if s.iteration % 10 != 0 && s.monitor_psnr.is_none() {
                return;
            }
            let mon = s
                .monitor_psnr
                .map(|p| format!(" monitor {p:.2} dB"))
                .unwrap_or_default();
            let msg = format!(
                "loss {:.4} psnr {:.2} | {} G | {}x{} | {:.1} it/s{mon}",
                s.loss, s.psnr, s.gaussians, s.size.0, s.size.1, s.rate
            );
            if self.log_lines && (s.iteration % 100 == 0 || s.monitor_psnr.is_some()) {
                eprintln!("[{}/{}] {msg}", s.iteration, s.total);
            }
            bar.set_message(msg);
        });
    }
}
