//! How much each Gaussian shows in renders, to weight the SH palette towards what is seen.
//!
//! The colour a pixel gets from Gaussian i is scaled by its blending weight α·T; summed over
//! pixels and views this is the factor by which an SH error of i turns into image error. Without
//! the capture's cameras the encoder renders the scene from virtual cameras on a sphere around its
//! core, which captures opacity, size and occlusion (a Gaussian buried inside a surface gets
//! almost nothing) together.

use glam::DVec3;
use rayon::prelude::*;
use splat_core::camera::Camera;
use splat_core::render::{render, try_render_backward, RenderOptions};
use splat_core::Gaussians;

/// Per-Gaussian blending weight Σ α·T summed over `views` renders of `size`×`size` pixels from
/// cameras evenly spread (Fibonacci sphere) around the scene's core, looking at its centre; the
/// core is the median position and the 90th percentile of distances from it. `progress(done,
/// total)` counts views.
pub fn visibility(
    g: &Gaussians,
    views: usize,
    size: u32,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<f32> {
    let n = g.len();
    if n == 0 || views == 0 {
        return vec![0.0; n];
    }
    blending_weights(g, &virtual_cameras(g, views, size), progress)
}

/// `views` cameras on a Fibonacci sphere three core radii from the core's centre, looking at it.
fn virtual_cameras(g: &Gaussians, views: usize, size: u32) -> Vec<Camera> {
    let n = g.len();
    let mut centre = [0f64; 3];
    for a in 0..3 {
        let mut v: Vec<f32> = g.means.iter().map(|m| m[a]).collect();
        let mid = v.len() / 2;
        centre[a] = *v.select_nth_unstable_by(mid, f32::total_cmp).1 as f64;
    }
    let centre = DVec3::from_array(centre);
    let mut dist: Vec<f64> = g
        .means
        .iter()
        .map(|m| (DVec3::new(m[0] as f64, m[1] as f64, m[2] as f64) - centre).length())
        .collect();
    let p90 = (n * 9 / 10).min(n - 1);
    let radius = dist.select_nth_unstable_by(p90, f64::total_cmp).1.max(1e-6);
    // Three radii away, with the core sphere filling most of the frame.
    let eye_dist = 3.0 * radius;
    let fov = 2.0 * (radius / eye_dist).asin() * 1.15;
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    (0..views)
        .map(|v| {
            let z = 1.0 - 2.0 * (v as f64 + 0.5) / views as f64;
            let r = (1.0 - z * z).sqrt();
            let dir = DVec3::new(
                r * (golden * v as f64).cos(),
                r * (golden * v as f64).sin(),
                z,
            );
            let up = if dir.z.abs() > 0.9 {
                DVec3::Y
            } else {
                DVec3::Z
            };
            Camera::look_at(size, size, fov, centre + dir * eye_dist, centre, up)
        })
        .collect()
}

/// Per-Gaussian blending weight Σ α·T summed over renders from `cameras` (e.g. a capture's
/// training cameras at a reduced size, the best weights for [`crate::EncodeOptions::palette_weights`]).
/// `progress(done, total)` counts cameras.
pub fn blending_weights(
    g: &Gaussians,
    cameras: &[Camera],
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<f32> {
    let n = g.len();
    let mut imp = vec![0f64; n];
    let opts = RenderOptions {
        background: [1.0; 3],
        ..Default::default()
    };
    // Only blending weights matter: a copy without view-dependent colour renders faster, and a
    // mid-grey DC keeps every colour off the clamp at 0, where the gradient would vanish.
    let grey = Gaussians {
        means: g.means.clone(),
        log_scales: g.log_scales.clone(),
        quats: g.quats.clone(),
        opacity_logits: g.opacity_logits.clone(),
        sh: vec![0.0; n * 3],
        sh_degree: 0,
    };
    let g = &grey;
    let c = 3;
    for (v, cam) in cameras.iter().enumerate() {
        let out = render(g, cam, &opts);
        let ones = vec![1.0f32; out.image.len()];
        if let Some(grads) = try_render_backward(g, &out, &ones) {
            // d(Σ image)/d(f_dc) = Σ α·T times the constant DC basis value, per channel.
            imp.par_iter_mut().enumerate().for_each(|(i, w)| {
                let s = &grads.params.sh[i * c..i * c + 3];
                *w += (s[0].abs() + s[1].abs() + s[2].abs()) as f64;
            });
        }
        progress(v + 1, cameras.len());
    }
    imp.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(g: &mut Gaussians, p: [f32; 3], log_scale: f32, opacity_logit: f32) {
        g.means.push(p);
        g.log_scales.push([log_scale; 3]);
        g.quats.push([1.0, 0.0, 0.0, 0.0]);
        g.opacity_logits.push(opacity_logit);
        g.sh.extend_from_slice(&[0.3, -0.2, 0.1]);
    }

    #[test]
    fn buried_and_transparent_gaussians_weigh_little() {
        // A closed shell of large opaque Gaussians, one small Gaussian inside it and one almost
        // transparent Gaussian on the shell.
        let mut g = Gaussians::empty(0);
        let shell = 400;
        let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
        for i in 0..shell {
            let z = 1.0 - 2.0 * (i as f64 + 0.5) / shell as f64;
            let r = (1.0 - z * z).sqrt();
            let (x, y) = (r * (golden * i as f64).cos(), r * (golden * i as f64).sin());
            push(&mut g, [x as f32, y as f32, z as f32], (0.25f32).ln(), 6.0);
        }
        push(&mut g, [0.0, 0.0, 0.0], (0.05f32).ln(), 6.0);
        push(&mut g, [1.0, 0.0, 0.0], (0.05f32).ln(), -12.0);
        let mut calls = 0;
        let w = visibility(&g, 12, 96, &mut |_, t| {
            calls += 1;
            assert_eq!(t, 12);
        });
        assert_eq!(calls, 12);
        assert_eq!(w.len(), shell + 2);
        let shell_mean = w[..shell].iter().sum::<f32>() / shell as f32;
        assert!(shell_mean > 0.0);
        assert!(
            w[shell] < 0.01 * shell_mean,
            "buried {} vs shell {shell_mean}",
            w[shell]
        );
        assert!(
            w[shell + 1] < 0.01 * shell_mean,
            "transparent {}",
            w[shell + 1]
        );
    }

    #[test]
    fn a_lone_gaussian_is_seen_from_every_side() {
        let mut g = Gaussians::empty(0);
        push(&mut g, [0.5, -0.5, 2.0], (0.1f32).ln(), 3.0);
        push(&mut g, [0.6, -0.5, 2.0], (0.1f32).ln(), 3.0);
        let w = visibility(&g, 6, 64, &mut |_, _| {});
        assert!(w.iter().all(|&v| v > 1.0), "{w:?}");
    }
}
