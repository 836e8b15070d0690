//! Copying an embedded data directory to a remote Iggy server: streams, topics, every
//! message of every partition, consumer-group offsets and standalone consumer
//! offsets. Resumable.
//!
//! What a copied message keeps, exactly: its partition (same partition number), its
//! place in that partition's order, its id, its payload, its user headers (byte for
//! byte, TLV form) and its **origin timestamp** (the producer's creation time, per
//! message, to the microsecond). What it cannot keep: its **offset** (the destination
//! numbers messages from its own partition head: 0 in a new topic, and retention may
//! have removed the oldest source offsets) and its **append timestamp** (the broker
//! stamps arrival time, the migration time, and no command lets a sender set it). The
//! source's append time travels in the user header
//! [`ORIGINAL_TIMESTAMP_HEADER`](crate::ORIGINAL_TIMESTAMP_HEADER), which replay by time
//! reads ([`ReceivedMessage::stored_at`](crate::ReceivedMessage::stored_at)). Group and
//! standalone consumer offsets are translated to the destination offsets of the same
//! messages.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;

use crate::config::{ConnectorConfig, ConnectorMode, RemoteConnectorConfig};
use crate::connector::{IggyConnector, PollFrom, StartPosition, TopicSpec};
use crate::embedded::EmbeddedConnector;
use crate::embedded::broker::persist;
use crate::embedded::broker::{ConsumerKey, Partition, Topic};
use crate::error::ConnectorError;
use crate::names::{GroupName, StreamName, TopicName};
use crate::remote::RemoteConnector;
use crate::remote::copy::{self, CopiedMessage};

use super::progress::{PartitionProgress, Progress, TopicProgress, advance};
use super::source::{chunks, read_source};

const PROGRESS_FORMAT: u32 = 1;
/// Most bytes of records read from the source at once.
const READ_BYTES: usize = 16 * 1024 * 1024;

/// What [`migrate`] copies, from where, to where.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MigrateOptions {
    /// The embedded data directory to copy (no broker may hold it: stop the
    /// application first, or migrate from a backup of it and catch up from the
    /// directory itself later, with the same progress file).
    pub from_data_dir: PathBuf,
    /// The destination server: addresses, credentials, TLS, pool size (the pool's
    /// connections copy that many partitions in parallel).
    pub to: RemoteConnectorConfig,
    /// Where progress is recorded after every batch; a run that finds it resumes.
    pub progress_file: PathBuf,
    /// Most messages per batch sent to the destination (1 to 100,000). Default 1000.
    pub batch_messages: u32,
    /// Most bytes of payloads and headers per batch. Default 4 MiB.
    pub batch_bytes: usize,
}

impl MigrateOptions {
    /// Options with the default batch limits.
    pub fn new(
        from_data_dir: impl Into<PathBuf>,
        to: RemoteConnectorConfig,
        progress_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            from_data_dir: from_data_dir.into(),
            to,
            progress_file: progress_file.into(),
            batch_messages: 1000,
            batch_bytes: 4 * 1024 * 1024,
        }
    }

    fn validate(&self) -> Result<(), ConnectorError> {
        if !(1..=100_000).contains(&self.batch_messages) {
            return Err(ConnectorError::config(
                "batch_messages",
                format!(
                    "{} is out of range; allowed: 1 to 100000",
                    self.batch_messages
                ),
            ));
        }
        if self.batch_bytes == 0 {
            return Err(ConnectorError::config("batch_bytes", "must be at least 1"));
        }
        Ok(())
    }
}

