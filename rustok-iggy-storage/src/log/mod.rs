//! [`PartitionLog`]: the log of one partition, its state and accessors. Its
//! operations extend it from the children: [`reader`] (reads), [`writer`] (appends,
//! rolls and syncs), [`recovery`] (open and verify), [`retention`] (retention and
//! purge); the plans they hand out to run without the log's lock are the one-way
//! children [`sync`], [`removal`], [`verify`] and [`snapshot`].

mod reader;
mod recovery;
mod removal;
mod retention;
mod snapshot;
mod sync;
mod verify;
mod writer;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use removal::Removal;
pub(crate) use snapshot::copy_whole;
pub use snapshot::{CopyStats, LogSnapshot};
pub use sync::{Appended, SyncPlan};
pub use verify::VerifyPlan;
pub(crate) use verify::damage_of;

use crate::disk::Disk;
use crate::durability::Durability;
use crate::error::StorageError;
use crate::report::{LogStats, RecoveryReport, SegmentDamage};
use crate::segment::Segment;

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

/// How long appended data waited for its fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Syncs that fsynced the active data file.
    pub data_syncs: u64,
    /// The longest time from a write to the end of the fsync that covered it.
    pub max_window: Duration,
    /// The same, for the last sync.
    pub last_window: Duration,
}

/// The log of one partition: a directory of segments.
///
/// Reads take `&self` (many readers may share a read lock); appends, retention,
/// purge and the two short steps of a sync take `&mut self`; the fsyncs of a sync
/// take no lock at all ([`SyncPlan::run`]).
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    disk: Arc<Disk>,
    /// Closed segments, oldest first.
    closed: VecDeque<Segment>,
    /// The segment appends go to; always the newest.
    active: Segment,
    next_offset: u64,
    /// Offsets below this are known to be on stable storage.
    durable_offset: u64,
    /// Appends made (a sync plan notes how many it covers).
    writes: u64,
    /// When data was first written after the last fsync of the active data file.
    unsynced_since: Option<Instant>,
    /// A segment file was created since the directory was last fsynced.
    dir_dirty: bool,
    /// Segments created by rolls (a sync plan notes how many its directory fsync
    /// covers).
    rolls: u64,
    /// Set when a failed write or sync left the log's durable state unknown.
    poisoned: Option<Arc<StorageError>>,
    recovery: RecoveryReport,
    /// Every damaged range known: found at open, or by reads since.
    damage: Mutex<Vec<SegmentDamage>>,
    sync_stats: SyncStats,
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

    /// Offsets below this are known to be on stable storage (fsynced by a sync of
    /// this log, or found at open below the durable offset it was given).
    pub fn durable_offset(&self) -> u64 {
        self.durable_offset
    }

    /// The error that poisoned the log (a failed write or sync), if any: appends
    /// are refused until the log is reopened.
    pub fn poisoned(&self) -> Option<&Arc<StorageError>> {
        self.poisoned.as_ref()
    }

    /// When data was first written after the last fsync, if it is waiting for one.
    pub fn unsynced_since(&self) -> Option<Instant> {
        self.unsynced_since
    }

    /// Closed segments awaiting their seal (index files and seal file, written by
    /// the next sync). Their data is stored, but the seal still needs disk space:
    /// an owner that lets them pile up can fill the disk with data whose seals no
    /// longer fit.
    pub fn unsealed_segments(&self) -> usize {
        self.closed.iter().filter(|s| s.needs_seal).count()
    }

    /// How long data waited for its fsyncs.
    pub fn sync_stats(&self) -> SyncStats {
        self.sync_stats
    }

    /// Every damaged range known: found at open (kept aside, not the torn tail that
    /// was cut), or by reads since.
    pub fn damage(&self) -> Vec<SegmentDamage> {
        self.damage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Notes a damaged range a read found (once).
    fn note_damage(&self, damage: SegmentDamage) {
        let mut known = self.damage.lock().unwrap_or_else(PoisonError::into_inner);
        if !known
            .iter()
            .any(|d| d.path == damage.path && d.position == damage.position)
        {
            tracing::error!(damage = %damage, "a read found a damaged record; it is skipped");
            known.push(damage);
        }
    }

    /// Segment, byte and message counts.
    pub fn stats(&self) -> LogStats {
        let mut stats = LogStats::default();
        for segment in self.segments() {
            stats.segments = stats.segments.saturating_add(1);
            stats.size_bytes = stats.size_bytes.saturating_add(segment.size);
            stats.messages = stats.messages.saturating_add(segment.messages());
        }
        let damage = self.damage.lock().unwrap_or_else(PoisonError::into_inner);
        stats.damaged_ranges = u32::try_from(damage.len()).unwrap_or(u32::MAX);
        stats.lost_messages = damage.iter().map(SegmentDamage::lost_messages).sum();
        stats
    }

    /// Freezes the log as it is now: cheap (no data is read), taken while the caller
    /// holds the log (so no append runs); the copy is written later by
    /// [`LogSnapshot::write_to`] without any lock.
    pub fn snapshot(&self) -> Result<LogSnapshot, StorageError> {
        LogSnapshot::take(self.closed.iter(), &self.active, self.next_offset)
    }

    /// All segments, oldest first, the active one last.
    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.closed.iter().chain(std::iter::once(&self.active))
    }
}

impl Drop for PartitionLog {
    /// Writes the pending index entries of the active segment and of closed
    /// segments not sealed yet (without fsync); if that fails they are rebuilt at
    /// the next open.
    fn drop(&mut self) {
        let pending = self
            .closed
            .iter_mut()
            .filter(|s| s.needs_seal)
            .chain(std::iter::once(&mut self.active));
        for segment in pending {
            if segment.index_pending()
                && let Err(e) = segment.flush_index()
            {
                tracing::debug!(error = %e, "index entries not written at close; rebuilt at next open");
            }
        }
    }
}
