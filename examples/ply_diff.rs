//! Per-attribute max and mean absolute difference between two Gaussian PLYs with the same row
//! order (two decoders of one SOG). Rotations are compared up to sign.
//!
//! `cargo run --release -p spaceport-examples --example ply_diff -- A.ply B.ply`

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        eprintln!("usage: ply_diff A.ply B.ply");
        std::process::exit(2);
    }
    let read = |p: &str| {
        splat_core::ply::read_ply(p).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1)
        })
    };
    let (a, b) = (read(&args[0]), read(&args[1]));
    if a.len() != b.len() || a.sh_degree != b.sh_degree {
        eprintln!(
            "different shapes: {} x deg {} vs {} x deg {}",
            a.len(),
            a.sh_degree,
            b.len(),
            b.sh_degree
        );
        std::process::exit(1);
    }
    let report = |name: &str, pairs: &mut dyn Iterator<Item = (f32, f32)>| {
        let (mut max, mut sum, mut n) = (0f64, 0f64, 0usize);
        for (x, y) in pairs {
            let d = (x as f64 - y as f64).abs();
            max = max.max(d);
            sum += d;
            n += 1;
        }
        println!(
            "{name:10} max {max:.3e} mean {:.3e} ({n} values)",
            sum / n.max(1) as f64
        );
    };
    report(
        "position",
        &mut a
            .means
            .iter()
            .flatten()
            .copied()
            .zip(b.means.iter().flatten().copied()),
    );
    report(
        "log_scale",
        &mut a
            .log_scales
            .iter()
            .flatten()
            .copied()
            .zip(b.log_scales.iter().flatten().copied()),
    );
    let flip: Vec<[f32; 4]> = a
        .quats
        .iter()
        .zip(&b.quats)
        .map(|(p, q)| {
            if p.iter().zip(q).map(|(x, y)| x * y).sum::<f32>() < 0.0 {
                q.map(|v| -v)
            } else {
                *q
            }
        })
        .collect();
    report(
        "rotation",
        &mut a
            .quats
            .iter()
            .flatten()
            .copied()
            .zip(flip.iter().flatten().copied()),
    );
    report(
        "opacity",
        &mut a
            .opacity_logits
            .iter()
            .map(|&v| splat_core::gaussians::sigmoid(v))
            .zip(
                b.opacity_logits
                    .iter()
                    .map(|&v| splat_core::gaussians::sigmoid(v)),
            ),
    );
    let c = a.sh_coeffs() * 3;
    report(
        "f_dc",
        &mut (0..a.len())
            .flat_map(|i| (0..3).map(move |k| i * c + k))
            .map(|j| (a.sh[j], b.sh[j])),
    );
    if c > 3 {
        report(
            "f_rest",
            &mut (0..a.len())
                .flat_map(|i| (3..c).map(move |k| i * c + k))
                .map(|j| (a.sh[j], b.sh[j])),
        );
    }
}
