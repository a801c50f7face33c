//! Video input through `spaceport run capture.mp4`: a video of the built-in scene (its ray
//! caster's frames on a ring, encoded with FFmpeg) gives frames, a model and a trained splat;
//! without FFmpeg the run says so before doing anything.

mod common;

use std::process::Command;

use common::{assert_refused, s, scratch, spaceport_env as spaceport};

#[test]
fn missing_ffmpeg_is_said_at_start_up() {
    let dir = scratch("noffmpeg");
    let video = dir.join("capture.mp4");
    std::fs::write(&video, b"not decoded").unwrap();
    let out = dir.join("out");
    let args = ["run", s(&video), "--out", s(&out)];
    assert_refused(
        &args,
        Some("/nonexistent"),
        "video input needs `ffmpeg`",
        &out,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_video_of_the_builtin_scene_is_reconstructed_and_trained() {
    // The same check the run makes at start-up.
    if spaceport::video::check_tools().is_err() {
        eprintln!("SKIPPED: ffmpeg/ffprobe are not installed (apt-get install ffmpeg)");
        return;
    }
    let dir = scratch("builtin");
    let frames = dir.join("frames");
    let opt = splat_core::demo::photos::PhotoSetOptions {
        width: 200,
        height: 150,
        views: 96,
        samples: 2,
    };
    splat_core::demo::photos::write_photo_set(&frames, &opt).unwrap();
    let video = dir.join("capture.mp4");
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-framerate", "24", "-i"])
        .arg(frames.join("view_%03d.png"))
        .args(["-pix_fmt", "yuv420p", "-q:v", "3"])
        .arg(&video)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Asking for more frames than the video has keeps each frame once, not duplicates.
    let all = dir.join("all");
    let got =
        spaceport::video::extract_frames(std::slice::from_ref(&video), &all, 200, 400, &|_, _| {})
            .unwrap();
    assert_eq!((got.candidates, got.frames), (96, 96), "{got:?}");

    let out = dir.join("out");
    let args = [
        "run",
        s(&video),
        "--quick",
        "--device",
        "cpu",
        "--set",
        "video.frames=32",
        "--out",
        s(&out),
    ];
    let (ok, log) = spaceport(&args, None);
    assert!(ok, "{log}");
    assert!(log.contains("kept the sharpest 32 of"), "{log}");
    let kept = std::fs::read_dir(out.join("input/images")).unwrap().count();
    assert_eq!(kept, 32);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let registered = report["sfm"]["registered"].as_u64().unwrap();
    assert!(registered >= 30, "{report}");
    let psnr = report["train"]["test_psnr"].as_f64().unwrap();
    assert!(psnr > 15.0, "{report}");
    eprintln!("video run: {registered}/32 frames registered, test PSNR {psnr:.2} dB");
    let _ = std::fs::remove_dir_all(&dir);
}
