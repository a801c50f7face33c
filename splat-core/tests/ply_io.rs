//! PLY reading and writing: the trained lego scene, synthetic layouts and every error path.

use std::path::Path;

use spaceport_io::scratch_dir;
use splat_core::ply::{
    encode_ply, parse_ply, read_ply, standard_property_names, write_ply, PlyError,
};
use splat_core::Gaussians;

const LEGO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/trained/lego_gsplat_30k.ply"
);

/// Deterministic pseudo-random Gaussians (xorshift) so the tests need no RNG crate.
fn synthetic(n: usize, degree: usize, seed: u64) -> Gaussians {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut r = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0
    };
    let mut g = Gaussians::empty(degree);
    let per = g.sh_coeffs() * 3;
    for _ in 0..n {
        let sh: Vec<f32> = (0..per).map(|_| r()).collect();
        g.push(
            [r() * 10.0, r(), r() * 3.0],
            [r() - 4.0, r() - 4.0, r() - 4.0],
            [r(), r(), r(), r()],
            r() * 5.0,
            &sh,
        );
    }
    g
}

/// A binary little-endian or ascii PLY with the given `(type, name)` vertex properties and rows.
fn ply_bytes(format: &str, props: &[(&str, String)], rows: &[Vec<f64>]) -> Vec<u8> {
    let mut out = format!(
        "ply\nformat {format} 1.0\ncomment synthetic\nelement vertex {}\n",
        rows.len()
    )
    .into_bytes();
    for (t, n) in props {
        out.extend_from_slice(format!("property {t} {n}\n").as_bytes());
    }
    out.extend_from_slice(b"end_header\n");
    for row in rows {
        if format == "ascii" {
            let s: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            out.extend_from_slice(s.join(" ").as_bytes());
            out.push(b'\n');
            continue;
        }
        for ((t, _), &v) in props.iter().zip(row) {
            match *t {
                "float" => out.extend_from_slice(&(v as f32).to_le_bytes()),
                "double" => out.extend_from_slice(&v.to_le_bytes()),
                "uchar" => out.push(v as u8),
                "int" => out.extend_from_slice(&(v as i32).to_le_bytes()),
                _ => panic!("test helper: type {t}"),
            }
        }
    }
    out
}

fn float_props(names: &[String]) -> Vec<(&'static str, String)> {
    names.iter().map(|n| ("float", n.clone())).collect()
}

/// The row of Gaussian `i` in standard-layout order, with f_rest channel-major.
fn standard_row(g: &Gaussians, i: usize) -> Vec<f64> {
    let sh = g.sh_of(i);
    let k = g.sh_coeffs() - 1;
    let mut row: Vec<f64> = g.means[i].iter().map(|&v| v as f64).collect();
    row.extend([0.0; 3]);
    row.extend(sh[..3].iter().map(|&v| v as f64));
    for c in 0..3 {
        for j in 0..k {
            row.push(sh[(1 + j) * 3 + c] as f64);
        }
    }
    row.push(g.opacity_logits[i] as f64);
    row.extend(g.log_scales[i].iter().map(|&v| v as f64));
    row.extend(g.quats[i].iter().map(|&v| v as f64));
    row
}

