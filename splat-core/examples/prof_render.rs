//! Times the CPU renderer on the lego scene's initial Gaussians (a development aid).
use splat_core::*;
fn main() {
    let scene = scene::load_scene(
        "../shared/data/nerf_synthetic_lego",
        &scene::LoadOptions {
            downscale: scene::Downscale::Factor(4.0),
            background: [1.0; 3],
            ..Default::default()
        },
    )
    .expect("lego scene");
    let cfg = train::TrainConfig::default();
    let ext = train::scene_extent(&scene.train);
    let g = train::initial_gaussians(&scene, &cfg, ext).expect("init");
    for (w, h) in [(60u32, 60u32), (200, 200)] {
        let cam = scene.train[0].camera.scaled_to(w, h);
        let opts = RenderOptions {
            background: [1.0; 3],
            sh_degree: Some(0),
            ..Default::default()
        };
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let out = render(&g, &cam, &opts);
            let t1 = t.elapsed().as_secs_f64();
            let d: Vec<f32> = out.image.iter().map(|v| v - 0.5).collect();
            let t = std::time::Instant::now();
            let _ = render_backward(&g, &out, &d);
            println!(
                "{w}x{h}: fwd {:.1} ms bwd {:.1} ms, {} isect, {} visible",
                t1 * 1e3,
                t.elapsed().as_secs_f64() * 1e3,
                out.n_intersections,
                out.n_visible()
            );
        }
    }
}
