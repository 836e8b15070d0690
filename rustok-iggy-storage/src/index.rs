//! The offset index and the time index of a segment, in memory and on disk.
//!
//! One entry per record. On disk:
//! - `.index`: `[relative_offset u32 LE][position u32 LE]` (8 bytes per record);
//! - `.timeindex`: `[timestamp u64 LE][relative_offset u32 LE]` (12 bytes per record).
//!
//! The timestamp kept for a record is the largest `base_timestamp` of the segment up
//! to and including that record: equal to the record's own `base_timestamp` unless
//! the broker's clock went backwards. That keeps the time index sorted, so a binary
//! search finds the first record whose own `base_timestamp` is at or past a time.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use iggy_binary_protocol::batch::BATCH_HEADER_SIZE;

use super::StorageError;
use super::disk::Disk;

/// Bytes per entry of the `.index` file.
pub(super) const OFFSET_ENTRY_SIZE: usize = 8;
/// Bytes per entry of the `.timeindex` file.
pub(super) const TIME_ENTRY_SIZE: usize = 12;

/// The index entry of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexEntry {
    /// `base_offset` of the record minus the segment's base offset.
    pub(super) relative_offset: u32,
    /// Where the record starts in the data file.
    pub(super) position: u32,
    /// The largest `base_timestamp` of the segment up to this record.
    pub(super) max_timestamp: u64,
}

/// The in-memory index of a segment: one entry per record, sorted by offset and
/// position (both strictly increasing) and by `max_timestamp` (non-decreasing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Index {
    entries: Vec<IndexEntry>,
}

