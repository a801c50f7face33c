//! What the pipeline tells whoever runs it: stages starting and ending, results and notes,
//! progress of long tasks and training steps. The command line draws bars and prints lines
//! from these; a program embedding the pipeline may log them or ignore them (`()`).

use crate::job::StageName;

/// A long task with a known amount of work (one progress bar each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Task {
    /// Frame extraction from videos (units: videos).
    Frames,
    /// Structure from motion (the label is its current step).
    Sfm,
    /// SOG encoding (the label is its current step).
    Encode,
    /// Training iterations.
    Train,
    /// Configurations of a sweep.
    Sweep,
}

/// A line for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// A result ("registered 24/24 images, ...").
    Info,
    /// A choice the pipeline made for the user ("no usable GPU; using the CPU backend").
    Note,
}

/// One training step, as shown beside the progress bar.
#[derive(Clone, Debug)]
pub struct TrainStep {
    /// Iterations done.
    pub iteration: usize,
    /// Iterations planned.
    pub total: usize,
    /// Loss of this step.
    pub loss: f64,
    /// PSNR of this step's view (dB).
    pub psnr: f32,
    /// Gaussians now.
    pub gaussians: usize,
    /// Working image size.
    pub size: (u32, u32),
    /// Iterations per second since this run (or resume) began.
    pub rate: f64,
    /// The monitor PSNR, on the steps that measure it.
    pub monitor_psnr: Option<f32>,
}

/// An observer of the pipeline; every method has a silent default. Methods take `&self` and
/// the trait is `Sync` because some tasks report from worker threads.
pub trait Events: Sync {
    /// `stage` starts, or (`skipped`) finished in an earlier run and is skipped.
    fn stage_begin(&self, _stage: StageName, _skipped: bool) {}
    /// `stage` finished after `seconds`.
    fn stage_end(&self, _stage: StageName, _seconds: f64) {}
    /// A line for the user.
    fn message(&self, _kind: Message, _text: &str) {}
    /// `task` has done `done` of `total` units; `label` says what it is doing now.
    fn progress(&self, _task: Task, _label: &str, _done: u64, _total: u64) {}
    /// `task` ended (its bar can go).
    fn progress_end(&self, _task: Task) {}
    /// A training step finished.
    fn train_step(&self, _step: &TrainStep) {}
    /// Whether the Gaussians after training step `iteration` are wanted (a live view).
    fn wants_snapshot(&self, _iteration: usize) -> bool {
        false
    }
    /// The Gaussians after a training step, when [`Events::wants_snapshot`] asked for them.
    fn snapshot(&self, _iteration: usize, _gaussians: &splat_core::Gaussians) {}
    /// The views training is about to fit, once before its first step (a live view draws
    /// their cameras).
    fn training_views(&self, _views: &[splat_core::scene::View]) {}
}

/// The silent observer.
impl Events for () {}

impl dyn Events + '_ {
    /// A result line.
    pub fn info(&self, text: &str) {
        self.message(Message::Info, text);
    }

    /// A note.
    pub fn note(&self, text: &str) {
        self.message(Message::Note, text);
    }
}
