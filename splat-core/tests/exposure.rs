//! Exposure compensation: its gradients against finite differences, a darkened photo learned
//! as a darker transform, and nothing of it in the exported PLY or the test renders.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splat_core::backend::exposure::{self, Exposure, IDENTITY};
use splat_core::loss;
use splat_core::train::{checkpoint, Trainer};
use splat_core::CpuBackend;

fn loss_of(m: &Exposure, x: &[f32], y: &[f32], w: usize, h: usize) -> f64 {
    loss::l1_ssim_loss(&exposure::apply(m, x), y, w, h, 0.2).loss
}

#[test]
fn exposure_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (w, h) = (24usize, 18usize);
    let x: Vec<f32> = (0..w * h * 3).map(|_| rng.random_range(0.1..0.9)).collect();
    let mut m = IDENTITY;
    for v in m.iter_mut() {
        *v += rng.random_range(-0.1..0.1);
    }
    // The target sits well above every transformed value, so L1 has no kink nearby and the
    // finite differences see the same linear piece.
    let y: Vec<f32> = exposure::apply(&m, &x)
        .iter()
        .map(|v| v + 0.4 + rng.random_range(0.0..0.1))
        .collect();
    let mut g = loss::l1_ssim_loss(&exposure::apply(&m, &x), &y, w, h, 0.2).grad;
    let gm = exposure::backward(&m, &x, &mut g);
    let eps = 1e-3f32;
    for k in 0..12 {
        let (mut a, mut b) = (m, m);
        a[k] += eps;
        b[k] -= eps;
        let fd = (loss_of(&a, &x, &y, w, h) - loss_of(&b, &x, &y, w, h)) / (2.0 * eps as f64);
        assert!(
            (fd - gm[k] as f64).abs() <= 2e-3 * fd.abs().max(1e-2),
            "d/dm[{k}]: analytic {} finite difference {fd}",
            gm[k]
        );
    }
    // And through to the render: dL/dx at a few pixels.
    for &i in &[0usize, 100, 777, w * h * 3 - 1] {
        let (mut xa, mut xb) = (x.clone(), x.clone());
        xa[i] += eps;
        xb[i] -= eps;
        let fd = (loss_of(&m, &xa, &y, w, h) - loss_of(&m, &xb, &y, w, h)) / (2.0 * eps as f64);
        assert!(
            (fd - g[i] as f64).abs() <= 1e-2 * fd.abs().max(1e-5),
            "d/dx[{i}]: analytic {} finite difference {fd}",
            g[i]
        );
    }
}

#[test]
fn a_darkened_photo_is_learned_as_exposure_and_never_reaches_the_model() {
    let mut scene = splat_core::demo::synthetic_ring_scene(40, 32);
    // One training photo shot darker: its transform should learn the gain, not the colours.
    for v in scene.train[0].image.data.iter_mut() {
        *v *= 0.6;
    }
    let mut cfg = splat_core::demo::synthetic_ring_config(600);
    cfg.exposure.enabled = true;
    // Each view is seen a few dozen times in this short run, against hundreds in a real one:
    // a faster rate lets the transforms travel as far.
    cfg.exposure.lr = 0.05;
    cfg.exposure.lr_final = 0.01;
    let mut t = Trainer::new(&scene, cfg, &mut CpuBackend).expect("trainer");
    while !t.finished() {
        t.step().expect("step");
    }
    // What the transform does to mid-grey, over mid-grey: gain and offset together.
    let gain = |v: usize| {
        let m = t.state.exposures.views[v].m;
        (0..3)
            .map(|c| 0.5 * (m[4 * c] + m[4 * c + 1] + m[4 * c + 2]) + m[4 * c + 3])
            .sum::<f32>()
            / 1.5
    };
    let n = scene.train.len();
    let others = (1..n).map(gain).sum::<f32>() / (n - 1) as f32;
    assert!(
        gain(0) < 0.8 * others,
        "darkened view gain {} vs {others}",
        gain(0)
    );
    assert!(
        (others - 1.0).abs() < 0.15,
        "other views' mean gain {others}"
    );

    // The exported model is plain 3DGS: the standard PLY properties and nothing else, and it
    // reads back as exactly the trained Gaussians.
    let dir = spaceport_io::scratch_dir("exposure");
    let ply = dir.join("point_cloud.ply");
    let g = t.snapshot().expect("snapshot").params;
    splat_core::ply::write_ply(&ply, &g).expect("ply");
    let bytes = std::fs::read(&ply).expect("read");
    let end = bytes
        .windows(10)
        .position(|w| w == b"end_header")
        .expect("header");
    let header = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
    assert!(!header.contains("exposure"), "{header}");
    let props = header.lines().filter(|l| l.starts_with("property")).count();
    let rest = ((g.sh_degree + 1) * (g.sh_degree + 1) - 1) * 3;
    assert_eq!(props, 3 + 3 + 3 + rest + 1 + 3 + 4, "{header}");
    assert_eq!(splat_core::ply::read_ply(&ply).expect("read back"), g);

    // Checkpoints keep the transforms, so a resumed run goes on with them.
    let ckpt = dir.join("checkpoint.bin");
    checkpoint::save(&mut t, &ckpt).expect("save");
    let b = checkpoint::load(&ckpt, &scene, &mut CpuBackend).expect("load");
    assert_eq!(b.state.exposures, t.state.exposures);
    std::fs::remove_dir_all(&dir).ok();
}
