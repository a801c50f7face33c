//! Tile binning and front-to-back compositing per 16x16 tile, forward and backward.

use rayon::prelude::*;

use super::project::{for_each_covered_tile, Projected, ScreenGrad};
use super::{Real, TILE_SIZE};

/// Largest alpha a single Gaussian may reach, so that transmittance never hits zero.
pub const MAX_ALPHA: f64 = 0.99;
/// Alphas below this are skipped (they would not change an 8-bit image).
pub const MIN_ALPHA: f64 = 1.0 / 255.0;
/// A pixel stops once its transmittance would drop below this.
pub const MIN_TRANSMITTANCE: f64 = 1e-4;

/// Per-tile lists of Gaussian indices, front to back.
pub(crate) struct Bins {
    /// Start of each tile's list in `ids`; one more entry than tiles.
    pub offsets: Vec<usize>,
    pub ids: Vec<u32>,
}

/// Bins visible Gaussians into the tiles they can reach above the alpha floor and depth-sorts
/// each list.
pub(crate) fn bin<T: Real>(proj: &[Projected<T>], tiles_x: u32, tiles_y: u32) -> Bins {
    let n_tiles = (tiles_x * tiles_y) as usize;
    let mut counts = vec![0usize; n_tiles + 1];
    for p in proj.iter().filter(|p| p.visible) {
        for_each_covered_tile(p, |tx, ty| counts[(ty * tiles_x + tx) as usize + 1] += 1);
    }
    for t in 0..n_tiles {
        counts[t + 1] += counts[t];
    }
    let offsets = counts;
    let mut fill = offsets.clone();
    let mut ids = vec![0u32; offsets[n_tiles]];
    for (i, p) in proj.iter().enumerate().filter(|(_, p)| p.visible) {
        for_each_covered_tile(p, |tx, ty| {
            let t = (ty * tiles_x + tx) as usize;
            ids[fill[t]] = i as u32;
            fill[t] += 1;
        });
    }
    // Positive depths compare as their bit patterns; (depth bits, index) keys make the order
    // deterministic for equal depths.
    let depth_bits: Vec<u32> = proj
        .iter()
        .map(|p| p.depth.to_f32().unwrap_or(f32::MAX).to_bits())
        .collect();
    for_each_tile_slice(&offsets, &mut ids, |_, list| {
        let mut keys: Vec<u64> = list
            .iter()
            .map(|&g| (depth_bits[g as usize] as u64) << 32 | g as u64)
            .collect();
        keys.sort_unstable();
        for (d, k) in list.iter_mut().zip(&keys) {
            *d = *k as u32;
        }
    });
    Bins { offsets, ids }
}

/// Runs `f` over each tile's mutable slice of `data` in parallel.
fn for_each_tile_slice<U: Send, F: Fn(usize, &mut [U]) + Sync>(
    offsets: &[usize],
    data: &mut [U],
    f: F,
) {
    let mut slices = Vec::with_capacity(offsets.len() - 1);
    let mut rest = data;
    for t in 0..offsets.len() - 1 {
        let (head, tail) = rest.split_at_mut(offsets[t + 1] - offsets[t]);
        slices.push((t, head));
        rest = tail;
    }
    slices.into_par_iter().for_each(|(t, s)| f(t, s));
}

/// What the forward leaves for the backward, per pixel.
pub(crate) struct PixelState<T> {
    pub final_t: Vec<T>,
    /// Number of entries of the tile list walked before the pixel stopped (last blended + 1).
    pub n_contrib: Vec<u32>,
}

/// A Gaussian's screen-space data packed for the inner loop.
#[derive(Clone, Copy)]
struct Splat2d<T> {
    xy: [T; 2],
    conic: [T; 3],
    opacity: T,
    color: [T; 3],
    /// Below this exponent the alpha is surely under the threshold (checked before `exp`).
    min_power: T,
    /// Pixel-centre box outside which the alpha is below the threshold: [x0, y0, x1, y1].
    bbox: [f32; 4],
}

