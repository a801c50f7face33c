//! What the command-line tests share: scratch folders, running the binary, shared data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh empty folder for one test.
#[allow(unused_imports)] // not every test file makes scratch folders
pub use spaceport_io::scratch_dir as scratch;

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

/// Runs the binary with `args` (and `PATH` as [`spaceport_env`] takes it) and checks that it
/// fails, saying `says`, without creating `out`; returns the log for further checks.
pub fn assert_refused(args: &[&str], path_env: Option<&str>, says: &str, out: &Path) -> String {
    let (ok, log) = spaceport_env(args, path_env);
    assert!(!ok, "{args:?} accepted");
    assert!(log.contains(says), "{args:?}: {log}");
    assert!(!out.exists(), "{args:?} created {}", out.display());
    log
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
