//! The kernels' CUDA C sources and their committed PTX, and the NVRTC options that made it.
//!
//! `cargo run -p splat-cuda --features nvrtc --bin build-ptx` regenerates `ptx/*.ptx`; each PTX
//! starts with a comment line naming a hash of its source, so a stale PTX is caught by a plain
//! test even where NVRTC is absent.

/// One kernel module: its name, CUDA C source and committed PTX.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// File stem shared by `kernels/NAME.cu` and `ptx/NAME.ptx`.
    pub name: &'static str,
    /// The CUDA C source.
    pub source: &'static str,
    /// The committed PTX (with the provenance comment line first).
    pub ptx: &'static str,
}

/// The module `NAME`, whose source is `kernels/NAME.cu` and whose PTX is `ptx/NAME.ptx`.
macro_rules! module {
    ($name:literal) => {
        Module {
            name: $name,
            source: include_str!(concat!("../kernels/", $name, ".cu")),
            ptx: include_str!(concat!("../ptx/", $name, ".ptx")),
        }
    };
}

/// Every kernel module, in load order.
pub const MODULES: [Module; 6] = [
    module!("project"),
    module!("tiles"),
    module!("sort"),
    module!("raster"),
    module!("train"),
    module!("match"),
];

/// Virtual architecture of the PTX: Ampere and newer JIT it (driver 580 included); the kernels
/// need sm_70+ for `__match_any_sync`.
pub const ARCH: &str = "compute_80";

/// NVRTC options besides the architecture. `--fmad=false` keeps every multiply and add
/// separately rounded, as the CPU reference computes them, so culling, tile and alpha
/// threshold decisions agree with it.
pub const NVRTC_OPTIONS: [&str; 4] = [
    "--fmad=false",
    "--prec-div=true",
    "--prec-sqrt=true",
    "--std=c++17",
];

/// 64-bit FNV-1a of a source text, written into the PTX header to detect stale PTX.
pub fn source_hash(src: &str) -> u64 {
    src.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The provenance line that starts each committed PTX.
pub fn header_line(name: &str, source: &str, nvrtc_version: (i32, i32)) -> String {
    format!(
        "// splat-cuda {name}: kernels/{name}.cu fnv1a64={:016x} nvrtc={}.{} arch={ARCH}",
        source_hash(source),
        nvrtc_version.0,
        nvrtc_version.1
    )
}

/// Parses the hash and NVRTC version out of a PTX's first line.
pub fn parse_header(ptx: &str) -> Option<(u64, (i32, i32))> {
    let line = ptx.lines().next()?;
    let hash = line.split("fnv1a64=").nth(1)?.split_whitespace().next()?;
    let ver = line.split("nvrtc=").nth(1)?.split_whitespace().next()?;
    let (maj, min) = ver.split_once('.')?;
    Some((
        u64::from_str_radix(hash, 16).ok()?,
        (maj.parse().ok()?, min.parse().ok()?),
    ))
}

/// Compiles a source with the crate's options through NVRTC; returns the PTX text.
#[cfg(feature = "nvrtc")]
pub fn compile(module: &Module) -> Result<String, String> {
    use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
    let opts = CompileOptions {
        arch: Some(ARCH),
        options: NVRTC_OPTIONS.iter().map(|s| s.to_string()).collect(),
        name: Some(format!("{}.cu", module.name)),
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(module.source, opts).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => {
            format!("{}: {}", module.name, log.to_string_lossy())
        }
        other => format!("{}: {other}", module.name),
    })?;
    Ok(ptx.to_src())
}

/// The NVRTC version, when its library can be loaded.
#[cfg(feature = "nvrtc")]
pub fn nvrtc_version() -> Option<(i32, i32)> {
    // SAFETY: only probes for the shared library.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return None;
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present and the out-pointers are valid for the call.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .ok()?;
    Some((major, minor))
}

/// The full text of a committed PTX file for a freshly compiled one.
pub fn committed_text(module_name: &str, source: &str, ptx: &str, ver: (i32, i32)) -> String {
    let body = ptx.trim_end_matches('\0');
    format!("{}\n{}", header_line(module_name, source, ver), body)
}
