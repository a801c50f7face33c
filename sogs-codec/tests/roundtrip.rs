//! Encode -> decode round trips on random scenes: every attribute within its quantisation step,
//! the written files laid out as SOG v2 requires, deterministic output.

mod common;

use std::path::Path;

use common::{random_scene, scratch};
use sogs_codec::internals::log_transform;
use sogs_codec::{
    decode_entries, encode_sog, grid_size, read_sog, read_sog_meta, write_sog_bundle,
    write_sog_dir, EncodeOptions, Meta, SogError, SortMode, Stage,
};
use splat_core::gaussians::sigmoid;
use splat_core::Gaussians;

fn encode(g: &Gaussians, opts: &EncodeOptions) -> sogs_codec::SogFiles {
    let mut stages = Vec::new();
    let f = encode_sog(g, opts, &mut |p| {
        assert!(p.done <= p.total, "{p:?}");
        if stages.last() != Some(&p.stage) {
            stages.push(p.stage);
        }
    })
    .expect("encode");
    let mut want = vec![Stage::Sort, Stage::Quantize];
    if f.meta.shN.is_some() {
        if opts.palette_weights.is_none() && opts.palette_visibility_views != Some(0) {
            want.push(Stage::Visibility);
        }
        want.push(Stage::ShPalette);
    }
    want.push(Stage::Webp);
    assert_eq!(stages, want, "progress stages");
    f
}

fn nearest_gap(cb: &[f32], v: f32) -> f32 {
    cb.iter()
        .map(|c| (c - v).abs())
        .fold(f32::INFINITY, f32::min)
}

/// Checks every decoded attribute against the input it came from.
fn check_within_steps(g: &Gaussians, files: &sogs_codec::SogFiles, back: &Gaussians, bands: usize) {
    let m = &files.meta;
    assert_eq!(back.len(), g.len());
    assert_eq!(back.sh_degree, bands);
    let mut sorted = files.order.clone();
    sorted.sort_unstable();
    assert!(
        sorted.iter().enumerate().all(|(i, &v)| v as usize == i),
        "order is a permutation"
    );
    let (ci, co) = (g.sh_coeffs(), back.sh_coeffs());
    for (t, &s) in files.order.iter().enumerate() {
        let s = s as usize;
        for a in 0..3 {
            // 16-bit position in the log domain: at most half a step off (plus float slack).
            let step = (m.means.maxs[a] - m.means.mins[a]) / 65535.0;
            let e = (log_transform(back.means[t][a] as f64) - log_transform(g.means[s][a] as f64))
                .abs();
            assert!(
                e <= 0.5 * step + 1e-6,
                "position {s} axis {a}: {e} > half step {step}"
            );
            // Codebook attributes decode to the nearest codebook entry.
            let e = (back.log_scales[t][a] - g.log_scales[s][a]).abs();
            assert!(
                e <= nearest_gap(&m.scales.codebook, g.log_scales[s][a]) + 1e-6,
                "scale {s}"
            );
            let e = (back.sh[t * co * 3 + a] - g.sh[s * ci * 3 + a]).abs();
            assert!(
                e <= nearest_gap(&m.sh0.codebook, g.sh[s * ci * 3 + a]) + 1e-6,
                "dc {s}"
            );
        }
        let (p, q) = (
            sigmoid(back.opacity_logits[t]),
            sigmoid(g.opacity_logits[s]),
        );
        assert!(
            (p - q).abs() <= 0.5 / 255.0 + 1e-5,
            "opacity {s}: {q} -> {p}"
        );
        let n = g.quats[s].iter().map(|v| v * v).sum::<f32>().sqrt();
        let dot: f32 = back.quats[t]
            .iter()
            .zip(&g.quats[s])
            .map(|(a, b)| a * b / n)
            .sum();
        // Three components each within half of a 2/255/√2 step: cos of the angle > 0.99995.
        assert!(dot.abs() > 0.99995, "rotation {s}: dot {dot}");
    }
}

#[test]
fn every_degree_round_trips_within_quantisation_steps() {
    for degree in 0..=3 {
        let g = random_scene(1500, degree, degree as u64);
        // A palette as large as the scene makes every Gaussian its own centroid, so f_rest too must
        // land on the nearest codebook value.
        let opts = EncodeOptions {
            palette_size: Some(g.len()),
            ..Default::default()
        };
        let files = encode(&g, &opts);
        let back = decode_entries(Path::new("mem"), &files.entries()).expect("decode");
        check_within_steps(&g, &files, &back, degree);
        if let Some(shn) = &files.meta.shN {
            assert_eq!(shn.bands, degree);
            assert!(shn.count <= g.len());
            let k = g.sh_coeffs() - 1;
            for (t, &s) in files.order.iter().enumerate() {
                for j in 0..k * 3 {
                    let (orig, dec) = (
                        g.sh[(s as usize * g.sh_coeffs() + 1) * 3 + j],
                        back.sh[(t * back.sh_coeffs() + 1) * 3 + j],
                    );
                    // Duplicated vectors share a centroid; allow their spread (±0.01 noise).
                    assert!(
                        (orig - dec).abs() <= nearest_gap(&shn.codebook, orig) + 0.021,
                        "f_rest {s}/{j}: {orig} -> {dec}"
                    );
                }
            }
        } else {
            assert_eq!(degree, 0);
        }
    }
}

