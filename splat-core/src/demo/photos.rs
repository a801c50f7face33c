//! The built-in photo set: a small textured room with a few objects, ray-cast from a ring of
//! cameras with known poses. It exists so that a fresh checkout can run the whole pipeline
//! (SfM, training, compression) with no data and check the recovered poses against the truth.
//!
//! The images are ray-cast analytically rather than splatted so that SfM and training see a
//! "real" scene that is not itself made of Gaussians. Every surface carries a multi-octave solid
//! noise texture: blobs at several scales give SIFT enough stable extrema in every view.

use glam::DVec3;
use rayon::prelude::*;

use crate::camera::Camera;
use crate::scene::Image;

/// Size and number of views of the built-in photo set.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhotoSetOptions {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Number of cameras on the ring.
    pub views: usize,
    /// Supersampling per axis (anti-aliasing): `samples * samples` rays per pixel.
    pub samples: u32,
}

impl Default for PhotoSetOptions {
    fn default() -> Self {
        Self {
            width: 320,
            height: 240,
            views: 36,
            samples: 3,
        }
    }
}

/// One ground-truth view: file name and camera.
#[derive(Clone, Debug)]
pub struct PhotoView {
    /// File name, e.g. `view_007.png`.
    pub name: String,
    /// The true camera (pinhole, no distortion).
    pub camera: Camera,
}

/// The ground-truth cameras of the built-in photo set: a ring around the room's centre at
/// alternating heights, each looking slightly down at the objects.
pub fn photo_cameras(opt: &PhotoSetOptions) -> Vec<PhotoView> {
    (0..opt.views)
        .map(|i| {
            let a = i as f64 / opt.views as f64 * std::f64::consts::TAU;
            let h = 1.15 + 0.25 * ((i % 3) as f64 - 1.0);
            let eye = DVec3::new(2.7 * a.cos(), 2.7 * a.sin(), h);
            // Aim a little off the centre so that the views are not all symmetric.
            let target = DVec3::new(0.15 * (3.0 * a).sin(), 0.15 * (2.0 * a).cos(), 0.45);
            let mut camera = Camera::look_at(opt.width, opt.height, 1.05, eye, target, DVec3::Z);
            // A focal length that is not the SfM prior (1.2 x the larger side), so that
            // calibration has something to recover.
            camera.fx = 0.93 * opt.width as f64;
            camera.fy = camera.fx;
            PhotoView {
                name: format!("view_{i:03}.png"),
                camera,
            }
        })
        .collect()
}

/// Renders one view of the built-in scene (linear RGB in [0, 1], row-major).
pub fn render_photo(camera: &Camera, samples: u32) -> Image {
    let (w, h) = (camera.width, camera.height);
    let s = samples.max(1);
    let cam_to_world = camera.rotation.transpose();
    let eye = camera.center();
    let rows: Vec<Vec<f32>> = (0..h)
        .into_par_iter()
        .map(|y| {
            let mut row = Vec::with_capacity(3 * w as usize);
            for x in 0..w {
                let mut acc = DVec3::ZERO;
                for sy in 0..s {
                    for sx in 0..s {
                        let px = x as f64 + (sx as f64 + 0.5) / s as f64;
                        let py = y as f64 + (sy as f64 + 0.5) / s as f64;
                        let d = DVec3::new(
                            (px - camera.cx) / camera.fx,
                            (py - camera.cy) / camera.fy,
                            1.0,
                        );
                        acc += shade(eye, (cam_to_world * d).normalize());
                    }
                }
                let c = acc / (s * s) as f64;
                row.extend([c.x as f32, c.y as f32, c.z as f32]);
            }
            row
        })
        .collect();
    Image {
        width: w,
        height: h,
        data: rows.concat(),
    }
}

