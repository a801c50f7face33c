//! COLMAP sparse models (cameras, images, points3D) in binary and text form.
//!
//! The layouts follow COLMAP's `doc/format.rst`. Records keep file order, so a binary model
//! converted to text and back is byte-identical, and so is text written here converted to
//! binary and back (text floats use the shortest representation that parses back exactly).

mod binary;
mod camera;
mod text;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub use binary::{read_binary, write_binary};
pub use camera::{Camera, CameraModel, Distortion, Intrinsics};
pub use text::{read_text, write_text};

/// Errors from reading, writing or validating a COLMAP model; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum ColmapError {
    /// A model file is absent.
    #[error("missing COLMAP model file {}", path.display())]
    MissingFile {
        /// The file that was expected.
        path: PathBuf,
    },
    /// A directory holds neither a binary nor a text model.
    #[error("no COLMAP model in {} (expected cameras, images and points3D as .bin or .txt)", dir.display())]
    ModelNotFound {
        /// The directory searched.
        dir: PathBuf,
    },
    /// An I/O failure other than a missing file.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A binary file ended before a record was complete.
    #[error("truncated file {}: it ends while reading {what}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The field and record being read.
        what: String,
    },
    /// A binary file has bytes after its last record.
    #[error("{}: {bytes} unexpected bytes after the last record", path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Number of extra bytes.
        bytes: usize,
    },
    /// A text line could not be parsed.
    #[error("{}:{line}: {reason}", path.display())]
    MalformedLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A NaN or infinite value where a finite number is required.
    #[error("{}: non-finite value in {what}", path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Which value (record and field, with the line number for text).
        what: String,
    },
    /// A camera model this crate does not handle.
    #[error("{}: unsupported camera model {model} (supported: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV)", path.display())]
    UnsupportedCameraModel {
        /// The file.
        path: PathBuf,
        /// The model's name or id as found in the file.
        model: String,
    },
    /// An image whose camera id has no camera.
    #[error("{}: image {image_id} refers to camera {camera_id}, which does not exist", path.display())]
    MissingCamera {
        /// The images file.
        path: PathBuf,
        /// The image.
        image_id: u32,
        /// The missing camera id.
        camera_id: u32,
    },
    /// A 3D point track entry that names a missing image or 2D point.
    #[error("{}: point {point3d_id} has a track entry (image {image_id}, point2D {point2d_idx}) that does not exist", path.display())]
    InvalidTrack {
        /// The points file.
        path: PathBuf,
        /// The 3D point.
        point3d_id: u64,
        /// The image id of the entry.
        image_id: u32,
        /// The 2D point index of the entry.
        point2d_idx: u32,
    },
    /// Two records of one kind share an id.
    #[error("{}: duplicate {kind} id {id}", path.display())]
    DuplicateId {
        /// The file.
        path: PathBuf,
        /// "camera", "image" or "point3D".
        kind: &'static str,
        /// The repeated id.
        id: u64,
    },
    /// An image name that the file format cannot hold.
    #[error("{}: image {image_id} has an unusable name: {reason}", path.display())]
    InvalidName {
        /// The images file.
        path: PathBuf,
        /// The image.
        image_id: u32,
        /// Why the name cannot be used.
        reason: String,
    },
    /// A camera built with the wrong number of parameters for its model.
    #[error("camera model {model} takes {expected} parameters, got {got}")]
    ParamCount {
        /// The model.
        model: CameraModel,
        /// Its parameter count.
        expected: usize,
        /// The count supplied.
        got: usize,
    },
}

/// One keypoint of an image, possibly the observation of a 3D point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point2D {
    /// Pixel position (COLMAP convention: the top-left pixel centre is (0.5, 0.5)).
    pub xy: [f64; 2],
    /// The 3D point it observes, if triangulated.
    pub point3d_id: Option<u64>,
}

/// A registered image: pose, camera and keypoints.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Image id.
    pub id: u32,
    /// World-to-camera rotation as a unit quaternion (w, x, y, z).
    pub qvec: [f64; 4],
    /// World-to-camera translation.
    pub tvec: [f64; 3],
    /// Id of its camera.
    pub camera_id: u32,
    /// File name relative to the images directory.
    pub name: String,
    /// Keypoints, in file order (track entries index into this).
    pub points2d: Vec<Point2D>,
}

