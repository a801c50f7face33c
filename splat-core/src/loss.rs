//! Training loss 0.8 L1 + 0.2 (1 - SSIM) with its gradient, and the evaluation metrics.
//!
//! Images are interleaved RGB, `height x width x 3`. SSIM uses an 11x11 Gaussian window with
//! sigma 1.5, zero-padded "same" convolution, C1 = 0.01², C2 = 0.03², averaged over pixels
//! and channels, as the original 3DGS code does.

use rayon::prelude::*;

/// Radius of the SSIM window (11 x 11).
pub const WINDOW_RADIUS: usize = 5;
/// Standard deviation of the SSIM window, pixels.
pub const WINDOW_SIGMA: f32 = 1.5;
/// SSIM's luminance stabiliser, (0.01 L)² for L = 1.
pub const C1: f32 = 0.01 * 0.01;
/// SSIM's contrast stabiliser, (0.03 L)² for L = 1.
pub const C2: f32 = 0.03 * 0.03;

/// The normalised 1D SSIM window; a device backend blurs with these very weights.
pub fn ssim_window() -> [f32; 2 * WINDOW_RADIUS + 1] {
    let mut w = [0f32; 2 * WINDOW_RADIUS + 1];
    for (i, v) in w.iter_mut().enumerate() {
        let d = i as f32 - WINDOW_RADIUS as f32;
        *v = (-d * d / (2.0 * WINDOW_SIGMA * WINDOW_SIGMA)).exp();
    }
    let s: f32 = w.iter().sum();
    w.map(|v| v / s)
}

/// Separable Gaussian blur of an interleaved RGB image with zero padding. The kernel is
/// symmetric, so this is also its own adjoint (the backward of a blur is a blur).
fn blur(src: &[f32], width: usize, height: usize) -> Vec<f32> {
    let k = ssim_window();
    let r = WINDOW_RADIUS as isize;
    let row = width * 3;
    let mut tmp = vec![0f32; src.len()];
    tmp.par_chunks_mut(row).enumerate().for_each(|(y, out)| {
        let s = &src[y * row..(y + 1) * row];
        for x in 0..width as isize {
            let mut acc = [0f32; 3];
            for (j, kv) in k.iter().enumerate() {
                let xx = x + j as isize - r;
                if xx >= 0 && xx < width as isize {
                    let p = xx as usize * 3;
                    for c in 0..3 {
                        acc[c] += kv * s[p + c];
                    }
                }
            }
            out[x as usize * 3..x as usize * 3 + 3].copy_from_slice(&acc);
        }
    });
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(row).enumerate().for_each(|(y, o)| {
        for (j, kv) in k.iter().enumerate() {
            let yy = y as isize + j as isize - r;
            if yy >= 0 && yy < height as isize {
                let s = &tmp[yy as usize * row..(yy as usize + 1) * row];
                for (ov, sv) in o.iter_mut().zip(s) {
                    *ov += kv * sv;
                }
            }
        }
    });
    out
}

/// Window statistics of a pair of images.
struct Moments {
    mx: Vec<f32>,
    my: Vec<f32>,
    sxx: Vec<f32>,
    syy: Vec<f32>,
    sxy: Vec<f32>,
}

fn moments(x: &[f32], y: &[f32], width: usize, height: usize) -> Moments {
    let xx: Vec<f32> = x.iter().map(|v| v * v).collect();
    let yy: Vec<f32> = y.iter().map(|v| v * v).collect();
    let xy: Vec<f32> = x.iter().zip(y).map(|(a, b)| a * b).collect();
    let mx = blur(x, width, height);
    let my = blur(y, width, height);
    let mut sxx = blur(&xx, width, height);
    let mut syy = blur(&yy, width, height);
    let mut sxy = blur(&xy, width, height);
    for i in 0..x.len() {
        sxx[i] -= mx[i] * mx[i];
        syy[i] -= my[i] * my[i];
        sxy[i] -= mx[i] * my[i];
    }
    Moments {
        mx,
        my,
        sxx,
        syy,
        sxy,
    }
}

/// Mean SSIM of two images (the evaluation metric).
pub fn ssim(x: &[f32], y: &[f32], width: usize, height: usize) -> f32 {
    let m = moments(x, y, width, height);
    let mut total = 0f64;
    for i in 0..x.len() {
        let a1 = 2.0 * m.mx[i] * m.my[i] + C1;
        let a2 = 2.0 * m.sxy[i] + C2;
        let b1 = m.mx[i] * m.mx[i] + m.my[i] * m.my[i] + C1;
        let b2 = m.sxx[i] + m.syy[i] + C2;
        total += (a1 * a2 / (b1 * b2)) as f64;
    }
    (total / x.len().max(1) as f64) as f32
}

/// The largest absolute difference between two images (backend parity checks and tests).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

/// PSNR in dB of an image against its reference, with the render clamped to [0, 1].
pub fn psnr(render: &[f32], reference: &[f32]) -> f32 {
    let mse: f64 = render
        .iter()
        .zip(reference)
        .map(|(a, b)| ((a.clamp(0.0, 1.0) - b) as f64).powi(2))
        .sum::<f64>()
        / render.len().max(1) as f64;
    psnr_from_mse(mse)
}

