//! `CudaMatcher`: sfm-core's [`FeatureBackend`] with descriptor matching on the GPU
//! (kernels/match.cu) and SIFT extraction on the CPU (the trait's default).
//!
//! Every descriptor set is uploaded once; pairs go to the device in batches (one launch
//! each), and while the device works on one batch the host turns the previous one's nearest
//! neighbours into matches with sfm-core's own checks (`select_matches`) and hands them to the
//! caller on rayon's threads (where SfM verifies them).

use std::sync::Mutex;

use cudarc::driver::CudaSlice;
use rayon::prelude::*;
use sfm_core::backend::{
    check_pairs, select_matches, DescriptorSet, MatchOptions, NearestTwo, PairSink,
};
use sfm_core::{FeatureBackend, FeatureBackendError};
use splat_core::BackendError;

use crate::args::{In, MatchNearest, Out};
use crate::device::{uninit, Marks};
use crate::CudaBackend;

/// Floats per descriptor (kernels/match.cu: DESC_DIM).
pub(crate) const DESC_DIM: usize = 128;
/// Rows of A per block (kernels/match.cu: MATCH_ROWS).
pub(crate) const MATCH_ROWS: usize = 64;
/// Threads per block (kernels/match.cu: MATCH_THREADS).
pub(crate) const MATCH_THREADS: u32 = 256;
/// Ints per pair in the pair table (kernels/match.cu: PAIR_FIELDS).
pub(crate) const PAIR_FIELDS: usize = 6;
/// Pairs per launch at most (the grid's y extent).
const BATCH_PAIRS: usize = 256;
/// Rows of A per launch at most, which bounds the result buffers (16 bytes per row of A and
/// 8 per column of B).
const BATCH_ROWS: usize = 1 << 20;

/// Descriptor matching on an NVIDIA GPU, SIFT extraction on the CPU. All descriptor sets of a
/// `match_pairs` call are on the device at once (512 bytes a descriptor: 4 MiB for an image of
/// 8192 features); a set that does not fit in 90% of the free memory is refused with the
/// numbers rather than matched in parts.
pub struct CudaMatcher {
    be: CudaBackend,
}

fn device_err(what: &'static str) -> impl Fn(cudarc::driver::DriverError) -> FeatureBackendError {
    move |e| FeatureBackendError::Device(format!("{what}: {e:?}"))
}

fn from_backend(e: BackendError) -> FeatureBackendError {
    match e {
        BackendError::Unavailable(why) => FeatureBackendError::Unavailable(why),
        other => FeatureBackendError::Device(other.to_string()),
    }
}

/// The score of a key of kernels/match.cu (`score_key`), and f32::MIN for the empty key 0,
/// which is the CPU's starting value where a row or column has no candidate.
fn key_score(key: u64) -> f32 {
    if key == 0 {
        return f32::MIN;
    }
    let u = (key >> 32) as u32;
    f32::from_bits(if u & 0x8000_0000 != 0 {
        u & 0x7fff_ffff
    } else {
        !u
    })
}

/// The index of a key (0 for the empty key, the CPU's starting index).
fn key_index(key: u64) -> u32 {
    if key == 0 {
        return 0;
    }
    0xffff_ffff - key as u32
}

/// One launch's pairs: positions in the request and where each pair's results start.
struct Batch {
    /// Positions in `pairs` of the request.
    ks: std::ops::Range<usize>,
    /// The pair table (PAIR_FIELDS ints per pair).
    table: Vec<i32>,
    /// Rows of A and columns of B of all its pairs.
    rows: usize,
    cols: usize,
    /// The largest A of the batch, in blocks of MATCH_ROWS.
    row_blocks: u32,
}

impl CudaMatcher {
    /// Opens device 0; `Unavailable` when there is no driver or no device.
    pub fn new() -> Result<Self, FeatureBackendError> {
        Ok(CudaMatcher {
            be: CudaBackend::new().map_err(from_backend)?,
        })
    }