impl Image {
    /// Image `id` of camera `camera_id` at the world-to-camera pose `qvec`, `tvec`, without
    /// keypoints (fill `points2d` to add them).
    pub fn new(
        id: u32,
        camera_id: u32,
        name: impl Into<String>,
        qvec: [f64; 4],
        tvec: [f64; 3],
    ) -> Self {
        Image {
            id,
            qvec,
            tvec,
            camera_id,
            name: name.into(),
            points2d: Vec::new(),
        }
    }

    /// The world-to-camera rotation matrix of `qvec`.
    pub fn rotation(&self) -> glam::DMat3 {
        let [w, x, y, z] = self.qvec;
        glam::DMat3::from_quat(glam::DQuat::from_xyzw(x, y, z, w).normalize())
    }
}

/// COLMAP's (w, x, y, z) quaternion of a world-to-camera rotation, with w >= 0 for a
/// canonical sign.
pub fn qvec_from_rotation(r: &glam::DMat3) -> [f64; 4] {
    let q = glam::DQuat::from_mat3(r).normalize();
    let q = if q.w < 0.0 { -q } else { q };
    [q.w, q.x, q.y, q.z]
}

/// A triangulated point with colour, mean reprojection error and track.
#[derive(Clone, Debug, PartialEq)]
pub struct Point3D {
    /// Point id.
    pub id: u64,
    /// Position in world coordinates.
    pub xyz: [f64; 3],
    /// Colour.
    pub rgb: [u8; 3],
    /// Mean reprojection error in pixels.
    pub error: f64,
    /// Observations as (image id, index into that image's `points2d`).
    pub track: Vec<(u32, u32)>,
}

/// A sparse model; each list keeps the order of the file it came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconstruction {
    /// Cameras.
    pub cameras: Vec<Camera>,
    /// Registered images.
    pub images: Vec<Image>,
    /// 3D points.
    pub points3d: Vec<Point3D>,
}

impl Reconstruction {
    /// The camera with this id.
    pub fn camera(&self, id: u32) -> Option<&Camera> {
        self.cameras.iter().find(|c| c.id == id)
    }

    /// The image with this id.
    pub fn image(&self, id: u32) -> Option<&Image> {
        self.images.iter().find(|i| i.id == id)
    }

    /// A map from 3D point id to its index in `points3d`, for repeated lookups.
    pub fn point3d_index(&self) -> HashMap<u64, usize> {
        self.points3d
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect()
    }

