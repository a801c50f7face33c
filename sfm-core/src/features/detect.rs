//! Scale space, DoG extrema, orientation assignment and descriptors.

use super::image::Gray;
use super::{Features, Keypoint, SiftOptions};
use std::f32::consts::PI;

const SIGMA0: f32 = 1.6;
const INPUT_SIGMA: f32 = 0.5;
const BORDER: usize = 5;

struct Octave {
    /// Gaussian levels, `s + 3` of them.
    gauss: Vec<Gray>,
    /// Differences of consecutive levels, `s + 2`.
    dog: Vec<Gray>,
    /// Size of one octave pixel in input-image pixels.
    step: f32,
}

fn build_octaves(img: &Gray, opt: &SiftOptions) -> Vec<Octave> {
    let s = opt.octave_scales;
    let (mut base, mut step, in_sigma) = if opt.upsample {
        (img.upsample2(), 0.5f32, 2.0 * INPUT_SIGMA)
    } else {
        (img.clone(), 1.0f32, INPUT_SIGMA)
    };
    base = base.blur((SIGMA0 * SIGMA0 - in_sigma * in_sigma).max(0.01).sqrt());
    let k = 2f32.powf(1.0 / s as f32);
    let mut octaves = Vec::new();
    while base.w.min(base.h) >= 2 * BORDER + 8 {
        let mut gauss = vec![base];
        for i in 1..s + 3 {
            let prev = SIGMA0 * k.powi(i as i32 - 1);
            let cur = prev * k;
            let g = gauss[i - 1].blur((cur * cur - prev * prev).sqrt());
            gauss.push(g);
        }
        let dog: Vec<Gray> = gauss
            .windows(2)
            .map(|w| Gray {
                w: w[0].w,
                h: w[0].h,
                data: w[1]
                    .data
                    .iter()
                    .zip(&w[0].data)
                    .map(|(a, b)| a - b)
                    .collect(),
            })
            .collect();
        // Level s has twice the base blur: subsampling it starts the next octave exactly.
        let next = gauss[s].downsample2();
        octaves.push(Octave { gauss, dog, step });
        base = next;
        step *= 2.0;
    }
    octaves
}

fn is_extremum(dog: &[Gray], l: usize, x: usize, y: usize) -> bool {
    let w = dog[l].w;
    let v = dog[l].data[y * w + x];
    let mut is_max = true;
    let mut is_min = true;
    for d in &dog[l - 1..=l + 1] {
        for yy in y - 1..=y + 1 {
            let row = &d.data[yy * w + x - 1..yy * w + x + 2];
            for &n in row {
                is_max &= v >= n;
                is_min &= v <= n;
            }
        }
        if !is_max && !is_min {
            return false;
        }
    }
    is_max || is_min
}

/// Quadratic interpolation of an extremum in (x, y, scale); returns the refined position and
/// the interpolated response, or None if it drifts away, is weak, or lies on an edge.
fn refine(
    dog: &[Gray],
    mut l: usize,
    mut x: usize,
    mut y: usize,
    opt: &SiftOptions,
) -> Option<(f32, f32, f32, f32)> {
    let s = opt.octave_scales;
    let w = dog[0].w;
    let h = dog[0].h;
    for _ in 0..5 {
        let d = |ll: usize, xx: usize, yy: usize| dog[ll].data[yy * w + xx];
        let v = d(l, x, y);
        let dx = 0.5 * (d(l, x + 1, y) - d(l, x - 1, y));
        let dy = 0.5 * (d(l, x, y + 1) - d(l, x, y - 1));
        let ds = 0.5 * (d(l + 1, x, y) - d(l - 1, x, y));
        let dxx = d(l, x + 1, y) + d(l, x - 1, y) - 2.0 * v;
        let dyy = d(l, x, y + 1) + d(l, x, y - 1) - 2.0 * v;
        let dss = d(l + 1, x, y) + d(l - 1, x, y) - 2.0 * v;
        let dxy = 0.25
            * (d(l, x + 1, y + 1) - d(l, x - 1, y + 1) - d(l, x + 1, y - 1) + d(l, x - 1, y - 1));
        let dxs = 0.25
            * (d(l + 1, x + 1, y) - d(l + 1, x - 1, y) - d(l - 1, x + 1, y) + d(l - 1, x - 1, y));
        let dys = 0.25
            * (d(l + 1, x, y + 1) - d(l + 1, x, y - 1) - d(l - 1, x, y + 1) + d(l - 1, x, y - 1));
        let mut hm = [
            dxx as f64, dxy as f64, dxs as f64, dxy as f64, dyy as f64, dys as f64, dxs as f64,
            dys as f64, dss as f64,
        ];
        let mut b = [-dx as f64, -dy as f64, -ds as f64];
        if !crate::linalg::lu_solve(&mut hm, 3, &mut b, 1) {
            return None;
        }
        let (ox, oy, os) = (b[0] as f32, b[1] as f32, b[2] as f32);
        if ox.abs() < 0.6 && oy.abs() < 0.6 && os.abs() < 0.6 {
            let contrast = v + 0.5 * (dx * ox + dy * oy + ds * os);
            if contrast.abs() < opt.peak_threshold {
                return None;
            }
            let tr = dxx + dyy;
            let det = dxx * dyy - dxy * dxy;
            let r = opt.edge_threshold;
            if det <= 0.0 || tr * tr * r >= (r + 1.0) * (r + 1.0) * det {
                return None;
            }
            return Some((x as f32 + ox, y as f32 + oy, l as f32 + os, contrast.abs()));
        }
        // Move to the neighbouring sample and retry.
        let nx = x as isize + ox.round().clamp(-1.0, 1.0) as isize;
        let ny = y as isize + oy.round().clamp(-1.0, 1.0) as isize;
        let nl = l as isize + os.round().clamp(-1.0, 1.0) as isize;
        if nx < BORDER as isize
            || ny < BORDER as isize
            || nx >= (w - BORDER) as isize
            || ny >= (h - BORDER) as isize
        {
            return None;
        }
        if nl < 1 || nl > s as isize {
            return None;
        }
        x = nx as usize;
        y = ny as usize;
        l = nl as usize;
    }
    None
}

