//! SOG (version 1 or 2, folder or bundle) -> Gaussians.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use splat_core::gaussians::{logit, sh_coeffs_for_degree};
use splat_core::Gaussians;

use crate::bundle;
use crate::error::{io_err, SogError};
use crate::meta::{parse_meta, Meta, MetaV1, MetaV2};
use crate::quant::{dequantize_range, inv_log_transform, unpack_quat};
use crate::webp::{self, Rgba};

/// Where the files of one SOG live.
pub(crate) enum Source {
    /// A folder on disk.
    Dir(PathBuf),
    /// Entries held in memory (an unpacked bundle or freshly encoded files); `path` names them.
    Memory {
        path: PathBuf,
        files: HashMap<String, Vec<u8>>,
    },
}

impl Source {
    fn label(&self, name: &str) -> PathBuf {
        match self {
            Source::Dir(d) => d.join(name),
            Source::Memory { path, .. } => path.join(name),
        }
    }

    fn get(&self, name: &str) -> Result<Cow<'_, [u8]>, SogError> {
        match self {
            Source::Dir(d) => {
                // meta.json may name files in subfolders, but never outside its own folder.
                let rel = Path::new(name);
                if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                    return Err(SogError::BadMeta {
                        path: d.join("meta.json"),
                        reason: format!("file name `{name}` leaves the SOG folder"),
                    });
                }
                let p = d.join(rel);
                match std::fs::read(&p) {
                    Ok(b) => Ok(Cow::Owned(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Err(SogError::MissingFile {
                            path: d.clone(),
                            name: name.to_string(),
                        })
                    }
                    Err(e) => Err(io_err(p, e)),
                }
            }
            Source::Memory { path, files } => files
                .get(name)
                .map(|b| Cow::Borrowed(b.as_slice()))
                .ok_or_else(|| SogError::MissingFile {
                    path: path.clone(),
                    name: name.to_string(),
                }),
        }
    }

    fn image(&self, name: &str) -> Result<(PathBuf, Rgba), SogError> {
        let bytes = self.get(name)?;
        let label = self.label(name);
        let img = webp::decode(&label, &bytes)?;
        Ok((label, img))
    }
}

/// Reads a SOG: a `.sog` bundle, a folder holding meta.json, or the meta.json itself.
pub fn read_sog(path: impl AsRef<Path>) -> Result<Gaussians, SogError> {
    let (source, meta) = open(path.as_ref())?;
    decode(&source, &meta)
}

/// Reads only the meta.json of a SOG (any of the forms [`read_sog`] accepts).
pub fn read_sog_meta(path: impl AsRef<Path>) -> Result<Meta, SogError> {
    open(path.as_ref()).map(|(_, m)| m)
}

fn open(path: &Path) -> Result<(Source, Meta), SogError> {
    let md = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    let (dir, meta_path) = if md.is_dir() {
        (path.to_path_buf(), path.join("meta.json"))
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        (
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
            path.to_path_buf(),
        )
    } else {
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        if !bundle::looks_like_zip(&bytes) {
            return Err(SogError::BadBundle {
                path: path.to_path_buf(),
                reason: "not a ZIP archive (nor a folder or meta.json)".into(),
            });
        }
        let files = bundle::unzip(path, &bytes)?;
        let meta_bytes = files.get("meta.json").ok_or_else(|| SogError::NoMeta {
            path: path.to_path_buf(),
        })?;
        let meta = parse_meta(&path.join("meta.json"), meta_bytes)?;
        return Ok((
            Source::Memory {
                path: path.to_path_buf(),
                files,
            },
            meta,
        ));
    };
    let bytes = std::fs::read(&meta_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if md.is_dir() => SogError::NoMeta {
            path: path.to_path_buf(),
        },
        _ => io_err(&meta_path, e),
    })?;
    let meta = parse_meta(&meta_path, &bytes)?;
    Ok((Source::Dir(dir), meta))
}

/// Decodes files held in memory (e.g. [`crate::SogFiles::entries`]); `label` names them in errors.
pub fn decode_entries(label: &Path, entries: &[(String, Vec<u8>)]) -> Result<Gaussians, SogError> {
    let files: HashMap<String, Vec<u8>> = entries.iter().cloned().collect();
    let meta_bytes = files.get("meta.json").ok_or_else(|| SogError::NoMeta {
        path: label.to_path_buf(),
    })?;
    let meta = parse_meta(&label.join("meta.json"), meta_bytes)?;
    decode(
        &Source::Memory {
            path: label.to_path_buf(),
            files,
        },
        &meta,
    )
}

pub(crate) fn decode(src: &Source, meta: &Meta) -> Result<Gaussians, SogError> {
    match meta {
        Meta::V2(m) => decode_v2(src, m),
        Meta::V1(m) => decode_v1(src, m),
    }
}

fn file<'a>(src: &Source, files: &'a [String], i: usize, what: &str) -> Result<&'a str, SogError> {
    files
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| SogError::BadMeta {
            path: src.label("meta.json"),
            reason: format!("`{what}.files` needs at least {} entries", i + 1),
        })
}

