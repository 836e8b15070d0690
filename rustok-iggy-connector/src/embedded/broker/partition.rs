//! One partition: its log, the watches that wake readers at the head and callers
//! waiting for durability, its stored consumer offsets, and its sync work (run by
//! the broker's sync threads, see `sync.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::dedup::{IdMap, Window};
use super::offsets::{ConsumerKey, OffsetStore, StoredOffsets};
use super::sync::{SyncJob, SyncSlot, Syncer};
use crate::batch::record;
use crate::config::{DeduplicationConfig, Durability};
use crate::connector::Duplicate;
use crate::embedded::StorageError;
use crate::embedded::storage::{
    Disk, LogConfig, LogStats, PartitionLog, RecoveryReport, SegmentDamage, VerifyReport,
};

/// How often, at most, a partition fsyncs its offsets journal only to make its
/// durable offset durable (commits are fsynced by their own policy).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Counts of a partition's storage, for metrics and health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PartitionStats {
    /// Segments, bytes, messages, damage.
    pub(crate) log: LogStats,
    /// fsyncs of the active data file so far.
    pub(crate) data_syncs: u64,
    /// fsyncs of the offsets journal so far (compactions included).
    pub(crate) offset_syncs: u64,
    /// The longest time appended data waited for its fsync.
    pub(crate) max_sync_window: Duration,
    /// How long the oldest unsynced write has been waiting (zero when none).
    pub(crate) unsynced_age: Duration,
    /// Whether the partition refuses writes after a failed write or sync.
    pub(crate) poisoned: bool,
}

/// A partition of a topic.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) id: u32,
    dir: PathBuf,
    me: Weak<Partition>,
    durability: Durability,
    disk: Arc<Disk>,
    syncer: Arc<Syncer>,
    slot: SyncSlot,
    log: RwLock<PartitionLog>,
    /// The offset readers may read up to: the next offset, or under `every_batch`
    /// the durable offset (readers never see what a power loss could take back).
    head: watch::Sender<u64>,
    /// The log's durable offset; also changed (without moving) when the log is
    /// poisoned, to wake the callers waiting on it.
    durable: watch::Sender<u64>,
    offsets: OffsetStore,
    /// The number of the last offsets-journal record on stable storage; changed
    /// when the journal is poisoned too.
    offsets_synced: watch::Sender<u64>,
    /// The next run fsyncs the journal (a commit or a flush waits for it).
    want_journal: AtomicBool,
    /// The next run compacts the journal.
    want_compaction: AtomicBool,
    /// The next run fsyncs the active data file whatever the policy (a flush).
    want_all: AtomicBool,
    /// The next run is the last: everything is synced and the journal compacted.
    closing: AtomicBool,
    /// The partition was deleted: its runs do nothing.
    retired: AtomicBool,
    poisoned: AtomicBool,
    offset_syncs: std::sync::atomic::AtomicU64,
    /// When the journal was last fsynced.
    last_offset_sync: Mutex<Instant>,
    /// The ids stored recently; `None` when deduplication is off. Locked inside the
    /// log's write lock.
    window: Mutex<Option<Window>>,
}

/// What an append stored.
#[derive(Debug)]
pub(crate) struct Stored {
    /// The offset of the first message stored; when none was (all duplicates), the
    /// offset of the first duplicate's stored copy.
    pub(crate) base_offset: u64,
    /// The messages not stored, because the partition had their ids already.
    pub(crate) duplicates: Vec<Duplicate>,
    /// The offset after the last message this append stored or found stored: the
    /// batch, duplicates included, is on stable storage once the log's durable
    /// offset reaches it.
    pub(crate) end_offset: u64,
}

/// Where a duplicate's stored copy is: before this batch, or a message kept from it.
enum Copy {
    Stored(u64),
    Kept(u64),
}

