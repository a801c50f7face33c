//! Densification strategies on the CPU session: every per-Gaussian array stays in step, the
//! cap holds over training, and MCMC's relocation keeps the render (the paper's correction
//! against a naive copy).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splat_core::backend::{CpuBackend, CpuSession, DensifyParams, SessionState, TrainSession};
use splat_core::gaussians::{logit, Gaussians};
use splat_core::optim::Adam;
use splat_core::render::{render, RenderOptions};
use splat_core::train::config::{DensifyConfig, Strategy};
use splat_core::train::densify::DensifyStats;
use splat_core::train::strategy::{
    densify_default, mcmc_refine, relocation_correction, McmcParams,
};
use splat_core::train::Trainer;

fn random_state(n: usize, rng: &mut ChaCha8Rng) -> SessionState {
    let mut g = Gaussians::empty(1);
    for _ in 0..n {
        let sh: Vec<f32> = (0..12).map(|_| rng.random_range(-0.5..0.5)).collect();
        g.push(
            [0, 1, 2].map(|_| rng.random_range(-1.0..1.0)),
            [0, 1, 2].map(|_| rng.random_range(-5.0f32..-1.0)),
            [
                1.0,
                rng.random_range(-0.3..0.3),
                0.0,
                rng.random_range(-0.3..0.3),
            ],
            rng.random_range(-7.0..3.0),
            &sh,
        );
    }
    let mut adam = Adam::new(&g);
    // Distinct moments, so a mix-up between Gaussians shows.
    for i in 0..n {
        adam.m.opacity_logits[i] = i as f32 + 1.0;
        adam.v.means[i] = [i as f32 + 1.0; 3];
    }
    let mut stats = DensifyStats::new(n);
    let grads: Vec<[f32; 2]> = (0..n)
        .map(|_| [rng.random_range(-1e-3..1e-3), rng.random_range(-1e-3..1e-3)])
        .collect();
    let radii: Vec<u32> = (0..n).map(|_| rng.random_range(0..50)).collect();
    stats.accumulate(&grads, &radii, 200, 150);
    SessionState {
        params: g,
        adam,
        stats,
    }
}

fn assert_in_step(st: &SessionState) {
    let n = st.params.len();
    st.params.check_lengths().expect("params");
    st.adam.m.check_lengths().expect("m");
    st.adam.v.check_lengths().expect("v");
    assert_eq!((st.adam.m.len(), st.adam.v.len()), (n, n));
    assert_eq!(
        (
            st.stats.grad_accum.len(),
            st.stats.count.len(),
            st.stats.max_radius.len()
        ),
        (n, n, n)
    );
}

#[test]
fn strategies_keep_every_array_in_step_and_under_the_cap() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let st = random_state(400, &mut rng);
    let mut cpu = CpuSession::new(st.clone()).expect("session");
    let cfg = DensifyParams::from(&DensifyConfig {
        max_gaussians: 430,
        ..Default::default()
    });
    let r = densify_default(&mut cpu, &cfg, 3.0, true, 7).expect("densify");
    assert!(r.cloned + r.split > 0 && r.pruned > 0, "{r:?}");
    let after = cpu.snapshot().expect("snapshot");
    assert_in_step(&after);
    assert!(after.params.len() <= 430);
    assert_eq!(after.params.len(), 400 + r.cloned + r.split - r.pruned);

    let mut cpu = CpuSession::new(st.clone()).expect("session");
    let p = McmcParams {
        min_opacity: 0.005,
        growth: 0.05,
        max_gaussians: 410,
    };
    let dead = st
        .params
        .opacity_logits
        .iter()
        .filter(|&&l| l <= logit(0.005f32))
        .count();
    assert!(dead > 0);
    let r = mcmc_refine(&mut cpu, &p, 9).expect("mcmc");
    assert_eq!((r.relocated, r.added), (dead, 10));
    let after = cpu.snapshot().expect("snapshot");
    assert_in_step(&after);
    assert_eq!(after.params.len(), 410);
    // Nothing is dead any more: every relocated opacity is clamped at least to the threshold.
    assert!(after
        .params
        .opacity_logits
        .iter()
        .all(|&l| l >= logit(0.005f32) - 1e-4));
    // At the cap, a second refinement relocates but adds nothing.
    let r = mcmc_refine(&mut cpu, &p, 10).expect("mcmc");
    assert_eq!(r.added, 0);
    assert_eq!(cpu.len(), 410);
    // Relocation sources and destinations lose their moments; the others keep theirs.
    let kept = (0..400)
        .filter(|&i| after.adam.m.opacity_logits[i] == i as f32 + 1.0)
        .count();
    assert!(kept > 0 && kept < 400, "{kept}");
}

#[test]
fn cap_holds_over_a_short_training_run() {
    let scene = splat_core::demo::synthetic_ring_scene(40, 32);
    for strategy in [Strategy::Default, Strategy::Mcmc] {
        let mut cfg = splat_core::demo::synthetic_ring_config(260);
        cfg.densify.strategy = strategy;
        // Below the initial 600: the trainer starts from a subset and never exceeds it.
        cfg.densify.max_gaussians = 500;
        cfg.densify.grad_threshold = 5e-5;
        cfg.densify.mcmc.until = 250;
        let mut t = Trainer::new(&scene, cfg, &mut CpuBackend).expect("trainer");
        let mut most = t.gaussians_len();
        let mut refined = 0;
        while !t.finished() {
            let info = t.step().expect("step");
            most = most.max(info.gaussians);
            if let Some(r) = info.densified {
                refined += 1;
                let snap = t.snapshot().expect("snapshot");
                assert_in_step(&snap);
                if strategy == Strategy::Mcmc {
                    assert_eq!(r.cloned + r.split + r.pruned, 0);
                }
            }
        }
        assert_eq!(refined, 3, "{strategy:?}");
        assert!(most <= 500, "{strategy:?}: {most} Gaussians");
        if strategy == Strategy::Mcmc {
            // Growth is only limited by the cap, which the subset starts at.
            assert_eq!(t.gaussians_len(), 500);
        }
        let snap = t.snapshot().expect("snapshot");
        assert!(snap.params.non_finite().is_none());
    }
}

