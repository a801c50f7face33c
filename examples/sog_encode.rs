//! Encoder benchmark driver: encodes IN.ply to a `.sog` bundle (or a SOG folder when OUT does not
//! end in `.sog`) with the encoder's tuning knobs exposed, and prints wall time per stage and the
//! size of every file; `--check` also decodes in memory and prints per-attribute rms errors. The
//! user-facing encoder is `spaceport compress` (decoding: `spaceport decompress`).
//!
//! `cargo run --release -p spaceport-examples --example sog_encode -- IN.ply OUT.sog|OUT_DIR
//! [--bands N] [--sort hilbert|morton|plas] [--effort 0-9] [--iters N] [--refine N] [--vis VIEWS]
//! [--seed N] [--check]`

use std::time::Instant;

use sogs_codec::{encode_sog, write_sog_bundle, write_sog_dir, EncodeOptions, SortMode, Stage};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if args.len() < 2 {
        return Err("usage: sog_encode IN.ply OUT [--bands N] [--sort hilbert|morton|plas] [--effort E] [--iters N] [--refine N] [--vis VIEWS] [--seed N] [--check]".into());
    }
    let mut opts = EncodeOptions::default();
    if let Some(b) = flag("--bands") {
        opts.sh_bands = Some(b.parse()?);
    }
    if let Some(s) = flag("--sort") {
        opts.sort = match s.as_str() {
            "plas" => SortMode::Plas,
            "morton" => SortMode::Morton,
            _ => SortMode::Hilbert,
        };
    }
    if let Some(e) = flag("--effort") {
        opts.webp_effort = e.parse()?;
    }
    if let Some(i) = flag("--iters") {
        opts.kmeans_iterations = i.parse()?;
    }
    if let Some(r) = flag("--refine") {
        opts.palette_refine_iterations = r.parse()?;
    }
    if let Some(v) = flag("--vis") {
        opts.palette_visibility_views = Some(v.parse()?);
    }
    if let Some(s) = flag("--seed") {
        opts.seed = s.parse()?;
    }
    let t0 = Instant::now();
    let g = splat_core::ply::read_ply(&args[0])?;
    let t_read = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut last: Option<Stage> = None;
    let mut stage_start = Instant::now();
    let files = encode_sog(&g, &opts, &mut |p| {
        if last != Some(p.stage) {
            if let Some(s) = last {
                eprintln!("  {s:?}: {:.2} s", stage_start.elapsed().as_secs_f64());
            }
            last = Some(p.stage);
            stage_start = Instant::now();
        }
    })?;
    if let Some(s) = last {
        eprintln!("  {s:?}: {:.2} s", stage_start.elapsed().as_secs_f64());
    }
    let t_enc = t1.elapsed().as_secs_f64();
    if args.iter().any(|a| a == "--check") {
        let back = sogs_codec::decode_entries(std::path::Path::new("mem"), &files.entries())?;
        let (c_in, c_out) = (g.sh_coeffs() * 3, back.sh_coeffs() * 3);
        let mut sums = [0f64; 5];
        let mut maxs = [0f64; 5];
        for (t, &s) in files.order.iter().enumerate() {
            let s = s as usize;
            let mut add = |k: usize, d: f64| {
                sums[k] += d * d;
                maxs[k] = maxs[k].max(d.abs());
            };
            for a in 0..3 {
                add(0, (back.means[t][a] - g.means[s][a]) as f64);
                add(1, (back.log_scales[t][a] - g.log_scales[s][a]) as f64);
                add(2, (back.sh[t * c_out + a] - g.sh[s * c_in + a]) as f64);
            }
            add(
                3,
                (splat_core::gaussians::sigmoid(back.opacity_logits[t])
                    - splat_core::gaussians::sigmoid(g.opacity_logits[s])) as f64,
            );
            for j in 3..c_out {
                add(4, (back.sh[t * c_out + j] - g.sh[s * c_in + j]) as f64);
            }
        }
        // The same f_rest error weighted by visibility from 24 virtual views: SH error
        // where it shows in renders, the measure the palette is fitted to.
        let vis = sogs_codec::visibility(&g, 24, 256, &mut |_, _| {});
        let (mut wsum, mut werr) = (0f64, 0f64);
        for (t, &s) in files.order.iter().enumerate() {
            let s = s as usize;
            let e: f64 = (3..c_out)
                .map(|j| ((back.sh[t * c_out + j] - g.sh[s * c_in + j]) as f64).powi(2))
                .sum();
            werr += vis[s] as f64 * e;
            wsum += vis[s] as f64 * (c_out as f64 - 3.0).max(1.0);
        }
        eprintln!(
            "  f_rest visibility-weighted rms {:.4e}",
            (werr / wsum.max(1e-30)).sqrt()
        );
        let n = g.len() as f64;
        let counts = [
            3.0 * n,
            3.0 * n,
            3.0 * n,
            n,
            (c_out as f64 - 3.0).max(1.0) * n,
        ];
        for (k, name) in ["position", "log_scale", "f_dc", "opacity", "f_rest"]
            .iter()
            .enumerate()
        {
            eprintln!(
                "  {name:10} rms {:.4e} max {:.4e}",
                (sums[k] / counts[k]).sqrt(),
                maxs[k]
            );
        }
    }
    let out = &args[1];
    if out.ends_with(".sog") {
        write_sog_bundle(&files, out)?;
    } else {
        write_sog_dir(&files, out)?;
    }
    for (name, data) in &files.images {
        eprintln!("  {name}: {} B", data.len());
    }
    println!(
        "{} Gaussians, SH degree {} -> {} (bands {}): read {t_read:.2} s, encode {t_enc:.2} s, {} B total, palette {}",
        g.len(),
        g.sh_degree,
        out,
        files.meta.shN.as_ref().map_or(0, |s| s.bands),
        std::fs::metadata(out).map(|m| if m.is_dir() { files.total_bytes() as u64 } else { m.len() }).unwrap_or(0),
        files.meta.shN.as_ref().map_or(0, |s| s.count)
    );
    Ok(())
}
