//! Appending records, rolling segments, and syncs (planned under the lock, made
//! without it).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use iggy_binary_protocol::WireError;
use iggy_binary_protocol::batch::BatchHeader;

use super::PartitionLog;
use super::sync::{Appended, SealJob, SyncPlan};
use crate::error::{StorageError, copy_io_error};
use crate::record::{check_offset_deltas, stamp};
use crate::seal::{self, Seal};
use crate::segment::Segment;

/// The largest segment size: positions in the offset index are 32-bit.
const MAX_SEGMENT_SIZE: u64 = u32::MAX as u64;

impl PartitionLog {
    /// Appends one batch record whose layout the caller validated, and returns where
    /// it went.
    ///
    /// Stamps `partition_id`, `base_offset` = [`next_offset`](Self::next_offset) and
    /// `base_timestamp` = `timestamp_micros` into `record`, re-seals its batch
    /// checksum, and writes it with one write to the active segment (rolling to a new
    /// segment first when the active one has reached the configured size). No fsync:
    /// see [`begin_sync`](Self::begin_sync).
    ///
    /// Durability: once this returns `Ok`, the record is in the operating system and
    /// survives the death of the process. It survives power loss once a sync that
    /// began after this call has finished ([`durable_offset`](Self::durable_offset)
    /// reaches [`Appended::end_offset`]).
    ///
    /// # Errors
    /// [`StorageError::MalformedBatch`] when the header does not decode, its length is
    /// not the record's length, it holds no message, or its message offset deltas are
    /// not 0, 1, 2, ... (nothing is written);
    /// [`StorageError::OffsetOverflow`]; [`StorageError::Io`] when the write failed
    /// (it is cut off again; if even that fails the log is poisoned);
    /// [`StorageError::Poisoned`] once the log is poisoned.
    pub fn append(
        &mut self,
        record: &mut [u8],
        timestamp_micros: u64,
    ) -> Result<Appended, StorageError> {
        if let Some(cause) = &self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.active.path.clone(),
                cause: Arc::clone(cause),
            });
        }
        let header = BatchHeader::decode(record).map_err(StorageError::MalformedBatch)?;
        if Ok(header.batch_length) != u64::try_from(record.len()) {
            return Err(malformed("the batch length is not the record's length"));
        }
        if header.message_count == 0 {
            return Err(malformed("a batch must hold at least one message"));
        }
        check_offset_deltas(record).map_err(StorageError::MalformedBatch)?;
        let base_offset = self.next_offset;
        let end_offset = base_offset
            .checked_add(u64::from(header.message_count))
            .ok_or(StorageError::OffsetOverflow {
                next_offset: base_offset,
                count: header.message_count,
            })?;

        let rolled = self.must_roll();
        if rolled {
            self.roll()?;
        }
        let relative_offset = base_offset
            .checked_sub(self.active.base_offset)
            .and_then(|r| u32::try_from(r).ok());
        let position = u32::try_from(self.active.size).ok();
        let (Some(relative_offset), Some(position)) = (relative_offset, position) else {
            // `must_roll` keeps both in range; reaching this is a broken invariant.
            return Err(StorageError::Corrupt {
                path: self.active.path.clone(),
                position: self.active.size,
                reason: format!(
                    "offset {base_offset} or position {} out of the segment index range",
                    self.active.size
                ),
            });
        };

        stamp(
            record,
            self.config.partition_id,
            base_offset,
            timestamp_micros,
        );
        if let Err((source, restored)) = self.active.write(record) {
            if !restored {
                // The tail is unknown: this caller gets the write's error, later
                // ones `Poisoned` with it as the cause.
                let cause = StorageError::io("write", &self.active.path, copy_io_error(&source));
                self.poisoned = Some(Arc::new(cause));
            }
            return Err(StorageError::io("write", &self.active.path, source));
        }
        self.active.appended(header.batch_length);
        self.active
            .index
            .push(relative_offset, position, timestamp_micros);
        self.active.end_offset = end_offset;
        self.next_offset = end_offset;
        self.writes = self.writes.wrapping_add(1);
        if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        Ok(Appended {
            base_offset,
            end_offset,
            rolled,
        })
    }

    /// Whether a sync has anything to do: data written since the last fsync, a
    /// segment to seal, a directory to fsync.
    pub fn needs_sync(&self) -> bool {
        self.poisoned.is_none()
            && (self.unsynced_since.is_some()
                || self.dir_dirty
                || self.closed.iter().any(|s| s.needs_seal))
    }

    /// Notes what a sync must make durable (see [`SyncPlan`]); `None` when there is
    /// nothing to do or the log is poisoned. With `active` false, only the closed
    /// segments are sealed (the `never` policy's syncs) and the active data file is
    /// left as it is. Cheap: encodes the index entries of the segments to seal,
    /// opens nothing. Run the plan, then hand its outcome to
    /// [`finish_sync`](Self::finish_sync); plans must not overlap.
    pub fn begin_sync(&mut self, active: bool) -> Option<SyncPlan> {
        let seal_only = !active;
        if !self.needs_sync()
            || (seal_only && !self.dir_dirty && !self.closed.iter().any(|s| s.needs_seal))
        {
            return None;
        }
        let seals = self
            .closed
            .iter()
            .filter(|s| s.needs_seal)
            .map(|s| {
                let index = s.index.encode_from(0);
                let seal = Seal {
                    data_len: s.size,
                    end_offset: s.end_offset,
                    records: u64::try_from(s.index.len()).unwrap_or(u64::MAX),
                    offsets_checksum: seal::checksum(&index.offsets),
                    times_checksum: seal::checksum(&index.times),
                };
                SealJob {
                    base_offset: s.base_offset,
                    path: s.path.clone(),
                    file: Arc::clone(&s.file),
                    index,
                    seal,
                }
            })
            .collect();
        let active = self
            .unsynced_since
            .filter(|_| active)
            .map(|_| (Arc::clone(&self.active.file), self.active.path.clone()));
        Some(SyncPlan {
            // Without the active file, what is durable ends where it starts.
            end_offset: if active.is_some() || self.unsynced_since.is_none() {
                self.next_offset
            } else {
                self.active.base_offset
            },
            active,
            dir: self.dir_dirty.then(|| self.dir.clone()),
            seals,
            writes: self.writes,
            rolls: self.rolls,
            since: self.unsynced_since,
            taken_at: Instant::now(),
        })
    }

    /// Records the outcome of `plan`: on success everything it covered is durable
    /// ([`durable_offset`](Self::durable_offset) moves to its end) and its segments
    /// are sealed; on failure the log is poisoned (appends refused until it is
    /// reopened, the kernel may have dropped the unsynced pages) and the error is
    /// returned shared.
    pub fn finish_sync(
        &mut self,
        plan: &SyncPlan,
        outcome: Result<(), StorageError>,
    ) -> Result<u64, Arc<StorageError>> {
        if let Err(e) = outcome {
            let error = Arc::new(e);
            self.poisoned.get_or_insert_with(|| Arc::clone(&error));
            return Err(error);
        }
        let now = Instant::now();
        if let Some(since) = plan.since {
            let window = now.saturating_duration_since(since);
            self.sync_stats.last_window = window;
            self.sync_stats.max_window = self.sync_stats.max_window.max(window);
        }
        if plan.active.is_some() {
            self.sync_stats.data_syncs = self.sync_stats.data_syncs.saturating_add(1);
        }
        if plan.active.is_some() {
            self.unsynced_since = if plan.writes == self.writes {
                None
            } else {
                // Written while the plan ran: the oldest of those is younger than it.
                Some(plan.taken_at)
            };
        }
        if plan.dir.is_some() && plan.rolls == self.rolls {
            self.dir_dirty = false;
        }
        for job in &plan.seals {
            if let Some(segment) = self
                .closed
                .iter_mut()
                .find(|s| s.base_offset == job.base_offset)
            {
                segment.needs_seal = false;
                segment.persisted = segment.index.len();
            }
        }
        self.durable_offset = self.durable_offset.max(plan.end_offset);
        Ok(self.durable_offset)
    }

    /// Makes everything appended so far durable, on the caller's thread (for
    /// owners without sync threads, and shutdown).
    ///
    /// # Errors
    /// As [`SyncPlan::run`]; the log is then poisoned ([`StorageError::Poisoned`]
    /// when it already was).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if let Some(cause) = &self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.active.path.clone(),
                cause: Arc::clone(cause),
            });
        }
        let Some(plan) = self.begin_sync(true) else {
            return Ok(());
        };
        let outcome = plan.run(&self.disk);
        self.finish_sync(&plan, outcome)
            .map(|_| ())
            .map_err(|cause| StorageError::Poisoned {
                path: self.active.path.clone(),
                cause,
            })
    }

    /// Whether the next record must go to a new segment: the active one is not empty
    /// and has reached the size limit, or its 32-bit index cannot reach the next
    /// record.
    fn must_roll(&self) -> bool {
        if self.active.is_empty() {
            return false;
        }
        let limit = self.config.segment_size_bytes.min(MAX_SEGMENT_SIZE);
        let relative = self.next_offset.saturating_sub(self.active.base_offset);
        self.active.size >= limit || u32::try_from(relative).is_err()
    }

    /// Closes the active segment (it awaits its seal, made by the next sync) and
    /// starts a new one at the next offset (the directory fsynced by the next sync).
    /// Creates three files; no fsync.
    fn roll(&mut self) -> Result<(), StorageError> {
        let next = Segment::create(&self.dir, self.next_offset)?;
        let mut closed = std::mem::replace(&mut self.active, next);
        closed.needs_seal = true;
        self.closed.push_back(closed);
        self.dir_dirty = true;
        self.rolls = self.rolls.wrapping_add(1);
        Ok(())
    }
}

fn malformed(reason: &'static str) -> StorageError {
    StorageError::MalformedBatch(WireError::Validation(Cow::Borrowed(reason)))
}