/// Where a migration stands, reported after every batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrateProgress {
    /// The stream.
    pub stream: StreamName,
    /// The topic.
    pub topic: TopicName,
    /// The partition.
    pub partition: u32,
    /// Messages of this partition at the destination so far (all runs).
    pub copied: u64,
    /// Messages of this partition at the source.
    pub total: u64,
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrateReport {
    /// Streams at the source.
    pub streams: u32,
    /// Topics at the source.
    pub topics: u32,
    /// Partitions at the source.
    pub partitions: u32,
    /// Messages copied by this run.
    pub messages_copied: u64,
    /// Messages found at the destination that an interrupted run had sent but not
    /// yet recorded: checked (id and payload) and not sent again.
    pub messages_reconciled: u64,
    /// Messages at the destination in all (this run and earlier ones).
    pub messages_total: u64,
    /// Consumer groups created and given their offsets.
    pub groups: u32,
    /// Whether this run continued an earlier one.
    pub resumed: bool,
}

struct Run<'a, F> {
    options: &'a MigrateOptions,
    destination: RemoteConnector,
    progress: Mutex<Progress>,
    on_progress: &'a F,
    copied: std::sync::atomic::AtomicU64,
    reconciled: std::sync::atomic::AtomicU64,
}

/// Copies every stream, topic (partition count, retention) and message of the
/// embedded data directory `options.from_data_dir` to the Iggy server
/// `options.to`, then the consumer groups with their committed offsets translated
/// to the destination offsets. See the module documentation for exactly what each
/// message keeps.
///
/// Per partition, messages are sent in offset order, one batch at a time; up to
/// `to.pool_size` partitions are copied in parallel. After every batch the progress
/// is written (atomically) to `options.progress_file`; `on_progress` is called.
///
/// **Resuming and catching up**: run it again with the same progress file, after an
/// interruption or later on a newer state of the same data (typically: a bulk copy
/// from a backup taken while the application ran, then, with the application
/// stopped, the live directory: only the messages published since are copied).
/// Each partition continues after its last copied message, recognised by its offset
/// and id (a progress file recorded from another source is refused). A batch that
/// reached the destination but was not recorded (the run was killed in between) is
/// found by comparing the destination's messages past the recorded point with the
/// source (ids and payloads) and is not sent again; anything else there is an
/// error. Group offsets are stored again at every run, from the source's commits
/// of that run.
///
/// **Requirements**: no broker holds the data directory (it is opened and recovered
/// like at a broker start); nothing else writes to the destination topics during
/// the migration; a destination topic must be empty when the migration first
/// reaches it. Group offsets are stored through a member of each group, so no other
/// member of those groups may be connected to the destination meanwhile.
///
/// Not copied: users and personal access tokens, plain (non-group) consumer
/// offsets.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use rustok_iggy_connector::ops::{MigrateOptions, migrate};
/// use rustok_iggy_connector::*;
///
/// // An embedded data directory with one event (no broker may hold it)...
/// let dir = tempfile::tempdir().unwrap();
/// let source = EmbeddedConnector::new();
/// source.connect(&ConnectorConfig::embedded(dir.path().join("old"))).await?;
/// let (stream, topic) = (StreamName::new("shop")?, TopicName::new("orders")?);
/// source.ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 2)).await?;
/// let event = OutgoingMessage::new(&b"hello"[..]).with_id(7);
/// source.publish(PublishRequest::new(stream.clone(), topic.clone()).partition(1).message(event)).await?;
/// source.shutdown().await?;
///
/// // ...and a server to move to: here another embedded broker's Iggy listener.
/// let mut server_config = ConnectorConfig::embedded(dir.path().join("new"));
/// server_config.embedded.tcp_enabled = true;
/// server_config.embedded.tcp_port = 0;
/// let server = EmbeddedConnector::new();
/// server.connect(&server_config).await?;
///
/// let mut to = RemoteConnectorConfig::default();
/// to.addresses = vec![server.tcp_address().unwrap().to_string()];
/// to.username = "iggy".into();
/// to.password = Secret::new("iggy");
/// let options = MigrateOptions::new(dir.path().join("old"), to, dir.path().join("progress.json"));
/// let report = migrate(&options, &|p| println!("{}/{} #{}: {} of {}", p.stream, p.topic, p.partition, p.copied, p.total)).await?;
/// assert_eq!(report.messages_total, 1);
/// let moved = server.poll(&stream, &topic, 1, PollFrom::First, 10).await?;
/// assert_eq!((moved[0].id, &moved[0].payload[..]), (7, &b"hello"[..]));
/// server.shutdown().await?;
/// # Ok::<(), ConnectorError>(()) }).unwrap();
/// ```
pub async fn migrate<F>(
    options: &MigrateOptions,
    on_progress: &F,
) -> Result<MigrateReport, ConnectorError>
where
    F: Fn(&MigrateProgress) + Sync,
{
    options.validate()?;
    let source = EmbeddedConnector::new();
    let mut config = ConnectorConfig::embedded(&options.from_data_dir);
    config.embedded.tcp_enabled = false;
    config.embedded.http_enabled = false;
    if !options.from_data_dir.join("metadata.json").is_file() {
        return Err(ConnectorError::config(
            "from_data_dir",
            format!(
                "{} is not an embedded data directory (no metadata.json)",
                options.from_data_dir.display()
            ),
        ));
    }
    source.connect(&config).await?;
    let result = migrate_from(&source, options, on_progress).await;
    let closed = source.shutdown().await;
    let report = result?;
    closed?;
    Ok(report)
}

