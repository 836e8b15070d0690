//! The broker: streams → topics → partitions, consumer offsets and groups, persisted
//! metadata. The in-process connector and the TCP front end both call it directly.

mod dedup;
mod groups;
pub(crate) mod layout;
mod offsets;
mod partition;
mod permissions;
pub(crate) mod persist;
mod snapshot;
mod sync;
mod topic;
mod users;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

pub(crate) use self::groups::Group;
use self::layout::{
    GroupMeta, METADATA_FILE, MetadataFile, StreamMeta, TopicMeta, partition_dir, stream_dir,
    topic_dir,
};
pub(crate) use self::offsets::{ConsumerKey, OFFSETS_FILE, load as load_offsets};
pub(crate) use self::partition::{Partition, Stored};
pub(crate) use self::permissions::{
    Access, GlobalPermissions, Permissions, StreamPermissions, TopicPermissions, rules,
};
use self::sync::{SYNC_THREADS, SyncJob, Syncer};
use self::topic::Groups;
pub(crate) use self::topic::{GroupRef, Topic};
pub(crate) use self::users::{Grant, ROOT_USER_ID, UserError, UserInfo, UserRef, Users};
use crate::batch;
use crate::config::{DeduplicationConfig, Durability};
use crate::connector::{Assignment, Retention, TopicSpec};
use crate::error::ConnectorError;
use crate::names::{GroupName, StreamName, TopicName};
use crate::partition::check_partition_count;

use super::storage::{Disk, LogConfig, StorageError};

const LOCK_FILE: &str = ".lock";
/// How often, and how long apart, a held data-directory lock is tried again.
const LOCK_ATTEMPTS: u32 = 20;
const LOCK_RETRY: Duration = Duration::from_millis(10);
const FORMAT_VERSION: u32 = 1;
pub(crate) use crate::partition::MAX_PARTITIONS;

/// Settings of the broker.
#[derive(Debug, Clone)]
pub(crate) struct BrokerConfig {
    pub(crate) data_dir: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) segment_size_bytes: u64,
    pub(crate) deduplication: DeduplicationConfig,
    /// Fault injection: a sleep before every fsync (`embedded.fault_fsync_delay`).
    pub(crate) fault_fsync_delay: Duration,
}

/// A stream or topic named by id or by name (the Iggy protocol allows both).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ident<'a> {
    Id(u32),
    Name(&'a str),
}

/// What the broker knows of a stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamInfo {
    pub(crate) id: u32,
    pub(crate) name: StreamName,
    pub(crate) created_at: u64,
    pub(crate) topics: Vec<Arc<Topic>>,
}

#[derive(Debug)]
struct Stream {
    id: u32,
    name: StreamName,
    created_at: u64,
    topics: BTreeMap<u32, Arc<Topic>>,
    next_topic_id: u32,
}

impl Stream {
    fn find_topic(&self, topic: Ident<'_>) -> Option<&Arc<Topic>> {
        match topic {
            Ident::Id(id) => self.topics.get(&id),
            Ident::Name(name) => self.topics.values().find(|t| t.name().as_str() == name),
        }
    }

