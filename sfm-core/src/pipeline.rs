//! The SfM controller: images -> features -> matches -> verified pairs -> incremental model ->
//! COLMAP output (undistorted PINHOLE model + images, and the distorted SIMPLE_RADIAL model)
//! and `sfm_report.json`. It owns the order of the stages and the report.

use crate::backend::{CpuFeatures, FeatureBackend, FeatureBackendError};
use crate::colmap::{self, Camera, CameraModel, Reconstruction};
use crate::features::{Features, Gray, SiftOptions};
use crate::geometry::Pose;
use crate::mapper::{
    reconstruct, ImagePair, MapperError, MapperImage, MapperOptions, RadialCamera, SparseModel,
};
use crate::matching::{select_pairs, DescriptorSet, MatchOptions, PairSelection};
use crate::twoview::{verify_pair, PairConfig, PinholePrior, TwoViewGeometry, VerifyOptions};
use glam::DVec2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Settings of the whole pipeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SfmOptions {
    /// Images are downscaled so that their larger side is at most this (features are reported in
    /// full-resolution pixels).
    pub max_image_size: u32,
    /// How photos share cameras (intrinsics refined together).
    pub camera_mode: CameraMode,
    /// Focal prior as a multiple of the larger image side when EXIF gives none.
    pub default_focal_factor: f64,
    /// Upsample the first octave when the (downscaled) larger side is at most this.
    pub upsample_below: u32,
    /// Refine the principal point (when `mapper.refine_principal_point` allows it) only for
    /// images whose larger side is at least this: measured, it halves the pose error of
    /// 3072 px Strecha images but made 768-800 px captures worse.
    pub principal_point_min_size: u32,
    /// Feature extraction.
    pub sift: SiftOptions,
    /// Descriptor matching.
    pub matching: MatchOptions,
    /// Pair selection.
    pub pairs: PairSelection,
    /// Geometric verification.
    pub verify: VerifyOptions,
    /// Incremental mapping.
    pub mapper: MapperOptions,
    /// Also write the text form of the models.
    pub write_text: bool,
    /// Write undistorted images and the PINHOLE model for training.
    pub undistort: bool,
    /// Seed for every randomised step.
    pub seed: u64,
    /// When set, the result of feature extraction and matching (keypoints and verified pairs)
    /// is written to this file, or read from it when it exists, so that the mapper can be
    /// rerun with other settings without repeating the two most expensive stages. The file
    /// is not checked against the images or the feature/matching settings.
    #[serde(default)]
    pub match_cache: Option<PathBuf>,
}

impl Default for SfmOptions {
    fn default() -> Self {
        Self {
            max_image_size: 3200,
            camera_mode: CameraMode::Grouped,
            default_focal_factor: 1.2,
            upsample_below: 1000,
            principal_point_min_size: 2000,
            sift: SiftOptions::default(),
            matching: MatchOptions::default(),
            pairs: PairSelection::default(),
            verify: VerifyOptions::default(),
            mapper: MapperOptions::default(),
            write_text: true,
            undistort: true,
            seed: 0,
            match_cache: None,
        }
    }
}

impl SfmOptions {
    /// Refuses settings that would fail late or silently (a zero image size, no features, a
    /// non-positive focal prior), naming the key.
    pub fn validate(&self) -> Result<(), SfmError> {
        let bad = |m: &str| Err(SfmError::Invalid(m.to_string()));
        if self.max_image_size < 16 {
            return bad(&format!(
                "max_image_size {}: at least 16 pixels",
                self.max_image_size
            ));
        }
        if !(self.default_focal_factor.is_finite() && self.default_focal_factor > 0.0) {
            return bad(&format!(
                "default_focal_factor {}: must be finite and positive",
                self.default_focal_factor
            ));
        }
        if self.sift.max_features == 0 {
            return bad("sift.max_features 0: at least one feature per image");
        }
        Ok(())
    }
}

/// How photos are assigned to cameras.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraMode {
    /// One camera for every photo (all photos from one device at one zoom and size).
    Single,
    /// One camera per (image size, EXIF make, model, focal length): phones and cameras mixed,
    /// or photos of mixed sizes, give one consistent model.
    Grouped,
    /// One camera per photo (zoom changed between shots, or no EXIF to tell groups apart).
    PerImage,
}