/// Decodes a per-Gaussian image and checks it holds `count` texels.
fn per_splat(src: &Source, name: &str, count: usize) -> Result<(PathBuf, Rgba), SogError> {
    let (p, img) = src.image(name)?;
    if img.width * img.height < count {
        return Err(SogError::Mismatch {
            path: p,
            reason: format!(
                "{}x{} texels cannot hold the {count} Gaussians meta.json declares",
                img.width, img.height
            ),
        });
    }
    Ok((p, img))
}

fn check_codebook(src: &Source, cb: &[f32], what: &str) -> Result<(), SogError> {
    if cb.is_empty() || cb.len() > 256 || cb.iter().any(|v| !v.is_finite()) {
        return Err(SogError::BadMeta {
            path: src.label("meta.json"),
            reason: format!(
                "`{what}.codebook` must hold 1..=256 finite values (has {})",
                cb.len()
            ),
        });
    }
    Ok(())
}

fn cb_get(cb: &[f32], b: u8, path: &Path, what: &str, i: usize) -> Result<f32, SogError> {
    cb.get(b as usize)
        .copied()
        .ok_or_else(|| SogError::Mismatch {
            path: path.to_path_buf(),
            reason: format!(
                "Gaussian {i}: index {b} beyond the {}-entry {what} codebook",
                cb.len()
            ),
        })
}

fn check_range(src: &Source, mins: &[f64], maxs: &[f64], what: &str) -> Result<(), SogError> {
    if mins.iter().chain(maxs).any(|v| !v.is_finite()) {
        return Err(SogError::BadMeta {
            path: src.label("meta.json"),
            reason: format!("`{what}` mins/maxs must be finite"),
        });
    }
    Ok(())
}

/// Opacity logit from an 8-bit opacity, clamped like splat-transform so 0 and 255 stay finite.
fn opacity_logit(a: u8) -> f32 {
    logit((a as f64 / 255.0).clamp(1e-6, 1.0 - 1e-6)) as f32
}

fn decode_means(
    src: &Source,
    files: &[String],
    count: usize,
    mins: &[f64],
    maxs: &[f64],
    out: &mut Vec<[f32; 3]>,
) -> Result<(), SogError> {
    check_range(src, mins, maxs, "means")?;
    let (_, lo) = per_splat(src, file(src, files, 0, "means")?, count)?;
    let (_, hi) = per_splat(src, file(src, files, 1, "means")?, count)?;
    out.extend((0..count).map(|i| {
        let (l, u) = (lo.texel(i), hi.texel(i));
        [0, 1, 2].map(|a| {
            inv_log_transform(dequantize_range(
                l[a] as u32 | (u[a] as u32) << 8,
                mins[a],
                maxs[a],
                65535,
            )) as f32
        })
    }));
    Ok(())
}

fn decode_quats(
    src: &Source,
    files: &[String],
    count: usize,
    out: &mut Vec<[f32; 4]>,
) -> Result<(), SogError> {
    let (p, q) = per_splat(src, file(src, files, 0, "quats")?, count)?;
    for i in 0..count {
        let t = q.texel(i);
        let v = unpack_quat(t).ok_or_else(|| SogError::Mismatch {
            path: p.clone(),
            reason: format!("Gaussian {i}: quaternion tag {} is not 252..=255", t[3]),
        })?;
        out.push(v);
    }
    Ok(())
}