impl Index {
    /// Adds the entry of the record appended at `position`.
    pub(super) fn push(&mut self, relative_offset: u32, position: u32, base_timestamp: u64) {
        let max_timestamp = self.entries.last().map_or(base_timestamp, |last| {
            last.max_timestamp.max(base_timestamp)
        });
        self.entries.push(IndexEntry {
            relative_offset,
            position,
            max_timestamp,
        });
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn get(&self, k: usize) -> Option<&IndexEntry> {
        self.entries.get(k)
    }

    pub(super) fn first(&self) -> Option<&IndexEntry> {
        self.entries.first()
    }

    pub(super) fn last(&self) -> Option<&IndexEntry> {
        self.entries.last()
    }

    /// The record holding relative offset `relative`: the last entry at or before it.
    pub(super) fn locate(&self, relative: u64) -> Option<usize> {
        self.entries
            .partition_point(|e| u64::from(e.relative_offset) <= relative)
            .checked_sub(1)
    }

    /// The first record whose `base_timestamp` is at or past `timestamp`.
    pub(super) fn first_at_or_after(&self, timestamp: u64) -> Option<&IndexEntry> {
        let k = self
            .entries
            .partition_point(|e| e.max_timestamp < timestamp);
        self.entries.get(k)
    }

    /// The bytes of both index files for the entries from `from` on.
    pub(super) fn encode_from(&self, from: usize) -> IndexBytes {
        let from = from.min(self.entries.len());
        IndexBytes {
            offsets: self.encode_offsets(from),
            times: self.encode_times(from),
            from,
            total: self.entries.len(),
        }
    }

    /// The `.index` bytes of the entries from `from` on.
    fn encode_offsets(&self, from: usize) -> Vec<u8> {
        let tail = self.entries.get(from..).unwrap_or_default();
        let mut out = Vec::with_capacity(tail.len() * OFFSET_ENTRY_SIZE);
        for entry in tail {
            out.extend_from_slice(&entry.relative_offset.to_le_bytes());
            out.extend_from_slice(&entry.position.to_le_bytes());
        }
        out
    }

    /// The `.timeindex` bytes of the entries from `from` on.
    fn encode_times(&self, from: usize) -> Vec<u8> {
        let tail = self.entries.get(from..).unwrap_or_default();
        let mut out = Vec::with_capacity(tail.len() * TIME_ENTRY_SIZE);
        for entry in tail {
            out.extend_from_slice(&entry.max_timestamp.to_le_bytes());
            out.extend_from_slice(&entry.relative_offset.to_le_bytes());
        }
        out
    }

    /// Decodes the two index files; `None` when they are malformed or disagree.
    ///
    /// Accepted only if both have the same number of whole entries, offsets and
    /// positions strictly increase, and timestamps never decrease.
    pub(super) fn decode(offsets: &[u8], times: &[u8]) -> Option<Self> {
        if !offsets.len().is_multiple_of(OFFSET_ENTRY_SIZE)
            || !times.len().is_multiple_of(TIME_ENTRY_SIZE)
        {
            return None;
        }
        let count = offsets.len() / OFFSET_ENTRY_SIZE;
        if times.len() / TIME_ENTRY_SIZE != count {
            return None;
        }
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(count);
        for (o, t) in offsets
            .chunks_exact(OFFSET_ENTRY_SIZE)
            .zip(times.chunks_exact(TIME_ENTRY_SIZE))
        {
            let relative_offset = read_u32(o, 0)?;
            let position = read_u32(o, 4)?;
            let max_timestamp = read_u64(t, 0)?;
            if read_u32(t, 8)? != relative_offset {
                return None;
            }
            // (The first record may start past 0 when damage before it is kept
            // aside.)
            let in_order = match entries.last() {
                None => true,
                Some(prev) => {
                    relative_offset > prev.relative_offset
                        && position > prev.position
                        && max_timestamp >= prev.max_timestamp
                }
            };
            if !in_order {
                return None;
            }
            entries.push(IndexEntry {
                relative_offset,
                position,
                max_timestamp,
            });
        }
        Some(Self { entries })
    }

    /// Reads the index files of the segment whose data file is `data_path` and
    /// `data_len` bytes long. A missing file reads as empty; an unreadable,
    /// malformed or implausibly large one gives `None` (rebuild it).
    pub(super) fn read_files(data_path: &Path, data_len: u64) -> Option<Self> {
        let (offsets, times) = read_raw(data_path, data_len)?;
        Self::decode(&offsets, &times)
    }

    /// Writes the entries from `from` on into the index files of `data_path` (at
    /// their positions, so a repeated write after a failure is harmless), cuts the
    /// files to the exact length, and fsyncs them through `disk` when given.
    pub(super) fn write_files(
        &self,
        data_path: &Path,
        from: usize,
        disk: Option<&Disk>,
    ) -> Result<(), StorageError> {
        self.encode_from(from)
            .write(data_path, disk, true)
            .map(|_| ())
    }
}

/// Encoded index entries, ready to be written to the index files (possibly
/// without the log's lock).
#[derive(Debug, Clone)]
pub(super) struct IndexBytes {
    pub(super) offsets: Vec<u8>,
    pub(super) times: Vec<u8>,
    from: usize,
    total: usize,
}

impl IndexBytes {
    /// Writes the entries at their positions in the index files of `data_path`,
    /// cuts the files to the exact length and, with `disk`, fsyncs them. Without
    /// `create`, missing files (a segment deleted meanwhile) are left missing and
    /// `false` is returned.
    pub(super) fn write(
        &self,
        data_path: &Path,
        disk: Option<&Disk>,
        create: bool,
    ) -> Result<bool, StorageError> {
        for (path, bytes, size) in [
            (
                offset_index_path(data_path),
                &self.offsets,
                OFFSET_ENTRY_SIZE,
            ),
            (time_index_path(data_path), &self.times, TIME_ENTRY_SIZE),
        ] {
            if !write_at_and_cut(&path, bytes, self.from, size, self.total, disk, create)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The bytes of both index files of the segment whose data file is `data_path` and
/// `data_len` bytes long: a missing file reads as empty; an unreadable or
/// implausibly large one gives `None`.
pub(super) fn read_raw(data_path: &Path, data_len: u64) -> Option<(Vec<u8>, Vec<u8>)> {
    // Every record is at least a batch header long.
    let max_entries = data_len / BATCH_HEADER_SIZE as u64;
    let offsets = read_bounded(
        &offset_index_path(data_path),
        max_entries.saturating_mul(OFFSET_ENTRY_SIZE as u64),
    )?;
    let times = read_bounded(
        &time_index_path(data_path),
        max_entries.saturating_mul(TIME_ENTRY_SIZE as u64),
    )?;
    Some((offsets, times))
}

/// The `.index` file next to a `.log` file.
pub(super) fn offset_index_path(data_path: &Path) -> PathBuf {
    data_path.with_extension("index")
}

/// The `.timeindex` file next to a `.log` file.
pub(super) fn time_index_path(data_path: &Path) -> PathBuf {
    data_path.with_extension("timeindex")
}

/// Creates (or empties) both index files of `data_path`.
pub(super) fn create_files(data_path: &Path) -> Result<(), StorageError> {
    for path in [offset_index_path(data_path), time_index_path(data_path)] {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StorageError::io("create", &path, e))?;
    }
    Ok(())
}

/// Removes both index files of `data_path`; missing files are fine.
pub(super) fn remove_files(data_path: &Path) -> Result<(), StorageError> {
    for path in [offset_index_path(data_path), time_index_path(data_path)] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("remove", &path, e)),
        }
    }
    Ok(())
}

