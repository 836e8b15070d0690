//! One segment: a data file of batch records, its in-memory index, and its files.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use iggy_binary_protocol::batch::BATCH_HEADER_SIZE;

use super::StorageError;
use super::index::{self, Index};

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

/// fsyncs a directory, so that created and removed names survive a crash.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync directory", dir, e))
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

/// A segment of the log.
pub(super) struct Segment {
    /// The offset in the file name; the first record's base offset.
    pub(super) base_offset: u64,
    /// The data file.
    pub(super) path: PathBuf,
    /// The data file, open for reading and appending.
    pub(super) file: File,
    /// Bytes of whole records in the data file (its length).
    pub(super) size: u64,
    /// The offset after the last message (`base_offset` when empty).
    pub(super) end_offset: u64,
    /// One entry per record.
    pub(super) index: Index,
    /// How many entries of `index` the index files hold.
    pub(super) persisted: usize,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("base_offset", &self.base_offset)
            .field("end_offset", &self.end_offset)
            .field("size", &self.size)
            .field("records", &self.index.len())
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
        Ok(Self {
            base_offset,
            path,
            file,
            size: 0,
            end_offset: base_offset,
            index: Index::default(),
            persisted: 0,
        })
    }

    /// A segment loaded by recovery; its index files hold all of `index`.
    pub(super) fn loaded(
        base_offset: u64,
        path: PathBuf,
        file: File,
        size: u64,
        end_offset: u64,
        index: Index,
    ) -> Self {
        let persisted = index.len();
        Self {
            base_offset,
            path,
            file,
            size,
            end_offset,
            index,
            persisted,
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

    /// Number of messages it holds.
    pub(super) fn messages(&self) -> u64 {
        self.first_offset()
            .map_or(0, |first| self.end_offset.saturating_sub(first))
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
        Some(RecordSpan {
            position,
            len: end_position.checked_sub(position)?,
            first_offset,
            end_offset,
        })
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
        match (&self.file).write_all(record) {
            Ok(()) => Ok(()),
            Err(e) => {
                let restored = self.file.set_len(self.size).is_ok();
                Err((e, restored))
            }
        }
    }

    /// Writes the index entries not yet in the index files; with `sync`, fsyncs them.
    pub(super) fn flush_index(&mut self, sync: bool) -> Result<(), StorageError> {
        if self.persisted == self.index.len() && !sync {
            return Ok(());
        }
        self.index.write_files(&self.path, self.persisted, sync)?;
        self.persisted = self.index.len();
        Ok(())
    }

    /// Whether index entries are waiting to be written.
    pub(super) fn index_pending(&self) -> bool {
        self.persisted != self.index.len()
    }

    /// fsyncs the data file.
    pub(super) fn sync_data(&self) -> Result<(), StorageError> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("fsync", &self.path, e))
    }

    /// Removes the segment's files: the indexes first, so a crash in between leaves
    /// a data file whose index is rebuilt, never an index without data.
    pub(super) fn remove_files(&self) -> Result<(), StorageError> {
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
