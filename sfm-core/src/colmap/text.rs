//! COLMAP's text model files (`cameras.txt`, `images.txt`, `points3D.txt`).

use std::fmt::Write as _;
use std::path::Path;

use super::{
    read_file, Camera, CameraModel, ColmapError, Form, Image, Point2D, Point3D, Reconstruction,
};

/// Formats a float so that parsing it back yields the same bits.
///
/// Rust's `Display` is shortest-round-trip but never uses an exponent, which would spell
/// 1e-300 with 300 zeros; the exponent form is used outside a comfortable range instead.
fn fmt_f64(out: &mut String, v: f64) {
    let a = v.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

/// A mean for the header comments, six decimals at most, trailing zeros dropped.
fn fmt_mean(total: usize, count: usize) -> String {
    let mean = if count == 0 {
        0.0
    } else {
        total as f64 / count as f64
    };
    let s = format!("{mean:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Splits text into (1-based line number, line) pairs, checking it is UTF-8.
fn text_lines<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<(usize, &'a str)>, ColmapError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ColmapError::MalformedLine {
        path: path.to_path_buf(),
        line: bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1,
        reason: "not valid UTF-8".into(),
    })?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .collect())
}

/// Whether a trimmed line carries no data.
fn is_skippable(line: &str) -> bool {
    line.is_empty() || line.starts_with('#')
}

/// Parses the whitespace-separated fields of one line, with errors naming file and line.
struct Fields<'a> {
    path: &'a Path,
    line: usize,
    rest: &'a str,
}

impl<'a> Fields<'a> {
    fn new(path: &'a Path, line: usize, text: &'a str) -> Self {
        Self {
            path,
            line,
            rest: text.trim_start(),
        }
    }

    fn malformed(&self, reason: String) -> ColmapError {
        ColmapError::MalformedLine {
            path: self.path.to_path_buf(),
            line: self.line,
            reason,
        }
    }

    fn next_token(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self
            .rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(self.rest.len());
        let token = &self.rest[..end];
        self.rest = self.rest[end..].trim_start();
        Some(token)
    }

    fn token(&mut self, field: &str) -> Result<&'a str, ColmapError> {
        self.next_token()
            .ok_or_else(|| self.malformed(format!("missing {field}")))
    }

    fn parse<T: std::str::FromStr>(&mut self, field: &str) -> Result<T, ColmapError> {
        let token = self.token(field)?;
        token
            .parse()
            .map_err(|_| self.malformed(format!("invalid {field} '{token}'")))
    }

    fn finite(&mut self, field: &str) -> Result<f64, ColmapError> {
        let v: f64 = self.parse(field)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(ColmapError::NonFinite {
                path: self.path.to_path_buf(),
                what: format!("line {}: {field}", self.line),
            })
        }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Everything left on the line (used for image names, which may contain spaces).
    fn remainder(&mut self) -> &'a str {
        std::mem::take(&mut self.rest).trim_end()
    }

    fn end(&self) -> Result<(), ColmapError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(format!("unexpected trailing values '{}'", self.rest)))
        }
    }
}

/// The text form: `cameras.txt`, `images.txt`, `points3D.txt`.
const TEXT: Form = Form {
    ext: "txt",
    read_cameras,
    read_images,
    read_points,
    check_names,
    encode: [encode_cameras, encode_images, encode_points],
};

/// Reads `cameras.txt`, `images.txt` and `points3D.txt` from `dir`.
pub fn read_text(dir: impl AsRef<Path>) -> Result<Reconstruction, ColmapError> {
    TEXT.read(dir.as_ref())
}

fn read_cameras(path: &Path) -> Result<Vec<Camera>, ColmapError> {
    let bytes = read_file(path)?;
    let mut cameras = Vec::new();
    for (line_no, line) in text_lines(path, &bytes)? {
        if is_skippable(line) {
            continue;
        }
        let mut f = Fields::new(path, line_no, line);
        let id = f.parse("CAMERA_ID")?;
        let name = f.token("MODEL")?;
        let model =
            CameraModel::from_name(name).ok_or_else(|| ColmapError::UnsupportedCameraModel {
                path: path.to_path_buf(),
                model: name.to_string(),
            })?;
        let width = f.parse("WIDTH")?;
        let height = f.parse("HEIGHT")?;
        let mut params = Vec::with_capacity(model.num_params());
        for i in 0..model.num_params() {
            if f.is_empty() {
                return Err(f.malformed(format!(
                    "{model} needs {} parameters, found {i}",
                    model.num_params()
                )));
            }
            params.push(f.finite("PARAMS")?);
        }
        f.end()?;
        cameras.push(Camera::new(id, model, width, height, params)?);
    }
    Ok(cameras)
}

fn read_images(path: &Path) -> Result<Vec<Image>, ColmapError> {
    let bytes = read_file(path)?;
    let lines = text_lines(path, &bytes)?;
    let mut images = Vec::new();
    let mut it = lines.into_iter();
    while let Some((line_no, line)) = it.next() {
        if is_skippable(line) {
            continue;
        }
        let mut f = Fields::new(path, line_no, line);
        let id = f.parse("IMAGE_ID")?;
        let qvec = [
            f.finite("QW")?,
            f.finite("QX")?,
            f.finite("QY")?,
            f.finite("QZ")?,
        ];
        let tvec = [f.finite("TX")?, f.finite("TY")?, f.finite("TZ")?];
        let camera_id = f.parse("CAMERA_ID")?;
        let name = f.remainder();
        if name.is_empty() {
            return Err(f.malformed("missing NAME".into()));
        }
        // The keypoint line always follows its image line, even when it is empty; a file
        // that simply ends after the last image line has no keypoints for that image.
        let mut points2d = Vec::new();
        if let Some((points_line_no, points_line)) = it.next() {
            let mut f = Fields::new(path, points_line_no, points_line);
            while !f.is_empty() {
                let x = f.finite("POINTS2D X")?;
                let y = f.finite("POINTS2D Y")?;
                let pid = f.token("POINTS2D POINT3D_ID")?;
                let point3d_id = if pid == "-1" {
                    None
                } else {
                    let v: u64 = pid
                        .parse()
                        .map_err(|_| f.malformed(format!("invalid POINT3D_ID '{pid}'")))?;
                    (v != u64::MAX).then_some(v)
                };
                points2d.push(Point2D {
                    xy: [x, y],
                    point3d_id,
                });
            }
        }
        images.push(Image {
            id,
            qvec,
            tvec,
            camera_id,
            name: name.to_string(),
            points2d,
        });
    }
    Ok(images)
}

