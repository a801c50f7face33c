//! The trainer's side of exposure compensation ([`crate::backend::exposure`]): one colour
//! transform per training image, each with its own Adam state, saved in checkpoints.

use serde::{Deserialize, Serialize};

use crate::backend::exposure::{Exposure, IDENTITY};

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
        if self.lr <= 0.0 || self.lr_final <= 0.0 {
            return self.lr * (1.0 - t);
        }
        self.lr * (self.lr_final / self.lr).powf(t)
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
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-15f32);
        e.steps += 1;
        let bc1 = 1.0 - b1.powi(e.steps as i32);
        let bc2 = 1.0 - b2.powi(e.steps as i32);
        for k in 0..12 {
            e.first[k] = b1 * e.first[k] + (1.0 - b1) * grad[k];
            e.second[k] = b2 * e.second[k] + (1.0 - b2) * grad[k] * grad[k];
            e.m[k] -= lr * (e.first[k] / bc1) / ((e.second[k] / bc2).sqrt() + eps);
        }
    }
}
