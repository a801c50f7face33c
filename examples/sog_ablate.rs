//! Encodes IN with the default options, decodes in memory and writes two hybrids to split the
//! compression loss by attribute: `PREFIX_rest.ply` (the input with only its higher SH bands taken
//! from the decoded scene) and `PREFIX_base.ply` (the decoded scene with the input's higher SH
//! bands). Render both with the `sog_psnr` example.
//!
//! `cargo run --release -p spaceport-examples --example sog_ablate -- IN.ply PREFIX`

use sogs_codec::{decode_entries, encode_sog, EncodeOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: sog_ablate IN.ply PREFIX".into());
    }
    let g = splat_core::ply::read_ply(&args[0])?;
    let files = encode_sog(&g, &EncodeOptions::default(), &mut |_| {})?;
    let back = decode_entries(std::path::Path::new("mem"), &files.entries())?;
    if back.sh_coeffs() != g.sh_coeffs() {
        return Err("decoded SH degree differs".into());
    }
    let c = g.sh_coeffs() * 3;
    // Input in texel order, so both hybrids pair rows with their decoded counterparts.
    let mut rest = back.clone();
    let mut base = back.clone();
    for (t, &s) in files.order.iter().enumerate() {
        let s = s as usize;
        rest.means[t] = g.means[s];
        rest.log_scales[t] = g.log_scales[s];
        rest.quats[t] = g.quats[s];
        rest.opacity_logits[t] = g.opacity_logits[s];
        rest.sh[t * c..t * c + 3].copy_from_slice(&g.sh[s * c..s * c + 3]);
        base.sh[t * c + 3..(t + 1) * c].copy_from_slice(&g.sh[s * c + 3..(s + 1) * c]);
    }
    splat_core::ply::write_ply(format!("{}_rest.ply", args[1]), &rest)?;
    splat_core::ply::write_ply(format!("{}_base.ply", args[1]), &base)?;
    Ok(())
}
