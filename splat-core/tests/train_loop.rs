//! Training on a tiny synthetic scene: the loss falls, test PSNR rises, arrays stay in step
//! through densification, and a resumed run continues exactly where it stopped.

use splat_core::scene::Scene;
use splat_core::train::{checkpoint, TrainConfig, Trainer};
use splat_core::CpuBackend;

/// A small object seen from a ring of cameras (the ground truth to fit).
fn tiny_scene() -> Scene {
    splat_core::demo::synthetic_ring_scene(40, 32)
}

fn config(iterations: usize) -> TrainConfig {
    splat_core::demo::synthetic_ring_config(iterations)
}

#[test]
fn loss_falls_and_test_psnr_rises() {
    let scene = tiny_scene();
    let mut t = Trainer::new(&scene, config(300), &mut CpuBackend).expect("trainer");
    let views = scene.test.clone();
    let before = t
        .evaluate(&views, &mut |_, _, _| Ok(()))
        .expect("eval")
        .psnr;
    let mut losses = Vec::new();
    let mut densified = 0;
    while !t.finished() {
        let info = t.step().expect("step");
        losses.push(info.loss);
        if info.densified.is_some() {
            densified += 1;
            // Every per-Gaussian array keeps one length through clone, split and prune.
            let snap = t.snapshot().expect("snapshot");
            let n = snap
                .check()
                .expect("one length for every per-Gaussian array");
            assert_eq!(n, t.gaussians_len());
        }
    }
    // Iterations 100, 150 and 200: after `from` (exclusive), before `until`.
    assert_eq!(densified, 3);
    let first: f64 = losses[..20].iter().sum::<f64>() / 20.0;
    let last: f64 = losses[losses.len() - 20..].iter().sum::<f64>() / 20.0;
    assert!(last < 0.6 * first, "loss {first} -> {last}");
    let after = t
        .evaluate(&views, &mut |_, _, _| Ok(()))
        .expect("eval")
        .psnr;
    assert!(after > before + 5.0, "test PSNR {before} -> {after}");
}

#[test]
fn resume_gives_the_same_next_step() {
    let scene = tiny_scene();
    let dir = std::env::temp_dir().join(format!("spaceport-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ckpt = dir.join("checkpoint.bin");
    let mut a = Trainer::new(&scene, config(300), &mut CpuBackend).expect("trainer");
    // Past a densification step and an opacity reset, mid-epoch.
    for _ in 0..207 {
        a.step().expect("step");
    }
    checkpoint::save(&mut a, &ckpt).expect("save");
    let next_a: Vec<f64> = (0..3).map(|_| a.step().expect("step").loss).collect();
    let mut b = checkpoint::load(&ckpt, &scene, &mut CpuBackend).expect("load");
    assert_eq!(b.state.iteration, 207);
    let next_b: Vec<f64> = (0..3).map(|_| b.step().expect("step").loss).collect();
    assert_eq!(next_a, next_b);
    assert_eq!(a.snapshot().expect("a"), b.snapshot().expect("b"));
    // The loss curve (with its window in progress) carries over too.
    assert_eq!(a.state.loss_curve, b.state.loss_curve);
    assert_eq!(a.state.loss_curve.iteration.len(), 210);

    // A truncated checkpoint is an error naming the file, not a panic.
    let bytes = std::fs::read(&ckpt).expect("read");
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).expect("write");
    let err = checkpoint::load(&ckpt, &scene, &mut CpuBackend)
        .err()
        .expect("truncated checkpoint must fail");
    assert!(
        err.to_string().contains("checkpoint.bin") && err.to_string().contains("truncated"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn config_rejects_unknown_keys_and_round_trips() {
    let err = TrainConfig::from_yaml_str("densify: { grad_treshold: 0.001 }")
        .expect_err("typo must be an error");
    assert!(err.to_string().contains("grad_treshold"), "{err}");
    let d = TrainConfig::default();
    assert_eq!(
        TrainConfig::from_yaml_str(&d.to_yaml()).expect("round trip"),
        d
    );
    assert_eq!(d.densify.grad_threshold, 2e-4);
    assert_eq!(d.lr.sh_rest, 2.5e-3 / 20.0);
}