impl Partition {
    /// Opens (and recovers) the partition stored in `dir`, creating it (its new
    /// parent directories fsynced) when missing. Its syncs run on `syncer`. The
    /// deduplication window is rebuilt from the tail of the log.
    pub(crate) fn open(
        dir: &Path,
        config: LogConfig,
        disk: &Arc<Disk>,
        syncer: &Arc<Syncer>,
        deduplication: &DeduplicationConfig,
    ) -> Result<Arc<Self>, StorageError> {
        disk.create_dir_all(dir)?;
        let (offsets, _) = OffsetStore::open(dir, Arc::clone(disk))?;
        let log = PartitionLog::open_with(dir, config, Arc::clone(disk), offsets.durable_offset())?;
        log_recovery(dir, log.recovery_report());
        let lowered = offsets.clamp_to(log.next_offset())?;
        if lowered > 0 {
            tracing::warn!(
                dir = %dir.display(),
                next_offset = log.next_offset(),
                lowered,
                "stored consumer offsets were past the end of the log (its tail was lost); \
                 they now point at its last message"
            );
        }
        let window = match Window::new(deduplication) {
            Some(mut window) => {
                rebuild_window(&log, &mut window)?;
                Some(window)
            }
            None => None,
        };
        let next = log.next_offset();
        let durable = log.durable_offset();
        let synced = offsets.synced();
        Ok(Arc::new_cyclic(|me| Self {
            id: config.partition_id,
            dir: dir.to_owned(),
            me: me.clone(),
            durability: config.durability,
            disk: Arc::clone(disk),
            syncer: Arc::clone(syncer),
            slot: SyncSlot::default(),
            log: RwLock::new(log),
            head: watch::channel(next).0,
            durable: watch::channel(durable).0,
            offsets,
            offsets_synced: watch::channel(synced).0,
            want_journal: AtomicBool::new(false),
            want_compaction: AtomicBool::new(false),
            want_all: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            offset_syncs: std::sync::atomic::AtomicU64::new(0),
            last_offset_sync: Mutex::new(Instant::now()),
            window: Mutex::new(window),
        }))
    }

    /// The log, shared: appends wait while a guard is held.
    pub(crate) fn log_read(&self) -> std::sync::RwLockReadGuard<'_, PartitionLog> {
        self.log.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn log_write(&self) -> std::sync::RwLockWriteGuard<'_, PartitionLog> {
        self.log.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn job(&self) -> Option<Arc<dyn SyncJob>> {
        self.me.upgrade().map(|me| me as Arc<dyn SyncJob>)
    }

    /// Asks the sync threads for a run now.
    fn request(&self) {
        if let Some(job) = self.job() {
            self.syncer.request(job);
        }
    }

    /// Asks the sync threads for a run at the next tick.
    fn defer(&self) {
        if self.slot.is_dirty() {
            return;
        }
        if let Some(job) = self.job() {
            self.syncer.defer(&job);
        }
    }

