//! The server answers only on 127.0.0.1, only with the page and the files of PATH, and refuses
//! path traversal however it is spelled.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use spaceport_io::scratch_dir;
use spaceport_view::{ServeOptions, Target, Viewer};
use splat_core::demo::demo_gaussians;

/// A raw HTTP/1.1 request, so that `..` and odd escapes reach the server unnormalised.
fn raw(port: u16, method: &str, target: &str, host: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => buf[p + 4..].to_vec(),
        None => vec![],
    };
    (code, body)
}

fn get(port: u16, target: &str) -> (u16, Vec<u8>) {
    raw(port, "GET", target, &format!("127.0.0.1:{port}"))
}

/// A run-like folder: point_cloud.ply, an image, a secret beside the folder, a symlink out.
fn run_folder(tag: &str) -> (PathBuf, PathBuf) {
    let base = scratch_dir(tag);
    let run = base.join("run");
    std::fs::create_dir_all(run.join("images")).unwrap();
    let mut g = demo_gaussians();
    g.retain_mask(&(0..g.len()).map(|i| i % 50 == 0).collect::<Vec<_>>());
    splat_core::ply::write_ply(run.join("point_cloud.ply"), &g).unwrap();
    std::fs::write(run.join("images/a b.png"), b"png").unwrap();
    std::fs::write(base.join("secret.txt"), b"secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.join("secret.txt"), run.join("link.txt")).unwrap();
    (base, run)
}

/// Serves a fresh [`run_folder`] (or the one `file` in it) to `check`, then removes it.
fn serve_run_folder(tag: &str, file: Option<&str>, check: impl FnOnce(&Viewer, &Path)) {
    let (base, run) = run_folder(tag);
    let path = file.map_or(run.clone(), |f| run.join(f));
    let v = Viewer::start(Target::open(&path).unwrap(), &ServeOptions::default()).unwrap();
    check(&v, &run);
    drop(v);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn serves_page_scene_and_files_of_path() {
    serve_run_folder("files", None, |v, run| {
        let p = v.port();
        assert!(v.url().starts_with("http://127.0.0.1:"));
        let (c, body) = get(p, "/");
        assert_eq!(c, 200);
        assert!(String::from_utf8_lossy(&body).contains("viewer.js"));
        assert_eq!(get(p, "/viewer.js").0, 200);
        assert_eq!(get(p, "/sort-worker.js").0, 200);
        let (c, body) = get(p, "/api/scene");
        assert_eq!(c, 200);
        let scene: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(scene["kind"], "ply");
        assert_eq!(scene["url"], "/files/point_cloud.ply");
        assert!(scene["problem"].is_null(), "{scene}");
        let (c, body) = get(p, "/files/point_cloud.ply");
        assert_eq!(c, 200);
        assert_eq!(body, std::fs::read(run.join("point_cloud.ply")).unwrap());
        assert_eq!(get(p, "/files/images/a%20b.png"), (200, b"png".to_vec()));
        assert_eq!(get(p, "/files/missing.bin").0, 404);
        assert_eq!(get(p, "/elsewhere").0, 404);
    });
}

#[test]
fn refuses_path_traversal() {
    serve_run_folder("traversal", None, |v, _| {
        let p = v.port();
        for t in [
            "/files/../secret.txt",
            "/files/images/../../secret.txt",
            "/files/%2e%2e/secret.txt",
            "/files/%2E%2E%2Fsecret.txt",
            "/files/images%2f..%2f..%2fsecret.txt",
            "/files/..%5csecret.txt",
            "/files//etc/passwd",
            "/files/%2fetc%2fpasswd",
            "/files/%252e%252e/secret.txt",
            "/files/link.txt",
            "/files/%",
        ] {
            let (c, body) = get(p, t);
            assert!(c == 403 || c == 404, "{t}: {c}");
            assert_ne!(body, b"secret", "{t} leaked the file");
        }
        // A double-encoded dot pair decodes once to the literal name `%2e%2e`, which does not exist.
        assert_eq!(get(p, "/files/%252e%252e/secret.txt").0, 404);
        assert_eq!(get(p, "/files/../secret.txt").0, 403);
    });
}

#[test]
fn single_file_path_serves_only_that_file() {
    serve_run_folder("single", Some("point_cloud.ply"), |v, _| {
        let p = v.port();
        assert_eq!(get(p, "/files/point_cloud.ply").0, 200);
        assert_eq!(get(p, "/files/images/a%20b.png").0, 404);
    });
}

#[test]
fn refuses_foreign_hosts_and_posts() {
    serve_run_folder("host", None, |v, _| {
        let p = v.port();
        // DNS rebinding: a page on another name pointed at 127.0.0.1 sends its own Host.
        assert_eq!(raw(p, "GET", "/api/scene", "evil.example:80").0, 403);
        assert_eq!(raw(p, "GET", "/", &format!("localhost:{p}")).0, 200);
        // Reports are only taken when the server is started for a test.
        assert_eq!(
            raw(p, "POST", "/api/report", &format!("127.0.0.1:{p}")).0,
            405
        );
        assert_eq!(
            raw(
                p,
                "PUT",
                "/files/point_cloud.ply",
                &format!("127.0.0.1:{p}")
            )
            .0,
            405
        );
    });
}

/// Every non-loopback IPv4 address of this machine (from /proc/net/fib_trie's local routes).
fn local_addresses() -> Vec<std::net::Ipv4Addr> {
    let Ok(t) = std::fs::read_to_string("/proc/net/fib_trie") else {
        return vec![];
    };
    let lines: Vec<&str> = t.lines().collect();
    let mut out = vec![];
    for w in lines.windows(2) {
        if w[1].contains("/32 host LOCAL") {
            if let Some(ip) = w[0].split_whitespace().last().and_then(|s| s.parse().ok()) {
                let ip: std::net::Ipv4Addr = ip;
                if !ip.is_loopback() && !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

#[test]
fn listens_on_loopback_only() {
    serve_run_folder("loopback", None, |v, _| {
        let p = v.port();
        assert!(TcpStream::connect(("127.0.0.1", p)).is_ok());
        let addrs = local_addresses();
        if addrs.is_empty() {
            writeln_stderr(
                "listens_on_loopback_only: no non-loopback address here; only 127.0.0.1 checked",
            );
        }
        for ip in addrs {
            assert!(
                TcpStream::connect((ip, p)).is_err(),
                "server answered on {ip}:{p}"
            );
        }
    });
}

/// Writes past the test harness's capture, so that the note is seen in CI logs.
fn writeln_stderr(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
}

#[test]
fn run_folder_cameras_and_bad_files_are_reported() {
    use sfm_core::colmap::{Camera, Image, Reconstruction};
    let (base, run) = run_folder("cameras");
    let sparse = run.join("sparse/0");
    std::fs::create_dir_all(&sparse).unwrap();
    let rec = Reconstruction {
        cameras: vec![Camera::pinhole(1, 64, 48, 50.0, 50.0, 32.0, 24.0)],
        images: vec![Image::new(
            1,
            1,
            "a b.png",
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 3.0],
        )],
        points3d: vec![],
    };
    sfm_core::colmap::write_text(&sparse, &rec).unwrap();
    let t = Target::open(&run).unwrap();
    assert_eq!(t.cameras.len(), 1);
    let j = t.scene_json();
    assert_eq!(j["cameras"][0]["image"], "/files/images/a%20b.png");
    assert_eq!(j["cameras"][0]["t"][2], 3.0);

    // Truncated .sog and a PLY with NaN are named with their problem.
    let g = demo_gaussians();
    let bytes = splat_core::ply::encode_ply(Path::new("x.ply"), &g).unwrap();
    let mut nan = bytes.clone();
    // The first vertex's x sits right after the header.
    let hdr = nan.windows(11).position(|w| w == b"end_header\n").unwrap() + 11;
    nan[hdr..hdr + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(base.join("nan.ply"), &nan).unwrap();
    let t = Target::open(&base.join("nan.ply")).unwrap();
    let p = t.problem.expect("NaN PLY must be flagged");
    assert!(p.contains("nan.ply"), "{p}");
    std::fs::write(base.join("cut.sog"), b"PK\x03\x04 not really a zip").unwrap();
    let t = Target::open(&base.join("cut.sog")).unwrap();
    assert!(t
        .problem
        .expect("truncated .sog must be flagged")
        .contains("cut.sog"));
    assert!(Target::open(&base.join("nothing.sog")).is_err());
    assert!(Target::open(&base.join("secret.txt")).is_err());
    std::fs::remove_dir_all(&base).unwrap();
}

/// The live view's cameras come from the trainer once it has its scene: `/api/scene` lists
/// them with photo URLs, `/api/photo/K.jpg` serves a JPEG thumbnail of each (no larger than 640
/// pixels), and anything else under `/api/photo/` is 404.
#[test]
fn live_view_serves_the_training_cameras_and_photos() {
    let feed = spaceport_view::LiveFeed::new(std::time::Duration::from_secs(1));
    let v = Viewer::start(
        Target::live(vec![]),
        &ServeOptions {
            port: 0,
            live: Some(feed.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let port = v.port();
    let scene = |port| -> serde_json::Value {
        let (code, body) = get(port, "/api/scene");
        assert_eq!(code, 200);
        serde_json::from_slice(&body).unwrap()
    };
    assert_eq!(scene(port)["cameras"], serde_json::json!([]));
    let views: Vec<splat_core::scene::View> = (0..3)
        .map(|k| splat_core::scene::View {
            name: format!("v{k}.png"),
            camera: splat_core::demo::demo_camera(1280, 960, k as f64),
            image: splat_core::scene::Image::filled(1280, 960, [0.9, 0.2, 0.1]),
        })
        .collect();
    feed.set_views(&views);
    let s = scene(port);
    let cams = s["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 3, "{s}");
    assert_eq!(cams[1]["name"], "v1.png");
    assert_eq!(cams[1]["width"], 1280);
    assert_eq!(cams[1]["image"], "/api/photo/1.jpg");
    let (code, jpg) = get(port, "/api/photo/1.jpg");
    assert_eq!(code, 200);
    let img = image::load_from_memory(&jpg).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (640, 480), "thumbnail keeps the aspect");
    let p = img.get_pixel(320, 240);
    assert!(p[0] > 200 && p[1] < 90 && p[2] < 70, "colour kept: {p:?}");
    for bad in [
        "/api/photo/3.jpg",
        "/api/photo/x.jpg",
        "/api/photo/1.png",
        "/api/photo/",
    ] {
        assert_eq!(get(port, bad).0, 404, "{bad}");
    }
}
