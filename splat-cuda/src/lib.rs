//! CUDA backend for splat-core, and descriptor matching for sfm-core ([`CudaMatcher`], an
//! `sfm_core::FeatureBackend`). Kernels are CUDA C in `kernels/`, compiled to PTX with NVRTC,
//! committed, embedded and loaded through cudarc's driver API at run time.

mod args;
mod backend;
#[cfg(test)]
mod cu_text;
mod device;
mod matcher;
pub mod ptx;
mod session;
#[cfg(test)]
mod shared_constants;

pub use backend::{CudaBackend, CudaFrame, DeviceFrame, DeviceGrads, DeviceSplats};
pub use device::CamParams;
pub use matcher::CudaMatcher;
pub use session::CudaSession;
#[cfg(feature = "testing")]
pub use session::DeviceLoss;

/// Whether a CUDA driver library can be loaded on this machine (never panics).
pub fn driver_present() -> bool {
    // SAFETY: only probes for the shared library; it does not call into the driver.
    unsafe { cudarc::driver::sys::is_culib_present() }
}