    /// Appends a validated batch record with one write (see
    /// [`PartitionLog::append`]); readers waiting at the head are woken, and the
    /// fsync is arranged by the policy: asked for now under `every_batch` (the
    /// caller then waits with [`wait_durable`](Self::wait_durable) up to
    /// [`Stored::end_offset`]), at the next tick under `interval`; a closed segment
    /// is sealed at once under every policy.
    ///
    /// With deduplication on, a message whose id the window holds (or an earlier
    /// message of the same record has) is left out, the others are stored
    /// contiguously, and ids of 0 are replaced by random UUIDv4 values; the record is
    /// rebuilt only when one of these applies. A record of duplicates only writes
    /// nothing.
    ///
    /// Durability: on return the messages stored survive the death of the process.
    pub(crate) fn append(
        &self,
        mut record: Vec<u8>,
        timestamp_micros: u64,
    ) -> Result<Stored, StorageError> {
        let mut log = self.log_write();
        let mut guard = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let checked = match (guard.as_mut(), record::messages(&record)) {
            (Some(window), Ok(messages)) => {
                window.expire(timestamp_micros);
                Some((window, messages))
            }
            // Off, or a layout the log refuses with its own error.
            (None, _) | (Some(_), Err(_)) => None,
        };
        let Some((window, messages)) = checked else {
            let appended = log.append(&mut record, timestamp_micros)?;
            drop(guard);
            drop(log);
            self.after_append(appended.end_offset, appended.rolled);
            return Ok(Stored {
                base_offset: appended.base_offset,
                duplicates: Vec::new(),
                end_offset: appended.end_offset,
            });
        };
        let count = messages.header().message_count as usize;
        let mut kept: Vec<u128> = Vec::with_capacity(count);
        let mut in_batch = IdMap::<u64>::with_capacity_and_hasher(count, Default::default());
        let mut duplicates: Vec<(u32, Copy)> = Vec::new();
        let mut rebuild = false;
        for (index, message) in messages.enumerate() {
            let Ok(message) = message else { break };
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let mut id = message.id;
            if id == 0 {
                rebuild = true;
                id = uuid::Uuid::new_v4().as_u128();
            } else if let Some(offset) = window.offset_of(id) {
                duplicates.push((index, Copy::Stored(offset)));
                continue;
            } else if let Some(position) = in_batch.get(&id) {
                duplicates.push((index, Copy::Kept(*position)));
                continue;
            }
            in_batch.insert(id, kept.len() as u64);
            kept.push(id);
        }
        let appended = if kept.is_empty() {
            None
        } else {
            if rebuild || !duplicates.is_empty() {
                record = rebuilt(&record, &kept, &duplicates);
            }
            let appended = log.append(&mut record, timestamp_micros)?;
            for (position, id) in kept.iter().enumerate() {
                window.remember(
                    *id,
                    appended.base_offset + position as u64,
                    timestamp_micros,
                );
            }
            Some(appended)
        };
        let next = log.next_offset();
        drop(guard);
        drop(log);
        if let Some(appended) = &appended {
            self.after_append(appended.end_offset, appended.rolled);
        }
        let base_offset = appended.as_ref().map_or(next, |a| a.base_offset);
        let duplicates: Vec<Duplicate> = duplicates
            .into_iter()
            .map(|(index, copy)| Duplicate {
                index,
                offset: match copy {
                    Copy::Stored(offset) => offset,
                    Copy::Kept(position) => base_offset + position,
                },
            })
            .collect();
        // A duplicate is acknowledged like its stored copy: once that is durable.
        let end_offset = duplicates
            .iter()
            .map(|d| d.offset + 1)
            .chain(appended.as_ref().map(|a| a.end_offset))
            .max()
            .unwrap_or(next);
        let base_offset = match (appended.is_none(), duplicates.first()) {
            (true, Some(first)) => first.offset,
            _ => base_offset,
        };
        Ok(Stored {
            base_offset,
            duplicates,
            end_offset,
        })
    }

    /// Moves the head after an append ending at `end_offset` and arranges its
    /// fsync by the policy.
    fn after_append(&self, end_offset: u64, rolled: bool) {
        match self.durability {
            Durability::EveryBatch => self.request(),
            Durability::Interval(_) => {
                self.head.send_replace(end_offset);
                if rolled {
                    self.request();
                } else {
                    self.defer();
                }
            }
            Durability::Never => {
                self.head.send_replace(end_offset);
                if rolled {
                    self.request();
                }
            }
        }
    }

