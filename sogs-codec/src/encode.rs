//! Gaussians -> SOG version 2 images and meta.json.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rayon::prelude::*;
use splat_core::gaussians::{sh_coeffs_for_degree, sigmoid};
use splat_core::Gaussians;

use crate::error::SogError;
use crate::importance;
use crate::kmeans;
use crate::meta::{Asset, CodebookMeta, FilesMeta, MeansMeta, MetaV2, ShNMeta};
use crate::order::{self, PlasOptions};
use crate::quant::{build_codebook, log_transform, pack_quat, quantize_range};
use crate::webp::{self, Rgba, MAX_SIDE};

/// How Gaussians are laid out on the texture grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortMode {
    /// Z-order of positions, as splat-transform sorts.
    Morton,
    /// Hilbert order of positions: as fast as Morton and, having no jumps, gives smoother rows and
    /// smaller files (0.5 % on the lego scene); the default.
    Hilbert,
    /// Hilbert order refined by a PLAS-style self-organizing sort over all attributes. Smaller
    /// scale/colour images but a larger high-byte position image (Hilbert rows keep long runs of
    /// equal high bytes; any 2-D reshuffle breaks them): on the lego scene without SH 5.02 MB
    /// against Hilbert's 4.70 MB, and position-weighted or Hilbert-seeded local variants lose
    /// too (BENCHMARKS.md), so this is for experiments, not the default.
    Plas,
}

/// Encoder settings.
#[derive(Clone, Debug)]
pub struct EncodeOptions {
    /// SH bands above DC to keep (capped at the input's degree); `None` keeps them all.
    pub sh_bands: Option<usize>,
    /// Texel layout.
    pub sort: SortMode,
    /// Seed of every random choice (k-means seeding, sort grouping): same seed, same bytes.
    pub seed: u64,
    /// Lloyd iterations per k-means node of the SH palette.
    pub kmeans_iterations: usize,
    /// Global Lloyd iterations over the whole SH palette after the hierarchical k-means
    /// (`kmeans::refine`); 0 keeps the hierarchy's palette.
    pub palette_refine_iterations: usize,
    /// Virtual views whose blending weights weight the SH palette ([`crate::visibility`]),
    /// so SH error goes where it shows; `Some(0)` weighs all Gaussians alike, `None` picks
    /// [`auto_visibility_views`].
    pub palette_visibility_views: Option<usize>,
    /// Per-Gaussian weights for the SH palette (non-negative, one per input Gaussian), e.g. each
    /// Gaussian's blending weight summed over the capture's training views; when given, they
    /// replace the virtual views (on lego, training-view weights gave 0.08 dB more).
    pub palette_weights: Option<Vec<f32>>,
    /// SH palette size; `None` uses splat-transform's rule (a power of two ≤ N, at most 65 536).
    pub palette_size: Option<usize>,
    /// libwebp lossless effort 0..=9 (higher: smaller, slower).
    pub webp_effort: u8,
    /// Settings of [`SortMode::Plas`].
    pub plas: PlasOptions,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            sh_bands: None,
            sort: SortMode::Hilbert,
            seed: 0,
            kmeans_iterations: 10,
            palette_refine_iterations: 3,
            palette_visibility_views: None,
            palette_weights: None,
            palette_size: None,
            webp_effort: 4,
            plas: PlasOptions::default(),
        }
    }
}

/// Encoder stages, reported through the progress callback in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Ordering the Gaussians on the grid.
    Sort,
    /// Positions, rotations, scales, colours and opacities.
    Quantize,
    /// Rendering virtual views for the SH palette's weights (`done`/`total` count views).
    Visibility,
    /// k-means of the higher SH bands (`done`/`total` count Gaussians).
    ShPalette,
    /// Lossless WebP encoding (`done`/`total` count images).
    Webp,
}

/// One progress report: `done` of `total` units of `stage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The stage running.
    pub stage: Stage,
    /// Units finished.
    pub done: usize,
    /// Units in the stage.
    pub total: usize,
}