/// Pipeline stages, as reported to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Decoding images and extracting features.
    Features,
    /// Matching and verifying image pairs.
    Matching,
    /// Incremental mapping.
    Mapping,
    /// Writing models and undistorted images.
    Output,
}

/// Time and memory of one stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageReport {
    /// Stage.
    pub stage: Stage,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Peak resident memory during the stage (MiB), where the OS reports it.
    pub peak_rss_mib: Option<f64>,
}

/// Summary written to `sfm_report.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SfmReport {
    /// Images found.
    pub num_images: usize,
    /// Images registered in the model.
    pub registered_images: usize,
    /// Names of images that could not be registered in the kept (largest) model.
    pub unregistered: Vec<String>,
    /// Smaller disconnected models that were reconstructed and dropped, by image names.
    pub other_models: Vec<Vec<String>>,
    /// Files that could not be decoded, with the reason.
    pub unreadable: Vec<String>,
    /// Mean features per image.
    pub mean_features: f64,
    /// Pairs matched.
    pub matched_pairs: usize,
    /// Pairs that passed geometric verification.
    pub verified_pairs: usize,
    /// 3D points.
    pub num_points: usize,
    /// Observations of 3D points.
    pub num_observations: usize,
    /// Mean track length.
    pub mean_track_length: f64,
    /// Mean over points of their mean reprojection error (COLMAP's definition), pixels.
    pub mean_reprojection_error: f64,
    /// Refined focal lengths (pixels), one per camera.
    pub focal_lengths: Vec<f64>,
    /// Refined radial distortion, one per camera.
    pub radial_k: Vec<f64>,
    /// Per-stage time and memory.
    pub stages: Vec<StageReport>,
    /// The feature backend that extracted and matched (`cpu`, or the GPU's name).
    #[serde(default)]
    pub feature_backend: String,
    /// Thread-seconds spent in descriptor matching (part of the matching stage); device wall
    /// time when a GPU matched.
    pub descriptor_matching_cpu_seconds: f64,
    /// Thread-seconds spent in geometric verification (part of the matching stage).
    pub verification_cpu_seconds: f64,
    /// Total wall time (seconds).
    pub total_seconds: f64,
}