fn gather<T: Real>(proj: &[Projected<T>], list: &[u32]) -> Vec<Splat2d<T>> {
    list.iter()
        .map(|&g| {
            let p = &proj[g as usize];
            let o = p.opacity.to_f64().unwrap_or(0.0);
            // alpha >= 1/255 needs dᵀ Q d <= k with k = 2 ln(255 o): an ellipse whose box has
            // half-sides sqrt(k Σxx), sqrt(k Σyy), Σ = Q⁻¹. Margins keep the cull conservative
            // so that the exact test in `eval` still decides every pair that could count.
            let k = 2.0 * (o / MIN_ALPHA).ln();
            let [a, b, c] = p.conic.map(|v| v.to_f64().unwrap_or(0.0));
            let det = a * c - b * b;
            let bbox = if k <= 0.0 || det <= 0.0 {
                [1.0, 1.0, -1.0, -1.0]
            } else {
                let hx = (k * c / det).sqrt() * 1.001 + 1e-3;
                let hy = (k * a / det).sqrt() * 1.001 + 1e-3;
                let [x, y] = p.mean2d.map(|v| v.to_f64().unwrap_or(0.0));
                [
                    (x - hx) as f32,
                    (y - hy) as f32,
                    (x + hx) as f32,
                    (y + hy) as f32,
                ]
            };
            let min_power = T::from(-(0.5 * k) - 1e-4).unwrap_or_else(T::neg_infinity);
            Splat2d {
                xy: p.mean2d,
                conic: p.conic,
                opacity: p.opacity,
                color: p.color,
                min_power,
                bbox,
            }
        })
        .collect()
}

/// Pixels `first..=last` (within `lo_px..hi_px`) whose centres `[lo, hi]` reaches; None if none.
fn pixel_span(lo: f32, hi: f32, lo_px: u32, hi_px: u32) -> Option<(u32, u32)> {
    let first = (lo - 0.5).ceil().max(lo_px as f32);
    let last = (hi - 0.5).floor().min(hi_px as f32 - 1.0);
    (first <= last).then_some((first as u32, last as u32))
}

/// A tile's pixel rectangle.
#[derive(Clone, Copy)]
struct TileRect {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

impl TileRect {
    fn new(t: usize, tiles_x: u32, width: u32, height: u32) -> Self {
        let x0 = (t as u32 % tiles_x) * TILE_SIZE;
        let y0 = (t as u32 / tiles_x) * TILE_SIZE;
        Self {
            x0,
            y0,
            x1: (x0 + TILE_SIZE).min(width),
            y1: (y0 + TILE_SIZE).min(height),
        }
    }

    fn width(&self) -> usize {
        (self.x1 - self.x0) as usize
    }

    fn pixels(&self) -> usize {
        self.width() * (self.y1 - self.y0) as usize
    }

