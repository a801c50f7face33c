//! Photos as phones and cameras write them: decoded upright (the EXIF orientation applied, as
//! every viewer shows them), truncated files refused instead of decoded half grey, and the EXIF
//! fields that group photos into cameras (size, make, model, focal length).

use std::path::{Path, PathBuf};

/// File extensions read as photos (lower case).
pub const PHOTO_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "tif", "tiff", "webp"];

/// Extensions recognised as photos we cannot decode, with what to do instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("heic", "HEIC is not supported: export the photos as JPEG"),
    ("heif", "HEIF is not supported: export the photos as JPEG"),
    ("dng", "raw DNG is not supported: export the photos as JPEG"),
    ("cr2", "raw CR2 is not supported: export the photos as JPEG"),
    ("nef", "raw NEF is not supported: export the photos as JPEG"),
    ("arw", "raw ARW is not supported: export the photos as JPEG"),
];

/// What EXIF says about a photo (all optional: PNGs and stripped files have none).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PhotoMeta {
    /// Camera maker (EXIF Make), trimmed.
    pub make: Option<String>,
    /// Camera model (EXIF Model), trimmed.
    pub model: Option<String>,
    /// Focal length in 35 mm film equivalent (EXIF FocalLengthIn35mmFilm), millimetres.
    pub focal_35mm: Option<f64>,
    /// EXIF orientation (1-8; 1 is upright as stored).
    pub orientation: u8,
}

impl PhotoMeta {
    /// Focal length in pixels for an upright image whose larger side is `max_side`, as COLMAP
    /// converts the 35 mm equivalent (`f35 / 35 * max_side`).
    pub fn focal_pixels(&self, max_side: u32) -> Option<f64> {
        self.focal_35mm.map(|f| f / 35.0 * max_side as f64)
    }
}

/// A decoded photo, upright.
pub struct Photo {
    /// The pixels with the EXIF orientation applied.
    pub image: image::DynamicImage,
    /// EXIF fields.
    pub meta: PhotoMeta,
}

/// Why a photo cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file ends before its image data does (an interrupted copy or download).
    #[error("{path}: truncated {format} file ({reason})")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: &'static str,
        /// What is missing.
        reason: &'static str,
    },
    /// A format we recognise and do not decode.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What to do instead.
        reason: &'static str,
    },
    /// The decoder rejected the file.
    #[error("{path}: cannot decode: {msg}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        msg: String,
    },
}

/// Whether `path` names a photo by its extension (decodable or not: unsupported formats are
/// listed so that they are reported by name rather than silently skipped).
pub fn is_photo_name(path: &Path) -> bool {
    let Some(ext) = extension(path) else {
        return false;
    };
    PHOTO_EXTENSIONS.contains(&ext.as_str()) || UNSUPPORTED.iter().any(|(e, _)| *e == ext)
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|x| x.to_str())
        .map(|x| x.to_ascii_lowercase())
}

