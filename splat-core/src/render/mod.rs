//! The CPU reference renderer: exact 3DGS image formation, forward and backward.
//!
//! Stages follow the original 3DGS rasterizer: per-Gaussian projection ([`project`]), binning into
//! 16x16 tiles with per-tile depth-sorted lists, and front-to-back compositing ([`raster`]). Every
//! stage is generic over the float type so that tests can check gradients in f64.

pub mod project;
pub mod raster;

use std::sync::Arc;

use rayon::prelude::*;

use crate::camera::Camera;
use crate::gaussians::Splats;
use project::{Cam, Projected, ScreenGrad};

/// Side of the square screen tiles, in pixels.
pub const TILE_SIZE: u32 = 16;

/// Float types the reference renderer runs in (f32 for training, f64 for gradient checks).
pub trait Real: num_traits::Float + Default + Send + Sync + std::fmt::Debug + 'static {}
impl<T: num_traits::Float + Default + Send + Sync + std::fmt::Debug + 'static> Real for T {}

/// Settings of one render.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderOptions {
    /// Colour behind all Gaussians.
    pub background: [f32; 3],
    /// SH degree to evaluate (at most the Gaussians' own); `None` uses all their bands.
    pub sh_degree: Option<usize>,
    /// Gaussians closer than this (camera-space z) are culled.
    pub near: f32,
    /// Record a hash of every discrete decision (culling, tiles, blended set, clamps), which
    /// tests use to tell where finite differences are valid.
    pub record_signature: bool,
    /// gsplat's `antialiased` mode: each opacity is multiplied by sqrt(det Σ2 / det(Σ2 + ε I)),
    /// ε the low-pass variance ([`RenderOptions::low_pass`], [`project::mip2d_compensation`]),
    /// so the low-pass does not inflate the energy of a Gaussian smaller than a pixel.
    pub mip2d: bool,
    /// Mip-Splatting's 3D smoothing filter: one world-space variance per Gaussian (in order),
    /// added to the covariance, with the opacity scaled to keep the energy
    /// ([`project::filter3d`]); `None`: off. A list of another length than the Gaussians is an
    /// input error for the backends ([`RenderOptions::check_filter3d`]); the bare renderer
    /// treats a missing entry as 0.
    pub filter3d: Option<Arc<[f32]>>,
    /// The screen-space low-pass variance in px² (`None`: 3DGS's [`project::LOW_PASS`]);
    /// Mip-Splatting pairs its 3D filter with 0.1 and the 2D compensation.
    pub low_pass: Option<f32>,
}

impl RenderOptions {
    /// Whether the image formation differs from 3DGS's: either anti-aliasing filter, or
    /// another low-pass variance.
    pub fn antialiased(&self) -> bool {
        self.mip2d || self.filter3d.is_some() || self.low_pass_variance() != project::LOW_PASS
    }

    /// The low-pass variance this render uses (3DGS's exact f64 value unless another is set).
    pub fn low_pass_variance(&self) -> f64 {
        match self.low_pass {
            Some(v) if v != project::LOW_PASS as f32 => v as f64,
            _ => project::LOW_PASS,
        }
    }

    /// Checks that a 3D filter, if any, has one finite, non-negative variance per Gaussian.
    pub fn check_filter3d(&self, gaussians: usize) -> Result<(), String> {
        let Some(f) = &self.filter3d else {
            return Ok(());
        };
        if f.len() != gaussians {
            return Err(format!(
                "3D filter has {} variances for {gaussians} Gaussians",
                f.len()
            ));
        }
        if let Some((i, v)) = f
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(format!(
                "3D filter variance {v} of Gaussian {i}: must be finite and >= 0"
            ));
        }
        Ok(())
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            background: [0.0; 3],
            sh_degree: None,
            near: 0.01,
            record_signature: false,
            mip2d: false,
            filter3d: None,
            low_pass: None,
        }
    }
}

