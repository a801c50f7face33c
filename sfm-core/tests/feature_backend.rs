//! The feature-backend seam: a backend that reports pairs in another order and through
//! `nearest_two` + `select_matches` (the path a GPU takes) gives the CPU run's model byte for
//! byte; a failing backend stops the run with an error naming it.

use sfm_core::backend::{
    check_pairs, nearest_two, select_matches, DescriptorSet, MatchOptions, PairSink,
};
use sfm_core::{run, run_with, FeatureBackend, FeatureBackendError, SfmError, SfmOptions};
use sfm_core::{PairSelection, SiftOptions};
use std::path::{Path, PathBuf};

/// The shared test data: beside the checkout as for the other tests, or where
/// `SPACEPORT_DATA` says (a worktree one level deeper).
fn data() -> PathBuf {
    std::env::var_os("SPACEPORT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data").into())
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sfm-backend-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Test backends, each breaking one habit of the CPU one.
enum Scripted {
    /// Matches on one thread, last pair first, through the neighbours-then-selection path.
    Reversed,
    /// A device that fails at the first match.
    Broken,
    /// Forgets every other pair.
    Forgetful,
}

impl FeatureBackend for Scripted {
    fn name(&self) -> String {
        match self {
            Scripted::Reversed => "reversed",
            Scripted::Broken => "broken-gpu",
            Scripted::Forgetful => "forgetful",
        }
        .into()
    }

    fn match_pairs(
        &self,
        descs: &[DescriptorSet],
        pairs: &[(usize, usize)],
        opt: &MatchOptions,
        done: &PairSink<'_>,
    ) -> Result<f64, FeatureBackendError> {
        check_pairs(descs, pairs)?;
        let matches = |k: usize| {
            let (i, j) = pairs[k];
            select_matches(&nearest_two(&descs[i], &descs[j]), opt)
        };
        match self {
            Scripted::Reversed => (0..pairs.len()).rev().for_each(|k| done(k, matches(k))),
            Scripted::Broken => return Err(FeatureBackendError::Device("launch failed".into())),
            Scripted::Forgetful => (0..pairs.len())
                .step_by(2)
                .for_each(|k| done(k, matches(k))),
        }
        Ok(0.0)
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    sfm_core::internals::model_files(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

#[test]
fn another_backend_with_the_cpu_semantics_gives_the_same_model_and_failures_are_named() {
    let scene = data().join("strecha/fountain-P11/images");
    let out = out_dir("same");
    let small = out.join("input");
    std::fs::create_dir_all(&small).unwrap();
    for n in ["0003.jpg", "0004.jpg", "0005.jpg", "0006.jpg"] {
        let img = image::open(scene.join(n)).expect("decode");
        let img = img.resize_exact(384, 256, image::imageops::FilterType::Triangle);
        img.to_rgb8().save(small.join(n)).expect("write");
    }
    let opt = SfmOptions {
        sift: SiftOptions {
            max_features: 1500,
            ..Default::default()
        },
        pairs: PairSelection::Exhaustive,
        undistort: false,
        write_text: false,
        ..Default::default()
    };
    let cpu = run(&opt, &small, &out.join("cpu"), &|_, _, _| {}).expect("cpu run");
    let run_on = |b: Scripted, dir: &str| run_with(&opt, &b, &small, &out.join(dir), &|_, _, _| {});
    let other = run_on(Scripted::Reversed, "rev").expect("reversed run");
    assert_eq!(cpu.feature_backend, "cpu");
    assert_eq!(other.feature_backend, "reversed");
    assert!(cpu.registered_images >= 3, "{cpu:?}");
    assert_eq!(cpu.verified_pairs, other.verified_pairs);
    assert_eq!(cpu.num_points, other.num_points);
    assert_eq!(cpu.num_observations, other.num_observations);
    for sub in ["sparse/0", "distorted/sparse/0"] {
        assert!(
            files(&out.join("cpu").join(sub)) == files(&out.join("rev").join(sub)),
            "{sub} differs between the CPU backend and the reordered one"
        );
    }

    let err = run_on(Scripted::Broken, "broken").expect_err("a failing backend fails the run");
    assert!(matches!(err, SfmError::Backend { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("broken-gpu") && msg.contains("launch failed"),
        "{msg}"
    );

    let err = run_on(Scripted::Forgetful, "forgot")
        .expect_err("a backend that skips pairs fails the run");
    let msg = err.to_string();
    assert!(
        msg.contains("forgetful") && msg.contains("exactly once"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
