//! Mean PSNR of each Gaussian set's renders (CPU reference renderer, white background; black
//! with `SOG_PSNR_BLACK=1`, for scenes trained on black such as COLMAP captures) against a
//! scene's test images, on the first VIEWS test views at 1/DOWNSCALE resolution. Compares a scene
//! before and after compression.
//!
//! `cargo run --release -p spaceport-examples --example sog_psnr -- SCENE_DIR DOWNSCALE VIEWS A.ply|A.sog [B ...]`

use splat_core::render::{render, RenderOptions};
use splat_core::scene::{load_scene, Downscale, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: sog_psnr SCENE_DIR DOWNSCALE VIEWS A.ply|A.sog [B ...]".into());
    }
    let bg = if std::env::var("SOG_PSNR_BLACK").is_ok_and(|v| v == "1") {
        [0.0; 3]
    } else {
        [1.0; 3]
    };
    let opts = LoadOptions {
        downscale: Downscale::Factor(args[1].parse()?),
        background: bg,
        ..Default::default()
    };
    let scene = load_scene(&args[0], &opts)?;
    let views: usize = args[2].parse()?;
    for path in &args[3..] {
        let g = if path.ends_with(".ply") {
            splat_core::ply::read_ply(path)?
        } else {
            sogs_codec::read_sog(path)?
        };
        let ropts = RenderOptions {
            background: bg,
            ..Default::default()
        };
        let mut sum = 0.0;
        let n = views.min(scene.test.len());
        for v in &scene.test[..n] {
            let out = render(&g, &v.camera, &ropts);
            if let Ok(dir) = std::env::var("SOG_PSNR_DUMP") {
                let img = splat_core::scene::Image {
                    width: out.width,
                    height: out.height,
                    data: out.image.iter().map(|v| v.clamp(0.0, 1.0)).collect(),
                };
                splat_core::scene::save_png(
                    format!("{dir}/{}_render.png", v.name.replace('/', "_")),
                    &img,
                )?;
                splat_core::scene::save_png(
                    format!("{dir}/{}_gt.png", v.name.replace('/', "_")),
                    &v.image,
                )?;
            }
            let mse: f64 = out
                .image
                .iter()
                .zip(&v.image.data)
                .map(|(&a, &b)| (a.clamp(0.0, 1.0) as f64 - b as f64).powi(2))
                .sum::<f64>()
                / out.image.len() as f64;
            sum += -10.0 * mse.log10();
        }
        println!(
            "{path}: {} Gaussians, SH degree {}, mean PSNR {:.3} dB over {n} test views",
            g.len(),
            g.sh_degree,
            sum / n as f64
        );
    }
    Ok(())
}
