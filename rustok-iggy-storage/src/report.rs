//! What the log reports: recovery at open, retention, counts, verification.

use std::fmt;
use std::path::PathBuf;

use iggy_binary_protocol::WireError;

/// Why a record was judged damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageKind {
    /// The file ends inside the record.
    Torn {
        /// Bytes the record needs (its header, or its `batch_length`).
        need: u64,
        /// Bytes left in the file.
        have: u64,
    },
    /// The record does not decode: bad layout or a checksum mismatch (batch or message).
    Invalid(WireError),
    /// The record's `partition_id` is not this partition's.
    WrongPartition {
        /// This partition.
        expected: u32,
        /// What the record says.
        found: u64,
    },
    /// The record's `base_offset` does not continue the offsets before it.
    OffsetMismatch {
        /// The offset after the previous record (the segment base for the first).
        expected: u64,
        /// What the record says.
        found: u64,
    },
    /// The record holds no message (never written by this log).
    EmptyBatch,
    /// The record's relative offset or position does not fit the 32-bit index
    /// (never written by this log).
    OutOfIndexRange,
}

impl fmt::Display for DamageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Torn { need, have } => {
                write!(
                    f,
                    "torn record: needs {need} bytes, {have} left in the file"
                )
            }
            Self::Invalid(e) => write!(f, "invalid record: {e}"),
            Self::WrongPartition { expected, found } => {
                write!(f, "record of partition {found}, expected {expected}")
            }
            Self::OffsetMismatch { expected, found } => {
                write!(f, "record base offset {found}, expected {expected}")
            }
            Self::EmptyBatch => f.write_str("record without messages"),
            Self::OutOfIndexRange => f.write_str("record outside the range of the segment index"),
        }
    }
}

/// A damaged byte range of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDamage {
    /// The segment's data file.
    pub path: PathBuf,
    /// The segment's base offset.
    pub base_offset: u64,
    /// Byte position of the first damaged record in the data file.
    pub position: u64,
    /// Where the damage ends: the next valid record, or the end of the file.
    pub end: u64,
    /// The offsets the damaged bytes held, `lost_from..lost_to` (empty when not
    /// known: a torn tail).
    pub lost_from: u64,
    /// See [`lost_from`](Self::lost_from).
    pub lost_to: u64,
    /// What is wrong with the first damaged record.
    pub kind: DamageKind,
    /// Where the damaged bytes were copied aside, if they were.
    pub copy: Option<PathBuf>,
}

impl SegmentDamage {
    /// Messages lost in it (0 when not known).
    pub fn lost_messages(&self) -> u64 {
        self.lost_to.saturating_sub(self.lost_from)
    }
}

impl fmt::Display for SegmentDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {} to {}: {}",
            self.path.display(),
            self.position,
            self.end,
            self.kind
        )?;
        if self.lost_to > self.lost_from {
            write!(
                f,
                "; offsets {} to {} lost",
                self.lost_from,
                self.lost_to - 1
            )?;
        }
        if let Some(copy) = &self.copy {
            write!(f, "; copied to {}", copy.display())?;
        }
        Ok(())
    }
}

/// What recovery found and repaired when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found on disk.
    pub segments: u32,
    /// Bytes cut from the end of the last segment (a torn tail).
    pub truncated_bytes: u64,
    /// Records removed with those bytes, as far as their length fields could be
    /// followed (the damaged record counts as one).
    pub dropped_records: u64,
    /// Segments whose index files were missing, inconsistent or stale and were
    /// rewritten from the data file.
    pub indexes_rebuilt: u32,
    /// Closed segments walked and sealed at open (no valid seal: written by an
    /// earlier version, or closed just before a crash).
    pub sealed: u32,
    /// The torn tail that was cut, if any.
    pub damage: Vec<SegmentDamage>,
    /// Damaged ranges kept in their files and skipped (everything around them is
    /// served).
    pub kept: Vec<SegmentDamage>,
}

impl RecoveryReport {
    /// Whether recovery changed no file: nothing cut, no index rewritten, no
    /// segment sealed (known damage found again, kept aside as before, is no
    /// change).
    pub fn changed_nothing(&self) -> bool {
        self.truncated_bytes == 0
            && self.indexes_rebuilt == 0
            && self.sealed == 0
            && self.damage.is_empty()
    }

    /// Whether the log was found exactly as it was last written (indexes included)
    /// and holds no damage.
    pub fn is_clean(&self) -> bool {
        self.truncated_bytes == 0
            && self.indexes_rebuilt == 0
            && self.damage.is_empty()
            && self.kept.is_empty()
    }
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Whole segments deleted.
    pub segments_deleted: u32,
    /// Bytes of data files deleted.
    pub bytes_deleted: u64,
    /// Messages deleted.
    pub messages_deleted: u64,
    /// The oldest offset still stored afterwards.
    pub first_offset: u64,
}

/// Counts of a log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Segments, the active one included.
    pub segments: u32,
    /// Bytes of data files.
    pub size_bytes: u64,
    /// Messages stored.
    pub messages: u64,
    /// Damaged ranges known (skipped by reads).
    pub damaged_ranges: u32,
    /// Messages lost in them.
    pub lost_messages: u64,
}

/// What [`PartitionLog::verify`](super::PartitionLog::verify) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments walked.
    pub segments: u32,
    /// Records that passed every check.
    pub records: u64,
    /// Messages in those records.
    pub messages: u64,
    /// Every damaged range (empty when all is well).
    pub damage: Vec<SegmentDamage>,
}

impl VerifyReport {
    /// Whether no damage was found.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}
