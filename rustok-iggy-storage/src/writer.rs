//! Appending records, rolling segments, and fsync policy.

use std::borrow::Cow;
use std::time::Instant;

use iggy_binary_protocol::WireError;
use iggy_binary_protocol::batch::BatchHeader;

use super::segment::{self, Segment};
use super::{PartitionLog, StorageError};
use crate::Durability;
use crate::record::{check_offset_deltas, stamp};

/// The largest segment size: positions in the offset index are 32-bit.
const MAX_SEGMENT_SIZE: u64 = u32::MAX as u64;

impl PartitionLog {
    /// Appends one batch record whose layout the caller validated, and returns its
    /// base offset (its messages get consecutive offsets from there).
    ///
    /// Stamps `partition_id`, `base_offset` = [`next_offset`](Self::next_offset) and
    /// `base_timestamp` = `timestamp_micros` into `record`, re-seals its batch
    /// checksum, and writes it with one write to the active segment (rolling to a new
    /// segment first when the active one has reached the configured size).
    ///
    /// Durability: once this returns `Ok`, the record is in the operating system and
    /// survives the death of the process. It survives power loss once fsynced: before
    /// returning with [`Durability::EveryBatch`], at the next [`sync`](Self::sync)
    /// otherwise, and in any case when its segment is closed.
    ///
    /// # Errors
    /// [`StorageError::MalformedBatch`] when the header does not decode, its length is
    /// not the record's length, it holds no message, or its message offset deltas are
    /// not 0, 1, 2, ... (nothing is written);
    /// [`StorageError::OffsetOverflow`]; [`StorageError::Io`] when the write or fsync
    /// failed. A failed write is cut off again; if even that fails, or an fsync
    /// failed, the log is poisoned and refuses appends ([`StorageError::Poisoned`])
    /// until it is reopened.
    pub fn append(
        &mut self,
        record: &mut [u8],
        timestamp_micros: u64,
    ) -> Result<u64, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.active.path.clone(),
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

        if self.must_roll() {
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
            self.poisoned = !restored;
            return Err(StorageError::io("write", &self.active.path, source));
        }
        self.active.size = self.active.size.saturating_add(header.batch_length);
        self.active
            .index
            .push(relative_offset, position, timestamp_micros);
        self.active.end_offset = end_offset;
        self.next_offset = end_offset;

        if self.config.durability == Durability::EveryBatch {
            if let Err(e) = self.active.sync_data() {
                self.poisoned = true;
                return Err(e);
            }
        } else if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        Ok(base_offset)
    }

    /// fsyncs the active segment's data file if anything was written since the last
    /// fsync, and writes and fsyncs its pending index entries. Everything appended
    /// before this call survives power loss once it returns `Ok`.
    ///
    /// # Errors
    /// [`StorageError::Io`]; a failed fsync of the data file also poisons the log
    /// (the kernel may have dropped the unsynced pages).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.active.index_pending() {
            self.active.flush_index(true)?;
        }
        if self.unsynced_since.is_some() {
            if let Err(e) = self.active.sync_data() {
                self.poisoned = true;
                return Err(e);
            }
            self.unsynced_since = None;
        }
        Ok(())
    }

    /// With [`Durability::Interval`], whether data written more than one interval
    /// before `now` is not yet fsynced: the broker then calls [`sync`](Self::sync).
    /// Always `false` for the other policies.
    pub fn sync_due(&self, now: Instant) -> bool {
        match self.config.durability {
            Durability::Interval(interval) => self
                .unsynced_since
                .is_some_and(|since| now.saturating_duration_since(since) >= interval),
            Durability::EveryBatch | Durability::Never => false,
        }
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

    /// Closes the active segment (index files written, everything fsynced) and starts
    /// a new one at the next offset.
    fn roll(&mut self) -> Result<(), StorageError> {
        self.active.flush_index(true)?;
        if let Err(e) = self.active.sync_data() {
            self.poisoned = true;
            return Err(e);
        }
        self.unsynced_since = None;
        let next = Segment::create(&self.dir, self.next_offset)?;
        let closed = std::mem::replace(&mut self.active, next);
        self.closed.push_back(closed);
        segment::sync_dir(&self.dir)
    }
}

fn malformed(reason: &'static str) -> StorageError {
    StorageError::MalformedBatch(WireError::Validation(Cow::Borrowed(reason)))
}
