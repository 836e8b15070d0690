//! The stored consumer offsets of one partition: an append-only journal of small
//! fixed-size records, compacted in the background into `offsets.json`.
//!
//! # Files
//!
//! - `offsets.json`: the compacted state, written atomically (temporary file,
//!   fsync, rename, fsync of the directory): the offsets of plain consumers and of
//!   groups, the journal generation it was compacted from, and the partition's
//!   durable offset (see below). The format of earlier versions (offsets only) reads
//!   as generation 0.
//! - `offsets.{generation:020}.journal`: what changed since, one 24-byte record per
//!   change: `[checksum u64][kind u8][0 u8; 3][id u32][value u64]`, little endian,
//!   the checksum an XXH3-64 of the 16 bytes after it. Kinds: 1 a consumer's offset,
//!   2 a group's offset, 3 and 4 their deletion, 5 the durable offset.
//!
//! A commit is one `write` of one record to the journal (no rewrite of any file), so
//! once it returns it survives the death of the process; it is fsynced with others
//! (group commit) by the broker's sync threads: before the commit returns under
//! `every_batch`, at the next tick under `interval`, at compaction and shutdown
//! under `never`.
//!
//! # Loading
//!
//! `offsets.json`, then every journal of its generation or later, oldest first, in
//! record order. A record that fails its checksum is skipped (it costs that one
//! change: an older offset of that consumer applies, so its messages are delivered
//! again); an incomplete record at the end of the newest journal (a torn write) is
//! cut off before anything is appended after it.
//!
//! # Compaction
//!
//! Once the journal holds [`COMPACT_AFTER`] records, and at shutdown, the sync
//! thread starts a journal of the next generation (new commits go there), then
//! writes `offsets.json` with the state as of the switch and that generation, then
//! deletes the older journals. A crash at any point leaves files that load to the
//! same state: before the new `offsets.json`, its generation's journals are all
//! replayed; after it, the older ones are ignored.
//!
//! # The durable offset
//!
//! After each fsync of the partition's log the sync thread records the offset the
//! fsync covered (kind 5), made durable with the journal's next fsync. Recovery
//! uses it to tell a torn tail (never fsynced: cut off, its offsets given again)
//! from damage to records that were fsynced (kept aside as a gap; their offsets are
//! never given again).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use twox_hash::XxHash3_64;

use super::persist;
use crate::embedded::StorageError;
use crate::embedded::storage::{Disk, copy_io_error};

/// Name of the compacted offsets file.
pub(crate) const OFFSETS_FILE: &str = "offsets.json";
/// Journal records after which the journal is compacted.
pub(crate) const COMPACT_AFTER: u64 = 16 * 1024;
/// Bytes of a journal record.
const RECORD: usize = 24;
const KIND_CONSUMER: u8 = 1;
const KIND_GROUP: u8 = 2;
const KIND_DELETE_CONSUMER: u8 = 3;
const KIND_DELETE_GROUP: u8 = 4;
const KIND_DURABLE: u8 = 5;

/// Whose stored offset: a plain consumer (by numeric id) or a consumer group (by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ConsumerKey {
    /// A single consumer.
    Consumer(u32),
    /// A consumer group.
    Group(u32),
}

/// The state: what `offsets.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredOffsets {
    #[serde(default)]
    consumers: BTreeMap<u32, u64>,
    #[serde(default)]
    groups: BTreeMap<u32, u64>,
    /// The journal generation the state was compacted from (0 for files written by
    /// earlier versions).
    #[serde(default, skip_serializing_if = "is_zero")]
    generation: u64,
    /// The partition's durable offset as last recorded (see the module docs).
    #[serde(default, skip_serializing_if = "is_zero")]
    durable_offset: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StoredOffsets {
    fn map(&mut self, key: ConsumerKey) -> (&mut BTreeMap<u32, u64>, u32) {
        match key {
            ConsumerKey::Consumer(id) => (&mut self.consumers, id),
            ConsumerKey::Group(id) => (&mut self.groups, id),
        }
    }

    fn get(&self, key: ConsumerKey) -> Option<u64> {
        match key {
            ConsumerKey::Consumer(id) => self.consumers.get(&id).copied(),
            ConsumerKey::Group(id) => self.groups.get(&id).copied(),
        }
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Store(key, offset) => {
                let (map, id) = self.map(key);
                map.insert(id, offset);
            }
            Record::Delete(key) => {
                let (map, id) = self.map(key);
                map.remove(&id);
            }
            Record::Durable(offset) => self.durable_offset = self.durable_offset.max(offset),
        }
    }

    /// The stored offsets of standalone consumers, by consumer id (the migration
    /// copies them).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn consumers(&self) -> &BTreeMap<u32, u64> {
        &self.consumers
    }

    /// Only the consumer and group offsets, `groups` restricted to `known` when
    /// given: the `offsets.json` of a backup.
    pub(crate) fn offsets_only(&self, known: Option<&[u32]>) -> Self {
        let mut out = Self {
            consumers: self.consumers.clone(),
            groups: self.groups.clone(),
            ..Self::default()
        };
        if let Some(known) = known {
            out.groups.retain(|id, _| known.contains(id));
        }
        out
    }
}