fn gradient(g: &Gray, x: isize, y: isize) -> (f32, f32) {
    let gx = 0.5 * (g.at(x + 1, y) - g.at(x - 1, y));
    let gy = 0.5 * (g.at(x, y + 1) - g.at(x, y - 1));
    ((gx * gx + gy * gy).sqrt(), gy.atan2(gx))
}

fn orientations(g: &Gray, x: f32, y: f32, sigma: f32, max_n: usize) -> Vec<f32> {
    const BINS: usize = 36;
    let sw = 1.5 * sigma;
    let radius = (3.0 * sw).round() as isize;
    let (xi, yi) = (x.round() as isize, y.round() as isize);
    let mut hist = [0.0f32; BINS];
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            let (px, py) = (xi + dx, yi + dy);
            if px < 1 || py < 1 || px >= g.w as isize - 1 || py >= g.h as isize - 1 {
                continue;
            }
            let rx = px as f32 - x;
            let ry = py as f32 - y;
            let r2 = rx * rx + ry * ry;
            if r2 > (radius * radius) as f32 + 0.5 {
                continue;
            }
            let (m, th) = gradient(g, px, py);
            let wgt = (-r2 / (2.0 * sw * sw)).exp();
            let fb = BINS as f32 * (th + 2.0 * PI) / (2.0 * PI);
            let b = (fb.floor() as isize).rem_euclid(BINS as isize) as usize;
            hist[b] += wgt * m;
        }
    }
    for _ in 0..6 {
        let prev = hist;
        for i in 0..BINS {
            hist[i] = (prev[(i + BINS - 1) % BINS] + prev[i] + prev[(i + 1) % BINS]) / 3.0;
        }
    }
    let maxv = hist.iter().cloned().fold(0.0f32, f32::max);
    if maxv <= 0.0 {
        return Vec::new();
    }
    let mut peaks: Vec<(f32, f32)> = Vec::new();
    for i in 0..BINS {
        let (l, c, r) = (hist[(i + BINS - 1) % BINS], hist[i], hist[(i + 1) % BINS]);
        if c > l && c > r && c >= 0.8 * maxv {
            let off = 0.5 * (l - r) / (l - 2.0 * c + r);
            let th = 2.0 * PI * (i as f32 + 0.5 + off) / BINS as f32;
            peaks.push((c, th));
        }
    }
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0));
    peaks.into_iter().take(max_n).map(|p| p.1).collect()
}

