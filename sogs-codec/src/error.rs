//! The codec's error type: every variant names the file (or bundle entry) involved.

use std::path::PathBuf;

/// Everything that can go wrong encoding, writing or reading SOG data.
#[derive(Debug, thiserror::Error)]
pub enum SogError {
    /// The file or folder does not exist.
    #[error("{path}: no such file or folder")]
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// An operating-system error while reading or writing.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// meta.json is not valid JSON or lacks a field the format requires.
    #[error("{path}: bad meta.json: {reason}")]
    BadMeta {
        /// The meta.json involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// meta.json declares a format version this reader does not know.
    #[error("{path}: unsupported SOG version {version} (this reader knows 1 and 2)")]
    UnsupportedVersion {
        /// The meta.json involved.
        path: PathBuf,
        /// The declared version.
        version: String,
    },
    /// An image is not a decodable lossless WebP.
    #[error("{path}: bad image: {reason}")]
    BadImage {
        /// The image involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// meta.json and an image disagree (sizes, counts, indices out of range).
    #[error("{path}: {reason}")]
    Mismatch {
        /// The image or meta.json involved.
        path: PathBuf,
        /// The disagreement.
        reason: String,
    },
    /// A bundle or folder without meta.json: not a SOG (or an incomplete one).
    #[error("{path}: not a SOG: it has no meta.json (a SOG bundle or folder holds meta.json beside its WebP images)")]
    NoMeta {
        /// The bundle or folder.
        path: PathBuf,
    },
    /// A file that meta.json lists is absent.
    #[error("{path}: missing file `{name}` listed in meta.json")]
    MissingFile {
        /// The folder or bundle searched.
        path: PathBuf,
        /// The file name from meta.json.
        name: String,
    },
    /// The .sog bundle is not a readable ZIP archive.
    #[error("{path}: bad .sog bundle: {reason}")]
    BadBundle {
        /// The bundle involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The Gaussians or options handed to the encoder cannot be encoded.
    #[error("cannot encode: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// The Gaussians contain NaN or infinite values.
    #[error("cannot encode: {count} non-finite values, first in Gaussian {first_index}")]
    NonFinite {
        /// How many values are NaN or infinite.
        count: usize,
        /// The first Gaussian holding one.
        first_index: usize,
    },
    /// The WebP encoder failed.
    #[error("{name}: WebP encoding failed: {reason}")]
    Encode {
        /// The image being encoded.
        name: String,
        /// The encoder's complaint.
        reason: String,
    },
}

impl From<spaceport_io::IoError> for SogError {
    /// A target with no file name is bad input; anything else maps as in [`io_err`].
    fn from(e: spaceport_io::IoError) -> Self {
        if e.source.kind() == std::io::ErrorKind::InvalidInput {
            SogError::InvalidInput {
                reason: format!("{}: path has no file name", e.path.display()),
            }
        } else {
            io_err(e.path, e.source)
        }
    }
}

/// Maps an I/O error to [`SogError::NotFound`] or [`SogError::Io`] for `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>, e: std::io::Error) -> SogError {
    let path = path.into();
    if e.kind() == std::io::ErrorKind::NotFound {
        SogError::NotFound { path }
    } else {
        SogError::Io { path, source: e }
    }
}
