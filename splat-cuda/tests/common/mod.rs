//! Helpers shared by the GPU tests (each test file uses a part of them).
#![allow(dead_code)]

use sfm_core::FeatureBackendError;
use splat_core::BackendError;
use splat_cuda::{CudaBackend, CudaMatcher};

/// Prints past the test harness's output capture, so that a skip is visible in a plain
/// `cargo test` run.
pub fn notice(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "NOTICE: {msg}");
}

/// The GPU these tests need; they are `#[ignore]`d, so reaching here without one is an
/// explicit `--ignored` run on the wrong machine, and that fails rather than passing unchecked.
pub fn backend() -> CudaBackend {
    match CudaBackend::new() {
        Ok(b) => b,
        Err(BackendError::Unavailable(why)) => {
            panic!("this test needs an NVIDIA GPU and there is none: {why}")
        }
        Err(e) => panic!("CUDA backend failed to start on a machine with a driver: {e}"),
    }
}

/// The GPU matcher, on the same terms as [`backend`].
pub fn matcher() -> CudaMatcher {
    match CudaMatcher::new() {
        Ok(m) => m,
        Err(FeatureBackendError::Unavailable(why)) => {
            panic!("this test needs an NVIDIA GPU and there is none: {why}")
        }
        Err(e) => panic!("CUDA matcher failed to start on a machine with a driver: {e}"),
    }
}
