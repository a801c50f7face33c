//! meta.json of SOG version 2 (written and read) and version 1 (read only).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SogError;

/// `asset` block: informative only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    /// The tool that wrote the file.
    pub generator: String,
}

/// Positions: per-axis range of the log-transformed means and the two 16-bit planes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeansMeta {
    /// Per-axis minimum of sign(v)·ln(1+|v|).
    pub mins: [f64; 3],
    /// Per-axis maximum of sign(v)·ln(1+|v|).
    pub maxs: [f64; 3],
    /// Low-byte image, then high-byte image.
    pub files: Vec<String>,
}

/// An attribute stored as indices into a 256-entry codebook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodebookMeta {
    /// 256 ascending values.
    pub codebook: Vec<f32>,
    /// The index image.
    pub files: Vec<String>,
}

/// An attribute stored in images only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilesMeta {
    /// The image(s).
    pub files: Vec<String>,
}

/// Higher SH bands: palette of centroids (codebook indices) and per-Gaussian 16-bit labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShNMeta {
    /// Number of palette entries.
    pub count: usize,
    /// SH bands above DC (1..=3).
    pub bands: usize,
    /// 256 ascending values shared by all coefficients.
    pub codebook: Vec<f32>,
    /// Centroid image, then label image.
    pub files: Vec<String>,
}

/// SOG version 2 meta.json, fields in the order splat-transform writes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct MetaV2 {
    /// Always 2.
    pub version: u32,
    /// Writer information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset: Option<Asset>,
    /// Number of Gaussians.
    pub count: usize,
    /// Positions.
    pub means: MeansMeta,
    /// Log scales.
    pub scales: CodebookMeta,
    /// Rotations.
    pub quats: FilesMeta,
    /// DC colour (RGB) and opacity (alpha).
    pub sh0: CodebookMeta,
    /// Higher SH bands, when kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shN: Option<ShNMeta>,
}

/// Per-channel linear range of a SOG v1 attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeMeta {
    /// Per-channel minimum.
    pub mins: Vec<f64>,
    /// Per-channel maximum.
    pub maxs: Vec<f64>,
    /// The image(s).
    pub files: Vec<String>,
}

/// SOG version 1 meta.json (python `sogs`), the fields readers use.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaV1 {
    /// Number of Gaussians (`means.shape[0]`).
    pub count: usize,
    /// Log-transformed positions, 16 bit.
    pub means: RangeMeta,
    /// Log scales per axis.
    pub scales: RangeMeta,
    /// Packed quaternions.
    pub quats: Vec<String>,
    /// DC colour and opacity logit.
    pub sh0: RangeMeta,
    /// Higher bands: one scalar range, centroid and label images.
    pub sh_n: Option<RangeMeta>,
}

/// A parsed meta.json of either version.
#[derive(Clone, Debug, PartialEq)]
pub enum Meta {
    /// Legacy python sogs layout (no `version` key).
    V1(MetaV1),
    /// splat-transform layout.
    V2(MetaV2),
}

/// Parses meta.json text, dispatching on its `version` key; `path` names it in errors.
pub fn parse_meta(path: &Path, bytes: &[u8]) -> Result<Meta, SogError> {
    let bad = |reason: String| SogError::BadMeta {
        path: path.to_path_buf(),
        reason,
    };
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    if !v.is_object() {
        return Err(bad("top level is not an object".into()));
    }
    match v.get("version") {
        None => parse_v1(path, &v).map(Meta::V1),
        Some(Value::Number(n)) if n.as_f64() == Some(2.0) => {
            let mut v = v;
            patch_null_codebooks(&mut v);
            let m: MetaV2 = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
            Ok(Meta::V2(m))
        }
        Some(other) => Err(SogError::UnsupportedVersion {
            path: path.to_path_buf(),
            version: other.to_string(),
        }),
    }
}

/// Old writers serialised a −∞ codebook entry as `null`; replace it with a value far below the rest,
/// as the PlayCanvas engine does, so such files still load.
fn patch_null_codebooks(v: &mut Value) {
    for key in ["scales", "sh0", "shN"] {
        if let Some(Value::Array(cb)) = v.get_mut(key).and_then(|o| o.get_mut("codebook")) {
            let finite_min = cb
                .iter()
                .filter_map(Value::as_f64)
                .fold(f64::INFINITY, f64::min);
            let fill = if finite_min.is_finite() {
                finite_min - 20.0
            } else {
                0.0
            };
            for e in cb.iter_mut().filter(|e| e.is_null()) {
                *e = Value::from(fill);
            }
        }
    }
}

fn parse_v1(path: &Path, v: &Value) -> Result<MetaV1, SogError> {
    let bad = |reason: String| SogError::BadMeta {
        path: path.to_path_buf(),
        reason,
    };
    let obj = |key: &str| {
        v.get(key)
            .filter(|o| o.is_object())
            .ok_or_else(|| bad(format!("missing `{key}` object")))
    };
    let files = |o: &Value, key: &str| -> Result<Vec<String>, SogError> {
        let f = o
            .get("files")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("`{key}.files` missing")))?;
        f.iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("`{key}.files` holds a non-string")))
            })
            .collect()
    };
    let nums = |o: &Value, key: &str, field: &str, n: usize| -> Result<Vec<f64>, SogError> {
        let a = o
            .get(field)
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("`{key}.{field}` missing")))?;
        let out: Option<Vec<f64>> = a.iter().map(Value::as_f64).collect();
        let out = out.ok_or_else(|| bad(format!("`{key}.{field}` holds a non-number")))?;
        if out.len() != n {
            return Err(bad(format!(
                "`{key}.{field}` has {} values, expected {n}",
                out.len()
            )));
        }
        Ok(out)
    };
    let range = |key: &str, n: usize| -> Result<RangeMeta, SogError> {
        let o = obj(key)?;
        Ok(RangeMeta {
            mins: nums(o, key, "mins", n)?,
            maxs: nums(o, key, "maxs", n)?,
            files: files(o, key)?,
        })
    };
    let means = obj("means")?;
    let count = means
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("`means.shape[0]` (the Gaussian count) missing".into()))?
        as usize;
    let sh_n = match v.get("shN") {
        None | Some(Value::Null) => None,
        Some(o) => {
            let scalar = |field: &str| -> Result<f64, SogError> {
                match o.get(field) {
                    Some(Value::Number(n)) => n
                        .as_f64()
                        .ok_or_else(|| bad(format!("`shN.{field}` is not a number"))),
                    Some(Value::Array(a)) if a.len() == 1 => a[0]
                        .as_f64()
                        .ok_or_else(|| bad(format!("`shN.{field}` is not a number"))),
                    _ => Err(bad(format!("`shN.{field}` missing"))),
                }
            };
            Some(RangeMeta {
                mins: vec![scalar("mins")?],
                maxs: vec![scalar("maxs")?],
                files: files(o, "shN")?,
            })
        }
    };
    Ok(MetaV1 {
        count,
        means: range("means", 3)?,
        scales: range("scales", 3)?,
        quats: files(obj("quats")?, "quats")?,
        sh0: range("sh0", 4)?,
        sh_n,
    })
}