/// One change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Store(ConsumerKey, u64),
    Delete(ConsumerKey),
    Durable(u64),
}

impl Record {
    fn encode(self) -> [u8; RECORD] {
        let (kind, id, value) = match self {
            Self::Store(ConsumerKey::Consumer(id), v) => (KIND_CONSUMER, id, v),
            Self::Store(ConsumerKey::Group(id), v) => (KIND_GROUP, id, v),
            Self::Delete(ConsumerKey::Consumer(id)) => (KIND_DELETE_CONSUMER, id, 0),
            Self::Delete(ConsumerKey::Group(id)) => (KIND_DELETE_GROUP, id, 0),
            Self::Durable(v) => (KIND_DURABLE, 0, v),
        };
        let mut out = [0u8; RECORD];
        out[8] = kind;
        out[12..16].copy_from_slice(&id.to_le_bytes());
        out[16..24].copy_from_slice(&value.to_le_bytes());
        let checksum = XxHash3_64::oneshot(&out[8..]);
        out[..8].copy_from_slice(&checksum.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let field = |range: std::ops::Range<usize>| bytes.get(range);
        let checksum = u64::from_le_bytes(field(0..8)?.try_into().ok()?);
        let sealed = field(8..RECORD)?;
        if XxHash3_64::oneshot(sealed) != checksum || field(9..12)? != [0, 0, 0] {
            return None;
        }
        let id = u32::from_le_bytes(field(12..16)?.try_into().ok()?);
        let value = u64::from_le_bytes(field(16..24)?.try_into().ok()?);
        Some(match *field(8..9)?.first()? {
            KIND_CONSUMER => Self::Store(ConsumerKey::Consumer(id), value),
            KIND_GROUP => Self::Store(ConsumerKey::Group(id), value),
            KIND_DELETE_CONSUMER => Self::Delete(ConsumerKey::Consumer(id)),
            KIND_DELETE_GROUP => Self::Delete(ConsumerKey::Group(id)),
            KIND_DURABLE => Self::Durable(value),
            _ => return None,
        })
    }
}

fn journal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("offsets.{generation:020}.journal"))
}

