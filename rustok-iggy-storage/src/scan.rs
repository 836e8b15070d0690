//! The record walk that recovery and `verify` share: every record of a data file
//! checked for layout, both checksum levels, partition and offset continuity, and
//! past damage, the search for the next valid record.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use std::borrow::Cow;

use iggy_binary_protocol::WireError;
use iggy_binary_protocol::batch::{
    BATCH_HEADER_SIZE, BATCH_MESSAGE_HEADER_SIZE, BatchHeader, decode_batch_slice,
};

use super::StorageError;
use super::index::Index;
use super::report::DamageKind;
use super::segment::Hole;

/// Bytes read from the file at a time while scanning.
const CHUNK_SIZE: usize = 1 << 20;

/// What a scan of one data file found.
#[derive(Debug)]
pub(super) struct Scan {
    /// The index of the valid records.
    pub(super) index: Index,
    /// The offset after the last valid message (the segment base when none).
    pub(super) end_offset: u64,
    /// Damaged ranges with a valid record after them, by position.
    pub(super) holes: Vec<(Hole, DamageKind)>,
    /// Damage with no valid record after it, up to the scanned length.
    pub(super) tail: Option<Tail>,
    /// Messages in the valid records.
    pub(super) messages: u64,
}

/// Damage that runs to the end of the scanned length.
#[derive(Debug)]
pub(super) struct Tail {
    /// Where it starts (where the last valid record ends).
    pub(super) position: u64,
    /// What is wrong with its first record.
    pub(super) kind: DamageKind,
    /// Records from there to the end, damaged one included, as far as their
    /// length fields can be followed.
    pub(super) records: u64,
}

/// Walks the first `len` bytes of `file`, the segment of partition `partition_id`
/// starting at `base_offset`, checking every record: layout, both checksum levels,
/// partition, offset continuity.
///
/// At a record that fails, the scan looks for the next valid record: first where
/// the damaged record's own length says (a damaged payload or checksum leaves the
/// header readable), then byte by byte for a header of this partition. A valid
/// record is one that passes every check and continues the offsets (its base at or
/// past the expected one). Found: the range before it is a hole (its offsets are
/// lost) and the walk goes on from it. Not found: the damage is the tail. Memory
/// stays bounded by the read chunk plus the largest record whose frames tile its
/// declared length: a damaged length field allocates nothing.
pub(super) fn scan(
    file: &File,
    path: &Path,
    base_offset: u64,
    len: u64,
    partition_id: u32,
) -> Result<Scan, StorageError> {
    let mut reader = ChunkReader::new(file, path, len);
    let mut index = Index::default();
    let mut holes = Vec::new();
    let mut position = 0u64;
    let mut expected = base_offset;
    let mut messages = 0u64;
    let checks = Checks {
        base_offset,
        partition_id,
    };
    let tail = loop {
        let remaining = len.saturating_sub(position);
        if remaining == 0 {
            break None;
        }
        let (at, record) = match checks.record(&mut reader, position, remaining, expected, true)? {
            Ok(record) => (position, record),
            Err(kind) => match checks.next_valid(&mut reader, position, len, expected)? {
                Some((at, record)) => {
                    holes.push((
                        Hole {
                            start: position,
                            end: at,
                            first_offset: expected,
                            end_offset: record.first_offset,
                        },
                        kind,
                    ));
                    (at, record)
                }
                None => {
                    let records = count_records(&mut reader, position, len)?;
                    break Some(Tail {
                        position,
                        kind,
                        records,
                    });
                }
            },
        };
        index.push(
            record.relative_offset,
            record.position,
            record.base_timestamp,
        );
        messages += record.end_offset.saturating_sub(record.first_offset);
        expected = record.end_offset;
        position = at.saturating_add(record.len);
    };
    Ok(Scan {
        index,
        end_offset: expected,
        holes,
        tail,
        messages,
    })
}

/// A record that passed every check.
#[derive(Debug, Clone, Copy)]
struct ValidRecord {
    relative_offset: u32,
    position: u32,
    base_timestamp: u64,
    first_offset: u64,
    end_offset: u64,
    len: u64,
}

/// What every record of a segment must satisfy.
#[derive(Debug, Clone, Copy)]
struct Checks {
    base_offset: u64,
    partition_id: u32,
}