#[test]
fn lego_reads_and_round_trips_bit_exact() {
    let raw = std::fs::read(LEGO).expect("lego PLY present in shared data");
    let g = read_ply(LEGO).expect("read lego");
    assert_eq!(g.len(), 376_688);
    assert_eq!(g.sh_degree, 3);
    g.check_lengths().expect("consistent buffers");

    // Independent decode of the first and last rows straight from the bytes: 62 floats per row in
    // the standard order, so f_rest_{c*15+k} must land at sh[(1+k)*3+c].
    let body = raw.len() - 376_688 * 62 * 4;
    for &i in &[0usize, 376_687] {
        let row: Vec<f32> = (0..62)
            .map(|j| f32::from_le_bytes(raw[body + (i * 62 + j) * 4..][..4].try_into().unwrap()))
            .collect();
        assert_eq!(g.means[i], [row[0], row[1], row[2]]);
        let sh = g.sh_of(i);
        assert_eq!(&sh[..3], &row[6..9]);
        for c in 0..3 {
            for k in 0..15 {
                assert_eq!(
                    sh[(1 + k) * 3 + c],
                    row[9 + c * 15 + k],
                    "Gaussian {i} channel {c} coeff {k}"
                );
            }
        }
        assert_eq!(g.opacity_logits[i], row[54]);
        assert_eq!(g.log_scales[i], [row[55], row[56], row[57]]);
        assert_eq!(g.quats[i], [row[58], row[59], row[60], row[61]]);
    }

    let dir = scratch_dir("lego");
    let a = dir.join("a.ply");
    let b = dir.join("b.ply");
    write_ply(&a, &g).expect("write");
    let g2 = read_ply(&a).expect("reread");
    assert!(g == g2, "write->read changed values");
    write_ply(&b, &g2).expect("write again");
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "write->read->write not bit-exact"
    );
    // The lego file is the same layout with zero normals, so its vertex bytes must equal ours.
    let ours = std::fs::read(&a).unwrap();
    assert_eq!(&ours[ours.len() - (raw.len() - body)..], &raw[body..]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_sh_degree_round_trips() {
    let dir = scratch_dir("degrees");
    for degree in 0..=3 {
        let g = synthetic(37, degree, degree as u64 + 1);
        let p = dir.join(format!("d{degree}.ply"));
        write_ply(&p, &g).unwrap();
        let back = read_ply(&p).unwrap();
        assert_eq!(back.sh_degree, degree);
        assert!(back == g, "degree {degree} values changed");
        let n_rest = standard_property_names(degree)
            .iter()
            .filter(|n| n.starts_with("f_rest_"))
            .count();
        assert_eq!(n_rest, [0, 9, 24, 45][degree]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn any_property_order_types_extras_and_ascii() {
    let g = synthetic(11, 2, 7);
    let names = standard_property_names(2);
    let rows: Vec<Vec<f64>> = (0..g.len()).map(|i| standard_row(&g, i)).collect();

    // Reverse the property order, add an extra uchar property in the middle and store x as double.
    let mut order: Vec<usize> = (0..names.len()).rev().collect();
    order.insert(5, usize::MAX);
    let props: Vec<(&str, String)> = order
        .iter()
        .map(|&j| match j {
            usize::MAX => ("uchar", "red".to_string()),
            j if names[j] == "x" => ("double", "x".to_string()),
            j => ("float", names[j].clone()),
        })
        .collect();
    let shuffled_rows: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            order
                .iter()
                .map(|&j| if j == usize::MAX { 200.0 } else { r[j] })
                .collect()
        })
        .collect();
    let back = parse_ply(
        Path::new("shuffled.ply"),
        &ply_bytes("binary_little_endian", &props, &shuffled_rows),
    )
    .unwrap();
    assert!(back == g, "reordered properties changed values");

    // ascii prints f32 values through f64 Display, which parses back to the same f32.
    let ascii = ply_bytes("ascii", &float_props(&names), &rows);
    let back = parse_ply(Path::new("ascii.ply"), &ascii).unwrap();
    assert!(back == g, "ascii values changed");
}

#[test]
fn big_endian_and_other_elements() {
    let g = synthetic(3, 0, 3);
    let names = standard_property_names(0);
    // A leading `camera` element of fixed size must be skipped, a trailing one ignored.
    let mut bytes = format!(
        "ply\nformat binary_big_endian 1.0\nelement camera 2\nproperty int id\nelement vertex {}\n",
        g.len()
    )
    .into_bytes();
    for n in &names {
        bytes.extend_from_slice(format!("property float {n}\n").as_bytes());
    }
    bytes
        .extend_from_slice(b"element face 0\nproperty list uchar int vertex_indices\nend_header\n");
    bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    for i in 0..g.len() {
        for v in standard_row(&g, i) {
            bytes.extend_from_slice(&(v as f32).to_be_bytes());
        }
    }
    let back = parse_ply(Path::new("be.ply"), &bytes).unwrap();
    assert!(back == g);
}

fn err_of(bytes: &[u8]) -> PlyError {
    parse_ply(Path::new("/data/broken.ply"), bytes).expect_err("must fail")
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let missing = read_ply("/nonexistent/dir/scene.ply").unwrap_err();
    assert!(matches!(missing, PlyError::NotFound { .. }), "{missing:?}");
    assert!(missing.to_string().contains("/nonexistent/dir/scene.ply"));

    let e = err_of(b"not a ply at all");
    assert!(matches!(e, PlyError::BadHeader { .. }), "{e:?}");
    assert!(e.to_string().contains("/data/broken.ply"));
    let e = err_of(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n");
    assert!(
        matches!(e, PlyError::BadHeader { .. }),
        "no end_header: {e:?}"
    );
    let e = err_of(b"ply\nelement vertex 1\nproperty float x\nend_header\n");
    assert!(matches!(e, PlyError::BadHeader { .. }), "no format: {e:?}");
    let e = err_of(b"ply\nformat binary_little_endian 1.0\nelement vertex lots\nend_header\n");
    assert!(matches!(e, PlyError::BadHeader { .. }), "bad count: {e:?}");
    let e = err_of(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty half x\nend_header\n",
    );
    assert!(matches!(e, PlyError::BadHeader { .. }), "bad type: {e:?}");
    let e = err_of(b"ply\nformat binary_middle_endian 1.0\nelement vertex 0\nend_header\n");
    assert!(matches!(e, PlyError::UnsupportedFormat { .. }), "{e:?}");

    let g = synthetic(5, 1, 9);
    let names = standard_property_names(1);
    let rows: Vec<Vec<f64>> = (0..g.len()).map(|i| standard_row(&g, i)).collect();
    let full = ply_bytes("binary_little_endian", &float_props(&names), &rows);
    let e = err_of(&full[..full.len() - 3]);
    match &e {
        PlyError::Truncated {
            expected, actual, ..
        } => assert_eq!(expected - actual, 3),
        other => panic!("want Truncated, got {other:?}"),
    }

    // A header that promises fewer vertices than the body holds (5 rows, "element vertex 3").
    let header_end = full.windows(11).position(|w| w == b"end_header\n").unwrap() + 11;
    let header = String::from_utf8(full[..header_end].to_vec()).unwrap();
    let mut short = header
        .replacen("element vertex 5", "element vertex 3", 1)
        .into_bytes();
    short.extend_from_slice(&full[header_end..]);
    match err_of(&short) {
        PlyError::ExtraData {
            declared, extra, ..
        } => {
            assert_eq!(declared, 3);
            assert_eq!(extra as usize, 2 * (full.len() - header_end) / 5);
        }
        other => panic!("want ExtraData, got {other:?}"),
    }
    let mut with_newline = full.clone();
    with_newline.push(b'\n');
    assert_eq!(
        parse_ply(Path::new("/data/ok.ply"), &with_newline)
            .unwrap()
            .len(),
        5,
        "a trailing newline is not a row"
    );
    let ascii_full = String::from_utf8(ply_bytes("ascii", &float_props(&names), &rows)).unwrap();
    match err_of(
        ascii_full
            .replacen("element vertex 5", "element vertex 4", 1)
            .as_bytes(),
    ) {
        PlyError::ExtraData {
            declared, extra, ..
        } => assert_eq!((declared, extra), (4, 1)),
        other => panic!("want ExtraData (ascii), got {other:?}"),
    }

    let without_opacity: Vec<String> = names.iter().filter(|n| *n != "opacity").cloned().collect();
    let e = err_of(&ply_bytes(
        "binary_little_endian",
        &float_props(&without_opacity),
        &[],
    ));
    match &e {
        PlyError::MissingProperty { name, .. } => assert_eq!(name, "opacity"),
        other => panic!("want MissingProperty, got {other:?}"),
    }
    let mut ten_rest = names.clone();
    ten_rest.push("f_rest_9".into());
    let e = err_of(&ply_bytes(
        "binary_little_endian",
        &float_props(&ten_rest),
        &[],
    ));
    assert!(
        matches!(e, PlyError::UnsupportedFormat { .. }),
        "10 f_rest: {e:?}"
    );
    // ascii body cut after two of five rows, then a row with a word instead of a number.
    let ascii = String::from_utf8(ply_bytes("ascii", &float_props(&names), &rows)).unwrap();
    let keep = ascii.lines().count() - 3;
    let cut: String = ascii.lines().take(keep).map(|l| format!("{l}\n")).collect();
    match err_of(cut.as_bytes()) {
        PlyError::BadAscii { index, .. } => assert_eq!(index, 2),
        other => panic!("want BadAscii, got {other:?}"),
    }
    let mut lines: Vec<String> = ascii.lines().map(str::to_string).collect();
    let third_row = lines.len() - 3;
    lines[third_row] = lines[third_row].replacen(|c: char| c.is_ascii_digit(), "z", 1);
    let garbled = lines.join("\n") + "\n";
    assert!(matches!(
        err_of(garbled.as_bytes()),
        PlyError::BadAscii { .. }
    ));
}

#[test]
fn non_finite_values_are_counted_and_located() {
    let g = synthetic(6, 1, 4);
    let names = standard_property_names(1);
    let mut rows: Vec<Vec<f64>> = (0..g.len()).map(|i| standard_row(&g, i)).collect();
    rows[2][0] = f64::NAN;
    rows[4][10] = f64::INFINITY;
    rows[4][names.len() - 1] = f64::NEG_INFINITY;
    match err_of(&ply_bytes(
        "binary_little_endian",
        &float_props(&names),
        &rows,
    )) {
        PlyError::NonFinite {
            count, first_index, ..
        } => {
            assert_eq!(count, 3);
            assert_eq!(first_index, 2);
        }
        other => panic!("want NonFinite, got {other:?}"),
    }

    // Writing refuses too and leaves neither the target nor a temporary file behind.
    let dir = scratch_dir("nonfinite");
    let mut bad = g.clone();
    bad.sh[7] = f32::NAN;
    let target = dir.join("out.ply");
    let e = write_ply(&target, &bad).unwrap_err();
    match e {
        PlyError::NonFinite {
            count, first_index, ..
        } => assert_eq!((count, first_index), (1, 0)),
        other => panic!("want NonFinite, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "failed write left files behind"
    );

    // An existing file survives a failed overwrite untouched.
    write_ply(&target, &g).unwrap();
    let before = std::fs::read(&target).unwrap();
    assert!(write_ply(&target, &bad).is_err());
    assert_eq!(std::fs::read(&target).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inconsistent_buffers_are_rejected_on_write() {
    let mut g = synthetic(4, 2, 5);
    g.sh.pop();
    let e = encode_ply(Path::new("x.ply"), &g).unwrap_err();
    assert!(matches!(e, PlyError::InvalidGaussians { .. }), "{e:?}");
}
