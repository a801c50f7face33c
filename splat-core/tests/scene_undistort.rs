//! Distorted COLMAP cameras load as pinhole images: a synthetic distorted photo of a known
//! pattern comes back as the pattern's pinhole image.

use sfm_core::colmap::{
    self, Camera as ColmapCamera, CameraModel, Distortion, Image as ColmapImage, Reconstruction,
};
use spaceport_io::scratch_dir;
use splat_core::scene::{load_scene, save_png, Image, LoadOptions};

const W: u32 = 96;
const H: u32 = 72;
const F: f64 = 80.0;
const CX: f64 = 48.0;
const CY: f64 = 36.0;

/// A smooth colour pattern over normalised pinhole coordinates.
fn pattern(u: f64, v: f64) -> [f32; 3] {
    [
        (0.5 + 0.4 * (7.0 * u).sin() * (5.0 * v).cos()) as f32,
        (0.5 + 0.4 * (9.0 * v + 1.0).sin()) as f32,
        (0.5 + 0.3 * (6.0 * (u + v)).cos()) as f32,
    ]
}

fn pixel_to_normalized(x: u32, y: u32) -> [f64; 2] {
    [(f64::from(x) + 0.5 - CX) / F, (f64::from(y) + 0.5 - CY) / F]
}

/// What the ideal pinhole camera sees.
fn pinhole_image() -> Image {
    let mut img = Image::filled(W, H, [0.0; 3]);
    for y in 0..H {
        for x in 0..W {
            let [u, v] = pixel_to_normalized(x, y);
            img.set_pixel(x, y, pattern(u, v));
        }
    }
    img
}

/// What the distorted camera sees: each pixel shows the pattern at its undistorted ray.
fn distorted_image(d: Distortion) -> Image {
    let mut img = Image::filled(W, H, [0.0; 3]);
    for y in 0..H {
        for x in 0..W {
            let [u, v] = d
                .undistort(pixel_to_normalized(x, y))
                .expect("invertible over the image");
            img.set_pixel(x, y, pattern(u, v));
        }
    }
    img
}

fn mean_abs_diff(a: &Image, b: &Image, border: u32) -> f32 {
    let mut sum = 0.0;
    let mut n = 0;
    for y in border..H - border {
        for x in border..W - border {
            let (p, q) = (a.pixel(x, y), b.pixel(x, y));
            sum += (0..3).map(|c| (p[c] - q[c]).abs()).sum::<f32>() / 3.0;
            n += 1;
        }
    }
    sum / n as f32
}

#[test]
fn distorted_models_are_undistorted_to_the_pinhole_image() {
    let cases = [
        (CameraModel::SimpleRadial, vec![F, CX, CY, -0.18]),
        (CameraModel::Radial, vec![F, CX, CY, -0.2, 0.04]),
        (
            CameraModel::OpenCv,
            vec![F, F, CX, CY, -0.15, 0.02, 0.004, -0.003],
        ),
    ];
    let truth = pinhole_image();
    for (model, params) in cases {
        let dir = scratch_dir(model.name());
        let cam = ColmapCamera::new(1, model, W.into(), H.into(), params).unwrap();
        let distorted = distorted_image(cam.distortion());
        std::fs::create_dir_all(dir.join("images")).unwrap();
        save_png(dir.join("images/view.png"), &distorted).unwrap();
        let rec = Reconstruction {
            cameras: vec![cam],
            images: vec![ColmapImage::new(
                1,
                1,
                "view.png",
                [1.0, 0.0, 0.0, 0.0],
                [0.0; 3],
            )],
            points3d: vec![],
        };
        colmap::write_binary(dir.join("sparse/0"), &rec).unwrap();

        let scene = load_scene(
            &dir,
            &LoadOptions {
                test_every: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let view = &scene.train[0];
        assert_eq!(
            (
                view.camera.fx,
                view.camera.fy,
                view.camera.cx,
                view.camera.cy
            ),
            (F, F, CX, CY)
        );
        let before = mean_abs_diff(&distorted, &truth, 2);
        let after = mean_abs_diff(&view.image, &truth, 2);
        // The distortion moves the border by several pixels; undistortion leaves only
        // 8-bit quantisation and bilinear interpolation error.
        assert!(
            before > 0.01,
            "{model}: the distortion should matter ({before})"
        );
        assert!(
            after < 0.002 && after < before / 10.0,
            "{model}: undistorted image differs by {after} (distorted: {before})"
        );
    }
}
