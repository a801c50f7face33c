//! Bad input: truncated or corrupt files, meta.json that disagrees with its images, counts that
//! do not fit, unencodable Gaussians. Each gives a typed error naming the file, and no output.

mod common;

use std::path::Path;

use common::{random_scene, scratch};
use sogs_codec::{
    decode_entries, encode_sog, read_sog, write_sog_bundle, write_sog_dir, EncodeOptions, SogError,
    SogFiles,
};

fn files() -> SogFiles {
    encode_sog(
        &random_scene(400, 2, 3),
        &EncodeOptions::default(),
        &mut |_| {},
    )
    .unwrap()
}

/// The entries with meta.json replaced by `edit` applied to its JSON value.
fn with_meta(f: &SogFiles, edit: impl Fn(&mut serde_json::Value)) -> Vec<(String, Vec<u8>)> {
    let mut v: serde_json::Value = serde_json::from_slice(&f.meta_json()).unwrap();
    edit(&mut v);
    let mut e = f.entries();
    e.last_mut().unwrap().1 = serde_json::to_vec(&v).unwrap();
    e
}

fn decode_err(entries: &[(String, Vec<u8>)]) -> SogError {
    decode_entries(Path::new("/in/scene.sog"), entries).expect_err("must fail")
}

#[test]
fn missing_paths_and_non_sog_files() {
    let e = read_sog("/no/such/scene.sog").unwrap_err();
    assert!(matches!(e, SogError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("/no/such/scene.sog"));

    let dir = scratch("nonsog");
    let p = dir.join("scene.sog");
    std::fs::write(&p, b"ply\nformat ascii 1.0\n").unwrap();
    let e = read_sog(&p).unwrap_err();
    assert!(matches!(e, SogError::BadBundle { .. }), "{e:?}");
    assert!(e.to_string().contains("scene.sog"));
    // A folder without meta.json, and bundle entries without it: said as such, not as a
    // file "listed in meta.json".
    let e = read_sog(&dir).unwrap_err();
    assert!(
        matches!(e, SogError::NoMeta { ref path } if path == &dir),
        "{e:?}"
    );
    assert!(e.to_string().contains("no meta.json"), "{e}");
    let mut entries = files().entries();
    entries.retain(|(name, _)| name != "meta.json");
    let e = decode_err(&entries);
    assert!(matches!(e, SogError::NoMeta { .. }), "{e:?}");
    assert!(!e.to_string().contains("listed in"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_and_corrupt_bundles() {
    let dir = scratch("trunc");
    let f = files();
    let p = dir.join("scene.sog");
    write_sog_bundle(&f, &p).unwrap();
    let full = std::fs::read(&p).unwrap();

    // Cut anywhere: the central directory (or the data it points at) is gone.
    for cut in [full.len() - 10, full.len() / 2, 100] {
        std::fs::write(&p, &full[..cut]).unwrap();
        let e = read_sog(&p).unwrap_err();
        assert!(
            matches!(e, SogError::BadBundle { .. }),
            "cut at {cut}: {e:?}"
        );
        assert!(e.to_string().contains("scene.sog"));
    }
    // Flip bytes inside the first image's data: the stored CRC catches it.
    let mut bad = full.clone();
    for b in &mut bad[200..220] {
        *b ^= 0x5a;
    }
    std::fs::write(&p, &bad).unwrap();
    assert!(matches!(
        read_sog(&p).unwrap_err(),
        SogError::BadBundle { .. }
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_or_missing_images_name_the_image() {
    let f = files();
    let mut e = f.entries();
    let n = e[3].1.len();
    e[3].1.truncate(n / 2);
    let err = decode_err(&e);
    assert!(
        matches!(err, SogError::BadImage { ref path, .. } if path.ends_with("scales.webp")),
        "{err:?}"
    );

    let mut e = f.entries();
    e[4].1 = b"RIFF\0\0\0\0WEBPjunk".to_vec();
    let err = decode_err(&e);
    assert!(
        matches!(err, SogError::BadImage { ref path, .. } if path.ends_with("sh0.webp")),
        "{err:?}"
    );

    let mut e = f.entries();
    e.remove(2);
    let err = decode_err(&e);
    assert!(
        matches!(err, SogError::MissingFile { ref name, .. } if name == "quats.webp"),
        "{err:?}"
    );

    // A folder missing one image.
    let dir = scratch("missing");
    let folder = dir.join("s");
    write_sog_dir(&f, &folder).unwrap();
    std::fs::remove_file(folder.join("shN_labels.webp")).unwrap();
    let err = read_sog(&folder).unwrap_err();
    assert!(
        matches!(err, SogError::MissingFile { ref name, .. } if name == "shN_labels.webp"),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_meta_json() {
    let f = files();
    let mut e = f.entries();
    e.last_mut().unwrap().1 = b"{\"version\": 2, \"count\": ".to_vec();
    assert!(matches!(decode_err(&e), SogError::BadMeta { .. }));

    let e = with_meta(&f, |v| v["version"] = 3.into());
    let err = decode_err(&e);
    assert!(
        matches!(err, SogError::UnsupportedVersion { ref version, .. } if version == "3"),
        "{err:?}"
    );
    assert!(err.to_string().contains("meta.json"));

    let e = with_meta(&f, |v| {
        v.as_object_mut().unwrap().remove("quats");
    });
    assert!(matches!(decode_err(&e), SogError::BadMeta { .. }));

    let e = with_meta(&f, |v| v["scales"]["codebook"] = serde_json::json!([]));
    assert!(matches!(decode_err(&e), SogError::BadMeta { .. }));

    // A file name escaping the SOG folder is refused, not read.
    let dir = scratch("escape");
    let folder = dir.join("s");
    write_sog_dir(&f, &folder).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&f.meta_json()).unwrap();
    v["sh0"]["files"] = serde_json::json!(["../../etc/passwd"]);
    std::fs::write(folder.join("meta.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(matches!(
        read_sog(&folder).unwrap_err(),
        SogError::BadMeta { .. }
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn meta_disagreeing_with_images() {
    let f = files();
    // More Gaussians than the 20x20 texels hold.
    let e = with_meta(&f, |v| v["count"] = 401.into());
    let err = decode_entries(Path::new("/in/scene.sog"), &e);
    // 400 Gaussians sit on a 20x20 grid: 401 fits only if the grid had spare texels.
    let (w, h) = sogs_codec::grid_size(400);
    if w * h < 401 {
        assert!(matches!(err, Err(SogError::Mismatch { .. })));
    }
    let e = with_meta(&f, |v| v["count"] = (w * h + 1).into());
    let err = decode_err(&e);
    assert!(
        matches!(err, SogError::Mismatch { ref path, .. } if path.ends_with("means_l.webp")),
        "{err:?}"
    );
    assert!(err.to_string().contains("cannot hold"));

    // Bands that do not match the centroid image width.
    let e = with_meta(&f, |v| v["shN"]["bands"] = 3.into());
    let err = decode_err(&e);
    assert!(
        matches!(err, SogError::Mismatch { ref path, .. } if path.ends_with("shN_centroids.webp")),
        "{err:?}"
    );

    // A palette count larger than the centroid image holds.
    let e = with_meta(&f, |v| v["shN"]["count"] = 100_000.into());
    assert!(matches!(decode_err(&e), SogError::Mismatch { .. }));

    // A palette count smaller than the labels use.
    let e = with_meta(&f, |v| v["shN"]["count"] = 1.into());
    let err = decode_err(&e);
    assert!(
        matches!(err, SogError::Mismatch { ref path, .. } if path.ends_with("shN_labels.webp")),
        "{err:?}"
    );

    // A codebook shorter than the indices in the image.
    let e = with_meta(&f, |v| v["sh0"]["codebook"] = serde_json::json!([0.0, 1.0]));
    let err = decode_err(&e);
    assert!(
        matches!(err, SogError::Mismatch { ref path, .. } if path.ends_with("sh0.webp")),
        "{err:?}"
    );

    // Quaternion tags must be 252..=255: the sh0 image (alpha = opacity) does not qualify.
    let mut e = f.entries();
    e[2].1 = e[4].1.clone();
    let err = decode_err(&e);
    assert!(
        matches!(err, SogError::Mismatch { ref path, .. } if path.ends_with("quats.webp")),
        "{err:?}"
    );
}

#[test]
fn unencodable_gaussians_and_unwritable_targets() {
    let mut g = random_scene(50, 1, 1);
    g.means[7][1] = f32::NAN;
    g.sh[12 * 12 + 5] = f32::INFINITY;
    let err = encode_sog(&g, &EncodeOptions::default(), &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            SogError::NonFinite {
                count: 2,
                first_index: 7
            }
        ),
        "{err:?}"
    );

    let empty = splat_core::Gaussians::empty(0);
    assert!(matches!(
        encode_sog(&empty, &EncodeOptions::default(), &mut |_| {}),
        Err(SogError::InvalidInput { .. })
    ));
    let mut short = random_scene(10, 1, 1);
    short.sh.pop();
    assert!(matches!(
        encode_sog(&short, &EncodeOptions::default(), &mut |_| {}),
        Err(SogError::InvalidInput { .. })
    ));
    let opts = EncodeOptions {
        webp_effort: 10,
        ..Default::default()
    };
    assert!(matches!(
        encode_sog(&random_scene(10, 0, 1), &opts, &mut |_| {}),
        Err(SogError::InvalidInput { .. })
    ));

    // Writing under a missing folder fails cleanly and leaves nothing behind.
    let dir = scratch("unwritable");
    let f = files();
    let err = write_sog_bundle(&f, dir.join("no/such/dir/out.sog")).unwrap_err();
    assert!(
        matches!(err, SogError::NotFound { .. } | SogError::Io { .. }),
        "{err:?}"
    );
    assert!(write_sog_dir(&f, dir.join("no/such/dir/out")).is_err());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
