//! Training scenes: posed images loaded from a COLMAP model or NeRF / nerfstudio
//! `transforms*.json`, undistorted to pinhole, optionally downscaled, split into train and
//! test views.

mod colmap;
mod image;
mod transforms;

use std::path::{Path, PathBuf};

use glam::{DMat3, DVec3};
use rayon::prelude::*;
use sfm_core::colmap::{ColmapError, Distortion, Intrinsics};

use crate::Camera;

pub use self::colmap::load_colmap;
pub use self::image::{load_image, save_png, Image};
pub use self::transforms::load_transforms;

/// Errors from loading a scene; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// The scene path does not exist.
    #[error("scene not found: {}", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path is neither a COLMAP scene nor a transforms file or directory.
    #[error("{} is not a scene: expected sparse/0 (or sparse/) with a COLMAP model, transforms_train.json or transforms.json", path.display())]
    UnknownLayout {
        /// The path given.
        path: PathBuf,
    },
    /// An I/O failure other than a missing file.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An image named by the scene does not exist.
    #[error("missing image {}", path.display())]
    MissingImage {
        /// The image path (as named by the scene, without a guessed extension).
        path: PathBuf,
    },
    /// An image file that cannot be decoded (or encoded, for [`save_png`]).
    #[error("unreadable or corrupt image {}: {source}", path.display())]
    CorruptImage {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        source: ::image::ImageError,
    },
    /// An image file that ends before its image data does.
    #[error("truncated {format} image {} ({reason})", path.display())]
    TruncatedImage {
        /// The image file.
        path: PathBuf,
        /// Its format.
        format: &'static str,
        /// What is missing.
        reason: &'static str,
    },
    /// An image whose size differs from its camera's (checked before any downscaling).
    #[error("image {} is {}x{} but its camera says {}x{}", path.display(), image.0, image.1, camera.0, camera.1)]
    SizeMismatch {
        /// The image file.
        path: PathBuf,
        /// The decoded size.
        image: (u32, u32),
        /// The camera's size.
        camera: (u32, u32),
    },
    /// A COLMAP model that cannot be read (truncated, malformed, unsupported model...).
    #[error(transparent)]
    Colmap(#[from] ColmapError),
    /// A transforms file that is not valid JSON (including a truncated one).
    #[error("malformed JSON in {}: {source}", path.display())]
    MalformedJson {
        /// The JSON file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: serde_json::Error,
    },
    /// Valid JSON that is not a usable transforms file.
    #[error("{}: {reason}", path.display())]
    InvalidTransforms {
        /// The JSON file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A NaN or infinite pose or intrinsic.
    #[error("{}: non-finite value in {what}", path.display())]
    NonFinite {
        /// The file holding the value.
        path: PathBuf,
        /// Which value.
        what: String,
    },
    /// A camera or lens model the loader cannot undistort.
    #[error("{}: unsupported camera model {model}", path.display())]
    UnsupportedModel {
        /// The file naming the model.
        path: PathBuf,
        /// The model.
        model: String,
    },
    /// Intrinsics or a pose that cannot describe a camera (zero focal length, zero quaternion...).
    #[error("{}: invalid camera for {view}: {reason}", path.display())]
    InvalidCamera {
        /// The file defining the camera.
        path: PathBuf,
        /// The view.
        view: String,
        /// What is wrong.
        reason: String,
    },
    /// A scene with no images.
    #[error("{}: the scene has no images", path.display())]
    NoImages {
        /// The scene file or directory.
        path: PathBuf,
    },
    /// Load options that make no sense (e.g. a downscale factor below 1).
    #[error("invalid load options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// An in-memory image whose buffer does not match its size.
    #[error("cannot write {}: {reason}", path.display())]
    InvalidImage {
        /// The destination.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// How to shrink images at load time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Downscale {
    /// Keep full resolution.
    #[default]
    None,
    /// Divide both sides by this factor (at least 1), rounding to whole pixels.
    Factor(f64),
    /// Shrink so that the longer side is at most this many pixels; never enlarges.
    MaxSide(u32),
}

impl Downscale {
    fn validate(self) -> Result<(), SceneError> {
        match self {
            Downscale::Factor(f) if !(f.is_finite() && f >= 1.0) => {
                Err(SceneError::InvalidOptions {
                    reason: format!("downscale factor must be at least 1, got {f}"),
                })
            }
            Downscale::MaxSide(0) => Err(SceneError::InvalidOptions {
                reason: "maximum side must be positive".into(),
            }),
            _ => Ok(()),
        }
    }

    /// The size an image of `width` x `height` is loaded at.
    pub fn target_size(self, width: u32, height: u32) -> (u32, u32) {
        let shrink = |side: u32, factor: f64| ((f64::from(side) / factor).round() as u32).max(1);
        match self {
            Downscale::None => (width, height),
            Downscale::Factor(f) if f.is_finite() && f > 1.0 => {
                (shrink(width, f), shrink(height, f))
            }
            Downscale::Factor(_) => (width, height),
            Downscale::MaxSide(n) => {
                let long = width.max(height);
                if long <= n || n == 0 {
                    (width, height)
                } else {
                    let f = f64::from(long) / f64::from(n);
                    if width >= height {
                        (n, shrink(height, f))
                    } else {
                        (shrink(width, f), n)
                    }
                }
            }
        }
    }
}

/// Options for [`load_scene`].
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Downscaling applied after undistortion.
    pub downscale: Downscale,
    /// Colour that transparent pixels are composited over, also kept as the scene's background.
    pub background: [f32; 3],
    /// Image directory: for COLMAP instead of `<scene>/images`, for transforms instead of the
    /// JSON file's directory as the base of frame paths; relative paths are taken from the scene.
    pub images_dir: Option<PathBuf>,
    /// Without a test file, every `test_every`-th view by sorted name (starting with the
    /// first) is a test view; 0 puts every view in training.
    pub test_every: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            downscale: Downscale::None,
            background: [0.0; 3],
            images_dir: None,
            test_every: 8,
        }
    }
}

