//! Reading records by offset and finding offsets by time.

use std::iter;

use super::{PartitionLog, StorageError};
use crate::record::slice;

impl PartitionLog {
    /// The records holding the first `max_messages` stored messages at or after
    /// `from`, in offset order. A `from` older than
    /// [`first_offset`](Self::first_offset) starts there, and offsets lost to a
    /// repaired damage (a gap) are skipped without counting. The first and last
    /// records are sliced to the window (a sliced record keeps its base offset and
    /// timestamps, `docs/wire-protocol.md` §4.3); records in between are returned exactly as
    /// stored.
    ///
    /// At most `max_bytes` of records are returned, counting each by its stored size,
    /// except that the first record is always returned whatever its size. Empty
    /// when `from >= next_offset()` or `max_messages` is 0.
    ///
    /// Reads with one positional read per record and takes `&self`, so readers may
    /// run concurrently (under a shared lock) while no append runs.
    ///
    /// # Errors
    /// [`StorageError::Io`] when a read fails; [`StorageError::Corrupt`] or
    /// [`StorageError::CorruptRecord`] when a stored record does not match its index
    /// or does not decode (the file was damaged after the log was opened).
    pub fn read(
        &self,
        from: u64,
        max_messages: u32,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut out = Vec::new();
        if max_messages == 0 || from >= self.next_offset {
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
                && let Some(span) = segment.span(k)
            {
                if !out.is_empty() && gathered.saturating_add(span.len) > max_bytes {
                    return Ok(out);
                }
                let end = cursor.saturating_add(remaining).min(span.end_offset);
                let record = segment.read_record(span)?;
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
                k = k.saturating_add(1);
            }
            if remaining == 0 {
                break;
            }
        }
        Ok(out)
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