/// Pipeline failures.
#[derive(Debug, thiserror::Error)]
pub enum SfmError {
    /// Reading a directory or file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Fewer than two usable images.
    #[error("need at least 2 readable images in {dir}, found {found}{}", if unreadable.is_empty() { String::new() } else { format!(" (unreadable: {})", unreadable.join(", ")) })]
    TooFewImages {
        /// Directory scanned.
        dir: PathBuf,
        /// Readable images found.
        found: usize,
        /// Files that failed to decode.
        unreadable: Vec<String>,
    },
    /// A setting is out of range.
    #[error("invalid SfM setting: {0}")]
    Invalid(String),
    /// No pair of images shares enough verified matches.
    #[error("no two images share a view: no image pair passed geometric verification")]
    NoOverlap,
    /// The feature backend (a GPU) failed.
    #[error("feature backend {backend}: {source}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// What went wrong.
        source: FeatureBackendError,
    },
    /// Mapping failed.
    #[error(transparent)]
    Mapper(#[from] MapperError),
    /// Writing the model failed.
    #[error(transparent)]
    Colmap(#[from] colmap::ColmapError),
    /// Writing an image failed.
    #[error("cannot write {path}: {msg}")]
    ImageWrite {
        /// Path involved.
        path: PathBuf,
        /// Cause.
        msg: String,
    },
}

struct Decoded {
    name: String,
    width: u32,
    height: u32,
    focal_prior: Option<f64>,
    camera_key: String,
    features: Features,
    keypoints: Vec<DVec2>,
}

impl From<spaceport_io::IoError> for SfmError {
    fn from(e: spaceport_io::IoError) -> Self {
        SfmError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

fn list_images(dir: &Path) -> Result<Vec<PathBuf>, SfmError> {
    let rd = std::fs::read_dir(dir).map_err(|e| SfmError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| SfmError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let p = e.path();
        if crate::photo::is_photo_name(&p) && p.is_file() {
            out.push(p);
        }
    }
    // Sorted names give deterministic image ids.
    out.sort();
    Ok(out)
}

/// One photo decoded and described: `Ok(Err(why))` for a photo that cannot be used (its
/// name is in the message), `Err` when the backend itself failed.
fn decode_and_extract(
    path: &Path,
    opt: &SfmOptions,
    backend: &dyn FeatureBackend,
) -> Result<Result<Decoded, String>, FeatureBackendError> {
    let photo = match crate::photo::read_photo(path) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let img = photo.image;
    let (w, h) = (img.width(), img.height());
    if w < 32 || h < 32 {
        return Ok(Err(format!(
            "{}: image too small ({w}x{h})",
            path.display()
        )));
    }
    let luma = img.into_luma8();
    let max_side = w.max(h);
    let luma = if max_side > opt.max_image_size {
        let s = opt.max_image_size as f64 / max_side as f64;
        let (nw, nh) = (
            ((w as f64 * s).round() as u32).max(1),
            ((h as f64 * s).round() as u32).max(1),
        );
        image::imageops::resize(&luma, nw, nh, image::imageops::FilterType::Triangle)
    } else {
        luma
    };
    let gray = Gray::from_luma8(luma.width() as usize, luma.height() as usize, luma.as_raw());
    let mut sift = opt.sift.clone();
    sift.upsample = luma.width().max(luma.height()) <= opt.upsample_below;
    let features = backend.extract(&gray, &sift)?;
    // Back to full-resolution pixel coordinates (COLMAP convention, centre of pixel 0 at 0.5).
    let sx = w as f64 / luma.width() as f64;
    let sy = h as f64 / luma.height() as f64;
    let keypoints = features
        .keypoints
        .iter()
        .map(|k| DVec2::new(k.x as f64 * sx, k.y as f64 * sy))
        .collect();
    Ok(Ok(Decoded {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        width: w,
        height: h,
        focal_prior: photo.meta.focal_pixels(max_side),
        camera_key: camera_key(&photo.meta),
        features,
        keypoints,
    }))
}

struct StageTimer {
    stages: Vec<StageReport>,
    start: Instant,
    cur: Option<(Stage, Instant)>,
}

impl StageTimer {
    fn begin(&mut self, s: Stage) {
        self.end();
        spaceport_io::reset_peak_memory();
        self.cur = Some((s, Instant::now()));
    }
    fn end(&mut self) {
        if let Some((s, t)) = self.cur.take() {
            self.stages.push(StageReport {
                stage: s,
                seconds: t.elapsed().as_secs_f64(),
                peak_rss_mib: spaceport_io::peak_memory_bytes()
                    .map(|b| b as f64 / (1024.0 * 1024.0)),
            });
        }
    }
}

/// One image as the mapper and the outputs need it: what remains of feature extraction once
/// matching is done (and what the match cache stores).
#[derive(Serialize, Deserialize)]
struct ImageInfo {
    name: String,
    width: u32,
    height: u32,
    focal_prior: Option<f64>,
    /// The EXIF make, model and focal length that, with the size, decide the camera group.
    #[serde(default)]
    camera_key: String,
    num_features: usize,
    keypoints: Vec<[f64; 2]>,
}

/// A verified pair in the match cache.
#[derive(Serialize, Deserialize)]
struct CachedPair {
    i: usize,
    j: usize,
    config: PairConfig,
    inliers: Vec<(u32, u32)>,
    /// Rotation (column-major) and translation of the relative pose.
    relative_pose: Option<([f64; 9], [f64; 3])>,
    num_h_inliers: usize,
}

/// Result of feature extraction and matching.
#[derive(Serialize, Deserialize)]
struct FrontEnd {
    images: Vec<ImageInfo>,
    unreadable: Vec<String>,
    matched_pairs: usize,
    pairs: Vec<CachedPair>,
    match_cpu_seconds: f64,
    verify_cpu_seconds: f64,
}

impl FrontEnd {
    fn verified(&self) -> Vec<ImagePair> {
        self.pairs
            .iter()
            .map(|p| ImagePair {
                i: p.i,
                j: p.j,
                geometry: TwoViewGeometry {
                    config: p.config,
                    inliers: p.inliers.clone(),
                    relative_pose: p.relative_pose.map(|(r, t)| Pose {
                        r: glam::DMat3::from_cols_array(&r),
                        t: glam::DVec3::from_array(t),
                    }),
                    num_h_inliers: p.num_h_inliers,
                },
            })
            .collect()
    }
}

fn read_cache(path: &Path) -> Result<FrontEnd, SfmError> {
    let bytes = std::fs::read(path).map_err(|e| SfmError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| SfmError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

fn write_cache(path: &Path, fe: &FrontEnd) -> Result<(), SfmError> {
    let json = serde_json::to_vec(fe).map_err(|e| SfmError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    // Atomic, so an interrupted run never leaves a truncated cache for the next one to trip on.
    spaceport_io::write_atomic(path, &json).map_err(SfmError::from)
}

/// The EXIF fields that tell cameras apart (size is added by [`camera_groups`]).
fn camera_key(meta: &crate::photo::PhotoMeta) -> String {
    format!(
        "{}|{}|{}",
        meta.make.as_deref().unwrap_or(""),
        meta.model.as_deref().unwrap_or(""),
        meta.focal_35mm.map(|f| f.to_string()).unwrap_or_default()
    )
}

/// The cameras of a photo set and the camera of each image: one for all
/// ([`CameraMode::Single`]), one per (image size, EXIF make, model, focal length)
/// ([`CameraMode::Grouped`]), or one per image ([`CameraMode::PerImage`]). A camera's focal
/// prior comes from its first image's EXIF, else `default_focal_factor` times the larger side.
fn camera_groups(opt: &SfmOptions, images: &[ImageInfo]) -> (Vec<RadialCamera>, Vec<usize>) {
    let prior = |d: &ImageInfo| {
        d.focal_prior
            .unwrap_or(opt.default_focal_factor * d.width.max(d.height) as f64)
    };
    let mut keys: Vec<(u32, u32, &str)> = Vec::new();
    let mut cameras = Vec::new();
    let mut camera_of = Vec::with_capacity(images.len());
    for (i, d) in images.iter().enumerate() {
        let key = (d.width, d.height, d.camera_key.as_str());
        let found = match opt.camera_mode {
            CameraMode::Single => (i > 0).then_some(0),
            CameraMode::Grouped => keys.iter().position(|k| *k == key),
            CameraMode::PerImage => None,
        };
        let c = found.unwrap_or_else(|| {
            keys.push(key);
            cameras.push(RadialCamera::with_prior(d.width, d.height, prior(d)));
            cameras.len() - 1
        });
        camera_of.push(c);
    }
    (cameras, camera_of)
}

/// Feature extraction and matching with geometric verification.
fn front_end(
    opt: &SfmOptions,
    backend: &dyn FeatureBackend,
    images_dir: &Path,
    paths: &[PathBuf],
    timer: &mut StageTimer,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) -> Result<FrontEnd, SfmError> {
    let backend_err = |source| SfmError::Backend {
        backend: backend.name(),
        source,
    };
    timer.begin(Stage::Features);
    let done = AtomicUsize::new(0);
    let total = paths.len();
    let results: Vec<Result<Decoded, String>> = paths
        .par_iter()
        .map(|p| {
            let r = decode_and_extract(p, opt, backend);
            progress(
                Stage::Features,
                done.fetch_add(1, Ordering::Relaxed) + 1,
                total,
            );
            r
        })
        .collect::<Result<_, _>>()
        .map_err(backend_err)?;
    let mut decoded = Vec::new();
    let mut unreadable = Vec::new();
    for r in results {
        match r {
            Ok(d) => decoded.push(d),
            // The message names the file already.
            Err(e) => unreadable.push(e),
        }
    }
    if decoded.len() < 2 {
        return Err(SfmError::TooFewImages {
            dir: images_dir.to_path_buf(),
            found: decoded.len(),
            unreadable,
        });
    }
    let infos: Vec<ImageInfo> = decoded
        .iter()
        .map(|d| ImageInfo {
            name: d.name.clone(),
            width: d.width,
            height: d.height,
            focal_prior: d.focal_prior,
            camera_key: d.camera_key.clone(),
            num_features: d.features.len(),
            keypoints: Vec::new(),
        })
        .collect();
    let (cameras, camera_of) = camera_groups(opt, &infos);
    let cam_of = |i: usize| camera_of[i];

    timer.begin(Stage::Matching);
    let descs: Vec<DescriptorSet> = decoded
        .par_iter()
        .map(|d| DescriptorSet::from_features(&d.features))
        .collect();
    let pairs = select_pairs(&opt.pairs, &descs, opt.seed);
    let done = AtomicUsize::new(0);
    let verify_us = AtomicUsize::new(0);
    // One slot per pair, filled by the backend's callback (on whichever thread it runs), so
    // the verified pairs keep the order of `pairs` whatever order they finish in.
    let slots: Vec<OnceLock<Option<CachedPair>>> = pairs.iter().map(|_| OnceLock::new()).collect();
    let twice = AtomicUsize::new(usize::MAX);
    let verify = |k: usize, m: Vec<(u32, u32)>| {
        let Some(&(i, j)) = pairs.get(k) else {
            twice.store(k, Ordering::Relaxed);
            return;
        };
        let t0 = Instant::now();
        let prior = |img: usize| {
            let c = cameras[cam_of(img)];
            PinholePrior {
                f: c.f,
                cx: c.cx,
                cy: c.cy,
            }
        };
        let (pi, pj) = (prior(i), prior(j));
        let seed = opt.seed ^ ((i as u64) << 32 | j as u64);
        let g = verify_pair(
            &decoded[i].keypoints,
            &decoded[j].keypoints,
            &m,
            &pi,
            &pj,
            &opt.verify,
            seed,
        );
        verify_us.fetch_add(t0.elapsed().as_micros() as usize, Ordering::Relaxed);
        progress(
            Stage::Matching,
            done.fetch_add(1, Ordering::Relaxed) + 1,
            pairs.len(),
        );
        let pair = g.map(|g| CachedPair {
            i,
            j,
            config: g.config,
            inliers: g.inliers,
            relative_pose: g
                .relative_pose
                .map(|p| (p.r.to_cols_array(), p.t.to_array())),
            num_h_inliers: g.num_h_inliers,
        });
        if slots[k].set(pair).is_err() {
            twice.store(k, Ordering::Relaxed);
        }
    };
    let match_seconds = backend
        .match_pairs(&descs, &pairs, &opt.matching, &verify)
        .map_err(backend_err)?;
    // A backend that skips or repeats a pair is a bug in it; say so rather than map a subset.
    let missing = slots.iter().position(|s| s.get().is_none());
    let bad = twice.load(Ordering::Relaxed);
    if let Some(k) = missing.or((bad != usize::MAX).then_some(bad)) {
        return Err(backend_err(FeatureBackendError::Device(format!(
            "pair {k} of {} was not reported exactly once",
            pairs.len()
        ))));
    }
    let verified: Vec<CachedPair> = slots
        .into_iter()
        .filter_map(|s| s.into_inner().flatten())
        .collect();
    drop(descs);
    let images = decoded
        .into_iter()
        .zip(infos)
        .map(|(d, mut info)| {
            info.keypoints = d.keypoints.iter().map(|k| [k.x, k.y]).collect();
            info
        })
        .collect();
    Ok(FrontEnd {
        images,
        unreadable,
        matched_pairs: pairs.len(),
        pairs: verified,
        match_cpu_seconds: match_seconds,
        verify_cpu_seconds: verify_us.load(Ordering::Relaxed) as f64 * 1e-6,
    })
}

/// Runs the whole pipeline on the photos in `images_dir`, writing into `out_dir`:
/// `sparse/0` (undistorted PINHOLE model, binary and text), `images/` (undistorted),
/// `distorted/sparse/0` (the SIMPLE_RADIAL model on the original images) and `sfm_report.json`.
/// `progress(stage, done, total)` is called as work advances.
pub fn run(
    opt: &SfmOptions,
    images_dir: &Path,
    out_dir: &Path,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) -> Result<SfmReport, SfmError> {
    run_with(opt, &CpuFeatures, images_dir, out_dir, progress)
}

/// [`run`] with feature extraction and descriptor matching on `backend` (a GPU); the rest of
/// the pipeline is the same, and so are the results when the backend computes what
/// [`CpuFeatures`] does.
pub fn run_with(
    opt: &SfmOptions,
    backend: &dyn FeatureBackend,
    images_dir: &Path,
    out_dir: &Path,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) -> Result<SfmReport, SfmError> {
    opt.validate()?;
    let mut timer = StageTimer {
        stages: Vec::new(),
        start: Instant::now(),
        cur: None,
    };
    let paths = list_images(images_dir)?;
    let fe = match &opt.match_cache {
        Some(c) if c.exists() => {
            timer.begin(Stage::Matching);
            read_cache(c)?
        }
        _ => {
            let fe = front_end(opt, backend, images_dir, &paths, &mut timer, progress)?;
            if let Some(c) = &opt.match_cache {
                write_cache(c, &fe)?;
            }
            fe
        }
    };
    let verified = fe.verified();
    if verified.is_empty() {
        return Err(SfmError::NoOverlap);
    }
    let (cameras, camera_of) = camera_groups(opt, &fe.images);
    let cam_of = |i: usize| camera_of[i];

    timer.begin(Stage::Mapping);
    let mimages: Vec<MapperImage> = fe
        .images
        .iter()
        .enumerate()
        .map(|(i, d)| MapperImage {
            name: d.name.clone(),
            camera: cam_of(i),
            keypoints: d.keypoints.iter().map(|&k| DVec2::from_array(k)).collect(),
        })
        .collect();
    let mut mopt = opt.mapper.clone();
    mopt.seed ^= opt.seed;
    let max_side = fe
        .images
        .iter()
        .map(|d| d.width.max(d.height))
        .min()
        .unwrap_or(0);
    mopt.refine_principal_point &= max_side >= opt.principal_point_min_size;
    let model = reconstruct(&mimages, cameras, &verified, &mopt, &mut |r, n| {
        progress(Stage::Mapping, r, n)
    })?;

    timer.begin(Stage::Output);
    let report_core = write_outputs(opt, images_dir, out_dir, &mimages, &model, progress)?;
    timer.end();
    let mut report = SfmReport {
        num_images: paths.len(),
        registered_images: model.poses.iter().filter(|p| p.is_some()).count(),
        unregistered: mimages
            .iter()
            .zip(&model.poses)
            .filter(|(_, p)| p.is_none())
            .map(|(m, _)| m.name.clone())
            .collect(),
        other_models: model
            .other_models
            .iter()
            .map(|m| m.iter().map(|&i| mimages[i].name.clone()).collect())
            .collect(),
        unreadable: fe.unreadable.clone(),
        mean_features: fe.images.iter().map(|d| d.num_features).sum::<usize>() as f64
            / fe.images.len() as f64,
        matched_pairs: fe.matched_pairs,
        verified_pairs: verified.len(),
        num_points: model.points.len(),
        num_observations: report_core.0,
        mean_track_length: report_core.0 as f64 / model.points.len().max(1) as f64,
        mean_reprojection_error: report_core.1,
        focal_lengths: model.cameras.iter().map(|c| c.f).collect(),
        radial_k: model.cameras.iter().map(|c| c.k).collect(),
        stages: timer.stages,
        feature_backend: backend.name(),
        descriptor_matching_cpu_seconds: fe.match_cpu_seconds,
        verification_cpu_seconds: fe.verify_cpu_seconds,
        total_seconds: timer.start.elapsed().as_secs_f64(),
    };
    report.total_seconds = timer.start.elapsed().as_secs_f64();
    let path = out_dir.join("sfm_report.json");
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    spaceport_io::write_atomic(&path, json.as_bytes())?;
    Ok(report)
}

/// Builds COLMAP models (distorted SIMPLE_RADIAL and undistorted PINHOLE), samples point
/// colours, writes everything. Returns (observations, mean reprojection error).
fn write_outputs(
    opt: &SfmOptions,
    images_dir: &Path,
    out_dir: &Path,
    images: &[MapperImage],
    model: &SparseModel,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) -> Result<(usize, f64), SfmError> {
    let registered: Vec<usize> = (0..images.len())
        .filter(|&i| model.poses[i].is_some())
        .collect();
    let id_of = |i: usize| i as u32 + 1;
    // Per registered image: its track memberships, and colour samples from the original image.
    let mut point_of: Vec<Vec<Option<u64>>> = images
        .iter()
        .map(|im| vec![None; im.keypoints.len()])
        .collect();
    for (pid, p) in model.points.iter().enumerate() {
        for &(i, k) in &p.track {
            point_of[i as usize][k as usize] = Some(pid as u64 + 1);
        }
    }
    let done = AtomicUsize::new(0);
    let undist_dir = out_dir.join("images");
    if opt.undistort {
        std::fs::create_dir_all(&undist_dir).map_err(|e| SfmError::Io {
            path: undist_dir.clone(),
            source: e,
        })?;
    }
    // Decode each registered image once: sample colours and write its undistorted copy.
    type Samples = Result<Vec<(usize, [f64; 3])>, SfmError>;
    let colours: Vec<Samples> = registered
        .par_iter()
        .map(|&i| {
            let path = images_dir.join(&images[i].name);
            // Decoded as in feature extraction (upright), so keypoints and pixels agree.
            let Ok(photo) = crate::photo::read_photo(&path) else {
                return Ok(Vec::new());
            };
            let rgb = photo.image.into_rgb8();
            let cam = model.cameras[images[i].camera];
            let sample = |x: f64, y: f64| -> [f64; 3] {
                // Pixel centres at +0.5 (COLMAP convention).
                let (fx, fy) = (x - 0.5, y - 0.5);
                let (x0, y0) = (fx.floor(), fy.floor());
                let (ax, ay) = (fx - x0, fy - y0);
                let get = |xx: f64, yy: f64| {
                    let xi = (xx as i64).clamp(0, rgb.width() as i64 - 1) as u32;
                    let yi = (yy as i64).clamp(0, rgb.height() as i64 - 1) as u32;
                    rgb.get_pixel(xi, yi).0
                };
                let (p00, p10, p01, p11) = (
                    get(x0, y0),
                    get(x0 + 1.0, y0),
                    get(x0, y0 + 1.0),
                    get(x0 + 1.0, y0 + 1.0),
                );
                std::array::from_fn(|c| {
                    (p00[c] as f64 * (1.0 - ax) + p10[c] as f64 * ax) * (1.0 - ay)
                        + (p01[c] as f64 * (1.0 - ax) + p11[c] as f64 * ax) * ay
                })
            };
            let mut out = Vec::new();
            for (k, p) in point_of[i].iter().enumerate() {
                if let Some(pid) = p {
                    let kp = images[i].keypoints[k];
                    out.push((*pid as usize - 1, sample(kp.x, kp.y)));
                }
            }
            if opt.undistort {
                let (w, h) = (rgb.width(), rgb.height());
                let mut und = image::RgbImage::new(w, h);
                for y in 0..h {
                    for x in 0..w {
                        let u = (x as f64 + 0.5 - cam.cx) / cam.f;
                        let v = (y as f64 + 0.5 - cam.cy) / cam.f;
                        let d = 1.0 + cam.k * (u * u + v * v);
                        let c = sample(cam.f * d * u + cam.cx, cam.f * d * v + cam.cy);
                        und.put_pixel(
                            x,
                            y,
                            image::Rgb(c.map(|v| v.round().clamp(0.0, 255.0) as u8)),
                        );
                    }
                }
                let outp = undist_dir.join(&images[i].name);
                und.save(&outp).map_err(|e| SfmError::ImageWrite {
                    path: outp.clone(),
                    msg: e.to_string(),
                })?;
            }
            progress(
                Stage::Output,
                done.fetch_add(1, Ordering::Relaxed) + 1,
                registered.len(),
            );
            Ok(out)
        })
        .collect();
    let mut sum = vec![[0.0f64; 3]; model.points.len()];
    let mut cnt = vec![0usize; model.points.len()];
    for c in colours {
        for (pid, rgb) in c? {
            for k in 0..3 {
                sum[pid][k] += rgb[k];
            }
            cnt[pid] += 1;
        }
    }
    // Reprojection errors (distorted model, pixels).
    let mut total_err = 0.0;
    let mut nobs = 0;
    let mut point_errs = Vec::with_capacity(model.points.len());
    for p in &model.points {
        let mut e = 0.0;
        for &(i, k) in &p.track {
            let cam = model.cameras[images[i as usize].camera];
            let pose = model.poses[i as usize].expect("registered");
            let r = cam.project(pose.apply(p.xyz)).map_or(f64::NAN, |q| {
                (q - images[i as usize].keypoints[k as usize]).length()
            });
            e += r;
        }
        nobs += p.track.len();
        let pe = e / p.track.len().max(1) as f64;
        total_err += pe;
        point_errs.push(pe);
    }
    let mean_err = total_err / model.points.len().max(1) as f64;
    let build = |undistorted: bool| -> Result<Reconstruction, SfmError> {
        let cameras = model
            .cameras
            .iter()
            .enumerate()
            .map(|(c, cam)| {
                if undistorted {
                    Ok(Camera::pinhole(
                        c as u32 + 1,
                        cam.width as u64,
                        cam.height as u64,
                        cam.f,
                        cam.f,
                        cam.cx,
                        cam.cy,
                    ))
                } else {
                    Camera::new(
                        c as u32 + 1,
                        CameraModel::SimpleRadial,
                        cam.width as u64,
                        cam.height as u64,
                        vec![cam.f, cam.cx, cam.cy, cam.k],
                    )
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let imgs = registered
            .iter()
            .map(|&i| {
                let pose = model.poses[i].expect("registered");
                let cam = model.cameras[images[i].camera];
                colmap::Image {
                    id: id_of(i),
                    qvec: colmap::qvec_from_rotation(&pose.r),
                    tvec: pose.t.to_array(),
                    camera_id: images[i].camera as u32 + 1,
                    name: images[i].name.clone(),
                    points2d: images[i]
                        .keypoints
                        .iter()
                        .enumerate()
                        .map(|(k, &p)| {
                            let xy = if undistorted {
                                let n = cam.normalize(p);
                                [cam.f * n.x + cam.cx, cam.f * n.y + cam.cy]
                            } else {
                                [p.x, p.y]
                            };
                            colmap::Point2D {
                                xy,
                                point3d_id: point_of[i][k],
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let points3d = model
            .points
            .iter()
            .enumerate()
            .map(|(pid, p)| colmap::Point3D {
                id: pid as u64 + 1,
                xyz: p.xyz.to_array(),
                rgb: std::array::from_fn(|k| {
                    (sum[pid][k] / cnt[pid].max(1) as f64)
                        .round()
                        .clamp(0.0, 255.0) as u8
                }),
                error: point_errs[pid],
                track: p
                    .track
                    .iter()
                    .map(|&(i, k)| (id_of(i as usize), k))
                    .collect(),
            })
            .collect();
        Ok(Reconstruction {
            cameras,
            images: imgs,
            points3d,
        })
    };
    let write = |rec: &Reconstruction, dir: PathBuf| -> Result<(), SfmError> {
        std::fs::create_dir_all(&dir).map_err(|e| SfmError::Io {
            path: dir.clone(),
            source: e,
        })?;
        colmap::write_binary(&dir, rec)?;
        if opt.write_text {
            colmap::write_text(&dir, rec)?;
        }
        Ok(())
    };
    write(&build(true)?, out_dir.join("sparse").join("0"))?;
    write(
        &build(false)?,
        out_dir.join("distorted").join("sparse").join("0"),
    )?;
    Ok((nobs, mean_err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_refused_before_any_work() {
        let opt = SfmOptions {
            max_image_size: 0,
            ..Default::default()
        };
        let dir = std::env::temp_dir().join("sfm-never-read");
        let err = run(&opt, &dir, &dir, &|_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("max_image_size 0"), "{err}");
        assert!(!dir.exists(), "nothing is read or written");
        let opt = SfmOptions {
            default_focal_factor: f64::NAN,
            ..Default::default()
        };
        assert!(opt.validate().is_err());
        SfmOptions::default().validate().unwrap();
    }

    #[test]
    fn match_cache_round_trips_and_names_a_bad_file() {
        let dir = std::env::temp_dir().join(format!("sfm-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fe = FrontEnd {
            images: vec![ImageInfo {
                name: "a.jpg".into(),
                width: 64,
                height: 48,
                focal_prior: Some(70.5),
                camera_key: String::new(),
                num_features: 2,
                keypoints: vec![[1.25, 2.5], [3.0, 4.75]],
            }],
            unreadable: vec!["x.jpg: bad".into()],
            matched_pairs: 3,
            pairs: vec![CachedPair {
                i: 0,
                j: 1,
                config: PairConfig::Calibrated,
                inliers: vec![(0, 1), (1, 0)],
                relative_pose: Some((
                    [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                    [0.5, 0.0, 0.1],
                )),
                num_h_inliers: 1,
            }],
            match_cpu_seconds: 1.5,
            verify_cpu_seconds: 0.5,
        };
        let path = dir.join("cache.json");
        write_cache(&path, &fe).unwrap();
        let back = read_cache(&path).unwrap();
        assert_eq!(back.images[0].keypoints, fe.images[0].keypoints);
        assert_eq!(back.images[0].focal_prior, Some(70.5));
        let v = back.verified();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].geometry.inliers, vec![(0, 1), (1, 0)]);
        assert_eq!(v[0].geometry.config, PairConfig::Calibrated);
        let pose = v[0].geometry.relative_pose.expect("pose");
        assert_eq!(pose.t, glam::DVec3::new(0.5, 0.0, 0.1));
        std::fs::write(&path, b"not json").unwrap();
        let err = read_cache(&path).err().expect("corrupt cache must fail");
        assert!(err.to_string().contains("cache.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
