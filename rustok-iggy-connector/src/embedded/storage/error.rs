//! Errors of the storage engine.

use std::io;
use std::path::PathBuf;

/// A failure of the embedded broker's storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `write`, `fsync`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A batch record could not be appended because it is malformed.
    #[error("malformed batch record: {0}")]
    MalformedBatch(#[source] iggy_binary_protocol::WireError),
    /// Stored data is damaged in a place recovery cannot repair (not the tail).
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        position: u64,
        /// What is wrong.
        reason: String,
    },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
