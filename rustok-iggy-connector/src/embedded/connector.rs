//! `EmbeddedConnector`: the `IggyConnector` over the in-process broker (direct calls,
//! no sockets).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::select_all;
use tokio::sync::watch;

use super::broker::{Broker, BrokerConfig, ConsumerKey, GroupRef, Ident, Partition, Topic, Users};
use super::http::HttpServer;
use super::wire::WireServer;
use crate::batch;
use crate::config::{ConnectorConfig, ConnectorMode};
use crate::connector::{
    Assignment, GroupConsumer, IggyConnector, MessageSubscriber, PingReport, PollFrom,
    PublishReceipt, PublishRequest, StartPosition, TopicInfo, TopicSpec, UnwritablePartition,
};
use crate::error::ConnectorError;
use crate::member::{Cursors, start_to_store};
use crate::message::ReceivedMessage;
use crate::names::{GroupName, StreamName, TopicName};

/// Most bytes of records one read gathers.
const MAX_READ_BYTES: usize = 8 * 1024 * 1024;
/// How often retention is enforced in the background.
const RETENTION_INTERVAL: Duration = Duration::from_secs(10);

/// What [`EmbeddedConnector::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifySummary {
    /// Partitions checked.
    pub partitions: u32,
    /// Segment files read.
    pub segments: u32,
    /// Records (batches) that passed every check.
    pub records: u64,
    /// Messages in those records.
    pub messages: u64,
    /// One line per damaged segment (empty when all is well).
    pub damage: Vec<String>,
}

impl VerifySummary {
    /// Whether no damage was found.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

#[derive(Debug)]
struct Running {
    broker: Arc<Broker>,
    closed: watch::Sender<bool>,
    /// The TCP listener speaking the Iggy protocol (`embedded.tcp_enabled`).
    wire: Option<WireServer>,
    /// The HTTP endpoint (`embedded.http_enabled`).
    http: Option<HttpServer>,
    _temp: Option<tempfile::TempDir>,
}

/// The embedded mode: a persistent broker inside this process.
///
/// `connect` opens (or creates) the data directory, recovers every partition and
/// starts the background group-commit and retention task. Publishing and consuming
/// are direct calls into the broker.
///
/// ```
/// # tokio_test_block_on(async {
/// use rustok_iggy_connector::*;
///
/// let dir = tempfile::tempdir().unwrap();
/// let connector = EmbeddedConnector::new();
/// connector.connect(&ConnectorConfig::embedded(dir.path())).await?;
/// let (stream, topic) = (StreamName::new("shop")?, TopicName::new("orders")?);
/// connector.ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 2)).await?;
///
/// let receipt = connector
///     .publish(PublishRequest::new(stream.clone(), topic.clone())
///         .key(&b"tenant-1"[..])
///         .message(OutgoingMessage::new(&b"hello"[..])))
///     .await?;
/// let read = connector.poll(&stream, &topic, receipt.partition, PollFrom::First, 10).await?;
/// assert_eq!(&read[0].payload[..], b"hello");
/// connector.shutdown().await?;
/// # Ok::<(), ConnectorError>(()) });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Runtime::new().unwrap().block_on(f) }
/// ```
#[derive(Default)]
pub struct EmbeddedConnector {
    running: RwLock<Option<Running>>,
}

impl fmt::Debug for EmbeddedConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let running = self.running.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("EmbeddedConnector")
            .field(
                "data_dir",
                &running.as_ref().map(|r| r.broker.data_dir().to_owned()),
            )
            .finish()
    }
}