/// An encoded SOG: meta.json plus its WebP images, ready to write as a folder or a bundle.
#[derive(Clone, Debug)]
pub struct SogFiles {
    /// The meta.json content.
    pub meta: MetaV2,
    /// `(file name, WebP bytes)` in bundle order.
    pub images: Vec<(String, Vec<u8>)>,
    /// Texel -> input Gaussian: decoded Gaussian `t` came from input Gaussian `order[t]`.
    pub order: Vec<u32>,
}

impl SogFiles {
    /// meta.json as compact JSON.
    pub fn meta_json(&self) -> Vec<u8> {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_vec(&self.meta).unwrap_or_default()
    }

    /// Every file, meta.json last, as the bundle stores them.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut e = self.images.clone();
        e.push(("meta.json".to_string(), self.meta_json()));
        e
    }

    /// Total bytes of all files (the folder size).
    pub fn total_bytes(&self) -> usize {
        self.images.iter().map(|(_, d)| d.len()).sum::<usize>() + self.meta_json().len()
    }
}

/// Grid of SOG v2: width a multiple of 4 near √N, height the multiple of 4 that fits N.
pub fn grid_size(n: usize) -> (usize, usize) {
    let w = 4 * ((n as f64).sqrt() / 4.0).ceil() as usize;
    let w = w.max(4);
    let h = 4 * n.div_ceil(4 * w).max(1);
    (w, h)
}

/// Side in pixels of the virtual views of [`crate::visibility`].
pub const VISIBILITY_SIZE: u32 = 256;

/// Virtual views for the palette weights: 24 (12 gave 0.03 dB less on the lego scene),
/// fewer above ~400k Gaussians so that rendering costs at most ~9M Gaussian-views, at least 8.
pub fn auto_visibility_views(n: usize) -> usize {
    (9_000_000 / n.max(1)).clamp(8, 24)
}

/// splat-transform's palette size: the largest power of two ≤ N/1024 (capped at 64), times 1024.
pub fn default_palette_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let e = ((n as f64) / 1024.0).log2().floor();
    ((2f64.powf(e).min(64.0) * 1024.0).round() as usize).clamp(1, n)
}

fn validate(g: &Gaussians) -> Result<(), SogError> {
    g.check_lengths()
        .map_err(|reason| SogError::InvalidInput { reason })?;
    if g.sh_degree > 3 {
        return Err(SogError::InvalidInput {
            reason: format!("SH degree {} (at most 3)", g.sh_degree),
        });
    }
    if g.is_empty() {
        return Err(SogError::InvalidInput {
            reason: "no Gaussians".into(),
        });
    }
    if let Some((count, first_index)) = g.non_finite() {
        return Err(SogError::NonFinite { count, first_index });
    }
    let (w, h) = grid_size(g.len());
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(SogError::InvalidInput {
            reason: format!(
                "{} Gaussians need a {w}x{h} grid; WebP allows {MAX_SIDE} per side",
                g.len()
            ),
        });
    }
    Ok(())
}

