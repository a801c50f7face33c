//! SIFT features: Gaussian scale space, difference-of-Gaussian extrema with sub-pixel and scale
//! refinement, contrast and edge rejection, dominant orientations and 128-d RootSIFT
//! descriptors. Deterministic for a given image and options.

mod detect;
pub mod image;

pub use self::image::Gray;
use serde::{Deserialize, Serialize};

/// SIFT settings (defaults follow COLMAP's SiftExtraction options).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiftOptions {
    /// Keep at most this many features (strongest DoG response first).
    pub max_features: usize,
    /// Double the image before building the first octave (finds small features; 4x slower).
    pub upsample: bool,
    /// Scales per octave.
    pub octave_scales: usize,
    /// Minimum |DoG| after interpolation (intensities in [0, 1]).
    pub peak_threshold: f32,
    /// Maximum ratio of principal curvatures.
    pub edge_threshold: f32,
    /// At most this many orientations per detection.
    pub max_orientations: usize,
}

impl Default for SiftOptions {
    fn default() -> Self {
        Self {
            max_features: 8192,
            upsample: false,
            octave_scales: 3,
            peak_threshold: 0.02 / 3.0,
            edge_threshold: 10.0,
            max_orientations: 2,
        }
    }
}

/// A detected keypoint in COLMAP pixel convention (the top-left pixel's centre is (0.5, 0.5)).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Keypoint {
    /// Column coordinate.
    pub x: f32,
    /// Row coordinate.
    pub y: f32,
    /// Gaussian scale (pixels).
    pub scale: f32,
    /// Orientation in radians.
    pub orientation: f32,
    /// |DoG| response, used to rank features for the cap.
    pub response: f32,
}

/// Keypoints and their descriptors (128 bytes each, RootSIFT scaled by 512).
#[derive(Clone, Debug, Default)]
pub struct Features {
    /// Keypoints.
    pub keypoints: Vec<Keypoint>,
    /// Descriptors, `keypoints.len() * 128` bytes.
    pub descriptors: Vec<u8>,
}

impl Features {
    /// Number of features.
    pub fn len(&self) -> usize {
        self.keypoints.len()
    }

    /// True when no features were found.
    pub fn is_empty(&self) -> bool {
        self.keypoints.is_empty()
    }

    /// Descriptor of feature i.
    pub fn descriptor(&self, i: usize) -> &[u8] {
        &self.descriptors[i * 128..(i + 1) * 128]
    }
}

/// Detects and describes SIFT features in a grayscale image.
pub fn extract(img: &Gray, opt: &SiftOptions) -> Features {
    detect::sift(img, opt)
}