/// Reads and decodes the photo at `path`, upright.
pub fn read_photo(path: &Path) -> Result<Photo, PhotoError> {
    if let Some(ext) = extension(path) {
        if let Some((_, reason)) = UNSUPPORTED.iter().find(|(e, _)| *e == ext) {
            return Err(PhotoError::Unsupported {
                path: path.to_path_buf(),
                reason,
            });
        }
    }
    let bytes = std::fs::read(path).map_err(|source| PhotoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_photo(&bytes, path)
}

/// Decodes photo bytes (`path` only names the file in errors).
pub fn decode_photo(bytes: &[u8], path: &Path) -> Result<Photo, PhotoError> {
    check_complete(bytes).map_err(|(format, reason)| PhotoError::Truncated {
        path: path.to_path_buf(),
        format,
        reason,
    })?;
    let mut image = image::load_from_memory(bytes).map_err(|e| PhotoError::Decode {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let meta = read_meta(bytes);
    if let Some(o) = image::metadata::Orientation::from_exif(meta.orientation) {
        image.apply_orientation(o);
    }
    Ok(Photo { image, meta })
}

/// EXIF fields of a photo file's bytes (defaults where there is no EXIF block).
pub fn read_meta(bytes: &[u8]) -> PhotoMeta {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) else {
        return PhotoMeta {
            orientation: 1,
            ..Default::default()
        };
    };
    let text = |tag| {
        exif.get_field(tag, exif::In::PRIMARY)
            .and_then(|f| match &f.value {
                exif::Value::Ascii(v) => v
                    .first()
                    .map(|s| {
                        String::from_utf8_lossy(s)
                            .trim()
                            .trim_matches('\0')
                            .to_string()
                    })
                    .filter(|s| !s.is_empty()),
                _ => None,
            })
    };
    let uint = |tag| {
        exif.get_field(tag, exif::In::PRIMARY)
            .and_then(|f| f.value.get_uint(0))
    };
    PhotoMeta {
        make: text(exif::Tag::Make),
        model: text(exif::Tag::Model),
        focal_35mm: uint(exif::Tag::FocalLengthIn35mmFilm)
            .filter(|&f| f > 0)
            .map(f64::from),
        orientation: uint(exif::Tag::Orientation)
            .filter(|o| (1..=8).contains(o))
            .unwrap_or(1) as u8,
    }
}

/// Checks that a JPEG or PNG file is whole. Decoders fill what is missing of a truncated JPEG
/// with grey without an error, so the check looks for the end markers: a JPEG's end-of-image
/// marker after its last start-of-scan (entropy-coded data never holds an unstuffed 0xFF
/// marker byte, and an embedded EXIF thumbnail's markers come before the main image's scans),
/// a PNG's IEND chunk.
pub fn check_complete(bytes: &[u8]) -> Result<(), (&'static str, &'static str)> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
        let Some(sos) = last_sos else {
            return Err(("JPEG", "no image data"));
        };
        if !bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(("JPEG", "no end-of-image marker after the image data"));
        }
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let tail = &bytes[bytes.len().saturating_sub(64)..];
        if !tail.windows(4).any(|w| w == b"IEND") {
            return Err(("PNG", "no IEND chunk"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    /// A minimal big-endian EXIF APP1 segment with Orientation, Make and FocalLengthIn35mmFilm.
    fn with_exif(jpeg: &[u8], orientation: u16, make: &str, f35: u16) -> Vec<u8> {
        let mut make_z = make.as_bytes().to_vec();
        make_z.push(0);
        let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
        // IFD0: 3 entries (Make, Orientation, ExifIFD pointer), then the next-IFD offset.
        let ifd0_len = 2 + 3 * 12 + 4;
        let make_off = 8 + ifd0_len;
        let exif_ifd_off = make_off + make_z.len();
        let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: [u8; 4]| {
            t.extend_from_slice(&tag.to_be_bytes());
            t.extend_from_slice(&typ.to_be_bytes());
            t.extend_from_slice(&count.to_be_bytes());
            t.extend_from_slice(&value);
        };
        tiff.extend_from_slice(&3u16.to_be_bytes());
        entry(
            &mut tiff,
            0x010F,
            2,
            make_z.len() as u32,
            (make_off as u32).to_be_bytes(),
        );
        let o = orientation.to_be_bytes();
        entry(&mut tiff, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
        entry(&mut tiff, 0x8769, 4, 1, (exif_ifd_off as u32).to_be_bytes());
        tiff.extend_from_slice(&0u32.to_be_bytes());
        tiff.extend_from_slice(&make_z);
        tiff.extend_from_slice(&1u16.to_be_bytes());
        let f = f35.to_be_bytes();
        entry(&mut tiff, 0xA405, 3, 1, [f[0], f[1], 0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes());
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied_and_fields_are_read() {
        let src = jpeg(64, 40);
        let plain = decode_photo(&src, Path::new("a.jpg")).unwrap();
        assert_eq!((plain.image.width(), plain.image.height()), (64, 40));
        assert_eq!(plain.meta.orientation, 1);
        for (o, size) in [(6u16, (40, 64)), (8, (40, 64)), (3, (64, 40))] {
            let p = decode_photo(&with_exif(&src, o, "Acme", 26), Path::new("b.jpg")).unwrap();
            assert_eq!((p.image.width(), p.image.height()), size, "orientation {o}");
            assert_eq!(p.meta.orientation, o as u8);
            assert_eq!(p.meta.make.as_deref(), Some("Acme"));
            assert_eq!(p.meta.focal_35mm, Some(26.0));
            assert_eq!(p.meta.focal_pixels(64), Some(26.0 / 35.0 * 64.0));
        }
        // Orientation 6 turns the stored image 90 degrees clockwise: its bottom-left pixel
        // becomes the top-left one.
        let rot = decode_photo(&with_exif(&src, 6, "Acme", 26), Path::new("c.jpg")).unwrap();
        let stored = plain.image.to_rgb8();
        let upright = rot.image.to_rgb8();
        let (a, b) = (stored.get_pixel(0, 39).0, upright.get_pixel(0, 0).0);
        assert!(
            a.iter().zip(b).all(|(x, y)| x.abs_diff(y) < 12),
            "{a:?} vs {b:?}"
        );
    }

    #[test]
    fn truncated_jpeg_and_png_are_refused() {
        let src = jpeg(64, 48);
        let cut = &src[..src.len() * 2 / 3];
        // The decoder alone accepts the cut file (the reason for the check).
        assert!(image::load_from_memory(cut).is_ok());
        let err = decode_photo(cut, Path::new("cut.jpg"))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("cut.jpg"), "{err}");
        assert!(err.to_string().contains("truncated JPEG"), "{err}");
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::new(40, 40))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(check_complete(&png).is_ok());
        assert!(check_complete(&png[..png.len() - 12]).is_err());
    }

    #[test]
    fn unsupported_formats_are_named() {
        assert!(is_photo_name(Path::new("x/IMG_1.HEIC")));
        assert!(is_photo_name(Path::new("a.webp")));
        assert!(!is_photo_name(Path::new("notes.txt")));
        let err = read_photo(Path::new("/nonexistent/IMG_1.heic"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("HEIC"), "{err}");
    }
}