impl LoadOptions {
    fn validate(&self) -> Result<(), SceneError> {
        self.downscale.validate()?;
        if self.background.iter().any(|c| !c.is_finite()) {
            return Err(SceneError::InvalidOptions {
                reason: "background colour must be finite".into(),
            });
        }
        Ok(())
    }
}

/// One posed image.
#[derive(Clone, Debug)]
pub struct View {
    /// Image name (path relative to the image directory).
    pub name: String,
    /// Pinhole camera matching `image`'s size.
    pub camera: Camera,
    /// The undistorted, possibly downscaled image.
    pub image: Image,
}

/// SfM point positions and their colours, index for index.
pub type ScenePoints = (Vec<[f32; 3]>, Vec<[u8; 3]>);

/// A loaded scene.
#[derive(Clone, Debug)]
pub struct Scene {
    /// Scene name (the directory name).
    pub name: String,
    /// Training views.
    pub train: Vec<View>,
    /// Held-out test views.
    pub test: Vec<View>,
    /// SfM points and their colours, when the scene came from COLMAP.
    pub points: Option<ScenePoints>,
    /// Background colour used for compositing transparent images.
    pub background: [f32; 3],
}

/// Loads a scene, detecting its kind: a COLMAP scene directory (`sparse/0` or `sparse/`),
/// a NeRF directory (`transforms_train.json`), a nerfstudio directory (`transforms.json`),
/// or a transforms JSON file.
pub fn load_scene(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Scene, SceneError> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(SceneError::NotFound {
            path: path.to_path_buf(),
        });
    }
    if path.is_file() {
        return if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            load_transforms(path, options)
        } else {
            Err(SceneError::UnknownLayout {
                path: path.to_path_buf(),
            })
        };
    }
    if path.join("transforms_train.json").is_file() || path.join("transforms.json").is_file() {
        return load_transforms(path, options);
    }
    if colmap::model_dir(path).is_some() {
        return load_colmap(path, options);
    }
    Err(SceneError::UnknownLayout {
        path: path.to_path_buf(),
    })
}

/// The scene's name: its directory's name.
fn scene_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Camera intrinsics as far as the scene states them; the rest follows from the image size.
#[derive(Clone, Copy, Debug, Default)]
struct PartialIntrinsics {
    width: Option<u32>,
    height: Option<u32>,
    fx: Option<f64>,
    fy: Option<f64>,
    cx: Option<f64>,
    cy: Option<f64>,
    fov_x: Option<f64>,
    fov_y: Option<f64>,
}

