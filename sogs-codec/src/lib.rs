//! SOGS compression of trained Gaussians to PlayCanvas's SOG format: writes version 2 (a folder of
//! meta.json + lossless WebP images, or the single-file `.sog` bundle) and reads versions 1 and 2.
//!
//! Entry points: [`encode_sog`] -> [`SogFiles`] -> [`write_sog_bundle`] / [`write_sog_dir`], and
//! [`read_sog`] back to [`splat_core::Gaussians`] (then `splat_core::ply::write_ply` for a PLY).
//! [`blending_weights`] and [`visibility`] weight the SH palette by how much each Gaussian shows;
//! [`meta`] is the meta.json schema.

// Channel and axis loops index several parallel arrays at once, as the format's formulas do.
#![allow(clippy::needless_range_loop)]

mod bundle;
mod decode;
mod encode;
mod error;
mod importance;
mod kmeans;
pub mod meta;
mod order;
mod quant;
mod webp;

use std::path::Path;

pub use decode::{decode_entries, read_sog, read_sog_meta};
pub use encode::{
    auto_visibility_views, default_palette_size, encode_sog, grid_size, EncodeOptions, Progress,
    SogFiles, SortMode, Stage, VISIBILITY_SIZE,
};
pub use error::SogError;
pub use importance::{blending_weights, visibility};
pub use meta::{Meta, MetaV1, MetaV2};
pub use order::PlasOptions;

/// Building blocks of the encoder (scalar codebooks, k-means palette, PLAS sort, quantisation,
/// WebP), reachable for the crate's own tests and benches; no stability.
#[doc(hidden)]
pub mod internals {
    pub use crate::kmeans::{palette, Palette};
    pub use crate::order::plas_order;
    pub use crate::quant::{build_codebook, log_transform, Codebook};
    pub use crate::webp::{decode as decode_webp, Rgba};
}

use error::io_err;

/// [`spaceport_io::write_atomic`] with the codec's error type.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SogError> {
    Ok(spaceport_io::write_atomic(path, bytes)?)
}

/// Writes the single-file `.sog` bundle (stored ZIP, meta.json last, no comment) atomically.
pub fn write_sog_bundle(files: &SogFiles, path: impl AsRef<Path>) -> Result<(), SogError> {
    let zip = bundle::zip_stored(&files.entries())?;
    write_atomic(path.as_ref(), &zip)
}

/// Writes the folder form: the images, then meta.json last, each file atomically. A folder that
/// does not exist yet is assembled under a temporary name and renamed into place whole.
pub fn write_sog_dir(files: &SogFiles, dir: impl AsRef<Path>) -> Result<(), SogError> {
    let dir = dir.as_ref();
    let entries = files.entries();
    if dir.exists() {
        for (name, bytes) in &entries {
            write_atomic(&dir.join(name), bytes)?;
        }
        return Ok(());
    }
    spaceport_io::write_dir_atomic(dir, |tmp| {
        for (name, bytes) in &entries {
            std::fs::write(tmp.join(name), bytes).map_err(|e| io_err(tmp.join(name), e))?;
        }
        Ok(())
    })
}
