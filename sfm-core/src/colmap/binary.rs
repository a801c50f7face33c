//! COLMAP's binary model files (little-endian, layouts in `doc/format.rst`).

use std::path::Path;

use super::{
    read_file, Camera, CameraModel, ColmapError, Form, Image, Point2D, Point3D, Reconstruction,
};

/// Binary sentinel for "this keypoint observes no 3D point".
const INVALID_POINT3D_ID: u64 = u64::MAX;

/// Which record a cursor is inside, for truncation messages.
#[derive(Clone, Copy)]
enum Record {
    Header,
    Camera(usize),
    Image(usize),
    Point(usize),
}

/// A bounds-checked little-endian reader over one file's bytes.
struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
    record: Record,
}

impl<'a> Cursor<'a> {
    fn new(path: &'a Path, bytes: &'a [u8]) -> Self {
        Self {
            path,
            bytes,
            pos: 0,
            record: Record::Header,
        }
    }

    fn truncated(&self, field: &str) -> ColmapError {
        let record = match self.record {
            Record::Header => "the record count".to_string(),
            Record::Camera(i) => format!("camera #{i}"),
            Record::Image(i) => format!("image #{i}"),
            Record::Point(i) => format!("point3D #{i}"),
        };
        let what = if matches!(self.record, Record::Header) {
            record
        } else {
            format!("{field} of {record}")
        };
        ColmapError::Truncated {
            path: self.path.to_path_buf(),
            what,
        }
    }

    fn take<const N: usize>(&mut self, field: &str) -> Result<[u8; N], ColmapError> {
        let end = self
            .pos
            .checked_add(N)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.truncated(field))?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, field: &str) -> Result<u8, ColmapError> {
        Ok(self.take::<1>(field)?[0])
    }

    fn u32(&mut self, field: &str) -> Result<u32, ColmapError> {
        self.take(field).map(u32::from_le_bytes)
    }

    fn i32(&mut self, field: &str) -> Result<i32, ColmapError> {
        self.take(field).map(i32::from_le_bytes)
    }

    fn u64(&mut self, field: &str) -> Result<u64, ColmapError> {
        self.take(field).map(u64::from_le_bytes)
    }

    fn f64(&mut self, field: &str) -> Result<f64, ColmapError> {
        self.take(field).map(f64::from_le_bytes)
    }

    /// A finite f64; non-finite values are rejected as corrupt.
    fn finite(&mut self, field: &str, id: impl std::fmt::Display) -> Result<f64, ColmapError> {
        let v = self.f64(field)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(ColmapError::NonFinite {
                path: self.path.to_path_buf(),
                what: format!("{field} of {} {id}", self.kind()),
            })
        }
    }

    fn kind(&self) -> &'static str {
        match self.record {
            Record::Header => "header",
            Record::Camera(_) => "camera",
            Record::Image(_) => "image",
            Record::Point(_) => "point3D",
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// A count read from the file, capped for preallocation by what the file can hold, so
    /// that a corrupt count cannot request an absurd allocation.
    fn capacity(&self, count: u64, min_record_size: usize) -> usize {
        usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(self.remaining() / min_record_size.max(1))
    }

    fn finish(self) -> Result<(), ColmapError> {
        match self.remaining() {
            0 => Ok(()),
            bytes => Err(ColmapError::TrailingData {
                path: self.path.to_path_buf(),
                bytes,
            }),
        }
    }
}

/// The binary form: `cameras.bin`, `images.bin`, `points3D.bin`.
const BINARY: Form = Form {
    ext: "bin",
    read_cameras,
    read_images,
    read_points,
    check_names,
    encode: [encode_cameras, encode_images, encode_points],
};

/// Reads `cameras.bin`, `images.bin` and `points3D.bin` from `dir`.
pub fn read_binary(dir: impl AsRef<Path>) -> Result<Reconstruction, ColmapError> {
    BINARY.read(dir.as_ref())
}

fn read_cameras(path: &Path) -> Result<Vec<Camera>, ColmapError> {
    let bytes = read_file(path)?;
    let mut c = Cursor::new(path, &bytes);
    let n = c.u64("")?;
    let mut cameras = Vec::with_capacity(c.capacity(n, 24));
    for i in 0..n {
        c.record = Record::Camera(i as usize);
        let id = c.u32("camera_id")?;
        let model_id = c.i32("model_id")?;
        let model =
            CameraModel::from_id(model_id).ok_or_else(|| ColmapError::UnsupportedCameraModel {
                path: path.to_path_buf(),
                model: CameraModel::describe_id(model_id),
            })?;
        let width = c.u64("width")?;
        let height = c.u64("height")?;
        let params = (0..model.num_params())
            .map(|_| c.finite("params", id))
            .collect::<Result<Vec<_>, _>>()?;
        cameras.push(Camera::new(id, model, width, height, params)?);
    }
    c.finish()?;
    Ok(cameras)
}

