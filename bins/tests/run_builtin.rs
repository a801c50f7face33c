//! `spaceport run --quick` on the built-in scene, end to end through the real binary: every
//! view registered, job.json complete, the PLY and the .sog readable, the report written; a
//! killed run resumes training from its checkpoint; a finished run is not redone; `--from`
//! reruns a stage.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn spaceport() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spaceport"))
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spaceport-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn stage<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {job}"))
}

fn run(out: &Path, extra: &[&str]) -> (bool, String) {
    let o = spaceport()
        .args(["run", "--quick", "--device", "cpu", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("spawn spaceport");
    let log = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    (o.status.success(), log)
}

#[test]
fn builtin_scene_end_to_end_with_kill_and_resume() {
    let out = out_dir("e2e");
    // First attempt: kill it once training has written a checkpoint.
    let mut child = spaceport()
        .args(["run", "--quick", "--device", "cpu", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn spaceport");
    let ckpt = out.join("train/checkpoint.bin");
    let t = Instant::now();
    while !ckpt.exists() {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("spaceport run ended before the first checkpoint: {status}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(1200),
            "no checkpoint after 20 min"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the checkpoint's rename settle, then kill without warning.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("kill");
    let _ = child.wait();
    let job = read_json(&out.join("job.json"));
    assert_eq!(stage(&job, "sfm")["status"], "done", "{job}");
    assert_eq!(stage(&job, "train")["status"], "running", "{job}");
    assert!(
        !out.join("point_cloud.ply").exists(),
        "a half-run left a PLY"
    );

    // Rerun: skips the finished stages and resumes training.
    let (ok, log) = run(&out, &[]);
    assert!(ok, "{log}");
    assert!(log.contains("[sfm] done earlier, skipped"), "{log}");
    assert!(log.contains("resuming training at iteration"), "{log}");

    let job = read_json(&out.join("job.json"));
    for s in job["stages"].as_array().unwrap() {
        assert_eq!(s["status"], "done", "{s}");
        assert!(s["started"].is_string() && s["finished"].is_string(), "{s}");
    }
    assert!(job["config"]["train"]["iterations"].as_u64().unwrap() > 0);
    let report = read_json(&out.join("report.json"));
    let views = stage(&job, "scene")["metrics"]["views"].as_u64().unwrap();
    assert_eq!(
        report["sfm"]["registered"].as_u64(),
        Some(views),
        "{report}"
    );
    let pose = &report["sfm"]["pose_errors"];
    assert!(
        pose["rotation_median_deg"].as_f64().unwrap() < 0.5,
        "{pose}"
    );
    let psnr = report["train"]["test_psnr"].as_f64().unwrap();
    assert!(psnr > 17.0, "test PSNR {psnr}");
    let psnr_sog = report["compress"]["test_psnr_sog"].as_f64().unwrap();
    assert!(psnr_sog > psnr - 1.0, "SOG PSNR {psnr_sog} vs {psnr}");
    assert!(
        report["compress"]["ratio"].as_f64().unwrap() > 3.0,
        "{report}"
    );

    let g = splat_core::ply::read_ply(out.join("point_cloud.ply")).expect("PLY");
    let s = sogs_codec::read_sog(out.join("scene.sog")).expect("SOG");
    assert_eq!(g.len(), s.len());
    assert!(g.len() > 100);
    for f in [
        "report.md",
        "report.png",
        "report.html",
        "sparse/0/cameras.bin",
        "input/ground_truth/images.txt",
    ] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    assert!(
        !out.join("train").exists(),
        "the checkpoint folder is removed after training"
    );
    let renders = std::fs::read_dir(out.join("renders")).unwrap().count();
    assert!(renders >= 1);
    // The loss curve spans the whole run, the part before the kill too (kept by the
    // checkpoint), and report.html draws it.
    let metrics = read_json(&out.join("metrics.json"));
    let lc = &metrics["loss_curve"];
    let col = |k: &str| -> Vec<f64> {
        lc[k]
            .as_array()
            .unwrap_or_else(|| panic!("loss_curve.{k}: {lc}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (its, loss, lpsnr) = (col("iteration"), col("loss"), col("psnr"));
    assert!(loss.len() >= 2 && loss.len() <= 256, "{lc}");
    assert_eq!(its.len(), loss.len());
    assert_eq!(lpsnr.len(), loss.len());
    assert!(loss.iter().chain(&lpsnr).all(|v| v.is_finite()), "{lc}");
    assert!(loss.iter().all(|&v| v > 0.0), "{lc}");
    let every = lc["every"].as_f64().unwrap();
    assert_eq!(its[0], every, "the first window starts at step 1: {lc}");
    assert_eq!(its.last().copied(), metrics["iterations"].as_f64(), "{lc}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg id=\"loss-curve\""),
        "no loss curve in report.html"
    );
    assert!(
        html.contains("data-series=\"training loss\""),
        "report.html"
    );
    assert!(
        html.contains(&format!("data-points=\"{}\"", loss.len())),
        "report.html draws every point of the loss curve"
    );
    assert!(html.contains("<svg id=\"psnr-curve\""), "no PSNR curve");

    // Same command again: nothing to do.
    let (ok, log) = run(&out, &[]);
    assert!(ok, "{log}");
    for s in ["scene", "sfm", "train", "compress", "report"] {
        assert!(
            log.contains(&format!("[{s}] done earlier, skipped")),
            "{log}"
        );
    }
    // --from compress reruns compress and report only.
    let before = read_json(&out.join("job.json"));
    let (ok, log) = run(&out, &["--from", "compress"]);
    assert!(ok, "{log}");
    assert!(log.contains("[train] done earlier, skipped"), "{log}");
    assert!(log.contains("[compress] running"), "{log}");
    let after = read_json(&out.join("job.json"));
    assert_eq!(
        stage(&before, "train")["finished"],
        stage(&after, "train")["finished"]
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let out = out_dir("bad");
    let (ok, log) = run(&out, &["/definitely/not/here"]);
    assert!(!ok);
    assert!(log.contains("/definitely/not/here"), "{log}");

    // A folder with one unreadable "photo": SfM fails, the stage records the error.
    let photos = out.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::write(photos.join("a.jpg"), b"not a jpeg").unwrap();
    let job_out = out.join("job");
    let (ok, log) = run(&job_out, &[photos.to_str().unwrap()]);
    assert!(!ok, "{log}");
    assert!(log.contains("stage sfm failed"), "{log}");
    let job = read_json(&job_out.join("job.json"));
    assert_eq!(stage(&job, "sfm")["status"], "failed");
    assert!(
        stage(&job, "sfm")["error"]
            .as_str()
            .unwrap()
            .contains("a.jpg"),
        "{job}"
    );
    assert!(!job_out.join("sparse").exists());

    // A config with a misspelt key names it.
    let cfg = out.join("bad.yaml");
    std::fs::write(&cfg, "train:\n  iteratons: 5\n").unwrap();
    let (ok, log) = run(&out.join("cfg"), &["--config", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(log.contains("train.iteratons"), "{log}");
    let _ = std::fs::remove_dir_all(&out);
}
