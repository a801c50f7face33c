//! The workspace's one way to write outputs so that nobody sees them half-written: every write goes
//! to a uniquely named temporary sibling, is synced, and is renamed into place; on any error the
//! temporary is removed and whatever stood at the target before is left untouched.
//!
//! - [`write_atomic`]: a file from bytes in memory.
//! - [`write_atomic_with`]: a file streamed through a [`Write`].
//! - [`write_dir_atomic`]: a directory assembled under a temporary sibling, then renamed into place
//!   (replacing an existing one).
//! - [`ensure_writable_dir`]: an output folder checked before long work starts.
//! - [`free_space`]: bytes left on the file system of a path (checked before long work).
//! - [`peak_memory_bytes`] / [`reset_peak_memory`]: the process's peak resident set (Linux).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// An I/O failure while writing `path`, which the message names.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct IoError {
    /// The file or directory being written (the target, not the temporary).
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl IoError {
    fn new(path: &Path, source: io::Error) -> Self {
        IoError {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<IoError> for io::Error {
    fn from(e: IoError) -> Self {
        io::Error::new(e.source.kind(), e)
    }
}

/// Makes temporary names unique within this process; the pid and a clock reading make them
/// unique across processes, including a later one that reuses a crashed writer's pid.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh hidden sibling of `path` (`.NAME.TAG-PID-N-NANOS`), for writing before a rename.
/// No two calls, in this process or in concurrent ones, return the same name.
pub fn temp_sibling(path: &Path, tag: &str) -> Result<PathBuf, IoError> {
    let name = path.file_name().ok_or_else(|| {
        IoError::new(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{tag}-{}-{n}-{nanos}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Creates `dir` if needed and checks that files can be created in it, so that long work
/// finds out before it starts, not when it writes its results.
pub fn ensure_writable_dir(dir: impl AsRef<Path>) -> Result<(), IoError> {
    let dir = dir.as_ref();
    fs::create_dir_all(dir).map_err(|e| IoError::new(dir, e))?;
    let probe = temp_sibling(&dir.join("probe"), "writable")?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| IoError::new(dir, e))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Bytes that an unprivileged process can still write on the file system holding `path` (or
/// its nearest existing ancestor); `None` where the platform or the call cannot say.
pub fn free_space(path: impl AsRef<Path>) -> Option<u64> {
    let mut p = path.as_ref();
    while !p.exists() {
        p = match p.parent()? {
            // A relative path's last ancestor is the working directory.
            q if q.as_os_str().is_empty() => Path::new("."),
            q => q,
        };
    }
    statvfs_free(p)
}

#[cfg(unix)]
fn statvfs_free(p: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` is a properly sized out-parameter that
    // statvfs fills completely on success; it is read only then.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so the structure is initialised.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(not(unix))]
fn statvfs_free(_: &Path) -> Option<u64> {
    None
}

/// Writes `bytes` to `path` atomically: readers see the old file or the whole new one.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), IoError> {
    let path = path.as_ref();
    write_atomic_with(path, |w| {
        w.write_all(bytes).map_err(|e| IoError::new(path, e))
    })
}

/// Streams a file to `path` atomically: `f` writes through a buffered writer on a fresh
/// temporary sibling, which is then flushed, synced and renamed over `path`. If `f` or any
/// step fails the temporary is removed, `path` is left as it was, and the error is returned
/// (`f`'s own, or an [`IoError`] naming `path` converted into `E`).
pub fn write_atomic_with<T, E, F>(path: impl AsRef<Path>, f: F) -> Result<T, E>
where
    E: From<IoError>,
    F: FnOnce(&mut dyn Write) -> Result<T, E>,
{
    let path = path.as_ref();
    let (tmp, file) = create_temp_file(path)?;
    let result = (|| {
        let mut w = BufWriter::new(file);
        let value = f(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| IoError::new(path, e.into_error()))?;
        file.sync_all().map_err(|e| IoError::new(path, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| IoError::new(path, e))?;
        Ok(value)
    })();
    match result {
        Ok(v) => {
            sync_parent(path);
            Ok(v)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Creates a fresh temporary sibling of `path` exclusively (never truncating another writer's).
fn create_temp_file(path: &Path) -> Result<(PathBuf, File), IoError> {
    loop {
        let tmp = temp_sibling(path, "tmp")?;
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(IoError::new(path, e)),
        }
    }
}

/// Syncs the directory holding `path` so the rename itself survives a crash. Best effort: some
/// file systems refuse to sync directories, and the data is already safe in the file.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(parent) {
        let _ = d.sync_all();
    }
}

/// Builds the directory `dir` atomically: `f` fills a fresh temporary sibling directory (whose
/// path it is given), whose files are then synced and which is renamed to `dir`. An existing `dir`
/// is replaced whole (moved aside first, removed once the new one is in place, put back if the
/// new one cannot be). On any error the temporary is removed and `dir` is left as it was. The
/// parent of `dir` must exist: a missing parent is the caller's mistake, reported, not created.
pub fn write_dir_atomic<T, E, F>(dir: impl AsRef<Path>, f: F) -> Result<T, E>
where
    E: From<IoError>,
    F: FnOnce(&Path) -> Result<T, E>,
{
    let dir = dir.as_ref();
    let tmp = create_temp_dir(dir)?;
    let result = f(&tmp).and_then(|v| {
        sync_tree(&tmp).map_err(|e| IoError::new(dir, e))?;
        replace_dir(&tmp, dir)?;
        Ok(v)
    });
    match result {
        Ok(v) => {
            sync_parent(dir);
            Ok(v)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Creates a fresh temporary sibling directory of `dir` (never reusing another writer's).
fn create_temp_dir(dir: &Path) -> Result<PathBuf, IoError> {
    loop {
        let tmp = temp_sibling(dir, "tmp")?;
        match fs::create_dir(&tmp) {
            Ok(()) => return Ok(tmp),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(IoError::new(dir, e)),
        }
    }
}

/// Puts the finished file or folder `tmp` at `dir` (a sibling, so the move is a rename), moving
/// whatever is at `dir` aside first (a rename cannot replace a non-empty directory) and
/// restoring it if the second rename fails, so `dir` is never left missing or half-written.
pub fn replace_dir(tmp: &Path, dir: &Path) -> Result<(), IoError> {
    let existing = fs::symlink_metadata(dir).is_ok();
    if !existing {
        return fs::rename(tmp, dir).map_err(|e| IoError::new(dir, e));
    }
    let old = temp_sibling(dir, "old")?;
    fs::rename(dir, &old).map_err(|e| IoError::new(dir, e))?;
    if let Err(e) = fs::rename(tmp, dir) {
        let _ = fs::rename(&old, dir);
        return Err(IoError::new(dir, e));
    }
    // The new directory is in place; failing to delete the old copy loses nothing.
    let _ = if fs::symlink_metadata(&old).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(&old)
    } else {
        fs::remove_file(&old)
    };
    Ok(())
}

/// Syncs every regular file under `dir`, and the directories themselves where allowed.
fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            sync_tree(&entry.path())?;
        } else if ty.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A fresh, empty scratch directory `TMP/spaceport-NAME-PID` for one test or example; one of the
/// same name left by an earlier run is removed first. Test support: panics where it cannot be made.
#[doc(hidden)]
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spaceport-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("scratch directory {}: {e}", dir.display()));
    dir
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`); `None` where the OS does
/// not report it.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// Resets the peak that [`peak_memory_bytes`] reports to the current resident size (Linux
/// `clear_refs`), so a later reading covers only what came after. A no-op elsewhere.
pub fn reset_peak_memory() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// The `VmHWM:` line of a `/proc/PID/status` text, in bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty directory for one test.
    fn scratch(name: &str) -> PathBuf {
        scratch_dir(&format!("io-{name}"))
    }

    /// Names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writable_dir_is_created_and_an_unusable_one_named() {
        let dir = scratch("writable");
        ensure_writable_dir(dir.join("a/b")).unwrap();
        assert!(dir.join("a/b").is_dir());
        assert!(names(&dir.join("a/b")).is_empty(), "the probe is removed");
        fs::write(dir.join("file"), b"x").unwrap();
        let err = ensure_writable_dir(dir.join("file/sub")).unwrap_err();
        assert!(err.to_string().contains("file/sub"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn writes_and_replaces_a_file_leaving_no_temporary() {
        let dir = scratch("write");
        let p = dir.join("a.bin");
        write_atomic(&p, b"first").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"first");
        write_atomic(&p, b"second, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second, longer");
        assert_eq!(names(&dir), ["a.bin"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_stream_keeps_the_old_file_and_removes_the_temporary() {
        let dir = scratch("fail");
        let p = dir.join("keep.txt");
        write_atomic(&p, b"old").unwrap();
        let r: Result<(), io::Error> = write_atomic_with(&p, |w| {
            w.write_all(b"half of the new")?;
            Err(io::Error::other("encoder gave up"))
        });
        assert_eq!(r.unwrap_err().to_string(), "encoder gave up");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(names(&dir), ["keep.txt"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn streamed_write_returns_the_closure_value() {
        let dir = scratch("stream");
        let p = dir.join("s.txt");
        let n = write_atomic_with(&p, |w| -> Result<usize, IoError> {
            for i in 0..1000 {
                writeln!(w, "{i}").map_err(|e| IoError::new(&p, e))?;
            }
            Ok(1000)
        })
        .unwrap();
        assert_eq!(n, 1000);
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert_eq!(text.lines().last(), Some("999"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn error_names_the_target_path() {
        let dir = scratch("missing");
        let p = dir.join("no-such-dir").join("f.txt");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert_eq!(e.path, p);
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("no-such-dir"), "{e}");
        let e = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert_eq!(e.source.kind(), io::ErrorKind::InvalidInput);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_names_are_unique_and_hidden_siblings() {
        let p = Path::new("/some/where/out.ply");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let t = temp_sibling(p, "tmp").unwrap();
            assert_eq!(t.parent(), p.parent());
            let name = t.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with(".out.ply.tmp-"), "{name}");
            assert!(seen.insert(t));
        }
    }

    #[test]
    fn concurrent_writers_to_one_path_never_collide() {
        let dir = scratch("concurrent");
        let p = dir.join("shared.bin");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..25 {
                        write_atomic(p, &[t; 4096]).unwrap();
                    }
                });
            }
        });
        let bytes = fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "a torn write");
        assert_eq!(names(&dir), ["shared.bin"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn directory_is_created_then_replaced_whole() {
        let dir = scratch("dir");
        let out = dir.join("model");
        write_dir_atomic(&out, |tmp| -> Result<(), IoError> {
            fs::write(tmp.join("a"), b"1").map_err(|e| IoError::new(tmp, e))?;
            fs::write(tmp.join("stale"), b"2").map_err(|e| IoError::new(tmp, e))
        })
        .unwrap();
        assert_eq!(names(&out), ["a", "stale"]);
        let v = write_dir_atomic(&out, |tmp| -> Result<u32, IoError> {
            fs::create_dir(tmp.join("sub")).map_err(|e| IoError::new(tmp, e))?;
            fs::write(tmp.join("sub/b"), b"3").map_err(|e| IoError::new(tmp, e))?;
            Ok(7)
        })
        .unwrap();
        assert_eq!(v, 7);
        assert_eq!(names(&out), ["sub"]);
        assert_eq!(fs::read(out.join("sub/b")).unwrap(), b"3");
        assert_eq!(names(&dir), ["model"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_directory_keeps_the_old_one_and_removes_the_temporary() {
        let dir = scratch("dirfail");
        let out = dir.join("model");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("old"), b"kept").unwrap();
        let r: Result<(), io::Error> = write_dir_atomic(&out, |tmp| {
            fs::write(tmp.join("new"), b"partial")?;
            Err(io::Error::other("stage failed"))
        });
        assert_eq!(r.unwrap_err().to_string(), "stage failed");
        assert_eq!(names(&out), ["old"]);
        assert_eq!(fs::read(out.join("old")).unwrap(), b"kept");
        assert_eq!(names(&dir), ["model"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn directory_with_missing_parent_is_an_error_naming_it() {
        let dir = scratch("dirparent");
        let out = dir.join("absent").join("model");
        let e = write_dir_atomic(&out, |_| Ok::<(), IoError>(())).unwrap_err();
        assert_eq!(e.path, out);
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
        assert_eq!(names(&dir), Vec::<String>::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn vm_hwm_is_parsed_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1234 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\tlots kB\n"), None);
    }

    #[test]
    fn free_space_is_reported_for_a_path_and_its_missing_children() {
        let dir = std::env::temp_dir();
        let free = free_space(&dir).expect("statvfs on the temp dir");
        assert!(free > 0);
        let missing = dir.join("spaceport-no-such-dir/deeper/file.ply");
        let again = free_space(&missing).expect("nearest existing ancestor");
        // Other processes write meanwhile: same order of magnitude, not equality.
        assert!(again > free / 2 && again < free.saturating_mul(2));
        // A relative path whose folders do not exist yet is measured where it would be made.
        assert!(free_space("spaceport-no-such-dir/deeper").is_some());
    }

    #[test]
    fn peak_memory_is_reported_on_linux() {
        if cfg!(target_os = "linux") {
            let peak = peak_memory_bytes().expect("VmHWM on Linux");
            // Any running test process holds at least a megabyte resident.
            assert!(peak > 1 << 20, "{peak}");
            reset_peak_memory();
            assert!(peak_memory_bytes().is_some());
        }
    }
}
