//! One partition: its log, the watch that wakes readers at the head, and its stored
//! consumer offsets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::dedup::Window;
use super::persist;
use crate::batch::record;
use crate::config::DeduplicationConfig;
use crate::connector::Duplicate;
use crate::embedded::StorageError;
use crate::embedded::storage::{LogConfig, LogStats, PartitionLog, RecoveryReport, VerifyReport};

/// Whose stored offset: a plain consumer (by numeric id) or a consumer group (by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ConsumerKey {
    /// A single consumer.
    Consumer(u32),
    /// A consumer group.
    Group(u32),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredOffsets {
    #[serde(default)]
    consumers: BTreeMap<u32, u64>,
    #[serde(default)]
    groups: BTreeMap<u32, u64>,
}

impl StoredOffsets {
    /// A stored offset names the last message its consumer handled. One at or past
    /// the log's next offset names a message the log no longer has: its tail was lost
    /// (a torn or damaged tail cut at recovery, data not yet fsynced when the power
    /// went, a segment removed by hand) after the offset was stored. The next appends
    /// reuse those offsets, so the stored offset is lowered to the last offset the
    /// log still covers; left as it was, the consumer would skip the new messages.
    /// Returns how many offsets were lowered.
    fn clamp_to(&mut self, next_offset: u64) -> usize {
        let mut lowered = 0;
        for map in [&mut self.consumers, &mut self.groups] {
            map.retain(|_, offset| {
                if *offset < next_offset {
                    return true;
                }
                lowered += 1;
                match next_offset.checked_sub(1) {
                    Some(last) => {
                        *offset = last;
                        true
                    }
                    None => false,
                }
            });
        }
        lowered
    }

    fn map(&mut self, key: ConsumerKey) -> (&mut BTreeMap<u32, u64>, u32) {
        match key {
            ConsumerKey::Consumer(id) => (&mut self.consumers, id),
            ConsumerKey::Group(id) => (&mut self.groups, id),
        }
    }
}

const OFFSETS_FILE: &str = "offsets.json";

/// A partition of a topic.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) id: u32,
    dir: PathBuf,
    log: RwLock<PartitionLog>,
    head: watch::Sender<u64>,
    offsets: Mutex<StoredOffsets>,
    sync_offsets: bool,
    /// The ids stored recently; `None` when deduplication is off. Locked inside the
    /// log's write lock.
    window: Mutex<Option<Window>>,
}

/// What an append stored.
#[derive(Debug)]
pub(crate) struct Appended {
    /// The offset of the first message stored; when none was (all duplicates), the
    /// offset of the first duplicate's stored copy.
    pub(crate) base_offset: u64,
    /// The messages not stored, because the partition had their ids already.
    pub(crate) duplicates: Vec<Duplicate>,
}

/// Where a duplicate's stored copy is: before this batch, or a message kept from it.
enum Copy {
    Stored(u64),
    Kept(u64),
}

impl Partition {
    /// Opens (and recovers) the partition stored in `dir`.
    pub(crate) fn open(
        dir: &Path,
        config: LogConfig,
        sync_offsets: bool,
        deduplication: &DeduplicationConfig,
    ) -> Result<Self, StorageError> {
        let id = config.partition_id;
        let log = PartitionLog::open(dir, config)?;
        let window = match Window::new(deduplication) {
            Some(mut window) => {
                rebuild_window(&log, &mut window)?;
                Some(window)
            }
            None => None,
        };
        let report = log.recovery_report();
        log_recovery(dir, report);
        let mut offsets: StoredOffsets =
            persist::read_json(&dir.join(OFFSETS_FILE))?.unwrap_or_default();
        let lowered = offsets.clamp_to(log.next_offset());
        if lowered > 0 {
            tracing::warn!(
                dir = %dir.display(),
                next_offset = log.next_offset(),
                lowered,
                "stored consumer offsets were past the end of the log (its tail was lost); \
                 they now point at its last message"
            );
        }
        let (head, _) = watch::channel(log.next_offset());
        Ok(Self {
            id,
            dir: dir.to_owned(),
            log: RwLock::new(log),
            head,
            offsets: Mutex::new(offsets),
            sync_offsets,
            window: Mutex::new(window),
        })
    }

    /// The log, shared: appends wait while a guard is held.
    pub(crate) fn log_read(&self) -> std::sync::RwLockReadGuard<'_, PartitionLog> {
        self.log
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn log_write(&self) -> std::sync::RwLockWriteGuard<'_, PartitionLog> {
        self.log
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a validated batch record; readers waiting at the head are woken.
    ///
    /// With deduplication on, a message whose id the window holds (or an earlier
    /// message of the same record has) is left out, the others are stored
    /// contiguously, and ids of 0 are replaced by random UUIDv4 values; the record is
    /// rebuilt only when one of these applies.
    pub(crate) fn append(
        &self,
        mut record: Vec<u8>,
        timestamp_micros: u64,
    ) -> Result<Appended, StorageError> {
        let mut log = self.log_write();
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let messages = match (window.as_mut(), record::messages(&record)) {
            (Some(window), Ok(messages)) => {
                window.expire(timestamp_micros);
                Some((window, messages))
            }
            // Off, or a layout the log refuses with its own error.
            (None, _) | (Some(_), Err(_)) => None,
        };
        let Some((window, messages)) = messages else {
            let base_offset = log.append(&mut record, timestamp_micros)?;
            let next = log.next_offset();
            drop(log);
            self.head.send_replace(next);
            return Ok(Appended {
                base_offset,
                duplicates: Vec::new(),
            });
        };
        let mut kept: Vec<u128> = Vec::new();
        let mut in_batch: std::collections::HashMap<u128, u64> = std::collections::HashMap::new();
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
        let base_offset = if kept.is_empty() {
            log.next_offset()
        } else {
            if rebuild || !duplicates.is_empty() {
                record = rebuilt(&record, &kept, &duplicates);
            }
            let base = log.append(&mut record, timestamp_micros)?;
            for (position, id) in kept.iter().enumerate() {
                window.remember(*id, base + position as u64, timestamp_micros);
            }
            base
        };
        let next = log.next_offset();
        drop(log);
        if !kept.is_empty() {
            self.head.send_replace(next);
        }
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
        let base_offset = match (kept.is_empty(), duplicates.first()) {
            (true, Some(first)) => first.offset,
            _ => base_offset,
        };
        Ok(Appended {
            base_offset,
            duplicates,
        })
    }

