//! Times splat-cuda's rasterizer alone (projection, binning, sort, compositing; and the
//! backward of the image sum) on a PLY from the first test cameras of a NeRF-synthetic scene,
//! like ../shared/peers/gsplat_raster_bench.py does for gsplat: CUDA events, warm-up, median
//! milliseconds per view over repetitions of the whole view cycle.
//!
//! usage: cargo bench -p splat-cuda --bench raster -- PLY TRANSFORMS_TEST_JSON [--views N]
//!        [--reps R] [--size WxH] [--white-bg]
//!
//! Without a scene (a plain `cargo bench`) it says so and times nothing.

use std::process::ExitCode;

use cudarc::driver::sys::CUevent_flags;
use glam::{DMat3, DMat4};
use splat_core::camera::Camera;
use splat_core::render::RenderOptions;
use splat_cuda::CudaBackend;

fn cameras(path: &str, views: usize, w: u32, h: u32) -> Result<Vec<Camera>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let fov = v["camera_angle_x"].as_f64().ok_or("no camera_angle_x")?;
    let frames = v["frames"].as_array().ok_or("no frames")?;
    let fx = 0.5 * w as f64 / (0.5 * fov).tan();
    let mut out = vec![];
    for fr in frames.iter().take(views) {
        let rows = fr["transform_matrix"]
            .as_array()
            .ok_or("no transform_matrix")?;
        let mut m = [0f64; 16];
        for (r, row) in rows.iter().enumerate().take(4) {
            for c in 0..4 {
                m[c * 4 + r] = row[c].as_f64().ok_or("bad matrix")?;
            }
        }
        // Blender/OpenGL camera axes -> OpenCV: flip y and z, then invert camera-to-world.
        let c2w = DMat4::from_cols_array(&m)
            * DMat4::from_diagonal(glam::DVec4::new(1.0, -1.0, -1.0, 1.0));
        let w2c = c2w.inverse();
        let rot = DMat3::from_mat4(w2c);
        let t = w2c.w_axis.truncate();
        out.push(Camera::new(
            w,
            h,
            fx,
            fx,
            w as f64 / 2.0,
            h as f64 / 2.0,
            rot,
            t,
        ));
    }
    Ok(out)
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run() -> Result<(), String> {
    // cargo bench adds `--bench`; it is not ours.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() < 3 {
        return Err(USAGE.into());
    }
    let mut views = 16;
    let mut reps = 20;
    let (mut w, mut h) = (800u32, 800u32);
    let mut bg = [0.0f32; 3];
    let mut i = 3;
    while i < args.len() {
        match args[i].as_str() {
            "--views" => {
                views = args
                    .get(i + 1)
                    .and_then(|s| s.parse().ok())
                    .ok_or("--views N")?
            }
            "--reps" => {
                reps = args
                    .get(i + 1)
                    .and_then(|s| s.parse().ok())
                    .ok_or("--reps R")?
            }
            "--size" => {
                let s = args.get(i + 1).ok_or("--size WxH")?;
                let (a, b) = s.split_once('x').ok_or("--size WxH")?;
                w = a.parse().map_err(|_| "--size WxH")?;
                h = b.parse().map_err(|_| "--size WxH")?;
            }
            "--white-bg" => {
                bg = [1.0; 3];
                i -= 1;
            }
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    let g = splat_core::ply::read_ply(&args[1]).map_err(|e| format!("{}: {e}", args[1]))?;
    let cams = cameras(&args[2], views, w, h)?;
    let gpu = CudaBackend::new().map_err(|e| e.to_string())?;
    let s = gpu.stream().clone();
    let splats = gpu.upload(&g).map_err(|e| e.to_string())?;
    let opts = RenderOptions {
        background: bg,
        ..Default::default()
    };
    let ones = {
        let mut d = s
            .alloc_zeros::<f32>((3 * w * h) as usize)
            .map_err(|e| format!("{e:?}"))?;
        s.memcpy_htod(&vec![1.0f32; (3 * w * h) as usize], &mut d)
            .map_err(|e| format!("{e:?}"))?;
        d
    };
    let ev = |s: &std::sync::Arc<cudarc::driver::CudaStream>| {
        s.context()
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| format!("{e:?}"))
    };
    let mut isects = 0;
    let mut time = |backward: bool| -> Result<f32, String> {
        let mut per = vec![];
        for rep in 0..reps + 1 {
            let (a, b) = (ev(&s)?, ev(&s)?);
            a.record(&s).map_err(|e| format!("{e:?}"))?;
            for c in &cams {
                let f = gpu
                    .forward_device(&splats, c, &opts)
                    .map_err(|e| e.to_string())?;
                isects = f.n_intersections();
                if backward {
                    let _g = gpu
                        .backward_device(&splats, &f, &ones)
                        .map_err(|e| e.to_string())?;
                }
            }
            b.record(&s).map_err(|e| format!("{e:?}"))?;
            b.synchronize().map_err(|e| format!("{e:?}"))?;
            // The first cycle is the warm-up (module JIT, allocator growth).
            if rep > 0 {
                per.push(a.elapsed_ms(&b).map_err(|e| format!("{e:?}"))? / cams.len() as f32);
            }
        }
        gpu.synchronize().map_err(|e| e.to_string())?;
        Ok(median(per))
    };
    let fwd = time(false)?;
    let fb = time(true)?;
    let out = serde_json::json!({
        "renderer": "splat-cuda",
        "gaussians": g.len(),
        "sh_degree": g.sh_degree,
        "views": cams.len(),
        "size": [w, h],
        "forward_ms_median": fwd,
        "fwd_bwd_ms_median": fb,
        "intersections_last_view": isects,
        "device": splat_core::Backend::name(&gpu),
    });
    println!("{out}");
    Ok(())
}

const USAGE: &str = "usage: cargo bench -p splat-cuda --bench raster -- PLY TRANSFORMS_TEST_JSON [--views N] [--reps R] [--size WxH] [--white-bg]";

fn main() -> ExitCode {
    if std::env::args().filter(|a| a != "--bench").count() == 1 {
        eprintln!("raster bench SKIPPED: no scene given ({USAGE})");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raster bench: {e}");
            ExitCode::FAILURE
        }
    }
}
