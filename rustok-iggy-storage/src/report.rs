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

/// The first damage found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDamage {
    /// The segment's data file.
    pub path: PathBuf,
    /// The segment's base offset.
    pub base_offset: u64,
    /// Byte position of the damaged record in the data file.
    pub position: u64,
    /// What is wrong with it.
    pub kind: DamageKind,
}

/// What recovery found and repaired when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found on disk.
    pub segments: u32,
    /// Bytes cut from the end of segments (torn or damaged records and what follows).
    pub truncated_bytes: u64,
    /// Records removed with those bytes, as far as their length fields could be
    /// followed (the damaged record counts as one).
    pub dropped_records: u64,
    /// Segments whose index files were missing, inconsistent or stale and were
    /// rewritten from the data file.
    pub indexes_rebuilt: u32,
    /// The damage that caused each truncation, one entry per truncated segment.
    pub damage: Vec<SegmentDamage>,
}

impl RecoveryReport {
    /// Whether the log was found exactly as it was last written (indexes included).
    pub fn is_clean(&self) -> bool {
        self.truncated_bytes == 0 && self.indexes_rebuilt == 0 && self.damage.is_empty()
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
    /// The first damage of each damaged segment (empty when all is well).
    pub damage: Vec<SegmentDamage>,
}

impl VerifyReport {
    /// Whether no damage was found.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}