/// Everything needed to load one view, gathered before any image is decoded.
struct ViewSource {
    name: String,
    image_path: PathBuf,
    /// The file defining this view's camera, for error messages.
    camera_file: PathBuf,
    intrinsics: PartialIntrinsics,
    distortion: Distortion,
    rotation: DMat3,
    translation: DVec3,
    is_test: bool,
}

impl ViewSource {
    fn invalid(&self, reason: impl Into<String>) -> SceneError {
        SceneError::InvalidCamera {
            path: self.camera_file.clone(),
            view: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn resolve_intrinsics(&self, width: u32, height: u32) -> Result<Intrinsics, SceneError> {
        let p = &self.intrinsics;
        let stated = (p.width.unwrap_or(width), p.height.unwrap_or(height));
        if stated != (width, height) {
            return Err(SceneError::SizeMismatch {
                path: self.image_path.clone(),
                image: (width, height),
                camera: stated,
            });
        }
        let from_fov = |fov: f64, side: u32| 0.5 * f64::from(side) / (0.5 * fov).tan();
        let fx =
            p.fx.or_else(|| p.fov_x.map(|a| from_fov(a, width)))
                .or_else(|| p.fov_y.map(|a| from_fov(a, height)));
        let fx = fx.ok_or_else(|| self.invalid("no focal length (fl_x or camera_angle_x)"))?;
        let fy =
            p.fy.or_else(|| p.fov_y.map(|a| from_fov(a, height)))
                .unwrap_or(fx);
        let k = Intrinsics {
            fx,
            fy,
            cx: p.cx.unwrap_or(f64::from(width) / 2.0),
            cy: p.cy.unwrap_or(f64::from(height) / 2.0),
        };
        if !(k.fx.is_finite() && k.fy.is_finite() && k.cx.is_finite() && k.cy.is_finite()) {
            return Err(SceneError::NonFinite {
                path: self.camera_file.clone(),
                what: format!("intrinsics of {}", self.name),
            });
        }
        if k.fx <= 0.0 || k.fy <= 0.0 {
            return Err(self.invalid(format!(
                "focal lengths must be positive, got fx={} fy={}",
                k.fx, k.fy
            )));
        }
        Ok(k)
    }

    fn load(&self, options: &LoadOptions) -> Result<View, SceneError> {
        let mut image = load_image(&self.image_path, options.background)?;
        let stated = (self.intrinsics.width, self.intrinsics.height);
        if stated == (Some(image.height), Some(image.width)) && image.width != image.height {
            // The camera was made on the pixels as stored, not upright (COLMAP ignores EXIF
            // orientation): use them as stored so that pixels and camera agree.
            image = self::image::load_image_oriented(&self.image_path, options.background, false)?;
        }
        let (full_w, full_h) = (image.width, image.height);
        let k = self.resolve_intrinsics(full_w, full_h)?;
        // Both steps allocate a new image, so they are skipped when they would copy it.
        if !self.distortion.is_none() {
            image = image.undistorted(k, self.distortion);
        }
        let (w, h) = options.downscale.target_size(full_w, full_h);
        if (w, h) != (full_w, full_h) {
            image = image.resize_area(w, h);
        }
        let camera = Camera::new(
            full_w,
            full_h,
            k.fx,
            k.fy,
            k.cx,
            k.cy,
            self.rotation,
            self.translation,
        )
        .scaled_to(w, h);
        Ok(View {
            name: self.name.clone(),
            camera,
            image,
        })
    }
}

/// Decodes every view in parallel and splits them into (train, test), keeping source order.
/// The first failing view in source order is reported, so errors do not depend on timing.
fn load_views(
    sources: Vec<ViewSource>,
    options: &LoadOptions,
) -> Result<(Vec<View>, Vec<View>), SceneError> {
    let results: Vec<Result<View, SceneError>> =
        sources.par_iter().map(|s| s.load(options)).collect();
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (source, result) in sources.iter().zip(results) {
        let view = result?;
        if source.is_test {
            test.push(view);
        } else {
            train.push(view);
        }
    }
    Ok((train, test))
}

/// Sorts views by name and marks every `every`-th one (0, every, 2*every...) as a test view.
fn holdout_every(sources: &mut [ViewSource], every: usize) {
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    for (i, s) in sources.iter_mut().enumerate() {
        s.is_test = every > 0 && i % every == 0;
    }
}
