//! Minimal solvers and RANSAC on noisy synthetic scenes with outliers.

use glam::{DMat3, DVec2, DVec3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfm_core::estimators::*;
use sfm_core::internals::rodrigues;

const F: f64 = 1000.0; // pixels per normalized unit, to express noise in pixels

fn rand_pose(rng: &mut ChaCha8Rng, rot: f64, trans: f64) -> Pose {
    let w = DVec3::new(
        rng.random_range(-1.0..1.0),
        rng.random_range(-1.0..1.0),
        rng.random_range(-1.0..1.0),
    );
    let t = DVec3::new(
        rng.random_range(-1.0..1.0),
        rng.random_range(-1.0..1.0),
        rng.random_range(-0.3..0.3),
    );
    Pose {
        r: rodrigues(w.normalize() * rot),
        t: t.normalize() * trans,
    }
}

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller
    let u1: f64 = rng.random_range(1e-12..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn project(p: &Pose, x: DVec3) -> DVec2 {
    let c = p.apply(x);
    DVec2::new(c.x / c.z, c.y / c.z)
}

/// Points in front of both cameras (within a box around z = 5).
fn scene(rng: &mut ChaCha8Rng, n: usize) -> Vec<DVec3> {
    (0..n)
        .map(|_| {
            DVec3::new(
                rng.random_range(-2.0..2.0),
                rng.random_range(-2.0..2.0),
                rng.random_range(4.0..7.0),
            )
        })
        .collect()
}

fn noisy(rng: &mut ChaCha8Rng, p: DVec2, px: f64) -> DVec2 {
    p + DVec2::new(gauss(rng), gauss(rng)) * (px / F)
}

fn e_dist(a: &DMat3, b: &DMat3) -> f64 {
    let na = *a * (1.0 / a.to_cols_array().iter().map(|v| v * v).sum::<f64>().sqrt());
    let nb = *b * (1.0 / b.to_cols_array().iter().map(|v| v * v).sum::<f64>().sqrt());
    let d1: f64 = (na - nb).to_cols_array().iter().map(|v| v.abs()).sum();
    let d2: f64 = (na + nb).to_cols_array().iter().map(|v| v.abs()).sum();
    d1.min(d2)
}

fn angle_between(a: DVec3, b: DVec3) -> f64 {
    a.normalize()
        .dot(b.normalize())
        .clamp(-1.0, 1.0)
        .acos()
        .to_degrees()
}

#[test]
fn five_point_exact_recovers_true_essential() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for trial in 0..20 {
        let rel = rand_pose(&mut rng, 0.3, 1.0);
        let pts = scene(&mut rng, 5);
        let x1: Vec<_> = pts.iter().map(|&x| project(&Pose::IDENTITY, x)).collect();
        let x2: Vec<_> = pts.iter().map(|&x| project(&rel, x)).collect();
        let sols = five_point(&x1, &x2);
        assert!(
            !sols.is_empty() && sols.len() <= 10,
            "trial {trial}: {} solutions",
            sols.len()
        );
        let truth = essential_from_pose(&rel);
        let best = sols
            .iter()
            .map(|e| e_dist(e, &truth))
            .fold(f64::INFINITY, f64::min);
        assert!(best < 1e-6, "trial {trial}: closest solution off by {best}");
    }
}

#[test]
fn essential_ransac_with_noise_and_outliers() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let rel = rand_pose(&mut rng, 0.25, 1.0);
    let pts = scene(&mut rng, 300);
    let mut x1 = Vec::new();
    let mut x2 = Vec::new();
    let mut is_out = Vec::new();
    for (i, &x) in pts.iter().enumerate() {
        let out = i % 10 < 3; // 30 % outliers
        x1.push(noisy(&mut rng, project(&Pose::IDENTITY, x), 1.0));
        if out {
            x2.push(DVec2::new(
                rng.random_range(-0.6..0.6),
                rng.random_range(-0.6..0.6),
            ));
        } else {
            x2.push(noisy(&mut rng, project(&rel, x), 1.0));
        }
        is_out.push(out);
    }
    let est = EssentialEstimator { x1: &x1, x2: &x2 };
    let res = ransac(
        &est,
        &RansacOptions {
            max_error: 3.0 / F,
            ..Default::default()
        },
    )
    .expect("model");
    let correct = (0..300).filter(|&i| res.inliers[i] != is_out[i]).count();
    assert!(correct >= 285, "inlier classification {correct}/300");
    let (pose, _) = pose_from_essential(&res.model, &x1, &x2).expect("pose");
    let rot_err = rotation_angle(&pose.r, &rel.r).to_degrees();
    let t_err = angle_between(pose.t, rel.t);
    // The fitted model must explain the true inliers at least as well as the truth does
    // (it is a least-squares fit, so it should do slightly better), and be close to it.
    let truth = essential_from_pose(&rel);
    let cost = |e: &DMat3| {
        (0..300)
            .filter(|&i| !is_out[i])
            .map(|i| sampson_sq(e, x1[i], x2[i]))
            .sum::<f64>()
    };
    let (c_est, c_true) = (cost(&res.model), cost(&truth));
    assert!(
        c_est <= 1.01 * c_true,
        "Sampson cost {c_est} vs truth {c_true}"
    );
    assert!(rot_err < 0.5, "rotation error {rot_err} deg");
    assert!(t_err < 2.0, "translation direction error {t_err} deg");
}

