//! `--view` on `run` and `train`: the console's events, plus a live feed for the viewer page.

use std::sync::Arc;
use std::time::Duration;

use crate::{Events, Message, PipelineError, StageName, Task, TrainStep};
use spaceport_view::{LiveFeed, ServeOptions, Target, Viewer};

/// Forwards everything to `inner` and feeds steps and snapshots to the page.
pub struct LiveEvents<'a> {
    inner: &'a dyn Events,
    feed: Arc<LiveFeed>,
    _viewer: Viewer,
}

/// Starts the live page on 127.0.0.1 (port 8321, or a free one) and prints its URL. The
/// training cameras reach the page when training starts ([`Events::training_views`]).
pub fn start(inner: &dyn Events) -> Result<LiveEvents<'_>, PipelineError> {
    let feed = LiveFeed::new(Duration::from_secs(3));
    let opts = |port| ServeOptions {
        port,
        live: Some(feed.clone()),
        ..Default::default()
    };
    let viewer = Viewer::start(Target::live(vec![]), &opts(8321))
        .or_else(|_| Viewer::start(Target::live(vec![]), &opts(0)))?;
    let url = viewer.url();
    inner.info(&format!("live view on {url}"));
    spaceport_view::open_browser(&url);
    Ok(LiveEvents {
        inner,
        feed,
        _viewer: viewer,
    })
}

impl Events for LiveEvents<'_> {
    fn stage_begin(&self, stage: StageName, skipped: bool) {
        self.inner.stage_begin(stage, skipped)
    }
    fn stage_end(&self, stage: StageName, seconds: f64) {
        self.inner.stage_end(stage, seconds)
    }
    fn message(&self, kind: Message, text: &str) {
        self.inner.message(kind, text)
    }
    fn progress(&self, task: Task, label: &str, done: u64, total: u64) {
        self.inner.progress(task, label, done, total)
    }
    fn progress_end(&self, task: Task) {
        if task == Task::Train {
            self.feed.finish();
        }
        self.inner.progress_end(task)
    }
    fn train_step(&self, step: &TrainStep) {
        self.feed
            .step(step.iteration, step.total, step.loss, step.psnr);
        self.inner.train_step(step)
    }
    fn wants_snapshot(&self, _iteration: usize) -> bool {
        self.feed.snapshot_due()
    }
    fn training_views(&self, views: &[splat_core::scene::View]) {
        self.feed.set_views(views);
        self.inner.training_views(views)
    }
    fn snapshot(&self, iteration: usize, gaussians: &splat_core::Gaussians) {
        if let Err(e) = self.feed.snapshot(iteration, gaussians) {
            self.inner.note(&format!("live view: {e}"));
        }
    }
}