    /// A matcher on the context, stream and kernels of an open backend.
    pub fn on(backend: &CudaBackend) -> Self {
        CudaMatcher {
            be: backend.share(),
        }
    }

    /// The device's nearest neighbours for every pair, in the order of `pairs` (what
    /// `match_pairs` selects matches from; the parity tests compare them with
    /// `sfm_core::backend::nearest_two`).
    pub fn nearest_two(
        &self,
        descs: &[DescriptorSet],
        pairs: &[(usize, usize)],
    ) -> Result<Vec<NearestTwo>, FeatureBackendError> {
        let slots: Vec<Mutex<Option<NearestTwo>>> =
            pairs.iter().map(|_| Mutex::new(None)).collect();
        self.run(descs, pairs, &|k, n| {
            *slots[k].lock().unwrap_or_else(|e| e.into_inner()) = Some(n);
        })?;
        slots
            .into_iter()
            .enumerate()
            .map(|(k, s)| {
                s.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .ok_or_else(|| FeatureBackendError::Device(format!("pair {k} got no result")))
            })
            .collect()
    }

    /// Splits the pairs into launches.
    fn batches(
        descs: &[DescriptorSet],
        pairs: &[(usize, usize)],
        first_row: &[usize],
    ) -> Vec<Batch> {
        let mut out: Vec<Batch> = Vec::new();
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let (na, nb) = (descs[i].n, descs[j].n);
            // A pair larger than BATCH_ROWS on its own still gets a launch of its own.
            let fits = out
                .last()
                .is_some_and(|b| b.ks.len() < BATCH_PAIRS && b.rows + na <= BATCH_ROWS);
            if !fits {
                out.push(Batch {
                    ks: k..k,
                    table: Vec::new(),
                    rows: 0,
                    cols: 0,
                    row_blocks: 0,
                });
            }
            let b = out.last_mut().expect("a batch was just pushed");
            b.table
                .extend([first_row[i], na, first_row[j], nb, b.rows, b.cols].map(|v| v as i32));
            b.rows += na;
            b.cols += nb;
            b.row_blocks = b.row_blocks.max(na.div_ceil(MATCH_ROWS) as u32);
            b.ks.end = k + 1;
        }
        out
    }

    /// Computes every pair's nearest neighbours on the device and calls `each(k, neighbours)`
    /// on rayon's threads, overlapping the host work of one batch with the next launch.
    /// Returns the device seconds of the launches.
    fn run(
        &self,
        descs: &[DescriptorSet],
        pairs: &[(usize, usize)],
        each: &(dyn Fn(usize, NearestTwo) + Sync),
    ) -> Result<f64, FeatureBackendError> {
        check_pairs(descs, pairs)?;
        if let Some((i, d)) = descs
            .iter()
            .enumerate()
            .find(|(_, d)| d.data.len() != d.n * DESC_DIM)
        {
            return Err(FeatureBackendError::InvalidInput(format!(
                "descriptor set {i}: {} floats for {} descriptors of {DESC_DIM}",
                d.data.len(),
                d.n
            )));
        }
        if pairs.is_empty() {
            return Ok(0.0);
        }
        let mut first_row = Vec::with_capacity(descs.len());
        let mut total = 0usize;
        for d in descs {
            first_row.push(total);
            total += d.n;
        }
        if total > i32::MAX as usize / 2 {
            return Err(FeatureBackendError::InvalidInput(format!(
                "{total} descriptors in all: more than the kernel's 32-bit row offsets hold"
            )));
        }
        let batches = Self::batches(descs, pairs, &first_row);
        let max_rows = batches.iter().map(|b| b.rows).max().unwrap_or(0);
        let max_cols = batches.iter().map(|b| b.cols).max().unwrap_or(0);
        let need = (total * DESC_DIM * 4 + max_rows * 16 + max_cols * 8) as u64;
        let (free, _) = self.be.memory_info().map_err(from_backend)?;
        if need > free / 10 * 9 {
            return Err(FeatureBackendError::Device(format!(
                "matching needs {:.2} GiB of device memory ({total} descriptors), {:.2} GiB are free",
                need as f64 / (1u64 << 30) as f64,
                free as f64 / (1u64 << 30) as f64
            )));
        }
        self.be.bind().map_err(from_backend)?;
        let s = self.be.stream().clone();
        let mut desc: CudaSlice<f32> =
            uninit(&s, total * DESC_DIM).map_err(device_err("allocating descriptors"))?;
        for (d, &at) in descs.iter().zip(&first_row) {
            if d.n > 0 {
                let mut dst = desc.slice_mut(at * DESC_DIM..(at + d.n) * DESC_DIM);
                s.memcpy_htod(&d.data, &mut dst)
                    .map_err(device_err("uploading descriptors"))?;
            }
        }
        let rows: CudaSlice<u64> =
            uninit(&s, 2 * max_rows).map_err(device_err("allocating results"))?;
        let mut cols: CudaSlice<u64> =
            uninit(&s, max_cols).map_err(device_err("allocating results"))?;
        let mut table: CudaSlice<i32> = uninit(&s, BATCH_PAIRS * PAIR_FIELDS)
            .map_err(device_err("allocating the pair table"))?;
        let marks = Marks::new(2).map_err(device_err("creating events"))?;
        let launch = |b: &Batch,
                      table: &mut CudaSlice<i32>,
                      cols: &mut CudaSlice<u64>|
         -> Result<(), FeatureBackendError> {
            s.memcpy_htod(&b.table, &mut table.slice_mut(0..b.table.len()))
                .map_err(device_err("uploading the pair table"))?;
            marks
                .record(0, &s)
                .map_err(device_err("recording an event"))?;
            // The kernel takes each column's best by atomicMax over 0, the empty key.
            s.memset_zeros(&mut cols.slice_mut(0..b.cols.max(1)))
                .map_err(device_err("clearing results"))?;
            MatchNearest {
                num_pairs: b.ks.len() as i32,
                pairs: In::of(&*table, &s),
                desc: In::of(&desc, &s),
                row_best: Out::of(&rows, &s),
                col_best: Out::of(&*cols, &s),
            }
            .launch(
                &self.be.kernels,
                &s,
                (b.row_blocks, b.ks.len() as u32, 1),
                MATCH_THREADS,
            )
            .map_err(device_err("launching match_nearest"))?;
            marks
                .record(1, &s)
                .map_err(device_err("recording an event"))
        };
        let mut device_ms = 0.0f64;
        launch(&batches[0], &mut table, &mut cols)?;
        for (t, b) in batches.iter().enumerate() {
            let download = |d: &CudaSlice<u64>, len: usize| {
                if len == 0 {
                    return Ok(Vec::new());
                }
                s.clone_dtoh(&d.slice(0..len))
                    .map_err(device_err("downloading results"))
            };
            let row_keys = download(&rows, 2 * b.rows)?;
            let col_keys = download(&cols, b.cols)?;
            s.synchronize().map_err(device_err("match_nearest"))?;
            device_ms += marks
                .elapsed_ms(0, 1)
                .map_err(device_err("reading an event"))? as f64;
            if let Some(next) = batches.get(t + 1) {
                launch(next, &mut table, &mut cols)?;
            }
            b.ks.clone()
                .into_par_iter()
                .zip(b.table.par_chunks(PAIR_FIELDS))
                .for_each(|(k, f)| {
                    let (na, nb) = (f[1] as usize, f[3] as usize);
                    let (r0, c0) = (f[4] as usize, f[5] as usize);
                    let rk = &row_keys[2 * r0..2 * (r0 + na)];
                    let n = NearestTwo {
                        rows: rk
                            .chunks_exact(2)
                            .map(|k| (key_score(k[0]), key_score(k[1]), key_index(k[0])))
                            .collect(),
                        cols: col_keys[c0..c0 + nb]
                            .iter()
                            .map(|&k| (key_score(k), key_index(k)))
                            .collect(),
                    };
                    each(k, n);
                });
        }
        Ok(device_ms * 1e-3)
    }
}

