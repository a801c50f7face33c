//! SfM benchmark driver (a bench, not a test: it measures, asserts nothing): runs the pipeline on `SFM_BENCH_IMAGES`, writing to
//! `SFM_BENCH_OUT`, with optional overrides `SFM_BENCH_MAX_SIZE`, `SFM_BENCH_MAX_FEATURES`,
//! `SFM_BENCH_UNDISTORT` (0/1), `SFM_BENCH_UPSAMPLE_BELOW`, `SFM_BENCH_REFINE_PP` (0/1), `SFM_BENCH_PAIRS` (`exhaustive`, `seq:W`, `retrieval:K:W`),
//! `SFM_BENCH_MATCH_CACHE` (file: features and verified matches saved there, or reused when it
//! exists) and `SFM_BENCH_MAPPER` (JSON object overriding `MapperOptions` fields).
//! Used for the acceptance runs recorded in BENCHMARKS.md:
//! `SFM_BENCH_IMAGES=DIR SFM_BENCH_OUT=OUT cargo bench -p spaceport-benches --bench sfm_run`.

use sfm_core::PairSelection;
use sfm_core::{run, SfmOptions};
use std::path::PathBuf;

fn env_num<T: std::str::FromStr>(k: &str) -> Option<T> {
    std::env::var(k).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let Ok(images) = std::env::var("SFM_BENCH_IMAGES") else {
        eprintln!("SFM_BENCH_IMAGES not set; nothing to do");
        return;
    };
    let out =
        PathBuf::from(std::env::var("SFM_BENCH_OUT").unwrap_or_else(|_| "/tmp/sfm-bench".into()));
    let mut opt = SfmOptions::default();
    if let Some(v) = env_num("SFM_BENCH_MAX_SIZE") {
        opt.max_image_size = v;
    }
    if let Some(v) = env_num("SFM_BENCH_MAX_FEATURES") {
        opt.sift.max_features = v;
    }
    if let Some(v) = env_num("SFM_BENCH_UPSAMPLE_BELOW") {
        opt.upsample_below = v;
    }
    if let Some(v) = env_num::<u8>("SFM_BENCH_REFINE_PP") {
        opt.mapper.refine_principal_point = v != 0;
    }
    if let Some(v) = env_num::<u8>("SFM_BENCH_UNDISTORT") {
        opt.undistort = v != 0;
    }
    if let Ok(c) = std::env::var("SFM_BENCH_MATCH_CACHE") {
        opt.match_cache = Some(PathBuf::from(c));
    }
    if let Ok(j) = std::env::var("SFM_BENCH_MAPPER") {
        // Mapper fields given as JSON override the defaults, e.g. '{"ba_max_iters": 50}'.
        let mut v = serde_json::to_value(&opt.mapper).expect("json");
        let o: serde_json::Value = serde_json::from_str(&j).expect("SFM_BENCH_MAPPER json");
        for (k, x) in o.as_object().expect("object") {
            assert!(v.get(k).is_some(), "unknown mapper option {k}");
            v[k] = x.clone();
        }
        opt.mapper = serde_json::from_value(v).expect("mapper options");
    }
    if let Ok(p) = std::env::var("SFM_BENCH_PAIRS") {
        let parts: Vec<&str> = p.split(':').collect();
        opt.pairs = match parts.as_slice() {
            ["exhaustive"] => PairSelection::Exhaustive,
            ["seq", w] => PairSelection::Sequential {
                window: w.parse().expect("window"),
            },
            ["retrieval", k, w] => PairSelection::Retrieval {
                k: k.parse().expect("k"),
                window: w.parse().expect("window"),
            },
            _ => panic!("bad SFM_BENCH_PAIRS {p}"),
        };
    }
    let last = std::sync::Mutex::new((String::new(), std::time::Instant::now()));
    let report = run(&opt, images.as_ref(), &out, &|stage, done, total| {
        let mut l = last.lock().expect("lock");
        let key = format!("{stage:?}");
        if l.0 != key || l.1.elapsed().as_secs() >= 10 || done == total {
            eprintln!("{stage:?} {done}/{total}");
            *l = (key, std::time::Instant::now());
        }
    })
    .expect("pipeline");
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
}
