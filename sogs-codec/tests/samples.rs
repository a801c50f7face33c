//! The SOG files PlayCanvas's own tools wrote (../shared/data/sog): meta.json fields, decoding to
//! the values splat-transform 3.7.0 decodes, and re-encoding.

#![allow(clippy::type_complexity, clippy::needless_range_loop)]

mod common;

use std::path::{Path, PathBuf};

use common::SHARED;
use sogs_codec::{
    decode_entries, encode_sog, grid_size, read_sog, read_sog_meta, EncodeOptions, Meta,
};
use splat_core::gaussians::sigmoid;

fn sample(name: &str) -> PathBuf {
    Path::new(SHARED).join("sog").join(name)
}

#[test]
fn v2_samples_meta_fields_and_image_sizes() {
    for (name, count) in [("3_0", 31000), ("4_0", 0), ("5_0", 0), ("6_0", 1873)] {
        let meta = match read_sog_meta(sample(name)).unwrap() {
            Meta::V2(m) => m,
            Meta::V1(_) => panic!("{name} is v2"),
        };
        assert_eq!(meta.version, 2);
        if count > 0 {
            assert_eq!(meta.count, count, "{name}");
        }
        assert_eq!(meta.means.files, ["means_l.webp", "means_u.webp"]);
        assert_eq!(meta.scales.codebook.len(), 256);
        assert_eq!(meta.sh0.codebook.len(), 256);
        let shn = meta.shN.as_ref().expect("samples carry SH");
        assert_eq!(shn.bands, 2);
        assert_eq!(shn.codebook.len(), 256);
        assert!(shn.count <= 65536 && shn.count > 0);
        for i in 0..3 {
            assert!(meta.means.mins[i] <= meta.means.maxs[i]);
        }
        // Our grid rule reproduces the texture size PlayCanvas wrote.
        let bytes = std::fs::read(sample(name).join("means_l.webp")).unwrap();
        let img = sogs_codec::internals::decode_webp(Path::new("means_l.webp"), &bytes).unwrap();
        assert_eq!((img.width, img.height), grid_size(meta.count), "{name}");
        let bytes = std::fs::read(sample(name).join("shN_centroids.webp")).unwrap();
        let img = sogs_codec::internals::decode_webp(Path::new("c"), &bytes).unwrap();
        assert_eq!(img.width, 64 * 8);
        assert_eq!(img.height, shn.count.div_ceil(64));

        let g = read_sog(sample(name)).unwrap();
        assert_eq!(g.len(), meta.count);
        assert_eq!(g.sh_degree, 2);
        for q in &g.quats {
            assert!((q.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-3);
        }
        assert!(g
            .sh
            .iter()
            .chain(g.means.iter().flatten())
            .chain(&g.opacity_logits)
            .all(|v| v.is_finite()));
    }
}

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn v2_sample_decodes_to_splat_transform_values() {
    // Reference rows from `splat-transform -w 6_0/meta.json out.ply` (3.7.0).
    let g = read_sog(sample("6_0")).unwrap();
    let rows: [(usize, [f64; 3], f64, [f64; 4], f64, [f64; 2], [f64; 2]); 3] = [
        (
            0,
            [
                -1.003801941871643,
                -0.020999548956751823,
                -1.0018792152404785,
            ],
            -7.584229946136475,
            [
                0.6350096464157104,
                0.16915103793144226,
                0.29670754075050354,
                0.6929035782814026,
            ],
            5.537334442138672,
            [-1.2572405338287354, -1.2572405338287354],
            [-0.1089840903878212, 0.04740794748067856],
        ),
        (
            936,
            [
                0.734129786491394,
                -0.027479691430926323,
                -0.12678973376750946,
            ],
            -4.378870487213135,
            [
                -0.04159451648592949,
                0.9575014114379883,
                0.15251322090625763,
                0.24124819040298462,
            ],
            5.537334442138672,
            [-2.0521652698516846, -2.3003358840942383],
            [0.0027982634492218494, 0.16991908848285675],
        ),
        (
            1872,
            [0.9997991919517517, -0.025666873902082443, 1.007611632347107],
            -4.253625869750977,
            [
                0.997000515460968,
                0.03604857996106148,
                -0.06377825886011124,
                0.024956710636615753,
            ],
            5.537334442138672,
            [-1.3334461450576782, -1.3334461450576782],
            [-0.11550383269786835, 0.0027982634492218494],
        ),
    ];
    let c = g.sh_coeffs();
    for (i, mean, scale0, rot, opacity, dc02, rest) in rows {
        for a in 0..3 {
            assert!(close(g.means[i][a], mean[a]), "{i} mean");
        }
        assert!(close(g.log_scales[i][0], scale0));
        for a in 0..4 {
            assert!(close(g.quats[i][a], rot[a]), "{i} rot");
        }
        assert!((g.opacity_logits[i] as f64 - opacity).abs() < 1e-4);
        assert!(close(g.sh[i * c * 3], dc02[0]) && close(g.sh[i * c * 3 + 2], dc02[1]));
        // f_rest_0 = coefficient 0 of red; f_rest_23 = coefficient 7 of blue (K = 8).
        assert!(close(g.sh[(i * c + 1) * 3], rest[0]), "{i} f_rest_0");
        assert!(
            close(g.sh[(i * c + 1 + 7) * 3 + 2], rest[1]),
            "{i} f_rest_23"
        );
    }
}

#[test]
fn v1_sample_meta_and_values() {
    let dir = sample("playcanvas_logo_sogs_v1");
    let meta = match read_sog_meta(&dir).unwrap() {
        Meta::V1(m) => m,
        Meta::V2(_) => panic!("no version key means v1"),
    };
    assert_eq!(meta.count, 307_128);
    assert_eq!(meta.means.mins.len(), 3);
    assert!((meta.means.mins[1] - -1.3301652313761516).abs() < 1e-15);
    assert_eq!(meta.sh0.mins.len(), 4);
    assert!((meta.sh0.maxs[3] - 5.537334442138672).abs() < 1e-12);
    assert!(meta.sh_n.is_none());
    assert_eq!(meta.quats, ["quats.webp"]);

    let g = read_sog(&dir).unwrap();
    assert_eq!(g.len(), 307_128);
    assert_eq!(g.sh_degree, 0);
    // Reference rows from splat-transform 3.7.0's v1 reader.
    let rows: [(usize, [f64; 3], f64, [f64; 4], f64, [f64; 2]); 3] = [
        (
            0,
            [
                -1.1952922344207764,
                -2.550771951675415,
                -0.46837547421455383,
            ],
            -11.245482444763184,
            [
                0.2745237946510315,
                -0.21351851522922516,
                0.7236064672470093,
                -0.5961880683898926,
            ],
            1.1734257936477661,
            [0.9152413606643677, -0.2966105341911316],
        ),
        (
            153_564,
            [
                -0.031057681888341904,
                -2.471085786819458,
                0.3707716464996338,
            ],
            -4.635412216186523,
            [
                0.21906445920467377,
                0.30225348472595215,
                0.8751646280288696,
                -0.30779942870140076,
            ],
            2.9189891815185547,
            [1.68266761302948, 0.14969167113304138],
        ),
        (
            307_127,
            [
                1.3563364744186401,
                -0.0019729638006538153,
                0.46060022711753845,
            ],
            -9.988637924194336,
            [
                0.15805916488170624,
                0.5961880683898926,
                -0.4242640733718872,
                0.6630061268806458,
            ],
            0.8698495030403137,
            [0.8299717903137207, -0.3412407636642456],
        ),
    ];
    for (i, mean, scale0, rot, opacity, dc02) in rows {
        for a in 0..3 {
            assert!(close(g.means[i][a], mean[a]), "{i} mean");
        }
        assert!(close(g.log_scales[i][0], scale0), "{i} scale");
        for a in 0..4 {
            assert!(close(g.quats[i][a], rot[a]), "{i} rot");
        }
        assert!(close(g.opacity_logits[i], opacity), "{i} opacity");
        assert!(
            close(g.sh[i * 3], dc02[0]) && close(g.sh[i * 3 + 2], dc02[1]),
            "{i} dc"
        );
    }
}

#[test]
fn a_decoded_sample_re_encodes_within_steps() {
    let g = read_sog(sample("5_0")).unwrap();
    let files = encode_sog(&g, &EncodeOptions::default(), &mut |_| {}).unwrap();
    let back = decode_entries(Path::new("mem"), &files.entries()).unwrap();
    assert_eq!(back.len(), g.len());
    for (t, &s) in files.order.iter().enumerate() {
        let s = s as usize;
        let d = (sigmoid(back.opacity_logits[t]) - sigmoid(g.opacity_logits[s])).abs();
        assert!(d <= 0.5 / 255.0 + 1e-5);
        for a in 0..3 {
            // The sample's values already sit on a 256-entry codebook, so ours reproduces them.
            assert!(
                (back.log_scales[t][a] - g.log_scales[s][a]).abs() < 1e-5,
                "scale {s}"
            );
            assert!(
                (back.sh[t * 27 + a] - g.sh[s * 27 + a]).abs() < 1e-5,
                "dc {s}"
            );
        }
    }
}
