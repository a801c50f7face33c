//! Lossless WebP: encoding through libwebp (exact RGB under zero alpha), decoding through image-webp.

use std::path::Path;

use libwebp_sys as sys;

use crate::error::SogError;

/// An 8-bit RGBA image, rows top to bottom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgba {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 4` bytes.
    pub data: Vec<u8>,
}

impl Rgba {
    /// An all-zero image (alpha 0), the value of texels beyond the last Gaussian.
    pub fn zeroed(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0; width * height * 4],
        }
    }

    /// The 4 bytes of texel `i` in row-major order.
    pub fn texel(&self, i: usize) -> [u8; 4] {
        let o = i * 4;
        [
            self.data[o],
            self.data[o + 1],
            self.data[o + 2],
            self.data[o + 3],
        ]
    }
}

/// Largest side WebP allows.
pub const MAX_SIDE: usize = 16383;

/// Encodes an image as lossless WebP with `exact` on, at libwebp's lossless preset `effort` (0..=9).
pub fn encode_lossless(name: &str, img: &Rgba, effort: u8) -> Result<Vec<u8>, SogError> {
    let fail = |reason: &str| SogError::Encode {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if img.width == 0 || img.height == 0 || img.width > MAX_SIDE || img.height > MAX_SIDE {
        return Err(fail(&format!(
            "{}x{} is outside WebP's 1..{MAX_SIDE} pixels per side",
            img.width, img.height
        )));
    }
    if img.data.len() != img.width * img.height * 4 {
        return Err(fail("buffer size does not match the dimensions"));
    }
    // SAFETY: the config, picture and writer are initialised by libwebp before use, the picture
    // imports (copies) our buffer whose size was checked above, and every libwebp allocation is
    // released on every path before returning.
    unsafe {
        let mut config = std::mem::MaybeUninit::<sys::WebPConfig>::uninit();
        if sys::WebPConfigInitInternal(
            config.as_mut_ptr(),
            sys::WebPPreset::WEBP_PRESET_DEFAULT,
            75.0,
            sys::WEBP_ENCODER_ABI_VERSION as _,
        ) == 0
        {
            return Err(fail("libwebp version mismatch"));
        }
        let mut config = config.assume_init();
        if sys::WebPConfigLosslessPreset(&mut config, effort.min(9) as _) == 0 {
            return Err(fail("bad effort level"));
        }
        config.lossless = 1;
        config.exact = 1;
        let mut pic = std::mem::MaybeUninit::<sys::WebPPicture>::uninit();
        if sys::WebPPictureInitInternal(pic.as_mut_ptr(), sys::WEBP_ENCODER_ABI_VERSION as _) == 0 {
            return Err(fail("libwebp version mismatch"));
        }
        let mut pic = pic.assume_init();
        pic.use_argb = 1;
        pic.width = img.width as _;
        pic.height = img.height as _;
        if sys::WebPPictureImportRGBA(&mut pic, img.data.as_ptr(), (img.width * 4) as _) == 0 {
            sys::WebPPictureFree(&mut pic);
            return Err(fail("out of memory importing the picture"));
        }
        let mut writer = std::mem::MaybeUninit::<sys::WebPMemoryWriter>::uninit();
        sys::WebPMemoryWriterInit(writer.as_mut_ptr());
        let mut writer = writer.assume_init();
        pic.writer = Some(sys::WebPMemoryWrite);
        pic.custom_ptr = (&mut writer as *mut sys::WebPMemoryWriter).cast();
        let ok = sys::WebPEncode(&config, &mut pic);
        let code = pic.error_code;
        sys::WebPPictureFree(&mut pic);
        let out = if ok != 0 && !writer.mem.is_null() {
            Ok(std::slice::from_raw_parts(writer.mem, writer.size).to_vec())
        } else {
            Err(fail(&format!("libwebp error {code:?}")))
        };
        sys::WebPMemoryWriterClear(&mut writer);
        out
    }
}

/// Decodes a lossless WebP to RGBA; lossy images are refused because they corrupt the stored values.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Rgba, SogError> {
    let bad = |reason: String| SogError::BadImage {
        path: path.to_path_buf(),
        reason,
    };
    let mut dec = image_webp::WebPDecoder::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a WebP image ({e})")))?;
    if dec.is_lossy() {
        return Err(bad("lossy WebP; SOG textures must be lossless".into()));
    }
    if dec.is_animated() {
        return Err(bad("animated WebP".into()));
    }
    let (w, h) = dec.dimensions();
    let (w, h) = (w as usize, h as usize);
    let size = dec
        .output_buffer_size()
        .ok_or_else(|| bad("image too large".into()))?;
    let mut buf = vec![0u8; size];
    dec.read_image(&mut buf)
        .map_err(|e| bad(format!("corrupt WebP data ({e})")))?;
    let data = if dec.has_alpha() {
        buf
    } else {
        let mut rgba = Vec::with_capacity(w * h * 4);
        for p in buf.chunks_exact(3) {
            rgba.extend_from_slice(&[p[0], p[1], p[2], 255]);
        }
        rgba
    };
    if data.len() != w * h * 4 {
        return Err(bad("decoded size does not match the dimensions".into()));
    }
    Ok(Rgba {
        width: w,
        height: h,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: usize, h: usize) -> Rgba {
        let data = (0..w * h * 4)
            .map(|i| ((i * 37 + i / 7) % 256) as u8)
            .collect();
        Rgba {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn lossless_round_trip_keeps_rgb_under_zero_alpha() {
        let mut img = pattern(37, 11);
        for px in img.data.chunks_exact_mut(4).step_by(3) {
            px[3] = 0;
        }
        let bytes = encode_lossless("t.webp", &img, 4).unwrap();
        let back = decode(Path::new("t.webp"), &bytes).unwrap();
        assert_eq!(back, img);
    }

    #[test]
    fn lossy_and_oversized_images_are_refused() {
        let img = pattern(16, 16);
        let mut out: *mut u8 = std::ptr::null_mut();
        // SAFETY: the buffer holds 16x16 RGBA; libwebp allocates `out`, freed below.
        let lossy = unsafe {
            let n = sys::WebPEncodeRGBA(img.data.as_ptr(), 16, 16, 64, 50.0, &mut out);
            let v = std::slice::from_raw_parts(out, n).to_vec();
            sys::WebPFree(out.cast());
            v
        };
        let e = decode(Path::new("lossy.webp"), &lossy).unwrap_err();
        assert!(e.to_string().contains("lossy"), "{e}");
        assert!(encode_lossless("big", &Rgba::zeroed(MAX_SIDE + 1, 1), 0).is_err());
    }
}