impl FeatureBackend for CudaMatcher {
    fn name(&self) -> String {
        splat_core::Backend::name(&self.be)
    }

    fn match_pairs(
        &self,
        descs: &[DescriptorSet],
        pairs: &[(usize, usize)],
        opt: &MatchOptions,
        done: &PairSink<'_>,
    ) -> Result<f64, FeatureBackendError> {
        self.run(descs, pairs, &|k, n| done(k, select_matches(&n, opt)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's key for a score and index (kernels/match.cu: order_bits, score_key).
    fn key(s: f32, i: u32) -> u64 {
        let s = if s.is_nan() { f32::MIN } else { s + 0.0 };
        let u = s.to_bits();
        let o = if u & 0x8000_0000 != 0 {
            !u
        } else {
            u | 0x8000_0000
        };
        ((o as u64) << 32) | (0xffff_ffff - i) as u64
    }

    #[test]
    fn keys_order_as_score_then_lowest_index_and_decode_exactly() {
        let scores = [-1.0f32, -0.25, -1e-30, 0.0, 1e-38, 0.3, 0.99999994, 1.0];
        for w in scores.windows(2) {
            assert!(key(w[1], 5) > key(w[0], 5), "{} > {}", w[1], w[0]);
            assert!(key(w[1], 900) > key(w[0], 0));
        }
        for &s in &scores {
            assert!(key(s, 3) > key(s, 4), "equal scores: the lower index wins");
            assert_eq!(key_score(key(s, 3)).to_bits(), s.to_bits());
            assert_eq!(key_index(key(s, 3)), 3);
        }
        assert_eq!(key_score(key(-0.0, 1)), 0.0);
        assert_eq!(key_score(key(f32::NAN, 1)), f32::MIN);
        assert!(
            key(f32::MIN, u32::MAX - 1) > 0,
            "every key is above the empty one"
        );
        assert_eq!((key_score(0), key_index(0)), (f32::MIN, 0));
    }

    /// The kernel's reduction, step for step on the host: thread (ty, tx) of a block scans
    /// rows ty + 16 r against columns tx + 16 c of each 64-column tile with the same fused
    /// multiply-add sequence, rows merge their best two over the half-warp in the kernel's
    /// shuffle order, columns take the largest key over all blocks.
    fn emulate(a: &DescriptorSet, b: &DescriptorSet) -> NearestTwo {
        let score = |i: usize, j: usize| {
            let (x, y) = (&a.data[i * 128..][..128], &b.data[j * 128..][..128]);
            (0..128).fold(0.0f32, |acc, k| x[k].mul_add(y[k], acc))
        };
        let mut row_keys = vec![(0u64, 0u64); a.n];
        let mut col_keys = vec![0u64; b.n];
        for i0 in (0..a.n).step_by(MATCH_ROWS) {
            for ty in 0..16 {
                for r in 0..4 {
                    let i = i0 + ty + 16 * r;
                    let mut lanes = [(0u64, 0u64); 16];
                    for j0 in (0..b.n).step_by(64) {
                        for (tx, lane) in lanes.iter_mut().enumerate() {
                            for c in 0..4 {
                                let j = j0 + tx + 16 * c;
                                if j >= b.n || i >= a.n {
                                    continue;
                                }
                                let k = key(score(i, j), j as u32);
                                if k > lane.0 {
                                    *lane = (k, lane.0);
                                } else if k > lane.1 {
                                    lane.1 = k;
                                }
                                col_keys[j] = col_keys[j].max(key(score(i, j), i as u32));
                            }
                        }
                    }
                    for o in [8, 4, 2, 1] {
                        let before = lanes;
                        for (l, lane) in lanes.iter_mut().enumerate() {
                            let (o1, o2) = before[l ^ o];
                            let second = lane.0.min(o1).max(lane.1.max(o2));
                            *lane = (lane.0.max(o1), second);
                        }
                    }
                    if i < a.n {
                        row_keys[i] = lanes[0];
                    }
                }
            }
        }
        NearestTwo {
            rows: row_keys
                .iter()
                .map(|&(k1, k2)| (key_score(k1), key_score(k2), key_index(k1)))
                .collect(),
            cols: col_keys
                .iter()
                .map(|&k| (key_score(k), key_index(k)))
                .collect(),
        }
    }

    /// Quantised random unit descriptors (as SIFT bytes give), every fifth row repeating the
    /// one before, so that equal scores occur in rows and columns.
    fn random_set(n: usize, seed: u64) -> DescriptorSet {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 7) as f32
        };
        let mut data: Vec<f32> = Vec::with_capacity(n * 128);
        for i in 0..n {
            if i % 5 == 4 {
                let prev = data[(i - 1) * 128..i * 128].to_vec();
                data.extend(prev);
                continue;
            }
            let v: Vec<f32> = (0..128).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            data.extend(v.iter().map(|x| x / norm));
        }
        DescriptorSet { n, data }
    }

    #[test]
    fn the_kernels_reduction_gives_the_cpu_neighbours_exactly() {
        for (na, nb, seed) in [
            (130, 200, 1u64),
            (64, 64, 2),
            (1, 3, 3),
            (70, 1, 4),
            (0, 9, 5),
        ] {
            let a = random_set(na, seed);
            let mut b = random_set(nb, seed + 50);
            // Some rows of B repeat rows of A: exact matches and ties between B's columns.
            for j in (0..nb.min(na)).step_by(3) {
                b.data[j * 128..(j + 1) * 128].copy_from_slice(&a.data[j * 128..(j + 1) * 128]);
            }
            let want = sfm_core::backend::nearest_two(&a, &b);
            let got = emulate(&a, &b);
            assert_eq!(got, want, "na {na} nb {nb}");
            let opt = MatchOptions::default();
            assert_eq!(
                select_matches(&got, &opt),
                sfm_core::backend::match_descriptors(&a, &b, &opt)
            );
        }
    }

    fn set(n: usize) -> DescriptorSet {
        DescriptorSet {
            n,
            data: vec![0.0; n * DESC_DIM],
        }
    }

    #[test]
    fn batches_respect_the_limits_and_lay_results_end_to_end() {
        let descs: Vec<DescriptorSet> = [70, 3000, 0, 129, 1].iter().map(|&n| set(n)).collect();
        let mut first = vec![0];
        for d in &descs[..descs.len() - 1] {
            first.push(first.last().unwrap() + d.n);
        }
        let pairs: Vec<(usize, usize)> = (0..600).map(|k| (k % 5, (k * 3 + 1) % 5)).collect();
        let bs = CudaMatcher::batches(&descs, &pairs, &first);
        let mut next = 0;
        for b in &bs {
            assert_eq!(b.ks.start, next);
            next = b.ks.end;
            assert!(!b.ks.is_empty() && b.ks.len() <= BATCH_PAIRS);
            assert_eq!(b.table.len(), b.ks.len() * PAIR_FIELDS);
            let (mut rows, mut cols, mut blocks) = (0, 0, 0);
            for (f, k) in b.table.chunks(PAIR_FIELDS).zip(b.ks.clone()) {
                let (i, j) = pairs[k];
                assert_eq!(
                    f,
                    [first[i], descs[i].n, first[j], descs[j].n, rows, cols].map(|v| v as i32)
                );
                rows += descs[i].n;
                cols += descs[j].n;
                blocks = blocks.max(descs[i].n.div_ceil(MATCH_ROWS) as u32);
            }
            assert_eq!((b.rows, b.cols, b.row_blocks), (rows, cols, blocks));
        }
        assert_eq!(next, pairs.len());
        assert!(bs.len() >= 3, "600 pairs need at least three launches");
    }
}
