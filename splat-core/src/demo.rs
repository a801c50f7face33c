//! A built-in procedural scene, so that a fresh checkout can render something with no data.

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
        let t = k as f32 / n_knot as f32 * std::f32::consts::TAU;
        let r = 0.6 + 0.25 * (3.0 * t).cos();
        let c = [
            r * (2.0 * t).cos(),
            r * (2.0 * t).sin(),
            0.6 + 0.25 * (3.0 * t).sin(),
        ];
        let jitter = [0, 1, 2].map(|_| rng.random_range(-0.06..0.06f32));
        let hue = t / std::f32::consts::TAU;
        let rgb = [
            0.5 + 0.5 * (hue * 6.283).cos(),
            0.5 + 0.5 * (hue * 6.283 + 2.094).cos(),
            0.5 + 0.5 * (hue * 6.283 + 4.189).cos(),
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
