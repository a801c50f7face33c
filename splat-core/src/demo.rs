//! Built-in scenes, so that a fresh checkout can render, train and run the pipeline with no
//! data: a procedural splat scene, a small posed training scene, and the photo set of
//! [`photos`].

pub mod photos;

use std::f32::consts::TAU;

use glam::DVec3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::camera::Camera;
use crate::gaussians::{logit, Gaussians};
use crate::sh::rgb_to_sh_dc;

/// A torus knot of coloured Gaussians over a checkered floor (about 20k Gaussians, SH degree 0).
pub fn demo_gaussians() -> Gaussians {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut g = Gaussians::empty(0);
    let n_knot = 12_000;
    for k in 0..n_knot {
        // (2, 3) torus knot.
        let t = k as f32 / n_knot as f32 * TAU;
        let r = 0.6 + 0.25 * (3.0 * t).cos();
        let c = [
            r * (2.0 * t).cos(),
            r * (2.0 * t).sin(),
            0.6 + 0.25 * (3.0 * t).sin(),
        ];
        let jitter = [0, 1, 2].map(|_| rng.random_range(-0.06..0.06f32));
        let hue = t / TAU;
        let rgb = [
            0.5 + 0.5 * (hue * TAU).cos(),
            0.5 + 0.5 * (hue * TAU + TAU / 3.0).cos(),
            0.5 + 0.5 * (hue * TAU + 2.0 * TAU / 3.0).cos(),
        ];
        let s = (0.025f32).ln();
        g.push(
            [c[0] + jitter[0], c[1] + jitter[1], c[2] + jitter[2]],
            [s; 3],
            [1.0, 0.0, 0.0, 0.0],
            logit(0.8),
            &rgb.map(rgb_to_sh_dc),
        );
    }
    let n = 90;
    for i in 0..n {
        for j in 0..n {
            let (x, y) = (
                -1.5 + 3.0 * i as f32 / (n - 1) as f32,
                -1.5 + 3.0 * j as f32 / (n - 1) as f32,
            );
            let v = if ((i / 10) + (j / 10)) % 2 == 0 {
                0.85
            } else {
                0.2
            };
            let s = (0.02f32).ln();
            g.push(
                [x, y, 0.0],
                [s, s, (0.004f32).ln()],
                [1.0, 0.0, 0.0, 0.0],
                logit(0.95),
                &[v, v, v * 0.9].map(rgb_to_sh_dc),
            );
        }
    }
    g
}

/// A camera on a ring around the demo scene, at `angle` radians.
pub fn demo_camera(width: u32, height: u32, angle: f64) -> Camera {
    let eye = DVec3::new(3.2 * angle.cos(), 3.2 * angle.sin(), 2.0);
    Camera::look_at(
        width,
        height,
        0.9,
        eye,
        DVec3::new(0.0, 0.0, 0.35),
        DVec3::Z,
    )
}

/// A small posed scene for tests and examples: a 6x6x3 block of coloured Gaussians rendered
/// on white from a ring of 12 cameras at `width` x `height`; every 4th view is a test view.
pub fn synthetic_ring_scene(width: u32, height: u32) -> crate::scene::Scene {
    use crate::scene::{Image, Scene, View};
    let mut truth = Gaussians::empty(0);
    let mut k = 0;
    for i in 0..6 {
        for j in 0..6 {
            for l in 0..3 {
                let p = [
                    i as f32 * 0.2 - 0.5,
                    j as f32 * 0.2 - 0.5,
                    l as f32 * 0.2 - 0.2,
                ];
                let c = [
                    (i as f32 / 5.0 - 0.5) * 3.0,
                    (j as f32 / 5.0 - 0.5) * 3.0,
                    (l as f32 - 1.0) * 1.5,
                ];
                truth.push(
                    p,
                    [(0.09f32).ln(); 3],
                    [1.0, 0.1 * k as f32 % 1.0, 0.0, 0.0],
                    2.0,
                    &c,
                );
                k += 1;
            }
        }
    }
    let opts = crate::render::RenderOptions {
        background: [1.0; 3],
        ..Default::default()
    };
    let views: Vec<View> = (0..12)
        .map(|v| {
            let a = v as f64 / 12.0 * std::f64::consts::TAU;
            let eye = DVec3::new(2.5 * a.cos(), 2.5 * a.sin(), 0.8 + 0.3 * (v % 3) as f64);
            let camera = Camera::look_at(width, height, 0.9, eye, DVec3::ZERO, DVec3::Z);
            let out = crate::render::render(&truth, &camera, &opts);
            View {
                name: format!("v{v:02}.png"),
                camera,
                image: Image {
                    width,
                    height,
                    data: out.image.iter().map(|x| x.clamp(0.0, 1.0)).collect(),
                },
            }
        })
        .collect();
    let test = views.iter().step_by(4).cloned().collect();
    let train = views
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 != 0)
        .map(|(_, v)| v.clone())
        .collect();
    Scene {
        name: "synthetic-ring".into(),
        train,
        test,
        points: None,
        background: [1.0; 3],
    }
}

/// A training configuration sized for [`synthetic_ring_scene`]: few Gaussians, SH degree 1, and
/// densification and an opacity reset within a few hundred iterations.
pub fn synthetic_ring_config(iterations: usize) -> crate::train::TrainConfig {
    let mut cfg = crate::train::TrainConfig::default();
    cfg.iterations = iterations;
    cfg.sh_degree = 1;
    cfg.sh_degree_interval = 100;
    cfg.background = Some([1.0; 3]);
    cfg.init.mode = crate::train::config::InitMode::Random;
    cfg.init.random_count = 600;
    cfg.init.random_box = Some(0.8);
    cfg.densify.from = 50;
    cfg.densify.interval = 50;
    cfg.densify.until = 250;
    cfg.densify.opacity_reset_interval = 200;
    cfg.plateau.enabled = false;
    cfg
}
