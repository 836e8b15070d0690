//! What an append stored and what a sync makes durable: planned under the log's lock,
//! run without it.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::disk::Disk;
use crate::error::StorageError;
use crate::index::IndexBytes;
use crate::seal::{self, Seal};

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The record's base offset (its messages have consecutive offsets from there).
    pub base_offset: u64,
    /// The offset after its last message: the record is durable once
    /// [`durable_offset`](super::PartitionLog::durable_offset) reaches it.
    pub end_offset: u64,
    /// Whether a segment was closed to make room (it awaits its seal: sync soon).
    pub rolled: bool,
}

/// What one sync makes durable, noted under the log's lock by
/// [`PartitionLog::begin_sync`](super::PartitionLog::begin_sync) and done without it
/// by [`run`](Self::run).
#[derive(Debug)]
pub struct SyncPlan {
    /// The active segment's data file, when written since the last fsync.
    pub(super) active: Option<(Arc<File>, PathBuf)>,
    /// The directory, when a segment file was created since it was last fsynced.
    pub(super) dir: Option<PathBuf>,
    /// Closed segments to seal.
    pub(super) seals: Vec<SealJob>,
    /// The log's next offset when the plan was taken: durable once it ran.
    pub(super) end_offset: u64,
    /// Appends the plan covers.
    pub(super) writes: u64,
    /// Segments created before the plan (its directory fsync covers them).
    pub(super) rolls: u64,
    /// When the oldest write it covers was made.
    pub(super) since: Option<Instant>,
    /// When it was taken: writes after it are not covered.
    pub(super) taken_at: Instant,
}

#[derive(Debug)]
pub(super) struct SealJob {
    pub(super) base_offset: u64,
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
    pub(super) index: IndexBytes,
    pub(super) seal: Seal,
}

impl SyncPlan {
    /// Makes the plan's fsyncs, in order: the directory (new segment names), the
    /// active data file, then each closed segment's seal (data file, index files
    /// written and fsynced, seal file written and fsynced). Takes no lock: run it on
    /// a thread that may block. A segment deleted meanwhile is skipped.
    ///
    /// # Errors
    /// [`StorageError::Io`] from the first write or fsync that failed; hand it to
    /// [`PartitionLog::finish_sync`](super::PartitionLog::finish_sync), which poisons
    /// the log.
    pub fn run(&self, disk: &Disk) -> Result<(), StorageError> {
        if let Some(dir) = &self.dir {
            disk.sync_dir(dir)?;
        }
        if let Some((file, path)) = &self.active {
            disk.sync_data(file, path)?;
        }
        for job in &self.seals {
            disk.sync_data(&job.file, &job.path)?;
            if job.index.write(&job.path, Some(disk), false)? {
                seal::write(&job.path, &job.seal, disk)?;
            }
        }
        Ok(())
    }
}
