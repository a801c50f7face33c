//! RGB float images: decoding with alpha compositing, area downscaling, lens undistortion
//! and atomic PNG writing.

use std::path::Path;

use image::{DynamicImage, ImageEncoder};
use rayon::prelude::*;
use sfm_core::colmap::{Distortion, Intrinsics};

use super::SceneError;

/// An RGB image with f32 channels in [0, 1], row-major, 3 values per pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` values, row by row.
    pub data: Vec<f32>,
}

impl Image {
    /// An image of one colour.
    pub fn filled(width: u32, height: u32, rgb: [f32; 3]) -> Self {
        let n = width as usize * height as usize;
        let mut data = Vec::with_capacity(n * 3);
        for _ in 0..n {
            data.extend_from_slice(&rgb);
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// The colour at (x, y); panics if out of bounds, like slice indexing.
    pub fn pixel(&self, x: u32, y: u32) -> [f32; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the colour at (x, y); panics if out of bounds, like slice indexing.
    pub fn set_pixel(&mut self, x: u32, y: u32, rgb: [f32; 3]) {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// Whether `data` has exactly `width * height * 3` values.
    pub fn is_consistent(&self) -> bool {
        self.data.len() == self.width as usize * self.height as usize * 3
    }

    /// Converts a decoded image, compositing any alpha over `background`.
    pub fn from_dynamic(img: DynamicImage, background: [f32; 3]) -> Self {
        let (width, height) = (img.width(), img.height());
        let data = match img {
            DynamicImage::ImageRgb8(buf) => buf
                .into_raw()
                .into_iter()
                .map(|v| f32::from(v) / 255.0)
                .collect(),
            DynamicImage::ImageRgba8(buf) => {
                let mut data = Vec::with_capacity(width as usize * height as usize * 3);
                for px in buf.as_raw().chunks_exact(4) {
                    let a = f32::from(px[3]) / 255.0;
                    for c in 0..3 {
                        data.push(f32::from(px[c]) / 255.0 * a + background[c] * (1.0 - a));
                    }
                }
                data
            }
            other if other.color().has_alpha() => {
                let buf = other.to_rgba32f();
                let mut data = Vec::with_capacity(width as usize * height as usize * 3);
                for px in buf.as_raw().chunks_exact(4) {
                    let a = px[3];
                    for c in 0..3 {
                        data.push(px[c] * a + background[c] * (1.0 - a));
                    }
                }
                data
            }
            other => other.to_rgb32f().into_raw(),
        };
        Self {
            width,
            height,
            data,
        }
    }

    /// Resizes with an area (box) filter: each output pixel is the mean of the source area
    /// it covers, with fractional coverage at the edges, so any scale factor is exact.
    pub fn resize_area(&self, width: u32, height: u32) -> Image {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let wx = area_weights(self.width as usize, width as usize);
        let wy = area_weights(self.height as usize, height as usize);
        let (sw, ow) = (self.width as usize, width as usize);
        // Horizontal pass first: it shrinks every row before the vertical pass touches it.
        // Rows are independent, so both passes run in parallel (the trainer resizes every
        // view whenever the working size changes).
        let mut rows = vec![0.0f32; ow * self.height as usize * 3];
        rows.par_chunks_exact_mut(ow * 3)
            .zip(self.data.par_chunks_exact(sw * 3))
            .for_each(|(dst_row, src_row)| {
                for (x, taps) in wx.iter().enumerate() {
                    let mut acc = [0.0f32; 3];
                    for &(i, w) in taps {
                        for c in 0..3 {
                            acc[c] += src_row[i * 3 + c] * w;
                        }
                    }
                    dst_row[x * 3..x * 3 + 3].copy_from_slice(&acc);
                }
            });
        let mut data = vec![0.0f32; ow * height as usize * 3];
        data.par_chunks_exact_mut(ow * 3)
            .zip(wy.par_iter())
            .for_each(|(dst, taps)| {
                for &(i, w) in taps {
                    let src = &rows[i * ow * 3..(i + 1) * ow * 3];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += s * w;
                    }
                }
            });
        Image {
            width,
            height,
            data,
        }
    }

    /// Bilinear sample at continuous pixel coordinates (pixel centres at integer + 0.5),
    /// clamped to the border; black for an empty image.
    pub fn sample_bilinear(&self, x: f64, y: f64) -> [f32; 3] {
        if self.width == 0 || self.height == 0 {
            return [0.0; 3];
        }
        let fx = (x - 0.5).clamp(0.0, f64::from(self.width.saturating_sub(1)));
        let fy = (y - 0.5).clamp(0.0, f64::from(self.height.saturating_sub(1)));
        // NaN clamps to NaN and then casts to 0: a border sample, never out of bounds.
        let (x0, y0) = (fx.floor() as u32, fy.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (tx, ty) = ((fx - f64::from(x0)) as f32, (fy - f64::from(y0)) as f32);
        let (a, b, c, d) = (
            self.pixel(x0, y0),
            self.pixel(x1, y0),
            self.pixel(x0, y1),
            self.pixel(x1, y1),
        );
        let mut out = [0.0; 3];
        for i in 0..3 {
            let top = a[i] + (b[i] - a[i]) * tx;
            let bottom = c[i] + (d[i] - c[i]) * tx;
            out[i] = top + (bottom - top) * ty;
        }
        out
    }

    /// The pinhole image a distorted camera would have taken, with the same intrinsics:
    /// each output pixel is looked up at its distorted position in this image (COLMAP's
    /// undistorter does the same, but also refits the intrinsics; keeping them avoids
    /// resampling the whole frame, and samples falling outside repeat the border).
    pub fn undistorted(&self, k: Intrinsics, distortion: Distortion) -> Image {
        if distortion.is_none() || self.width == 0 || self.height == 0 {
            return self.clone();
        }
        let mut data = Vec::with_capacity(self.data.len());
        for y in 0..self.height {
            let v = (f64::from(y) + 0.5 - k.cy) / k.fy;
            for x in 0..self.width {
                let u = (f64::from(x) + 0.5 - k.cx) / k.fx;
                let [ud, vd] = distortion.distort([u, v]);
                data.extend_from_slice(&self.sample_bilinear(k.fx * ud + k.cx, k.fy * vd + k.cy));
            }
        }
        Image {
            width: self.width,
            height: self.height,
            data,
        }
    }

    /// 8-bit RGB bytes, rounding and clamping to [0, 1] (NaN becomes 0).
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.data
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect()
    }
}

/// For each output index, the source indices it covers and their normalised weights.
fn area_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let (start, end) = (o as f64 * scale, (o + 1) as f64 * scale);
            let first = start.floor() as usize;
            let last = (end.ceil() as usize).min(src);
            let mut taps: Vec<(usize, f32)> = (first..last)
                .map(|i| {
                    let cover = (end.min(i as f64 + 1.0) - start.max(i as f64)).max(0.0);
                    (i, (cover / scale) as f32)
                })
                .filter(|&(_, w)| w > 0.0)
                .collect();
            if taps.is_empty() {
                taps.push((first.min(src - 1), 1.0));
            }
            taps
        })
        .collect()
}