async fn migrate_from<F>(
    source: &EmbeddedConnector,
    options: &MigrateOptions,
    on_progress: &F,
) -> Result<MigrateReport, ConnectorError>
where
    F: Fn(&MigrateProgress) + Sync,
{
    let broker = source.broker()?;
    let source_dir = std::fs::canonicalize(&options.from_data_dir)
        .map_err(|e| ConnectorError::io("resolve the source directory", e))?;
    let (progress, resumed) = match persist::read_json::<Progress>(&options.progress_file)? {
        Some(progress) => {
            if progress.format != PROGRESS_FORMAT {
                return Err(ConnectorError::config(
                    "progress_file",
                    format!(
                        "{} has format {}, this version reads format {PROGRESS_FORMAT}",
                        options.progress_file.display(),
                        progress.format
                    ),
                ));
            }
            (
                Progress {
                    source: source_dir,
                    ..progress
                },
                true,
            )
        }
        None => (
            Progress {
                format: PROGRESS_FORMAT,
                source: source_dir,
                ..Progress::default()
            },
            false,
        ),
    };
    let destination = RemoteConnector::new();
    destination
        .connect(&ConnectorConfig {
            mode: ConnectorMode::Remote,
            remote: options.to.clone(),
            ..ConnectorConfig::default()
        })
        .await?;
    let run = Run {
        options,
        destination,
        progress: Mutex::new(progress),
        on_progress,
        copied: 0.into(),
        reconciled: 0.into(),
    };
    let result = run.all(&broker.streams()).await;
    if let Err(error) = run.destination.shutdown().await {
        tracing::warn!(%error, "closing the destination connection failed");
    }
    let mut report = result?;
    report.resumed = resumed;
    Ok(report)
}