fn descriptor(g: &Gray, x: f32, y: f32, sigma: f32, ori: f32) -> [u8; 128] {
    const NB: usize = 4;
    const NO: usize = 8;
    let bin_w = 3.0 * sigma;
    let radius = (bin_w * std::f32::consts::SQRT_2 * (NB as f32 + 1.0) * 0.5).round() as isize;
    let (c, s) = (ori.cos(), ori.sin());
    let mut hist = [0.0f32; NB * NB * NO];
    let (xi, yi) = (x.round() as isize, y.round() as isize);
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            let (px, py) = (xi + dx, yi + dy);
            if px < 1 || py < 1 || px >= g.w as isize - 1 || py >= g.h as isize - 1 {
                continue;
            }
            let ox = px as f32 - x;
            let oy = py as f32 - y;
            // Rotate into the keypoint frame and express in bin units centred on the grid.
            let rx = (c * ox + s * oy) / bin_w;
            let ry = (-s * ox + c * oy) / bin_w;
            let bx = rx + NB as f32 / 2.0 - 0.5;
            let by = ry + NB as f32 / 2.0 - 0.5;
            if bx <= -1.0 || by <= -1.0 || bx >= NB as f32 || by >= NB as f32 {
                continue;
            }
            let (m, th) = gradient(g, px, py);
            let wgt = (-(rx * rx + ry * ry) / (2.0 * (NB as f32 / 2.0).powi(2))).exp();
            let mut rel = th - ori;
            rel = rel.rem_euclid(2.0 * PI);
            let bo = rel * NO as f32 / (2.0 * PI);
            let (x0, y0, o0) = (bx.floor(), by.floor(), bo.floor());
            let (fx, fy, fo) = (bx - x0, by - y0, bo - o0);
            let mag = m * wgt;
            for (iy, wy) in [(y0 as isize, 1.0 - fy), (y0 as isize + 1, fy)] {
                if iy < 0 || iy >= NB as isize {
                    continue;
                }
                for (ix, wx) in [(x0 as isize, 1.0 - fx), (x0 as isize + 1, fx)] {
                    if ix < 0 || ix >= NB as isize {
                        continue;
                    }
                    for (io, wo) in [(o0 as isize, 1.0 - fo), (o0 as isize + 1, fo)] {
                        let io = io.rem_euclid(NO as isize) as usize;
                        hist[(iy as usize * NB + ix as usize) * NO + io] += mag * wx * wy * wo;
                    }
                }
            }
        }
    }
    let norm = hist.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    for v in hist.iter_mut() {
        *v = (*v / norm).min(0.2);
    }
    // RootSIFT: L1-normalise then square root, so the L2 norm is one and the Euclidean distance
    // approximates the Hellinger kernel.
    let l1 = hist.iter().sum::<f32>().max(1e-12);
    let mut out = [0u8; 128];
    for (o, v) in out.iter_mut().zip(hist.iter()) {
        *o = (512.0 * (v / l1).sqrt()).round().min(255.0) as u8;
    }
    out
}

pub(super) fn sift(img: &Gray, opt: &SiftOptions) -> Features {
    if img.w < 2 * BORDER + 8 || img.h < 2 * BORDER + 8 {
        return Features::default();
    }
    let octaves = build_octaves(img, opt);
    let s = opt.octave_scales;
    let mut cands: Vec<(Keypoint, usize, usize)> = Vec::new();
    for (oi, oct) in octaves.iter().enumerate() {
        let (w, h) = (oct.dog[0].w, oct.dog[0].h);
        let pre = 0.8 * opt.peak_threshold;
        for l in 1..=s {
            for y in BORDER..h - BORDER {
                for x in BORDER..w - BORDER {
                    let v = oct.dog[l].data[y * w + x];
                    if v.abs() < pre || !is_extremum(&oct.dog, l, x, y) {
                        continue;
                    }
                    if let Some((fx, fy, fl, resp)) = refine(&oct.dog, l, x, y, opt) {
                        let sigma_oct = SIGMA0 * 2f32.powf(fl / s as f32);
                        let kp = Keypoint {
                            x: fx * oct.step + 0.5,
                            y: fy * oct.step + 0.5,
                            scale: sigma_oct * oct.step,
                            orientation: 0.0,
                            response: resp,
                        };
                        cands.push((kp, oi, (fl.round() as usize).clamp(1, s)));
                    }
                }
            }
        }
    }
    // Cap before describing: describing is the expensive part. Ties break on position so the
    // result does not depend on iteration order.
    cands.sort_by(|a, b| {
        b.0.response
            .total_cmp(&a.0.response)
            .then(a.0.y.total_cmp(&b.0.y))
            .then(a.0.x.total_cmp(&b.0.x))
    });
    let mut feats = Features::default();
    for (kp, oi, l) in cands {
        if feats.keypoints.len() >= opt.max_features {
            break;
        }
        let oct = &octaves[oi];
        let g = &oct.gauss[l];
        let (ox, oy) = ((kp.x - 0.5) / oct.step, (kp.y - 0.5) / oct.step);
        let sig = kp.scale / oct.step;
        for th in orientations(g, ox, oy, sig, opt.max_orientations) {
            if feats.keypoints.len() >= opt.max_features {
                break;
            }
            let d = descriptor(g, ox, oy, sig, th);
            feats.keypoints.push(Keypoint {
                orientation: th,
                ..kp
            });
            feats.descriptors.extend_from_slice(&d);
        }
    }
    feats
}
