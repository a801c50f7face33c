//! The reference primitives that densification strategies (`crate::train::strategy`) are
//! built from: gather, append, compact and overwrite Gaussians together with their optimizer
//! moments and statistics, MCMC's position noise and regularisers, and the periodic opacity
//! reset, on host state. The CPU session runs them directly; a device session may run them
//! through a host copy. The CUDA kernels (splat-cuda kernels/train.cu) follow the same rules
//! and take their constants from here.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::types::SessionState;
use crate::gaussians::{logit, retain_flagged, sigmoid, Gaussians};
use crate::optim::Adam;

/// A split child's scales are its parent's divided by this (3DGS's 1.6).
pub const SPLIT_SCALE_DIVISOR: f32 = 1.6;

/// An opacity reset caps every opacity at this multiple of the prune threshold.
pub const OPACITY_RESET_FACTOR: f32 = 2.0;

/// The opacity logit an opacity reset caps at, for a prune threshold `prune_opacity`.
pub fn opacity_reset_cap(prune_opacity: f32) -> f32 {
    logit(OPACITY_RESET_FACTOR * prune_opacity)
}

fn quat_rotate(q: [f32; 4], v: [f32; 3]) -> [f32; 3] {
    let n = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
        .sqrt()
        .max(1e-12);
    let glam_q = glam::Quat::from_xyzw(q[1] / n, q[2] / n, q[3] / n, q[0] / n);
    (glam_q * glam::Vec3::from_array(v)).to_array()
}

fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; u1 is kept away from 0 so the log is finite.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// A normal sample (Box-Muller), the one the split children and the MCMC noise draw.
pub fn standard_normal_sample(rng: &mut ChaCha8Rng) -> f32 {
    standard_normal(rng)
}

/// Rotates `v` by the (normalised) quaternion `q` (w, x, y, z).
pub fn rotate(q: [f32; 4], v: [f32; 3]) -> [f32; 3] {
    quat_rotate(q, v)
}

/// Host copies of the Gaussians at `idx`, in that order (repeats allowed).
pub fn gather(params: &Gaussians, idx: &[usize]) -> Gaussians {
    let mut g = Gaussians::empty(params.sh_degree);
    let nsh = params.sh_coeffs() * 3;
    for &i in idx {
        g.push(
            params.means[i],
            params.log_scales[i],
            params.quats[i],
            params.opacity_logits[i],
            &params.sh[i * nsh..(i + 1) * nsh],
        );
    }
    g
}

/// Checks that `idx` lies below `n` and `g` holds one Gaussian per index of the right degree.
pub fn check_edit(
    n: usize,
    sh_degree: usize,
    idx: Option<&[usize]>,
    g: &Gaussians,
) -> Result<(), String> {
    g.check_lengths()?;
    if g.sh_degree != sh_degree {
        return Err(format!(
            "SH degree {} for a session of degree {sh_degree}",
            g.sh_degree
        ));
    }
    if let Some(idx) = idx {
        if idx.len() != g.len() {
            return Err(format!("{} indices for {} Gaussians", idx.len(), g.len()));
        }
        if let Some(&i) = idx.iter().find(|&&i| i >= n) {
            return Err(format!("index {i} of {n} Gaussians"));
        }
    }
    Ok(())
}

/// Appends `g` with zero optimizer moments and zero statistics.
pub fn append(st: &mut SessionState, g: &Gaussians) {
    let nsh = st.params.sh_coeffs() * 3;
    for i in 0..g.len() {
        st.params.push(
            g.means[i],
            g.log_scales[i],
            g.quats[i],
            g.opacity_logits[i],
            &g.sh[i * nsh..(i + 1) * nsh],
        );
    }
    st.adam.append_zeros(g.len());
    let s = &mut st.stats;
    s.grad_accum.resize(s.grad_accum.len() + g.len(), 0.0);
    s.count.resize(s.count.len() + g.len(), 0);
    s.max_radius.resize(s.max_radius.len() + g.len(), 0);
}

/// Keeps the Gaussians whose flag is set, with their moments and statistics, in order.
pub fn compact(st: &mut SessionState, keep: &[bool]) {
    st.params.retain_mask(keep);
    st.adam.retain_mask(keep);
    let s = &mut st.stats;
    retain_flagged(&mut s.grad_accum, keep);
    retain_flagged(&mut s.count, keep);
    retain_flagged(&mut s.max_radius, keep);
}