impl Checks {
    /// Checks the record at `position`; its base offset must be `expected`
    /// (`exact`) or at least `expected`.
    fn record(
        &self,
        reader: &mut ChunkReader<'_>,
        position: u64,
        remaining: u64,
        expected: u64,
        exact: bool,
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
        if header.partition_id != u64::from(self.partition_id) {
            return Ok(Err(DamageKind::WrongPartition {
                expected: self.partition_id,
                found: header.partition_id,
            }));
        }
        let continues = if exact {
            header.base_offset == expected
        } else {
            header.base_offset >= expected
        };
        if !continues {
            return Ok(Err(DamageKind::OffsetMismatch {
                expected,
                found: header.base_offset,
            }));
        }
        if header.message_count == 0 {
            return Ok(Err(DamageKind::EmptyBatch));
        }
        // A record longer than a chunk is read whole only once its frames are
        // known to tile its declared length.
        if record_len > CHUNK_SIZE
            && let Err(kind) = frames_tile(reader, position, &header)?
        {
            return Ok(Err(kind));
        }
        if let Err(e) = decode_batch_slice(reader.get(position, record_len)?) {
            return Ok(Err(DamageKind::Invalid(e)));
        }
        let relative = header
            .base_offset
            .checked_sub(self.base_offset)
            .and_then(|r| u32::try_from(r).ok());
        let end_offset = header
            .base_offset
            .checked_add(u64::from(header.message_count));
        let (Some(relative_offset), Ok(position32), Some(end_offset)) =
            (relative, u32::try_from(position), end_offset)
        else {
            return Ok(Err(DamageKind::OutOfIndexRange));
        };
        Ok(Ok(ValidRecord {
            relative_offset,
            position: position32,
            base_timestamp: header.base_timestamp,
            first_offset: header.base_offset,
            end_offset,
            len: header.batch_length,
        }))
    }

    /// The first valid record after the damaged one at `from` whose base offset is
    /// at least `expected`, and where it starts.
    fn next_valid(
        &self,
        reader: &mut ChunkReader<'_>,
        from: u64,
        len: u64,
        expected: u64,
    ) -> Result<Option<(u64, ValidRecord)>, StorageError> {
        let header_len = BATCH_HEADER_SIZE as u64;
        // Where the damaged record's own length field points.
        if len.saturating_sub(from) >= header_len
            && let Ok(header) = BatchHeader::decode(reader.get(from, BATCH_HEADER_SIZE)?)
            && let Some(next) = from.checked_add(header.batch_length)
            && next < len
            && let Ok(record) = self.record(reader, next, len - next, expected, false)?
        {
            return Ok(Some((next, record)));
        }
        // Otherwise, byte by byte: a header starts with this partition's id and
        // declares a length that fits.
        let pattern = u64::from(self.partition_id).to_le_bytes();
        let mut at = from.saturating_add(1);
        while len.saturating_sub(at) >= header_len {
            let window = reader.window(at, CHUNK_SIZE)?;
            let usable = window.len().saturating_sub(BATCH_HEADER_SIZE - 1);
            let mut candidates = Vec::new();
            for i in 0..usable {
                let Some(bytes) = window.get(i..i + BATCH_HEADER_SIZE) else {
                    break;
                };
                if bytes.get(..8) != Some(&pattern[..]) {
                    continue;
                }
                let declared = bytes
                    .get(32..40)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_le_bytes);
                let start = at.saturating_add(i as u64);
                if declared >= header_len && declared <= len.saturating_sub(start) {
                    candidates.push(start);
                }
            }
            for start in candidates {
                if let Ok(record) = self.record(reader, start, len - start, expected, false)? {
                    return Ok(Some((start, record)));
                }
            }
            if usable == 0 {
                break;
            }
            at = at.saturating_add(usable as u64);
        }
        Ok(None)
    }
}

/// Whether the frames of the record at `position` tile its declared length
/// exactly, read frame header by frame header (nothing of the record's size is
/// allocated).
fn frames_tile(
    reader: &mut ChunkReader<'_>,
    position: u64,
    header: &BatchHeader,
) -> Result<Result<(), DamageKind>, StorageError> {
    let frame_len = BATCH_MESSAGE_HEADER_SIZE as u64;
    let untiled = || {
        DamageKind::Invalid(WireError::Validation(Cow::Borrowed(
            "batch frames do not tile the declared batch length",
        )))
    };
    let mut at = BATCH_HEADER_SIZE as u64;
    for _ in 0..header.message_count {
        if at.saturating_add(frame_len) > header.batch_length {
            return Ok(Err(untiled()));
        }
        let frame = reader.get(position + at, BATCH_MESSAGE_HEADER_SIZE)?;
        let word = |range: std::ops::Range<usize>| {
            frame
                .get(range)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_le_bytes)
        };
        let reserved_clear = frame.get(40..48).is_some_and(|r| r.iter().all(|&b| b == 0));
        if !reserved_clear {
            return Ok(Err(untiled()));
        }
        at = at
            .saturating_add(frame_len)
            .saturating_add(u64::from(word(32..36)))
            .saturating_add(u64::from(word(36..40)));
    }
    if at == header.batch_length {
        Ok(Ok(()))
    } else {
        Ok(Err(untiled()))
    }
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

    /// Up to `max` bytes from `position` (at least one while `position < len`).
    fn window(&mut self, position: u64, max: usize) -> Result<&[u8], StorageError> {
        let available = usize::try_from(self.len.saturating_sub(position)).unwrap_or(usize::MAX);
        let n = available.min(max);
        if n == 0 {
            return Ok(&[]);
        }
        self.get(position, n)
    }

    fn short(&self, position: u64) -> StorageError {
        StorageError::Corrupt {
            path: self.path.to_owned(),
            position,
            reason: "read past the end of the scanned length".to_owned(),
        }
    }
}
