//! Compresses a 3DGS PLY to PlayCanvas's single-file `.sog`, reads it back and reports the size
//! and the error: per attribute, and as the PSNR of a render of the decoded Gaussians against a
//! render of the originals.
//!
//! `cargo run --release -p spaceport-examples --example compress_ply -- [PLY] [OUT.sog] [SH_BANDS]`
//!
//! Defaults: `../shared/data/trained/lego_gsplat_30k.ply`, `$TMPDIR/spaceport-examples/scene.sog`,
//! SH_BANDS -1 (keep every band of the input; 0 to 3 keeps that many).
use std::error::Error;
use std::path::PathBuf;

use glam::DVec3;
use sogs_codec::{encode_sog, read_sog, write_sog_bundle, EncodeOptions};
use spaceport_examples::{arg, file_size, shared_data, temp_out};
use splat_core::gaussians::sigmoid;
use splat_core::sh::sh_dc_to_rgb;
use splat_core::{loss, render, Camera, RenderOptions};

fn main() -> Result<(), Box<dyn Error>> {
    let input: PathBuf = arg(0, "PLY", shared_data("trained/lego_gsplat_30k.ply"))?;
    let out: PathBuf = arg(1, "OUT", temp_out("scene.sog"))?;
    let bands: i64 = arg(2, "SH_BANDS", -1)?;

    let g = splat_core::ply::read_ply(&input)?;
    let opts = EncodeOptions {
        sh_bands: usize::try_from(bands).ok(),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let mut last = None;
    let files = encode_sog(&g, &opts, &mut |p| {
        if last != Some(p.stage) {
            println!("  {:?} ({:.1} s)", p.stage, t.elapsed().as_secs_f64());
            last = Some(p.stage);
        }
    })?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_sog_bundle(&files, &out)?;
    let (ply_bytes, sog_bytes) = (file_size(&input)?, file_size(&out)?);
    println!(
        "{} Gaussians (SH degree {}): {:.1} MB PLY -> {:.2} MB .sog ({:.1}x) in {:.1} s",
        g.len(),
        g.sh_degree,
        ply_bytes as f64 / 1e6,
        sog_bytes as f64 / 1e6,
        ply_bytes as f64 / sog_bytes as f64,
        t.elapsed().as_secs_f64()
    );

    // Decoded Gaussian t came from input Gaussian files.order[t].
    let d = read_sog(&out)?;
    let n = d.len() as f64;
    let (mut pos2, mut rgb, mut opa) = (0f64, 0f64, 0f64);
    // Base colour of Gaussian i, channel a (its SH block starts with the three DC values).
    let dc = |h: &splat_core::Gaussians, i: usize, a: usize| sh_dc_to_rgb(h.sh_of(i)[a]);
    for (t, &src) in files.order.iter().enumerate() {
        let s = src as usize;
        for a in 0..3 {
            pos2 += ((d.means[t][a] - g.means[s][a]) as f64).powi(2);
            rgb += (dc(&d, t, a) - dc(&g, s, a)).abs() as f64 / 3.0;
        }
        opa += (sigmoid(d.opacity_logits[t]) - sigmoid(g.opacity_logits[s])).abs() as f64;
    }
    println!(
        "round trip: position rms {:.2e}, base colour mean |err| {:.4}, opacity mean |err| {:.4}",
        (pos2 / n).sqrt(),
        rgb / n,
        opa / n
    );

    // One view of the whole model: from outside the sphere holding 90 % of the centres.
    let centre = g
        .means
        .iter()
        .map(|m| DVec3::from(m.map(f64::from)))
        .sum::<DVec3>()
        / n;
    let mut r: Vec<f64> = g
        .means
        .iter()
        .map(|m| (DVec3::from(m.map(f64::from)) - centre).length())
        .collect();
    r.sort_by(f64::total_cmp);
    let radius = r[r.len() * 9 / 10];
    let eye = centre + radius * DVec3::new(0.0, -2.5, 1.0);
    let cam = Camera::look_at(400, 400, 0.69, eye, centre, DVec3::Z);
    let ro = RenderOptions {
        background: [1.0; 3],
        ..Default::default()
    };
    let a = render(&g, &cam, &ro).image;
    let b = render(&d, &cam, &ro).image;
    let a: Vec<f32> = a.iter().map(|v| v.clamp(0.0, 1.0)).collect();
    println!(
        "render of decoded vs original, 400x400: PSNR {:.2} dB -> {}",
        loss::psnr(&b, &a),
        out.display()
    );
    Ok(())
}
