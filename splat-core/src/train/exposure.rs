//! The trainer's side of exposure compensation ([`crate::backend::exposure`]): one colour
//! transform per training image, each with its own Adam state, saved in checkpoints.

use serde::{Deserialize, Serialize};

use crate::backend::exposure::{Exposure, IDENTITY};
use crate::optim::AdamRule;

/// Exposure compensation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExposureConfig {
    /// Learn an affine colour transform per training image (phone captures vary in exposure
    /// and white balance); off: every image is fitted as shot.
    pub enabled: bool,
    /// Adam learning rate of the transforms at the start (hierarchical 3DGS: 0.01).
    pub lr: f32,
    /// Learning rate at the end; exponential decay in between, as the means'.
    pub lr_final: f32,
}

impl Default for ExposureConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            lr: 0.01,
            lr_final: 0.001,
        }
    }
}

impl ExposureConfig {
    /// The learning rate at `iteration` of `iterations`.
    pub fn rate(&self, iteration: usize, iterations: usize) -> f32 {
        let t = iteration as f32 / iterations.max(1) as f32;
        if self.lr > 0.0 && self.lr_final > 0.0 {
            super::schedule::log_lerp(self.lr, self.lr_final, t)
        } else {
            // A zero end has no logarithm: decay linearly instead.
            self.lr * (1.0 - t)
        }
    }
}

/// One training image's transform and its Adam moments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewExposure {
    /// The transform.
    pub m: Exposure,
    first: Exposure,
    second: Exposure,
    steps: u32,
}

/// Every training image's transform (empty when compensation is off).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Exposures {
    /// Per training view, in the scene's order.
    pub views: Vec<ViewExposure>,
}

impl Exposures {
    /// Identity transforms for `n` training images.
    pub fn new(n: usize) -> Self {
        let v = ViewExposure {
            m: IDENTITY,
            first: [0.0; 12],
            second: [0.0; 12],
            steps: 0,
        };
        Self { views: vec![v; n] }
    }

    /// The transform of training view `v`, or `None` when compensation is off.
    pub fn get(&self, v: usize) -> Option<Exposure> {
        self.views.get(v).map(|e| e.m)
    }

    /// One Adam step (3DGS's betas, eps 1e-15) of view `v`'s transform along `grad`.
    pub fn update(&mut self, v: usize, grad: &Exposure, lr: f32) {
        let Some(e) = self.views.get_mut(v) else {
            return;
        };
        e.steps += 1;
        AdamRule::new((0.9, 0.999), 1e-15, e.steps as u64).apply(
            &mut e.m,
            grad,
            &mut e.first,
            &mut e.second,
            lr,
        );
    }
}