/// Features the self-organizing sort compares: standardised log-positions, DC colour, log-scales
/// and opacity; positions and colour weigh most because they drive the largest images.
fn sort_features(g: &Gaussians) -> (Vec<f32>, usize) {
    const DIM: usize = 10;
    const WEIGHTS: [f32; DIM] = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5];
    let coeffs = g.sh_coeffs();
    let raw = |i: usize| -> [f32; DIM] {
        let m = g.means[i].map(|v| log_transform(v as f64) as f32);
        let s = &g.sh[i * coeffs * 3..];
        let l = g.log_scales[i];
        [
            m[0],
            m[1],
            m[2],
            s[0],
            s[1],
            s[2],
            l[0],
            l[1],
            l[2],
            sigmoid(g.opacity_logits[i]),
        ]
    };
    let n = g.len();
    let mut f: Vec<f32> = Vec::with_capacity(n * DIM);
    for i in 0..n {
        f.extend_from_slice(&raw(i));
    }
    for d in 0..DIM {
        let mean = (0..n).map(|i| f[i * DIM + d] as f64).sum::<f64>() / n as f64;
        let var = (0..n)
            .map(|i| (f[i * DIM + d] as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let inv = if var > 0.0 {
            WEIGHTS[d] as f64 / var.sqrt()
        } else {
            0.0
        };
        for i in 0..n {
            f[i * DIM + d] = ((f[i * DIM + d] as f64 - mean) * inv) as f32;
        }
    }
    (f, DIM)
}

/// Weights with a floor of 1e-3 of their mean: Gaussians no view sees keep a little weight
/// (other cameras may see them) and every weight stays positive.
fn floored(v: Vec<f32>) -> Vec<f32> {
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
    let floor = ((1e-3 * mean) as f32).max(f32::MIN_POSITIVE);
    v.into_iter().map(|x| x.max(floor)).collect()
}

/// Compresses Gaussians to SOG version 2. `progress` is called on the calling thread.
pub fn encode_sog(
    g: &Gaussians,
    opts: &EncodeOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<SogFiles, SogError> {
    validate(g)?;
    if opts.webp_effort > 9 {
        return Err(SogError::InvalidInput {
            reason: format!("WebP effort {} (0..=9)", opts.webp_effort),
        });
    }
    let n = g.len();
    if let Some(pw) = &opts.palette_weights {
        if pw.len() != n || pw.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(SogError::InvalidInput {
                reason: format!(
                    "palette weights: {} values for {n} Gaussians, all finite and >= 0 needed",
                    pw.len()
                ),
            });
        }
    }
    let (w, h) = grid_size(n);
    let bands = opts.sh_bands.unwrap_or(g.sh_degree).min(g.sh_degree);

    // Layout.
    progress(Progress {
        stage: Stage::Sort,
        done: 0,
        total: 1,
    });
    let mut order = match opts.sort {
        SortMode::Morton => order::morton_order(&g.means),
        SortMode::Hilbert | SortMode::Plas => order::hilbert_order(&g.means),
    };
    if opts.sort == SortMode::Plas {
        let (feats, dim) = sort_features(g);
        let plas = PlasOptions {
            seed: opts.seed ^ opts.plas.seed,
            ..opts.plas.clone()
        };
        order = order::plas_order(&feats, dim, w, order, &plas, &mut |d, t| {
            progress(Progress {
                stage: Stage::Sort,
                done: d,
                total: t + 1,
            })
        });
    }
    progress(Progress {
        stage: Stage::Sort,
        done: 1,
        total: 1,
    });

    // Per-Gaussian images.
    progress(Progress {
        stage: Stage::Quantize,
        done: 0,
        total: 4,
    });
    let mut means_l = Rgba::zeroed(w, h);
    let mut means_u = Rgba::zeroed(w, h);
    let mut mins = [f64::INFINITY; 3];
    let mut maxs = [f64::NEG_INFINITY; 3];
    for p in &g.means {
        for a in 0..3 {
            let v = log_transform(p[a] as f64);
            mins[a] = mins[a].min(v);
            maxs[a] = maxs[a].max(v);
        }
    }
    for (t, &s) in order.iter().enumerate() {
        let p = g.means[s as usize];
        for a in 0..3 {
            let q = quantize_range(log_transform(p[a] as f64), mins[a], maxs[a], 65535);
            means_l.data[t * 4 + a] = (q & 0xff) as u8;
            means_u.data[t * 4 + a] = (q >> 8) as u8;
        }
        means_l.data[t * 4 + 3] = 255;
        means_u.data[t * 4 + 3] = 255;
    }
    progress(Progress {
        stage: Stage::Quantize,
        done: 1,
        total: 4,
    });

    let mut quats = Rgba::zeroed(w, h);
    quats.data[..n * 4]
        .par_chunks_mut(4)
        .zip(order.par_iter())
        .for_each(|(px, &s)| px.copy_from_slice(&pack_quat(g.quats[s as usize])));
    progress(Progress {
        stage: Stage::Quantize,
        done: 2,
        total: 4,
    });

    let all_scales: Vec<f32> = g.log_scales.iter().flatten().copied().collect();
    let scale_cb = build_codebook(&all_scales, None);
    drop(all_scales);
    let mut scales = Rgba::zeroed(w, h);
    scales.data[..n * 4]
        .par_chunks_mut(4)
        .zip(order.par_iter())
        .for_each(|(px, &s)| {
            let l = g.log_scales[s as usize];
            px.copy_from_slice(&[
                scale_cb.index(l[0]),
                scale_cb.index(l[1]),
                scale_cb.index(l[2]),
                255,
            ]);
        });
    progress(Progress {
        stage: Stage::Quantize,
        done: 3,
        total: 4,
    });

    let coeffs = g.sh_coeffs();
    let dc: Vec<f32> = (0..n)
        .flat_map(|i| g.sh[i * coeffs * 3..i * coeffs * 3 + 3].to_vec())
        .collect();
    let dc_cb = build_codebook(&dc, None);
    let mut sh0 = Rgba::zeroed(w, h);
    sh0.data[..n * 4]
        .par_chunks_mut(4)
        .zip(order.par_iter())
        .for_each(|(px, &s)| {
            let s = s as usize;
            let a = (sigmoid(g.opacity_logits[s] as f64) * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8;
            px.copy_from_slice(&[
                dc_cb.index(dc[s * 3]),
                dc_cb.index(dc[s * 3 + 1]),
                dc_cb.index(dc[s * 3 + 2]),
                a,
            ]);
        });
    drop(dc);
    progress(Progress {
        stage: Stage::Quantize,
        done: 4,
        total: 4,
    });

    let mut images: Vec<(String, Rgba)> = vec![
        ("means_l.webp".into(), means_l),
        ("means_u.webp".into(), means_u),
        ("quats.webp".into(), quats),
        ("scales.webp".into(), scales),
        ("sh0.webp".into(), sh0),
    ];

    // Higher SH bands: palette by k-means, palette values by a 1-D codebook weighted by use.
    let mut sh_meta = None;
    if bands > 0 {
        let k_rest = sh_coeffs_for_degree(bands) - 1;
        let dim = k_rest * 3;
        let mut data = vec![0f32; n * dim];
        data.par_chunks_mut(dim).enumerate().for_each(|(i, row)| {
            // Coefficient-major (j, c) in both layouts; bands above `bands` are dropped.
            row.copy_from_slice(&g.sh[(i * coeffs + 1) * 3..(i * coeffs + 1 + k_rest) * 3]);
        });
        let p = opts
            .palette_size
            .unwrap_or_else(|| default_palette_size(n))
            .clamp(1, 65536)
            .min(n);
        let done = AtomicUsize::new(0);
        let vis_views = opts
            .palette_visibility_views
            .unwrap_or_else(|| auto_visibility_views(n));
        let weights: Option<Vec<f32>> = if let Some(w) = &opts.palette_weights {
            Some(floored(w.clone()))
        } else if vis_views > 0 {
            Some(floored(importance::visibility(
                g,
                vis_views,
                VISIBILITY_SIZE,
                &mut |d, t| {
                    progress(Progress {
                        stage: Stage::Visibility,
                        done: d,
                        total: t,
                    })
                },
            )))
        } else {
            None
        };
        let wts = weights.as_deref();
        let pal = std::thread::scope(|scope| {
            let job = scope.spawn(|| {
                let mut pal = kmeans::palette(
                    &data,
                    dim,
                    p,
                    opts.kmeans_iterations,
                    opts.seed,
                    wts,
                    &|d, _| done.store(d, Ordering::Relaxed),
                );
                kmeans::refine(&data, dim, &mut pal, opts.palette_refine_iterations, wts);
                pal
            });
            while !job.is_finished() {
                progress(Progress {
                    stage: Stage::ShPalette,
                    done: done.load(Ordering::Relaxed),
                    total: n,
                });
                std::thread::sleep(Duration::from_millis(50));
            }
            job.join()
        })
        .map_err(|_| SogError::InvalidInput {
            reason: "SH clustering thread panicked".into(),
        })?;
        progress(Progress {
            stage: Stage::ShPalette,
            done: n,
            total: n,
        });
        drop(data);
        let count = pal.len();
        let weights: Vec<f32> = pal
            .sizes
            .iter()
            .flat_map(|&s| std::iter::repeat_n(s as f32, dim))
            .collect();
        let cb = build_codebook(&pal.centroids, Some(&weights));
        let cw = 64 * k_rest;
        let ch = count.div_ceil(64);
        let mut cent = Rgba::zeroed(cw, ch);
        for c in 0..count {
            let (x0, y) = ((c % 64) * k_rest, c / 64);
            for j in 0..k_rest {
                let o = (y * cw + x0 + j) * 4;
                for ch_ in 0..3 {
                    cent.data[o + ch_] = cb.index(pal.centroids[c * dim + j * 3 + ch_]);
                }
                cent.data[o + 3] = 255;
            }
        }
        let mut labels = Rgba::zeroed(w, h);
        labels.data[..n * 4]
            .par_chunks_mut(4)
            .zip(order.par_iter())
            .for_each(|(px, &s)| {
                let l = pal.labels[s as usize];
                px.copy_from_slice(&[(l & 0xff) as u8, (l >> 8) as u8, 0, 255]);
            });
        images.push(("shN_centroids.webp".into(), cent));
        images.push(("shN_labels.webp".into(), labels));
        sh_meta = Some(ShNMeta {
            count,
            bands,
            codebook: cb.values,
            files: vec!["shN_centroids.webp".into(), "shN_labels.webp".into()],
        });
    }

    // WebP, in parallel; progress is reported from here as images finish.
    let total = images.len();
    let finished = AtomicUsize::new(0);
    let effort = opts.webp_effort;
    let encoded: Vec<Result<(String, Vec<u8>), SogError>> = std::thread::scope(|scope| {
        let job = scope.spawn(|| {
            images
                .par_iter()
                .map(|(name, img)| {
                    let r = webp::encode_lossless(name, img, effort).map(|b| (name.clone(), b));
                    finished.fetch_add(1, Ordering::Relaxed);
                    r
                })
                .collect()
        });
        while !job.is_finished() {
            progress(Progress {
                stage: Stage::Webp,
                done: finished.load(Ordering::Relaxed),
                total,
            });
            std::thread::sleep(Duration::from_millis(50));
        }
        job.join().unwrap_or_else(|_| {
            vec![Err(SogError::Encode {
                name: "images".into(),
                reason: "encoder thread panicked".into(),
            })]
        })
    });
    let images = encoded.into_iter().collect::<Result<Vec<_>, _>>()?;
    progress(Progress {
        stage: Stage::Webp,
        done: total,
        total,
    });

    let meta = MetaV2 {
        version: 2,
        asset: Some(Asset {
            generator: format!("spaceport sogs-codec {}", env!("CARGO_PKG_VERSION")),
        }),
        count: n,
        means: MeansMeta {
            mins,
            maxs,
            files: vec!["means_l.webp".into(), "means_u.webp".into()],
        },
        scales: CodebookMeta {
            codebook: scale_cb.values,
            files: vec!["scales.webp".into()],
        },
        quats: FilesMeta {
            files: vec!["quats.webp".into()],
        },
        sh0: CodebookMeta {
            codebook: dc_cb.values,
            files: vec!["sh0.webp".into()],
        },
        shN: sh_meta,
    };
    Ok(SogFiles {
        meta,
        images,
        order,
    })
}
