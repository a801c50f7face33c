//! The seam between the SfM controller and the device that extracts and matches features.
//!
//! [`run_with`](crate::run_with) takes a [`FeatureBackend`]; [`crate::run`] passes
//! [`CpuFeatures`], today's CPU code. A GPU crate implements the trait (splat-cuda's
//! `CudaMatcher` matches descriptors on the device), so sfm-core itself never depends on a
//! device library. What a backend computes must equal the CPU's: [`NearestTwo`] is the
//! intermediate a device can compute and hand to [`select_matches`], so that the ratio,
//! distance and mutual checks are the CPU's own code.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

pub use crate::features::image::Gray;
pub use crate::features::{Features, Keypoint, SiftOptions};
pub use crate::matching::{
    match_descriptors, nearest_two, select_matches, DescriptorSet, MatchOptions, NearestTwo,
};

/// Why a feature backend could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum FeatureBackendError {
    /// The device is missing or cannot start (no driver, no GPU).
    #[error("device unavailable: {0}")]
    Unavailable(String),
    /// The device failed while working (a launch, a copy, out of memory).
    #[error("device failure: {0}")]
    Device(String),
    /// The request itself is malformed (a pair naming an image that is not in the set).
    #[error("invalid request: {0}")]
    InvalidInput(String),
}

/// Called once per matched pair with the pair's position in the request and its matches
/// (index in the first image, index in the second), from any thread and in any order.
pub type PairSink<'a> = dyn Fn(usize, Vec<(u32, u32)>) + Sync + 'a;

/// The operations of SfM's front end that a device can take over.
pub trait FeatureBackend: Sync {
    /// A short name for messages and the report ("cpu", "cuda:0 NVIDIA H200").
    fn name(&self) -> String;

    /// SIFT features of one grayscale image. The default is the CPU extractor.
    fn extract(&self, img: &Gray, opt: &SiftOptions) -> Result<Features, FeatureBackendError> {
        Ok(crate::features::extract(img, opt))
    }

    /// Matches the descriptors of every image pair `pairs[k] = (i, j)` of `descs` as
    /// [`match_descriptors`] does (nearest two by dot product of unit descriptors, the lowest
    /// index winning ties, Lowe's ratio, the distance cap and the mutual check of `opt`), and
    /// calls `done(k, matches)` exactly once for each pair. Returns the seconds spent matching
    /// (thread-seconds on the CPU, device wall time on a GPU).
    fn match_pairs(
        &self,
        descs: &[DescriptorSet],
        pairs: &[(usize, usize)],
        opt: &MatchOptions,
        done: &PairSink<'_>,
    ) -> Result<f64, FeatureBackendError>;
}

/// Refuses pairs that name an image outside `descs` (shared by every backend).
pub fn check_pairs(
    descs: &[DescriptorSet],
    pairs: &[(usize, usize)],
) -> Result<(), FeatureBackendError> {
    match pairs
        .iter()
        .find(|&&(i, j)| i >= descs.len() || j >= descs.len())
    {
        Some(&(i, j)) => Err(FeatureBackendError::InvalidInput(format!(
            "pair ({i}, {j}) names an image outside the {} descriptor sets",
            descs.len()
        ))),
        None => Ok(()),
    }
}

/// Today's CPU code: the SIFT extractor and the register-tiled matcher, pairs in parallel on
/// rayon's threads (each pair's `done` runs on the thread that matched it, so verification
/// follows matching without a hand-over).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuFeatures;

impl FeatureBackend for CpuFeatures {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn match_pairs(
        &self,
        descs: &[DescriptorSet],
        pairs: &[(usize, usize)],
        opt: &MatchOptions,
        done: &PairSink<'_>,
    ) -> Result<f64, FeatureBackendError> {
        check_pairs(descs, pairs)?;
        let micros = AtomicU64::new(0);
        pairs.par_iter().enumerate().for_each(|(k, &(i, j))| {
            let t0 = Instant::now();
            let m = match_descriptors(&descs[i], &descs[j], opt);
            micros.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            done(k, m);
        });
        Ok(micros.load(Ordering::Relaxed) as f64 * 1e-6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::sync::Mutex;

    fn set(n: usize, seed: u64) -> DescriptorSet {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::with_capacity(n * 128);
        for _ in 0..n {
            let v: Vec<f32> = (0..128).map(|_| rng.random_range(0..8) as f32).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            data.extend(v.iter().map(|x| x / norm));
        }
        DescriptorSet { n, data }
    }

    #[test]
    fn cpu_backend_reports_every_pair_once_with_match_descriptors_results() {
        let mut descs: Vec<DescriptorSet> = (0..5).map(|s| set(40 + 13 * s, s as u64)).collect();
        // Image 3 repeats part of image 0, so that some pairs have matches.
        let shared = descs[0].data[..20 * 128].to_vec();
        descs[3].data[..20 * 128].copy_from_slice(&shared);
        descs.push(DescriptorSet {
            n: 1,
            data: descs[1].data[..128].to_vec(),
        });
        let pairs: Vec<(usize, usize)> = (0..descs.len())
            .flat_map(|i| (i + 1..descs.len()).map(move |j| (i, j)))
            .collect();
        let opt = MatchOptions::default();
        let got = Mutex::new(vec![None; pairs.len()]);
        let secs = CpuFeatures
            .match_pairs(&descs, &pairs, &opt, &|k, m| {
                let mut g = got.lock().unwrap();
                assert!(g[k].is_none(), "pair {k} reported twice");
                g[k] = Some(m);
            })
            .unwrap();
        assert!(secs >= 0.0);
        let got = got.into_inner().unwrap();
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let want = match_descriptors(&descs[i], &descs[j], &opt);
            assert_eq!(got[k].as_ref(), Some(&want), "pair ({i}, {j})");
        }
        let k03 = pairs.iter().position(|&p| p == (0, 3)).unwrap();
        assert!(got[k03].as_ref().unwrap().len() >= 15, "planted matches");
    }

    #[test]
    fn a_pair_outside_the_set_is_refused_by_name() {
        let descs = vec![set(4, 1), set(4, 2)];
        let err = CpuFeatures
            .match_pairs(
                &descs,
                &[(0, 1), (1, 2)],
                &MatchOptions::default(),
                &|_, _| {},
            )
            .unwrap_err();
        assert!(err.to_string().contains("(1, 2)"), "{err}");
    }

    #[test]
    fn select_matches_on_cpu_nearest_two_is_match_descriptors() {
        let a = set(60, 7);
        let mut b = set(90, 8);
        b.data[..30 * 128].copy_from_slice(&a.data[30 * 128..60 * 128]);
        for opt in [
            MatchOptions::default(),
            MatchOptions {
                max_ratio: 1.0,
                max_distance: 2.0,
                cross_check: false,
            },
        ] {
            let n = nearest_two(&a, &b);
            assert_eq!(n.rows.len(), 60);
            assert_eq!(n.cols.len(), 90);
            assert_eq!(select_matches(&n, &opt), match_descriptors(&a, &b, &opt));
        }
        let one = DescriptorSet {
            n: 1,
            data: a.data[..128].to_vec(),
        };
        // Fewer than two in B: no ratio, no matches, whoever computed the neighbours.
        assert!(select_matches(&nearest_two(&a, &one), &MatchOptions::default()).is_empty());
    }
}
