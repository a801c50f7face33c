//! One run per output folder: `OUT/.spaceport.lock` holds the pid of the run that owns the
//! folder, so a second `spaceport run` on it stops with a clear error instead of writing
//! job.json beside the first. A lock left by a process that no longer runs (killed, crashed)
//! is taken over.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{PipelineError, Result};

/// The lock file's name in the output folder.
pub const LOCK_FILE: &str = ".spaceport.lock";

/// Holds the folder until dropped.
#[derive(Debug)]
pub struct FolderLock {
    path: PathBuf,
}

/// Whether process `pid` is running (a zombie is not); without /proc the answer is "yes", so
/// a stale lock there needs removing by hand.
fn alive(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    if !proc_dir.is_dir() {
        return true;
    }
    match std::fs::read_to_string(proc_dir.join(pid.to_string()).join("stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

impl FolderLock {
    /// Takes `dir`'s lock, or names the process that holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let me = std::process::id();
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(me.to_string().as_bytes())
                        .map_err(|e| PipelineError::io(&path, e))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if pid != me && alive(pid) => {
                            return Err(PipelineError::Locked {
                                path: dir.to_path_buf(),
                                pid,
                            })
                        }
                        // Stale (or being written this instant: the retry settles it).
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(PipelineError::io(&path, e)),
            }
        }
        Err(PipelineError::Invalid(format!(
            "{}: cannot take the lock of the output folder",
            path.display()
        )))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_holder_is_named_and_a_dead_one_is_taken_over() {
        let dir = std::env::temp_dir().join(format!("spaceport-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // pid 1 always runs.
        std::fs::write(dir.join(LOCK_FILE), "1").unwrap();
        let err = FolderLock::acquire(&dir).unwrap_err();
        assert!(
            err.to_string()
                .contains("in use by another spaceport run (pid 1)"),
            "{err}"
        );
        // A process that ended: spawn one and reap it.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(dir.join(LOCK_FILE), dead.to_string()).unwrap();
        let lock = FolderLock::acquire(&dir).expect("stale lock taken over");
        assert_eq!(
            std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap(),
            std::process::id().to_string()
        );
        drop(lock);
        assert!(!dir.join(LOCK_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
