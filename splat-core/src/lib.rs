//! 3D Gaussian Splatting core: the Gaussian model, the CPU reference renderer with its
//! hand-written backward pass, scenes, PLY I/O and the backend trait GPUs implement.

pub mod backend;
pub mod camera;
pub mod config;
#[cfg(feature = "scene")]
pub mod demo;
pub mod gaussians;
pub mod init;
pub mod loss;
pub mod optim;
pub mod ply;
pub mod render;
#[cfg(feature = "scene")]
pub mod scene;
pub mod sh;
pub mod train;

pub use backend::{Backend, BackendError, CpuBackend};
pub use camera::Camera;
pub use gaussians::{Gaussians, Splats};
pub use render::{render, render_backward, RenderGrads, RenderOptions, RenderOutput};
