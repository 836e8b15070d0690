//! Reading records by offset and finding offsets by time.

use std::borrow::Cow;
use std::iter;

use iggy_binary_protocol::WireError;
use iggy_binary_protocol::batch::{BatchHeader, decode_batch_slice};

use super::PartitionLog;
use crate::error::StorageError;
use crate::quarantine;
use crate::record::slice;
use crate::report::{DamageKind, SegmentDamage};
use crate::segment::{RecordSpan, Segment};

/// Both checksum levels, the partition and the base offset of a whole record read
/// back from a segment.
fn check_record(record: &[u8], base_offset: u64, partition_id: u32) -> Result<(), DamageKind> {
    let header = BatchHeader::decode(record).map_err(DamageKind::Invalid)?;
    if u64::try_from(record.len()).ok() != Some(header.batch_length) {
        return Err(DamageKind::Torn {
            need: header.batch_length,
            have: u64::try_from(record.len()).unwrap_or(u64::MAX),
        });
    }
    if header.partition_id != u64::from(partition_id) {
        return Err(DamageKind::WrongPartition {
            expected: partition_id,
            found: header.partition_id,
        });
    }
    if header.base_offset != base_offset {
        return Err(DamageKind::OffsetMismatch {
            expected: base_offset,
            found: header.base_offset,
        });
    }
    decode_batch_slice(record)
        .map(|_| ())
        .map_err(DamageKind::Invalid)
}

impl PartitionLog {
    /// The records holding the first `max_messages` stored messages at or after
    /// `from` and before `until` (at most [`next_offset`](Self::next_offset)), in
    /// offset order. A `from` older than [`first_offset`](Self::first_offset) starts
    /// there, and offsets lost to damage (a gap) are skipped without counting. The
    /// first and last records are sliced to the window (a sliced record keeps its
    /// base offset and timestamps, `docs/wire-protocol.md` §4.3); records in between
    /// are returned exactly as stored.
    ///
    /// At most `max_bytes` of records are returned, counting each by its stored size,
    /// except that the first record is always returned whatever its size. Empty
    /// when `from >= until` or `max_messages` is 0.
    ///
    /// A record of a segment this process has not verified yet (a sealed segment
    /// loaded at open) has both checksum levels checked first; a damaged one is
    /// skipped, copied aside and reported ([`damage`](Self::damage)), and the read
    /// goes on with the next record.
    ///
    /// Reads with one positional read per record and takes `&self`, so readers may
    /// run concurrently (under a shared lock) while no append runs.
    ///
    /// # Errors
    /// [`StorageError::Io`] when a read fails; [`StorageError::CorruptRecord`] when a
    /// verified record does not slice (the file changed under the log).
    pub fn read_until(
        &self,
        from: u64,
        until: u64,
        max_messages: u32,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut out = Vec::new();
        let until = until.min(self.next_offset);
        if max_messages == 0 || from >= until {
            return Ok(out);
        }
        let mut cursor = from.max(self.first_offset());
        let mut remaining = u64::from(max_messages);
        let max_bytes = u64::try_from(max_bytes).unwrap_or(u64::MAX);
        let mut gathered = 0u64;

        // Segment end offsets never decrease, so the first segment that can hold
        // `cursor` is found by binary search.
        let start = self.closed.partition_point(|s| s.end_offset <= cursor);
        let segments = self.closed.range(start..).chain(iter::once(&self.active));
        for segment in segments {
            let Some(first) = segment.first_offset() else {
                continue;
            };
            if segment.end_offset <= cursor {
                continue;
            }
            // Skips a gap before this segment.
            cursor = cursor.max(first);
            let relative = cursor.saturating_sub(segment.base_offset);
            let Some(mut k) = segment.index.locate(relative) else {
                continue;
            };
            while remaining > 0
                && cursor < until
                && let Some(span) = segment.span(k)
            {
                k = k.saturating_add(1);
                if span.end_offset <= cursor {
                    // Ended before the cursor (the record before a gap).
                    continue;
                }
                if segment.is_damaged_entry(k - 1) {
                    cursor = cursor.max(span.end_offset);
                    continue;
                }
                if !out.is_empty() && gathered.saturating_add(span.len) > max_bytes {
                    return Ok(out);
                }
                let record = match self.checked_record(segment, k - 1, span)? {
                    Some(record) => record,
                    None => {
                        cursor = cursor.max(span.end_offset);
                        continue;
                    }
                };
                cursor = cursor.max(span.first_offset);
                let end = cursor
                    .saturating_add(remaining)
                    .min(span.end_offset)
                    .min(until);
                if cursor > span.first_offset || end < span.end_offset {
                    match slice(&record, cursor, end) {
                        Ok(Some((sliced, _))) => out.push(sliced),
                        Ok(None) => {}
                        Err(source) => {
                            return Err(StorageError::CorruptRecord {
                                path: segment.path.clone(),
                                position: span.position,
                                source,
                            });
                        }
                    }
                } else {
                    out.push(record);
                }
                gathered = gathered.saturating_add(span.len);
                remaining = remaining.saturating_sub(end.saturating_sub(cursor));
                cursor = span.end_offset;
            }
            if remaining == 0 || cursor >= until {
                break;
            }
        }
        Ok(out)
    }

    /// [`read_until`](Self::read_until) the next offset.
    ///
    /// # Errors
    /// As [`read_until`](Self::read_until).
    pub fn read(
        &self,
        from: u64,
        max_messages: u32,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        self.read_until(from, self.next_offset, max_messages, max_bytes)
    }

    /// The record of index entry `k` of `segment`, at `span`; checked first when
    /// this process has not verified it. `None` when it is damaged (noted, copied
    /// aside, and skipped from then on).
    fn checked_record(
        &self,
        segment: &Segment,
        k: usize,
        span: RecordSpan,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let trusted = span.position < segment.verified_end();
        let record = match segment.read_record(span) {
            Ok(record) => record,
            Err(StorageError::Corrupt { reason, .. }) if !trusted => {
                self.damaged_on_read(segment, k, span, &reason);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if trusted {
            return Ok(Some(record));
        }
        match check_record(&record, span.first_offset, self.config.partition_id) {
            Ok(()) => {
                segment.mark_verified(span);
                Ok(Some(record))
            }
            Err(kind) => {
                self.damaged_on_read(segment, k, span, &kind.to_string());
                Ok(None)
            }
        }
    }

    fn damaged_on_read(&self, segment: &Segment, k: usize, span: RecordSpan, reason: &str) {
        if !segment.mark_damaged_entry(k) {
            return;
        }
        let end = span.position.saturating_add(span.len);
        let copy = quarantine::save_range(&segment.path, &segment.file, span.position, end);
        self.note_damage(SegmentDamage {
            path: segment.path.clone(),
            base_offset: segment.base_offset,
            position: span.position,
            end,
            lost_from: span.first_offset,
            lost_to: span.end_offset,
            kind: DamageKind::Invalid(WireError::Validation(Cow::Owned(reason.to_owned()))),
            copy,
        });
    }

    /// The offset of the first message whose batch was appended at or after
    /// `timestamp_micros` (its `base_timestamp`), or `None` when there is none.
    /// Found by binary search of the time index.
    pub fn offset_at_timestamp(&self, timestamp_micros: u64) -> Option<u64> {
        self.segments().find_map(|segment| {
            let entry = segment.index.first_at_or_after(timestamp_micros)?;
            segment
                .base_offset
                .checked_add(u64::from(entry.relative_offset))
        })
    }
}
