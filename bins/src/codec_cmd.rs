//! `spaceport compress` and `spaceport decompress`: PLY <-> PlayCanvas SOG.

use std::path::Path;

use clap::ValueEnum;
use sogs_codec::{EncodeOptions, SortMode};

use crate::AnyResult;

/// SOG output form.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SogFormat {
    /// The single-file `.sog` bundle.
    Sog,
    /// A folder of meta.json and WebP images.
    SogDir,
}

/// Texel layout (a command-line and config-file value).
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Hilbert order of positions (default: smallest files on the scenes measured).
    Hilbert,
    /// Morton (Z) order of positions, as splat-transform.
    Morton,
    /// Hilbert refined by a PLAS-style self-organizing sort over all attributes.
    Plas,
}

impl Sort {
    /// The encoder's layout.
    pub fn mode(self) -> SortMode {
        match self {
            Sort::Hilbert => SortMode::Hilbert,
            Sort::Morton => SortMode::Morton,
            Sort::Plas => SortMode::Plas,
        }
    }
}

/// Runs `spaceport compress`.
pub fn compress(
    input: &Path,
    out: &Path,
    format: SogFormat,
    sh_bands: Option<usize>,
    sort: Sort,
) -> AnyResult<()> {
    let g = splat_core::ply::read_ply(input)?;
    let opts = EncodeOptions {
        sh_bands,
        sort: sort.mode(),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let files = encode(&g, &opts)?;
    match format {
        SogFormat::Sog => sogs_codec::write_sog_bundle(&files, out)?,
        SogFormat::SogDir => sogs_codec::write_sog_dir(&files, out)?,
    }
    let size = dir_or_file_size(out);
    let ply_size = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} Gaussians -> {} ({} bytes, {:.1}x smaller than the PLY) in {:.1} s",
        g.len(),
        out.display(),
        size,
        ply_size as f64 / size.max(1) as f64,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Encodes `g` with a progress bar.
pub fn encode(g: &splat_core::Gaussians, opts: &EncodeOptions) -> AnyResult<sogs_codec::SogFiles> {
    let bar = crate::progress_bar(1, "{bar:30} {pos}/{len} {msg} [{elapsed_precise}]");
    let files = sogs_codec::encode_sog(g, opts, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("{:?}", p.stage));
    })?;
    bar.finish_and_clear();
    Ok(files)
}

fn dir_or_file_size(p: &Path) -> u64 {
    if p.is_dir() {
        std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    } else {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }
}

/// Runs `spaceport decompress`.
pub fn decompress(input: &Path, out: &Path) -> AnyResult<()> {
    let g = sogs_codec::read_sog(input)?;
    splat_core::ply::write_ply(out, &g)?;
    println!(
        "{} Gaussians (SH degree {}) -> {}",
        g.len(),
        g.sh_degree,
        out.display()
    );
    Ok(())
}