    /// Stored records covering `[from, from + max_messages)`.
    pub(crate) fn read(
        &self,
        from: u64,
        max_messages: u32,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        self.log_read().read(from, max_messages, max_bytes)
    }

    /// The offset the next message will get.
    pub(crate) fn next_offset(&self) -> u64 {
        *self.head.borrow()
    }

    /// The oldest stored offset.
    pub(crate) fn first_offset(&self) -> u64 {
        self.log_read().first_offset()
    }

    /// The first offset appended at or after `timestamp_micros`.
    pub(crate) fn offset_at_timestamp(&self, timestamp_micros: u64) -> Option<u64> {
        self.log_read().offset_at_timestamp(timestamp_micros)
    }

    /// A receiver of the next offset, changed at every append.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// The stored offset of `key` (the last message it handled).
    pub(crate) fn stored_offset(&self, key: ConsumerKey) -> Option<u64> {
        let mut offsets = self
            .offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, id) = offsets.map(key);
        map.get(&id).copied()
    }

    /// The stored offsets as the partition's `offsets.json` holds them.
    pub(crate) fn offsets_json(&self) -> Result<Vec<u8>, StorageError> {
        let offsets = self
            .offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        serde_json::to_vec_pretty(&*offsets).map_err(|e| StorageError::Corrupt {
            path: self.dir.join(OFFSETS_FILE),
            position: 0,
            reason: format!("cannot serialize: {e}"),
        })
    }

    /// Stores `offset` for `key`, durably (atomic file replace).
    pub(crate) fn store_offset(&self, key: ConsumerKey, offset: u64) -> Result<(), StorageError> {
        let mut offsets = self
            .offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, id) = offsets.map(key);
        if map.get(&id) == Some(&offset) {
            return Ok(());
        }
        let previous = map.insert(id, offset);
        let written =
            persist::write_json(&self.dir.join(OFFSETS_FILE), &*offsets, self.sync_offsets);
        if written.is_err() {
            // Not stored: a rebalance must not start from it, nor a later write of
            // another offset persist it.
            let (map, id) = offsets.map(key);
            match previous {
                Some(previous) => map.insert(id, previous),
                None => map.remove(&id),
            };
        }
        written
    }

    /// Deletes the stored offset of `key`; returns whether there was one.
    pub(crate) fn delete_offset(&self, key: ConsumerKey) -> Result<bool, StorageError> {
        let mut offsets = self
            .offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, id) = offsets.map(key);
        if map.remove(&id).is_none() {
            return Ok(false);
        }
        persist::write_json(&self.dir.join(OFFSETS_FILE), &*offsets, self.sync_offsets)?;
        Ok(true)
    }

    /// fsyncs the log when the group-commit interval has passed.
    pub(crate) fn sync_if_due(&self, now: Instant) -> Result<(), StorageError> {
        if self.log_read().sync_due(now) {
            self.log_write().sync()?;
        }
        Ok(())
    }

    /// fsyncs the log.
    pub(crate) fn sync(&self) -> Result<(), StorageError> {
        self.log_write().sync()
    }

    /// Deletes old segments past the retention limits.
    pub(crate) fn apply_retention(
        &self,
        now_micros: u64,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
    ) -> Result<(), StorageError> {
        let report = self
            .log_write()
            .apply_retention(now_micros, max_age, max_bytes)?;
        tracing::debug!(partition = self.id, ?report, "retention applied");
        Ok(())
    }

    /// Deletes every message; offsets are not reused. The deduplication window is
    /// emptied with them: the ids it held name messages that are gone.
    pub(crate) fn purge(&self) -> Result<(), StorageError> {
        let mut log = self.log_write();
        log.purge()?;
        if let Some(window) = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
        {
            window.clear();
        }
        Ok(())
    }

    /// Walks every record checking both checksum levels.
    pub(crate) fn verify(&self) -> Result<VerifyReport, StorageError> {
        self.log_read().verify()
    }

    /// Segment, byte and message counts.
    /// Whether the log refuses appends until the broker is reopened (a failed write
    /// or fsync left its tail unknown).
    pub(crate) fn is_poisoned(&self) -> bool {
        self.log_read().is_poisoned()
    }

    pub(crate) fn stats(&self) -> LogStats {
        self.log_read().stats()
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
            damage = ?report.damage,
            "partition recovered: a torn or damaged tail was cut, earlier records kept"
        );
    }
}
