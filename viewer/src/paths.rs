//! Turning a request path into a file under the served folder, refusing anything that could
//! leave it.

use std::path::{Component, Path, PathBuf};

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A `%` escape that is not two hex digits, or bytes that are not UTF-8 once decoded.
    #[error("bad percent-encoding")]
    BadEncoding,
    /// `..`, `.`, an absolute path, a drive prefix, a backslash or a NUL byte.
    #[error("path leaves the served folder")]
    Traversal,
    /// Nothing after the prefix.
    #[error("empty path")]
    Empty,
}

/// Decodes `%XX` escapes (and nothing else: `+` stays a plus, as in a path).
pub fn percent_decode(s: &str) -> Result<String, Refusal> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(Refusal::BadEncoding)?;
            let h = std::str::from_utf8(hex).map_err(|_| Refusal::BadEncoding)?;
            let v = u8::from_str_radix(h, 16).map_err(|_| Refusal::BadEncoding)?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Refusal::BadEncoding)
}

/// The relative path a request names, after percent-decoding (query removed by the caller).
/// Only plain names separated by `/` pass: decoding happens once, before the check, so
/// `%2e%2e` is seen as `..` and `%2f` as a separator.
pub fn safe_relative(encoded: &str) -> Result<PathBuf, Refusal> {
    let decoded = percent_decode(encoded)?;
    if decoded.is_empty() {
        return Err(Refusal::Empty);
    }
    if decoded.contains('\\') || decoded.contains('\0') || decoded.starts_with('/') {
        return Err(Refusal::Traversal);
    }
    let mut out = PathBuf::new();
    for part in decoded.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains(':') {
            return Err(Refusal::Traversal);
        }
        out.push(part);
    }
    // Belt and braces: what Path makes of it must be plain names too.
    if out.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Refusal::Traversal);
    }
    Ok(out)
}

/// `root/rel` if it exists and, with symbolic links resolved, still lies inside `root`.
pub fn resolve_inside(root: &Path, rel: &Path) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let full = root.join(rel).canonicalize().ok()?;
    (full.starts_with(&root) && full.is_file()).then_some(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        assert_eq!(
            safe_relative("images/v%2000.png").unwrap(),
            PathBuf::from("images/v 00.png")
        );
        assert_eq!(
            safe_relative("scene.sog").unwrap(),
            PathBuf::from("scene.sog")
        );
    }

    #[test]
    fn traversal_is_refused_in_every_spelling() {
        for bad in [
            "..",
            "../etc/passwd",
            "a/../../b",
            "%2e%2e/secret",
            "%2E%2E%2Fsecret",
            "a%2f..%2f..%2fb",
            "/etc/passwd",
            "%2fetc%2fpasswd",
            "..%5c..%5cwin.ini",
            "a\\b",
            "C:/x",
            "a//b",
            "./a",
            "a/%00",
        ] {
            assert_eq!(safe_relative(bad), Err(Refusal::Traversal), "{bad}");
        }
    }

    #[test]
    fn bad_escapes_are_refused() {
        for bad in ["%", "%2", "%zz", "%ff%fe"] {
            assert_eq!(safe_relative(bad), Err(Refusal::BadEncoding), "{bad}");
        }
        assert_eq!(safe_relative(""), Err(Refusal::Empty));
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let base = std::env::temp_dir().join(format!("spv-paths-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(base.join("outside.txt"), b"secret").unwrap();
        std::fs::write(root.join("inside.txt"), b"ok").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("outside.txt"), root.join("link.txt")).unwrap();
        assert!(resolve_inside(&root, Path::new("inside.txt")).is_some());
        #[cfg(unix)]
        assert!(resolve_inside(&root, Path::new("link.txt")).is_none());
        assert!(resolve_inside(&root, Path::new("missing.txt")).is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