/// What the renderer keeps between the forward and the backward of one view.
pub struct ForwardState<T> {
    pub(crate) cam: Cam<T>,
    pub(crate) proj: Vec<Projected<T>>,
    pub(crate) bins: raster::Bins,
    pub(crate) pixels: raster::PixelState<T>,
    pub(crate) sh_degree: usize,
    pub(crate) bg: [T; 3],
    pub(crate) aa: project::AaMode,
}

/// A rendered view and the per-Gaussian screen data densification needs; `S` is what the
/// renderer that made it keeps for the backward ([`ForwardState`] for this one, another
/// backend's own type for its renders, see [`crate::backend::Backend::Frame`]).
pub struct RenderOutput<T, S = ForwardState<T>> {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// RGB, row-major, `height x width x 3`; not clamped to [0, 1].
    pub image: Vec<T>,
    /// Accumulated opacity per pixel (1 - final transmittance).
    pub alpha: Vec<T>,
    /// Projected centres in pixels (meaningful where `radii > 0`).
    pub means2d: Vec<[T; 2]>,
    /// Screen radius in pixels; 0 for a culled Gaussian.
    pub radii: Vec<u32>,
    /// Camera-space depth of each visible Gaussian.
    pub depths: Vec<T>,
    /// Number of (Gaussian, tile) pairs.
    pub n_intersections: usize,
    /// Hash of the discrete decisions, when requested in the options (else 0).
    pub signature: u64,
    /// State the backward pass reads.
    pub state: S,
}

impl<T: Real, S> RenderOutput<T, S> {
    /// Number of Gaussians that reached the screen.
    pub fn n_visible(&self) -> usize {
        self.radii.iter().filter(|&&r| r > 0).count()
    }
}

/// Gradients of a scalar loss with respect to every parameter, plus screen-space means.
#[derive(Clone, Debug)]
pub struct RenderGrads<T> {
    /// Gradients shaped like the parameters.
    pub params: Splats<T>,
    /// dL/d(projected centre) in pixels; densification scales these to NDC.
    pub means2d: Vec<[T; 2]>,
}

/// `splats` with the 3D filter `var` (one variance per Gaussian, as in
/// [`RenderOptions::filter3d`]) baked into their scales and opacities, so that a renderer without
/// the filter (any standard viewer) draws the filtered Gaussians: rendered without a filter, the
/// result equals `splats` rendered with it (under the same `mip2d` mode). A missing entry is 0.
pub fn bake_filter3d<T: Real>(splats: &Splats<T>, var: &[f32]) -> Splats<T> {
    let mut out = splats.clone();
    for i in 0..out.len() {
        let v = var.get(i).copied().unwrap_or(0.0);
        if v == 0.0 {
            continue;
        }
        let (scales, factor) = project::filter3d(out.log_scales[i], to_t::<T>(v));
        out.log_scales[i] = scales.map(|s| s.ln());
        let o = crate::gaussians::sigmoid(out.opacity_logits[i]) * factor;
        out.opacity_logits[i] = crate::gaussians::logit(o);
    }
    out
}

fn to_t<T: Real>(v: f32) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

