//! Camera model layouts, intrinsics, and distortion / undistortion of normalised points.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfm_core::colmap::{Camera, CameraModel, Distortion, Intrinsics};

#[test]
fn model_ids_names_and_parameter_counts_match_colmap() {
    let table = [
        (CameraModel::SimplePinhole, 0, "SIMPLE_PINHOLE", 3),
        (CameraModel::Pinhole, 1, "PINHOLE", 4),
        (CameraModel::SimpleRadial, 2, "SIMPLE_RADIAL", 4),
        (CameraModel::Radial, 3, "RADIAL", 5),
        (CameraModel::OpenCv, 4, "OPENCV", 8),
    ];
    for (model, id, name, n) in table {
        assert_eq!(
            (model.id(), model.name(), model.num_params()),
            (id, name, n)
        );
        assert_eq!(CameraModel::from_id(id), Some(model));
        assert_eq!(CameraModel::from_name(name), Some(model));
    }
    assert_eq!(CameraModel::from_id(5), None);
    assert_eq!(CameraModel::from_id(-1), None);
    assert_eq!(CameraModel::from_name("OPENCV_FISHEYE"), None);
    assert_eq!(CameraModel::from_name("pinhole"), None);
}

#[test]
fn intrinsics_and_distortion_follow_the_parameter_order() {
    let cam = |model, params: &[f64]| Camera::new(1, model, 100, 80, params.to_vec()).unwrap();
    let k = |fx, fy, cx, cy| Intrinsics { fx, fy, cx, cy };
    let c = cam(CameraModel::SimplePinhole, &[10.0, 5.0, 6.0]);
    assert_eq!(
        (c.intrinsics(), c.distortion()),
        (k(10.0, 10.0, 5.0, 6.0), Distortion::None)
    );
    let c = cam(CameraModel::Pinhole, &[10.0, 11.0, 5.0, 6.0]);
    assert_eq!(
        (c.intrinsics(), c.distortion()),
        (k(10.0, 11.0, 5.0, 6.0), Distortion::None)
    );
    let c = cam(CameraModel::SimpleRadial, &[10.0, 5.0, 6.0, 0.1]);
    assert_eq!(
        (c.intrinsics(), c.distortion()),
        (k(10.0, 10.0, 5.0, 6.0), Distortion::Radial1 { k: 0.1 })
    );
    let c = cam(CameraModel::Radial, &[10.0, 5.0, 6.0, 0.1, -0.2]);
    assert_eq!(
        (c.intrinsics(), c.distortion()),
        (
            k(10.0, 10.0, 5.0, 6.0),
            Distortion::Radial2 { k1: 0.1, k2: -0.2 }
        )
    );
    let c = cam(
        CameraModel::OpenCv,
        &[10.0, 11.0, 5.0, 6.0, 0.1, -0.2, 0.01, 0.02],
    );
    assert_eq!(c.intrinsics(), k(10.0, 11.0, 5.0, 6.0));
    assert_eq!(
        c.distortion(),
        Distortion::OpenCv {
            k1: 0.1,
            k2: -0.2,
            p1: 0.01,
            p2: 0.02
        }
    );
    assert_eq!(c.distortion_params(), &[0.1, -0.2, 0.01, 0.02]);
}

#[test]
fn distortion_matches_the_colmap_formulas() {
    let (u, v) = (0.3_f64, -0.2_f64);
    let r2 = u * u + v * v;
    let d = Distortion::Radial1 { k: -0.15 }.distort([u, v]);
    assert!(
        (d[0] - u * (1.0 - 0.15 * r2)).abs() < 1e-15
            && (d[1] - v * (1.0 - 0.15 * r2)).abs() < 1e-15
    );
    let d = Distortion::Radial2 { k1: 0.1, k2: 0.05 }.distort([u, v]);
    let f = 1.0 + 0.1 * r2 + 0.05 * r2 * r2;
    assert!((d[0] - u * f).abs() < 1e-15 && (d[1] - v * f).abs() < 1e-15);
    let (k1, k2, p1, p2) = (-0.2, 0.03, 0.001, -0.002);
    let d = Distortion::OpenCv { k1, k2, p1, p2 }.distort([u, v]);
    let f = 1.0 + k1 * r2 + k2 * r2 * r2;
    let ud = u * f + 2.0 * p1 * u * v + p2 * (r2 + 2.0 * u * u);
    let vd = v * f + 2.0 * p2 * u * v + p1 * (r2 + 2.0 * v * v);
    assert!((d[0] - ud).abs() < 1e-15 && (d[1] - vd).abs() < 1e-15);
    assert_eq!(Distortion::None.distort([u, v]), [u, v]);
}

#[test]
fn undistort_inverts_distort_for_every_model() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let models = [
        Distortion::Radial1 { k: -0.25 },
        Distortion::Radial1 { k: 0.3 },
        Distortion::Radial2 { k1: -0.3, k2: 0.08 },
        Distortion::Radial2 { k1: 0.12, k2: 0.02 },
        Distortion::OpenCv {
            k1: -0.28,
            k2: 0.07,
            p1: 0.0015,
            p2: -0.001,
        },
        Distortion::OpenCv {
            k1: 0.1,
            k2: -0.01,
            p1: -0.003,
            p2: 0.002,
        },
    ];
    for d in models {
        for _ in 0..2000 {
            // A field of view of about 90 degrees, where these lenses are invertible.
            let p = [rng.random_range(-0.8..0.8), rng.random_range(-0.6..0.6)];
            let back = d
                .undistort(d.distort(p))
                .unwrap_or_else(|| panic!("{d:?} failed to undistort {p:?}"));
            assert!(
                (back[0] - p[0]).abs() < 1e-10 && (back[1] - p[1]).abs() < 1e-10,
                "{d:?}: {p:?} -> {back:?}"
            );
        }
        assert!(!d.is_none());
    }
}

#[test]
fn undistort_refuses_points_beyond_the_lens_fold() {
    // u(1 + k u²) peaks at u = 1/sqrt(-3k); with k = -0.5 the largest reachable value is
    // about 0.544, so anything further out has no undistorted preimage.
    let d = Distortion::Radial1 { k: -0.5 };
    assert!(d.undistort([0.9, 0.0]).is_none());
    assert!(d.undistort([0.5, 0.0]).is_some());
    assert!(d.undistort([f64::NAN, 0.0]).is_none());
}

#[test]
fn project_and_unproject_are_inverse_through_pixels() {
    let cam = Camera::new(
        3,
        CameraModel::OpenCv,
        640,
        480,
        vec![500.0, 505.0, 321.0, 239.0, -0.2, 0.05, 0.001, 0.002],
    )
    .unwrap();
    let pix = cam.project([0.4, -0.3, 2.0]);
    let n = cam.unproject(pix).unwrap();
    assert!(
        (n[0] - 0.2).abs() < 1e-10 && (n[1] + 0.15).abs() < 1e-10,
        "{n:?}"
    );
    let pin = Camera::pinhole(1, 640, 480, 500.0, 500.0, 320.0, 240.0);
    assert_eq!(pin.project([0.0, 0.0, 5.0]), [320.0, 240.0]);
}
