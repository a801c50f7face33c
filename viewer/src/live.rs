//! The live training view: training hands its Gaussians over every few seconds and its loss and
//! PSNR every step; the page follows over server-sent events (`/api/events`) and reloads the
//! snapshot (`/api/snapshot.ply`) when a new one is announced.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use splat_core::scene::View;
use splat_core::Gaussians;

use crate::target::CameraInfo;

/// Steps kept for the curves; older ones are thinned to every second step when it fills.
const MAX_HISTORY: usize = 4000;

/// Longest side of the photos shown beside the render (the training images themselves can be
/// many megapixels and are kept in memory only as small JPEGs).
const PHOTO_SIDE: u32 = 640;

#[derive(Default)]
struct State {
    /// Number of snapshots published (0: none yet).
    version: u64,
    ply: Arc<Vec<u8>>,
    /// (iteration, loss, psnr) per kept step.
    history: Vec<[f64; 3]>,
    /// Bumped on every history change, so that a thinned history is sent again whole.
    history_epoch: u64,
    iteration: usize,
    total: usize,
    gaussians: usize,
    done: bool,
    last_snapshot: Option<Instant>,
    /// The training cameras, for the frusta; `image` is the index into `photos`.
    cameras: Vec<CameraInfo>,
    /// JPEG thumbnails of the training images, camera for camera.
    photos: Vec<Arc<Vec<u8>>>,
}

/// What training publishes for the live page; shared between the trainer's thread and the
/// server's.
pub struct LiveFeed {
    state: Mutex<State>,
    changed: Condvar,
    /// Time between snapshots.
    pub interval: Duration,
}

impl std::fmt::Debug for LiveFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (version, _) = self.latest();
        f.debug_struct("LiveFeed")
            .field("version", &version)
            .finish()
    }
}