/// Renders `splats` from `camera`.
pub fn render<T: Real>(
    splats: &Splats<T>,
    camera: &Camera,
    opts: &RenderOptions,
) -> RenderOutput<T> {
    let cam = Cam::<T>::new(camera);
    let sh_degree = opts
        .sh_degree
        .unwrap_or(splats.sh_degree)
        .min(splats.sh_degree);
    let near = to_t::<T>(opts.near);
    let aa = project::AaMode::of(opts);
    let proj: Vec<Projected<T>> = (0..splats.len())
        .into_par_iter()
        .map(|i| project::project_one(splats, i, &cam, near, sh_degree, &aa))
        .collect();
    let (tiles_x, tiles_y) = cam.tiles();
    let bins = raster::bin(&proj, tiles_x, tiles_y);
    let bg = opts.background.map(to_t::<T>);
    let (image, pixels, pix_sig) = raster::forward(
        &proj,
        &bins,
        cam.width,
        cam.height,
        tiles_x,
        bg,
        opts.record_signature,
    );
    let signature = if opts.record_signature {
        proj.iter().enumerate().fold(pix_sig, |acc, (i, p)| {
            let flags = p.visible as u64
                | (p.guard_clamped[0] as u64) << 1
                | (p.guard_clamped[1] as u64) << 2
                | (p.color_clamped[0] as u64) << 3
                | (p.color_clamped[1] as u64) << 4
                | (p.color_clamped[2] as u64) << 5;
            let rect = p.rect.iter().fold(0u64, |a, &r| a << 16 | r as u64);
            acc.wrapping_add(raster::mix(raster::mix(i as u64 ^ flags << 32) ^ rect))
        })
    } else {
        0
    };
    RenderOutput {
        width: cam.width,
        height: cam.height,
        alpha: pixels.final_t.iter().map(|&t| T::one() - t).collect(),
        image,
        means2d: proj.iter().map(|p| p.mean2d).collect(),
        radii: proj
            .iter()
            .map(|p| if p.visible { p.radius.max(1) } else { 0 })
            .collect(),
        depths: proj.iter().map(|p| p.depth).collect(),
        n_intersections: bins.ids.len(),
        signature,
        state: ForwardState {
            cam,
            proj,
            bins,
            pixels,
            sh_degree,
            bg,
            aa,
        },
    }
}

/// Gradients of a loss given its gradient `d_image` with respect to the rendered image
/// (`height x width x 3`) of `fwd`, a [`render`] of `splats`.
pub fn render_backward<T: Real>(
    splats: &Splats<T>,
    fwd: &RenderOutput<T>,
    d_image: &[T],
) -> RenderGrads<T> {
    let st = &fwd.state;
    let (tiles_x, _) = st.cam.tiles();
    let screen = raster::backward(
        &st.proj,
        &st.bins,
        &st.pixels,
        d_image,
        st.cam.width,
        st.cam.height,
        tiles_x,
        st.bg,
    );
    let n = splats.len();
    let nsh = splats.sh_coeffs() * 3;
    let mut params = Splats {
        means: vec![[T::zero(); 3]; n],
        log_scales: vec![[T::zero(); 3]; n],
        quats: vec![[T::zero(); 4]; n],
        opacity_logits: vec![T::zero(); n],
        sh: vec![T::zero(); n * nsh],
        sh_degree: splats.sh_degree,
    };
    let zero = ScreenGrad::<T>::default();
    let per: Vec<_> = params
        .sh
        .par_chunks_mut(nsh.max(1))
        .take(n)
        .enumerate()
        .map(|(i, d_sh)| {
            let p = &st.proj[i];
            let sg = &screen[i];
            if !p.visible || is_zero(sg, &zero) {
                return None;
            }
            Some(project::project_one_backward(
                splats,
                i,
                &st.cam,
                p,
                sg,
                st.sh_degree,
                &st.aa,
                d_sh,
            ))
        })
        .collect();
    for (i, g) in per.into_iter().enumerate() {
        if let Some(g) = g {
            params.means[i] = g.mean;
            params.log_scales[i] = g.log_scale;
            params.quats[i] = g.quat;
            params.opacity_logits[i] = g.opacity_logit;
        }
    }
    RenderGrads {
        params,
        means2d: screen.iter().map(|s| s.mean2d).collect(),
    }
}

/// [`render_backward`], always `Some`: the output's type now guarantees that it came from
/// [`render`]. Kept for callers written against the fallible form.
pub fn try_render_backward<T: Real>(
    splats: &Splats<T>,
    fwd: &RenderOutput<T>,
    d_image: &[T],
) -> Option<RenderGrads<T>> {
    Some(render_backward(splats, fwd, d_image))
}

fn is_zero<T: Real>(a: &ScreenGrad<T>, z: &ScreenGrad<T>) -> bool {
    a.mean2d == z.mean2d && a.conic == z.conic && a.opacity == z.opacity && a.color == z.color
}