impl EmbeddedConnector {
    /// A connector that is not connected yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn broker(&self) -> Result<Arc<Broker>, ConnectorError> {
        self.running
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|r| Arc::clone(&r.broker))
            .ok_or(ConnectorError::NotConnected)
    }

    fn closed_signal(&self) -> Result<watch::Receiver<bool>, ConnectorError> {
        self.running
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|r| r.closed.subscribe())
            .ok_or(ConnectorError::NotConnected)
    }

    /// The address the TCP listener is bound to (with the actual port when
    /// `embedded.tcp_port` is 0), or `None` when it is off or not connected.
    #[must_use]
    pub fn tcp_address(&self) -> Option<std::net::SocketAddr> {
        self.running
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|r| r.wire.as_ref().map(WireServer::local_addr))
    }

    /// The address the HTTP endpoint (`/ping`, `/health`, `/metrics`) is bound to,
    /// or `None` when it is off or not connected.
    #[must_use]
    pub fn http_address(&self) -> Option<std::net::SocketAddr> {
        self.running
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|r| r.http.as_ref().map(HttpServer::local_addr))
    }

    /// Reads every record of every partition and checks both checksum levels (the
    /// broker keeps serving meanwhile). Damage found here is also found by reads,
    /// which skip the damaged records; every damaged range is reported, one line
    /// each, those recovery already keeps aside included.
    pub fn verify(&self) -> Result<VerifySummary, ConnectorError> {
        let broker = self.broker()?;
        let mut summary = VerifySummary::default();
        for topic in broker.all_topics() {
            for partition in topic.partitions().iter() {
                let report = partition.verify()?;
                if !report.is_clean() {
                    tracing::error!(topic = %topic.name(), partition = partition.id, damage = ?report.damage, "verify found damage");
                }
                summary.partitions += 1;
                summary.segments += report.segments;
                summary.records += report.records;
                summary.messages += report.messages;
                for damage in report.damage {
                    summary.damage.push(format!(
                        "{}/{} partition {}: {damage}",
                        topic.stream_name(),
                        topic.name(),
                        partition.id,
                    ));
                }
            }
        }
        Ok(summary)
    }

    /// fsyncs every partition's log and stored consumer offsets now, and returns
    /// once they are on stable storage: after it, everything published and
    /// committed before the call survives power loss, whatever the durability
    /// policy (under `interval`, call it to close the window at a point of your
    /// choosing, such as before committing past a dead-lettered event). The fsyncs
    /// run on the broker's sync threads, several partitions at once.
    ///
    /// # Errors
    /// [`ConnectorError::NotConnected`]; [`StorageError::Poisoned`](crate::StorageError::Poisoned) (as
    /// [`ConnectorError::Storage`]) when a partition's earlier write or sync
    /// failed.
    pub async fn flush(&self) -> Result<(), ConnectorError> {
        self.broker()?.flush().await
    }

    /// Every topic of every stream, as (stream, topic) names: what `topic_info` and
    /// `poll` can then read (the ops tools walk a data directory with it).
    pub fn topics(&self) -> Result<Vec<(StreamName, TopicName)>, ConnectorError> {
        Ok(self
            .broker()?
            .all_topics()
            .iter()
            .map(|topic| (topic.stream_name(), topic.name()))
            .collect())
    }

    /// The data directory in use.
    pub fn data_dir(&self) -> Result<std::path::PathBuf, ConnectorError> {
        Ok(self.broker()?.data_dir().to_owned())
    }

    /// Deletes the segments past each topic's retention now, on the caller's thread
    /// (it also happens in the background every 10 seconds).
    pub fn enforce_retention(&self) -> Result<(), ConnectorError> {
        self.broker()?.maintain();
        Ok(())
    }

    fn topic(
        &self,
        stream: &StreamName,
        topic: &TopicName,
    ) -> Result<(Arc<Broker>, Arc<Topic>), ConnectorError> {
        let broker = self.broker()?;
        let topic = broker.topic(Ident::Name(stream.as_str()), Ident::Name(topic.as_str()))?;
        Ok((broker, topic))
    }
}

/// Retention every [`RETENTION_INTERVAL`], on the blocking pool (fsyncs are made by
/// the broker's sync threads, not here).
fn spawn_maintenance(broker: &Arc<Broker>, mut closed: watch::Receiver<bool>) {
    let weak = Arc::downgrade(broker);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(RETENTION_INTERVAL) => {}
                _ = closed.changed() => return,
            }
            let Some(broker) = weak.upgrade() else { return };
            if tokio::task::spawn_blocking(move || broker.maintain())
                .await
                .is_err()
            {
                tracing::error!("the retention pass panicked");
            }
        }
    });
}

/// Runs blocking broker work (file creation, recovery, fsyncs) on the blocking
/// pool, off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ConnectorError> + Send + 'static,
) -> Result<T, ConnectorError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(ConnectorError::InvalidRequest(format!(
            "a storage task failed: {e}"
        )))
    })
}

