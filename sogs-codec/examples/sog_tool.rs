//! Benchmark/interop driver: `sog_tool encode IN.ply OUT.sog|OUT_DIR [--bands N] [--sort morton|plas]
//! [--effort 0-9] [--iters N] [--seed N]` and `sog_tool decode IN.sog|DIR|meta.json OUT.ply`.
//! Prints wall time per phase and output sizes; the `spaceport` CLI is the user-facing tool.

use std::time::Instant;

use sogs_codec::{encode_sog, read_sog, write_sog_bundle, write_sog_dir, EncodeOptions, SortMode, Stage};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    match args.first().map(String::as_str) {
        Some("encode") if args.len() >= 3 => {
            let mut opts = EncodeOptions::default();
            if let Some(b) = flag("--bands") {
                opts.sh_bands = Some(b.parse()?);
            }
            if let Some(s) = flag("--sort") {
                opts.sort = if s == "plas" { SortMode::Plas } else { SortMode::Morton };
            }
            if let Some(e) = flag("--effort") {
                opts.webp_effort = e.parse()?;
            }
            if let Some(i) = flag("--iters") {
                opts.kmeans_iterations = i.parse()?;
            }
            if let Some(s) = flag("--seed") {
                opts.seed = s.parse()?;
            }
            let t0 = Instant::now();
            let g = splat_core::ply::read_ply(&args[1])?;
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
            let out = &args[2];
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
        }
        Some("decode") if args.len() >= 3 => {
            let t0 = Instant::now();
            let g = read_sog(&args[1])?;
            splat_core::ply::write_ply(&args[2], &g)?;
            println!("{} Gaussians, SH degree {} decoded in {:.2} s", g.len(), g.sh_degree, t0.elapsed().as_secs_f64());
        }
        _ => return Err("usage: sog_tool encode IN.ply OUT [--bands N] [--sort morton|plas] [--effort E] [--iters N] | decode IN OUT.ply".into()),
    }
    Ok(())
}