/// Decodes an image file to RGB floats, compositing alpha over `background`, upright (its EXIF
/// orientation applied, as viewers show it).
pub fn load_image(path: impl AsRef<Path>, background: [f32; 3]) -> Result<Image, SceneError> {
    load_image_oriented(path.as_ref(), background, true)
}

/// [`load_image`], with the EXIF orientation applied or not: a model made by a tool that reads
/// pixels as stored (COLMAP does) needs them as stored. Truncated files are refused, since
/// decoders fill their missing part with grey.
pub fn load_image_oriented(
    path: &Path,
    background: [f32; 3],
    upright: bool,
) -> Result<Image, SceneError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => SceneError::MissingImage {
            path: path.to_path_buf(),
        },
        _ => SceneError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    sfm_core::photo::check_complete(&bytes).map_err(|(format, reason)| {
        SceneError::TruncatedImage {
            path: path.to_path_buf(),
            format,
            reason,
        }
    })?;
    let mut img = image::load_from_memory(&bytes).map_err(|source| SceneError::CorruptImage {
        path: path.to_path_buf(),
        source,
    })?;
    if upright {
        let meta = sfm_core::photo::read_meta(&bytes);
        if let Some(o) = image::metadata::Orientation::from_exif(meta.orientation) {
            img.apply_orientation(o);
        }
    }
    Ok(Image::from_dynamic(img, background))
}

/// Writes an 8-bit RGB PNG through a temporary file and a rename, so the file at `path`
/// is either the old one or the complete new one.
pub fn save_png(path: impl AsRef<Path>, image: &Image) -> Result<(), SceneError> {
    let path = path.as_ref();
    if !image.is_consistent() {
        return Err(SceneError::InvalidImage {
            path: path.to_path_buf(),
            reason: format!(
                "{} values for a {}x{} RGB image (expected {})",
                image.data.len(),
                image.width,
                image.height,
                image.width as usize * image.height as usize * 3
            ),
        });
    }
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            &image.to_rgb8(),
            image.width,
            image.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|source| SceneError::CorruptImage {
            path: path.to_path_buf(),
            source,
        })?;
    spaceport_io::write_atomic(path, &bytes).map_err(|e| SceneError::Io {
        path: e.path,
        source: e.source,
    })
}