/// Where a reader starts in `partition`.
fn resolve(partition: &Partition, from: PollFrom) -> u64 {
    match from {
        PollFrom::First => partition.first_offset(),
        PollFrom::Offset(offset) => offset.max(partition.first_offset()),
        PollFrom::Timestamp(ts) => partition
            .offset_at_timestamp(ts)
            .unwrap_or_else(|| partition.next_offset()),
        PollFrom::Latest => partition.next_offset(),
    }
}

/// Reads and decodes up to `max` messages of `partition` from `from`.
fn read_messages(
    partition: &Partition,
    from: u64,
    max: u32,
) -> Result<Vec<ReceivedMessage>, ConnectorError> {
    let records = partition.read(from, max, MAX_READ_BYTES)?;
    let mut out = Vec::with_capacity(max.min(4096) as usize);
    for record in records {
        batch::decode_messages(record.into(), from, u64::MAX, &mut out)?;
    }
    out.truncate(max as usize);
    Ok(out)
}

#[async_trait]
impl IggyConnector for EmbeddedConnector {
    fn mode(&self) -> ConnectorMode {
        ConnectorMode::Embedded
    }

    async fn connect(&self, config: &ConnectorConfig) -> Result<(), ConnectorError> {
        config.validate()?;
        if self.is_connected() {
            return Err(ConnectorError::AlreadyConnected);
        }
        let embedded = &config.embedded;
        let (data_dir, temp) = if embedded.persistent {
            (embedded.data_dir.clone(), None)
        } else {
            let temp = tempfile::Builder::new()
                .prefix("rustok-iggy-")
                .tempdir()
                .map_err(|e| ConnectorError::io("create a temporary data directory", e))?;
            (temp.path().to_owned(), Some(temp))
        };
        let durability = embedded.durability();
        let broker_config = BrokerConfig {
            data_dir,
            durability,
            segment_size_bytes: embedded.segment_size_bytes,
            deduplication: embedded.deduplication,
            fault_fsync_delay: embedded.fault_fsync_delay,
        };
        // Recovery reads (and may repair) every partition and rebuilds their
        // deduplication windows: off the runtime.
        let broker = Arc::new(blocking(move || Broker::open(broker_config)).await?);
        let wire = if embedded.tcp_enabled {
            // Off the runtime: root tokens are checked against the root credentials
            // with Argon2.
            let (dir, username, password) = (
                broker.data_dir().to_owned(),
                embedded.root_username.clone(),
                embedded.root_password.clone(),
            );
            let users = tokio::task::spawn_blocking(move || {
                Users::open(&dir, &username, password.expose())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|opened| opened.map_err(|e| e.to_string()))
            .map_err(|e| {
                ConnectorError::config(
                    "embedded.data_dir",
                    format!("cannot open the user store: {e}"),
                )
            })?;
            let address = embedded.tcp_socket_address()?;
            Some(WireServer::start(
                address,
                Arc::clone(&broker),
                Arc::new(users),
                embedded.tcp_limits.clone(),
                // Secrets are never serialized (the root password is skipped).
                serde_json::to_string_pretty(embedded).unwrap_or_default(),
            )?)
        } else {
            None
        };
        let http = if embedded.http_enabled {
            match HttpServer::start(embedded, Arc::clone(&broker)) {
                Ok(http) => Some(http),
                Err(e) => {
                    if let Some(wire) = wire {
                        wire.stop().await;
                    }
                    return Err(e);
                }
            }
        } else {
            None
        };
        let (closed, closed_rx) = watch::channel(false);
        spawn_maintenance(&broker, closed_rx);
        tracing::info!(data_dir = %broker.data_dir().display(), ?durability, "embedded broker opened");
        let mut running = self.running.write().unwrap_or_else(PoisonError::into_inner);
        // A concurrent `connect` on the same connector lost the race for the data
        // directory (it is locked), so `running` is still empty here.
        *running = Some(Running {
            broker,
            closed,
            wire,
            http,
            _temp: temp,
        });
        Ok(())
    }

    fn is_connected(&self) -> bool {
        self.running
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The broker is in this process: it answers when it is open. Lists the
    /// partitions whose log is poisoned.
    async fn ping(&self, _timeout: Duration) -> Result<PingReport, ConnectorError> {
        let started = std::time::Instant::now();
        let broker = self.broker()?;
        broker.ensure_open()?;
        let unwritable = broker
            .unwritable_partitions()
            .into_iter()
            .map(|(stream, topic, partition)| UnwritablePartition {
                stream,
                topic,
                partition,
            })
            .collect();
        Ok(PingReport::new(started.elapsed(), unwritable))
    }

    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<TopicInfo, ConnectorError> {
        spec.validate()?;
        let broker = self.broker()?;
        if let Some(topic) = broker.find_topic(
            Ident::Name(spec.stream.as_str()),
            Ident::Name(spec.topic.as_str()),
        ) && topic.partitions_count() == spec.partitions
            && topic.retention() == spec.retention
        {
            return Ok(topic.info());
        }
        // Creates directories and files, fsyncs them: off the runtime.
        let spec = spec.clone();
        blocking(move || Ok(broker.ensure_topic(&spec)?.info())).await
    }

    async fn topic_info(
        &self,
        stream: &StreamName,
        topic: &TopicName,
    ) -> Result<Option<TopicInfo>, ConnectorError> {
        Ok(self
            .broker()?
            .find_topic(Ident::Name(stream.as_str()), Ident::Name(topic.as_str()))
            .map(|t| t.info()))
    }

    async fn publish(&self, request: PublishRequest) -> Result<PublishReceipt, ConnectorError> {
        request.validate()?;
        let (broker, topic) = self.topic(&request.stream, &request.topic)?;
        let partition = request
            .partitioning
            .resolve(topic.partitions_count(), topic.round_robin());
        let record = batch::encode_batch(&request.messages, batch::now_micros());
        let appended = broker.append(&topic, partition, record).await?;
        Ok(PublishReceipt {
            partition,
            base_offset: appended.base_offset,
            count: request.messages.len() as u32,
            duplicates: appended.duplicates,
        })
    }

    async fn poll(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partition: u32,
        from: PollFrom,
        max: u32,
    ) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let (_, topic) = self.topic(stream, topic)?;
        let partition = topic.partition(partition)?;
        read_messages(&partition, resolve(&partition, from), max)
    }

    async fn subscribe(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partition: u32,
        from: PollFrom,
    ) -> Result<Box<dyn MessageSubscriber>, ConnectorError> {
        let (_, topic) = self.topic(stream, topic)?;
        let partition = topic.partition(partition)?;
        let cursor = resolve(&partition, from);
        Ok(Box::new(EmbeddedSubscriber {
            head: partition.watch(),
            partition,
            cursor,
            closed: self.closed_signal()?,
        }))
    }

    async fn join_group(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        group: &GroupName,
        start: StartPosition,
    ) -> Result<Box<dyn GroupConsumer>, ConnectorError> {
        let (broker, topic) = self.topic(stream, topic)?;
        let group_id = match topic.group_id(group) {
            Some(id) => id,
            None => match broker.create_group(&topic, group.clone()) {
                Ok(id) => {
                    initialize_offsets(&topic, id, start).await?;
                    id
                }
                Err(ConnectorError::AlreadyExists { .. }) => topic
                    .group_id(group)
                    .ok_or_else(|| topic.group_not_found(group.as_str()))?,
                Err(e) => return Err(e),
            },
        };
        let member_id = broker.next_member_id();
        broker.join_group(&topic, GroupRef::Id(group_id), member_id)?;
        let rebalanced = topic
            .groups()
            .find(GroupRef::Id(group_id))
            .map(|g| g.watch())
            .ok_or_else(|| topic.group_not_found(group.as_str()))?;
        Ok(Box::new(EmbeddedGroupMember {
            broker,
            topic,
            group: group.clone(),
            group_id,
            member_id,
            rebalanced,
            closed: self.closed_signal()?,
            left: AtomicBool::new(false),
            cursors: tokio::sync::Mutex::new(Cursors::default()),
            seeks: std::sync::Mutex::new(Vec::new()),
            sought: tokio::sync::Notify::new(),
        }))
    }

    async fn committed_offsets(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        group: &GroupName,
    ) -> Result<Vec<Option<u64>>, ConnectorError> {
        let (_, topic) = self.topic(stream, topic)?;
        let id = topic
            .group_id(group)
            .ok_or_else(|| topic.group_not_found(group.as_str()))?;
        Ok(topic
            .partitions()
            .iter()
            .map(|p| p.stored_offset(ConsumerKey::Group(id)))
            .collect())
    }

    async fn shutdown(&self) -> Result<(), ConnectorError> {
        let running = self
            .running
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut running) = running else {
            return Ok(());
        };
        if let Some(wire) = running.wire.take() {
            wire.stop().await;
        }
        if let Some(http) = running.http.take() {
            http.stop().await;
        }
        running.closed.send_replace(true);
        let broker = Arc::clone(&running.broker);
        // The final fsyncs: off the runtime.
        let result = blocking(move || broker.close()).await;
        tracing::info!(data_dir = %running.broker.data_dir().display(), "embedded broker closed");
        result
    }
}