/// PSNR in dB of a mean squared error of values in [0, 1] (floored at 1e-20: 200 dB).
pub fn psnr_from_mse(mse: f64) -> f32 {
    (-10.0 * mse.max(1e-20).log10()) as f32
}

/// Value and gradient of the training loss.
pub struct LossOutput {
    /// (1 - λ) L1 + λ (1 - SSIM).
    pub loss: f64,
    /// Mean absolute error.
    pub l1: f64,
    /// Mean SSIM.
    pub ssim: f64,
    /// dLoss/d(render), same layout as the render.
    pub grad: Vec<f32>,
}

/// (1 - `ssim_weight`) L1 + `ssim_weight` (1 - SSIM) of `render` against `target`, with its
/// gradient with respect to `render`.
pub fn l1_ssim_loss(
    render: &[f32],
    target: &[f32],
    width: usize,
    height: usize,
    ssim_weight: f32,
) -> LossOutput {
    let n = render.len();
    let inv_n = 1.0 / n as f32;
    let m = moments(render, target, width, height);
    // Per-pixel partials of SSIM with respect to the window statistics of `render`.
    let mut d_mx = vec![0f32; n];
    let mut d_exx = vec![0f32; n];
    let mut d_exy = vec![0f32; n];
    let mut ssim_sum = 0f64;
    for i in 0..n {
        let (mx, my) = (m.mx[i], m.my[i]);
        let a1 = 2.0 * mx * my + C1;
        let a2 = 2.0 * m.sxy[i] + C2;
        let b1 = mx * mx + my * my + C1;
        let b2 = m.sxx[i] + m.syy[i] + C2;
        let s = a1 * a2 / (b1 * b2);
        ssim_sum += s as f64;
        let bb = b1 * b2;
        // dSSIM/dmx with the raw moments E[x^2], E[xy] held fixed.
        let ds_dmx = 2.0 * my * (a2 - a1) / bb - 2.0 * mx * s / b1 + 2.0 * mx * s / b2;
        let ds_dexx = -s / b2;
        let ds_dexy = 2.0 * a1 / bb;
        let g = -ssim_weight * inv_n;
        d_mx[i] = g * ds_dmx;
        d_exx[i] = g * ds_dexx;
        d_exy[i] = g * ds_dexy;
    }
    let b_mx = blur(&d_mx, width, height);
    let b_exx = blur(&d_exx, width, height);
    let b_exy = blur(&d_exy, width, height);
    let l1w = (1.0 - ssim_weight) * inv_n;
    let mut l1_sum = 0f64;
    let grad: Vec<f32> = (0..n)
        .map(|i| {
            let diff = render[i] - target[i];
            l1_sum += diff.abs() as f64;
            let sign = if diff > 0.0 {
                1.0
            } else if diff < 0.0 {
                -1.0
            } else {
                0.0
            };
            l1w * sign + b_mx[i] + 2.0 * render[i] * b_exx[i] + target[i] * b_exy[i]
        })
        .collect();
    let l1 = l1_sum / n as f64;
    let ssim = ssim_sum / n as f64;
    let lw = ssim_weight as f64;
    LossOutput {
        loss: (1.0 - lw) * l1 + lw * (1.0 - ssim),
        l1,
        ssim,
        grad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_image(w: usize, h: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..w * h * 3).map(|_| rng.random_range(0.0..1.0)).collect()
    }

    #[test]
    fn ssim_of_identical_images_is_one_and_drops_with_noise() {
        let a = random_image(23, 17, 1);
        assert!((ssim(&a, &a, 23, 17) - 1.0).abs() < 1e-5);
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, v)| v + if i % 2 == 0 { 0.3 } else { -0.3 })
            .collect();
        let s = ssim(&a, &b, 23, 17);
        assert!(s < 0.8, "ssim {s}");
    }

    #[test]
    fn psnr_matches_its_definition() {
        let a = vec![0.5f32; 300];
        let b = vec![0.6f32; 300];
        assert!((psnr(&a, &b) - 20.0).abs() < 1e-3);
    }

    #[test]
    fn loss_gradient_matches_finite_differences() {
        let (w, h) = (19, 14);
        let x = random_image(w, h, 2);
        let y = random_image(w, h, 3);
        let out = l1_ssim_loss(&x, &y, w, h, 0.2);
        let eps = 1e-3f32;
        let mut checked = 0;
        for i in (0..x.len()).step_by(7) {
            // L1 has a kink at x == y; keep away from it.
            if (x[i] - y[i]).abs() < 2.0 * eps {
                continue;
            }
            let mut xp = x.clone();
            xp[i] += eps;
            let mut xm = x.clone();
            xm[i] -= eps;
            let fd = (l1_ssim_loss(&xp, &y, w, h, 0.2).loss
                - l1_ssim_loss(&xm, &y, w, h, 0.2).loss)
                / (2.0 * eps as f64);
            let an = out.grad[i] as f64;
            assert!(
                (fd - an).abs() < 1e-2 * an.abs() + 2e-6,
                "pixel value {i}: analytic {an:e} vs finite difference {fd:e}"
            );
            checked += 1;
        }
        assert!(checked > 80);
    }
}
