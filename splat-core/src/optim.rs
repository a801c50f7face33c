//! Adam with one learning rate per parameter group, its moments shaped like the parameters
//! so that densification can edit both together.

use serde::{Deserialize, Serialize};

use crate::gaussians::Gaussians;

/// Learning rates of the parameter groups for one step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRates {
    /// Positions.
    pub means: f32,
    /// SH degree-0 coefficients.
    pub sh_dc: f32,
    /// Higher SH coefficients.
    pub sh_rest: f32,
    /// Opacity logits.
    pub opacity: f32,
    /// Log-scales.
    pub scales: f32,
    /// Quaternions.
    pub rotations: f32,
}

/// Adam state: first and second moments per parameter and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// First moments, shaped like the parameters.
    pub m: Gaussians,
    /// Second moments, shaped like the parameters.
    pub v: Gaussians,
    /// Steps taken (for bias correction).
    pub step: u64,
    /// Exponential decay of the first moment.
    pub beta1: f32,
    /// Exponential decay of the second moment.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
}

/// The bias-corrected Adam rule at one step count `t` (from 1): computed once per step and
/// applied to every parameter group, and to anything else the trainer optimises (the
/// exposure transforms).
#[derive(Clone, Copy, Debug)]
pub struct AdamRule {
    b1: f32,
    b2: f32,
    eps: f32,
    bc1: f32,
    sbc2: f32,
}

impl AdamRule {
    /// The rule with betas `(b1, b2)` and `eps` at step `t`.
    pub fn new((b1, b2): (f32, f32), eps: f32, t: u64) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        Self {
            b1,
            b2,
            eps,
            bc1: 1.0 - b1.powi(t),
            sbc2: (1.0 - b2.powi(t)).sqrt(),
        }
    }

    /// One update of `p` along `g` with moments `m` and `v` at learning rate `lr`.
    pub fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], lr: f32) {
        let (b1, b2) = (self.b1, self.b2);
        let step = lr / self.bc1;
        for i in 0..p.len() {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            p[i] -= step * m[i] / (v[i].sqrt() / self.sbc2 + self.eps);
        }
    }
}

impl Adam {
    /// Fresh state for `params` with 3DGS's constants (0.9, 0.999, 1e-15).
    pub fn new(params: &Gaussians) -> Self {
        Self {
            m: params.zeros_like(),
            v: params.zeros_like(),
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-15,
        }
    }

    /// One update of `params` with gradients `grads`.
    pub fn step(&mut self, params: &mut Gaussians, grads: &Gaussians, lr: &GroupRates) {
        self.step += 1;
        let rule = AdamRule::new((self.beta1, self.beta2), self.eps, self.step);
        let update = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], lr: f32| {
            rule.apply(p, g, m, v, lr)
        };
        update(
            params.means.as_flattened_mut(),
            grads.means.as_flattened(),
            self.m.means.as_flattened_mut(),
            self.v.means.as_flattened_mut(),
            lr.means,
        );
        update(
            params.log_scales.as_flattened_mut(),
            grads.log_scales.as_flattened(),
            self.m.log_scales.as_flattened_mut(),
            self.v.log_scales.as_flattened_mut(),
            lr.scales,
        );
        update(
            params.quats.as_flattened_mut(),
            grads.quats.as_flattened(),
            self.m.quats.as_flattened_mut(),
            self.v.quats.as_flattened_mut(),
            lr.rotations,
        );
        update(
            &mut params.opacity_logits,
            &grads.opacity_logits,
            &mut self.m.opacity_logits,
            &mut self.v.opacity_logits,
            lr.opacity,
        );
        let nsh = params.sh_coeffs() * 3;
        for ((((p, g), m), v), _) in params
            .sh
            .chunks_mut(nsh)
            .zip(grads.sh.chunks(nsh))
            .zip(self.m.sh.chunks_mut(nsh))
            .zip(self.v.sh.chunks_mut(nsh))
            .zip(0..)
        {
            let (pd, pr) = p.split_at_mut(3);
            let (md, mr) = m.split_at_mut(3);
            let (vd, vr) = v.split_at_mut(3);
            update(pd, &g[..3], md, vd, lr.sh_dc);
            update(pr, &g[3..], mr, vr, lr.sh_rest);
        }
    }

    /// Keeps the state of the Gaussians whose flag is set.
    pub fn retain_mask(&mut self, keep: &[bool]) {
        self.m.retain_mask(keep);
        self.v.retain_mask(keep);
    }

    /// Adds zero state for `count` new Gaussians at the end.
    pub fn append_zeros(&mut self, count: usize) {
        self.m.append_zeros(count);
        self.v.append_zeros(count);
    }

    /// Zeroes the opacity moments (after an opacity reset).
    pub fn reset_opacity(&mut self) {
        self.m.opacity_logits.iter_mut().for_each(|v| *v = 0.0);
        self.v.opacity_logits.iter_mut().for_each(|v| *v = 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_minimises_a_quadratic_and_first_step_is_lr_sized() {
        let mut p = Gaussians::empty(0);
        p.push(
            [1.0, -2.0, 3.0],
            [0.5; 3],
            [1.0, 0.0, 0.0, 0.0],
            0.3,
            &[0.2, 0.1, -0.1],
        );
        let mut adam = Adam::new(&p);
        let lr = GroupRates {
            means: 0.01,
            sh_dc: 0.01,
            sh_rest: 0.01,
            opacity: 0.01,
            scales: 0.01,
            rotations: 0.01,
        };
        let start = p.means[0];
        for it in 0..2000 {
            // Gradient of 0.5 |means|^2.
            let mut g = p.zeros_like();
            g.means[0] = p.means[0];
            adam.step(&mut p, &g, &lr);
            if it == 0 {
                // Adam's first step moves each coordinate by lr against the gradient's sign.
                for k in 0..3 {
                    assert!((start[k] - p.means[0][k] - 0.01 * start[k].signum()).abs() < 1e-5);
                }
            }
        }
        assert!(
            p.means[0].iter().all(|v| v.abs() < 0.02),
            "{:?}",
            p.means[0]
        );
        // Parameters without gradient do not move.
        assert_eq!(p.opacity_logits[0], 0.3);
    }
}
