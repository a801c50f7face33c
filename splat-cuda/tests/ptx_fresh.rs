//! The committed PTX must be what the committed kernel sources compile to.
//!
//! The recompile-and-compare test needs NVRTC (libnvrtc.so.12 on LD_LIBRARY_PATH; `.ci/run`
//! installs PyPI's nvidia-cuda-nvrtc-cu12 of the version that made the PTX). Without it, or
//! with another NVRTC version, it reports itself SKIPPED; with `SPLAT_REQUIRE_NVRTC=1` (set by
//! `.ci/run` once the install worked) either is a failure instead, so CI cannot skip silently.

use splat_cuda::ptx::{committed_text, parse_header, source_hash, ARCH, MODULES, NVRTC_OPTIONS};

/// Prints past the test harness's output capture, so that a skip is visible in a plain
/// `cargo test` run.
fn notice(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "NOTICE: {msg}");
}

#[test]
fn every_ptx_header_names_its_current_source() {
    for m in MODULES {
        let (hash, _) = parse_header(m.ptx)
            .unwrap_or_else(|| panic!("ptx/{}.ptx has no provenance header", m.name));
        assert_eq!(
            hash,
            source_hash(m.source),
            "ptx/{}.ptx is stale: run `cargo run -p splat-cuda --features nvrtc --bin build-ptx`",
            m.name
        );
        assert!(
            m.ptx.contains(".entry"),
            "ptx/{}.ptx holds no kernel",
            m.name
        );
    }
}

/// Whether the environment demands the full comparison (CI with NVRTC installed).
fn nvrtc_required() -> bool {
    std::env::var("SPLAT_REQUIRE_NVRTC").is_ok_and(|v| v == "1")
}

/// Says loudly that the comparison did not happen, or fails where it was required.
fn skipped(why: &str) {
    if nvrtc_required() {
        panic!("SPLAT_REQUIRE_NVRTC=1 but {why}");
    }
    notice(&format!(
        "SKIPPED the recompile-and-compare check of the committed PTX: {why}"
    ));
}

#[test]
fn ptx_recompiles_identically_where_nvrtc_exists() {
    // SAFETY: only probes for the shared library.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        skipped("NVRTC (libnvrtc.so) not found (install nvidia-cuda-nvrtc-cu12 and put its nvidia/cuda_nvrtc/lib on LD_LIBRARY_PATH)");
        return;
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; valid out-pointers.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .expect("nvrtcVersion");
    let mut compared = 0;
    for m in MODULES {
        let (_, ver) = parse_header(m.ptx).expect("header");
        if ver != (major, minor) {
            skipped(&format!(
                "ptx/{}.ptx was made by NVRTC {}.{}, this one is {major}.{minor}; output may differ between versions, so only the source hash is checked",
                m.name, ver.0, ver.1
            ));
            continue;
        }
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(ARCH),
            options: NVRTC_OPTIONS.iter().map(|s| s.to_string()).collect(),
            name: Some(format!("{}.cu", m.name)),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(m.source, opts)
            .unwrap_or_else(|e| panic!("{} does not compile: {e}", m.name));
        let fresh = committed_text(m.name, m.source, &ptx.to_src(), (major, minor));
        assert!(
            fresh == m.ptx,
            "ptx/{}.ptx differs from a fresh compile of kernels/{}.cu: run build-ptx",
            m.name,
            m.name
        );
        compared += 1;
    }
    notice(&format!(
        "recompiled and compared {compared} of {} PTX modules with NVRTC {major}.{minor}",
        MODULES.len()
    ));
}