#[test]
fn seven_point_exact_and_fundamental_ransac() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let k =
        sfm_core::internals::mat3_rows([800.0, 0.0, 320.0], [0.0, 800.0, 240.0], [0.0, 0.0, 1.0]);
    let to_px = |p: DVec2| DVec2::new(800.0 * p.x + 320.0, 800.0 * p.y + 240.0);
    let rel = rand_pose(&mut rng, 0.3, 1.0);
    let kinv = k.inverse();
    let f_true = kinv.transpose() * essential_from_pose(&rel) * kinv;
    let pts = scene(&mut rng, 7);
    let x1: Vec<_> = pts
        .iter()
        .map(|&x| to_px(project(&Pose::IDENTITY, x)))
        .collect();
    let x2: Vec<_> = pts.iter().map(|&x| to_px(project(&rel, x))).collect();
    let sols = seven_point(&x1, &x2);
    assert!(!sols.is_empty());
    let best = sols
        .iter()
        .map(|f| e_dist(f, &f_true))
        .fold(f64::INFINITY, f64::min);
    assert!(best < 1e-6, "seven-point off by {best}");

    let pts = scene(&mut rng, 200);
    let mut x1 = Vec::new();
    let mut x2 = Vec::new();
    for (i, &x) in pts.iter().enumerate() {
        x1.push(
            to_px(project(&Pose::IDENTITY, x)) + DVec2::new(gauss(&mut rng), gauss(&mut rng)) * 0.5,
        );
        if i % 4 == 0 {
            x2.push(DVec2::new(
                rng.random_range(0.0..640.0),
                rng.random_range(0.0..480.0),
            ));
        } else {
            x2.push(to_px(project(&rel, x)) + DVec2::new(gauss(&mut rng), gauss(&mut rng)) * 0.5);
        }
    }
    let est = FundamentalEstimator { x1: &x1, x2: &x2 };
    let res = ransac(
        &est,
        &RansacOptions {
            max_error: 2.0,
            ..Default::default()
        },
    )
    .expect("F");
    assert!(
        res.num_inliers >= 140 && res.num_inliers <= 160,
        "inliers {}",
        res.num_inliers
    );
    // Inliers of the estimate must fit the true epipolar geometry well.
    let mean_true: f64 = (0..200)
        .filter(|&i| i % 4 != 0)
        .map(|i| sampson_sq(&f_true, x1[i], x2[i]).sqrt())
        .sum::<f64>()
        / 150.0;
    let mean_est: f64 = (0..200)
        .filter(|&i| i % 4 != 0)
        .map(|i| sampson_sq(&res.model, x1[i], x2[i]).sqrt())
        .sum::<f64>()
        / 150.0;
    assert!(
        mean_est < 1.5 * mean_true + 0.1,
        "est {mean_est} vs true {mean_true}"
    );
    let lsq = eight_point(
        &(0..200)
            .filter(|&i| i % 4 != 0)
            .map(|i| x1[i])
            .collect::<Vec<_>>(),
        &(0..200)
            .filter(|&i| i % 4 != 0)
            .map(|i| x2[i])
            .collect::<Vec<_>>(),
    )
    .expect("8pt");
    assert!(lsq.determinant().abs() < 1e-9, "rank 2 enforced");
}

