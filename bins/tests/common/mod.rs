//! What the command-line tests share: scratch folders, running the binary, shared data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh empty folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spaceport-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary with `args` (and `PATH` replaced when `path_env` is set); (success,
/// stderr + stdout).
pub fn spaceport_env(args: &[&str], path_env: Option<&str>) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spaceport"));
    c.args(args);
    if let Some(p) = path_env {
        c.env("PATH", p);
    }
    let o = c.output().expect("spawn spaceport");
    let log = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    (o.status.success(), log)
}

/// Runs the binary with `args`; (success, stderr + stdout).
pub fn spaceport(args: &[&str]) -> (bool, String) {
    spaceport_env(args, None)
}

/// `p` as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A data set under `../shared/data`, or `None` (the test then says it was skipped).
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIPPED: ../shared/data/{rel} is not beside the checkout");
        None
    }
}
