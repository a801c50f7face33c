//! Image helpers: area downscaling, target sizes, PNG writing and reading.

use spaceport_io::scratch_dir;
use splat_core::scene::{load_image, save_png, Downscale, Image, SceneError};

fn gray(width: u32, height: u32, values: &[f32]) -> Image {
    Image {
        width,
        height,
        data: values.iter().flat_map(|&v| [v, v * 0.5, 1.0 - v]).collect(),
    }
}

#[test]
fn integer_area_downscale_averages_blocks() {
    let img = gray(4, 2, &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.1, 0.3]);
    let small = img.resize_area(2, 1);
    let expect = [(0.0 + 0.2 + 0.8 + 1.0) / 4.0, (0.4 + 0.6 + 0.1 + 0.3) / 4.0];
    for (x, e) in expect.into_iter().enumerate() {
        let p = small.pixel(x as u32, 0);
        assert!(
            (p[0] - e).abs() < 1e-6
                && (p[1] - e * 0.5).abs() < 1e-6
                && (p[2] - (1.0 - e)).abs() < 1e-6,
            "{x}: {p:?}"
        );
    }
}

#[test]
fn fractional_area_downscale_weights_partial_pixels() {
    let img = gray(3, 1, &[0.0, 0.6, 0.9]);
    let small = img.resize_area(2, 1);
    let a = (0.0 + 0.5 * 0.6) / 1.5;
    let b = (0.5 * 0.6 + 0.9) / 1.5;
    assert!(
        (small.pixel(0, 0)[0] - a).abs() < 1e-6,
        "{:?}",
        small.pixel(0, 0)
    );
    assert!(
        (small.pixel(1, 0)[0] - b).abs() < 1e-6,
        "{:?}",
        small.pixel(1, 0)
    );
    // Area filtering preserves the mean brightness.
    let big = gray(
        7,
        5,
        &(0..35)
            .map(|i| (i * 37 % 11) as f32 / 10.0)
            .collect::<Vec<_>>(),
    );
    let mean = |im: &Image| im.data.iter().step_by(3).sum::<f32>() / (im.width * im.height) as f32;
    assert!((mean(&big) - mean(&big.resize_area(3, 2))).abs() < 1e-5);
}

#[test]
fn downscale_target_sizes() {
    assert_eq!(Downscale::None.target_size(800, 533), (800, 533));
    assert_eq!(Downscale::Factor(4.0).target_size(800, 533), (200, 133));
    assert_eq!(Downscale::Factor(1.0).target_size(800, 533), (800, 533));
    assert_eq!(Downscale::Factor(8.0).target_size(800, 800), (100, 100));
    assert_eq!(Downscale::MaxSide(400).target_size(800, 533), (400, 267));
    assert_eq!(Downscale::MaxSide(400).target_size(533, 800), (267, 400));
    assert_eq!(Downscale::MaxSide(1000).target_size(800, 533), (800, 533));
    assert_eq!(Downscale::Factor(1000.0).target_size(800, 533), (1, 1));
}

#[test]
fn png_round_trip_quantises_to_8_bits() {
    let dir = scratch_dir("roundtrip");
    let img = Image {
        width: 5,
        height: 3,
        data: (0..45).map(|i| i as f32 / 44.0).collect(),
    };
    let path = dir.join("a.png");
    save_png(&path, &img).unwrap();
    let back = load_image(&path, [0.0; 3]).unwrap();
    assert_eq!((back.width, back.height), (5, 3));
    for (a, b) in img.data.iter().zip(&back.data) {
        assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6, "{a} vs {b}");
    }
    // Overwriting goes through a temporary that does not linger.
    save_png(&path, &Image::filled(2, 2, [1.0, 0.0, 0.5])).unwrap();
    assert_eq!(
        load_image(&path, [0.0; 3]).unwrap().pixel(1, 1),
        [1.0, 0.0, 128.0 / 255.0]
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("a.png")]);
}

#[test]
fn saving_an_inconsistent_image_fails_without_writing() {
    let dir = scratch_dir("inconsistent");
    let path = dir.join("bad.png");
    let bad = Image {
        width: 4,
        height: 4,
        data: vec![0.5; 47],
    };
    assert!(matches!(
        save_png(&path, &bad),
        Err(SceneError::InvalidImage { .. })
    ));
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let missing_parent = dir.join("no/such/dir/x.png");
    assert!(matches!(
        save_png(&missing_parent, &Image::filled(1, 1, [0.0; 3])),
        Err(SceneError::Io { .. })
    ));
}

#[test]
fn rgba_is_composited_over_the_background() {
    let dir = scratch_dir("rgba");
    let path = dir.join("rgba.png");
    let mut rgba = image::RgbaImage::new(2, 1);
    rgba.put_pixel(0, 0, image::Rgba([200, 100, 0, 255]));
    rgba.put_pixel(1, 0, image::Rgba([200, 100, 0, 51]));
    rgba.save(&path).unwrap();
    let bg = [0.0, 0.25, 1.0];
    let img = load_image(&path, bg).unwrap();
    let a = 51.0 / 255.0;
    let expect = [
        200.0 / 255.0 * a + bg[0] * (1.0 - a),
        100.0 / 255.0 * a + bg[1] * (1.0 - a),
        bg[2] * (1.0 - a),
    ];
    let got = img.pixel(1, 0);
    for c in 0..3 {
        assert!((got[c] - expect[c]).abs() < 1e-6, "{got:?} vs {expect:?}");
    }
    assert_eq!(img.pixel(0, 0), [200.0 / 255.0, 100.0 / 255.0, 0.0]);
}
