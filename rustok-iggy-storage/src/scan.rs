//! The record walk that recovery and `verify` share: every record of a data file
//! checked for layout, both checksum levels, partition and offset continuity.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use iggy_binary_protocol::batch::{BATCH_HEADER_SIZE, BatchHeader, decode_batch_slice};

use super::StorageError;
use super::index::Index;
use super::report::DamageKind;

/// Bytes read from the file at a time while scanning.
const CHUNK_SIZE: usize = 1 << 20;

/// What a scan of one data file found.
#[derive(Debug)]
pub(super) struct Scan {
    /// The index of the valid records.
    pub(super) index: Index,
    /// The offset after the last valid message (the segment base when none).
    pub(super) end_offset: u64,
    /// Bytes of valid records from the start of the file.
    pub(super) valid_len: u64,
    /// The first damage, at `valid_len`.
    pub(super) damage: Option<DamageKind>,
    /// Records from the damage to the end of the file, damaged one included, as far
    /// as their length fields can be followed.
    pub(super) records_after_damage: u64,
}

/// Walks the first `len` bytes of `file`, the segment of partition `partition_id`
/// starting at `base_offset`, until the end or the first record that is torn,
/// malformed, fails a checksum, names another partition, or does not continue the
/// offsets of the record before it.
pub(super) fn scan(
    file: &File,
    path: &Path,
    base_offset: u64,
    len: u64,
    partition_id: u32,
) -> Result<Scan, StorageError> {
    let mut reader = ChunkReader::new(file, path, len);
    let mut index = Index::default();
    let mut position = 0u64;
    let mut expected = base_offset;
    let damage = loop {
        let remaining = len.saturating_sub(position);
        if remaining == 0 {
            break None;
        }
        match check_record(
            &mut reader,
            position,
            remaining,
            base_offset,
            expected,
            partition_id,
        )? {
            Ok(record) => {
                index.push(
                    record.relative_offset,
                    record.position,
                    record.base_timestamp,
                );
                expected = record.end_offset;
                position = position.saturating_add(record.len);
            }
            Err(kind) => break Some(kind),
        }
    };
    let records_after_damage = if damage.is_some() {
        count_records(&mut reader, position, len)?
    } else {
        0
    };
    Ok(Scan {
        index,
        end_offset: expected,
        valid_len: position,
        damage,
        records_after_damage,
    })
}

/// A record that passed every check.
struct ValidRecord {
    relative_offset: u32,
    position: u32,
    base_timestamp: u64,
    end_offset: u64,
    len: u64,
}

fn check_record(
    reader: &mut ChunkReader<'_>,
    position: u64,
    remaining: u64,
    base_offset: u64,
    expected: u64,
    partition_id: u32,
) -> Result<Result<ValidRecord, DamageKind>, StorageError> {
    let header_len = BATCH_HEADER_SIZE as u64;
    if remaining < header_len {
        return Ok(Err(DamageKind::Torn {
            need: header_len,
            have: remaining,
        }));
    }
    let header = match BatchHeader::decode(reader.get(position, BATCH_HEADER_SIZE)?) {
        Ok(header) => header,
        Err(e) => return Ok(Err(DamageKind::Invalid(e))),
    };
    let Some(record_len) = usize::try_from(header.batch_length)
        .ok()
        .filter(|_| header.batch_length <= remaining)
    else {
        return Ok(Err(DamageKind::Torn {
            need: header.batch_length,
            have: remaining,
        }));
    };
    if let Err(e) = decode_batch_slice(reader.get(position, record_len)?) {
        return Ok(Err(DamageKind::Invalid(e)));
    }
    if header.partition_id != u64::from(partition_id) {
        return Ok(Err(DamageKind::WrongPartition {
            expected: partition_id,
            found: header.partition_id,
        }));
    }
    if header.base_offset != expected {
        return Ok(Err(DamageKind::OffsetMismatch {
            expected,
            found: header.base_offset,
        }));
    }
    if header.message_count == 0 {
        return Ok(Err(DamageKind::EmptyBatch));
    }
    let relative = expected
        .checked_sub(base_offset)
        .and_then(|r| u32::try_from(r).ok());
    let end_offset = expected.checked_add(u64::from(header.message_count));
    let (Some(relative_offset), Ok(position32), Some(end_offset)) =
        (relative, u32::try_from(position), end_offset)
    else {
        return Ok(Err(DamageKind::OutOfIndexRange));
    };
    Ok(Ok(ValidRecord {
        relative_offset,
        position: position32,
        base_timestamp: header.base_timestamp,
        end_offset,
        len: header.batch_length,
    }))
}

/// Counts the records from `position` to `len` by following their length fields,
/// stopping at the first one that cannot be followed (which is counted too).
fn count_records(
    reader: &mut ChunkReader<'_>,
    mut position: u64,
    len: u64,
) -> Result<u64, StorageError> {
    let mut count = 0u64;
    while position < len {
        count += 1;
        let remaining = len - position;
        if remaining < BATCH_HEADER_SIZE as u64 {
            break;
        }
        match BatchHeader::decode(reader.get(position, BATCH_HEADER_SIZE)?) {
            // `decode` guarantees batch_length >= the header size, so this advances.
            Ok(header) if header.batch_length <= remaining => {
                position = position.saturating_add(header.batch_length);
            }
            _ => break,
        }
    }
    Ok(count)
}

/// Positional reads of a file through a buffer of at least [`CHUNK_SIZE`] bytes.
struct ChunkReader<'a> {
    file: &'a File,
    path: &'a Path,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> ChunkReader<'a> {
    fn new(file: &'a File, path: &'a Path, len: u64) -> Self {
        Self {
            file,
            path,
            len,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The `n` bytes at `position`; the caller keeps `position + n` within `len`.
    fn get(&mut self, position: u64, n: usize) -> Result<&[u8], StorageError> {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX);
        let buffered_end = self
            .buf_start
            .saturating_add(u64::try_from(self.buf.len()).unwrap_or(u64::MAX));
        let fits = position >= self.buf_start && position.saturating_add(n64) <= buffered_end;
        if !fits {
            let available = self.len.saturating_sub(position);
            let want = n.max(CHUNK_SIZE);
            let want = usize::try_from(available).map_or(want, |a| want.min(a));
            if want < n {
                return Err(self.short(position));
            }
            self.buf.clear();
            self.buf.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buf, position)
                .map_err(|e| StorageError::io("read", self.path, e))?;
            self.buf_start = position;
        }
        let at = usize::try_from(position.saturating_sub(self.buf_start)).ok();
        let bytes = at.and_then(|at| self.buf.get(at..at.checked_add(n)?));
        bytes.ok_or_else(|| self.short(position))
    }

    fn short(&self, position: u64) -> StorageError {
        StorageError::Corrupt {
            path: self.path.to_owned(),
            position,
            reason: "read past the end of the scanned length".to_owned(),
        }
    }
}