/// Stores the starting offsets of a new group so that a restart before the first
/// commit does not move its start.
async fn initialize_offsets(
    topic: &Topic,
    group_id: u32,
    start: StartPosition,
) -> Result<(), ConnectorError> {
    for partition in topic.partitions().iter() {
        let first_to_read = match start {
            StartPosition::Earliest => continue,
            StartPosition::Latest => partition.next_offset(),
            StartPosition::Offset(offset) => offset,
            StartPosition::Timestamp(ts) => partition
                .offset_at_timestamp(ts)
                .unwrap_or_else(|| partition.next_offset()),
        };
        if let Some(last_handled) = start_to_store(first_to_read) {
            partition
                .store_offset(ConsumerKey::Group(group_id), last_handled)
                .await?;
        }
    }
    Ok(())
}

/// Waits until `rx` changes or the connector closes.
async fn changed_or_closed(
    rx: &mut watch::Receiver<u64>,
    closed: &mut watch::Receiver<bool>,
) -> Result<(), ConnectorError> {
    if *closed.borrow() {
        return Err(ConnectorError::ShuttingDown);
    }
    tokio::select! {
        r = rx.changed() => r.map_err(|_| ConnectorError::ShuttingDown),
        _ = closed.changed() => Err(ConnectorError::ShuttingDown),
    }
}

