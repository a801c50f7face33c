//! Binary and text COLMAP models survive conversion in both directions byte for byte.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfm_core::colmap::{self, Camera, CameraModel, Image, Point2D, Point3D, Reconstruction};
use spaceport_io::scratch_dir;

fn bonsai_model() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/mipnerf360_bonsai_800/sparse/0"
    ))
    .to_path_buf()
}

const FILES_BIN: [&str; 3] = ["cameras.bin", "images.bin", "points3D.bin"];
const FILES_TXT: [&str; 3] = ["cameras.txt", "images.txt", "points3D.txt"];

fn assert_same_files(a: &Path, b: &Path, names: &[&str]) {
    for name in names {
        let x = std::fs::read(a.join(name)).expect("read first");
        let y = std::fs::read(b.join(name)).expect("read second");
        assert!(
            x == y,
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Floats that stress text round-tripping: signed zero, subnormals, huge and tiny magnitudes.
fn tricky(rng: &mut ChaCha8Rng) -> f64 {
    const SPECIAL: [f64; 9] = [
        -0.0,
        0.0,
        5e-324,
        1e-300,
        1.0 / 3.0,
        0.1,
        1e300,
        -123456789.12345679,
        1e15 + 0.3,
    ];
    if rng.random_range(0..4) == 0 {
        SPECIAL[rng.random_range(0..SPECIAL.len())]
    } else {
        let mantissa: f64 = rng.random_range(-1.0..1.0);
        mantissa * 10f64.powi(rng.random_range(-8..8))
    }
}

fn synthetic(seed: u64) -> Reconstruction {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rec = Reconstruction::default();
    // Ids deliberately out of order so that order preservation is exercised.
    for (i, model) in CameraModel::ALL.into_iter().enumerate() {
        let params = (0..model.num_params()).map(|_| tricky(&mut rng)).collect();
        let id = [7, 2, 9, 1, 4][i];
        rec.cameras.push(
            Camera::new(
                id,
                model,
                rng.random_range(1..5000),
                rng.random_range(1..5000),
                params,
            )
            .unwrap(),
        );
    }
    for i in 0..6u32 {
        let n = if i == 3 { 0 } else { rng.random_range(1..40) };
        let points2d = (0..n)
            .map(|_| Point2D {
                xy: [tricky(&mut rng), tricky(&mut rng)],
                point3d_id: None,
            })
            .collect();
        rec.images.push(Image {
            id: 100 - i * 7,
            qvec: [
                tricky(&mut rng),
                tricky(&mut rng),
                tricky(&mut rng),
                tricky(&mut rng),
            ],
            tvec: [tricky(&mut rng), tricky(&mut rng), tricky(&mut rng)],
            camera_id: rec.cameras[i as usize % 5].id,
            name: if i == 2 {
                format!("sub dir/with space {i}.JPG")
            } else {
                format!("img_{i:03}.png")
            },
            points2d,
        });
    }
    for p in 0..50u64 {
        let id = 1000 + p * 3;
        let mut track = Vec::new();
        for _ in 0..rng.random_range(0..5) {
            let im = rng.random_range(0..rec.images.len());
            let image = &mut rec.images[im];
            if image.points2d.is_empty() {
                continue;
            }
            let idx = rng.random_range(0..image.points2d.len());
            image.points2d[idx].point3d_id = Some(id);
            track.push((image.id, idx as u32));
        }
        rec.points3d.push(Point3D {
            id,
            xyz: [tricky(&mut rng), tricky(&mut rng), tricky(&mut rng)],
            rgb: [rng.random(), rng.random(), rng.random()],
            error: tricky(&mut rng).abs(),
            track,
        });
    }
    rec
}

#[test]
fn synthetic_all_models_bin_txt_bin_is_byte_identical() {
    for seed in 0..4 {
        let rec = synthetic(seed);
        let root = scratch_dir(&format!("synthetic_{seed}"));
        let (bin_a, txt, bin_b) = (root.join("a"), root.join("txt"), root.join("b"));
        colmap::write_binary(&bin_a, &rec).unwrap();
        let read_a = colmap::read_binary(&bin_a).unwrap();
        assert_eq!(read_a, rec, "binary read must reproduce the model exactly");
        colmap::write_text(&txt, &read_a).unwrap();
        let read_txt = colmap::read_text(&txt).unwrap();
        assert_eq!(read_txt, rec, "text read must reproduce every float bit");
        colmap::write_binary(&bin_b, &read_txt).unwrap();
        assert_same_files(&bin_a, &bin_b, &FILES_BIN);

        // And text written here survives a trip through binary.
        let txt_b = root.join("txt_b");
        colmap::write_text(&txt_b, &colmap::read_binary(&bin_b).unwrap()).unwrap();
        assert_same_files(&txt, &txt_b, &FILES_TXT);
    }
}

#[test]
fn signed_zero_and_subnormals_keep_their_bits_in_text() {
    let mut rec = synthetic(9);
    rec.points3d[0].xyz = [-0.0, 5e-324, f64::MAX];
    let dir = scratch_dir("bits");
    colmap::write_text(&dir, &rec).unwrap();
    let back = colmap::read_text(&dir).unwrap();
    let bits = |v: [f64; 3]| v.map(f64::to_bits);
    assert_eq!(bits(back.points3d[0].xyz), bits([-0.0, 5e-324, f64::MAX]));
}

#[test]
fn bonsai_reads_and_round_trips_byte_identically() {
    let src = bonsai_model();
    let rec = colmap::read_binary(&src).unwrap();
    assert_eq!(rec.cameras.len(), 1);
    let cam = &rec.cameras[0];
    assert_eq!(cam.model, CameraModel::Pinhole);
    assert_eq!((cam.width, cam.height), (800, 533));
    let k = cam.intrinsics();
    assert!((k.fx - 826.2348867138938).abs() < 1e-9 && k.fx == k.fy);
    assert_eq!((k.cx, k.cy), (400.0, 266.5));
    assert_eq!(rec.images.len(), 292);
    assert_eq!(rec.images[0].name, "DSCF5565.JPG");
    assert!(rec
        .images
        .iter()
        .all(|im| im.points2d.is_empty() && im.camera_id == cam.id));
    assert_eq!(rec.points3d.len(), 92_736);
    assert!(rec.points3d.iter().all(|p| p.track.is_empty()));
    for im in &rec.images {
        let norm: f64 = im.qvec.iter().map(|q| q * q).sum::<f64>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-9,
            "image {} has a non-unit quaternion",
            im.id
        );
    }

    let root = scratch_dir("bonsai");
    let (txt, bin) = (root.join("txt"), root.join("bin"));
    colmap::write_text(&txt, &rec).unwrap();
    let from_txt = colmap::read_text(&txt).unwrap();
    colmap::write_binary(&bin, &from_txt).unwrap();
    assert_same_files(&src, &bin, &FILES_BIN);
    // `read` prefers binary; with only text present it reads the text.
    assert_eq!(colmap::read(&txt).unwrap(), rec);
}

#[test]
fn colmap_style_text_with_short_floats_reads() {
    let dir = scratch_dir("colmap_text");
    std::fs::write(
        dir.join("cameras.txt"),
        "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n\
         # Number of cameras: 2\n1 SIMPLE_RADIAL 2832 2128 2973.2 1416 1064 -0.162\n2 PINHOLE 10 20 1 2 3 4\r\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("images.txt"),
        "# comment\n\n1 1 0 0 0 0.5 -1 2 1 a.jpg\n10 20 -1 30.5 40 7\n2 0.7071 0 0.7071 0 0 0 0 2 b.jpg\n\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("points3D.txt"),
        "# 3D points\n7 1 2 3 255 0 12 0.25 1 1\n",
    )
    .unwrap();
    let rec = colmap::read(&dir).unwrap();
    assert_eq!(rec.cameras[0].model, CameraModel::SimpleRadial);
    assert_eq!(rec.cameras[0].distortion_params(), &[-0.162]);
    assert_eq!(rec.images.len(), 2);
    assert_eq!(
        rec.images[0].points2d,
        vec![
            Point2D {
                xy: [10.0, 20.0],
                point3d_id: None
            },
            Point2D {
                xy: [30.5, 40.0],
                point3d_id: Some(7)
            }
        ]
    );
    assert!(rec.images[1].points2d.is_empty());
    assert_eq!(rec.images[1].name, "b.jpg");
    assert_eq!(rec.points3d[0].rgb, [255, 0, 12]);
    assert_eq!(rec.points3d[0].track, vec![(1, 1)]);
}