#[test]
fn homography_from_plane_with_noise() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let rel = rand_pose(&mut rng, 0.2, 0.5);
    // Plane z = 5 + 0.2 x
    let pts: Vec<DVec3> = (0..150)
        .map(|_| {
            let x = rng.random_range(-2.0..2.0);
            DVec3::new(x, rng.random_range(-2.0..2.0), 5.0 + 0.2 * x)
        })
        .collect();
    let x1: Vec<_> = pts
        .iter()
        .map(|&x| project(&Pose::IDENTITY, x) * F)
        .collect();
    let x2: Vec<_> = pts
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if i % 5 == 0 {
                DVec2::new(
                    rng.random_range(-500.0..500.0),
                    rng.random_range(-500.0..500.0),
                )
            } else {
                project(&rel, x) * F + DVec2::new(gauss(&mut rng), gauss(&mut rng)) * 0.5
            }
        })
        .collect();
    let clean: Vec<usize> = (0..150).filter(|i| i % 5 != 0).collect();
    let exact = homography_dlt(
        &clean.iter().take(4).map(|&i| x1[i]).collect::<Vec<_>>(),
        &clean
            .iter()
            .take(4)
            .map(|&i| project(&rel, pts[i]) * F)
            .collect::<Vec<_>>(),
    )
    .expect("H");
    for &i in &clean {
        assert!(transfer_error_sq(&exact, x1[i], project(&rel, pts[i]) * F) < 1e-6);
    }
    let est = HomographyEstimator { x1: &x1, x2: &x2 };
    let res = ransac(
        &est,
        &RansacOptions {
            max_error: 2.0,
            ..Default::default()
        },
    )
    .expect("H");
    assert!(
        res.num_inliers >= 110 && res.num_inliers <= 120,
        "inliers {}",
        res.num_inliers
    );
    let rms = (clean
        .iter()
        .map(|&i| transfer_error_sq(&res.model, x1[i], project(&rel, pts[i]) * F))
        .sum::<f64>()
        / clean.len() as f64)
        .sqrt();
    assert!(rms < 0.3, "rms against noise-free {rms}");
}

#[test]
fn p3p_exact_and_absolute_pose_ransac() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for trial in 0..30 {
        let pose = rand_pose(&mut rng, 0.5, 1.0);
        let world: Vec<DVec3> = scene(&mut rng, 3)
            .into_iter()
            .map(|x| pose.inverse().apply(x))
            .collect();
        let b = [0, 1, 2].map(|k| pose.apply(world[k]).normalize());
        let sols = p3p(&b, &[world[0], world[1], world[2]]);
        let best = sols
            .iter()
            .map(|s| rotation_angle(&s.r, &pose.r) + (s.t - pose.t).length())
            .fold(f64::INFINITY, f64::min);
        assert!(
            best < 1e-6,
            "trial {trial}: {best} from {} solutions",
            sols.len()
        );
    }
    let pose = rand_pose(&mut rng, 0.5, 1.0);
    let world: Vec<DVec3> = scene(&mut rng, 200)
        .into_iter()
        .map(|x| pose.inverse().apply(x))
        .collect();
    let pts: Vec<DVec2> = world
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if i % 3 == 0 {
                DVec2::new(rng.random_range(-0.5..0.5), rng.random_range(-0.5..0.5))
            } else {
                noisy(&mut rng, project(&pose, x), 1.0)
            }
        })
        .collect();
    let est = AbsolutePoseEstimator {
        pts: &pts,
        world: &world,
    };
    let res = ransac(
        &est,
        &RansacOptions {
            max_error: 4.0 / F,
            ..Default::default()
        },
    )
    .expect("pose");
    let rot = rotation_angle(&res.model.r, &pose.r).to_degrees();
    let cen = (res.model.center() - pose.center()).length();
    assert!(rot < 0.1, "rotation error {rot} deg");
    assert!(cen < 0.02, "centre error {cen}");
    assert!(res.num_inliers >= 130, "inliers {}", res.num_inliers);
}

#[test]
fn multiview_triangulation_with_noise() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let poses: Vec<Pose> = (0..5).map(|_| rand_pose(&mut rng, 0.15, 1.0)).collect();
    let mut worst: f64 = 0.0;
    for x in scene(&mut rng, 100) {
        let obs: Vec<DVec2> = poses
            .iter()
            .map(|p| noisy(&mut rng, project(p, x), 0.5))
            .collect();
        let est = triangulate_multi(&poses, &obs).expect("point");
        worst = worst.max((est - x).length() / x.length());
        let exact = triangulate_multi(
            &poses,
            &poses.iter().map(|p| project(p, x)).collect::<Vec<_>>(),
        )
        .expect("point");
        assert!((exact - x).length() < 1e-8);
    }
    assert!(worst < 0.02, "relative error {worst}");
}
