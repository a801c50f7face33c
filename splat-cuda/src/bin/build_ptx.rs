//! Regenerates `splat-cuda/ptx/*.ptx` from `splat-cuda/kernels/*.cu` with NVRTC.
//!
//! `cargo run -p splat-cuda --features nvrtc --bin build-ptx` (NVRTC from PyPI's
//! `nvidia-cuda-nvrtc-cu12` works: put its `nvidia/cuda_nvrtc/lib` on LD_LIBRARY_PATH).

use std::path::Path;
use std::process::ExitCode;

use splat_cuda::ptx::{committed_text, compile, nvrtc_version, MODULES};

fn main() -> ExitCode {
    let Some(ver) = nvrtc_version() else {
        eprintln!("build-ptx: NVRTC (libnvrtc.so) not found; install nvidia-cuda-nvrtc-cu12 and set LD_LIBRARY_PATH");
        return ExitCode::FAILURE;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ptx");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("build-ptx: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    // Sources are read from disk (not the embedded copies) so that an edit is picked up even
    // when this binary was built before it.
    let kdir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    for m in MODULES {
        let src = match std::fs::read_to_string(kdir.join(format!("{}.cu", m.name))) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("build-ptx: {}: {e}", m.name);
                return ExitCode::FAILURE;
            }
        };
        let leaked: &'static str = Box::leak(src.into_boxed_str());
        let module = splat_cuda::ptx::Module {
            source: leaked,
            ..m
        };
        match compile(&module) {
            Ok(ptx) => {
                let path = dir.join(format!("{}.ptx", m.name));
                if let Err(e) = std::fs::write(&path, committed_text(m.name, leaked, &ptx, ver)) {
                    eprintln!("build-ptx: {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {} (nvrtc {}.{})", path.display(), ver.0, ver.1);
            }
            Err(e) => {
                eprintln!("build-ptx: compile error in {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