impl<F> Run<'_, F>
where
    F: Fn(&MigrateProgress) + Sync,
{
    async fn all(
        &self,
        streams: &[crate::embedded::broker::StreamInfo],
    ) -> Result<MigrateReport, ConnectorError> {
        let mut report = MigrateReport::default();
        for stream in streams {
            report.streams += 1;
            copy::ensure_stream(&self.destination, &stream.name).await?;
            for topic in &stream.topics {
                report.topics += 1;
                report.partitions += topic.partitions_count();
                report.groups += self.topic(topic).await?;
            }
        }
        {
            let progress = self.lock();
            report.messages_total = progress
                .topics
                .values()
                .flat_map(|t| &t.partitions)
                .map(|p| p.copied)
                .sum();
            self.save(&progress)?;
        }
        report.messages_copied = self.copied.load(std::sync::atomic::Ordering::Relaxed);
        report.messages_reconciled = self.reconciled.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(?report, "migration finished");
        Ok(report)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn save(&self, progress: &Progress) -> Result<(), ConnectorError> {
        persist::write_json(&self.options.progress_file, progress)?;
        Ok(())
    }

    /// Copies one topic; returns how many groups it has.
    async fn topic(&self, topic: &Arc<Topic>) -> Result<u32, ConnectorError> {
        let key = format!("{}/{}", topic.stream_name(), topic.name());
        let info = self
            .destination
            .ensure_topic(&TopicSpec {
                stream: topic.stream_name(),
                topic: topic.name(),
                partitions: topic.partitions_count(),
                retention: topic.retention(),
            })
            .await?;
        let groups: Vec<(u32, GroupName)> = topic
            .groups()
            .by_id
            .values()
            .map(|g| (g.id, g.name.clone()))
            .collect();
        let known = self.lock().topics.contains_key(&key);
        if !known {
            if let Some((p, head)) = info
                .next_offsets
                .iter()
                .enumerate()
                .find(|(_, head)| **head > 0)
            {
                return Err(ConnectorError::TopologyMismatch {
                    stream: topic.stream_name().to_string(),
                    topic: topic.name().to_string(),
                    message: format!(
                        "the destination topic already holds messages (partition {p} up to \
                         offset {head}); a migration copies into empty topics only (use a new \
                         server or delete the topic, or resume with the progress file of the \
                         migration that wrote them)"
                    ),
                });
            }
            let mut progress = self.lock();
            progress.topics.insert(
                key.clone(),
                TopicProgress {
                    partitions: topic
                        .partitions()
                        .iter()
                        .map(|p| PartitionProgress {
                            source_next: p.first_offset(),
                            ..PartitionProgress::default()
                        })
                        .collect(),
                },
            );
            self.save(&progress)?;
        }
        let parallel = self.options.to.pool_size.max(1) as usize;
        let partitions = topic.partitions();
        let mut copies = futures::stream::iter(partitions.iter().map(|partition| {
            let head = info
                .next_offsets
                .get(partition.id as usize)
                .copied()
                .unwrap_or(0);
            self.partition(topic, partition, &key, head)
        }))
        .buffer_unordered(parallel);
        while let Some(result) = copies.next().await {
            result?;
        }
        drop(copies);
        self.groups(topic, &key, &groups).await?;
        self.consumers(topic, &key).await?;
        Ok(groups.len() as u32)
    }

    /// Copies one partition from where the progress says, after reconciling with the
    /// destination head `head`.
    async fn partition(
        &self,
        topic: &Topic,
        partition: &Partition,
        key: &str,
        head: u64,
    ) -> Result<(), ConnectorError> {
        let mut state = self.partition_progress(key, partition.id)?;
        self.same_source(topic, partition, &state)?;
        if head < state.dest_next {
            return Err(self.foreign(
                topic,
                partition.id,
                format!(
                    "the destination partition ends at offset {head} but the progress file \
                     records {} (another server, or its data was deleted)",
                    state.dest_next
                ),
            ));
        }
        if head > state.dest_next {
            self.reconcile(topic, partition, &mut state, head).await?;
            self.record(key, partition.id, &state)?;
        }
        let total = partition
            .next_offset()
            .saturating_sub(partition.first_offset());
        loop {
            let messages = read_source(
                partition,
                state.source_next,
                self.options.batch_messages,
                READ_BYTES,
            )?;
            if messages.is_empty() {
                break;
            }
            for chunk in chunks(&messages, self.options.batch_bytes) {
                let copies: Vec<CopiedMessage> = chunk.iter().map(|m| m.copy.clone()).collect();
                let base = copy::publish_copies(
                    &self.destination,
                    &topic.stream_name(),
                    &topic.name(),
                    partition.id,
                    &copies,
                )
                .await?;
                if base != state.dest_next {
                    return Err(self.foreign(
                        topic,
                        partition.id,
                        format!(
                            "the destination stored the batch at offset {base}, expected {}: \
                             something else writes to the destination topic",
                            state.dest_next
                        ),
                    ));
                }
                advance(&mut state, chunk);
                self.copied
                    .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                self.record(key, partition.id, &state)?;
                (self.on_progress)(&MigrateProgress {
                    stream: topic.stream_name(),
                    topic: topic.name(),
                    partition: partition.id,
                    copied: state.copied,
                    total,
                });
            }
        }
        Ok(())
    }

    /// Checks that `partition` is the source the progress was recorded from (or a
    /// backup or later state of it): the last copied message is where it was, with
    /// its id.
    fn same_source(
        &self,
        topic: &Topic,
        partition: &Partition,
        state: &PartitionProgress,
    ) -> Result<(), ConnectorError> {
        let (Some(last), Some(id)) = (state.source_next.checked_sub(1), state.last_id) else {
            return Ok(());
        };
        if last < partition.first_offset() {
            // Retention removed it since: nothing to compare, nothing lost.
            return Ok(());
        }
        let found = read_source(partition, last, 1, READ_BYTES)?;
        match found.first() {
            Some(m) if m.offset == last && m.copy.id == id => Ok(()),
            _ => Err(self.foreign(
                topic,
                partition.id,
                format!(
                    "the source has no message {id:032x} at offset {last}, where the progress \
                     file says the last copied one is: this progress file belongs to another \
                     source"
                ),
            )),
        }
    }

    fn partition_progress(&self, key: &str, id: u32) -> Result<PartitionProgress, ConnectorError> {
        self.lock()
            .topics
            .get(key)
            .and_then(|t| t.partitions.get(id as usize))
            .cloned()
            .ok_or_else(|| {
                ConnectorError::config(
                    "progress_file",
                    format!("it has no entry for {key} partition {id}"),
                )
            })
    }

    fn record(&self, key: &str, id: u32, state: &PartitionProgress) -> Result<(), ConnectorError> {
        let mut progress = self.lock();
        if let Some(slot) = progress
            .topics
            .get_mut(key)
            .and_then(|t| t.partitions.get_mut(id as usize))
        {
            *slot = state.clone();
        }
        self.save(&progress)
    }

    fn foreign(&self, topic: &Topic, partition: u32, message: String) -> ConnectorError {
        ConnectorError::TopologyMismatch {
            stream: topic.stream_name().to_string(),
            topic: topic.name().to_string(),
            message: format!("partition {partition}: {message}"),
        }
    }

    /// Accounts for the messages an interrupted run sent past the recorded point:
    /// each must be the next source message (same id and payload).
    async fn reconcile(
        &self,
        topic: &Topic,
        partition: &Partition,
        state: &mut PartitionProgress,
        head: u64,
    ) -> Result<(), ConnectorError> {
        tracing::info!(stream = %topic.stream_name(), topic = %topic.name(), partition = partition.id, from = state.dest_next, to = head, "checking messages sent by an interrupted run");
        while state.dest_next < head {
            let want = u32::try_from(head - state.dest_next)
                .unwrap_or(u32::MAX)
                .min(self.options.batch_messages);
            let found = self
                .destination
                .poll(
                    &topic.stream_name(),
                    &topic.name(),
                    partition.id,
                    PollFrom::Offset(state.dest_next),
                    want,
                )
                .await?;
            let expected = read_source(partition, state.source_next, want, READ_BYTES)?;
            if found.is_empty() || found.first().map(|m| m.offset) != Some(state.dest_next) {
                return Err(self.foreign(
                    topic,
                    partition.id,
                    format!(
                        "cannot read the destination at offset {} to check it",
                        state.dest_next
                    ),
                ));
            }
            let matched = found
                .iter()
                .zip(&expected)
                .take_while(|(d, s)| {
                    (d.id == s.copy.id || s.copy.id == 0) && d.payload == s.copy.payload
                })
                .count();
            if matched < found.len().min(want as usize) {
                return Err(self.foreign(
                    topic,
                    partition.id,
                    format!(
                        "the destination message at offset {} is not the next source message \
                         (offset {}); the destination topic was written by something else",
                        state.dest_next + matched as u64,
                        expected
                            .get(matched)
                            .map_or(state.source_next, |m| m.offset)
                    ),
                ));
            }
            let Some(done) = expected.get(..matched).filter(|d| !d.is_empty()) else {
                return Err(self.foreign(
                    topic,
                    partition.id,
                    "the destination holds more messages than the source".to_owned(),
                ));
            };
            advance(state, done);
            self.reconciled
                .fetch_add(done.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Stores the offsets of the topic's standalone consumers at the destination,
    /// translated to the destination offsets of the same messages (a consumer
    /// resumes after the same message). Done again at every run, like the groups'.
    async fn consumers(&self, topic: &Topic, key: &str) -> Result<(), ConnectorError> {
        let progress: Vec<PartitionProgress> = self
            .lock()
            .topics
            .get(key)
            .map(|t| t.partitions.clone())
            .unwrap_or_default();
        let (stream_name, topic_name) = (topic.stream_name(), topic.name());
        for (partition, state) in topic.partitions().iter().zip(&progress) {
            for (consumer, committed) in partition.stored_consumers() {
                let Some(offset) = state.translate(committed) else {
                    continue;
                };
                copy::store_consumer_offset(
                    &self.destination,
                    &stream_name,
                    &topic_name,
                    partition.id,
                    consumer,
                    offset,
                )
                .await?;
                tracing::info!(consumer, partition = partition.id, topic = %key, "consumer offset migrated");
            }
        }
        Ok(())
    }

    /// Creates each group at the destination and stores its committed offsets,
    /// translated to the destination offsets of the same messages. Done again at
    /// every run (the source's commits may have moved since the last one).
    async fn groups(
        &self,
        topic: &Topic,
        key: &str,
        groups: &[(u32, GroupName)],
    ) -> Result<(), ConnectorError> {
        let progress: Vec<PartitionProgress> = self
            .lock()
            .topics
            .get(key)
            .map(|t| t.partitions.clone())
            .unwrap_or_default();
        for (id, group) in groups {
            let translated: Vec<Option<u64>> = topic
                .partitions()
                .iter()
                .zip(&progress)
                .map(|(partition, state)| {
                    partition
                        .stored_offset(ConsumerKey::Group(*id))
                        .and_then(|committed| state.translate(committed))
                })
                .collect();
            let member = self
                .destination
                .join_group(
                    &topic.stream_name(),
                    &topic.name(),
                    group,
                    StartPosition::Earliest,
                )
                .await?;
            let mut result = Ok(());
            for (partition, offset) in (0u32..).zip(translated) {
                if let Some(offset) = offset {
                    result = member.commit(partition, offset).await;
                    if result.is_err() {
                        break;
                    }
                }
            }
            let left = member.leave().await;
            result.map_err(|e| match e {
                ConnectorError::Fenced { .. } => ConnectorError::InvalidRequest(format!(
                    "cannot store the offsets of group {group:?} on {key}: other members of it \
                     are connected to the destination ({e}); stop them and resume"
                )),
                other => other,
            })?;
            left?;
            tracing::info!(%group, topic = %key, "consumer group migrated");
        }
        Ok(())
    }
}

/// A default progress file name next to the data directory:
/// `<data_dir>.migration.json`.
#[must_use]
pub fn default_progress_file(data_dir: &Path) -> PathBuf {
    let mut name = data_dir
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_else(|| "data".into());
    name.push(".migration.json");
    data_dir.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_progress_file_sits_next_to_the_data() {
        assert_eq!(
            default_progress_file(Path::new("/var/lib/app/iggy")),
            PathBuf::from("/var/lib/app/iggy.migration.json")
        );
    }
}
