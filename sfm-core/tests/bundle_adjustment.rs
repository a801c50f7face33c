//! Bundle adjustment converges to a known synthetic solution.

use glam::{DVec2, DVec3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfm_core::estimators::{rotation_angle, Pose};
use sfm_core::internals::rodrigues;
use sfm_core::internals::RadialCamera;
use sfm_core::internals::{bundle_adjust, BaConfig, Observation};

struct Scene {
    cam: RadialCamera,
    poses: Vec<Pose>,
    pts: Vec<DVec3>,
    obs: Vec<Observation>,
}

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(1e-12..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Eight cameras on an arc looking at a cloud of points around the origin.
fn scene(rng: &mut ChaCha8Rng, noise_px: f64) -> Scene {
    let cam = RadialCamera {
        f: 1000.0,
        cx: 500.0,
        cy: 400.0,
        k: -0.08,
        width: 1000,
        height: 800,
    };
    let poses: Vec<Pose> = (0..8)
        .map(|i| {
            let a = (i as f64 - 3.5) * 0.12;
            let c = DVec3::new(6.0 * a.sin(), 0.3 * (i as f64 * 0.7).sin(), -6.0 * a.cos());
            // look at the origin: z axis towards -c
            let z = (-c).normalize();
            let x = DVec3::Y.cross(z).normalize();
            let y = z.cross(x);
            let r = glam::DMat3::from_cols(x, y, z).transpose();
            Pose { r, t: -(r * c) }
        })
        .collect();
    let pts: Vec<DVec3> = (0..400)
        .map(|_| {
            DVec3::new(
                rng.random_range(-1.5..1.5),
                rng.random_range(-1.5..1.5),
                rng.random_range(-1.5..1.5),
            )
        })
        .collect();
    let mut obs = Vec::new();
    for (pi, x) in pts.iter().enumerate() {
        for (ii, p) in poses.iter().enumerate() {
            if let Some(px) = cam.project(p.apply(*x)) {
                if px.x > 0.0 && px.y > 0.0 && px.x < 1000.0 && px.y < 800.0 {
                    let n = DVec2::new(gauss(rng), gauss(rng)) * noise_px;
                    obs.push(Observation {
                        image: ii,
                        camera: 0,
                        point: pi,
                        xy: px + n,
                    });
                }
            }
        }
    }
    Scene {
        cam,
        poses,
        pts,
        obs,
    }
}

fn perturb(rng: &mut ChaCha8Rng, s: &Scene) -> (Vec<RadialCamera>, Vec<Pose>, Vec<DVec3>) {
    let mut cam = s.cam;
    cam.f *= 1.04;
    cam.k = 0.0;
    let poses: Vec<Pose> = s
        .poses
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 0 {
                return *p; // gauge: first pose held fixed
            }
            let w = DVec3::new(gauss(rng), gauss(rng), gauss(rng)) * 0.01;
            let mut t = p.t + DVec3::new(gauss(rng), gauss(rng), gauss(rng)) * 0.05;
            if i == 1 {
                t.z = p.t.z; // gauge: one translation coordinate of the second pose fixed
            }
            Pose {
                r: rodrigues(w) * p.r,
                t,
            }
        })
        .collect();
    let pts = s
        .pts
        .iter()
        .map(|x| *x + DVec3::new(gauss(rng), gauss(rng), gauss(rng)) * 0.03)
        .collect();
    (vec![cam], poses, pts)
}

fn rms(cams: &[RadialCamera], poses: &[Pose], pts: &[DVec3], obs: &[Observation]) -> f64 {
    let s: f64 = obs
        .iter()
        .map(|o| {
            (cams[o.camera]
                .project(poses[o.image].apply(pts[o.point]))
                .unwrap()
                - o.xy)
                .length_squared()
        })
        .sum();
    (s / obs.len() as f64).sqrt()
}

fn config(n_pts: usize) -> BaConfig {
    let mut pose_var = vec![true; 8];
    pose_var[0] = false;
    BaConfig {
        pose_var,
        intr_var: vec![true],
        refine_principal_point: false,
        point_var: vec![true; n_pts],
        fix_translation: Some((1, 2)),
        loss_scale: 2.0,
        max_iters: 100,
    }
}

#[test]
fn ba_recovers_exact_solution_without_noise() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let s = scene(&mut rng, 0.0);
    let (mut cams, mut poses, mut pts) = perturb(&mut rng, &s);
    let before = rms(&cams, &poses, &pts, &s.obs);
    assert!(before > 5.0, "perturbation too small: {before}");
    let cfg = config(pts.len());
    let sum = bundle_adjust(&mut cams, &mut poses, &mut pts, &s.obs, &cfg);
    let after = rms(&cams, &poses, &pts, &s.obs);
    assert!(
        after < 1e-6,
        "rms {before} -> {after} after {} iterations",
        sum.iterations
    );
    assert!((cams[0].f - 1000.0).abs() < 1e-4, "focal {}", cams[0].f);
    assert!((cams[0].k + 0.08).abs() < 1e-7, "k {}", cams[0].k);
    for (p, t) in poses.iter().zip(&s.poses) {
        assert!(rotation_angle(&p.r, &t.r) < 1e-8);
        assert!(
            (p.t - t.t).length() < 1e-6,
            "translation off by {}",
            (p.t - t.t).length()
        );
    }
}

#[test]
fn ba_with_noise_reaches_noise_floor() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let s = scene(&mut rng, 0.5);
    let (mut cams, mut poses, mut pts) = perturb(&mut rng, &s);
    let cfg = config(pts.len());
    bundle_adjust(&mut cams, &mut poses, &mut pts, &s.obs, &cfg);
    let after = rms(&cams, &poses, &pts, &s.obs);
    let truth = rms(&[s.cam], &s.poses, &s.pts, &s.obs);
    // The optimum fits the noisy data at least as well as the truth does.
    assert!(after <= truth, "rms {after} vs truth {truth}");
    assert!(after > 0.3, "suspiciously small residual {after}");
    assert!(
        (cams[0].f / 1000.0 - 1.0).abs() < 0.005,
        "focal {}",
        cams[0].f
    );
    for (p, t) in poses.iter().zip(&s.poses) {
        assert!(rotation_angle(&p.r, &t.r).to_degrees() < 0.05);
    }
}

#[test]
fn ba_refines_principal_point_when_asked() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let s = scene(&mut rng, 0.0);
    let (mut cams, mut poses, mut pts) = perturb(&mut rng, &s);
    cams[0].cx += 6.0;
    cams[0].cy -= 4.0;
    let mut cfg = config(pts.len());
    cfg.refine_principal_point = true;
    bundle_adjust(&mut cams, &mut poses, &mut pts, &s.obs, &cfg);
    let after = rms(&cams, &poses, &pts, &s.obs);
    assert!(after < 1e-5, "rms {after}");
    assert!(
        (cams[0].cx - 500.0).abs() < 1e-3 && (cams[0].cy - 400.0).abs() < 1e-3,
        "pp {} {}",
        cams[0].cx,
        cams[0].cy
    );
}