fn read_points(path: &Path) -> Result<Vec<Point3D>, ColmapError> {
    let bytes = read_file(path)?;
    let mut points = Vec::new();
    for (line_no, line) in text_lines(path, &bytes)? {
        if is_skippable(line) {
            continue;
        }
        let mut f = Fields::new(path, line_no, line);
        let id = f.parse("POINT3D_ID")?;
        let xyz = [f.finite("X")?, f.finite("Y")?, f.finite("Z")?];
        let rgb = [f.parse("R")?, f.parse("G")?, f.parse("B")?];
        let error = f.finite("ERROR")?;
        let mut track = Vec::new();
        while !f.is_empty() {
            let image_id = f.parse("TRACK IMAGE_ID")?;
            let idx = f.parse("TRACK POINT2D_IDX")?;
            track.push((image_id, idx));
        }
        points.push(Point3D {
            id,
            xyz,
            rgb,
            error,
            track,
        });
    }
    Ok(points)
}

/// Writes the model to `dir` as `cameras.txt`, `images.txt` and `points3D.txt`.
///
/// The model is validated first, so invalid data writes nothing.
pub fn write_text(dir: impl AsRef<Path>, rec: &Reconstruction) -> Result<(), ColmapError> {
    TEXT.write(dir.as_ref(), rec)
}

/// A text name is the rest of its line, trimmed; names that would not survive that are refused.
fn check_names(path: &Path, rec: &Reconstruction) -> Result<(), ColmapError> {
    for im in &rec.images {
        let reason = if im.name.is_empty() {
            "it is empty"
        } else if im.name.contains(['\n', '\r', '\0']) {
            "it contains a line break or NUL"
        } else if im.name.trim() != im.name {
            "it starts or ends with whitespace"
        } else {
            continue;
        };
        return Err(ColmapError::InvalidName {
            path: path.to_path_buf(),
            image_id: im.id,
            reason: reason.into(),
        });
    }
    Ok(())
}

fn encode_cameras(rec: &Reconstruction) -> Vec<u8> {
    let mut out = String::new();
    out.push_str("# Camera list with one line of data per camera:\n");
    out.push_str("#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n");
    let _ = writeln!(out, "# Number of cameras: {}", rec.cameras.len());
    for cam in &rec.cameras {
        let _ = write!(
            out,
            "{} {} {} {}",
            cam.id,
            cam.model.name(),
            cam.width,
            cam.height
        );
        for &p in cam.params() {
            out.push(' ');
            fmt_f64(&mut out, p);
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn encode_images(rec: &Reconstruction) -> Vec<u8> {
    let observations: usize = rec
        .images
        .iter()
        .map(|im| {
            im.points2d
                .iter()
                .filter(|p| p.point3d_id.is_some())
                .count()
        })
        .sum();
    let mut out = String::new();
    out.push_str("# Image list with two lines of data per image:\n");
    out.push_str("#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n");
    out.push_str("#   POINTS2D[] as (X, Y, POINT3D_ID)\n");
    let _ = writeln!(
        out,
        "# Number of images: {}, mean observations per image: {}",
        rec.images.len(),
        fmt_mean(observations, rec.images.len())
    );
    for im in &rec.images {
        let _ = write!(out, "{}", im.id);
        for &v in im.qvec.iter().chain(&im.tvec) {
            out.push(' ');
            fmt_f64(&mut out, v);
        }
        let _ = writeln!(out, " {} {}", im.camera_id, im.name);
        for (i, p) in im.points2d.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            fmt_f64(&mut out, p.xy[0]);
            out.push(' ');
            fmt_f64(&mut out, p.xy[1]);
            match p.point3d_id {
                Some(id) => {
                    let _ = write!(out, " {id}");
                }
                None => out.push_str(" -1"),
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn encode_points(rec: &Reconstruction) -> Vec<u8> {
    let track_total: usize = rec.points3d.iter().map(|p| p.track.len()).sum();
    let mut out = String::new();
    out.push_str("# 3D point list with one line of data per point:\n");
    out.push_str("#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n");
    let _ = writeln!(
        out,
        "# Number of points: {}, mean track length: {}",
        rec.points3d.len(),
        fmt_mean(track_total, rec.points3d.len())
    );
    for p in &rec.points3d {
        let _ = write!(out, "{}", p.id);
        for &v in &p.xyz {
            out.push(' ');
            fmt_f64(&mut out, v);
        }
        let _ = write!(out, " {} {} {} ", p.rgb[0], p.rgb[1], p.rgb[2]);
        fmt_f64(&mut out, p.error);
        for &(image_id, idx) in &p.track {
            let _ = write!(out, " {image_id} {idx}");
        }
        out.push('\n');
    }
    out.into_bytes()
}