fn read_images(path: &Path) -> Result<Vec<Image>, ColmapError> {
    let bytes = read_file(path)?;
    let mut c = Cursor::new(path, &bytes);
    let n = c.u64("")?;
    let mut images = Vec::with_capacity(c.capacity(n, 73));
    for i in 0..n {
        c.record = Record::Image(i as usize);
        let id = c.u32("image_id")?;
        let mut qvec = [0.0; 4];
        for q in &mut qvec {
            *q = c.finite("qvec", id)?;
        }
        let mut tvec = [0.0; 3];
        for t in &mut tvec {
            *t = c.finite("tvec", id)?;
        }
        let camera_id = c.u32("camera_id")?;
        let mut name = Vec::new();
        loop {
            match c.u8("name")? {
                0 => break,
                b => name.push(b),
            }
        }
        let name = String::from_utf8(name).map_err(|_| ColmapError::InvalidName {
            path: path.to_path_buf(),
            image_id: id,
            reason: "not valid UTF-8".into(),
        })?;
        let n2d = c.u64("points2D count")?;
        let mut points2d = Vec::with_capacity(c.capacity(n2d, 24));
        for _ in 0..n2d {
            let x = c.finite("points2D x", id)?;
            let y = c.finite("points2D y", id)?;
            let pid = c.u64("points2D point3D_id")?;
            points2d.push(Point2D {
                xy: [x, y],
                point3d_id: (pid != INVALID_POINT3D_ID).then_some(pid),
            });
        }
        images.push(Image {
            id,
            qvec,
            tvec,
            camera_id,
            name,
            points2d,
        });
    }
    c.finish()?;
    Ok(images)
}

fn read_points(path: &Path) -> Result<Vec<Point3D>, ColmapError> {
    let bytes = read_file(path)?;
    let mut c = Cursor::new(path, &bytes);
    let n = c.u64("")?;
    let mut points = Vec::with_capacity(c.capacity(n, 51));
    for i in 0..n {
        c.record = Record::Point(i as usize);
        let id = c.u64("point3D_id")?;
        let mut xyz = [0.0; 3];
        for v in &mut xyz {
            *v = c.finite("xyz", id)?;
        }
        let rgb = [c.u8("rgb")?, c.u8("rgb")?, c.u8("rgb")?];
        let error = c.finite("error", id)?;
        let len = c.u64("track length")?;
        let mut track = Vec::with_capacity(c.capacity(len, 8));
        for _ in 0..len {
            track.push((c.u32("track image_id")?, c.u32("track point2D_idx")?));
        }
        points.push(Point3D {
            id,
            xyz,
            rgb,
            error,
            track,
        });
    }
    c.finish()?;
    Ok(points)
}

/// Writes the model to `dir` as `cameras.bin`, `images.bin` and `points3D.bin`.
///
/// The model is validated first, so invalid data writes nothing.
pub fn write_binary(dir: impl AsRef<Path>, rec: &Reconstruction) -> Result<(), ColmapError> {
    BINARY.write(dir.as_ref(), rec)
}

/// Binary names are NUL-terminated, so a NUL inside one would cut it short.
fn check_names(path: &Path, rec: &Reconstruction) -> Result<(), ColmapError> {
    match rec.images.iter().find(|im| im.name.contains('\0')) {
        Some(im) => Err(ColmapError::InvalidName {
            path: path.to_path_buf(),
            image_id: im.id,
            reason: "contains a NUL byte".into(),
        }),
        None => Ok(()),
    }
}

fn encode_cameras(rec: &Reconstruction) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + rec.cameras.len() * 88);
    out.extend_from_slice(&(rec.cameras.len() as u64).to_le_bytes());
    for cam in &rec.cameras {
        out.extend_from_slice(&cam.id.to_le_bytes());
        out.extend_from_slice(&cam.model.id().to_le_bytes());
        out.extend_from_slice(&cam.width.to_le_bytes());
        out.extend_from_slice(&cam.height.to_le_bytes());
        for p in cam.params() {
            out.extend_from_slice(&p.to_le_bytes());
        }
    }
    out
}

fn encode_images(rec: &Reconstruction) -> Vec<u8> {
    let size: usize = rec
        .images
        .iter()
        .map(|im| 73 + im.name.len() + 24 * im.points2d.len())
        .sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(&(rec.images.len() as u64).to_le_bytes());
    for im in &rec.images {
        out.extend_from_slice(&im.id.to_le_bytes());
        for v in im.qvec.iter().chain(&im.tvec) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&im.camera_id.to_le_bytes());
        out.extend_from_slice(im.name.as_bytes());
        out.push(0);
        out.extend_from_slice(&(im.points2d.len() as u64).to_le_bytes());
        for p in &im.points2d {
            out.extend_from_slice(&p.xy[0].to_le_bytes());
            out.extend_from_slice(&p.xy[1].to_le_bytes());
            out.extend_from_slice(&p.point3d_id.unwrap_or(INVALID_POINT3D_ID).to_le_bytes());
        }
    }
    out
}

fn encode_points(rec: &Reconstruction) -> Vec<u8> {
    let size: usize = rec.points3d.iter().map(|p| 51 + 8 * p.track.len()).sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(&(rec.points3d.len() as u64).to_le_bytes());
    for p in &rec.points3d {
        out.extend_from_slice(&p.id.to_le_bytes());
        for v in &p.xyz {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&p.rgb);
        out.extend_from_slice(&p.error.to_le_bytes());
        out.extend_from_slice(&(p.track.len() as u64).to_le_bytes());
        for &(image_id, idx) in &p.track {
            out.extend_from_slice(&image_id.to_le_bytes());
            out.extend_from_slice(&idx.to_le_bytes());
        }
    }
    out
}