fn decode_v2(src: &Source, m: &MetaV2) -> Result<Gaussians, SogError> {
    let n = m.count;
    let bands = m.shN.as_ref().map_or(0, |s| s.bands);
    if bands > 3 {
        return Err(SogError::BadMeta {
            path: src.label("meta.json"),
            reason: format!("`shN.bands` is {bands} (1..=3)"),
        });
    }
    let mut g = Gaussians::empty(bands);
    decode_means(
        src,
        &m.means.files,
        n,
        &m.means.mins,
        &m.means.maxs,
        &mut g.means,
    )?;
    decode_quats(src, &m.quats.files, n, &mut g.quats)?;
    check_codebook(src, &m.scales.codebook, "scales")?;
    check_codebook(src, &m.sh0.codebook, "sh0")?;
    let (sp, s) = per_splat(src, file(src, &m.scales.files, 0, "scales")?, n)?;
    for i in 0..n {
        let t = s.texel(i);
        let mut l = [0f32; 3];
        for a in 0..3 {
            l[a] = cb_get(&m.scales.codebook, t[a], &sp, "scales", i)?;
        }
        g.log_scales.push(l);
    }
    let (cp, c) = per_splat(src, file(src, &m.sh0.files, 0, "sh0")?, n)?;
    let coeffs = sh_coeffs_for_degree(bands);
    g.sh = vec![0.0; n * coeffs * 3];
    for i in 0..n {
        let t = c.texel(i);
        for a in 0..3 {
            g.sh[i * coeffs * 3 + a] = cb_get(&m.sh0.codebook, t[a], &cp, "sh0", i)?;
        }
        g.opacity_logits.push(opacity_logit(t[3]));
    }
    if let Some(shn) = &m.shN {
        if bands > 0 {
            check_codebook(src, &shn.codebook, "shN")?;
            let k = coeffs - 1;
            let (cenp, cen) = src.image(file(src, &shn.files, 0, "shN")?)?;
            if cen.width != 64 * k {
                return Err(SogError::Mismatch {
                    path: cenp,
                    reason: format!(
                        "centroid image is {} wide; {bands} bands need {}",
                        cen.width,
                        64 * k
                    ),
                });
            }
            if shn.count > 64 * cen.height || shn.count > 65536 {
                return Err(SogError::Mismatch {
                    path: cenp,
                    reason: format!(
                        "{} rows cannot hold the {} palette entries meta.json declares",
                        cen.height, shn.count
                    ),
                });
            }
            let (lp, lab) = per_splat(src, file(src, &shn.files, 1, "shN")?, n)?;
            for i in 0..n {
                let t = lab.texel(i);
                let label = t[0] as usize | (t[1] as usize) << 8;
                if label >= shn.count {
                    return Err(SogError::Mismatch {
                        path: lp,
                        reason: format!(
                            "Gaussian {i}: SH label {label} beyond the {}-entry palette",
                            shn.count
                        ),
                    });
                }
                let (x0, y) = ((label % 64) * k, label / 64);
                for j in 0..k {
                    let px = cen.texel(y * cen.width + x0 + j);
                    for ch in 0..3 {
                        g.sh[(i * coeffs + 1 + j) * 3 + ch] =
                            cb_get(&shn.codebook, px[ch], &cenp, "shN", i)?;
                    }
                }
            }
        }
    }
    Ok(g)
}

fn decode_v1(src: &Source, m: &MetaV1) -> Result<Gaussians, SogError> {
    let n = m.count;
    let lerp = |b: u8, lo: f64, hi: f64| (lo + (hi - lo) * (b as f64 / 255.0)) as f32;
    let cen_and_bands = match &m.sh_n {
        Some(shn) => {
            let (cenp, cen) = src.image(file(src, &shn.files, 0, "shN")?)?;
            let bands = match cen.width {
                192 => 1,
                512 => 2,
                960 => 3,
                w => {
                    return Err(SogError::Mismatch {
                        path: cenp,
                        reason: format!("centroid image is {w} wide; expected 192, 512 or 960"),
                    })
                }
            };
            Some((cenp, cen, bands))
        }
        None => None,
    };
    let bands = cen_and_bands.as_ref().map_or(0, |c| c.2);
    let mut g = Gaussians::empty(bands);
    decode_means(
        src,
        &m.means.files,
        n,
        &m.means.mins,
        &m.means.maxs,
        &mut g.means,
    )?;
    decode_quats(src, &m.quats, n, &mut g.quats)?;
    check_range(src, &m.scales.mins, &m.scales.maxs, "scales")?;
    check_range(src, &m.sh0.mins, &m.sh0.maxs, "sh0")?;
    let (_, s) = per_splat(src, file(src, &m.scales.files, 0, "scales")?, n)?;
    g.log_scales.extend((0..n).map(|i| {
        let t = s.texel(i);
        [0, 1, 2].map(|a| lerp(t[a], m.scales.mins[a], m.scales.maxs[a]))
    }));
    let (_, c) = per_splat(src, file(src, &m.sh0.files, 0, "sh0")?, n)?;
    let coeffs = sh_coeffs_for_degree(bands);
    g.sh = vec![0.0; n * coeffs * 3];
    for i in 0..n {
        let t = c.texel(i);
        for a in 0..3 {
            g.sh[i * coeffs * 3 + a] = lerp(t[a], m.sh0.mins[a], m.sh0.maxs[a]);
        }
        g.opacity_logits
            .push(lerp(t[3], m.sh0.mins[3], m.sh0.maxs[3]));
    }
    if let (Some(shn), Some((cenp, cen, _))) = (&m.sh_n, cen_and_bands) {
        check_range(src, &shn.mins, &shn.maxs, "shN")?;
        let k = coeffs - 1;
        let palette = 64 * cen.height;
        let (lp, lab) = per_splat(src, file(src, &shn.files, 1, "shN")?, n)?;
        for i in 0..n {
            let t = lab.texel(i);
            let label = t[0] as usize | (t[1] as usize) << 8;
            if label >= palette {
                return Err(SogError::Mismatch {
                    path: lp,
                    reason: format!(
                        "Gaussian {i}: SH label {label} beyond the {palette}-entry palette in {}",
                        cenp.display()
                    ),
                });
            }
            let (x0, y) = ((label % 64) * k, label / 64);
            for j in 0..k {
                let px = cen.texel(y * cen.width + x0 + j);
                for ch in 0..3 {
                    g.sh[(i * coeffs + 1 + j) * 3 + ch] = lerp(px[ch], shn.mins[0], shn.maxs[0]);
                }
            }
        }
    }
    Ok(g)
}
