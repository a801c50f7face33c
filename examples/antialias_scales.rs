//! Trains on a NeRF-synthetic scene with the CPU backend, with or without anti-aliasing, and
//! measures test-view PSNR at the training size, at a quarter of it and at twice it (issue 16:
//! "check by rendering lego at 1/4 and 2x size").
//!
//! `cargo run --release -p spaceport-examples --example antialias_scales -- [MODE] [ITERS] [SCENE] [DOWNSCALE] [VIEWS]`
//!
//! MODE is `off`, `mip2d` (gsplat's antialiased mode), `filter3d` (Mip-Splatting's 3D filter),
//! `both`, or `mip` (both over a 0.1 px² low-pass, Mip-Splatting's pairing). Defaults: `both`, 3000 iterations, `../shared/data/nerf_synthetic_lego`, images
//! downscaled 4x (200 px), every test view. The ground truth at each size is the scene loaded at
//! half the downscale (twice the training size) and area-resized (`Image::resize_area`); renders
//! are on white, clamped to [0, 1]. Prints one `RESULT` line.
use std::error::Error;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use spaceport_examples::{arg, shared_data};
use splat_core::loss::psnr;
use splat_core::render::RenderOptions;
use splat_core::scene::{load_scene, Downscale, LoadOptions};
use splat_core::train::{TrainConfig, Trainer};
use splat_core::{render, CpuBackend};

fn main() -> Result<(), Box<dyn Error>> {
    let mode: String = arg(0, "MODE", "both".to_string())?;
    let iterations: usize = arg(1, "ITERS", 3000)?;
    let scene_dir = arg(2, "SCENE", shared_data("nerf_synthetic_lego"))?;
    let downscale: f64 = arg(3, "DOWNSCALE", 4.0)?;
    let max_views: usize = arg(4, "VIEWS", usize::MAX)?;
    let (mip2d, filter3d, low_pass) = match mode.as_str() {
        "off" => (false, false, 0.3),
        "mip2d" => (true, false, 0.3),
        "filter3d" => (false, true, 0.3),
        "both" => (true, true, 0.3),
        "mip" => (true, true, 0.1),
        m => return Err(format!("MODE {m:?}: one of off, mip2d, filter3d, both, mip").into()),
    };
    let load = |d: f64| {
        load_scene(
            &scene_dir,
            &LoadOptions {
                downscale: Downscale::Factor(d),
                background: [1.0; 3],
                ..Default::default()
            },
        )
    };
    let scene = load(downscale)?;
    // The 3DGS recipe for synthetic scenes (random init in a 1.3 box, white background), without
    // plateau checks (they would only cost time in a run this short).
    let mut cfg = TrainConfig {
        iterations,
        background: Some([1.0; 3]),
        ..Default::default()
    };
    cfg.init.mode = splat_core::train::config::InitMode::Random;
    cfg.init.random_box = Some(1.3);
    cfg.plateau.enabled = false;
    cfg.antialias.mip2d = mip2d;
    cfg.antialias.filter3d = filter3d;
    cfg.antialias.low_pass = low_pass;
    let started = Instant::now();
    let mut t = Trainer::new(&scene, cfg, &mut CpuBackend)?;
    let stop = AtomicBool::new(false);
    t.run(&stop, &mut |info, _| {
        if info.iteration % 500 == 0 {
            eprintln!(
                "iter {:5}  loss {:.4}  psnr {:.2} dB  {} Gaussians  {:.0} s",
                info.iteration,
                info.loss,
                info.psnr,
                info.gaussians,
                started.elapsed().as_secs_f64()
            );
        }
    })?;
    let train_s = started.elapsed().as_secs_f64();

    // The trained model as a standard viewer gets it (3D filter baked in), rendered with the
    // 2D mode it was trained with.
    let g = t.export_gaussians()?;
    let n = g.len();
    drop(t);
    let truth = load(downscale / 2.0)?;
    let opts = RenderOptions {
        background: [1.0; 3],
        mip2d,
        low_pass: Some(low_pass),
        ..Default::default()
    };
    let views = scene.test.len().min(truth.test.len()).min(max_views);
    let mut sums = [0f64; 3];
    for (v, gt_view) in scene.test.iter().zip(&truth.test).take(views) {
        let (w, h) = (v.camera.width, v.camera.height);
        for (k, (sw, sh)) in [((w / 4).max(1), (h / 4).max(1)), (w, h), (2 * w, 2 * h)]
            .into_iter()
            .enumerate()
        {
            let cam = v.camera.scaled_to(sw, sh);
            let img: Vec<f32> = render(&g, &cam, &opts)
                .image
                .iter()
                .map(|x| x.clamp(0.0, 1.0))
                .collect();
            let gt = gt_view.image.resize_area(sw, sh);
            sums[k] += psnr(&img, &gt.data) as f64;
        }
    }
    let m = sums.map(|s| s / views.max(1) as f64);
    let w = scene.test.first().map_or(0, |v| v.camera.width);
    println!(
        "RESULT mode={mode} iters={iterations} train_px={w} gaussians={n} train_s={train_s:.0} \
         views={views} psnr_quarter={:.2} psnr_train={:.2} psnr_double={:.2}",
        m[0], m[1], m[2]
    );
    Ok(())
}