#[test]
fn mcmc_training_from_below_the_cap_grows_to_it() {
    let scene = splat_core::demo::synthetic_ring_scene(40, 32);
    let mut cfg = splat_core::demo::synthetic_ring_config(260);
    cfg.densify.strategy = Strategy::Mcmc;
    cfg.densify.max_gaussians = 640;
    cfg.densify.mcmc.until = 250;
    let mut t = Trainer::new(&scene, cfg, &mut CpuBackend).expect("trainer");
    let mut counts = vec![];
    while !t.finished() {
        let info = t.step().expect("step");
        if info.densified.is_some() {
            counts.push(info.gaussians);
        }
    }
    // 600 -> 630 (5%) -> 640 (the cap) -> 640.
    assert_eq!(counts, vec![630, 640, 640]);
}

fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64
}

/// A toy scene: one live Gaussian seen face-on over a dark background, a dead one elsewhere.
/// Relocating the dead one onto the live one with the paper's correction keeps the image far
/// closer than copying the live one as it is.
#[test]
fn relocation_with_the_papers_correction_preserves_the_render() {
    let cam = splat_core::demo::demo_camera(96, 72, 0.4);
    let opts = RenderOptions {
        background: [0.0; 3],
        sh_degree: Some(0),
        ..Default::default()
    };
    for &o in &[0.3f32, 0.6, 0.85] {
        let mut g = Gaussians::empty(0);
        g.push(
            [0.0, 0.0, 0.35],
            [(0.12f32).ln(); 3],
            [1.0, 0.0, 0.0, 0.0],
            logit(o),
            &[1.5, 1.2, 0.9],
        );
        g.push(
            [0.5, -0.4, 0.2],
            [(0.05f32).ln(); 3],
            [1.0, 0.0, 0.0, 0.0],
            logit(0.001),
            &[1.0; 3],
        );
        let adam = Adam::new(&g);
        let before = render(&g, &cam, &opts).image;
        let session = |g: &Gaussians| {
            CpuSession::new(SessionState {
                params: g.clone(),
                adam: adam.clone(),
                stats: DensifyStats::new(2),
            })
            .expect("session")
        };

        let mut paper = session(&g);
        let p = McmcParams {
            min_opacity: 0.005,
            growth: 0.05,
            max_gaussians: 2,
        };
        let r = mcmc_refine(&mut paper, &p, 1).expect("relocate");
        assert_eq!((r.relocated, r.added), (1, 0));
        let moved = paper.snapshot().expect("snapshot").params;
        assert_eq!(moved.means[1], moved.means[0]);
        let (o_new, f) = relocation_correction(o, 2, 0.005);
        assert!((o_new - (1.0 - (1.0 - o).sqrt())).abs() < 1e-6);
        assert!((moved.log_scales[0][0] - ((0.12f32).ln() + f.ln())).abs() < 1e-5);
        let corrected = render(&moved, &cam, &opts).image;

        let mut naive = session(&g);
        naive
            .relocate(&[1], &[0], &[logit(o)], &[[(0.12f32).ln(); 3]])
            .expect("copy");
        let copied = render(&naive.snapshot().expect("snapshot").params, &cam, &opts).image;

        let (e_paper, e_naive) = (mse(&before, &corrected), mse(&before, &copied));
        eprintln!("opacity {o}: corrected MSE {e_paper:.3e}, naive copy {e_naive:.3e}");
        assert!(
            e_paper < 0.2 * e_naive,
            "opacity {o}: corrected MSE {e_paper}, naive copy {e_naive}"
        );
    }
}

#[test]
fn relocation_correction_is_the_identity_for_one_copy() {
    for &o in &[0.01f32, 0.3, 0.9] {
        let (o1, f1) = relocation_correction(o, 1, 0.005);
        assert!(
            (o1 - o).abs() < 1e-6 && (f1 - 1.0).abs() < 1e-5,
            "{o}: {o1} {f1}"
        );
        // More copies: each more transparent; the combined opacity matches.
        for n in [2usize, 5, 20] {
            let (on, _) = relocation_correction(o, n, 1e-9);
            assert!(on < o);
            assert!((1.0 - (1.0 - on).powi(n as i32) - o).abs() < 1e-4);
        }
    }
}

#[test]
fn primitives_refuse_bad_input() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let st = random_state(10, &mut rng);
    let mut cpu = CpuSession::new(st.clone()).expect("session");
    assert!(cpu.gather(&[10]).is_err());
    assert!(cpu.compact(&[true; 9]).is_err());
    let g = cpu.gather(&[1, 2]).expect("gather");
    assert!(cpu.scatter(&[1], &g).is_err());
    assert!(cpu.scatter(&[1, 10], &g).is_err());
    assert!(cpu.relocate(&[1], &[2, 3], &[0.0], &[[0.0; 3]]).is_err());
    // Nothing changed by the refused edits.
    assert_eq!(cpu.snapshot().expect("snapshot"), st);
    let mut fewer = st;
    fewer.stats.count.pop();
    assert!(CpuSession::new(fewer).is_err());
}