struct EmbeddedSubscriber {
    partition: Arc<Partition>,
    head: watch::Receiver<u64>,
    cursor: u64,
    closed: watch::Receiver<bool>,
}

impl fmt::Debug for EmbeddedSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedSubscriber")
            .field("partition", &self.partition.id)
            .field("cursor", &self.cursor)
            .finish()
    }
}

#[async_trait]
impl MessageSubscriber for EmbeddedSubscriber {
    async fn next_batch(&mut self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        loop {
            self.head.borrow_and_update();
            let cursor = self.cursor.max(self.partition.first_offset());
            let messages = read_messages(&self.partition, cursor, max.max(1))?;
            if let Some(last) = messages.last() {
                self.cursor = last.offset + 1;
                return Ok(messages);
            }
            changed_or_closed(&mut self.head, &mut self.closed).await?;
        }
    }
}

struct EmbeddedGroupMember {
    broker: Arc<Broker>,
    topic: Arc<Topic>,
    group: GroupName,
    group_id: u32,
    member_id: u64,
    rebalanced: watch::Receiver<u64>,
    closed: watch::Receiver<bool>,
    left: AtomicBool,
    /// Set for one group generation.
    cursors: tokio::sync::Mutex<Cursors<u64>>,
    /// Read positions asked for by `seek`, applied by the next poll.
    seeks: std::sync::Mutex<Vec<(u32, u64)>>,
    /// Wakes a poll waiting at the head when a seek arrives.
    sought: tokio::sync::Notify,
}

impl fmt::Debug for EmbeddedGroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedGroupMember")
            .field("topic", &self.topic.name())
            .field("group", &self.group)
            .field("member", &self.member_id)
            .finish()
    }
}

impl EmbeddedGroupMember {
    fn current_assignment(&self) -> Result<Assignment, ConnectorError> {
        if self.left.load(Ordering::Acquire) {
            return Err(ConnectorError::InvalidRequest(format!(
                "this member already left group {:?}",
                self.group.as_str()
            )));
        }
        self.topic
            .groups()
            .find(GroupRef::Id(self.group_id))
            .ok_or_else(|| self.topic.group_not_found(self.group.as_str()))?
            .assignment(self.member_id)
            .ok_or_else(|| self.topic.group_not_found(self.group.as_str()))
    }
}

