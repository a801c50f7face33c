//! Scenes from NeRF (`transforms_{train,test,val}.json`) and nerfstudio (`transforms.json`)
//! files: OpenGL camera-to-world poses with a field of view or pixel intrinsics.

use std::path::{Path, PathBuf};

use glam::{DMat3, DQuat, DVec3};
use serde_json::{Map, Value};
use sfm_core::colmap::Distortion;

use super::{
    holdout_every, load_views, scene_name, LoadOptions, PartialIntrinsics, Scene, SceneError,
    ViewSource,
};

/// Extensions tried, in order, for frame paths written without one (NeRF's "./train/r_0").
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "PNG", "JPG", "JPEG"];

/// Loads a transforms scene from a directory (`transforms_train.json` with optional
/// `transforms_test.json` / `transforms_val.json`, else `transforms.json`) or from one JSON
/// file. Test views come from the test file (or, lacking one, the val file); a scene with
/// neither holds out every `test_every`-th view by sorted name.
pub fn load_transforms(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Scene, SceneError> {
    let path = path.as_ref();
    options.validate()?;
    let (dir, train_file, test_file) = if path.is_dir() {
        let split = path.join("transforms_train.json");
        if split.is_file() {
            let test = ["transforms_test.json", "transforms_val.json"]
                .into_iter()
                .map(|f| path.join(f))
                .find(|p| p.is_file());
            (path.to_path_buf(), split, test)
        } else if path.join("transforms.json").is_file() {
            (path.to_path_buf(), path.join("transforms.json"), None)
        } else {
            return Err(SceneError::UnknownLayout {
                path: path.to_path_buf(),
            });
        }
    } else {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let test = if path
            .file_name()
            .is_some_and(|n| n == "transforms_train.json")
        {
            ["transforms_test.json", "transforms_val.json"]
                .into_iter()
                .map(|f| dir.join(f))
                .find(|p| p.is_file())
        } else {
            None
        };
        (dir, path.to_path_buf(), test)
    };

    let base = match &options.images_dir {
        Some(d) => dir.join(d),
        None => dir.clone(),
    };
    let mut sources = parse_file(&train_file, &base)?;
    if sources.is_empty() {
        return Err(SceneError::NoImages { path: train_file });
    }
    match test_file {
        Some(test_file) => {
            let mut test = parse_file(&test_file, &base)?;
            test.iter_mut().for_each(|s| s.is_test = true);
            sources.extend(test);
        }
        None => holdout_every(&mut sources, options.test_every),
    }
    let (train, test) = load_views(sources, options)?;
    Ok(Scene {
        name: scene_name(&dir),
        train,
        test,
        points: None,
        background: options.background,
    })
}

/// Reads a JSON file, turning Python's bare `NaN` / `Infinity` tokens (which `json.dump`
/// writes, but JSON forbids) into strings so that they surface as non-finite values of a
/// named field rather than as a syntax error.
fn read_json(path: &Path) -> Result<Value, SceneError> {
    let bytes = std::fs::read(path).map_err(|source| SceneError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut text = Vec::with_capacity(bytes.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            in_string = escaped || b != b'"';
            escaped = !escaped && b == b'\\';
        } else if b == b'"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| bytes[i..].starts_with(t.as_bytes()))
        {
            text.push(b'"');
            text.extend_from_slice(token.as_bytes());
            text.push(b'"');
            i += token.len();
            continue;
        }
        text.push(b);
        i += 1;
    }
    serde_json::from_slice(&text).map_err(|source| SceneError::MalformedJson {
        path: path.to_path_buf(),
        source,
    })
}

/// Typed access to JSON fields with errors naming the file and field.
struct Fields<'a> {
    path: &'a Path,
}

impl Fields<'_> {
    fn invalid(&self, reason: String) -> SceneError {
        SceneError::InvalidTransforms {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn number(&self, v: &Value, what: &str) -> Result<f64, SceneError> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| self.invalid(format!("{what} is out of range"))),
            Value::String(s) if ["NaN", "Infinity", "-Infinity"].contains(&s.as_str()) => {
                Err(SceneError::NonFinite {
                    path: self.path.to_path_buf(),
                    what: what.to_string(),
                })
            }
            _ => Err(self.invalid(format!("{what} must be a number"))),
        }
    }

    /// A field from the frame, falling back to the file's top level (nerfstudio allows both).
    fn lookup<'v>(
        frame: &'v Map<String, Value>,
        top: &'v Map<String, Value>,
        key: &str,
    ) -> Option<&'v Value> {
        frame.get(key).or_else(|| top.get(key))
    }

    fn opt_number(
        &self,
        frame: &Map<String, Value>,
        top: &Map<String, Value>,
        key: &str,
        ctx: &str,
    ) -> Result<Option<f64>, SceneError> {
        Self::lookup(frame, top, key)
            .map(|v| self.number(v, &format!("{key} of {ctx}")))
            .transpose()
    }

    fn opt_size(
        &self,
        frame: &Map<String, Value>,
        top: &Map<String, Value>,
        key: &str,
        ctx: &str,
    ) -> Result<Option<u32>, SceneError> {
        match self.opt_number(frame, top, key, ctx)? {
            None => Ok(None),
            Some(v) if v >= 1.0 && v <= f64::from(u32::MAX) && v.fract() == 0.0 => {
                Ok(Some(v as u32))
            }
            Some(v) => Err(self.invalid(format!(
                "{key} of {ctx} must be a positive whole number, got {v}"
            ))),
        }
    }
}

