//! Grayscale float images and the resampling the scale space needs.

/// Single-channel f32 image, row-major.
#[derive(Clone, Debug)]
pub struct Gray {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    /// Intensities, nominally in [0, 1].
    pub data: Vec<f32>,
}

impl Gray {
    /// Blank image.
    pub fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            data: vec![0.0; w * h],
        }
    }

    /// Converts an 8-bit luma buffer.
    pub fn from_luma8(w: usize, h: usize, px: &[u8]) -> Self {
        Self {
            w,
            h,
            data: px.iter().map(|&v| v as f32 / 255.0).collect(),
        }
    }

    /// Pixel with coordinates clamped to the image.
    #[inline]
    pub fn at(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.w as isize - 1) as usize;
        let y = y.clamp(0, self.h as isize - 1) as usize;
        self.data[y * self.w + x]
    }

    /// Bilinear sample at (x, y) in pixel-index coordinates (pixel centres at integers).
    pub fn bilinear(&self, x: f32, y: f32) -> f32 {
        let x0 = x.floor();
        let y0 = y.floor();
        let (fx, fy) = (x - x0, y - y0);
        let (xi, yi) = (x0 as isize, y0 as isize);
        let a = self.at(xi, yi);
        let b = self.at(xi + 1, yi);
        let c = self.at(xi, yi + 1);
        let d = self.at(xi + 1, yi + 1);
        (a * (1.0 - fx) + b * fx) * (1.0 - fy) + (c * (1.0 - fx) + d * fx) * fy
    }

    /// Doubles the resolution (bilinear), so that output pixel i sits at input i / 2.
    pub fn upsample2(&self) -> Gray {
        let mut out = Gray::new(self.w * 2, self.h * 2);
        for y in 0..out.h {
            for x in 0..out.w {
                out.data[y * out.w + x] = self.bilinear(x as f32 * 0.5, y as f32 * 0.5);
            }
        }
        out
    }

    /// Keeps every other pixel: output pixel i sits at input 2 i.
    pub fn downsample2(&self) -> Gray {
        let (w, h) = (self.w.div_ceil(2), self.h.div_ceil(2));
        let mut out = Gray::new(w, h);
        for y in 0..h {
            for x in 0..w {
                out.data[y * w + x] = self.data[(2 * y) * self.w + 2 * x];
            }
        }
        out
    }

    /// Separable Gaussian blur with standard deviation `sigma` (pixels), clamped borders.
    pub fn blur(&self, sigma: f32) -> Gray {
        if sigma <= 0.01 {
            return self.clone();
        }
        let r = (3.5 * sigma).ceil() as isize;
        let mut k: Vec<f32> = (-r..=r)
            .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
            .collect();
        let s: f32 = k.iter().sum();
        k.iter_mut().for_each(|v| *v /= s);
        let (w, h) = (self.w as isize, self.h as isize);
        let mut tmp = Gray::new(self.w, self.h);
        // Horizontal pass on a border-padded copy of each row: one multiply-add sweep per tap
        // over contiguous memory, which vectorises (a per-pixel dot product does not).
        let mut padded = vec![0.0f32; self.w + 2 * r as usize];
        for y in 0..h as usize {
            let row = &self.data[y * self.w..(y + 1) * self.w];
            for (i, p) in padded.iter_mut().enumerate() {
                *p = row[(i as isize - r).clamp(0, w - 1) as usize];
            }
            let out = &mut tmp.data[y * self.w..(y + 1) * self.w];
            for (j, &kv) in k.iter().enumerate() {
                for (o, &p) in out.iter_mut().zip(&padded[j..j + self.w]) {
                    *o += kv * p;
                }
            }
        }
        let mut out = Gray::new(self.w, self.h);
        // Vertical pass row by row so the inner loop runs over contiguous memory.
        for y in 0..h {
            let dst = &mut out.data[(y * w) as usize..((y + 1) * w) as usize];
            for (j, &kv) in k.iter().enumerate() {
                let yy = (y + j as isize - r).clamp(0, h - 1) as usize;
                let src = &tmp.data[yy * self.w..(yy + 1) * self.w];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += kv * s;
                }
            }
        }
        out
    }
}