#[async_trait]
impl GroupConsumer for EmbeddedGroupMember {
    fn group(&self) -> &GroupName {
        &self.group
    }

    fn assignment(&self) -> Assignment {
        self.current_assignment().unwrap_or_default()
    }

    async fn poll(&self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let max = max.max(1);
        let mut cursors = self.cursors.lock().await;
        let mut rebalanced = self.rebalanced.clone();
        let mut closed = self.closed.clone();
        loop {
            rebalanced.borrow_and_update();
            let assignment = self.current_assignment()?;
            if !cursors.is_for(&assignment.generation) {
                let committed = assignment.partitions.iter().filter_map(|&p| {
                    let partition = self.topic.partition(p).ok()?;
                    Some((
                        p,
                        partition.stored_offset(ConsumerKey::Group(self.group_id)),
                    ))
                });
                cursors.reset(assignment.generation, committed);
            }
            for (partition, offset) in
                std::mem::take(&mut *self.seeks.lock().unwrap_or_else(PoisonError::into_inner))
            {
                if assignment.partitions.contains(&partition) {
                    cursors.seek(partition, offset);
                }
            }
            let mut heads = Vec::with_capacity(assignment.partitions.len());
            let mut out = Vec::new();
            let mut advanced = Vec::new();
            for (p, next) in cursors.round(&assignment.partitions) {
                let Ok(partition) = self.topic.partition(p) else {
                    continue;
                };
                let mut head = partition.watch();
                head.borrow_and_update();
                heads.push(head);
                let messages = read_messages(
                    &partition,
                    next.max(partition.first_offset()),
                    max - out.len() as u32,
                )?;
                if let Some(last) = messages.last() {
                    advanced.push((p, last.offset + 1));
                    out.extend(messages);
                    if out.len() as u32 >= max {
                        break;
                    }
                }
            }
            cursors.finish_round(advanced);
            if !out.is_empty() {
                return Ok(out);
            }
            if *closed.borrow() {
                return Err(ConnectorError::ShuttingDown);
            }
            let mut waits: Vec<futures::future::BoxFuture<'_, ()>> = heads
                .iter_mut()
                .map(|h| {
                    Box::pin(async move {
                        if h.changed().await.is_err() {
                            std::future::pending::<()>().await
                        }
                    }) as _
                })
                .collect();
            waits.push(Box::pin(async {
                let _ = rebalanced.changed().await;
            }));
            waits.push(Box::pin(async {
                let _ = closed.changed().await;
            }));
            waits.push(Box::pin(self.sought.notified()));
            select_all(waits).await;
        }
    }

    fn seek(&self, partition: u32, offset: u64) {
        self.seeks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((partition, offset));
        self.sought.notify_one();
    }

    async fn commit(&self, partition: u32, offset: u64) -> Result<(), ConnectorError> {
        self.broker.ensure_open()?;
        let p = self.topic.partition(partition)?;
        {
            let groups = self.topic.groups();
            let group = groups
                .find(GroupRef::Id(self.group_id))
                .ok_or_else(|| self.topic.group_not_found(self.group.as_str()))?;
            if self.left.load(Ordering::Acquire) || !group.owns(self.member_id, partition) {
                return Err(ConnectorError::Fenced {
                    group: self.group.to_string(),
                    partition,
                    generation: group.generation(),
                });
            }
        }
        p.store_offset(ConsumerKey::Group(self.group_id), offset)
            .await?;
        Ok(())
    }

    async fn leave(&self) -> Result<(), ConnectorError> {
        if self.left.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.broker
            .leave_group(&self.topic, GroupRef::Id(self.group_id), self.member_id)?;
        Ok(())
    }
}

impl Drop for EmbeddedGroupMember {
    fn drop(&mut self) {
        if !self.left.swap(true, Ordering::AcqRel) {
            let _ =
                self.broker
                    .leave_group(&self.topic, GroupRef::Id(self.group_id), self.member_id);
        }
    }
}