/// Overwrites the Gaussians at `idx` with `g` and zeroes their moments and statistics (their
/// history no longer describes them).
pub fn scatter(st: &mut SessionState, idx: &[usize], g: &Gaussians) {
    let nsh = st.params.sh_coeffs() * 3;
    for (j, &i) in idx.iter().enumerate() {
        let p = &mut st.params;
        p.means[i] = g.means[j];
        p.log_scales[i] = g.log_scales[j];
        p.quats[i] = g.quats[j];
        p.opacity_logits[i] = g.opacity_logits[j];
        p.sh[i * nsh..(i + 1) * nsh].copy_from_slice(&g.sh[j * nsh..(j + 1) * nsh]);
        for m in [&mut st.adam.m, &mut st.adam.v] {
            m.means[i] = [0.0; 3];
            m.log_scales[i] = [0.0; 3];
            m.quats[i] = [0.0; 4];
            m.opacity_logits[i] = 0.0;
            m.sh[i * nsh..(i + 1) * nsh]
                .iter_mut()
                .for_each(|v| *v = 0.0);
        }
        st.stats.grad_accum[i] = 0.0;
        st.stats.count[i] = 0;
        st.stats.max_radius[i] = 0;
    }
}

/// Opacity below which MCMC's position noise is at full strength (gsplat's gate midpoint).
pub const NOISE_OPACITY_T: f32 = 0.005;
/// Sharpness of the noise gate.
pub const NOISE_OPACITY_K: f32 = 100.0;

/// MCMC's position noise (Kheradmand et al. 2024): each mean moves by `Sigma z`, with `Sigma`
/// the Gaussian's covariance and `z ~ N(0, I) x scale x sigmoid(-K (opacity - T))`, so opaque
/// Gaussians stay put and transparent ones explore.
pub fn add_position_noise(params: &mut Gaussians, scale: f32, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..params.len() {
        let o = sigmoid(params.opacity_logits[i]);
        let gate = 1.0 / (1.0 + (NOISE_OPACITY_K * (o - NOISE_OPACITY_T)).exp());
        let z = [0, 1, 2].map(|_| standard_normal(&mut rng) * gate * scale);
        // Sigma z = R S^2 R^T z.
        let q = params.quats[i];
        let conj = [q[0], -q[1], -q[2], -q[3]];
        let local = quat_rotate(conj, z);
        let s2 = params.log_scales[i].map(|l| (2.0 * l).exp());
        let d = quat_rotate(q, [local[0] * s2[0], local[1] * s2[1], local[2] * s2[2]]);
        for k in 0..3 {
            params.means[i][k] += d[k];
        }
    }
}

/// Adds MCMC's opacity and scale L1 regularisers (weights times the mean opacity and the mean
/// scale) to the gradients; returns the loss they add.
pub fn add_regularisers(
    params: &Gaussians,
    grads: &mut Gaussians,
    opacity_reg: f32,
    scale_reg: f32,
) -> f64 {
    let n = params.len();
    if n == 0 || (opacity_reg == 0.0 && scale_reg == 0.0) {
        return 0.0;
    }
    let mut loss = 0.0f64;
    if opacity_reg != 0.0 {
        let w = opacity_reg / n as f32;
        for i in 0..n {
            let o = sigmoid(params.opacity_logits[i]);
            loss += (w * o) as f64;
            grads.opacity_logits[i] += w * o * (1.0 - o);
        }
    }
    if scale_reg != 0.0 {
        let w = scale_reg / (3 * n) as f32;
        for i in 0..n {
            for k in 0..3 {
                let s = params.log_scales[i][k].exp();
                loss += (w * s) as f64;
                grads.log_scales[i][k] += w * s;
            }
        }
    }
    loss
}

/// Caps every opacity at twice the prune threshold and zeroes its optimizer moments.
pub fn reset_opacity(params: &mut Gaussians, adam: &mut Adam, prune_opacity: f32) {
    let cap = opacity_reset_cap(prune_opacity);
    params
        .opacity_logits
        .iter_mut()
        .for_each(|v| *v = v.min(cap));
    adam.reset_opacity();
}
