//! Renders a trained PLY from a scene's test cameras and prints PSNR against the test images:
//! a check of the renderer and the camera conventions on real trained Gaussians.
//!
//! `cargo run --release -p spaceport-examples --example render_ply_psnr -- PLY SCENE DOWNSCALE [white]`
use splat_core::scene::{load_scene, Downscale, LoadOptions};
use splat_core::{loss, render, RenderOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: render_ply_psnr PLY SCENE DOWNSCALE [white]".into());
    }
    let g = splat_core::ply::read_ply(&args[1])?;
    let bg = if args.get(4).is_some_and(|a| a == "white") {
        [1.0; 3]
    } else {
        [0.0; 3]
    };
    let scene = load_scene(
        &args[2],
        &LoadOptions {
            downscale: Downscale::Factor(args[3].parse()?),
            background: bg,
            ..Default::default()
        },
    )?;
    let mut sum = 0.0;
    let only = std::env::var("ONLY").ok();
    let views = if std::env::var("TRAIN").is_ok() {
        &scene.train
    } else {
        &scene.test
    };
    for v in views
        .iter()
        .filter(|v| only.as_ref().is_none_or(|o| v.name.contains(o.as_str())))
    {
        let deg: Option<usize> = std::env::var("SH_DEGREE").ok().and_then(|s| s.parse().ok());
        let out = render(
            &g,
            &v.camera,
            &RenderOptions {
                background: bg,
                sh_degree: deg,
                ..Default::default()
            },
        );
        let p = loss::psnr(&out.image, &v.image.data);
        println!("{} {:.2} dB, {} tile pairs", v.name, p, out.n_intersections);
        if let Ok(dir) = std::env::var("SAVE_DIR") {
            let img = splat_core::scene::Image {
                width: out.width,
                height: out.height,
                data: out.image.iter().map(|x| x.clamp(0.0, 1.0)).collect(),
            };
            splat_core::scene::save_png(format!("{dir}/{}.png", v.name.replace('/', "_")), &img)?;
        }
        sum += p;
    }
    println!(
        "mean PSNR {:.3} dB over {} views ({} Gaussians)",
        sum / views.len() as f32,
        views.len(),
        g.len()
    );
    Ok(())
}