#[test]
fn default_palette_clusters_sh_and_plas_sort_round_trips() {
    let g = random_scene(4000, 3, 9);
    let files = encode(
        &g,
        &EncodeOptions {
            sort: SortMode::Plas,
            ..Default::default()
        },
    );
    let shn = files.meta.shN.as_ref().expect("SH kept");
    assert_eq!(
        shn.count, 2048,
        "splat-transform's palette rule for 4000 Gaussians"
    );
    let back = decode_entries(Path::new("mem"), &files.entries()).unwrap();
    check_within_steps(&g, &files, &back, 3);
    // 20 materials with ±0.01 noise: clustered SH must be far closer than the spread of the data.
    let (mut err, mut var) = (0f64, 0f64);
    let (mut mean, k) = (0f64, 45);
    for s in 0..g.len() {
        for j in 0..k {
            mean += g.sh[s * 48 + 3 + j] as f64;
        }
    }
    mean /= (g.len() * k) as f64;
    for (t, &s) in files.order.iter().enumerate() {
        for j in 0..k {
            let (o, d) = (
                g.sh[s as usize * 48 + 3 + j] as f64,
                back.sh[t * 48 + 3 + j] as f64,
            );
            err += (o - d).powi(2);
            var += (o - mean).powi(2);
        }
    }
    assert!(err < 0.01 * var, "SH error {err} vs variance {var}");
}

#[test]
fn fewer_bands_than_the_input() {
    let g = random_scene(600, 3, 4);
    let files = encode(
        &g,
        &EncodeOptions {
            sh_bands: Some(1),
            ..Default::default()
        },
    );
    assert_eq!(files.meta.shN.as_ref().unwrap().bands, 1);
    let back = decode_entries(Path::new("mem"), &files.entries()).unwrap();
    assert_eq!(back.sh_degree, 1);
    let files0 = encode(
        &g,
        &EncodeOptions {
            sh_bands: Some(0),
            ..Default::default()
        },
    );
    assert!(files0.meta.shN.is_none());
    assert_eq!(files0.images.len(), 5);
}