    fn info(&self) -> StreamInfo {
        StreamInfo {
            id: self.id,
            name: self.name.clone(),
            created_at: self.created_at,
            topics: self.topics.values().cloned().collect(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    streams: BTreeMap<u32, Stream>,
    next_stream_id: u32,
}

impl State {
    fn find_stream(&self, stream: Ident<'_>) -> Option<&Stream> {
        match stream {
            Ident::Id(id) => self.streams.get(&id),
            Ident::Name(name) => self.streams.values().find(|s| s.name.as_str() == name),
        }
    }

    fn find_stream_mut(&mut self, stream: Ident<'_>) -> Option<&mut Stream> {
        match stream {
            Ident::Id(id) => self.streams.get_mut(&id),
            Ident::Name(name) => self.streams.values_mut().find(|s| s.name.as_str() == name),
        }
    }
}

/// What `/health` says of the storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StorageHealth {
    /// Damaged ranges known (skipped by reads; their records are lost).
    pub(crate) damaged_ranges: u64,
    /// Messages lost in them.
    pub(crate) lost_messages: u64,
    /// Partitions (`stream/topic/partition`) with damage.
    pub(crate) damaged: Vec<String>,
    /// Partitions refusing writes after a failed write or sync.
    pub(crate) poisoned: Vec<String>,
}

/// The embedded broker.
#[derive(Debug)]
pub(crate) struct Broker {
    root: PathBuf,
    config: BrokerConfig,
    /// Held while the broker is open; released by `close` (even if handles remain).
    lock: std::sync::Mutex<Option<File>>,
    state: RwLock<State>,
    /// Every fsync of the partitions goes through it (counted; fault injection).
    disk: Arc<Disk>,
    /// The threads that make the fsyncs.
    syncer: Arc<Syncer>,
    next_member: AtomicU64,
    closed: AtomicBool,
    started_at: u64,
}

fn io_err(context: &str, path: &Path, source: std::io::Error) -> ConnectorError {
    ConnectorError::io(format!("{context} {}", path.display()), source)
}

impl Broker {
    /// Opens the broker in `config.data_dir` (created if missing), recovering every
    /// partition. Only one broker may hold a data directory at a time.
    pub(crate) fn open(config: BrokerConfig) -> Result<Self, ConnectorError> {
        let root = config.data_dir.clone();
        create_private_dir(&root)?;
        let lock_path = root.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err("open", &lock_path, e))?;
        // A lock released a moment ago can still be held by a child process forked
        // in between (it shares the open file until it execs): retry briefly before
        // reporting the directory as in use.
        let mut attempts = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if attempts < LOCK_ATTEMPTS => {
                    attempts += 1;
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(ConnectorError::DataDirInUse { path: root });
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path, e)),
            }
        }
        let tick = match config.durability {
            // A write waits at most one tick before its fsync starts.
            Durability::Interval(interval) => interval / 2,
            Durability::EveryBatch | Durability::Never => Duration::from_secs(1),
        };
        let syncer = Syncer::start(SYNC_THREADS, tick)
            .map_err(|e| ConnectorError::io("start the storage sync threads", e))?;
        let broker = Self {
            root: root.clone(),
            disk: Arc::new(Disk::new(config.fault_fsync_delay)),
            syncer: Arc::new(syncer),
            config,
            lock: std::sync::Mutex::new(Some(lock)),
            state: RwLock::new(State::default()),
            next_member: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            started_at: batch::now_micros(),
        };
        broker.load()?;
        Ok(broker)
    }

    fn load(&self) -> Result<(), ConnectorError> {
        let Some(meta) = persist::read_json::<MetadataFile>(&self.root.join(METADATA_FILE))? else {
            return Ok(());
        };
        if meta.format != FORMAT_VERSION {
            return Err(ConnectorError::config(
                "embedded.data_dir",
                format!(
                    "{} has metadata format {}, this version reads format {FORMAT_VERSION}",
                    self.root.display(),
                    meta.format
                ),
            ));
        }
        let mut state = self.write_state();
        state.next_stream_id = meta.next_stream_id;
        for s in meta.streams {
            let mut topics = BTreeMap::new();
            for t in s.topics {
                if let Err(e) = check_partition_count(t.partitions) {
                    // A damaged count would otherwise create up to 2^32 partitions.
                    return Err(StorageError::Corrupt {
                        path: self.root.join(METADATA_FILE),
                        position: 0,
                        reason: format!("topic {} of stream {}: {e}", t.id, s.id),
                    }
                    .into());
                }
                let partitions = (0..t.partitions)
                    .map(|p| self.open_partition(s.id, t.id, p))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut groups = Groups {
                    next_id: t.next_group_id,
                    ..Groups::default()
                };
                for g in t.groups {
                    groups.by_id.insert(g.id, Group::new(g.id, g.name));
                }
                let retention = Retention {
                    max_age: t.max_age_micros.map(Duration::from_micros),
                    max_size_bytes: t.max_size_bytes,
                };
                let topic = Topic::new(
                    t.id,
                    s.id,
                    s.name.clone(),
                    t.name,
                    t.created_at,
                    partitions,
                    retention,
                    groups,
                );
                topics.insert(t.id, Arc::new(topic));
            }
            state.streams.insert(
                s.id,
                Stream {
                    id: s.id,
                    name: s.name,
                    created_at: s.created_at,
                    topics,
                    next_topic_id: s.next_topic_id,
                },
            );
        }
        Ok(())
    }

    fn open_partition(
        &self,
        stream: u32,
        topic: u32,
        partition: u32,
    ) -> Result<Arc<Partition>, ConnectorError> {
        let dir = partition_dir(&self.root, stream, topic, partition);
        let config = LogConfig {
            partition_id: partition,
            segment_size_bytes: self.config.segment_size_bytes,
            durability: self.config.durability,
        };
        Ok(Partition::open(
            &dir,
            config,
            &self.disk,
            &self.syncer,
            &self.config.deduplication,
        )?)
    }

    fn save(&self, state: &State) -> Result<(), ConnectorError> {
        let meta = Self::metadata(state);
        // Metadata changes are rare: always fsynced (file and directory).
        persist::write_json_on(&self.disk, &self.root.join(METADATA_FILE), &meta)?;
        Ok(())
    }

    /// The metadata file's contents for `state`.
    fn metadata(state: &State) -> MetadataFile {
        MetadataFile {
            format: FORMAT_VERSION,
            next_stream_id: state.next_stream_id,
            streams: state
                .streams
                .values()
                .map(|s| StreamMeta {
                    id: s.id,
                    name: s.name.clone(),
                    created_at: s.created_at,
                    next_topic_id: s.next_topic_id,
                    topics: s
                        .topics
                        .values()
                        .map(|t| {
                            let retention = t.retention();
                            let groups = t.groups();
                            TopicMeta {
                                id: t.id,
                                name: t.name(),
                                created_at: t.created_at,
                                partitions: t.partitions_count(),
                                max_age_micros: retention
                                    .max_age
                                    .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                                max_size_bytes: retention.max_size_bytes,
                                next_group_id: groups.next_id,
                                groups: groups
                                    .by_id
                                    .values()
                                    .map(|g| GroupMeta {
                                        id: g.id,
                                        name: g.name.clone(),
                                    })
                                    .collect(),
                            }
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn ensure_open(&self) -> Result<(), ConnectorError> {
        if self.closed.load(Ordering::Acquire) {
            Err(ConnectorError::NotConnected)
        } else {
            Ok(())
        }
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.root
    }

    /// When the broker was opened (µs since the Unix epoch).
    pub(crate) fn started_at(&self) -> u64 {
        self.started_at
    }

    /// A fresh id for a group member (an in-process consumer or a TCP connection).
    pub(crate) fn next_member_id(&self) -> u64 {
        self.next_member.fetch_add(1, Ordering::Relaxed)
    }

    // ---- streams --------------------------------------------------------------------

    /// Creates a stream.
    pub(crate) fn create_stream(&self, name: StreamName) -> Result<StreamInfo, ConnectorError> {
        self.ensure_open()?;
        let mut state = self.write_state();
        if state.find_stream(Ident::Name(name.as_str())).is_some() {
            return Err(ConnectorError::AlreadyExists {
                what: "stream",
                name: name.to_string(),
            });
        }
        let id = state.next_stream_id;
        state.next_stream_id += 1;
        let stream = Stream {
            id,
            name,
            created_at: batch::now_micros(),
            topics: BTreeMap::new(),
            next_topic_id: 0,
        };
        let info = stream.info();
        state.streams.insert(id, stream);
        if let Err(e) = self.save(&state) {
            state.streams.remove(&id);
            return Err(e);
        }
        Ok(info)
    }

    /// The stream, if it exists.
    pub(crate) fn stream(&self, stream: Ident<'_>) -> Option<StreamInfo> {
        self.read_state().find_stream(stream).map(Stream::info)
    }

    /// Every stream, by id.
    pub(crate) fn streams(&self) -> Vec<StreamInfo> {
        self.read_state()
            .streams
            .values()
            .map(Stream::info)
            .collect()
    }

    /// Deletes a stream with all its topics and data.
    pub(crate) fn delete_stream(&self, stream: Ident<'_>) -> Result<(), ConnectorError> {
        self.ensure_open()?;
        let mut state = self.write_state();
        let id = state
            .find_stream(stream)
            .map(|s| s.id)
            .ok_or_else(|| not_found_stream(stream))?;
        let removed = state.streams.remove(&id);
        self.save(&state)?;
        drop(state);
        for topic in removed.iter().flat_map(|s| s.topics.values()) {
            topic.partitions().iter().for_each(|p| p.retire());
        }
        remove_dir(&stream_dir(&self.root, id))
    }

    /// Renames a stream; its topics follow at once. Renaming a stream to its own
    /// name changes nothing; another stream's name is `AlreadyExists`.
    pub(crate) fn rename_stream(
        &self,
        stream: Ident<'_>,
        name: StreamName,
    ) -> Result<(), ConnectorError> {
        self.ensure_open()?;
        let mut state = self.write_state();
        let id = state
            .find_stream(stream)
            .map(|s| s.id)
            .ok_or_else(|| not_found_stream(stream))?;
        if let Some(other) = state.find_stream(Ident::Name(name.as_str())) {
            if other.id == id {
                return Ok(());
            }
            return Err(ConnectorError::AlreadyExists {
                what: "stream",
                name: name.to_string(),
            });
        }
        let s = state
            .find_stream_mut(Ident::Id(id))
            .ok_or_else(|| not_found_stream(stream))?;
        let before = std::mem::replace(&mut s.name, name);
        if let Err(e) = self.save(&state) {
            if let Some(s) = state.find_stream_mut(Ident::Id(id)) {
                s.name = before;
            }
            return Err(e);
        }
        if let Some(s) = state.find_stream(Ident::Id(id)) {
            for topic in s.topics.values() {
                topic.set_stream_name(s.name.clone());
            }
        }
        Ok(())
    }

    // ---- topics ---------------------------------------------------------------------

    /// Renames a topic. Its own name changes nothing; the name of another topic of
    /// the stream is `AlreadyExists`.
    pub(crate) fn rename_topic(
        &self,
        topic: &Topic,
        name: TopicName,
    ) -> Result<(), ConnectorError> {
        self.ensure_open()?;
        let state = self.write_state();
        let s = state
            .find_stream(Ident::Id(topic.stream_id))
            .ok_or_else(|| not_found_stream(Ident::Id(topic.stream_id)))?;
        if let Some(other) = s.find_topic(Ident::Name(name.as_str())) {
            if other.id == topic.id {
                return Ok(());
            }
            return Err(ConnectorError::AlreadyExists {
                what: "topic",
                name: name.to_string(),
            });
        }
        let before = topic.name();
        topic.set_name(name);
        if let Err(e) = self.save(&state) {
            topic.set_name(before);
            return Err(e);
        }
        Ok(())
    }

    /// Adds `count` partitions at the end of the topic (ids `n..n + count`), as the
    /// Iggy server does, and rebalances every consumer group of the topic: its
    /// members are assigned again over the new count.
    ///
    /// Durability: the new count is in the fsynced metadata file when this
    /// returns. A partition directory left by a partition deleted earlier is
    /// removed first, so a new partition starts empty.
    ///
    /// # Errors
    /// [`ConnectorError::InvalidRequest`] when `count` is 0 or the topic would
    /// pass [`MAX_PARTITIONS`]; I/O errors creating the partitions or saving.
    pub(crate) fn add_partitions(&self, topic: &Topic, count: u32) -> Result<(), ConnectorError> {
        self.ensure_open()?;
        let state = self.write_state();
        let current = topic.partitions();
        let from = current.len() as u32;
        let to = from
            .checked_add(count)
            .filter(|&to| count > 0 && to <= MAX_PARTITIONS)
            .ok_or_else(|| {
                ConnectorError::InvalidRequest(format!(
                    "cannot add {count} partitions to a topic of {from}: a topic has 1 to {MAX_PARTITIONS}"
                ))
            })?;
        let mut partitions = current.to_vec();
        for id in from..to {
            let opened = remove_dir(&partition_dir(&self.root, topic.stream_id, topic.id, id))
                .and_then(|()| self.open_partition(topic.stream_id, topic.id, id));
            match opened {
                Ok(partition) => partitions.push(partition),
                Err(e) => {
                    self.discard_partitions(topic, &partitions[from as usize..]);
                    return Err(e);
                }
            }
        }
        topic.set_partitions(partitions.clone());
        if let Err(e) = self.save(&state) {
            // Not in the metadata file: the new partitions must not take publishes.
            topic.set_partitions(current.to_vec());
            self.discard_partitions(topic, &partitions[from as usize..]);
            return Err(e);
        }
        topic.rebalance_groups(to);
        Ok(())
    }

    /// Removes the last `count` partitions of the topic with their messages and
    /// stored consumer offsets, as the Iggy server does, and rebalances every
    /// consumer group of the topic: members lose the removed partitions.
    ///
    /// Unlike the server, which lets a topic drop to zero partitions, the last
    /// partition is kept: every topic of this broker has 1 to [`MAX_PARTITIONS`].
    ///
    /// Durability: the new count is in the fsynced metadata file when this
    /// returns; the directories are removed after it.
    ///
    /// # Errors
    /// [`ConnectorError::InvalidRequest`] when `count` is 0 or not less than the
    /// topic's partition count; I/O errors saving or removing.
    pub(crate) fn remove_partitions(
        &self,
        topic: &Topic,
        count: u32,
    ) -> Result<(), ConnectorError> {
        self.ensure_open()?;
        let state = self.write_state();
        let current = topic.partitions();
        let from = current.len() as u32;
        if count == 0 || count >= from {
            return Err(ConnectorError::InvalidRequest(format!(
                "cannot remove {count} partitions of a topic of {from}: a topic keeps at least one"
            )));
        }
        let kept = (from - count) as usize;
        topic.set_partitions(current[..kept].to_vec());
        if let Err(e) = self.save(&state) {
            topic.set_partitions(current.to_vec());
            return Err(e);
        }
        topic.rebalance_groups(kept as u32);
        drop(state);
        self.discard_partitions(topic, &current[kept..]);
        Ok(())
    }

    /// Retires partitions that are no longer in the topic and removes their
    /// directories (messages and stored offsets).
    fn discard_partitions(&self, topic: &Topic, partitions: &[Arc<Partition>]) {
        for partition in partitions {
            partition.retire();
            let dir = partition_dir(&self.root, topic.stream_id, topic.id, partition.id);
            if let Err(e) = remove_dir(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted partition");
            }
        }
    }

    /// Creates a topic with `partitions` partitions in an existing stream.
    pub(crate) fn create_topic(
        &self,
        stream: Ident<'_>,
        name: TopicName,
        partitions: u32,
        retention: Retention,
    ) -> Result<Arc<Topic>, ConnectorError> {
        self.ensure_open()?;
        check_partition_count(partitions)?;
        let mut state = self.write_state();
        let s = state
            .find_stream(stream)
            .ok_or_else(|| not_found_stream(stream))?;
        if s.find_topic(Ident::Name(name.as_str())).is_some() {
            return Err(ConnectorError::AlreadyExists {
                what: "topic",
                name: name.to_string(),
            });
        }
        let (stream_id, stream_name, topic_id) = (s.id, s.name.clone(), s.next_topic_id);
        let parts = (0..partitions)
            .map(|p| self.open_partition(stream_id, topic_id, p))
            .collect::<Result<Vec<_>, _>>()?;
        let topic = Arc::new(Topic::new(
            topic_id,
            stream_id,
            stream_name,
            name,
            batch::now_micros(),
            parts,
            retention,
            Groups::default(),
        ));
        let s = state
            .find_stream_mut(Ident::Id(stream_id))
            .ok_or_else(|| not_found_stream(stream))?;
        s.next_topic_id += 1;
        s.topics.insert(topic_id, Arc::clone(&topic));
        if let Err(e) = self.save(&state) {
            // Not in the metadata file, so gone after a restart: it must not take
            // publishes now (they would be acknowledged, then lost).
            if let Some(s) = state.find_stream_mut(Ident::Id(stream_id)) {
                s.topics.remove(&topic_id);
            }
            return Err(e);
        }
        Ok(topic)
    }

    /// The topic, or a typed error naming what is missing.
    pub(crate) fn topic(
        &self,
        stream: Ident<'_>,
        topic: Ident<'_>,
    ) -> Result<Arc<Topic>, ConnectorError> {
        self.ensure_open()?;
        let state = self.read_state();
        let s = state
            .find_stream(stream)
            .ok_or_else(|| not_found_stream(stream))?;
        s.find_topic(topic)
            .cloned()
            .ok_or_else(|| ConnectorError::TopicNotFound {
                stream: s.name.to_string(),
                topic: ident_text(topic),
            })
    }

    /// The topic, if both it and its stream exist.
    pub(crate) fn find_topic(&self, stream: Ident<'_>, topic: Ident<'_>) -> Option<Arc<Topic>> {
        self.read_state()
            .find_stream(stream)
            .and_then(|s| s.find_topic(topic).cloned())
    }

    /// Deletes a topic with its data.
    pub(crate) fn delete_topic(
        &self,
        stream: Ident<'_>,
        topic: Ident<'_>,
    ) -> Result<(), ConnectorError> {
        self.ensure_open()?;
        let mut state = self.write_state();
        let s = state
            .find_stream_mut(stream)
            .ok_or_else(|| not_found_stream(stream))?;
        let stream_id = s.id;
        let t = s
            .find_topic(topic)
            .map(|t| t.id)
            .ok_or_else(|| ConnectorError::TopicNotFound {
                stream: s.name.to_string(),
                topic: ident_text(topic),
            })?;
        let removed = s.topics.remove(&t);
        self.save(&state)?;
        drop(state);
        for partition in removed.iter().flat_map(|t| t.partitions().to_vec()) {
            partition.retire();
        }
        remove_dir(&topic_dir(&self.root, stream_id, t))
    }

    /// Sets a topic's retention (persisted).
    pub(crate) fn set_retention(
        &self,
        topic: &Topic,
        retention: Retention,
    ) -> Result<(), ConnectorError> {
        let state = self.write_state();
        *topic
            .retention
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = retention;
        self.save(&state)
    }

    /// Creates the stream and topic of `spec` when missing; checks the partition
    /// count and applies the retention of an existing one.
    pub(crate) fn ensure_topic(&self, spec: &TopicSpec) -> Result<Arc<Topic>, ConnectorError> {
        let stream = Ident::Name(spec.stream.as_str());
        if self.stream(stream).is_none() {
            match self.create_stream(spec.stream.clone()) {
                Ok(_) | Err(ConnectorError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let topic = match self.find_topic(stream, Ident::Name(spec.topic.as_str())) {
            Some(topic) => topic,
            None => {
                match self.create_topic(stream, spec.topic.clone(), spec.partitions, spec.retention)
                {
                    Ok(topic) => return Ok(topic),
                    Err(ConnectorError::AlreadyExists { .. }) => {
                        self.topic(stream, Ident::Name(spec.topic.as_str()))?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if topic.partitions_count() != spec.partitions {
            return Err(ConnectorError::TopologyMismatch {
                stream: spec.stream.to_string(),
                topic: spec.topic.to_string(),
                message: format!(
                    "the topic has {} partitions, {} were asked for; it is not recreated (that would lose data)",
                    topic.partitions_count(),
                    spec.partitions
                ),
            });
        }
        if topic.retention() != spec.retention {
            self.set_retention(&topic, spec.retention)?;
        }
        Ok(topic)
    }

    // ---- messages -------------------------------------------------------------------

    /// Appends a batch record (whose layout the caller validated) to a partition of
    /// `topic`, leaving out the messages the partition's deduplication window
    /// already holds.
    ///
    /// Durability: on return the batch survives the death of the process; under
    /// `every_batch` it has been fsynced too (concurrent appends share the fsync,
    /// made on the broker's sync threads: the caller's runtime is not blocked), and
    /// so has the stored copy of each duplicate. Under every policy, a segment
    /// closed by an earlier append is sealed before this batch is written (the
    /// caller awaits that sync after each roll).
    pub(crate) async fn append(
        &self,
        topic: &Topic,
        partition: u32,
        record: Vec<u8>,
    ) -> Result<Stored, ConnectorError> {
        self.ensure_open()?;
        let partition = topic.partition(partition)?;
        // The segment the previous roll closed is sealed first: the seals of
        // stored data never pile up beyond one segment (see `wait_sealed`).
        partition.wait_sealed().await?;
        let stored = partition.append(record, batch::now_micros())?;
        if partition.acknowledges_after_fsync() {
            partition.wait_durable(stored.end_offset).await?;
        }
        Ok(stored)
    }

    /// fsyncs every partition's log and stored offsets now (on the sync threads,
    /// in parallel) and waits for it: once it returns, everything appended and
    /// committed before the call survives power loss, whatever the policy.
    ///
    /// # Errors
    /// The first partition's failure ([`StorageError::Poisoned`]).
    pub(crate) async fn flush(&self) -> Result<(), ConnectorError> {
        self.ensure_open()?;
        let partitions: Vec<Arc<Partition>> = self
            .all_topics()
            .iter()
            .flat_map(|t| t.partitions().to_vec())
            .collect();
        let results = futures::future::join_all(partitions.iter().map(|p| p.flush())).await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
            .map_err(ConnectorError::from)
    }

    /// fsyncs counted so far (data, indexes, seals, directories, offsets journals,
    /// metadata), for metrics.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.disk.fsyncs()
    }

    /// Damage and poisoned partitions, for `/health`.
    pub(crate) fn storage_health(&self) -> StorageHealth {
        let mut health = StorageHealth::default();
        for topic in self.all_topics() {
            for partition in topic.partitions().iter() {
                let name = format!("{}/{}/{}", topic.stream_name(), topic.name(), partition.id);
                let damage = partition.damage();
                if !damage.is_empty() {
                    health.damaged_ranges += damage.len() as u64;
                    health.lost_messages += damage
                        .iter()
                        .map(super::storage::SegmentDamage::lost_messages)
                        .sum::<u64>();
                    health.damaged.push(name.clone());
                }
                if partition.is_poisoned() {
                    health.poisoned.push(name);
                }
            }
        }
        health
    }

    // ---- consumer groups ------------------------------------------------------------

    /// Creates a consumer group on `topic`; returns its id.
    pub(crate) fn create_group(
        &self,
        topic: &Topic,
        name: GroupName,
    ) -> Result<u32, ConnectorError> {
        self.ensure_open()?;
        let state = self.write_state();
        let mut groups = topic.groups();
        if groups.find(GroupRef::Name(name.as_str())).is_some() {
            return Err(ConnectorError::AlreadyExists {
                what: "consumer group",
                name: name.to_string(),
            });
        }
        let id = groups.next_id;
        groups.next_id += 1;
        groups.by_id.insert(id, Group::new(id, name));
        drop(groups);
        if let Err(e) = self.save(&state) {
            // Not in the metadata file: its commits would be orphaned by a restart.
            topic.groups().by_id.remove(&id);
            return Err(e);
        }
        Ok(id)
    }

    /// Deletes a consumer group and its stored offsets.
    pub(crate) fn delete_group(
        &self,
        topic: &Topic,
        group: GroupRef<'_>,
    ) -> Result<(), ConnectorError> {
        self.ensure_open()?;
        let state = self.write_state();
        let mut groups = topic.groups();
        let id = groups
            .find(group)
            .map(|g| g.id)
            .ok_or_else(|| topic.group_not_found(&group_text(group)))?;
        groups.by_id.remove(&id);
        drop(groups);
        self.save(&state)?;
        drop(state);
        for partition in topic.partitions().iter() {
            partition.delete_offset(ConsumerKey::Group(id))?;
        }
        Ok(())
    }

    /// Adds `member` to the group and rebalances; returns its assignment.
    pub(crate) fn join_group(
        &self,
        topic: &Topic,
        group: GroupRef<'_>,
        member: u64,
    ) -> Result<Assignment, ConnectorError> {
        self.ensure_open()?;
        let mut groups = topic.groups();
        let g = groups
            .find_mut(group)
            .ok_or_else(|| topic.group_not_found(&group_text(group)))?;
        g.join(member, topic.partitions_count());
        Ok(g.assignment(member).unwrap_or_default())
    }

    /// Removes `member` from the group and rebalances; returns whether it was one.
    pub(crate) fn leave_group(
        &self,
        topic: &Topic,
        group: GroupRef<'_>,
        member: u64,
    ) -> Result<bool, ConnectorError> {
        let mut groups = topic.groups();
        let g = groups
            .find_mut(group)
            .ok_or_else(|| topic.group_not_found(&group_text(group)))?;
        Ok(g.leave(member, topic.partitions_count()))
    }

    /// Every topic of every stream.
    /// The partitions whose log is poisoned (refuses appends until the broker is
    /// reopened), as (stream, topic, partition).
    pub(crate) fn unwritable_partitions(&self) -> Vec<(StreamName, TopicName, u32)> {
        self.all_topics()
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions()
                    .iter()
                    .filter(|p| p.is_poisoned())
                    .map(|p| (topic.stream_name(), topic.name(), p.id))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub(crate) fn all_topics(&self) -> Vec<Arc<Topic>> {
        self.read_state()
            .streams
            .values()
            .flat_map(|s| s.topics.values().cloned())
            .collect()
    }

    // ---- maintenance ----------------------------------------------------------------

    /// Retention: deletes the segments past each topic's limits (files removed
    /// without the partitions' locks). Syncs are not made here: the sync threads
    /// make them. Blocking: call it from a thread that may block.
    pub(crate) fn maintain(&self) {
        let now_micros = batch::now_micros();
        for topic in self.all_topics() {
            let limits = topic.retention();
            if limits.max_age.is_none() && limits.max_size_bytes.is_none() {
                continue;
            }
            let per_partition = limits
                .max_size_bytes
                .map(|b| b / u64::from(topic.partitions_count().max(1)));
            for partition in topic.partitions().iter() {
                if let Err(e) = partition.apply_retention(now_micros, limits.max_age, per_partition)
                {
                    tracing::error!(topic = %topic.name(), partition = partition.id, error = %crate::error_chain(&e), "retention failed");
                }
            }
        }
    }

    /// Forces every partition to stable storage (in parallel on the sync threads,
    /// offsets journals compacted into `offsets.json`), stops the sync threads and
    /// refuses further calls. Blocking: call it from a thread that may block.
    pub(crate) fn close(&self) -> Result<(), ConnectorError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let partitions: Vec<(Arc<Topic>, Arc<Partition>)> = self
            .all_topics()
            .into_iter()
            .flat_map(|t| {
                t.partitions()
                    .iter()
                    .map(|p| (Arc::clone(&t), Arc::clone(p)))
                    .collect::<Vec<_>>()
            })
            .collect();
        let jobs: Vec<Arc<dyn SyncJob>> = partitions
            .iter()
            .map(|(_, p)| {
                p.begin_close();
                let job = p.as_job();
                self.syncer.request(Arc::clone(&job));
                job
            })
            .collect();
        self.syncer.wait_idle(&jobs);
        self.syncer.stop();
        let mut first_error = None;
        for (topic, partition) in &partitions {
            if let Some(cause) = partition.poisoned() {
                tracing::error!(topic = %topic.name(), partition = partition.id, error = %crate::error_chain(&*cause), "final fsync failed");
                first_error.get_or_insert(StorageError::Poisoned {
                    path: partition_dir(&self.root, topic.stream_id, topic.id, partition.id),
                    cause,
                });
            }
        }
        // Release the data directory for the next broker.
        self.lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Without `close` (a crash, as far as durability goes): nothing more is
        // fsynced, and the sync threads end.
        self.syncer.abandon();
    }
}

fn not_found_stream(stream: Ident<'_>) -> ConnectorError {
    ConnectorError::StreamNotFound {
        stream: ident_text(stream),
    }
}

fn ident_text(ident: Ident<'_>) -> String {
    match ident {
        Ident::Id(id) => format!("#{id}"),
        Ident::Name(name) => name.to_owned(),
    }
}

fn group_text(group: GroupRef<'_>) -> String {
    match group {
        GroupRef::Id(id) => format!("#{id}"),
        GroupRef::Name(name) => name.to_owned(),
    }
}

fn remove_dir(dir: &Path) -> Result<(), ConnectorError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", dir, e)),
    }
}

/// Creates `dir` (and parents) readable by the owner only; the parent of a
/// directory created is fsynced, so that the new data directory survives a crash.
fn create_private_dir(dir: &Path) -> Result<(), ConnectorError> {
    use std::os::unix::fs::DirBuilderExt;
    let existed = dir.is_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("create data directory", dir, e))?;
    if !existed {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        persist::sync_dir(parent)?;
    }
    Ok(())
}
