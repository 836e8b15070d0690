//! The storage engine of rustok-iggy's embedded broker: the log of one partition,
//! as segments of Iggy batch records with offset and time indexes.
//!
//! **Unstable.** This crate is the engine under `rustok-iggy-connector`'s embedded
//! broker, published as a crate of its own so that its tests and fuzz targets use it
//! from outside, the way fjall keeps its LSM engine in lsm-tree. Its API follows the
//! broker's needs and may change with any release, minor ones included; applications
//! use the broker through `rustok-iggy` (or `rustok-iggy-connector`), not this crate.
//!
//! - [`PartitionLog`]: open (with recovery), [`append`](PartitionLog::append),
//!   [`read`](PartitionLog::read), [`sync`](PartitionLog::sync), retention, purge,
//!   [`verify`](PartitionLog::verify) and [`snapshot`](PartitionLog::snapshot).
//! - [`LogConfig`] and [`Durability`]: how a log is written.
//! - [`record`]: the batch-record format the log stores (build, stamp, validate,
//!   slice, read the messages of a record).
//! - Offline tools: [`copy_live`] (copy the log of a running process) and
//!   [`verify_dir`] (walk a log directory without opening it for writes).
//! - [`StorageError`], and the reports: [`RecoveryReport`], [`RetentionReport`],
//!   [`VerifyReport`], [`LogStats`], [`CopyStats`].
//!
//! ```
//! use rustok_iggy_storage::{Durability, LogConfig, PartitionLog, record::RecordBuilder};
//!
//! # fn main() -> Result<(), rustok_iggy_storage::StorageError> {
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! let config = LogConfig {
//!     partition_id: 0,
//!     segment_size_bytes: 1 << 20,
//!     durability: Durability::EveryBatch,
//! };
//! let mut log = PartitionLog::open(dir.path(), config)?;
//! let mut builder = RecordBuilder::new();
//! builder.push(1, b"hello", &[]);
//! let mut record = builder.finish(0);
//! let base_offset = log.append(&mut record, 1_000)?;
//! assert_eq!(base_offset, 0);
//! assert_eq!(log.read(0, 10, usize::MAX)?, vec![record]);
//! # Ok(())
//! # }
//! ```
//!
//! # On-disk format
//!
//! A partition is a directory of segments, each named by the offset of its first
//! message, zero-padded to 20 digits:
//!
//! - `{base_offset:020}.log`: the batch records, concatenated, byte for byte as the
//!   Iggy wire carries them (see [`record`]): a 256-byte batch header with
//!   `partition_id`, `base_offset` and `base_timestamp` stamped by the log, then the
//!   message frames. The batch checksum seals the header and every frame checksum;
//!   each frame checksum seals its frame. This file is the source of truth.
//! - `{base_offset:020}.index`: per record, `[relative_offset u32 LE][position u32 LE]`.
//! - `{base_offset:020}.timeindex`: per record, `[timestamp u64 LE][relative_offset u32
//!   LE]`, where the timestamp is the largest `base_timestamp` of the segment so far
//!   (so the file stays sorted even if the clock went backwards).
//!
//! Both indexes are kept in memory too (one entry per record) and searched by binary
//! search. Offsets are never reused: they only grow, across restarts, recovery,
//! retention and purge.
//!
//! # Writes and durability
//!
//! An append is one `write` of the stamped record to the active segment's data file
//! (opened for append, no user-space buffer), so once it returns the record survives
//! the death of the process. Index entries are written to their files at
//! [`PartitionLog::sync`], when a segment is closed, and when the log is dropped; they
//! can always be rebuilt from the data file. fsync follows [`Durability`]: every
//! batch, on an interval (the broker calls [`PartitionLog::sync`] when
//! [`PartitionLog::sync_due`]), or never; a closed segment is always fsynced, and the
//! directory after a segment file is created.
//!
//! # Recovery rule
//!
//! At open, the last segment's data file is walked record by record: layout, the
//! batch checksum and every message checksum, `partition_id`, and offset continuity
//! (each `base_offset` is the previous one plus its message count, starting at the
//! segment's base). The file is truncated at the first record that fails (a torn
//! write, appended garbage, a flipped byte) and its indexes are rebuilt from the
//! walk. An earlier segment's index files are trusted when they are well-formed and
//! agree with the data file (the last indexed record ends exactly at the end of the
//! file); otherwise the segment is walked like the last one, truncated at its first
//! damage (the offsets lost there become a gap that reads skip), and its indexes are
//! rewritten. Missing or damaged index files are never fatal. The next offset is the
//! end of the last valid record, and at least the base offset named by the last
//! segment file. What recovery did is in [`PartitionLog::recovery_report`].

#![warn(missing_docs, unreachable_pub)]

mod durability;
mod error;
mod index;
mod reader;
pub mod record;
mod recovery;
mod report;
mod retention;
mod scan;
mod segment;
mod snapshot;
mod writer;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

pub use durability::Durability;
pub use error::StorageError;
pub use report::{
    DamageKind, LogStats, RecoveryReport, RetentionReport, SegmentDamage, VerifyReport,
};
pub use snapshot::{CopyStats, LogSnapshot, copy_live, verify_dir};

use segment::Segment;

/// How a partition log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// The partition whose log this is; stamped into every record and required of
    /// every record found on disk.
    pub partition_id: u32,
    /// A new segment is started once the active one has reached this many bytes
    /// (capped at 4 GiB, the reach of the 32-bit positions of the offset index).
    pub segment_size_bytes: u64,
    /// When appended data is fsynced.
    pub durability: Durability,
}

/// The log of one partition: a directory of segments.
///
/// Reads take `&self` (many readers may share a read lock); appends, syncs,
/// retention and purge take `&mut self`.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Closed segments, oldest first.
    closed: VecDeque<Segment>,
    /// The segment appends go to; always the newest.
    active: Segment,
    next_offset: u64,
    /// When data was first written after the last fsync of the active data file.
    unsynced_since: Option<Instant>,
    /// Set when a failed write or fsync left the active file's tail unknown.
    poisoned: bool,
    recovery: RecoveryReport,
}

impl PartitionLog {
    /// What recovery found and repaired when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The offset the next appended message will get (0 for a new log). It never
    /// decreases: not on recovery, retention or purge.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The oldest offset still stored, or [`next_offset`](Self::next_offset) when the
    /// log holds no message.
    pub fn first_offset(&self) -> u64 {
        self.segments()
            .find_map(Segment::first_offset)
            .unwrap_or(self.next_offset)
    }

    /// Whether a failed write or fsync poisoned the log: it refuses appends
    /// ([`StorageError::Poisoned`]) until it is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Segment, byte and message counts.
    pub fn stats(&self) -> LogStats {
        let mut stats = LogStats::default();
        for segment in self.segments() {
            stats.segments = stats.segments.saturating_add(1);
            stats.size_bytes = stats.size_bytes.saturating_add(segment.size);
            stats.messages = stats.messages.saturating_add(segment.messages());
        }
        stats
    }

    /// All segments, oldest first, the active one last.
    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.closed.iter().chain(std::iter::once(&self.active))
    }
}

impl Drop for PartitionLog {
    /// Writes the pending index entries of the active segment (without fsync); if
    /// that fails they are rebuilt at the next open.
    fn drop(&mut self) {
        if self.active.index_pending()
            && let Err(e) = self.active.flush_index(false)
        {
            tracing::debug!(error = %e, "index entries not written at close; rebuilt at next open");
        }
    }
}
