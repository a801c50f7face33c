//! The GPU descriptor matcher (kernels/match.cu through `CudaMatcher`) against sfm-core's CPU
//! matcher: the same nearest neighbours (scores equal as f32, same indices) and the same
//! matches, on random descriptors with planted matches and ties, on real SIFT descriptors of
//! two photos, and as a whole SfM run. `#[ignore]`d without a GPU:
//! `cargo test --release -p splat-cuda --test gpu_match -- --ignored` on a GPU machine (the
//! photo tests read `SPACEPORT_DATA`, else the shared data beside the workspace, and report
//! themselves SKIPPED on stderr without it).

mod common;

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfm_core::backend::{match_descriptors, nearest_two, DescriptorSet, MatchOptions};
use sfm_core::internals::{extract, Gray};
use sfm_core::{FeatureBackend, FeatureBackendError, SiftOptions};
use splat_cuda::CudaMatcher;

use common::{matcher, notice};

#[test]
fn matcher_new_reports_unavailable_instead_of_panicking() {
    match CudaMatcher::new() {
        Ok(m) => eprintln!("CUDA present: {}", m.name()),
        Err(FeatureBackendError::Unavailable(why)) => {
            assert!(!why.is_empty());
            notice(&format!(
                "no CUDA here ({why}); checked that CudaMatcher::new() says so"
            ));
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

fn data() -> PathBuf {
    std::env::var_os("SPACEPORT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / norm).collect()
}

/// `n` random unit descriptors quantised as SIFT bytes are; a few rows repeat the previous
/// one, so that equal scores (ties for best, best equal to second) occur.
fn random_set(rng: &mut ChaCha8Rng, n: usize) -> DescriptorSet {
    let mut data: Vec<f32> = Vec::with_capacity(n * 128);
    for i in 0..n {
        if i % 11 == 5 {
            let prev = data[(i - 1) * 128..i * 128].to_vec();
            data.extend(prev);
            continue;
        }
        let v: Vec<f32> = (0..128).map(|_| rng.random_range(0..40) as f32).collect();
        data.extend(unit(&v));
    }
    DescriptorSet { n, data }
}

/// Rows of `b` replaced by noisy copies of rows of `a` (planted true matches, some exact).
fn plant(rng: &mut ChaCha8Rng, a: &DescriptorSet, b: &mut DescriptorSet, count: usize) {
    for t in 0..count.min(a.n).min(b.n) {
        let (i, j) = ((t * 7) % a.n, (t * 13 + 1) % b.n);
        let src = &a.data[i * 128..(i + 1) * 128];
        let v: Vec<f32> = if t % 4 == 0 {
            src.to_vec()
        } else {
            src.iter()
                .map(|&x| (x + rng.random_range(-0.02..0.02f32)).max(0.0))
                .collect()
        };
        b.data[j * 128..(j + 1) * 128].copy_from_slice(&unit(&v));
    }
}

/// Whether the CPU reference scores with fused multiply-adds, as the kernel does (sfm-core's
/// AVX2 path); its portable path rounds products separately, so scores may differ in the
/// last bit there and only the matches are compared.
fn cpu_scores_fused() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One pair's matches as the device reported them.
type Reported = std::sync::Mutex<Option<Vec<(u32, u32)>>>;

/// GPU and CPU on every pair: the same neighbours and, for each option set, the same matches.
fn assert_parity(m: &CudaMatcher, descs: &[DescriptorSet], pairs: &[(usize, usize)]) -> usize {
    let got = m.nearest_two(descs, pairs).expect("device nearest two");
    assert_eq!(got.len(), pairs.len());
    let fused = cpu_scores_fused();
    if !fused {
        notice("this CPU has no AVX2/FMA: GPU scores are not compared bit for bit, only matches");
    }
    for (k, &(i, j)) in pairs.iter().enumerate().filter(|_| fused) {
        let want = nearest_two(&descs[i], &descs[j]);
        if got[k] != want {
            let bad = (0..want.rows.len()).find(|&r| got[k].rows.get(r) != want.rows.get(r));
            let badc = (0..want.cols.len()).find(|&c| got[k].cols.get(c) != want.cols.get(c));
            panic!(
                "pair ({i}, {j}) of {} x {}: first differing row {bad:?} (gpu {:?}, cpu {:?}), column {badc:?} (gpu {:?}, cpu {:?})",
                descs[i].n,
                descs[j].n,
                bad.and_then(|r| got[k].rows.get(r)),
                bad.and_then(|r| want.rows.get(r)),
                badc.and_then(|c| got[k].cols.get(c)),
                badc.and_then(|c| want.cols.get(c)),
            );
        }
    }
    let mut total = 0;
    for opt in [
        MatchOptions::default(),
        MatchOptions {
            max_ratio: 1.0,
            max_distance: 2.0,
            cross_check: false,
        },
        MatchOptions {
            max_ratio: 0.9,
            max_distance: 2.0,
            cross_check: true,
        },
    ] {
        let slots: Vec<Reported> = pairs.iter().map(|_| Default::default()).collect();
        m.match_pairs(descs, pairs, &opt, &|k, v| {
            let mut s = slots[k].lock().unwrap();
            assert!(s.is_none(), "pair {k} reported twice");
            *s = Some(v);
        })
        .expect("device matching");
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let gpu = slots[k]
                .lock()
                .unwrap()
                .take()
                .expect("every pair reported");
            let cpu = match_descriptors(&descs[i], &descs[j], &opt);
            assert_eq!(gpu, cpu, "pair ({i}, {j}), {opt:?}");
            total += cpu.len();
        }
    }
    total
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn match_gpu_equals_cpu_on_random_descriptors_with_planted_matches() {
    let m = matcher();
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    // Sizes around the kernel's 64-row blocks and 64-column tiles, empty and single sets.
    let sizes = [1usize, 2, 63, 64, 65, 200, 0, 517, 1000, 129];
    let mut descs: Vec<DescriptorSet> = sizes.iter().map(|&n| random_set(&mut rng, n)).collect();
    for t in 1..descs.len() {
        let (lo, hi) = descs.split_at_mut(t);
        plant(&mut rng, &lo[t - 1], &mut hi[0], 40);
    }
    let pairs: Vec<(usize, usize)> = (0..descs.len())
        .flat_map(|i| {
            (0..descs.len())
                .filter(move |&j| j != i)
                .map(move |j| (i, j))
        })
        .collect();
    let matches = assert_parity(&m, &descs, &pairs);
    assert!(matches > 100, "planted matches found: {matches}");
}

#[test]
#[ignore = "needs an NVIDIA GPU: run with --ignored on a GPU machine"]
fn match_gpu_equals_cpu_over_several_launches() {
    // 40 small sets: 780 pairs, more than one launch takes, so that batching and the overlap
    // of one launch with the host work of the previous are exercised.
    let m = matcher();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut descs: Vec<DescriptorSet> = (0..40)
        .map(|k| random_set(&mut rng, 20 + (k * 37) % 150))
        .collect();
    for t in 1..descs.len() {
        let (lo, hi) = descs.split_at_mut(t);
        plant(&mut rng, &lo[t - 1], &mut hi[0], 15);
    }
    let pairs: Vec<(usize, usize)> = (0..descs.len())
        .flat_map(|i| (i + 1..descs.len()).map(move |j| (i, j)))
        .collect();
    assert!(pairs.len() > 256);
    assert_parity(&m, &descs, &pairs);
}

/// SIFT descriptors of a photo, downscaled so that its larger side is at most `side`.
fn photo_descriptors(path: &Path, side: u32) -> DescriptorSet {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let img = if img.width().max(img.height()) > side {
        img.resize(side, side, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let luma = img.to_luma8();
    let gray = Gray::from_luma8(luma.width() as usize, luma.height() as usize, luma.as_raw());
    let f = extract(
        &gray,
        &SiftOptions {
            max_features: 8192,
            ..Default::default()
        },
    );
    DescriptorSet::from_features(&f)
}

#[test]
#[ignore = "needs an NVIDIA GPU and the shared photos: run with --ignored on a GPU machine"]
fn match_gpu_equals_cpu_on_sift_descriptors_of_photos() {
    let m = matcher();
    let root = data();
    let photos = [
        root.join("strecha/fountain-P11/images/0004.jpg"),
        root.join("strecha/fountain-P11/images/0005.jpg"),
        root.join("mipnerf360_bonsai_800/images/DSCF5565.JPG"),
        root.join("mipnerf360_bonsai_800/images/DSCF5566.JPG"),
    ];
    if let Some(p) = photos.iter().find(|p| !p.is_file()) {
        notice(&format!(
            "SKIPPED the photo matching parity test, nothing checked: no {} (set SPACEPORT_DATA)",
            p.display()
        ));
        return;
    }
    let descs: Vec<DescriptorSet> = photos.iter().map(|p| photo_descriptors(p, 1600)).collect();
    // Bonsai photos are 800 px already; Strecha's 3072 px ones are matched at 1600.
    for (p, d) in photos.iter().zip(&descs) {
        eprintln!("{}: {} descriptors", p.display(), d.n);
        assert!(d.n > 1000, "{}: only {} features", p.display(), d.n);
    }
    let pairs = [(0, 1), (1, 0), (2, 3), (0, 2)];
    let matches = assert_parity(&m, &descs, &pairs);
    assert!(matches > 1000, "photo pairs gave {matches} matches");
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    sfm_core::internals::model_files(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

#[test]
#[ignore = "needs an NVIDIA GPU and the shared photos: run with --ignored on a GPU machine"]
fn match_gpu_sfm_run_writes_the_cpu_runs_model() {
    let m = matcher();
    let scene = data().join("strecha/fountain-P11/images");
    if !scene.join("0000.jpg").is_file() {
        notice(&format!(
            "SKIPPED the SfM parity run, nothing checked: no {} (set SPACEPORT_DATA)",
            scene.display()
        ));
        return;
    }
    let out = std::env::temp_dir().join(format!("splat-cuda-sfm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let small = out.join("input");
    std::fs::create_dir_all(&small).unwrap();
    for i in 0..11 {
        let n = format!("{i:04}.jpg");
        let img = image::open(scene.join(&n)).expect("decode");
        let img = img.resize_exact(768, 512, image::imageops::FilterType::Triangle);
        img.to_rgb8().save(small.join(&n)).expect("write");
    }
    let opt = sfm_core::SfmOptions {
        sift: SiftOptions {
            max_features: 4096,
            ..Default::default()
        },
        ..Default::default()
    };
    let cpu = sfm_core::run(&opt, &small, &out.join("cpu"), &|_, _, _| {}).expect("cpu run");
    let gpu =
        sfm_core::run_with(&opt, &m, &small, &out.join("gpu"), &|_, _, _| {}).expect("gpu run");
    eprintln!(
        "descriptor matching: cpu {:.2} thread-s, gpu {:.3} device-s ({})",
        cpu.descriptor_matching_cpu_seconds,
        gpu.descriptor_matching_cpu_seconds,
        gpu.feature_backend
    );
    assert_eq!(cpu.registered_images, 11);
    assert_eq!(
        (cpu.verified_pairs, cpu.num_points, cpu.num_observations),
        (gpu.verified_pairs, gpu.num_points, gpu.num_observations)
    );
    for sub in ["sparse/0", "distorted/sparse/0"] {
        assert!(
            files(&out.join("cpu").join(sub)) == files(&out.join("gpu").join(sub)),
            "{sub}: the GPU-matched model differs from the CPU's"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
