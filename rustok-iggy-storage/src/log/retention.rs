//! Deleting old segments: retention by age and size, and purge.

use std::time::Duration;

use super::PartitionLog;
use super::removal::Removal;
use crate::error::StorageError;
use crate::report::RetentionReport;
use crate::segment::Segment;

impl PartitionLog {
    /// Takes whole closed segments out, oldest first, never the active one: first
    /// those whose newest `base_timestamp` is older than `now_micros - max_age` (an
    /// empty closed segment counts as expired), then more while the data files
    /// together exceed `max_bytes`. Offsets are kept: [`next_offset`](Self::next_offset)
    /// does not change, and [`first_offset`](Self::first_offset) moves forward at
    /// once. Their files are removed by [`Removal::run`], which takes no lock.
    ///
    /// Messages in the active segment are never deleted, so a log may stay above
    /// `max_bytes` by up to one segment.
    pub fn take_expired(
        &mut self,
        now_micros: u64,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
    ) -> Removal {
        let mut removal = Removal {
            dir: self.dir.clone(),
            segments: Vec::new(),
            sync_first: false,
            report: RetentionReport::default(),
        };
        if let Some(max_age) = max_age {
            let age = u64::try_from(max_age.as_micros()).unwrap_or(u64::MAX);
            let cutoff = now_micros.saturating_sub(age);
            while self
                .closed
                .front()
                .is_some_and(|s| s.newest_timestamp().is_none_or(|t| t < cutoff))
            {
                self.take_oldest(&mut removal);
            }
        }
        if let Some(max_bytes) = max_bytes {
            let mut total = self.stats().size_bytes;
            while total > max_bytes
                && let Some(size) = self.closed.front().map(|s| s.size)
            {
                self.take_oldest(&mut removal);
                total = total.saturating_sub(size);
            }
        }
        removal.report.first_offset = self.first_offset();
        removal
    }

    /// [`take_expired`](Self::take_expired), then the removal, on the caller's
    /// thread.
    ///
    /// # Errors
    /// As [`Removal::run`].
    pub fn apply_retention(
        &mut self,
        now_micros: u64,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
    ) -> Result<RetentionReport, StorageError> {
        let removal = self.take_expired(now_micros, max_age, max_bytes);
        removal.run(&self.disk)
    }

    /// Takes the `count` oldest closed segments out (all of them when fewer are
    /// closed), never the active one. Offsets are kept, as with
    /// [`take_expired`](Self::take_expired). Their files are removed by
    /// [`Removal::run`], which takes no lock. For `DeleteSegments`.
    pub fn take_oldest_segments(&mut self, count: u32) -> Removal {
        let mut removal = Removal {
            dir: self.dir.clone(),
            segments: Vec::new(),
            sync_first: false,
            report: RetentionReport::default(),
        };
        for _ in 0..count {
            if self.closed.is_empty() {
                break;
            }
            self.take_oldest(&mut removal);
        }
        removal.report.first_offset = self.first_offset();
        removal
    }

    /// Takes the oldest closed segment out.
    fn take_oldest(&mut self, removal: &mut Removal) {
        let Some(oldest) = self.closed.pop_front() else {
            return;
        };
        let report = &mut removal.report;
        report.segments_deleted = report.segments_deleted.saturating_add(1);
        report.bytes_deleted = report.bytes_deleted.saturating_add(oldest.size);
        report.messages_deleted = report.messages_deleted.saturating_add(oldest.messages());
        debug_assert_eq!(removal.dir(), self.dir.as_path());
        removal.segments.push(oldest);
    }

    /// Takes every message out, all segments included, and leaves one empty
    /// segment at [`next_offset`](Self::next_offset), which does not change: offsets
    /// are never reused. For `PurgeTopic`. The files go with [`Removal::run`].
    ///
    /// The empty segment is created now, and the removal fsyncs the directory
    /// before it deletes anything, so that a crash at any point leaves a file named
    /// by the next offset and recovery never hands out an offset twice.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the new segment cannot be created (nothing is
    /// taken out then).
    pub fn take_all(&mut self) -> Result<Removal, StorageError> {
        let mut removal = Removal {
            dir: self.dir.clone(),
            segments: Vec::new(),
            sync_first: false,
            report: RetentionReport::default(),
        };
        if !self.active.is_empty() || self.active.base_offset != self.next_offset {
            let fresh = Segment::create(&self.dir, self.next_offset)?;
            let old = std::mem::replace(&mut self.active, fresh);
            self.closed.push_back(old);
            self.unsynced_since = None;
            removal.sync_first = true;
            self.dir_dirty = true;
        }
        while !self.closed.is_empty() {
            self.take_oldest(&mut removal);
        }
        removal.report.first_offset = self.first_offset();
        Ok(removal)
    }

    /// [`take_all`](Self::take_all), then the removal, on the caller's thread.
    ///
    /// # Errors
    /// As [`take_all`](Self::take_all) and [`Removal::run`].
    pub fn purge(&mut self) -> Result<(), StorageError> {
        let removal = self.take_all()?;
        removal.run(&self.disk).map(|_| ())
    }
}