#[test]
fn meta_json_and_images_have_the_v2_layout() {
    let g = random_scene(1001, 2, 5);
    let files = encode(&g, &EncodeOptions::default());
    let v: serde_json::Value = serde_json::from_slice(&files.meta_json()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    // serde_json without preserve_order sorts keys; check presence, then the raw text order.
    for k in [
        "version", "asset", "count", "means", "scales", "quats", "sh0", "shN",
    ] {
        assert!(keys.contains(&k), "{k} missing");
    }
    let text = String::from_utf8(files.meta_json()).unwrap();
    assert!(text.starts_with("{\"version\":2,"), "{}", &text[..40]);
    let pos = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
    assert!(
        pos("count") < pos("means")
            && pos("means") < pos("scales")
            && pos("scales") < pos("quats")
            && pos("quats") < pos("sh0")
            && pos("sh0") < pos("shN")
    );
    assert_eq!(v["count"], 1001);
    assert_eq!(
        v["means"]["files"],
        serde_json::json!(["means_l.webp", "means_u.webp"])
    );
    assert_eq!(v["shN"]["bands"], 2);
    for cb in [
        &v["scales"]["codebook"],
        &v["sh0"]["codebook"],
        &v["shN"]["codebook"],
    ] {
        let c: Vec<f64> = cb
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(c.len(), 256);
        assert!(c.windows(2).all(|w| w[0] <= w[1]), "codebook ascending");
    }
    let (w, h) = grid_size(1001);
    assert_eq!((w, h), (32, 32));
    for (name, bytes) in &files.images {
        let img = sogs_codec::internals::decode_webp(Path::new(name), bytes).unwrap();
        if name == "shN_centroids.webp" {
            assert_eq!(img.width, 64 * 8);
            assert_eq!(
                img.height,
                files.meta.shN.as_ref().unwrap().count.div_ceil(64)
            );
        } else {
            assert_eq!((img.width, img.height), (w, h), "{name}");
            // Texels past the last Gaussian are all zero.
            assert!(
                img.data[1001 * 4..].iter().all(|&b| b == 0),
                "{name} padding"
            );
        }
        if name == "quats.webp" {
            assert!((0..1001).all(|i| img.texel(i)[3] >= 252));
        }
    }
}

#[test]
fn bundle_and_folder_write_and_read_back() {
    let dir = scratch("bundle");
    let g = random_scene(700, 1, 6);
    let files = encode(&g, &EncodeOptions::default());
    let mem = decode_entries(Path::new("mem"), &files.entries()).unwrap();

    let sog = dir.join("scene.sog");
    write_sog_bundle(&files, &sog).unwrap();
    assert!(read_sog(&sog).unwrap() == mem);
    let bytes = std::fs::read(&sog).unwrap();
    // End of central directory exactly 22 bytes from the end (no comment), as the engine requires.
    let eocd = bytes.len() - 22;
    assert_eq!(&bytes[eocd..eocd + 4], b"PK\x05\x06");
    assert_eq!(u16::from_le_bytes([bytes[eocd + 20], bytes[eocd + 21]]), 0);
    let cd = u32::from_le_bytes(bytes[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    let mut names = Vec::new();
    let mut p = cd;
    while &bytes[p..p + 4] == b"PK\x01\x02" {
        let method = u16::from_le_bytes([bytes[p + 10], bytes[p + 11]]);
        let flags = u16::from_le_bytes([bytes[p + 8], bytes[p + 9]]);
        assert_eq!(
            (method, flags),
            (0, 0x0808),
            "stored, data descriptor, UTF-8"
        );
        let nl = u16::from_le_bytes([bytes[p + 28], bytes[p + 29]]) as usize;
        names.push(String::from_utf8(bytes[p + 46..p + 46 + nl].to_vec()).unwrap());
        p += 46 + nl;
    }
    assert_eq!(
        names,
        [
            "means_l.webp",
            "means_u.webp",
            "quats.webp",
            "scales.webp",
            "sh0.webp",
            "shN_centroids.webp",
            "shN_labels.webp",
            "meta.json"
        ]
    );

    let folder = dir.join("scene_dir");
    write_sog_dir(&files, &folder).unwrap();
    assert!(read_sog(&folder).unwrap() == mem);
    assert!(read_sog(folder.join("meta.json")).unwrap() == mem);
    match read_sog_meta(&folder).unwrap() {
        Meta::V2(m) => assert!(m == files.meta, "meta.json read back differs"),
        Meta::V1(_) => panic!("wrote v2"),
    }
    // Overwriting an existing folder works too, and leaves no temporary files.
    write_sog_dir(&files, &folder).unwrap();
    let mut listing: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listing.sort();
    assert_eq!(listing.len(), 8, "{listing:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn same_seed_same_bytes_other_seed_other_palette() {
    let g = random_scene(3000, 2, 7);
    let a = encode(
        &g,
        &EncodeOptions {
            seed: 1,
            ..Default::default()
        },
    );
    let b = encode(
        &g,
        &EncodeOptions {
            seed: 1,
            ..Default::default()
        },
    );
    assert_eq!(a.entries(), b.entries());
    let c = encode(
        &g,
        &EncodeOptions {
            seed: 2,
            ..Default::default()
        },
    );
    assert_ne!(a.images[5].1, c.images[5].1, "palette depends on the seed");
}

#[test]
fn decoded_scene_writes_as_ply() {
    let dir = scratch("ply");
    let g = random_scene(300, 2, 8);
    let files = encode(&g, &EncodeOptions::default());
    let back = decode_entries(Path::new("mem"), &files.entries()).unwrap();
    let p = dir.join("back.ply");
    splat_core::ply::write_ply(&p, &back).unwrap();
    assert!(splat_core::ply::read_ply(&p).unwrap() == back);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn palette_weights_steer_the_sh_error() {
    // 64 centroids for 2000 Gaussians: the palette must choose whom to serve well.
    let g = random_scene(2000, 3, 11);
    let heavy_first: Vec<f32> = (0..2000)
        .map(|i| if i < 1000 { 100.0 } else { 1.0 })
        .collect();
    let heavy_last: Vec<f32> = heavy_first.iter().rev().copied().collect();
    let err = |w: &Vec<f32>| -> (f64, f64) {
        let f = encode(
            &g,
            &EncodeOptions {
                palette_size: Some(64),
                palette_weights: Some(w.clone()),
                ..Default::default()
            },
        );
        let back = decode_entries(Path::new("mem"), &f.entries()).unwrap();
        let c = g.sh_coeffs() * 3;
        let mut e = [0f64; 2];
        for (t, &s) in f.order.iter().enumerate() {
            let s = s as usize;
            e[(s >= 1000) as usize] += (3..c)
                .map(|j| ((back.sh[t * c + j] - g.sh[s * c + j]) as f64).powi(2))
                .sum::<f64>();
        }
        (e[0], e[1])
    };
    let (a0, a1) = err(&heavy_first);
    let (b0, b1) = err(&heavy_last);
    assert!(
        a0 < b0 && b1 < a1,
        "first half {a0} vs {b0}, second half {a1} vs {b1}"
    );

    let bad = EncodeOptions {
        palette_weights: Some(vec![1.0; 1999]),
        ..Default::default()
    };
    assert!(matches!(
        encode_sog(&g, &bad, &mut |_| {}),
        Err(SogError::InvalidInput { .. })
    ));
    let bad = EncodeOptions {
        palette_weights: Some(vec![-1.0; 2000]),
        ..Default::default()
    };
    assert!(encode_sog(&g, &bad, &mut |_| {}).is_err());
}