    /// Waits until no closed segment awaits its seal, asking the sync threads for
    /// it: called before an append, so that at most one segment is ever unsealed.
    /// Without it, appends can outrun the sync threads and fill the disk with
    /// segments whose index and seal files no longer fit (they need space of their
    /// own), so that freeing space later is all taken by the backlog of seals.
    ///
    /// # Errors
    /// [`StorageError::Poisoned`] when the log is poisoned (for example when the
    /// seal itself failed).
    pub(crate) async fn wait_sealed(&self) -> Result<(), StorageError> {
        let mut durable = self.durable.subscribe();
        loop {
            durable.borrow_and_update();
            {
                let log = self.log_read();
                if let Some(cause) = log.poisoned() {
                    return Err(StorageError::Poisoned {
                        path: self.dir.clone(),
                        cause: Arc::clone(cause),
                    });
                }
                if log.unsealed_segments() == 0 || self.retired.load(Ordering::Acquire) {
                    return Ok(());
                }
            }
            self.request();
            if durable.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Whether appends must wait for their fsync before they are acknowledged.
    pub(crate) fn acknowledges_after_fsync(&self) -> bool {
        self.durability == Durability::EveryBatch
    }

    /// Waits until every offset below `end` is on stable storage.
    ///
    /// # Errors
    /// [`StorageError::Poisoned`] when a sync failed first.
    pub(crate) async fn wait_durable(&self, end: u64) -> Result<(), StorageError> {
        let mut durable = self.durable.subscribe();
        loop {
            if *durable.borrow_and_update() >= end {
                return Ok(());
            }
            if let Some(cause) = self.log_poison() {
                return Err(StorageError::Poisoned {
                    path: self.dir.clone(),
                    cause,
                });
            }
            if durable.changed().await.is_err() {
                return Err(StorageError::Poisoned {
                    path: self.dir.clone(),
                    cause: Arc::new(StorageError::Corrupt {
                        path: self.dir.clone(),
                        position: 0,
                        reason: "the partition was closed".to_owned(),
                    }),
                });
            }
        }
    }

    /// Stored records covering `[from, from + max_messages)`, up to the head.
    pub(crate) fn read(
        &self,
        from: u64,
        max_messages: u32,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let until = *self.head.borrow();
        self.log_read()
            .read_until(from, until, max_messages, max_bytes)
    }

    /// The offset the next message will get, as readers see it (under
    /// `every_batch`, the durable end of the log).
    pub(crate) fn next_offset(&self) -> u64 {
        *self.head.borrow()
    }

    /// The oldest stored offset.
    pub(crate) fn first_offset(&self) -> u64 {
        self.log_read().first_offset()
    }

    /// The first offset appended at or after `timestamp_micros`.
    pub(crate) fn offset_at_timestamp(&self, timestamp_micros: u64) -> Option<u64> {
        self.log_read()
            .offset_at_timestamp(timestamp_micros)
            .filter(|&offset| offset < self.next_offset())
    }

    /// A receiver of the head, changed at every append (under `every_batch`, at
    /// every sync).
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// The stored offset of `key` (the last message it handled).
    pub(crate) fn stored_offset(&self, key: ConsumerKey) -> Option<u64> {
        self.offsets.get(key)
    }

    /// The stored offsets of standalone consumers, as (consumer id, offset) (the
    /// migration copies them).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn stored_consumers(&self) -> Vec<(u32, u64)> {
        let state = self.offsets.state();
        state
            .consumers()
            .iter()
            .map(|(&id, &offset)| (id, offset))
            .collect()
    }

    /// The stored offsets as a backup's `offsets.json` holds them.
    pub(crate) fn offsets_json(&self) -> Result<Vec<u8>, StorageError> {
        let state: StoredOffsets = self.offsets.state().offsets_only(None);
        serde_json::to_vec_pretty(&state).map_err(|e| StorageError::Corrupt {
            path: self.dir.join(super::offsets::OFFSETS_FILE),
            position: 0,
            reason: format!("cannot serialize: {e}"),
        })
    }

    /// Stores `offset` for `key`: one write to the offsets journal, so it survives
    /// the death of the process on return; fsynced (with other commits) before
    /// return under `every_batch`, at the next tick under `interval`, at compaction
    /// and shutdown under `never`.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the write fails (nothing is stored: the previous
    /// offset stays); [`StorageError::Poisoned`] when the journal's fsync failed.
    pub(crate) async fn store_offset(
        &self,
        key: ConsumerKey,
        offset: u64,
    ) -> Result<(), StorageError> {
        let Some(seq) = self.offsets.store(key, offset)? else {
            return Ok(());
        };
        self.after_offset_write(seq).await
    }

    /// Deletes the stored offset of `key`; returns whether there was one. Durable
    /// like [`store_offset`](Self::store_offset), but never waited for.
    pub(crate) fn delete_offset(&self, key: ConsumerKey) -> Result<bool, StorageError> {
        let Some(_) = self.offsets.delete(key)? else {
            return Ok(false);
        };
        self.schedule_offsets(false);
        Ok(true)
    }

    /// Arranges the fsync of the journal after a write; `wait`: ask for it now.
    fn schedule_offsets(&self, wait: bool) {
        if self.offsets.compaction_due() {
            self.want_compaction.store(true, Ordering::Release);
            self.request();
            return;
        }
        match self.durability {
            Durability::EveryBatch => {
                self.want_journal.store(true, Ordering::Release);
                self.request();
            }
            Durability::Interval(_) if wait => {
                self.want_journal.store(true, Ordering::Release);
                self.request();
            }
            Durability::Interval(_) => self.defer(),
            Durability::Never => {}
        }
    }

    async fn after_offset_write(&self, seq: u64) -> Result<(), StorageError> {
        let wait = self.durability == Durability::EveryBatch;
        self.schedule_offsets(false);
        if wait {
            self.wait_offsets(seq).await
        } else {
            Ok(())
        }
    }

    async fn wait_offsets(&self, seq: u64) -> Result<(), StorageError> {
        let mut synced = self.offsets_synced.subscribe();
        loop {
            if *synced.borrow_and_update() >= seq {
                return Ok(());
            }
            if let Some(cause) = self.offsets.poisoned() {
                return Err(StorageError::Poisoned {
                    path: self.dir.clone(),
                    cause,
                });
            }
            if synced.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// fsyncs what was appended and committed so far (on the sync threads) and
    /// waits for it.
    ///
    /// # Errors
    /// [`StorageError::Poisoned`] when the log or the offsets journal is poisoned.
    pub(crate) async fn flush(&self) -> Result<(), StorageError> {
        let end = self.log_read().next_offset();
        let seq = self.offsets.written();
        self.want_journal.store(true, Ordering::Release);
        self.want_all.store(true, Ordering::Release);
        self.request();
        self.wait_durable(end).await?;
        self.wait_offsets(seq).await
    }

    /// Deletes old segments past the retention limits (files removed without the
    /// log's lock).
    pub(crate) fn apply_retention(
        &self,
        now_micros: u64,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
    ) -> Result<(), StorageError> {
        let removal = self
            .log_write()
            .take_expired(now_micros, max_age, max_bytes);
        let report = removal.run(&self.disk)?;
        tracing::debug!(partition = self.id, ?report, "retention applied");
        Ok(())
    }

    /// Deletes the `count` oldest closed segments, never the active one; offsets
    /// are kept (files removed without the log's lock). Returns how many were
    /// deleted. The deduplication window keeps the ids of the deleted messages
    /// until they expire (a resend within the window is still a duplicate, its
    /// receipt naming the deleted offset); a restart rebuilds the window from the
    /// log that is left, so it forgets them then.
    pub(crate) fn delete_segments(&self, count: u32) -> Result<u32, StorageError> {
        let removal = self.log_write().take_oldest_segments(count);
        let report = removal.run(&self.disk)?;
        tracing::info!(partition = self.id, ?report, "segments deleted on request");
        Ok(report.segments_deleted)
    }

    /// Deletes every message; offsets are not reused. The deduplication window is
    /// emptied with them: the ids it held name messages that are gone.
    pub(crate) fn purge(&self) -> Result<(), StorageError> {
        let removal = {
            let mut log = self.log_write();
            let removal = log.take_all()?;
            if let Some(window) = self
                .window
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                window.clear();
            }
            removal
        };
        removal.run(&self.disk).map(|_| ())
    }

    /// Walks every record checking both checksum levels (without the log's lock:
    /// appends go on meanwhile).
    pub(crate) fn verify(&self) -> Result<VerifyReport, StorageError> {
        let plan = self.log_read().verify_plan();
        plan.run()
    }

    /// Segment, byte and message counts.
    pub(crate) fn stats(&self) -> LogStats {
        self.log_read().stats()
    }

    /// Counts of the partition's storage: its log, its fsyncs, how long data waits
    /// for them, whether it is poisoned.
    pub(crate) fn storage_stats(&self) -> PartitionStats {
        let log = self.log_read();
        let sync = log.sync_stats();
        PartitionStats {
            log: log.stats(),
            data_syncs: sync.data_syncs,
            offset_syncs: self.offset_syncs.load(Ordering::Relaxed),
            max_sync_window: sync.max_window,
            unsynced_age: log
                .unsynced_since()
                .map_or(Duration::ZERO, |since| since.elapsed()),
            poisoned: log.poisoned().is_some() || self.offsets.poisoned().is_some(),
        }
    }

    /// Every damaged range known in the log (found at open or by reads).
    pub(crate) fn damage(&self) -> Vec<SegmentDamage> {
        self.log_read().damage()
    }

    /// The failure that poisoned this partition (its log or its offsets journal),
    /// if any: its appends (or commits) are refused until the broker is reopened.
    /// A failed append poisons the log itself, a failed sync sets the flag too: the
    /// log is asked either way.
    pub(crate) fn poisoned(&self) -> Option<Arc<StorageError>> {
        self.log_read()
            .poisoned()
            .cloned()
            .or_else(|| self.offsets.poisoned())
    }

    /// Whether [`poisoned`](Self::poisoned).
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned().is_some()
    }

    fn log_poison(&self) -> Option<Arc<StorageError>> {
        if !self.poisoned.load(Ordering::Acquire) {
            return None;
        }
        self.log_read().poisoned().cloned()
    }

    /// Marks the partition for its last run (everything synced, the journal
    /// compacted).
    pub(crate) fn begin_close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Marks the partition deleted: its sync runs do nothing from now on.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// The job to hand to [`Syncer::request`] / [`Syncer::wait_idle`].
    pub(crate) fn as_job(self: &Arc<Self>) -> Arc<dyn SyncJob> {
        Arc::clone(self) as Arc<dyn SyncJob>
    }

    fn sync_log(&self, closing: bool) {
        // `never` fsyncs the active data file only at shutdown and on a flush.
        let all = self.want_all.swap(false, Ordering::AcqRel)
            || closing
            || self.durability != Durability::Never;
        let Some(plan) = self.log_write().begin_sync(all) else {
            return;
        };
        let outcome = plan.run(&self.disk);
        let finished = self.log_write().finish_sync(&plan, outcome);
        match finished {
            Ok(durable) => {
                if self.durability == Durability::EveryBatch {
                    self.head.send_replace(durable);
                }
                self.durable.send_replace(durable);
                if let Err(e) = self.offsets.record_durable(durable) {
                    tracing::warn!(partition = self.id, error = %crate::error_chain(&e), "durable offset not recorded");
                }
            }
            Err(cause) => {
                self.poisoned.store(true, Ordering::Release);
                tracing::error!(
                    dir = %self.dir.display(),
                    error = %cause,
                    "a sync failed: the partition refuses writes until the broker is reopened"
                );
                // Wakes every caller waiting for durability, to see the failure.
                self.durable.send_modify(|_| {});
                self.head.send_modify(|_| {});
            }
        }
    }

    fn sync_offsets(&self, tick: bool, closing: bool) {
        let wanted = self.want_journal.swap(false, Ordering::AcqRel);
        let Some(commits) = self.offsets.unsynced() else {
            return;
        };
        let checkpoint_due = || {
            self.last_offset_sync
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed()
                >= CHECKPOINT_INTERVAL
        };
        let now = wanted
            || closing
            || (commits && self.durability == Durability::EveryBatch)
            || (tick && self.durability != Durability::Never && (commits || checkpoint_due()));
        if !now {
            if self.durability != Durability::Never {
                // A durable-offset checkpoint: made at the next tick.
                self.defer();
            }
            return;
        }
        let Some(sync) = self.offsets.begin_sync() else {
            return;
        };
        *self
            .last_offset_sync
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        match self.offsets.sync(sync) {
            Ok(()) => {
                self.offset_syncs.fetch_add(1, Ordering::Relaxed);
                self.offsets_synced.send_replace(self.offsets.synced());
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %crate::error_chain(&e), "an fsync of the offsets journal failed");
                self.offsets_synced.send_modify(|_| {});
            }
        }
    }

