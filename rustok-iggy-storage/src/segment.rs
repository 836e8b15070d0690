//! One segment: a data file of batch records, its in-memory index, and its files.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use iggy_binary_protocol::batch::BATCH_HEADER_SIZE;

use super::StorageError;
use super::index::{self, Index};
use super::seal;

/// Number of decimal digits in a segment file name (enough for any `u64`).
const NAME_DIGITS: usize = 20;
/// Extension of the data file.
const DATA_EXTENSION: &str = "log";

/// The data file of the segment starting at `base_offset`.
pub(super) fn data_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.{DATA_EXTENSION}"))
}

/// The base offset named by a data file name (`{base_offset:020}.log`), if it is one.
pub(super) fn parse_data_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where a record is and which offsets it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecordSpan {
    /// Where the record starts in the data file.
    pub(super) position: u64,
    /// Its length in bytes.
    pub(super) len: u64,
    /// Its base offset.
    pub(super) first_offset: u64,
    /// The offset after its last message.
    pub(super) end_offset: u64,
}

/// A damaged byte range of a data file that recovery skips (never cut): no record
/// of the segment is indexed inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hole {
    /// Where it starts.
    pub(super) start: u64,
    /// Where the next valid record starts (the end of the file when none).
    pub(super) end: u64,
    /// The offset the records in it would have started at.
    pub(super) first_offset: u64,
    /// The offset the next valid record starts at (what the hole lost: `first_offset..end_offset`).
    pub(super) end_offset: u64,
}

/// A segment of the log.
pub(super) struct Segment {
    /// The offset in the file name; the first record's base offset.
    pub(super) base_offset: u64,
    /// The data file.
    pub(super) path: PathBuf,
    /// The data file, open for reading and appending (shared with sync plans, which
    /// fsync it without the log's lock).
    pub(super) file: Arc<File>,
    /// Bytes in the data file (its length): whole records and [`holes`](Self::holes).
    pub(super) size: u64,
    /// The offset after the last message (`base_offset` when empty).
    pub(super) end_offset: u64,
    /// One entry per record.
    pub(super) index: Index,
    /// How many entries of `index` the index files hold.
    pub(super) persisted: usize,
    /// Damaged ranges recovery skipped, by position.
    pub(super) holes: Vec<Hole>,
    /// A closed segment whose seal (fsynced data and index files, then the seal
    /// file) is still to be made by a sync.
    pub(super) needs_seal: bool,
    /// Bytes from the start whose records passed both checksum levels in this
    /// process (appended, or walked at open); reads verify the records past it.
    verified_end: AtomicU64,
    /// Index entries of records found damaged by a read (skipped from then on).
    damaged_entries: Mutex<Vec<usize>>,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("base_offset", &self.base_offset)
            .field("end_offset", &self.end_offset)
            .field("size", &self.size)
            .field("records", &self.index.len())
            .field("holes", &self.holes)
            .finish_non_exhaustive()
    }
}

