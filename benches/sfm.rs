//! SfM hot paths: SIFT on one photo, descriptor matching of one image pair, and one
//! Levenberg-Marquardt iteration of bundle adjustment on a synthetic scene.
//!
//! The SIFT and matching benches read Strecha fountain-P11 from `../shared/data` and are skipped
//! (with a notice) when it is not there.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use glam::{DMat3, DVec2, DVec3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfm_core::estimators::Pose;
use sfm_core::internals::RadialCamera;
use sfm_core::internals::{bundle_adjust, BaConfig, Observation};
use sfm_core::internals::{extract, Gray};
use sfm_core::internals::{match_descriptors, DescriptorSet};
use sfm_core::MatchOptions;
use sfm_core::SiftOptions;

const FOUNTAIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/strecha/fountain-P11/images"
);

/// A fountain photo as the pipeline sees it with `max_image_size` = `side`: grey, larger side `side`.
fn fountain(name: &str, side: u32) -> Option<Gray> {
    let img = image::open(format!("{FOUNTAIN}/{name}")).ok()?.into_luma8();
    let s = side as f64 / img.width().max(img.height()) as f64;
    let (w, h) = (
        (img.width() as f64 * s).round() as u32,
        (img.height() as f64 * s).round() as u32,
    );
    let img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
    Some(Gray::from_luma8(w as usize, h as usize, img.as_raw()))
}

fn sift_and_matching(c: &mut Criterion) {
    // As the pipeline runs: images of at most 1000 px get an upsampled first octave.
    for (side, upsample) in [(1024, false), (800, true)] {
        let (Some(a), Some(b)) = (fountain("0000.jpg", side), fountain("0001.jpg", side)) else {
            eprintln!("skipping SIFT and matching: {FOUNTAIN} not readable");
            return;
        };
        let opt = SiftOptions {
            upsample,
            ..Default::default()
        };
        let up = if upsample { "_upsampled" } else { "" };
        let mut group = c.benchmark_group(format!("sift_fountain_{}x{}{up}", a.w, a.h));
        group.sample_size(10);
        group.bench_function("extract", |bch| bch.iter(|| extract(&a, &opt)));
        group.finish();

        let (fa, fb) = (extract(&a, &opt), extract(&b, &opt));
        let (da, db) = (
            DescriptorSet::from_features(&fa),
            DescriptorSet::from_features(&fb),
        );
        let mopt = MatchOptions::default();
        let found = match_descriptors(&da, &db, &mopt).len();
        eprintln!("matching {} x {} descriptors ({found} matches)", da.n, db.n);
        let mut group = c.benchmark_group(format!("match_fountain_{}x{}", da.n, db.n));
        group.sample_size(10);
        group.bench_function("match_descriptors", |bch| {
            bch.iter(|| match_descriptors(&da, &db, &mopt))
        });
        group.finish();
    }
}

/// Camera at `eye` looking at the origin, z up.
fn look_at(eye: DVec3) -> Pose {
    let f = (-eye).normalize();
    let r = f.cross(DVec3::Z).normalize();
    let d = f.cross(r);
    let rot = DMat3::from_cols(r, d, f).transpose();
    Pose {
        r: rot,
        t: -(rot * eye),
    }
}

/// A perturbed synthetic problem: `ncam` cameras on a ring around `npts` points, each point seen
/// by 6 random cameras with 0.5 px noise; poses and points start off their true values.
struct Problem {
    cams: Vec<RadialCamera>,
    poses: Vec<Pose>,
    pts: Vec<DVec3>,
    obs: Vec<Observation>,
    cfg: BaConfig,
}

fn problem(ncam: usize, npts: usize) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let cam = RadialCamera {
        k: -0.02,
        ..RadialCamera::with_prior(1024, 683, 900.0)
    };
    let poses: Vec<Pose> = (0..ncam)
        .map(|i| {
            let a = i as f64 / ncam as f64 * std::f64::consts::TAU;
            look_at(DVec3::new(4.0 * a.cos(), 4.0 * a.sin(), 1.0))
        })
        .collect();
    let pts: Vec<DVec3> = (0..npts)
        .map(|_| {
            DVec3::new(
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            )
        })
        .collect();
    let mut obs = Vec::new();
    for (p, x) in pts.iter().enumerate() {
        let first = rng.random_range(0..ncam);
        for k in 0..6 {
            let image = (first + k) % ncam;
            if let Some(px) = cam.project(poses[image].apply(*x)) {
                let noise = DVec2::new(rng.random_range(-0.5..0.5), rng.random_range(-0.5..0.5));
                obs.push(Observation {
                    image,
                    camera: 0,
                    point: p,
                    xy: px + noise,
                });
            }
        }
    }
    let mut jitter = |s: f64| {
        DVec3::new(
            rng.random_range(-s..s),
            rng.random_range(-s..s),
            rng.random_range(-s..s),
        )
    };
    let poses = poses
        .iter()
        .map(|p| Pose {
            r: p.r,
            t: p.t + jitter(0.01),
        })
        .collect();
    let pts = pts.iter().map(|x| *x + jitter(0.01)).collect();
    let cfg = BaConfig {
        pose_var: (0..ncam).map(|i| i != 0).collect(),
        intr_var: vec![true],
        refine_principal_point: false,
        point_var: vec![true; npts],
        fix_translation: Some((1, 0)),
        loss_scale: 1.0,
        max_iters: 1,
    };
    Problem {
        cams: vec![RadialCamera { f: 880.0, ..cam }],
        poses,
        pts,
        obs,
        cfg,
    }
}

fn bundle(c: &mut Criterion) {
    let (ncam, npts) = (50, 20_000);
    let p = problem(ncam, npts);
    let mut group = c.benchmark_group(format!(
        "bundle_adjust_{ncam}cams_{}k_points_{}k_obs",
        npts / 1000,
        p.obs.len() / 1000
    ));
    group.sample_size(10);
    let s = bundle_adjust(
        &mut p.cams.clone(),
        &mut p.poses.clone(),
        &mut p.pts.clone(),
        &p.obs,
        &p.cfg,
    );
    eprintln!(
        "one iteration: robust cost {:.0} -> {:.0}",
        s.initial_cost, s.final_cost
    );
    group.bench_function("one_iteration", |b| {
        b.iter_batched(
            || (p.cams.clone(), p.poses.clone(), p.pts.clone()),
            |(mut cams, mut poses, mut pts)| {
                bundle_adjust(&mut cams, &mut poses, &mut pts, &p.obs, &p.cfg)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, sift_and_matching, bundle);
criterion_main!(benches);