    fn compact_offsets(&self, closing: bool) {
        let wanted = self.want_compaction.swap(false, Ordering::AcqRel);
        if !(wanted || (closing && self.offsets.poisoned().is_none())) {
            return;
        }
        match self.offsets.compact() {
            Ok(()) => {
                self.offset_syncs.fetch_add(1, Ordering::Relaxed);
                self.offsets_synced.send_replace(self.offsets.synced());
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %crate::error_chain(&e), "compacting the offsets journal failed");
                self.offsets_synced.send_modify(|_| {});
            }
        }
    }
}

impl SyncJob for Partition {
    fn slot(&self) -> &SyncSlot {
        &self.slot
    }

    /// One run: the log's sync (durable offset recorded in the journal), then the
    /// journal's fsync when a caller waits for it or the tick is due, then a
    /// compaction when due; at close, all of it.
    fn run(&self, tick: bool) {
        if self.retired.load(Ordering::Acquire) {
            return;
        }
        let closing = self.closing.load(Ordering::Acquire);
        self.sync_log(closing);
        self.sync_offsets(tick, closing);
        self.compact_offsets(closing);
    }
}

/// `record` without the messages of `duplicates`, the others with the ids of `kept`
/// (in order: ids of 0 replaced), sealed again.
fn rebuilt(record: &[u8], kept: &[u128], duplicates: &[(u32, Copy)]) -> Vec<u8> {
    let mut builder = record::RecordBuilder::with_capacity(record.len());
    let mut ids = kept.iter();
    // In batch order, like the messages.
    let mut skipped = duplicates.iter().map(|(index, _)| *index).peekable();
    let mut origin = None;
    if let Ok(messages) = record::messages(record) {
        for (index, message) in messages.enumerate() {
            let Ok(message) = message else { break };
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            if skipped.next_if_eq(&index).is_some() {
                continue;
            }
            let Some(id) = ids.next() else { break };
            origin.get_or_insert(message.origin_timestamp);
            builder.push(*id, message.payload, message.user_headers);
        }
    }
    builder.finish(origin.unwrap_or_default())
}