    /// Checks ids, references and finiteness; `dir` is only used to name files in errors.
    pub(crate) fn validate(&self, dir: &Path, ext: &str) -> Result<(), ColmapError> {
        let cameras_path = dir.join(format!("cameras.{ext}"));
        let images_path = dir.join(format!("images.{ext}"));
        let points_path = dir.join(format!("points3D.{ext}"));
        let mut camera_ids = HashSet::new();
        for c in &self.cameras {
            if !camera_ids.insert(c.id) {
                return Err(ColmapError::DuplicateId {
                    path: cameras_path,
                    kind: "camera",
                    id: c.id.into(),
                });
            }
            if c.params().iter().any(|v| !v.is_finite()) {
                return Err(ColmapError::NonFinite {
                    path: cameras_path,
                    what: format!("camera {} params", c.id),
                });
            }
        }
        let mut image_points: HashMap<u32, usize> = HashMap::new();
        for im in &self.images {
            if image_points.insert(im.id, im.points2d.len()).is_some() {
                return Err(ColmapError::DuplicateId {
                    path: images_path,
                    kind: "image",
                    id: im.id.into(),
                });
            }
            if !camera_ids.contains(&im.camera_id) {
                return Err(ColmapError::MissingCamera {
                    path: images_path,
                    image_id: im.id,
                    camera_id: im.camera_id,
                });
            }
            if im.qvec.iter().chain(&im.tvec).any(|v| !v.is_finite()) {
                return Err(ColmapError::NonFinite {
                    path: images_path,
                    what: format!("image {} pose", im.id),
                });
            }
            if let Some(i) = im
                .points2d
                .iter()
                .position(|p| !(p.xy[0].is_finite() && p.xy[1].is_finite()))
            {
                return Err(ColmapError::NonFinite {
                    path: images_path,
                    what: format!("image {} point2D {i}", im.id),
                });
            }
        }
        let mut point_ids = HashSet::new();
        for p in &self.points3d {
            if !point_ids.insert(p.id) {
                return Err(ColmapError::DuplicateId {
                    path: points_path,
                    kind: "point3D",
                    id: p.id,
                });
            }
            if p.xyz.iter().any(|v| !v.is_finite()) || !p.error.is_finite() {
                return Err(ColmapError::NonFinite {
                    path: points_path,
                    what: format!("point {}", p.id),
                });
            }
            for &(image_id, point2d_idx) in &p.track {
                let ok = image_points
                    .get(&image_id)
                    .is_some_and(|&n| (point2d_idx as usize) < n);
                if !ok {
                    return Err(ColmapError::InvalidTrack {
                        path: points_path,
                        point3d_id: p.id,
                        image_id,
                        point2d_idx,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Reads the model in `dir`, preferring the binary files when both forms are present.
pub fn read(dir: impl AsRef<Path>) -> Result<Reconstruction, ColmapError> {
    let dir = dir.as_ref();
    let has_all = |ext: &str| {
        ["cameras", "images", "points3D"]
            .iter()
            .all(|n| dir.join(format!("{n}.{ext}")).is_file())
    };
    let has_any = |ext: &str| {
        ["cameras", "images", "points3D"]
            .iter()
            .any(|n| dir.join(format!("{n}.{ext}")).is_file())
    };
    if has_all("bin") {
        read_binary(dir)
    } else if has_all("txt") {
        read_text(dir)
    } else if has_any("bin") {
        // Reading the incomplete form reports exactly which file is missing.
        read_binary(dir)
    } else if has_any("txt") {
        read_text(dir)
    } else {
        Err(ColmapError::ModelNotFound {
            dir: dir.to_path_buf(),
        })
    }
}

/// Reads a whole model file, mapping "not found" to [`ColmapError::MissingFile`].
fn read_file(path: &Path) -> Result<Vec<u8>, ColmapError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ColmapError::MissingFile {
            path: path.to_path_buf(),
        },
        _ => ColmapError::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// One on-disk form of a model (binary or text): the extension of its three files and the
/// codecs of their records, so that reading and writing go the same way for both forms.
struct Form {
    ext: &'static str,
    read_cameras: fn(&Path) -> Result<Vec<Camera>, ColmapError>,
    read_images: fn(&Path) -> Result<Vec<Image>, ColmapError>,
    read_points: fn(&Path) -> Result<Vec<Point3D>, ColmapError>,
    /// Refuses image names this form cannot store (the path named is the images file).
    check_names: fn(&Path, &Reconstruction) -> Result<(), ColmapError>,
    encode: [fn(&Reconstruction) -> Vec<u8>; 3],
}

impl Form {
    fn file(&self, dir: &Path, stem: &str) -> PathBuf {
        dir.join(format!("{stem}.{}", self.ext))
    }

    /// Reads and validates the model in `dir`.
    fn read(&self, dir: &Path) -> Result<Reconstruction, ColmapError> {
        let rec = Reconstruction {
            cameras: (self.read_cameras)(&self.file(dir, "cameras"))?,
            images: (self.read_images)(&self.file(dir, "images"))?,
            points3d: (self.read_points)(&self.file(dir, "points3D"))?,
        };
        rec.validate(dir, self.ext)?;
        Ok(rec)
    }

    /// Validates `rec`, then writes its files into `dir` (created if needed), each atomically so
    /// that readers never see a half-written one; invalid data writes nothing.
    fn write(&self, dir: &Path, rec: &Reconstruction) -> Result<(), ColmapError> {
        rec.validate(dir, self.ext)?;
        (self.check_names)(&self.file(dir, "images"), rec)?;
        std::fs::create_dir_all(dir).map_err(|source| ColmapError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for (stem, encode) in ["cameras", "images", "points3D"].iter().zip(self.encode) {
            spaceport_io::write_atomic(self.file(dir, stem), &encode(rec)).map_err(|e| {
                ColmapError::Io {
                    path: e.path,
                    source: e.source,
                }
            })?;
        }
        Ok(())
    }
}
