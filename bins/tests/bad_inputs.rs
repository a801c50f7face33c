//! Every bad input of the command line is refused early with a clear message naming the file
//! or setting, a non-zero exit, and nothing half-written: a busy output folder, out-of-range
//! settings, unwritable outputs, impossible render requests, lying PLY headers, a SOG without
//! meta.json; and training survives a failed checkpoint write.

mod common;

use common::{assert_refused, s, scratch, shared_data, spaceport};

#[test]
fn a_busy_output_folder_is_refused() {
    let out = scratch("lock");
    // pid 1 always runs: as if another run held the folder.
    std::fs::write(out.join(".spaceport.lock"), "1").unwrap();
    let (ok, log) = spaceport(&["run", "--quick", "--device", "cpu", "--out", s(&out)]);
    assert!(!ok);
    assert!(
        log.contains("in use by another spaceport run (pid 1)"),
        "{log}"
    );
    assert!(
        !out.join("job.json").exists(),
        "nothing written beside the other run"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn out_of_range_settings_fail_when_loaded() {
    let dir = scratch("cfg");
    let out = dir.join("out");
    for (args, key) in [
        (vec!["run", "--set", "train.lr.means=.nan"], "lr.means"),
        (vec!["run", "--set", "train.lr.opacity=-0.05"], "lr.opacity"),
        (
            vec!["run", "--set", "sfm.max_image_size=0"],
            "max_image_size 0",
        ),
        (
            vec!["run", "--set", "compress.sh_bands=5"],
            "compress.sh_bands 5",
        ),
        (vec!["run", "--set", "train.sh_degree=5"], "sh_degree 5"),
        (
            vec!["sfm", "--images", "x", "--max-image-size", "0"],
            "max_image_size 0",
        ),
        (
            vec!["train", "--scene", "x", "--set", "lr.scales=.inf"],
            "lr.scales",
        ),
        (
            vec!["train", "--scene", "x", "--strategy", "mcmc"],
            "max_gaussians must be positive",
        ),
        (vec!["run", "--set", "train.exposure.lr=-1"], "exposure.lr"),
    ] {
        let mut a = args.clone();
        a.extend(["--out", s(&out)]);
        assert_refused(&a, None, key, &out);
    }
    // The named flags land on the same keys as --set.
    let (ok, log) = spaceport(&[
        "train",
        "--strategy",
        "mcmc",
        "--max-gaussians",
        "5000",
        "--dump-config",
    ]);
    assert!(
        ok && log.contains("strategy: mcmc") && log.contains("max_gaussians: 5000"),
        "{log}"
    );
    let ply = dir.join("g.ply");
    let (ok, _) = spaceport(&["decompress", "../../shared/data/sog/6_0", "--out", s(&ply)]);
    if ok {
        let (ok, log) = spaceport(&[
            "compress",
            s(&ply),
            "-o",
            s(&dir.join("g.sog")),
            "--sh-bands",
            "5",
        ]);
        assert!(!ok && log.contains("--sh-bands 5"), "{log}");
        assert!(!dir.join("g.sog").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unwritable_outputs_are_found_before_any_work() {
    let dir = scratch("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("out");
    for args in [
        vec!["sfm", "--images", s(&dir), "--out", s(&out)],
        vec!["train", "--scene", s(&dir), "--out", s(&out)],
        vec!["run", "--quick", "--out", s(&out)],
    ] {
        let log = assert_refused(&args, None, "cannot write to the output folder", &out);
        assert!(!log.contains("cannot read"), "{args:?}: {log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn impossible_render_requests_are_refused() {
    let dir = scratch("render");
    let png = dir.join("r.png");
    for (args, says) in [
        (vec!["--width", "0"], "render size 0x480"),
        (
            vec!["--width", "100000", "--height", "100000"],
            "at most 16384",
        ),
        (vec!["--angle", "NaN"], "--angle NaN"),
    ] {
        let mut a = vec!["render", "--out", s(&png)];
        a.extend(args.iter().copied());
        assert_refused(&a, None, says, &png);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lying_ply_headers_and_sogs_without_meta_are_named() {
    let dir = scratch("files");
    // Two ascii vertices under a header that declares one.
    let ply = dir.join("short.ply");
    let mut text = String::from("ply\nformat ascii 1.0\nelement vertex 1\n");
    for p in [
        "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
        "rot_0", "rot_1", "rot_2", "rot_3",
    ] {
        text += &format!("property float {p}\n");
    }
    text += "end_header\n";
    for _ in 0..2 {
        text += "0 0 0 0.5 0.5 0.5 1 -3 -3 -3 1 0 0 0\n";
    }
    std::fs::write(&ply, text).unwrap();
    let (ok, log) = spaceport(&["render", "--ply", s(&ply), "--out", s(&dir.join("r.png"))]);
    assert!(!ok);
    assert!(
        log.contains("short.ply") && log.contains("declares 1 vertices"),
        "{log}"
    );

    let sog = dir.join("not-a-sog");
    std::fs::create_dir_all(&sog).unwrap();
    let (ok, log) = spaceport(&["decompress", s(&sog), "--out", s(&dir.join("g.ply"))]);
    assert!(!ok);
    assert!(
        log.contains("no meta.json") && !log.contains("listed in"),
        "{log}"
    );
    assert!(!dir.join("g.ply").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_checkpoint_write_does_not_lose_the_run_and_divergence_is_named() {
    let Some(scene) = shared_data("mipnerf360_bonsai_800") else {
        return;
    };
    let out = scratch("ckpt");
    // A directory where the checkpoint file goes: every checkpoint write fails.
    std::fs::create_dir_all(out.join("checkpoint.bin/blocker")).unwrap();
    let base = [
        "train",
        "--scene",
        s(&scene),
        "--downscale",
        "8",
        "--device",
        "cpu",
        "--iters",
        "30",
    ];
    let mut a = base.to_vec();
    a.extend(["--checkpoint-every", "10", "--out", s(&out)]);
    let (ok, log) = spaceport(&a);
    assert!(ok, "{log}");
    assert!(
        log.contains("warning: writing the checkpoint failed"),
        "{log}"
    );
    assert!(
        out.join("point_cloud.ply").is_file(),
        "the final outputs are written"
    );

    let out2 = scratch("diverge");
    let mut a = base.to_vec();
    a.extend([
        "--set",
        "lr.opacity=1e30",
        "--set",
        "lr.sh_dc=1e30",
        "--out",
        s(&out2),
    ]);
    let (ok, log) = spaceport(&a);
    assert!(!ok);
    assert!(
        log.contains("training diverged") && log.contains("iteration"),
        "{log}"
    );
    assert!(!out2.join("point_cloud.ply").exists());
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&out2);
}

#[test]
fn sfm_on_cuda_without_a_gpu_is_a_clear_error() {
    if splat_cuda::driver_present() {
        eprintln!("SKIPPED: a CUDA driver is present (splat-cuda's gpu_match tests cover the GPU)");
        return;
    }
    let dir = scratch("sfm-cuda");
    let out = dir.join("out");
    let sfm_on = |device: &str| {
        spaceport(&[
            "sfm",
            "--images",
            s(&dir),
            "--out",
            s(&out),
            "--device",
            device,
        ])
    };
    let (ok, log) = sfm_on("cuda");
    assert!(!ok, "accepted: {log}");
    assert!(
        log.contains("--device cuda (SfM)") && log.contains("no CUDA driver"),
        "{log}"
    );
    // `cpu` and `auto` are accepted (and then find no photos in the empty folder).
    for device in ["cpu", "auto"] {
        let (ok, log) = sfm_on(device);
        assert!(!ok && log.contains("at least 2"), "{device}: {log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
