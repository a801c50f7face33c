//! SIFT repeatability and descriptor distinctiveness under a known similarity transform of a
//! real photograph (Strecha fountain-P11, downscaled).

use sfm_core::internals::{extract, Features, Gray};
use sfm_core::SiftOptions;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

fn load_small(name: &str, width: u32) -> Gray {
    let path = format!("{DATA}/strecha/fountain-P11/images/{name}");
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_luma8();
    let h = img.height() * width / img.width();
    let small = image::imageops::resize(&img, width, h, image::imageops::FilterType::Triangle);
    Gray::from_luma8(
        small.width() as usize,
        small.height() as usize,
        small.as_raw(),
    )
}

/// Similarity about the image centre: p' = c + s R(theta) (p - c), in pixel-index coordinates.
struct Sim {
    c: (f32, f32),
    s: f32,
    th: f32,
}

impl Sim {
    fn fwd(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.c.0, y - self.c.1);
        let (c, s) = (self.th.cos(), self.th.sin());
        (
            self.c.0 + self.s * (c * dx - s * dy),
            self.c.1 + self.s * (s * dx + c * dy),
        )
    }
    fn inv(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.c.0, y - self.c.1);
        let (c, s) = (self.th.cos(), self.th.sin());
        (
            self.c.0 + (c * dx + s * dy) / self.s,
            self.c.1 + (-s * dx + c * dy) / self.s,
        )
    }
}

fn warp(img: &Gray, t: &Sim) -> Gray {
    let mut out = Gray::new(img.w, img.h);
    for y in 0..img.h {
        for x in 0..img.w {
            let (sx, sy) = t.inv(x as f32, y as f32);
            out.data[y * img.w + x] =
                if sx < 0.0 || sy < 0.0 || sx > (img.w - 1) as f32 || sy > (img.h - 1) as f32 {
                    0.5
                } else {
                    img.bilinear(sx, sy)
                };
        }
    }
    out
}

fn dist2(a: &[u8], b: &[u8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as i32 - y as i32).pow(2))
        .sum()
}

fn nn_ratio(a: &Features, b: &Features, i: usize) -> Option<usize> {
    let (mut b1, mut b2, mut bi) = (i32::MAX, i32::MAX, 0);
    for j in 0..b.len() {
        let d = dist2(a.descriptor(i), b.descriptor(j));
        if d < b1 {
            b2 = b1;
            b1 = d;
            bi = j;
        } else if d < b2 {
            b2 = d;
        }
    }
    ((b1 as f32).sqrt() < 0.8 * (b2 as f32).sqrt()).then_some(bi)
}

#[test]
fn sift_is_repeatable_under_rotation_and_scale() {
    let a = load_small("0005.jpg", 640);
    let t = Sim {
        c: (a.w as f32 / 2.0, a.h as f32 / 2.0),
        s: 0.8,
        th: 30f32.to_radians(),
    };
    let b = warp(&a, &t);
    let opt = SiftOptions {
        max_features: 3000,
        ..Default::default()
    };
    let fa = extract(&a, &opt);
    let fb = extract(&b, &opt);
    assert!(
        fa.len() > 500 && fb.len() > 300,
        "features {} / {}",
        fa.len(),
        fb.len()
    );
    // Deterministic: the same input gives the same output.
    let fa2 = extract(&a, &opt);
    assert_eq!(fa.keypoints, fa2.keypoints);
    assert_eq!(fa.descriptors, fa2.descriptors);

    // Repeatability: detections of A that map inside B (away from the warped border) and have
    // a detection of B within 2 px and a consistent scale.
    let (mut visible, mut repeated) = (0, 0);
    for ka in &fa.keypoints {
        let (x, y) = t.fwd(ka.x - 0.5, ka.y - 0.5);
        let (sx, sy) = (x, y);
        // inside B and far from the region B filled with grey
        let (bx, by) = t.inv(sx, sy);
        let inside = sx > 15.0 && sy > 15.0 && sx < b.w as f32 - 15.0 && sy < b.h as f32 - 15.0;
        let src_ok = bx > 15.0 && by > 15.0 && bx < a.w as f32 - 15.0 && by < a.h as f32 - 15.0;
        if !inside || !src_ok {
            continue;
        }
        visible += 1;
        let hit = fb.keypoints.iter().any(|kb| {
            let d2 = (kb.x - 0.5 - sx).powi(2) + (kb.y - 0.5 - sy).powi(2);
            let sr = kb.scale / (ka.scale * t.s);
            d2 < 4.0 && sr > 0.7 && sr < 1.4
        });
        repeated += hit as usize;
    }
    let rep = repeated as f32 / visible.max(1) as f32;
    eprintln!("repeatability {repeated}/{visible} = {rep:.3}");
    assert!(visible > 300);
    assert!(rep > 0.45, "repeatability {rep}");

    // Distinctiveness: ratio-test matches must land where the transform says.
    let (mut matches, mut correct) = (0, 0);
    for i in 0..fa.len() {
        if let Some(j) = nn_ratio(&fa, &fb, i) {
            matches += 1;
            let (x, y) = t.fwd(fa.keypoints[i].x - 0.5, fa.keypoints[i].y - 0.5);
            let kb = fb.keypoints[j];
            if (kb.x - 0.5 - x).powi(2) + (kb.y - 0.5 - y).powi(2) < 9.0 {
                correct += 1;
            }
        }
    }
    let prec = correct as f32 / matches.max(1) as f32;
    eprintln!("matches {matches}, correct {correct} ({prec:.3})");
    assert!(correct > 300, "correct matches {correct}");
    assert!(prec > 0.85, "match precision {prec}");
}
