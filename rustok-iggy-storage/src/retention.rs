//! Deleting old segments: retention by age and size, and purge.

use std::time::Duration;

use super::report::RetentionReport;
use super::segment::{self, Segment};
use super::{PartitionLog, StorageError};

impl PartitionLog {
    /// Deletes whole closed segments, oldest first, never the active one: first
    /// those whose newest `base_timestamp` is older than `now_micros - max_age` (an
    /// empty closed segment counts as expired), then more while the data files
    /// together exceed `max_bytes`. Offsets are kept: [`next_offset`](Self::next_offset)
    /// does not change, and [`first_offset`](Self::first_offset) moves forward.
    ///
    /// Messages in the active segment are never deleted, so a log may stay above
    /// `max_bytes` by up to one segment.
    ///
    /// # Errors
    /// [`StorageError::Io`] when a file cannot be removed; the segments deleted until
    /// then stay deleted.
    pub fn apply_retention(
        &mut self,
        now_micros: u64,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
    ) -> Result<RetentionReport, StorageError> {
        let mut report = RetentionReport::default();
        let outcome = self.retain(now_micros, max_age, max_bytes, &mut report);
        if report.segments_deleted > 0 {
            segment::sync_dir(&self.dir)?;
        }
        outcome?;
        report.first_offset = self.first_offset();
        Ok(report)
    }

    /// Deletes the `count` oldest closed segments (all of them when fewer are
    /// closed), never the active one. Offsets are kept, as with
    /// [`apply_retention`](Self::apply_retention). For `DeleteSegments`.
    ///
    /// # Errors
    /// [`StorageError::Io`] when a file cannot be removed; the segments deleted until
    /// then stay deleted.
    pub fn delete_oldest_segments(&mut self, count: u32) -> Result<RetentionReport, StorageError> {
        let mut report = RetentionReport::default();
        let mut outcome = Ok(());
        for _ in 0..count {
            if self.closed.is_empty() {
                break;
            }
            outcome = self.delete_oldest(&mut report);
            if outcome.is_err() {
                break;
            }
        }
        if report.segments_deleted > 0 {
            segment::sync_dir(&self.dir)?;
        }
        outcome?;
        report.first_offset = self.first_offset();
        Ok(report)
    }

    fn retain(
        &mut self,
        now_micros: u64,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
        report: &mut RetentionReport,
    ) -> Result<(), StorageError> {
        if let Some(max_age) = max_age {
            let age = u64::try_from(max_age.as_micros()).unwrap_or(u64::MAX);
            let cutoff = now_micros.saturating_sub(age);
            while self
                .closed
                .front()
                .is_some_and(|s| s.newest_timestamp().is_none_or(|t| t < cutoff))
            {
                self.delete_oldest(report)?;
            }
        }
        if let Some(max_bytes) = max_bytes {
            let mut total = self.stats().size_bytes;
            while total > max_bytes
                && let Some(size) = self.closed.front().map(|s| s.size)
            {
                self.delete_oldest(report)?;
                total = total.saturating_sub(size);
            }
        }
        Ok(())
    }

    /// Deletes the oldest closed segment.
    fn delete_oldest(&mut self, report: &mut RetentionReport) -> Result<(), StorageError> {
        let Some(oldest) = self.closed.front() else {
            return Ok(());
        };
        oldest.remove_files()?;
        report.segments_deleted = report.segments_deleted.saturating_add(1);
        report.bytes_deleted = report.bytes_deleted.saturating_add(oldest.size);
        report.messages_deleted = report.messages_deleted.saturating_add(oldest.messages());
        self.closed.pop_front();
        Ok(())
    }

    /// Deletes every message, all segments included, and leaves one empty segment
    /// at [`next_offset`](Self::next_offset), which does not change: offsets are never
    /// reused. For `PurgeTopic`.
    ///
    /// The empty segment is created (and the directory fsynced) before anything is
    /// deleted, so that a crash at any point leaves a file named by the next offset
    /// and recovery never hands out an offset twice.
    ///
    /// # Errors
    /// [`StorageError::Io`] when a file cannot be created or removed; the segments
    /// deleted until then stay deleted.
    pub fn purge(&mut self) -> Result<(), StorageError> {
        if !self.active.is_empty() || self.active.base_offset != self.next_offset {
            let fresh = Segment::create(&self.dir, self.next_offset)?;
            segment::sync_dir(&self.dir)?;
            let old = std::mem::replace(&mut self.active, fresh);
            self.closed.push_back(old);
            self.unsynced_since = None;
        }
        let mut report = RetentionReport::default();
        while !self.closed.is_empty() {
            self.delete_oldest(&mut report)?;
        }
        segment::sync_dir(&self.dir)
    }
}
