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
//!   [`read`](PartitionLog::read), syncs in three steps so that no lock is held
//!   across an fsync ([`begin_sync`](PartitionLog::begin_sync), [`SyncPlan::run`],
//!   [`finish_sync`](PartitionLog::finish_sync); or [`sync`](PartitionLog::sync)
//!   in one call), retention and purge (files removed by a [`Removal`], also
//!   without the lock), [`verify`](PartitionLog::verify),
//!   [`damage`](PartitionLog::damage) and [`snapshot`](PartitionLog::snapshot).
//! - [`Disk`]: every fsync, counted, with the fault-injection seam (a delay).
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
//! let appended = log.append(&mut record, 1_000)?;
//! assert_eq!((appended.base_offset, appended.end_offset), (0, 1));
//! assert_eq!(log.read(0, 10, usize::MAX)?, vec![record]);
//! // `EveryBatch`: the owner syncs before it acknowledges the append.
//! log.sync()?;
//! assert_eq!(log.durable_offset(), 1);
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
//! search. Offsets only grow, across restarts, recovery, retention and purge (but
//! see the exception below).
//!
//! # Writes and durability
//!
//! An append is one `write` of the stamped record to the active segment's data file
//! (opened for append, no user-space buffer), on the caller's thread under the
//! log's write lock: once it returns, the record survives the death of the process.
//! A `write` goes to the page cache; handing it to another thread would cost more
//! than the write itself. Everything that waits for the device runs elsewhere and
//! without the lock: [`PartitionLog::begin_sync`] notes, under the lock, what is to
//! be made durable (a [`SyncPlan`]: the active data file up to now, closed segments
//! to seal, the directory after a segment file was created);
//! [`SyncPlan::run`] makes the fsyncs with no lock held (the owner runs it on a
//! thread of its own); [`PartitionLog::finish_sync`] records the outcome. Appends
//! and reads go on meanwhile, and everything appended before a plan was taken is
//! covered by it, so concurrent appends that wait for durability share one fsync.
//! [`Durability`] says when the owner syncs: before acknowledging each batch, on an
//! interval, or never (but a closed segment is always sealed). Any failure of a
//! sync (a data or index write, an fsync) poisons the log: appends are refused
//! until it is reopened.
//!
//! A closed segment is **sealed**: its data file fsynced, its index files written
//! and fsynced, then `{base_offset:020}.seal` written and fsynced, naming the data
//! length and checksums of both index files. The active segment's index entries
//! are written when it is closed and when the log is dropped; they can always be
//! rebuilt from the data file.
//!
//! # Recovery rule
//!
//! At open, a closed segment whose seal vouches for its index files (same data
//! length, same checksums) is trusted without reading its data; any other segment
//! (the last one, one closed just before a crash, one written by an earlier
//! version, one whose index or seal is damaged) is walked record by record: layout,
//! the batch checksum and every message checksum, `partition_id`, offset
//! continuity. Its indexes are rebuilt from the walk, and a walked closed segment
//! with no damage is sealed.
//!
//! At a record that fails, the walk looks for the next valid record (where the
//! damaged record's length field points, then byte by byte for a header of this
//! partition); a valid record has every check right and a base offset at or past
//! the expected one. What happens to the damage:
//!
//! - **A valid record follows it**: the damage is not a tail, whatever the
//!   segment. The damaged range is copied aside (the partition's `quarantine/`
//!   directory), left in place, skipped by reads, and reported; the offsets it held
//!   are lost, everything after it is kept and served.
//! - **Nothing valid follows it, in the last segment, past the durable offset**: a
//!   torn tail (a write that was never fsynced: a crash mid-write, power lost with
//!   unsynced data). It is cut off, and appends continue after the last valid
//!   record. The durable offset is the offset up to which the owner last recorded
//!   an fsync (passed to [`PartitionLog::open`]).
//! - **Nothing valid follows it, anywhere else** (a closed segment, which was
//!   sealed, or data below the durable offset): damage to data that was on stable
//!   storage. Kept aside and skipped like the first case, never cut; its offsets up
//!   to the next segment (or the durable offset) are lost and never handed out
//!   again.
//!
//! Damage in a sealed segment is not looked for at open: reads verify both
//! checksum levels of every record of a segment they did not see verified in this
//! process, and a damaged record is skipped, copied aside and reported the same
//! way; [`PartitionLog::verify`] walks everything. Missing or damaged index and
//! seal files are never fatal and lose nothing. The next offset is the end of the
//! last valid record, at least the base offset named by the last segment file,
//! and at least the durable offset. What recovery did is in
//! [`PartitionLog::recovery_report`]; every damaged range known is in
//! [`PartitionLog::damage`].
//!
//! Offsets are never reused, with one exception: a torn tail's offsets (written,
//! acknowledged under `interval` or `never`, then lost with the unsynced data in a
//! power loss or kernel crash) are given to the next appends.

#![warn(missing_docs, unreachable_pub)]

mod disk;
mod durability;
mod error;
mod index;
mod log;
mod offline;
mod quarantine;
pub mod record;
mod report;
mod scan;
mod seal;
mod segment;

pub use disk::Disk;
pub use durability::Durability;
pub use error::{StorageError, copy_io_error};
pub use log::{
    Appended, CopyStats, LogConfig, LogSnapshot, PartitionLog, Removal, SyncPlan, SyncStats,
    VerifyPlan,
};
pub use offline::{copy_live, verify_dir};
pub use report::{
    DamageKind, LogStats, RecoveryReport, RetentionReport, SegmentDamage, VerifyReport,
};