/// Fills `window` from the tail of `log`: the ids of its last `max_entries`
/// messages with the times they were stored, then drops those past the expiry.
fn rebuild_window(log: &PartitionLog, window: &mut Window) -> Result<(), StorageError> {
    let max = u32::try_from(window.max_entries()).unwrap_or(u32::MAX);
    let from = log
        .next_offset()
        .saturating_sub(u64::from(max))
        .max(log.first_offset());
    for stored in log.read(from, max, usize::MAX)? {
        let Ok(messages) = record::messages(&stored) else {
            continue;
        };
        for message in messages.flatten() {
            if message.offset >= from {
                window.remember(message.id, message.offset, message.timestamp);
            }
        }
    }
    window.expire(crate::batch::now_micros());
    Ok(())
}

fn log_recovery(dir: &Path, report: &RecoveryReport) {
    if report.is_clean() {
        tracing::debug!(dir = %dir.display(), segments = report.segments, "partition opened");
    } else {
        tracing::warn!(
            dir = %dir.display(),
            truncated_bytes = report.truncated_bytes,
            dropped_records = report.dropped_records,
            indexes_rebuilt = report.indexes_rebuilt,
            sealed = report.sealed,
            torn = ?report.damage,
            damaged = report.kept.len(),
            "partition recovered: a torn tail was cut or damaged ranges are skipped; \
             every other record is kept"
        );
    }
}