impl Segment {
    /// Creates the files of an empty segment starting at `base_offset`. The caller
    /// fsyncs the directory.
    pub(super) fn create(dir: &Path, base_offset: u64) -> Result<Self, StorageError> {
        let path = data_path(dir, base_offset);
        let file = open_data_file(&path, true)?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io("stat", &path, e))?
            .len();
        if len != 0 {
            return Err(StorageError::Corrupt {
                path,
                position: 0,
                reason: "a new segment's file already exists and is not empty".to_owned(),
            });
        }
        index::create_files(&path)?;
        seal::remove(&path)?;
        Ok(Self {
            base_offset,
            path,
            file: Arc::new(file),
            size: 0,
            end_offset: base_offset,
            index: Index::default(),
            persisted: 0,
            holes: Vec::new(),
            needs_seal: false,
            verified_end: AtomicU64::new(0),
            damaged_entries: Mutex::new(Vec::new()),
        })
    }

    /// A segment loaded by recovery; its index files hold all of `index`. `verified`
    /// says whether recovery walked and checked every record.
    #[expect(clippy::too_many_arguments, reason = "one constructor for recovery")]
    pub(super) fn loaded(
        base_offset: u64,
        path: PathBuf,
        file: File,
        size: u64,
        end_offset: u64,
        index: Index,
        holes: Vec<Hole>,
        verified: bool,
    ) -> Self {
        let persisted = index.len();
        Self {
            base_offset,
            path,
            file: Arc::new(file),
            size,
            end_offset,
            index,
            persisted,
            holes,
            needs_seal: false,
            verified_end: AtomicU64::new(if verified { size } else { 0 }),
            damaged_entries: Mutex::new(Vec::new()),
        }
    }

    /// Bytes from the start known to hold only verified records.
    pub(super) fn verified_end(&self) -> u64 {
        self.verified_end.load(Ordering::Acquire)
    }

    /// Notes that the record at `span` passed both checksum levels; the verified
    /// prefix grows when it ends there.
    pub(super) fn mark_verified(&self, span: RecordSpan) {
        let end = span.position.saturating_add(span.len);
        let _ = self.verified_end.compare_exchange(
            span.position,
            end,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Notes that `len` more bytes were appended by this process (valid by
    /// construction).
    pub(super) fn appended(&mut self, len: u64) {
        let verified = self.verified_end.get_mut();
        if *verified == self.size {
            *verified = self.size.saturating_add(len);
        }
        self.size = self.size.saturating_add(len);
    }

    /// Whether a read found the record of index entry `k` damaged.
    pub(super) fn is_damaged_entry(&self, k: usize) -> bool {
        let damaged = self
            .damaged_entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        !damaged.is_empty() && damaged.binary_search(&k).is_ok()
    }

    /// Notes that a read found the record of index entry `k` damaged; returns
    /// whether it was news.
    pub(super) fn mark_damaged_entry(&self, k: usize) -> bool {
        let mut damaged = self
            .damaged_entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match damaged.binary_search(&k) {
            Ok(_) => false,
            Err(at) => {
                damaged.insert(at, k);
                true
            }
        }
    }

    /// Whether it holds no record.
    pub(super) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The offset of its first message, if any.
    pub(super) fn first_offset(&self) -> Option<u64> {
        self.index.first().map(|e| {
            self.base_offset
                .saturating_add(u64::from(e.relative_offset))
        })
    }

    /// Number of messages it holds (those lost in holes after its first record
    /// not counted).
    pub(super) fn messages(&self) -> u64 {
        self.first_offset().map_or(0, |first| {
            let lost: u64 = self
                .holes
                .iter()
                .filter(|h| h.first_offset >= first)
                .map(|h| h.end_offset.saturating_sub(h.first_offset))
                .sum();
            self.end_offset.saturating_sub(first).saturating_sub(lost)
        })
    }

    /// The newest `base_timestamp` of its records, if any.
    pub(super) fn newest_timestamp(&self) -> Option<u64> {
        self.index.last().map(|e| e.max_timestamp)
    }

    /// The record at index entry `k`.
    pub(super) fn span(&self, k: usize) -> Option<RecordSpan> {
        let entry = self.index.get(k)?;
        let position = u64::from(entry.position);
        let first_offset = self
            .base_offset
            .checked_add(u64::from(entry.relative_offset))?;
        let (end_position, end_offset) = match self.index.get(k.checked_add(1)?) {
            Some(next) => (
                u64::from(next.position),
                self.base_offset
                    .checked_add(u64::from(next.relative_offset))?,
            ),
            None => (self.size, self.end_offset),
        };
        // A hole after the record ends it (its lost offsets are not the record's).
        let (end_position, end_offset) = match self.hole_after(position) {
            Some(hole) if hole.start < end_position => (hole.start, hole.first_offset),
            _ => (end_position, end_offset),
        };
        Some(RecordSpan {
            position,
            len: end_position.checked_sub(position)?,
            first_offset,
            end_offset,
        })
    }

    /// The first hole starting after `position`.
    fn hole_after(&self, position: u64) -> Option<&Hole> {
        if self.holes.is_empty() {
            return None;
        }
        let k = self.holes.partition_point(|h| h.start <= position);
        self.holes.get(k)
    }

    /// Reads the record at `span` with one positional read.
    pub(super) fn read_record(&self, span: RecordSpan) -> Result<Vec<u8>, StorageError> {
        let len = usize::try_from(span.len)
            .ok()
            .filter(|&len| len >= BATCH_HEADER_SIZE);
        let Some(len) = len else {
            return Err(StorageError::Corrupt {
                path: self.path.clone(),
                position: span.position,
                reason: format!("indexed record length {} is not a batch record", span.len),
            });
        };
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, span.position)
            .map_err(|e| StorageError::io("read", &self.path, e))?;
        // A cheap guard against an index that does not describe the file.
        let stored_base = buf
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
        if stored_base != Some(span.first_offset) {
            return Err(StorageError::Corrupt {
                path: self.path.clone(),
                position: span.position,
                reason: format!(
                    "record base offset {stored_base:?} differs from the indexed {}",
                    span.first_offset
                ),
            });
        }
        Ok(buf)
    }

    /// Appends `record` to the data file with one write. On failure the partial
    /// write is cut off again; the returned flag says whether that worked (if not,
    /// the tail of the file is unknown).
    pub(super) fn write(&mut self, record: &[u8]) -> Result<(), (io::Error, bool)> {
        match (&*self.file).write_all(record) {
            Ok(()) => Ok(()),
            Err(e) => {
                let restored = self.file.set_len(self.size).is_ok();
                Err((e, restored))
            }
        }
    }

    /// Writes the index entries not yet in the index files (no fsync: they can be
    /// rebuilt from the data file).
    pub(super) fn flush_index(&mut self) -> Result<(), StorageError> {
        if self.persisted == self.index.len() {
            return Ok(());
        }
        self.index.write_files(&self.path, self.persisted, None)?;
        self.persisted = self.index.len();
        Ok(())
    }

    /// Whether index entries are waiting to be written.
    pub(super) fn index_pending(&self) -> bool {
        self.persisted != self.index.len()
    }

    /// Removes the segment's files: the seal and the indexes first, so a crash in
    /// between leaves a data file whose index is rebuilt, never an index without
    /// data.
    pub(super) fn remove_files(&self) -> Result<(), StorageError> {
        seal::remove(&self.path)?;
        index::remove_files(&self.path)?;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("remove", &self.path, e)),
        }
    }
}

/// Opens a data file for positional reads and appends.
pub(super) fn open_data_file(path: &Path, create: bool) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_base_offset() {
        let path = data_path(Path::new("/d"), 42);
        assert_eq!(path, PathBuf::from("/d/00000000000000000042.log"));
        assert_eq!(parse_data_file_name("00000000000000000042.log"), Some(42));
        assert_eq!(
            parse_data_file_name("18446744073709551615.log"),
            Some(u64::MAX)
        );
        assert_eq!(parse_data_file_name("99999999999999999999.log"), None);
        assert_eq!(parse_data_file_name("0000000000000000042.log"), None);
        assert_eq!(parse_data_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_data_file_name("+0000000000000000042.log"), None);
    }
}
