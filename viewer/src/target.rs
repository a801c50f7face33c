//! What `spaceport view PATH` serves: the model (a `.sog` bundle, a SOG folder or a PLY), the
//! folder its files come from, the training cameras of a run folder, and any problem the
//! server-side check found.

use std::path::{Path, PathBuf};

use crate::ViewError;

/// How the page must read the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// A `.sog` ZIP bundle (SOG v2 meta.json + WebP images inside).
    SogBundle,
    /// A SOG folder: `meta.json` beside its WebP images.
    SogFolder,
    /// A 3DGS PLY.
    Ply,
}

impl ModelKind {
    fn as_str(self) -> &'static str {
        match self {
            ModelKind::SogBundle => "sog",
            ModelKind::SogFolder => "sog-folder",
            ModelKind::Ply => "ply",
        }
    }
}

/// A training camera of a run folder, for drawing its frustum and jumping to it.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraInfo {
    /// Image file name.
    pub name: String,
    /// The pinhole camera (world-to-camera pose, intrinsics in pixels).
    pub camera: splat_core::Camera,
    /// Path of its photo relative to the served folder, when the photo is there.
    pub image: Option<String>,
}

/// Everything the server needs to know about PATH.
#[derive(Clone, Debug)]
pub struct Target {
    /// Folder the files are served from.
    pub root: PathBuf,
    /// When PATH is a single file, the only relative path that may be served; `None` serves any
    /// file under `root`.
    pub only: Option<PathBuf>,
    /// Path of the model relative to `root` (for a SOG folder, its `meta.json`).
    pub model: PathBuf,
    /// The model's format.
    pub kind: ModelKind,
    /// Training cameras (run folders with `sparse/0`).
    pub cameras: Vec<CameraInfo>,
    /// What the server-side check found wrong with the model, naming the file.
    pub problem: Option<String>,
    /// Number of Gaussians, when the check read the model.
    pub gaussians: Option<usize>,
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

impl Target {
    /// Inspects PATH: a `.sog`, a `.ply`, a SOG folder or meta.json, or a run output folder
    /// (serving `scene.sog`, else `point_cloud.ply`, and the cameras of `sparse/0`).
    pub fn open(path: &Path) -> Result<Target, ViewError> {
        let md = std::fs::metadata(path).map_err(|e| ViewError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut t = if md.is_dir() {
            Self::open_dir(path)?
        } else {
            let root = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = PathBuf::from(path.file_name().unwrap_or_default());
            let kind = if has_ext(path, "ply") {
                ModelKind::Ply
            } else if has_ext(path, "sog") || has_ext(path, "zip") {
                ModelKind::SogBundle
            } else if has_ext(path, "json") {
                ModelKind::SogFolder
            } else {
                return Err(ViewError::Unsupported {
                    path: path.to_path_buf(),
                    reason: "expected a .sog, a .ply, a SOG folder (meta.json) or a run folder"
                        .into(),
                });
            };
            let only = (kind != ModelKind::SogFolder).then(|| name.clone());
            Target {
                root,
                only,
                model: name,
                kind,
                cameras: vec![],
                problem: None,
                gaussians: None,
            }
        };
        t.check();
        Ok(t)
    }

    fn open_dir(dir: &Path) -> Result<Target, ViewError> {
        let base = Target {
            root: dir.to_path_buf(),
            only: None,
            model: PathBuf::new(),
            kind: ModelKind::SogFolder,
            cameras: vec![],
            problem: None,
            gaussians: None,
        };
        if dir.join("meta.json").is_file() {
            return Ok(Target {
                model: "meta.json".into(),
                ..base
            });
        }
        let (model, kind) = if dir.join("scene.sog").is_file() {
            ("scene.sog", ModelKind::SogBundle)
        } else if dir.join("point_cloud.ply").is_file() {
            ("point_cloud.ply", ModelKind::Ply)
        } else {
            return Err(ViewError::Unsupported {
                path: dir.to_path_buf(),
                reason: "folder holds neither meta.json, scene.sog nor point_cloud.ply".into(),
            });
        };
        let cameras = read_cameras(dir);
        Ok(Target {
            model: model.into(),
            kind,
            cameras,
            ..base
        })
    }

    /// The target of a live training view: no files, only the given training cameras (the
    /// model comes from [`crate::LiveFeed`]).
    pub fn live(cameras: Vec<CameraInfo>) -> Target {
        Target {
            root: PathBuf::new(),
            only: Some(PathBuf::from("\0none")),
            model: PathBuf::new(),
            kind: ModelKind::Ply,
            cameras,
            problem: None,
            gaussians: None,
        }
    }

    /// The model's path on disk.
    pub fn model_path(&self) -> PathBuf {
        self.root.join(&self.model)
    }

    /// Reads the whole model with our own readers so that a broken file gets a precise
    /// message before the page tries it (the page checks again, for files that change).
    fn check(&mut self) {
        let path = self.model_path();
        let read = match self.kind {
            ModelKind::Ply => splat_core::ply::read_ply(&path).map_err(|e| e.to_string()),
            ModelKind::SogBundle | ModelKind::SogFolder => {
                sogs_codec::read_sog(&path).map_err(|e| e.to_string())
            }
        };
        match read {
            Ok(g) => {
                self.gaussians = Some(g.len());
                if let Some((count, first)) = g.non_finite() {
                    self.problem = Some(format!(
                        "{}: {count} non-finite values (NaN or infinity), the first in Gaussian {first}",
                        path.display()
                    ));
                } else if g.is_empty() {
                    self.problem = Some(format!("{}: holds no Gaussians", path.display()));
                }
            }
            Err(e) => self.problem = Some(e),
        }
    }

    /// The `/api/scene` answer: model URL and kind, problem, cameras.
    pub fn scene_json(&self) -> serde_json::Value {
        let model = self.model.to_string_lossy().replace('\\', "/");
        let cams = cameras_json(&self.cameras, |p| format!("/files/{}", url_encode_path(p)));
        serde_json::json!({
            "name": self.model_path().file_name().map(|n| n.to_string_lossy().into_owned()),
            "kind": self.kind.as_str(),
            "url": format!("/files/{}", url_encode_path(&model)),
            "problem": self.problem,
            "gaussians": self.gaussians,
            "cameras": cams,
        })
    }
}

/// The page's description of `cameras` (pose as row-major R and t, intrinsics in pixels);
/// `image_url` turns a camera's `image` into the URL the page fetches.
pub(crate) fn cameras_json(
    cameras: &[CameraInfo],
    image_url: impl Fn(&str) -> String,
) -> Vec<serde_json::Value> {
    cameras
        .iter()
        .map(|c| {
            let k = &c.camera;
            let r = k.rotation;
            let rows: Vec<f64> = (0..3)
                .flat_map(|i| (0..3).map(move |j| r.col(j)[i]))
                .collect();
            serde_json::json!({
                "name": c.name,
                "width": k.width, "height": k.height,
                "fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy,
                "R": rows,
                "t": k.translation.to_array(),
                "image": c.image.as_deref().map(&image_url),
            })
        })
        .collect()
}

/// Percent-encodes what a path segment may not hold, keeping `/` separators.
pub fn url_encode_path(p: &str) -> String {
    let mut s = String::new();
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Training cameras of `dir/sparse/0`, if it holds a COLMAP model; a broken or absent model
/// gives none (the splats can still be viewed).
fn read_cameras(dir: &Path) -> Vec<CameraInfo> {
    let sparse = dir.join("sparse").join("0");
    let Ok(rec) = sfm_core::colmap::read(&sparse) else {
        return vec![];
    };
    let mut out = Vec::new();
    for im in &rec.images {
        let Some(cam) = rec.camera(im.camera_id) else {
            continue;
        };
        let k = cam.intrinsics();
        let camera = splat_core::Camera::from_colmap_pose(
            cam.width as u32,
            cam.height as u32,
            k.fx,
            k.fy,
            k.cx,
            k.cy,
            im.qvec,
            im.tvec,
        );
        let rel = format!("images/{}", im.name);
        let image = dir.join(&rel).is_file().then_some(rel);
        out.push(CameraInfo {
            name: im.name.clone(),
            camera,
            image,
        });
    }
    out
}