/// Renders every view of the photo set into `dir` as PNG files (in parallel over views, each
/// written atomically) and returns the true cameras.
pub fn write_photo_set(
    dir: &std::path::Path,
    opt: &PhotoSetOptions,
) -> Result<Vec<PhotoView>, crate::scene::SceneError> {
    std::fs::create_dir_all(dir).map_err(|e| crate::scene::SceneError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let views = photo_cameras(opt);
    views.par_iter().try_for_each(|v| {
        let img = render_photo(&v.camera, opt.samples);
        crate::scene::save_png(dir.join(&v.name), &img)
    })?;
    Ok(views)
}

/// Radius of the room's cylindrical wall.
const WALL_RADIUS: f64 = 4.0;
/// Height of the wall; above it is a plain sky.
const WALL_HEIGHT: f64 = 3.2;

/// Surfaces of the scene, each with its own texture palette.
#[derive(Clone, Copy)]
enum Surface {
    Floor,
    Wall,
    Box,
    Ball(usize),
}

/// Spheres: centre and radius.
const BALLS: [(DVec3, f64); 3] = [
    (DVec3::new(0.9, 0.5, 0.35), 0.35),
    (DVec3::new(-0.7, 0.8, 0.45), 0.45),
    (DVec3::new(-0.2, -1.0, 0.3), 0.3),
];

/// The box: centre, half sizes, rotation about z (radians).
const BOX: (DVec3, DVec3, f64) = (
    DVec3::new(0.0, 0.0, 0.45),
    DVec3::new(0.45, 0.35, 0.45),
    0.5,
);

/// Colour seen along the ray `o + t d`.
fn shade(o: DVec3, d: DVec3) -> DVec3 {
    let mut best: Option<(f64, DVec3, Surface)> = None;
    let mut consider = |t: f64, n: DVec3, s: Surface| {
        if t > 1e-6 && best.as_ref().is_none_or(|b| t < b.0) {
            best = Some((t, n, s));
        }
    };
    // Floor z = 0, inside the wall.
    if d.z < 0.0 {
        let t = -o.z / d.z;
        let p = o + t * d;
        if p.x * p.x + p.y * p.y < WALL_RADIUS * WALL_RADIUS {
            consider(t, DVec3::Z, Surface::Floor);
        }
    }
    // Wall: inside of the cylinder x^2 + y^2 = R^2 (the far intersection from inside).
    {
        let a = d.x * d.x + d.y * d.y;
        let b = o.x * d.x + o.y * d.y;
        let c = o.x * o.x + o.y * o.y - WALL_RADIUS * WALL_RADIUS;
        let disc = b * b - a * c;
        if a > 1e-12 && disc >= 0.0 {
            let t = (-b + disc.sqrt()) / a;
            let p = o + t * d;
            if (0.0..WALL_HEIGHT).contains(&p.z) {
                consider(t, -DVec3::new(p.x, p.y, 0.0).normalize(), Surface::Wall);
            }
        }
    }
    for (i, &(c, r)) in BALLS.iter().enumerate() {
        let oc = o - c;
        let b = oc.dot(d);
        let disc = b * b - (oc.length_squared() - r * r);
        if disc >= 0.0 {
            let t = -b - disc.sqrt();
            consider(t, (o + t * d - c) / r, Surface::Ball(i));
        }
    }
    if let Some((t, n)) = hit_box(o, d) {
        consider(t, n, Surface::Box);
    }
    let Some((t, n, surface)) = best else {
        return DVec3::new(0.55, 0.7, 0.9);
    };
    let p = o + t * d;
    let light = DVec3::new(0.4, -0.3, 0.85).normalize();
    let lambert = n.dot(light).max(0.0);
    albedo(p, surface) * (0.45 + 0.55 * lambert)
}

/// Ray against the box (rotated about z); entry distance and outward normal.
fn hit_box(o: DVec3, d: DVec3) -> Option<(f64, DVec3)> {
    let (centre, half, angle) = BOX;
    let (s, c) = angle.sin_cos();
    let to_local = |v: DVec3| DVec3::new(c * v.x + s * v.y, -s * v.x + c * v.y, v.z);
    let lo = to_local(o - centre);
    let ld = to_local(d);
    let (mut t0, mut t1) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut axis = 0;
    for k in 0..3 {
        if ld[k].abs() < 1e-12 {
            if lo[k].abs() > half[k] {
                return None;
            }
            continue;
        }
        let a = (-half[k] - lo[k]) / ld[k];
        let b = (half[k] - lo[k]) / ld[k];
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        if a > t0 {
            t0 = a;
            axis = k;
        }
        t1 = t1.min(b);
    }
    if t0 > t1 || t0 <= 0.0 {
        return None;
    }
    let mut ln = DVec3::ZERO;
    ln[axis] = -ld[axis].signum();
    let n = DVec3::new(c * ln.x - s * ln.y, s * ln.x + c * ln.y, ln.z);
    Some((t0, n))
}

/// Surface colour at `p`: two or three palette colours mixed by multi-octave solid noise, with
/// a sharper speckle layer on top.
fn albedo(p: DVec3, surface: Surface) -> DVec3 {
    let (palette, freq, seed): ([DVec3; 3], f64, u32) = match surface {
        Surface::Floor => (
            [
                DVec3::new(0.75, 0.62, 0.45),
                DVec3::new(0.25, 0.18, 0.12),
                DVec3::new(0.9, 0.88, 0.8),
            ],
            3.0,
            1,
        ),
        Surface::Wall => (
            [
                DVec3::new(0.3, 0.45, 0.7),
                DVec3::new(0.9, 0.85, 0.7),
                DVec3::new(0.1, 0.15, 0.25),
            ],
            1.6,
            2,
        ),
        Surface::Box => (
            [
                DVec3::new(0.8, 0.2, 0.15),
                DVec3::new(0.95, 0.85, 0.3),
                DVec3::new(0.2, 0.05, 0.05),
            ],
            5.0,
            3,
        ),
        Surface::Ball(i) => (
            [
                DVec3::new(0.2, 0.6 + 0.1 * i as f64, 0.3),
                DVec3::new(0.9, 0.95, 0.9),
                DVec3::new(0.05, 0.2 + 0.1 * i as f64, 0.1),
            ],
            6.0,
            4 + i as u32,
        ),
    };
    let q = p * freq;
    let m = fbm(q, seed, 4);
    let speckle = noise(q * 4.0 + DVec3::splat(17.0), seed ^ 0x5bd1);
    let base = palette[0].lerp(palette[1], smooth(0.35, 0.65, m));
    let dark = smooth(0.62, 0.72, speckle);
    base.lerp(palette[2], dark)
}

/// Hermite step between `a` and `b`.
fn smooth(a: f64, b: f64, x: f64) -> f64 {
    let t = ((x - a) / (b - a)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Fractal sum of `octaves` value-noise octaves, in [0, 1].
fn fbm(p: DVec3, seed: u32, octaves: u32) -> f64 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
    for o in 0..octaves {
        sum += amp * noise(p * f, seed.wrapping_add(o * 7919));
        norm += amp;
        amp *= 0.55;
        f *= 2.03;
    }
    sum / norm
}

/// Trilinear value noise in [0, 1] on the integer lattice.
fn noise(p: DVec3, seed: u32) -> f64 {
    let i = p.floor();
    let f = p - i;
    let u = f * f * (DVec3::splat(3.0) - 2.0 * f);
    let (x, y, z) = (i.x as i32, i.y as i32, i.z as i32);
    let v = |dx: i32, dy: i32, dz: i32| lattice(x + dx, y + dy, z + dz, seed);
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    let x00 = lerp(v(0, 0, 0), v(1, 0, 0), u.x);
    let x10 = lerp(v(0, 1, 0), v(1, 1, 0), u.x);
    let x01 = lerp(v(0, 0, 1), v(1, 0, 1), u.x);
    let x11 = lerp(v(0, 1, 1), v(1, 1, 1), u.x);
    lerp(lerp(x00, x10, u.y), lerp(x01, x11, u.y), u.z)
}

/// A hashed lattice value in [0, 1].
fn lattice(x: i32, y: i32, z: i32, seed: u32) -> f64 {
    let mut h = (x as u32).wrapping_mul(0x8da6_b343)
        ^ (y as u32).wrapping_mul(0xd816_3841)
        ^ (z as u32).wrapping_mul(0xcb1a_b31f)
        ^ seed.wrapping_mul(0x9e37_79b9);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297a_2d39);
    h ^= h >> 15;
    h as f64 / u32::MAX as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pixel_is_finite_and_textured() {
        let opt = PhotoSetOptions {
            width: 64,
            height: 48,
            views: 4,
            samples: 1,
        };
        for v in photo_cameras(&opt) {
            let img = render_photo(&v.camera, 1);
            assert!(img
                .data
                .iter()
                .all(|x| x.is_finite() && (0.0..=1.0).contains(x)));
            let mean = img.data.iter().sum::<f32>() / img.data.len() as f32;
            let var =
                img.data.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / img.data.len() as f32;
            assert!(var > 0.005, "{}: variance {var}", v.name);
        }
    }

    #[test]
    fn cameras_look_at_the_objects() {
        for v in photo_cameras(&PhotoSetOptions::default()) {
            let c = &v.camera;
            let p = c.rotation * BOX.0 + c.translation;
            assert!(p.z > 0.0, "{}: box behind the camera", v.name);
            let u = c.fx * p.x / p.z + c.cx;
            let w = c.fy * p.y / p.z + c.cy;
            assert!((0.0..c.width as f64).contains(&u) && (0.0..c.height as f64).contains(&w));
        }
    }
}
