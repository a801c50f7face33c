//! Examples live beside this crate as `[[example]]` targets; this library holds the little they
//! share that is not the spaceport API: reading positional arguments and the shared data folder.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The read-only data sets beside the repository (`../shared/data` from the workspace root).
pub fn shared_data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")).join(rel)
}

/// Positional argument `i` (0 = first after the program name) parsed as `T`, or `default` when
/// absent; a value that does not parse is an error naming the argument.
pub fn arg<T>(i: usize, name: &str, default: T) -> Result<T, Box<dyn Error>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::args().nth(i + 1) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|e| format!("argument {name} = {s:?}: {e}").into()),
    }
}

/// The size of the file `p` in bytes; an error naming it where it cannot be read.
pub fn file_size(p: &Path) -> Result<u64, Box<dyn Error>> {
    let m = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(m.len())
}

/// The default output folder of example `name`, under the system temporary directory.
pub fn temp_out(name: &str) -> PathBuf {
    std::env::temp_dir().join("spaceport-examples").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_is_beside_the_workspace() {
        let p = shared_data("x");
        assert!(p.ends_with("shared/data/x"));
        // The manifest dir is <root>/examples, so the data sits two levels up.
        assert!(p.starts_with(env!("CARGO_MANIFEST_DIR")));
    }

    #[test]
    fn missing_argument_takes_the_default() {
        // The test harness's own arguments start at index 1; index 1000 is never given.
        assert_eq!(arg::<usize>(1000, "N", 7).unwrap(), 7);
    }

    #[test]
    fn every_example_documents_its_own_command() {
        let manifest = include_str!("../Cargo.toml");
        let sources = [
            ("render_ply_psnr", include_str!("../render_ply_psnr.rs")),
            ("train_from_colmap", include_str!("../train_from_colmap.rs")),
            ("compress_ply", include_str!("../compress_ply.rs")),
            ("sfm_only", include_str!("../sfm_only.rs")),
            ("full_pipeline", include_str!("../full_pipeline.rs")),
            ("sog_encode", include_str!("../sog_encode.rs")),
            ("sog_psnr", include_str!("../sog_psnr.rs")),
            ("sog_ablate", include_str!("../sog_ablate.rs")),
            ("ply_diff", include_str!("../ply_diff.rs")),
            ("antialias_scales", include_str!("../antialias_scales.rs")),
        ];
        for (name, src) in sources {
            assert!(
                manifest.contains(&format!("name = \"{name}\"")),
                "{name} not in Cargo.toml"
            );
            let cmd = format!("cargo run --release -p spaceport-examples --example {name}");
            assert!(src.starts_with("//! "), "{name}: no doc comment at the top");
            assert!(src.contains(&cmd), "{name}: doc comment lacks `{cmd}`");
        }
    }
}
