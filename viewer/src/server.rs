//! The loopback HTTP server: the embedded page, `/api/scene`, and the files of PATH.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

use crate::live::LiveFeed;
use crate::paths::{resolve_inside, safe_relative};
use crate::target::Target;
use crate::ViewError;

const INDEX_HTML: &str = include_str!("../web/index.html");
const VIEWER_JS: &str = include_str!("../web/viewer.js");
const WORKER_JS: &str = include_str!("../web/sort-worker.js");

/// Largest body the page may post back (a 4096 x 4096 RGBA capture).
const MAX_REPORT_BYTES: u64 = 64 << 20;

/// Server settings.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Accept `POST /api/report` and `POST /api/capture` from the page (tests use them to get
    /// the page's status and its rendered pixels); off for `spaceport view`.
    pub accept_reports: bool,
    /// Serve a live training view from this feed instead of PATH's model.
    pub live: Option<Arc<LiveFeed>>,
}

/// What the page posted back when reports are accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum PageReport {
    /// The page's status JSON (`{"status": "ok" | "error: ...", "errors": [...], ...}`).
    Status(serde_json::Value),
    /// The rendered canvas, RGBA rows top to bottom.
    Capture {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// `width * height * 4` bytes.
        rgba: Vec<u8>,
    },
}

/// A running viewer server; dropping it stops the server.
pub struct Viewer {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
    port: u16,
    reports: Mutex<Receiver<PageReport>>,
}

