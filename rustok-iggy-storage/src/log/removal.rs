//! The files of segments taken out of a log, removed without its lock.

use std::path::{Path, PathBuf};

use crate::disk::Disk;
use crate::error::StorageError;
use crate::report::RetentionReport;
use crate::segment::Segment;

/// Segments taken out of a log (under its lock) whose files are still to be
/// removed (without it): [`Removal::run`].
#[derive(Debug)]
pub struct Removal {
    pub(super) dir: PathBuf,
    pub(super) segments: Vec<Segment>,
    /// fsync the directory before removing anything (a new segment was created
    /// that must be durable first).
    pub(super) sync_first: bool,
    pub(super) report: RetentionReport,
}

impl Removal {
    /// Removes the files of the segments, oldest first, then fsyncs the directory.
    ///
    /// # Errors
    /// [`StorageError::Io`] when a file cannot be removed; the files removed until
    /// then stay removed (recovery treats the rest as a gap at the start).
    pub fn run(self, disk: &Disk) -> Result<RetentionReport, StorageError> {
        if self.segments.is_empty() {
            return Ok(self.report);
        }
        if self.sync_first {
            disk.sync_dir(&self.dir)?;
        }
        let removed = self.segments.iter().try_for_each(Segment::remove_files);
        disk.sync_dir(&self.dir)?;
        removed?;
        Ok(self.report)
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}