fn write_at_and_cut(
    path: &Path,
    bytes: &[u8],
    from: usize,
    entry_size: usize,
    total: usize,
    disk: Option<&Disk>,
    create: bool,
) -> Result<bool, StorageError> {
    let file = match OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StorageError::io("open", path, e)),
    };
    let at = u64::try_from(from.saturating_mul(entry_size)).unwrap_or(u64::MAX);
    let len = u64::try_from(total.saturating_mul(entry_size)).unwrap_or(u64::MAX);
    file.write_all_at(bytes, at)
        .map_err(|e| StorageError::io("write", path, e))?;
    file.set_len(len)
        .map_err(|e| StorageError::io("truncate", path, e))?;
    if let Some(disk) = disk {
        disk.sync_data(&file, path)?;
    }
    Ok(true)
}

/// The whole file, or empty when it does not exist; `None` when it cannot be read
/// or is longer than `max` bytes.
fn read_bounded(path: &Path, max: u64) -> Option<Vec<u8>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let len = file.metadata().ok()?.len();
    if len > max {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).ok()?);
    file.take(len).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        let mut index = Index::default();
        index.push(0, 0, 100);
        index.push(3, 500, 90);
        index.push(5, 900, 200);
        index
    }

    #[test]
    fn timestamps_are_kept_as_a_running_maximum() {
        let index = sample();
        let stamps: Vec<u64> = (0..3)
            .filter_map(|k| index.get(k).map(|e| e.max_timestamp))
            .collect();
        assert_eq!(stamps, vec![100, 100, 200]);
        assert_eq!(
            index.first_at_or_after(95).map(|e| e.relative_offset),
            Some(0)
        );
        assert_eq!(
            index.first_at_or_after(101).map(|e| e.relative_offset),
            Some(5)
        );
        assert_eq!(index.first_at_or_after(201), None);
    }

    #[test]
    fn locate_finds_the_record_holding_an_offset() {
        let index = sample();
        assert_eq!(index.locate(0), Some(0));
        assert_eq!(index.locate(2), Some(0));
        assert_eq!(index.locate(3), Some(1));
        assert_eq!(index.locate(4), Some(1));
        assert_eq!(index.locate(99), Some(2));
        assert_eq!(Index::default().locate(0), None);
    }

    #[test]
    fn encoding_roundtrips_and_rejects_inconsistent_files() {
        let index = sample();
        let offsets = index.encode_offsets(0);
        let times = index.encode_times(0);
        assert_eq!(offsets.len(), 3 * OFFSET_ENTRY_SIZE);
        assert_eq!(times.len(), 3 * TIME_ENTRY_SIZE);
        assert_eq!(Index::decode(&offsets, &times), Some(index.clone()));
        assert_eq!(index.encode_offsets(2), offsets[16..].to_vec());
        assert_eq!(index.encode_offsets(7), Vec::<u8>::new());

        // A torn entry, a missing time entry, and out-of-order positions.
        assert_eq!(Index::decode(&offsets[..20], &times), None);
        assert_eq!(Index::decode(&offsets, &times[..24]), None);
        let mut swapped = offsets.clone();
        swapped[12..16].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(Index::decode(&swapped, &times), None);
        assert_eq!(Index::decode(&[], &[]), Some(Index::default()));
    }
}
