//! Errors of the storage engine.

use std::io;
use std::path::PathBuf;

/// A failure of the embedded broker's storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed.
    #[error("{op} {path}")]
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
    #[error("malformed batch record")]
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
    /// A stored record read back for a poll does not decode (the file changed under
    /// the log, or was damaged after the log was opened).
    #[error("corrupt record in {path} at byte {position}")]
    CorruptRecord {
        /// The segment file.
        path: PathBuf,
        /// Where the record starts.
        position: u64,
        /// Why it does not decode.
        #[source]
        source: iggy_binary_protocol::WireError,
    },
    /// Appending `count` more messages would overflow the 64-bit offset space.
    #[error("offset overflow: next offset {next_offset} cannot advance by {count} messages")]
    OffsetOverflow {
        /// The partition's next offset.
        next_offset: u64,
        /// The message count of the refused batch.
        count: u32,
    },
    /// A write or sync failed in a way that leaves what is on stable storage
    /// unknown (a failed fsync, a failed index or seal write, a partial write that
    /// could not be cut off); the log or journal refuses writes until it is
    /// reopened (recovery then repairs whatever is not whole and valid).
    #[error("{path}: an earlier write failure left the log unwritable; reopen it to recover")]
    Poisoned {
        /// The file that was being written.
        path: PathBuf,
        /// The failure that poisoned it.
        #[source]
        cause: std::sync::Arc<StorageError>,
    },
}

/// An `io::Error` like `e` (same OS error code, or same kind), for when both a
/// caller and a poisoned state need it.
pub fn copy_io_error(e: &io::Error) -> io::Error {
    e.raw_os_error()
        .map_or_else(|| io::Error::from(e.kind()), io::Error::from_raw_os_error)
}

impl StorageError {
    /// An [`Io`](Self::Io) error: `op` failed on `path` (also used by the broker for
    /// the metadata files it keeps beside the logs).
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
