//! Anti-aliased training on a tiny synthetic scene: the 3D filter follows the Gaussian set
//! through densification, and the exported PLY (filter baked in) renders the image the filtered
//! model renders.

use splat_core::loss::max_abs_diff;
use splat_core::train::{StopReason, Trainer};
use splat_core::{render, Backend, BackendError, CpuBackend, RenderOptions};

/// The toy ring scene with both filters on.
fn filtered_ring() -> (splat_core::scene::Scene, splat_core::train::TrainConfig) {
    let scene = splat_core::demo::synthetic_ring_scene(40, 32);
    let mut cfg = splat_core::demo::synthetic_ring_config(300);
    cfg.antialias.mip2d = true;
    cfg.antialias.filter3d = true;
    (scene, cfg)
}

#[test]
fn filtered_training_exports_a_ply_that_renders_the_filtered_model() {
    let (scene, cfg) = filtered_ring();
    let mut t = Trainer::new(&scene, cfg, &mut CpuBackend).expect("trainer");
    assert_eq!(t.filter3d().map(|f| f.len()), Some(t.gaussians_len()));
    let mut densified = 0;
    while !t.finished() {
        let info = t.step().expect("step");
        let f = t.filter3d().expect("filter on");
        // One variance per Gaussian after every change of the set.
        assert_eq!(f.len(), info.gaussians);
        if info.densified.is_some() {
            densified += 1;
        }
    }
    assert_eq!(densified, 3);
    let filter = t.filter3d().expect("filter").to_vec();
    assert!(filter.iter().all(|v| v.is_finite() && *v > 0.0));

    let dir = spaceport_io::scratch_dir("antialias");
    let metrics = t
        .write_outputs(&dir, StopReason::Iterations)
        .expect("outputs");
    assert!(metrics.test.psnr > 15.0, "test PSNR {}", metrics.test.psnr);
    let baked = splat_core::ply::read_ply(dir.join("point_cloud.ply")).expect("read ply");
    let raw = t.snapshot().expect("snapshot").params;
    assert_eq!(baked.len(), raw.len());
    let cam = &scene.test[0].camera;
    let base = RenderOptions {
        background: [1.0; 3],
        mip2d: true,
        ..Default::default()
    };
    let filtered = render(
        &raw,
        cam,
        &RenderOptions {
            filter3d: Some(filter.clone().into()),
            ..base.clone()
        },
    );
    let from_ply = render(&baked, cam, &base);
    let max_diff = max_abs_diff(&filtered.image, &from_ply.image);
    assert!(max_diff < 1e-3, "baked PLY differs by {max_diff}");
    // The filter matters: the raw Gaussians without it render another image.
    let unfiltered = render(&raw, cam, &base);
    let diff_raw = max_abs_diff(&filtered.image, &unfiltered.image);
    assert!(
        diff_raw > 10.0 * max_diff.max(1e-5),
        "unfiltered differs by {diff_raw}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_filter_of_the_wrong_length_is_refused() {
    let g = splat_core::demo::demo_gaussians();
    let cam = splat_core::demo::demo_camera(40, 30, 0.3);
    let opts = RenderOptions {
        filter3d: Some(vec![1e-4; g.len() + 1].into()),
        ..Default::default()
    };
    let err = Backend::render(&mut CpuBackend, &g, &cam, &opts)
        .err()
        .expect("wrong length");
    assert!(
        matches!(&err, BackendError::InvalidInput(m) if m.contains("3D filter")),
        "{err}"
    );
    let opts = RenderOptions {
        filter3d: Some(vec![f32::NAN; g.len()].into()),
        ..Default::default()
    };
    assert!(Backend::render(&mut CpuBackend, &g, &cam, &opts).is_err());
}

/// A checkpoint keeps the 3D filter, so a resumed anti-aliased run repeats the next steps of the
/// uninterrupted one exactly (recomputing the filter from the moved centres would not).
#[test]
fn resume_keeps_the_filter() {
    use splat_core::train::checkpoint;
    let (scene, cfg) = filtered_ring();
    let dir = spaceport_io::scratch_dir("antialias-resume");
    let ckpt = dir.join("checkpoint.bin");
    let mut a = Trainer::new(&scene, cfg, &mut CpuBackend).expect("trainer");
    // Past the densification at 150, away from the next.
    for _ in 0..170 {
        a.step().expect("step");
    }
    checkpoint::save(&mut a, &ckpt).expect("save");
    let next_a: Vec<f64> = (0..3).map(|_| a.step().expect("step").loss).collect();
    let mut b = checkpoint::load(&ckpt, &scene, &mut CpuBackend).expect("load");
    let next_b: Vec<f64> = (0..3).map(|_| b.step().expect("step").loss).collect();
    assert_eq!(next_a, next_b);
    assert_eq!(a.filter3d(), b.filter3d());
    std::fs::remove_dir_all(&dir).ok();
}
