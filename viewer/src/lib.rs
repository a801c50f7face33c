//! `spaceport view`: serves our own WebGL2 Gaussian splat viewer (embedded in the binary, no
//! CDN) and the files of one model or run folder on 127.0.0.1.
//!
//! The page reads SOG v2 (bundle or folder) and 3DGS PLY in the browser, sorts splats by depth
//! in a Web Worker and composites them with the same projection, low-pass, SH and alpha rules as
//! splat-core's CPU renderer, so that a screenshot matches `splat_core::render` of the same view.
//! Camera and size can be given in the page URL (see [`view_url`]).

pub mod live;
pub mod paths;
pub mod report;
pub mod server;
pub mod target;

use std::path::PathBuf;

pub use live::LiveFeed;
pub use server::{PageReport, ServeOptions, Viewer};
pub use target::{CameraInfo, ModelKind, Target};

/// Errors of the viewer; each names the path or address involved.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// PATH cannot be read.
    #[error("{path}: {reason}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// The operating system's message.
        reason: String,
    },
    /// PATH is not something the viewer shows.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The path given.
        path: PathBuf,
        /// What was expected.
        reason: String,
    },
    /// The server could not listen.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The error.
        reason: String,
    },
}

/// Query string that puts the page's camera at `camera` with a `camera.width x camera.height`
/// canvas (pinhole intrinsics and world-to-camera pose, as splat-core uses them).
pub fn camera_query(camera: &splat_core::Camera) -> String {
    let r = camera.rotation;
    let rows: Vec<String> = (0..3)
        .flat_map(|i| (0..3).map(move |j| format!("{:.17e}", r.col(j)[i])))
        .collect();
    let t: Vec<String> = camera
        .translation
        .to_array()
        .iter()
        .map(|v| format!("{v:.17e}"))
        .collect();
    format!(
        "w={}&h={}&fx={:.17e}&fy={:.17e}&cx={:.17e}&cy={:.17e}&R={}&t={}",
        camera.width,
        camera.height,
        camera.fx,
        camera.fy,
        camera.cx,
        camera.cy,
        rows.join(","),
        t.join(",")
    )
}

/// The page URL of a running viewer showing the model from `camera`, with extra query
/// parameters `extra` (e.g. `bg=1,1,1&sh=3&report=1`).
pub fn view_url(viewer: &Viewer, camera: &splat_core::Camera, extra: &str) -> String {
    let mut u = format!("{}?{}", viewer.url(), camera_query(camera));
    if !extra.is_empty() {
        u.push('&');
        u.push_str(extra);
    }
    u
}

/// Tries to open `url` in the user's browser (xdg-open / open / start); false if none ran.
pub fn open_browser(url: &str) -> bool {
    let cmds: &[(&str, &[&str])] = if cfg!(target_os = "macos") {
        &[("open", &[])]
    } else if cfg!(windows) {
        &[("cmd", &["/C", "start", ""])]
    } else {
        &[("xdg-open", &[]), ("sensible-browser", &[])]
    };
    cmds.iter().any(|(c, pre)| {
        std::process::Command::new(c)
            .args(*pre)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
    })
}