    /// The pixels of this tile inside a splat's box, as x and y ranges; None if none.
    fn clip(&self, bbox: &[f32; 4]) -> Option<((u32, u32), (u32, u32))> {
        Some((
            pixel_span(bbox[0], bbox[2], self.x0, self.x1)?,
            pixel_span(bbox[1], bbox[3], self.y0, self.y1)?,
        ))
    }
}

fn c<T: Real>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

/// 64-bit mixer (splitmix64 finaliser) for the signature of discrete decisions.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Evaluates one Gaussian at a pixel: (alpha, G, whether alpha hit the clamp); None when skipped.
#[inline(always)]
fn eval<T: Real>(s: &Splat2d<T>, px: T, py: T, max_a: T, min_a: T) -> Option<(T, T, bool, T, T)> {
    let dx = s.xy[0] - px;
    let dy = s.xy[1] - py;
    let half: T = c(0.5);
    let power = -half * (s.conic[0] * dx * dx + s.conic[2] * dy * dy) - s.conic[1] * dx * dy;
    if power > T::zero() || power < s.min_power {
        return None;
    }
    let g = power.exp();
    let raw = s.opacity * g;
    let clamped = raw > max_a;
    let alpha = if clamped { max_a } else { raw };
    if alpha < min_a {
        return None;
    }
    Some((alpha, g, clamped, dx, dy))
}

/// Composites every tile front to back. Returns the RGB image, per-pixel state, and the
/// signature of the blend decisions when `signature` is set.
///
/// Work is splat-major: each tile walks its depth-sorted list once and every splat updates
/// only the pixels inside its alpha box, so each pixel still sees its splats front to back
/// and gets exactly the arithmetic of a pixel-by-pixel loop.
pub(crate) fn forward<T: Real>(
    proj: &[Projected<T>],
    bins: &Bins,
    width: u32,
    height: u32,
    tiles_x: u32,
    bg: [T; 3],
    signature: bool,
) -> (Vec<T>, PixelState<T>, u64) {
    let (w, h) = (width as usize, height as usize);
    let n_tiles = bins.offsets.len() - 1;
    let max_a: T = c(MAX_ALPHA);
    let min_a: T = c(MIN_ALPHA);
    let min_t: T = c(MIN_TRANSMITTANCE);
    let half: T = c(0.5);
    type TileOut<T> = (usize, Vec<[T; 3]>, Vec<T>, Vec<u32>, u64);
    let tiles: Vec<TileOut<T>> = (0..n_tiles)
        .into_par_iter()
        .map(|t| {
            let list = &bins.ids[bins.offsets[t]..bins.offsets[t + 1]];
            let splats = gather(proj, list);
            let r = TileRect::new(t, tiles_x, width, height);
            let (tw, npix) = (r.width(), r.pixels());
            let mut col = vec![[T::zero(); 3]; npix];
            let mut tr = vec![T::one(); npix];
            let mut last = vec![0u32; npix];
            let mut done = vec![false; npix];
            let mut hash = vec![0u64; npix];
            let mut live = npix;
            for (j, s) in splats.iter().enumerate() {
                if live == 0 {
                    break;
                }
                let Some(((xa, xb), (ya, yb))) = r.clip(&s.bbox) else {
                    continue;
                };
                for y in ya..=yb {
                    let py = c::<T>(y as f64) + half;
                    let row = (y - r.y0) as usize * tw;
                    for x in xa..=xb {
                        let k = row + (x - r.x0) as usize;
                        if done[k] {
                            continue;
                        }
                        let px = c::<T>(x as f64) + half;
                        let Some((alpha, _, clamped, _, _)) = eval(s, px, py, max_a, min_a) else {
                            continue;
                        };
                        let next = tr[k] * (T::one() - alpha);
                        if next < min_t {
                            if signature {
                                hash[k] = mix(hash[k] ^ (list[j] as u64) ^ (1 << 40));
                            }
                            done[k] = true;
                            live -= 1;
                            continue;
                        }
                        for ch in 0..3 {
                            col[k][ch] = col[k][ch] + s.color[ch] * alpha * tr[k];
                        }
                        tr[k] = next;
                        last[k] = j as u32 + 1;
                        if signature {
                            hash[k] = mix(hash[k] ^ (list[j] as u64) ^ ((clamped as u64) << 41));
                        }
                    }
                }
            }
            let mut sig = 0u64;
            let rgb: Vec<[T; 3]> = col
                .iter()
                .zip(&tr)
                .map(|(cc, &t)| [cc[0] + t * bg[0], cc[1] + t * bg[1], cc[2] + t * bg[2]])
                .collect();
            if signature {
                for (k, hk) in hash.iter().enumerate() {
                    let (x, y) = (r.x0 as usize + k % tw, r.y0 as usize + k / tw);
                    sig = sig.wrapping_add(mix(hk ^ ((y as u64) << 20 | x as u64)));
                }
            }
            (t, rgb, tr, last, sig)
        })
        .collect();
    let mut image = vec![T::zero(); w * h * 3];
    let mut final_t = vec![T::zero(); w * h];
    let mut n_contrib = vec![0u32; w * h];
    let mut sig = 0u64;
    for (t, rgb, fin, ncon, s) in tiles {
        let r = TileRect::new(t, tiles_x, width, height);
        let tw = r.width();
        for (k, ((c3, f), n)) in rgb.iter().zip(&fin).zip(&ncon).enumerate() {
            let p = (r.y0 as usize + k / tw) * w + r.x0 as usize + k % tw;
            image[p * 3..p * 3 + 3].copy_from_slice(c3);
            final_t[p] = *f;
            n_contrib[p] = *n;
        }
        sig = sig.wrapping_add(s);
    }
    (image, PixelState { final_t, n_contrib }, sig)
}

/// Backward of [`forward`]: screen-space gradients per tile-list entry, summed per Gaussian.
///
/// Splat-major like the forward, back to front: each pixel keeps its running transmittance
/// and the colour behind, and each splat sums its own gradient over its pixels.
pub(crate) fn backward<T: Real>(
    proj: &[Projected<T>],
    bins: &Bins,
    state: &PixelState<T>,
    d_image: &[T],
    width: u32,
    height: u32,
    tiles_x: u32,
    bg: [T; 3],
) -> Vec<ScreenGrad<T>> {
    let w = width as usize;
    let max_a: T = c(MAX_ALPHA);
    let min_a: T = c(MIN_ALPHA);
    let half: T = c(0.5);
    let mut entry_grads = vec![ScreenGrad::<T>::default(); bins.ids.len()];
    for_each_tile_slice(&bins.offsets, &mut entry_grads, |t, grads| {
        if grads.is_empty() {
            return;
        }
        let list = &bins.ids[bins.offsets[t]..bins.offsets[t + 1]];
        let splats = gather(proj, list);
        let r = TileRect::new(t, tiles_x, width, height);
        let (tw, npix) = (r.width(), r.pixels());
        // Per-pixel state of the walk from the back.
        let mut tr = vec![T::zero(); npix];
        let mut behind = vec![[T::zero(); 3]; npix];
        let mut last_alpha = vec![T::zero(); npix];
        let mut last_color = vec![[T::zero(); 3]; npix];
        let mut dl = vec![[T::zero(); 3]; npix];
        let mut ncon = vec![0usize; npix];
        let mut t_final = vec![T::zero(); npix];
        let mut bg_dot = vec![T::zero(); npix];
        let mut max_n = 0;
        for k in 0..npix {
            let p = (r.y0 as usize + k / tw) * w + r.x0 as usize + k % tw;
            ncon[k] = state.n_contrib[p] as usize;
            max_n = max_n.max(ncon[k]);
            t_final[k] = state.final_t[p];
            tr[k] = t_final[k];
            dl[k] = [d_image[p * 3], d_image[p * 3 + 1], d_image[p * 3 + 2]];
            bg_dot[k] = bg[0] * dl[k][0] + bg[1] * dl[k][1] + bg[2] * dl[k][2];
        }
        for j in (0..max_n).rev() {
            let s = &splats[j];
            let Some(((xa, xb), (ya, yb))) = r.clip(&s.bbox) else {
                continue;
            };
            let mut e = ScreenGrad::<T>::default();
            for y in ya..=yb {
                let py = c::<T>(y as f64) + half;
                let row = (y - r.y0) as usize * tw;
                for x in xa..=xb {
                    let k = row + (x - r.x0) as usize;
                    if j >= ncon[k] {
                        continue;
                    }
                    let px = c::<T>(x as f64) + half;
                    let Some((alpha, g, clamped, dx, dy)) = eval(s, px, py, max_a, min_a) else {
                        continue;
                    };
                    let one_m = T::one() - alpha;
                    tr[k] = tr[k] / one_m;
                    let wgt = alpha * tr[k];
                    let mut d_alpha = T::zero();
                    for ch in 0..3 {
                        behind[k][ch] = last_alpha[k] * last_color[k][ch]
                            + (T::one() - last_alpha[k]) * behind[k][ch];
                        last_color[k][ch] = s.color[ch];
                        d_alpha = d_alpha + (s.color[ch] - behind[k][ch]) * dl[k][ch];
                        e.color[ch] = e.color[ch] + wgt * dl[k][ch];
                    }
                    d_alpha = d_alpha * tr[k] - t_final[k] / one_m * bg_dot[k];
                    last_alpha[k] = alpha;
                    if clamped {
                        // alpha = MAX_ALPHA does not depend on the Gaussian here.
                        continue;
                    }
                    e.opacity = e.opacity + g * d_alpha;
                    let d_g = s.opacity * d_alpha * g;
                    // d power / d(dx, dy), with d = mean2d - pixel.
                    e.mean2d[0] = e.mean2d[0] + d_g * (-s.conic[0] * dx - s.conic[1] * dy);
                    e.mean2d[1] = e.mean2d[1] + d_g * (-s.conic[2] * dy - s.conic[1] * dx);
                    e.conic[0] = e.conic[0] - half * d_g * dx * dx;
                    e.conic[1] = e.conic[1] - d_g * dx * dy;
                    e.conic[2] = e.conic[2] - half * d_g * dy * dy;
                }
            }
            grads[j] = e;
        }
    });
    let mut out = vec![ScreenGrad::<T>::default(); proj.len()];
    for (e, &g) in entry_grads.iter().zip(&bins.ids) {
        let o = &mut out[g as usize];
        for k in 0..2 {
            o.mean2d[k] = o.mean2d[k] + e.mean2d[k];
        }
        for k in 0..3 {
            o.conic[k] = o.conic[k] + e.conic[k];
            o.color[k] = o.color[k] + e.color[k];
        }
        o.opacity = o.opacity + e.opacity;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every pixel that blends a Gaussian (the compositor's own test, `eval`) lies in a tile
    /// that the tile cover keeps, for thin, rotated, tiny, huge, faint and opaque Gaussians;
    /// and the cover does drop tiles (else it would be pointless).
    #[test]
    fn tile_cover_keeps_every_blending_pixel() {
        let (w, h) = (160u32, 112u32);
        let (tiles_x, tiles_y) = (w.div_ceil(TILE_SIZE), h.div_ceil(TILE_SIZE));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut kept, mut full) = (0usize, 0usize);
        for _ in 0..3000 {
            // Covariance from random axes (0.05 to 60 px) and angle, as the projection makes it.
            let (s1, s2): (f32, f32) = (
                0.05 * 1200f32.powf(rng.random::<f32>()),
                0.05 * 1200f32.powf(rng.random::<f32>()),
            );
            let th: f32 = rng.random::<f32>() * std::f32::consts::PI;
            let (cs, sn) = (th.cos(), th.sin());
            let sa = cs * cs * s1 * s1 + sn * sn * s2 * s2 + 0.3;
            let sb = cs * sn * (s1 * s1 - s2 * s2);
            let sc = sn * sn * s1 * s1 + cs * cs * s2 * s2 + 0.3;
            let det = sa * sc - sb * sb;
            let opacity = if rng.random::<f32>() < 0.2 {
                0.99
            } else {
                rng.random::<f32>()
            };
            let p = Projected {
                visible: true,
                mean2d: [
                    rng.random_range(-40.0..200.0),
                    rng.random_range(-40.0..150.0),
                ],
                conic: [sc / det, -sb / det, sa / det],
                opacity,
                rect: [0, 0, tiles_x, tiles_y],
                ..Default::default()
            };
            let mut covered = vec![false; (tiles_x * tiles_y) as usize];
            for_each_covered_tile(&p, |tx, ty| covered[(ty * tiles_x + tx) as usize] = true);
            kept += covered.iter().filter(|&&c| c).count();
            full += covered.len();
            let s = gather(std::slice::from_ref(&p), &[0])[0];
            for y in 0..h {
                for x in 0..w {
                    let hit = eval(&s, x as f32 + 0.5, y as f32 + 0.5, 0.99, 1.0 / 255.0);
                    let t = ((y / TILE_SIZE) * tiles_x + x / TILE_SIZE) as usize;
                    assert!(
                        hit.is_none() || covered[t],
                        "pixel ({x}, {y}) blends {p:?} but its tile was dropped"
                    );
                }
            }
        }
        assert!(kept * 2 < full, "cover kept {kept} of {full} tiles");
    }
}
