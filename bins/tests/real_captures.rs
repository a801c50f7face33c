//! Photos as people's phones give them, through `spaceport run --quick` on the CPU: a few
//! consecutive Mip-NeRF 360 bonsai photos, two re-saved rotated with EXIF orientation 6 and 8
//! (pixels stored sideways, as phones do), two rescaled to another size, and one truncated
//! copy. Every good photo must be registered and trained on, the rotated ones written upright,
//! the two sizes given two cameras, and the truncated file named on the console and in the
//! report.

mod common;

use std::path::Path;
use std::process::Command;

use common::{scratch, shared_data};

use image::{DynamicImage, ImageEncoder};

/// `img` as JPEG, with an EXIF orientation tag when `orientation` is set.
fn jpeg(img: &DynamicImage, orientation: Option<u16>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92);
    if let Some(o) = orientation {
        let field = exif::Field {
            tag: exif::Tag::Orientation,
            ifd_num: exif::In::PRIMARY,
            value: exif::Value::Short(vec![o]),
        };
        let mut w = exif::experimental::Writer::new();
        w.push_field(&field);
        let mut tiff = std::io::Cursor::new(Vec::new());
        w.write(&mut tiff, false).expect("EXIF");
        enc.set_exif_metadata(tiff.into_inner())
            .expect("EXIF in JPEG");
    }
    let rgb = img.to_rgb8();
    enc.write_image(
        &rgb,
        rgb.width(),
        rgb.height(),
        image::ExtendedColorType::Rgb8,
    )
    .expect("JPEG");
    out
}

/// Lines of a COLMAP text file that are not comments.
fn records(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

#[test]
fn phone_photos_rotated_rescaled_and_truncated() {
    let Some(src) = shared_data("mipnerf360_bonsai_800/images") else {
        return;
    };
    let dir = scratch("phone");
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let good = 12;
    for (i, name) in names.iter().take(good + 1).enumerate() {
        let img = image::open(src.join(name)).unwrap();
        // 400 px wide keeps SfM and training within seconds on two cores.
        let img = img.resize(400, 400, image::imageops::FilterType::Triangle);
        let bytes = match i {
            // Orientation 6: the viewer turns the stored pixels 90 degrees clockwise, so a
            // phone stores the upright picture turned counter-clockwise.
            2 => jpeg(&img.rotate270(), Some(6)),
            5 => jpeg(&img.rotate90(), Some(8)),
            3 | 8 => jpeg(
                &img.resize(300, 300, image::imageops::FilterType::Triangle),
                None,
            ),
            i if i == good => {
                let b = jpeg(&img, None);
                b[..b.len() * 2 / 3].to_vec()
            }
            _ => jpeg(&img, None),
        };
        let out_name = if i == good {
            "cut_off.jpg".to_string()
        } else {
            name.clone()
        };
        std::fs::write(photos.join(out_name), bytes).unwrap();
    }

    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_spaceport"))
        .args([
            "run",
            "--quick",
            "--device",
            "cpu",
            "--max-side",
            "200",
            "--out",
        ])
        .arg(&out)
        .arg(&photos)
        .output()
        .expect("spawn spaceport");
    let log = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("cut_off.jpg") && l.contains("truncated")),
        "the truncated photo is named on the console: {log}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["sfm"]["images"].as_u64(),
        Some(good as u64 + 1),
        "{report}"
    );
    assert_eq!(
        report["sfm"]["registered"].as_u64(),
        Some(good as u64),
        "{report}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("cut_off.jpg"), "{md}");

    // Two sizes, two cameras; the rotated photos are registered and written upright.
    assert_eq!(records(&out.join("distorted/sparse/0/cameras.txt")), 2);
    for i in [2, 5] {
        let up = image::open(out.join("images").join(&names[i])).unwrap();
        assert!(
            up.width() > up.height(),
            "{} written upright: {}x{}",
            names[i],
            up.width(),
            up.height()
        );
    }
    // "NAME: N training and M test views".
    let views: u64 = log
        .lines()
        .find(|l| l.contains(" training and ") && l.contains(" test views"))
        .and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let at = |k: &str| w.iter().position(|x| *x == k);
            let n = w.get(at("training")? - 1)?.parse::<u64>().ok()?;
            let m = w.get(at("test")? - 1)?.parse::<u64>().ok()?;
            Some(n + m)
        })
        .unwrap_or_else(|| panic!("no view count in the log: {log}"));
    assert_eq!(
        views, good as u64,
        "every registered photo is a training or test view"
    );
    let psnr = report["train"]["test_psnr"].as_f64().unwrap();
    assert!(psnr > 14.0, "test PSNR {psnr} dB");
    // The report's before/after compression numbers are on the same views as training's.
    let before = report["compress"]["test_psnr_ply"].as_f64().unwrap();
    assert!((before - psnr).abs() < 1e-3, "{before} vs {psnr}");
    let _ = std::fs::remove_dir_all(&dir);
}