fn parse_journal_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("offsets.")?.strip_suffix(".journal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The journals in `dir`, by generation.
fn list_journals(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        if let Some(generation) = entry.file_name().to_str().and_then(parse_journal_name) {
            out.push((generation, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// What loading found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LoadReport {
    /// Records replayed from journals.
    pub(crate) replayed: u64,
    /// Records skipped because they failed their checksum.
    pub(crate) damaged: u64,
    /// Bytes of an incomplete or damaged tail cut from the newest journal.
    pub(crate) torn_bytes: u64,
}

/// The records of one journal file: the decoded ones, and where its valid prefix
/// of whole records ends.
fn read_journal(path: &Path, report: &mut LoadReport) -> Result<(Vec<Record>, u64), StorageError> {
    let Some(bytes) = persist::read_bounded(path)? else {
        return Ok((Vec::new(), 0));
    };
    let mut records = Vec::with_capacity(bytes.len() / RECORD);
    let mut valid_end = 0u64;
    let mut skipped = 0u64;
    for (k, chunk) in bytes.chunks(RECORD).enumerate() {
        match (chunk.len() == RECORD)
            .then(|| Record::decode(chunk))
            .flatten()
        {
            Some(record) => {
                records.push(record);
                report.damaged += skipped;
                skipped = 0;
                valid_end = ((k + 1) * RECORD) as u64;
            }
            None => skipped += 1,
        }
    }
    report.replayed += records.len() as u64;
    Ok((records, valid_end))
}

/// Loads the state of `dir` without changing anything (offline tools, backups).
pub(crate) fn load(dir: &Path) -> Result<Option<StoredOffsets>, StorageError> {
    let snapshot: Option<StoredOffsets> = persist::read_json(&dir.join(OFFSETS_FILE))?;
    let journals = list_journals(dir)?;
    if snapshot.is_none() && journals.is_empty() {
        return Ok(None);
    }
    let mut state = snapshot.unwrap_or_default();
    let mut report = LoadReport::default();
    for (generation, path) in journals {
        if generation >= state.generation {
            for record in read_journal(&path, &mut report)?.0 {
                state.apply(record);
            }
        }
    }
    Ok(Some(state))
}

#[derive(Debug)]
struct Journal {
    generation: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes of whole records in the file.
    len: u64,
    /// Records in this generation.
    records: u64,
}

impl Journal {
    fn open(dir: &Path, generation: u64, valid_len: Option<u64>) -> Result<Self, StorageError> {
        let path = journal_path(dir, generation);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StorageError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io("stat", &path, e))?
            .len();
        let valid = valid_len.unwrap_or(len).min(len);
        if valid < len {
            file.set_len(valid)
                .map_err(|e| StorageError::io("truncate", &path, e))?;
        }
        Ok(Self {
            generation,
            path,
            file: Arc::new(file),
            len: valid,
            records: valid / RECORD as u64,
        })
    }
}

#[derive(Debug)]
struct Inner {
    state: StoredOffsets,
    journal: Journal,
    /// Records written since the store was opened.
    written: u64,
    /// Records written up to the last fsync of the journal (or compaction).
    synced: u64,
    /// Whether an unsynced record is a commit (not only a durable-offset checkpoint).
    commits_unsynced: bool,
    /// Set when a failed write or fsync left the journal's tail unknown.
    poisoned: Option<Arc<StorageError>>,
}

/// The stored consumer offsets of one partition.
#[derive(Debug)]
pub(crate) struct OffsetStore {
    dir: PathBuf,
    disk: Arc<Disk>,
    inner: Mutex<Inner>,
}

/// A journal fsync to make, taken under the store's lock and made without it.
#[derive(Debug)]
pub(crate) struct JournalSync {
    file: Arc<File>,
    path: PathBuf,
    written: u64,
}

impl OffsetStore {
    /// Opens (loads) the offsets stored in `dir`, which exists. Stale journals
    /// (older than `offsets.json`) are deleted; a torn record at the end of the
    /// newest journal is cut off.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when `offsets.json` does not decode (the broker does
    /// not guess where consumers are); [`StorageError::Io`].
    pub(crate) fn open(dir: &Path, disk: Arc<Disk>) -> Result<(Self, LoadReport), StorageError> {
        let mut state: StoredOffsets =
            persist::read_json(&dir.join(OFFSETS_FILE))?.unwrap_or_default();
        let mut report = LoadReport::default();
        let mut current = None;
        for (generation, path) in list_journals(dir)? {
            if generation < state.generation {
                remove_file(&path)?;
                continue;
            }
            let (records, valid_end) = read_journal(&path, &mut report)?;
            for record in records {
                state.apply(record);
            }
            let len = fs::metadata(&path)
                .map_err(|e| StorageError::io("stat", &path, e))?
                .len();
            report.torn_bytes = len.saturating_sub(valid_end);
            current = Some((generation, valid_end));
        }
        let (generation, valid) = current.unwrap_or((state.generation, 0));
        let journal = Journal::open(dir, generation, Some(valid))?;
        if report.torn_bytes > 0 {
            tracing::warn!(
                path = %journal.path.display(),
                bytes = report.torn_bytes,
                "a torn record at the end of the offsets journal was cut off"
            );
        }
        if report.damaged > 0 {
            tracing::warn!(
                dir = %dir.display(),
                records = report.damaged,
                "damaged offsets-journal records skipped (their consumers resume earlier)"
            );
        }
        let inner = Inner {
            state,
            journal,
            written: 0,
            synced: 0,
            commits_unsynced: false,
            poisoned: None,
        };
        Ok((
            Self {
                dir: dir.to_owned(),
                disk,
                inner: Mutex::new(inner),
            },
            report,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored offset of `key`.
    pub(crate) fn get(&self, key: ConsumerKey) -> Option<u64> {
        self.lock().state.get(key)
    }

    /// The durable offset last recorded.
    pub(crate) fn durable_offset(&self) -> u64 {
        self.lock().state.durable_offset
    }

    /// A copy of the state.
    pub(crate) fn state(&self) -> StoredOffsets {
        self.lock().state.clone()
    }

    /// Stores `offset` for `key` with one journal write. Returns the record's number
    /// (for [`synced`](Self::synced)), or `None` when `key` already had this offset.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the write fails (nothing is stored); a write that
    /// cannot be cut off again poisons the store ([`StorageError::Poisoned`]).
    pub(crate) fn store(&self, key: ConsumerKey, offset: u64) -> Result<Option<u64>, StorageError> {
        let mut inner = self.lock();
        if inner.state.get(key) == Some(offset) {
            return Ok(None);
        }
        let seq = inner.write(Record::Store(key, offset))?;
        inner.commits_unsynced = true;
        Ok(Some(seq))
    }

    /// Deletes the stored offset of `key`; returns the record's number, or `None`
    /// when there was none.
    ///
    /// # Errors
    /// As [`store`](Self::store).
    pub(crate) fn delete(&self, key: ConsumerKey) -> Result<Option<u64>, StorageError> {
        let mut inner = self.lock();
        if inner.state.get(key).is_none() {
            return Ok(None);
        }
        let seq = inner.write(Record::Delete(key))?;
        inner.commits_unsynced = true;
        Ok(Some(seq))
    }

    /// Lowers every stored offset at or past `next_offset` (a log whose tail was
    /// lost after they were stored) to the last offset the log covers, durably in
    /// the journal. Returns how many were lowered.
    ///
    /// # Errors
    /// As [`store`](Self::store).
    pub(crate) fn clamp_to(&self, next_offset: u64) -> Result<usize, StorageError> {
        let mut inner = self.lock();
        let keys: Vec<(ConsumerKey, u64)> = inner
            .state
            .consumers
            .iter()
            .map(|(&id, &o)| (ConsumerKey::Consumer(id), o))
            .chain(
                inner
                    .state
                    .groups
                    .iter()
                    .map(|(&id, &o)| (ConsumerKey::Group(id), o)),
            )
            .filter(|&(_, offset)| offset >= next_offset)
            .collect();
        for &(key, _) in &keys {
            let record = match next_offset.checked_sub(1) {
                Some(last) => Record::Store(key, last),
                None => Record::Delete(key),
            };
            inner.write(record)?;
        }
        if !keys.is_empty() {
            inner.commits_unsynced = true;
        }
        Ok(keys.len())
    }

    /// Records that the partition's log is durable up to `offset` (no fsync: it
    /// becomes durable with the journal's next one). No-op when not higher than
    /// the last one recorded.
    ///
    /// # Errors
    /// As [`store`](Self::store).
    pub(crate) fn record_durable(&self, offset: u64) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if offset > inner.state.durable_offset {
            inner.write(Record::Durable(offset))?;
        }
        Ok(())
    }

    /// The number of the last record written.
    pub(crate) fn written(&self) -> u64 {
        self.lock().written
    }

    /// The number of the last record known to be on stable storage.
    pub(crate) fn synced(&self) -> u64 {
        self.lock().synced
    }

    /// Whether records are waiting for an fsync: commits (`commits`), or only
    /// durable-offset checkpoints.
    pub(crate) fn unsynced(&self) -> Option<bool> {
        let inner = self.lock();
        (inner.written > inner.synced).then_some(inner.commits_unsynced)
    }

    /// Whether the journal is long enough to be compacted.
    pub(crate) fn compaction_due(&self) -> bool {
        self.lock().journal.records >= COMPACT_AFTER
    }

    /// The error that poisoned the store, if any.
    pub(crate) fn poisoned(&self) -> Option<Arc<StorageError>> {
        self.lock().poisoned.clone()
    }

    /// The fsync covering every record written so far, if any is unsynced.
    pub(crate) fn begin_sync(&self) -> Option<JournalSync> {
        let inner = self.lock();
        (inner.written > inner.synced && inner.poisoned.is_none()).then(|| JournalSync {
            file: Arc::clone(&inner.journal.file),
            path: inner.journal.path.clone(),
            written: inner.written,
        })
    }

    /// Makes the fsync of `sync` (no lock held) and records its outcome; a failed
    /// fsync poisons the store.
    ///
    /// # Errors
    /// [`StorageError::Io`] from the fsync.
    pub(crate) fn sync(&self, sync: JournalSync) -> Result<(), StorageError> {
        let result = self.disk.sync_data(&sync.file, &sync.path);
        let mut inner = self.lock();
        match result {
            Ok(()) => {
                if sync.written >= inner.written {
                    inner.commits_unsynced = false;
                }
                inner.synced = inner.synced.max(sync.written);
                Ok(())
            }
            Err(e) => {
                let e = Arc::new(e);
                inner.poisoned.get_or_insert_with(|| Arc::clone(&e));
                Err(poisoned(&inner.journal.path, e))
            }
        }
    }

    /// Compacts: switches to a journal of the next generation, writes the state as
    /// of the switch to `offsets.json` (fsynced, with its directory), deletes the
    /// older journals. Every record written before the switch is then durable.
    /// Called by the sync thread, never concurrently with [`sync`](Self::sync).
    ///
    /// # Errors
    /// [`StorageError::Io`]; the store keeps working on the new journal (records of
    /// the old ones are replayed at the next open until a compaction succeeds).
    pub(crate) fn compact(&self) -> Result<(), StorageError> {
        let next_generation = self.lock().journal.generation.saturating_add(1);
        let fresh = Journal::open(&self.dir, next_generation, Some(0))?;
        let (state, written) = {
            let mut inner = self.lock();
            if let Some(e) = &inner.poisoned {
                return Err(poisoned(&inner.journal.path, Arc::clone(e)));
            }
            inner.journal = fresh;
            inner.state.generation = next_generation;
            (inner.state.clone(), inner.written)
        };
        self.disk.sync_dir(&self.dir)?;
        persist::write_json_on(&self.disk, &self.dir.join(OFFSETS_FILE), &state)?;
        {
            let mut inner = self.lock();
            inner.synced = inner.synced.max(written);
            if inner.synced >= inner.written {
                inner.commits_unsynced = false;
            }
        }
        for (generation, path) in list_journals(&self.dir)? {
            if generation < next_generation {
                remove_file(&path)?;
            }
        }
        Ok(())
    }
}

impl Inner {
    /// Appends `record` with one write and applies it; returns its number.
    fn write(&mut self, record: Record) -> Result<u64, StorageError> {
        if let Some(e) = &self.poisoned {
            return Err(poisoned(&self.journal.path, Arc::clone(e)));
        }
        let bytes = record.encode();
        if let Err(e) = (&*self.journal.file).write_all(&bytes) {
            // A partial record would shift every later one: cut it off again; if
            // that fails, this caller gets the write's error and later ones
            // `Poisoned` with it as the cause.
            if self.journal.file.set_len(self.journal.len).is_err() {
                let cause = StorageError::io("write", &self.journal.path, copy_io_error(&e));
                self.poisoned = Some(Arc::new(cause));
            }
            return Err(StorageError::io("write", &self.journal.path, e));
        }
        self.journal.len += RECORD as u64;
        self.journal.records += 1;
        self.state.apply(record);
        self.written += 1;
        Ok(self.written)
    }
}

fn poisoned(path: &Path, cause: Arc<StorageError>) -> StorageError {
    StorageError::Poisoned {
        path: path.to_owned(),
        cause,
    }
}

fn remove_file(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> OffsetStore {
        OffsetStore::open(dir, Arc::new(Disk::default())).unwrap().0
    }

    #[test]
    fn records_roundtrip_and_damage_is_detected() {
        for record in [
            Record::Store(ConsumerKey::Consumer(7), 42),
            Record::Store(ConsumerKey::Group(u32::MAX), u64::MAX),
            Record::Delete(ConsumerKey::Group(3)),
            Record::Durable(1000),
        ] {
            let bytes = record.encode();
            assert_eq!(Record::decode(&bytes), Some(record));
            for i in 0..RECORD {
                let mut flipped = bytes;
                flipped[i] ^= 0x01;
                assert_eq!(Record::decode(&flipped), None, "byte {i}");
            }
        }
        assert_eq!(Record::decode(&[0u8; RECORD]), None);
    }

    #[test]
    fn commits_survive_reopening_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(store.store(ConsumerKey::Group(1), 10).unwrap(), Some(1));
        assert_eq!(store.store(ConsumerKey::Group(1), 10).unwrap(), None);
        store.store(ConsumerKey::Consumer(2), 5).unwrap();
        store.delete(ConsumerKey::Consumer(2)).unwrap();
        store.store(ConsumerKey::Group(1), 12).unwrap();
        store.record_durable(30).unwrap();
        drop(store);

        let store = open(dir.path());
        assert_eq!(store.get(ConsumerKey::Group(1)), Some(12));
        assert_eq!(store.get(ConsumerKey::Consumer(2)), None);
        assert_eq!(store.durable_offset(), 30);
        store.compact().unwrap();
        store.store(ConsumerKey::Group(1), 13).unwrap();
        drop(store);
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.contains(&format!("offsets.{:020}.journal", 1)),
            "{names:?}"
        );
        assert!(
            !names.contains(&format!("offsets.{:020}.journal", 0)),
            "{names:?}"
        );

        let store = open(dir.path());
        assert_eq!(store.get(ConsumerKey::Group(1)), Some(13));
        assert_eq!(store.durable_offset(), 30);
        assert_eq!(load(dir.path()).unwrap().unwrap(), store.state());
    }

    #[test]
    fn a_crash_inside_compaction_loads_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.store(ConsumerKey::Group(1), 10).unwrap();
        drop(store);
        // The next generation's journal exists (commits went there) but
        // offsets.json was not rewritten yet.
        let fresh = journal_path(dir.path(), 1);
        fs::write(&fresh, Record::Store(ConsumerKey::Group(1), 11).encode()).unwrap();
        let store = open(dir.path());
        assert_eq!(store.get(ConsumerKey::Group(1)), Some(11));
        store.store(ConsumerKey::Group(2), 1).unwrap();
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.get(ConsumerKey::Group(1)), Some(11));
        assert_eq!(store.get(ConsumerKey::Group(2)), Some(1));
    }

    #[test]
    fn torn_and_damaged_records_cost_only_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for offset in 1..=4 {
            store.store(ConsumerKey::Group(1), offset).unwrap();
        }
        store.store(ConsumerKey::Group(2), 9).unwrap();
        drop(store);
        let path = journal_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        // Damage the record of offset 4 (the fourth) and tear a fifth half-written.
        bytes[3 * RECORD + 20] ^= 0xFF;
        bytes.extend_from_slice(&Record::Store(ConsumerKey::Group(2), 99).encode()[..10]);
        fs::write(&path, &bytes).unwrap();

        let (store, report) = OffsetStore::open(dir.path(), Arc::new(Disk::default())).unwrap();
        assert_eq!(report.damaged, 1);
        assert_eq!(report.torn_bytes, 10);
        assert_eq!(
            store.get(ConsumerKey::Group(1)),
            Some(3),
            "the older offset applies"
        );
        assert_eq!(
            store.get(ConsumerKey::Group(2)),
            Some(9),
            "later records are kept"
        );
        store.store(ConsumerKey::Group(2), 10).unwrap();
        drop(store);
        assert_eq!(fs::metadata(&path).unwrap().len() % RECORD as u64, 0);
        assert_eq!(open(dir.path()).get(ConsumerKey::Group(2)), Some(10));
    }

    #[test]
    fn clamping_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.store(ConsumerKey::Group(1), 50).unwrap();
        store.store(ConsumerKey::Consumer(1), 5).unwrap();
        store.store(ConsumerKey::Consumer(2), 9).unwrap();
        assert_eq!(store.clamp_to(8).unwrap(), 2);
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.get(ConsumerKey::Group(1)), Some(7));
        assert_eq!(store.get(ConsumerKey::Consumer(1)), Some(5));
        assert_eq!(store.get(ConsumerKey::Consumer(2)), Some(7));
        assert_eq!(store.clamp_to(0).unwrap(), 3);
        assert_eq!(store.get(ConsumerKey::Group(1)), None);
    }

    #[test]
    fn a_backup_keeps_only_the_offsets_of_known_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.store(ConsumerKey::Consumer(7), 3).unwrap();
        store.store(ConsumerKey::Group(0), 5).unwrap();
        store.store(ConsumerKey::Group(1), 9).unwrap();
        store.record_durable(40).unwrap();
        let kept = serde_json::to_value(store.state().offsets_only(Some(&[0]))).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({"consumers": {"7": 3}, "groups": {"0": 5}})
        );
    }

    #[test]
    fn files_of_earlier_versions_load() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(OFFSETS_FILE),
            br#"{"consumers": {"3": 4}, "groups": {"0": 17}}"#,
        )
        .unwrap();
        let store = open(dir.path());
        assert_eq!(store.get(ConsumerKey::Group(0)), Some(17));
        assert_eq!(store.get(ConsumerKey::Consumer(3)), Some(4));
    }
}