/// Parses one transforms file into view sources (images not yet decoded).
fn parse_file(path: &Path, base: &Path) -> Result<Vec<ViewSource>, SceneError> {
    let root = read_json(path)?;
    let f = Fields { path };
    let top = root
        .as_object()
        .ok_or_else(|| f.invalid("top level must be an object".into()))?;
    let frames = top
        .get("frames")
        .and_then(Value::as_array)
        .ok_or_else(|| f.invalid("missing \"frames\" array".into()))?;
    let mut sources = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let frame = frame
            .as_object()
            .ok_or_else(|| f.invalid(format!("frame {i} must be an object")))?;
        let file_path = frame
            .get("file_path")
            .and_then(Value::as_str)
            .ok_or_else(|| f.invalid(format!("frame {i} has no \"file_path\" string")))?;
        let ctx = format!("frame {i} ({file_path})");
        let (rotation, translation) = parse_pose(&f, frame.get("transform_matrix"), &ctx)?;

        let model = Fields::lookup(frame, top, "camera_model")
            .and_then(Value::as_str)
            .unwrap_or("OPENCV");
        if !["OPENCV", "PINHOLE", "SIMPLE_PINHOLE"].contains(&model.to_ascii_uppercase().as_str()) {
            return Err(SceneError::UnsupportedModel {
                path: path.to_path_buf(),
                model: model.to_string(),
            });
        }
        let coeff = |key: &str| {
            f.opt_number(frame, top, key, &ctx)
                .map(|v| v.unwrap_or(0.0))
        };
        let (k1, k2, k3, k4, p1, p2) = (
            coeff("k1")?,
            coeff("k2")?,
            coeff("k3")?,
            coeff("k4")?,
            coeff("p1")?,
            coeff("p2")?,
        );
        if k3 != 0.0 || k4 != 0.0 {
            return Err(SceneError::UnsupportedModel {
                path: path.to_path_buf(),
                model: format!(
                    "{model} with k3/k4 distortion (only k1, k2, p1, p2 are undistorted)"
                ),
            });
        }
        let distortion = if [k1, k2, p1, p2] == [0.0; 4] {
            Distortion::None
        } else {
            Distortion::OpenCv { k1, k2, p1, p2 }
        };

        let intrinsics = PartialIntrinsics {
            width: f.opt_size(frame, top, "w", &ctx)?,
            height: f.opt_size(frame, top, "h", &ctx)?,
            fx: f.opt_number(frame, top, "fl_x", &ctx)?,
            fy: f.opt_number(frame, top, "fl_y", &ctx)?,
            cx: f.opt_number(frame, top, "cx", &ctx)?,
            cy: f.opt_number(frame, top, "cy", &ctx)?,
            fov_x: f.opt_number(frame, top, "camera_angle_x", &ctx)?,
            fov_y: f.opt_number(frame, top, "camera_angle_y", &ctx)?,
        };
        let (image_path, name) = resolve_image(base, file_path);
        sources.push(ViewSource {
            name,
            image_path,
            camera_file: path.to_path_buf(),
            intrinsics,
            distortion,
            rotation,
            translation,
            is_test: false,
        });
    }
    Ok(sources)
}

/// OpenGL camera-to-world (x right, y up, looking down -z) to OpenCV world-to-camera.
fn parse_pose(f: &Fields, value: Option<&Value>, ctx: &str) -> Result<(DMat3, DVec3), SceneError> {
    let rows = value
        .and_then(Value::as_array)
        .ok_or_else(|| f.invalid(format!("{ctx} has no \"transform_matrix\" array")))?;
    if rows.len() != 3 && rows.len() != 4 {
        return Err(f.invalid(format!(
            "transform_matrix of {ctx} must have 3 or 4 rows, has {}",
            rows.len()
        )));
    }
    let mut m = [[0.0f64; 4]; 3];
    for (r, row) in rows.iter().take(3).enumerate() {
        let row = row.as_array().filter(|a| a.len() == 4).ok_or_else(|| {
            f.invalid(format!(
                "transform_matrix row {r} of {ctx} must have 4 numbers"
            ))
        })?;
        for (c, v) in row.iter().enumerate() {
            m[r][c] = f.number(v, &format!("transform_matrix of {ctx}"))?;
        }
    }
    let col = |c: usize| DVec3::new(m[0][c], m[1][c], m[2][c]);
    // OpenCV's y and z axes are OpenGL's flipped.
    let c2w = DMat3::from_cols(col(0), -col(1), -col(2));
    let centre = col(3);
    let gram = c2w.transpose() * c2w;
    let off_identity = (gram - DMat3::IDENTITY)
        .to_cols_array()
        .iter()
        .fold(0.0f64, |a, v| a.max(v.abs()));
    if off_identity > 1e-3 || c2w.determinant() <= 0.0 {
        return Err(f.invalid(format!("transform_matrix of {ctx} does not hold a rotation (orthonormality error {off_identity:.2e})")));
    }
    // Poses stored as f32 are slightly off orthonormal; snapping keeps R^T an exact inverse.
    let c2w = DMat3::from_quat(DQuat::from_mat3(&c2w).normalize());
    let rotation = c2w.transpose();
    Ok((rotation, -(rotation * centre)))
}

/// The image file for a frame path and the view's name (the path relative to `base`,
/// without a leading "./"); a path without an existing file gets the usual extensions tried.
fn resolve_image(base: &Path, file_path: &str) -> (PathBuf, String) {
    let clean = file_path.trim_start_matches("./");
    let direct = base.join(clean);
    if direct.is_file() {
        return (direct, clean.to_string());
    }
    for ext in IMAGE_EXTENSIONS {
        let candidate = base.join(format!("{clean}.{ext}"));
        if candidate.is_file() {
            return (candidate, format!("{clean}.{ext}"));
        }
    }
    // Not found: loading reports it as a missing image under the name the scene gave.
    (direct, clean.to_string())
}