impl LiveFeed {
    /// A feed that asks for a snapshot every `interval`.
    pub fn new(interval: Duration) -> Arc<LiveFeed> {
        Arc::new(LiveFeed {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            interval,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data; keep serving it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one training step.
    pub fn step(&self, iteration: usize, total: usize, loss: f64, psnr: f32) {
        let mut s = self.lock();
        s.iteration = iteration;
        s.total = total;
        if s.history.len() >= MAX_HISTORY {
            let thinned: Vec<[f64; 3]> = s.history.iter().step_by(2).copied().collect();
            s.history = thinned;
            s.history_epoch += 1;
        }
        s.history.push([iteration as f64, loss, psnr as f64]);
        self.changed.notify_all();
    }

    /// Sets the training views: their cameras are drawn as frusta and their images shown
    /// beside the render after a jump (as small JPEGs served at `/api/photo/K.jpg`).
    pub fn set_views(&self, views: &[View]) {
        // Training waits for this: shrink and encode on every core (a few ms per photo).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = views.len().div_ceil(threads).max(1);
        let jpegs: Vec<Option<Vec<u8>>> = std::thread::scope(|sc| {
            let jobs: Vec<_> = views
                .chunks(chunk)
                .map(|c| {
                    let h = sc.spawn(move || c.iter().map(|v| thumbnail_jpeg(&v.image)).collect());
                    (c.len(), h)
                })
                .collect();
            jobs.into_iter()
                .flat_map(|(n, h)| h.join().unwrap_or_else(|_| vec![None; n]))
                .collect()
        });
        let mut cameras = Vec::with_capacity(views.len());
        let mut photos = Vec::with_capacity(views.len());
        for ((k, v), photo) in views.iter().enumerate().zip(jpegs) {
            cameras.push(CameraInfo {
                name: v.name.clone(),
                camera: v.camera.clone(),
                image: photo.as_ref().map(|_| format!("/api/photo/{k}.jpg")),
            });
            photos.push(Arc::new(photo.unwrap_or_default()));
        }
        let mut s = self.lock();
        s.cameras = cameras;
        s.photos = photos;
        self.changed.notify_all();
    }

    /// The training cameras set by [`LiveFeed::set_views`]; `image` is the photo's URL.
    pub fn cameras(&self) -> Vec<CameraInfo> {
        self.lock().cameras.clone()
    }

    /// The JPEG of training view `k`, if it has one.
    pub fn photo(&self, k: usize) -> Option<Arc<Vec<u8>>> {
        self.lock().photos.get(k).filter(|p| !p.is_empty()).cloned()
    }

    /// Whether a snapshot is due (none yet, or `interval` since the last).
    pub fn snapshot_due(&self) -> bool {
        self.lock()
            .last_snapshot
            .is_none_or(|t| t.elapsed() >= self.interval)
    }

    /// Publishes the Gaussians after `iteration`.
    pub fn snapshot(
        &self,
        iteration: usize,
        g: &Gaussians,
    ) -> Result<(), splat_core::ply::PlyError> {
        let bytes = splat_core::ply::encode_ply(std::path::Path::new("snapshot.ply"), g)?;
        let mut s = self.lock();
        s.ply = Arc::new(bytes);
        s.version += 1;
        s.iteration = s.iteration.max(iteration);
        s.gaussians = g.len();
        s.last_snapshot = Some(Instant::now());
        self.changed.notify_all();
        Ok(())
    }

    /// Training ended; the last snapshot stays.
    pub fn finish(&self) {
        self.lock().done = true;
        self.changed.notify_all();
    }

    /// The latest snapshot as PLY bytes and its version (0 and empty before the first).
    pub fn latest(&self) -> (u64, Arc<Vec<u8>>) {
        let s = self.lock();
        (s.version, s.ply.clone())
    }

    /// An endless server-sent-event stream for one page.
    pub(crate) fn events(self: &Arc<Self>) -> SseStream {
        SseStream {
            feed: self.clone(),
            sent_steps: 0,
            sent_epoch: u64::MAX,
            sent_version: u64::MAX,
            sent_done: false,
        }
    }
}

/// One page's `/api/events` stream: [`SseStream::next_event`] blocks until there is news and
/// returns one `data:` event (at most about 5 a second; a keep-alive comment when idle).
pub(crate) struct SseStream {
    feed: Arc<LiveFeed>,
    sent_steps: usize,
    sent_epoch: u64,
    sent_version: u64,
    sent_done: bool,
}

impl SseStream {
    pub(crate) fn next_event(&mut self) -> Vec<u8> {
        std::thread::sleep(Duration::from_millis(200));
        let feed = self.feed.clone();
        let mut s = feed.lock();
        let news = |s: &State, me: &SseStream| {
            s.version != me.sent_version
                || s.history_epoch != me.sent_epoch
                || s.history.len() != me.sent_steps
                || s.done != me.sent_done
        };
        if !news(&s, self) {
            let (g, _) = feed
                .changed
                .wait_timeout_while(s, Duration::from_secs(15), |st| !news(st, self))
                .unwrap_or_else(|e| e.into_inner());
            s = g;
            if !news(&s, self) {
                return b": idle\n\n".to_vec();
            }
        }
        let whole = s.history_epoch != self.sent_epoch;
        let from = if whole {
            0
        } else {
            self.sent_steps.min(s.history.len())
        };
        let msg = serde_json::json!({
            "version": s.version,
            "iteration": s.iteration,
            "total": s.total,
            "gaussians": s.gaussians,
            "done": s.done,
            "reset": whole,
            "steps": &s.history[from..],
        });
        self.sent_version = s.version;
        self.sent_epoch = s.history_epoch;
        self.sent_steps = s.history.len();
        self.sent_done = s.done;
        format!("data: {msg}\n\n").into_bytes()
    }
}

/// `image` shrunk to at most [`PHOTO_SIDE`] pixels on its long side, as a JPEG; None when the
/// image is empty or inconsistent.
fn thumbnail_jpeg(image: &splat_core::scene::Image) -> Option<Vec<u8>> {
    if image.width == 0 || image.height == 0 || !image.is_consistent() {
        return None;
    }
    let long = image.width.max(image.height);
    let small = if long > PHOTO_SIDE {
        let f = PHOTO_SIDE as f64 / long as f64;
        let w = ((image.width as f64 * f).round() as u32).max(1);
        let h = ((image.height as f64 * f).round() as u32).max(1);
        image.resize_area(w, h)
    } else {
        image.clone()
    };
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 88)
        .encode(
            &small.to_rgb8(),
            small.width,
            small.height,
            image::ExtendedColorType::Rgb8,
        )
        .ok()?;
    Some(bytes)
}