impl Viewer {
    /// Binds 127.0.0.1 and starts answering in a background thread.
    pub fn start(target: Target, opts: &ServeOptions) -> Result<Viewer, ViewError> {
        let addr = format!("127.0.0.1:{}", opts.port);
        let server = Server::http(&addr).map_err(|e| ViewError::Bind {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| ViewError::Bind {
                addr: addr.clone(),
                reason: "not an IP socket".into(),
            })?;
        let server = Arc::new(server);
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(State {
            target,
            port,
            reports: opts.accept_reports.then_some(Mutex::new(tx)),
            live: opts.live.clone(),
        });
        let srv = server.clone();
        let thread = std::thread::spawn(move || {
            for req in srv.incoming_requests() {
                let st = state.clone();
                // One thread per request so that a large download does not hold up the page.
                std::thread::spawn(move || handle(&st, req));
            }
        });
        Ok(Viewer {
            server,
            thread: Some(thread),
            port,
            reports: Mutex::new(rx),
        })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Waits up to `timeout` for the next report the page posts (only with `accept_reports`).
    pub fn next_report(&self, timeout: std::time::Duration) -> Option<PageReport> {
        self.reports.lock().ok()?.recv_timeout(timeout).ok()
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State {
    target: Target,
    port: u16,
    reports: Option<Mutex<Sender<PageReport>>>,
    live: Option<Arc<LiveFeed>>,
}

fn header(name: &str, value: &str) -> Header {
    // Names and values here are ASCII constants or our own ASCII strings.
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|_| Header::from_bytes(&b"X-Bad"[..], &b"1"[..]).expect("ascii header"))
}

fn text(code: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(StatusCode(code))
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn content_type(p: &Path) -> &'static str {
    let ext = p
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "webp" => "image/webp",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "html" => "text/html; charset=utf-8",
        "md" | "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether the Host header names this loopback server (a page on another site that rebinds its
/// DNS name to 127.0.0.1 sends its own name and is refused).
fn host_ok(req: &Request, port: u16) -> bool {
    let Some(h) = req.headers().iter().find(|h| h.field.equiv("Host")) else {
        return false;
    };
    let v = h.value.as_str();
    v == format!("127.0.0.1:{port}") || v == format!("localhost:{port}")
}

fn handle(st: &State, mut req: Request) {
    if let Some(feed) = &st.live {
        if req.method() == &Method::Get && req.url() == "/api/events" && host_ok(&req, st.port) {
            return stream_events(feed, req);
        }
    }
    let resp = route(st, &mut req);
    let _ = req.respond(resp);
}

/// Server-sent events written straight to the socket: tiny_http's chunked encoder would hold
/// small events back until 8 KiB had gathered.
fn stream_events(feed: &Arc<LiveFeed>, req: Request) {
    use std::io::Write;
    let mut w = req.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    if w.write_all(head.as_bytes())
        .and_then(|_| w.flush())
        .is_err()
    {
        return;
    }
    let mut events = feed.events();
    loop {
        let ev = events.next_event();
        if w.write_all(&ev).and_then(|_| w.flush()).is_err() {
            return; // the page went away
        }
    }
}

fn scene_json(st: &State) -> serde_json::Value {
    let mut j = st.target.scene_json();
    if st.live.is_some() {
        j["kind"] = "ply".into();
        j["url"] = "/api/snapshot.ply".into();
        j["name"] = "live training".into();
        j["live"] = true.into();
        // Cameras given at start, else those the trainer set once it had loaded its scene.
        if let Some(feed) = st.live.as_ref().filter(|_| st.target.cameras.is_empty()) {
            j["cameras"] = crate::target::cameras_json(&feed.cameras(), |u| u.to_string()).into();
        }
    }
    j
}

type Resp = Response<Box<dyn Read + Send>>;

fn boxed<R: Read + Send + 'static>(r: Response<R>) -> Resp {
    r.boxed()
}

fn route(st: &State, req: &mut Request) -> Resp {
    if !host_ok(req, st.port) {
        return boxed(text(403, "forbidden: unexpected Host header"));
    }
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let no_store = header("Cache-Control", "no-store");
    match (req.method(), path) {
        (Method::Get, "/") | (Method::Get, "/index.html") => boxed(
            Response::from_string(INDEX_HTML)
                .with_header(header("Content-Type", "text/html; charset=utf-8"))
                .with_header(no_store),
        ),
        (Method::Get, "/viewer.js") => boxed(
            Response::from_string(VIEWER_JS)
                .with_header(header("Content-Type", "text/javascript; charset=utf-8"))
                .with_header(no_store),
        ),
        (Method::Get, "/sort-worker.js") => boxed(
            Response::from_string(WORKER_JS)
                .with_header(header("Content-Type", "text/javascript; charset=utf-8"))
                .with_header(no_store),
        ),
        (Method::Get, "/api/scene") => boxed(
            Response::from_string(scene_json(st).to_string())
                .with_header(header("Content-Type", "application/json"))
                .with_header(no_store),
        ),
        (Method::Get, "/api/snapshot.ply") if st.live.is_some() => {
            let (version, ply) = st.live.as_ref().map(|f| f.latest()).unwrap_or_default();
            if version == 0 {
                // 204, not 404: the page polls for the first one and a 404 would log an error.
                boxed(text(204, ""))
            } else {
                boxed(
                    Response::from_data(ply.as_slice().to_vec())
                        .with_header(header("Content-Type", "application/octet-stream"))
                        .with_header(header("X-Snapshot-Version", &version.to_string()))
                        .with_header(no_store),
                )
            }
        }
        (Method::Get, p) if p.starts_with("/api/photo/") && st.live.is_some() => {
            let photo = p["/api/photo/".len()..]
                .strip_suffix(".jpg")
                .and_then(|k| k.parse::<usize>().ok())
                .and_then(|k| st.live.as_ref()?.photo(k));
            match photo {
                Some(jpg) => boxed(
                    Response::from_data(jpg.as_slice().to_vec())
                        .with_header(header("Content-Type", "image/jpeg"))
                        .with_header(no_store),
                ),
                None => boxed(text(404, "not found")),
            }
        }
        (Method::Get, p) if p.starts_with("/files/") => serve_file(st, &p["/files/".len()..]),
        (Method::Post, "/api/report") | (Method::Post, "/api/capture") => {
            accept_report(st, req, path, query)
        }
        (Method::Get, _) => boxed(text(404, "not found")),
        _ => boxed(text(405, "method not allowed")),
    }
}

fn serve_file(st: &State, encoded: &str) -> Resp {
    let rel: PathBuf = match safe_relative(encoded) {
        Ok(r) => r,
        Err(e) => return boxed(text(403, &format!("forbidden: {e}"))),
    };
    if let Some(only) = &st.target.only {
        if &rel != only {
            return boxed(text(404, "not found"));
        }
    }
    let Some(full) = resolve_inside(&st.target.root, &rel) else {
        return boxed(text(404, "not found"));
    };
    match std::fs::File::open(&full) {
        Ok(f) => boxed(
            Response::from_file(f)
                .with_header(header("Content-Type", content_type(&full)))
                .with_header(header("Cache-Control", "no-store")),
        ),
        Err(_) => boxed(text(404, "not found")),
    }
}

fn query_u32(query: &str, key: &str) -> Option<u32> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn accept_report(st: &State, req: &mut Request, path: &str, query: &str) -> Resp {
    let Some(tx) = &st.reports else {
        return boxed(text(405, "method not allowed"));
    };
    let mut body = Vec::new();
    if req
        .as_reader()
        .take(MAX_REPORT_BYTES)
        .read_to_end(&mut body)
        .is_err()
    {
        return boxed(text(400, "unreadable body"));
    }
    let report = if path == "/api/report" {
        match serde_json::from_slice(&body) {
            Ok(v) => PageReport::Status(v),
            Err(e) => return boxed(text(400, &format!("bad JSON: {e}"))),
        }
    } else {
        let (Some(width), Some(height)) = (query_u32(query, "w"), query_u32(query, "h")) else {
            return boxed(text(400, "capture needs ?w=&h="));
        };
        if body.len() != width as usize * height as usize * 4 {
            return boxed(text(400, "capture size does not match w x h x 4"));
        }
        PageReport::Capture {
            width,
            height,
            rgba: body,
        }
    };
    if let Ok(tx) = tx.lock() {
        let _ = tx.send(report);
    }
    boxed(text(200, "ok"))
}
