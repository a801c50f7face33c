//! SOGS compression of trained Gaussians to PlayCanvas's SOG format: writes version 2 (a folder of
//! meta.json + lossless WebP images, or the single-file `.sog` bundle) and reads versions 1 and 2.
//!
//! Entry points: [`encode_sog`] -> [`SogFiles`] -> [`write_sog_bundle`] / [`write_sog_dir`], and
//! [`read_sog`] back to [`splat_core::Gaussians`] (then `splat_core::ply::write_ply` for a PLY).

// Channel and axis loops index several parallel arrays at once, as the format's formulas do.
#![allow(clippy::needless_range_loop)]

pub mod bundle;
pub mod decode;
pub mod encode;
pub mod error;
pub mod importance;
pub mod kmeans;
pub mod meta;
pub mod order;
pub mod quant;
pub mod webp;

use std::path::Path;

pub use decode::{decode_entries, read_sog, read_sog_meta};
pub use encode::{
    default_palette_size, encode_sog, grid_size, EncodeOptions, Progress, SogFiles, SortMode, Stage,
};
pub use error::SogError;
pub use meta::{Meta, MetaV1, MetaV2};
pub use order::PlasOptions;

use error::io_err;

/// A sibling of `path` to write into before renaming over it.
fn temp_sibling(path: &Path) -> Result<std::path::PathBuf, SogError> {
    let name = path.file_name().ok_or_else(|| SogError::InvalidInput {
        reason: format!("{}: path has no file name", path.display()),
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp{}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Writes bytes to a temporary sibling and renames it over `path`, so readers never see a partial file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SogError> {
    let tmp = temp_sibling(path)?;
    let r = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
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
    let tmp = temp_sibling(dir)?;
    let r = (|| {
        // Not create_dir_all: a missing parent is the caller's mistake, reported rather than papered over.
        std::fs::create_dir(&tmp).map_err(|e| io_err(&tmp, e))?;
        for (name, bytes) in &entries {
            std::fs::write(tmp.join(name), bytes).map_err(|e| io_err(tmp.join(name), e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| io_err(dir, e))
    })();
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}
