//! [`BatchingPublisher`]: untyped messages queued per partition and sent in batches,
//! each submission answered with its own receipt or error.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use rustok_iggy_connector::{
    ConnectorError, Duplicate, IggyConnector, Metrics, OutgoingMessage, Partitioning,
    PublishReceipt, PublishRequest, RoundRobin, StreamName, TopicName, metric_names,
};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::time::Instant;

use crate::publish_retry::PublishRetry;

/// Bytes of the Iggy frame header each message carries in a batch.
const FRAME_HEADER_BYTES: usize = 48;

/// What a publisher does when its buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backpressure {
    /// Wait until there is room (the default): publishing slows down to the broker's
    /// pace.
    #[default]
    Wait,
    /// Wait at most this long, then fail with [`BatchError::BufferTimeout`].
    WaitTimeout(Duration),
    /// Fail at once with [`BatchError::BufferFull`].
    FailFast,
}

/// How a [`BatchingPublisher`] forms batches and bounds its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchingOptions {
    /// How long a message may wait for more messages of its partition before its
    /// batch is sent (measured from when it was submitted; a full batch goes at
    /// once). Default `Duration::ZERO`: a batch takes whatever is queued as soon as
    /// the partition's previous batch is answered, so under load batches form by
    /// themselves (everything that arrived during one request goes in the next) and
    /// a lone message waits for nothing. A longer linger makes fewer, larger batches
    /// at low load, at the cost of that much latency.
    pub linger: Duration,
    /// Most messages in one batch (1 or more). Default 1000.
    pub max_batch_messages: usize,
    /// A batch is sent once it holds this many bytes (payloads, headers and the
    /// 48-byte frame of each message); a single larger message goes alone. Default
    /// 1 MiB.
    pub max_batch_bytes: usize,
    /// Messages submitted but not yet answered by the broker, across all
    /// partitions (1 or more): the bounded buffer. Default 10,000.
    pub buffer_messages: usize,
    /// What `publish` does when the buffer is full. Default [`Backpressure::Wait`].
    pub backpressure: Backpressure,
    /// Retries of a batch that failed on a lost connection or a timeout: the same
    /// batch (same message ids, same partition) is sent again, so that the
    /// broker's deduplication stores it once. Default [`PublishRetry::default`].
    pub publish_retry: PublishRetry,
}

impl Default for BatchingOptions {
    fn default() -> Self {
        Self {
            linger: Duration::ZERO,
            max_batch_messages: 1000,
            max_batch_bytes: 1024 * 1024,
            buffer_messages: 10_000,
            backpressure: Backpressure::Wait,
            publish_retry: PublishRetry::default(),
        }
    }
}

impl BatchingOptions {
    fn validate(&self) -> Result<(), BatchError> {
        let invalid =
            |field: &'static str, message: String| BatchError::InvalidOptions { field, message };
        if self.max_batch_messages == 0 {
            return Err(invalid("max_batch_messages", "must be at least 1".into()));
        }
        if self.max_batch_bytes == 0 {
            return Err(invalid("max_batch_bytes", "must be at least 1".into()));
        }
        if self.buffer_messages == 0 || self.buffer_messages > Semaphore::MAX_PERMITS {
            return Err(invalid(
                "buffer_messages",
                format!(
                    "{} is out of range; allowed: 1 to {}",
                    self.buffer_messages,
                    Semaphore::MAX_PERMITS
                ),
            ));
        }
        Ok(())
    }
}

/// Why a message submitted to a [`BatchingPublisher`] was not acknowledged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The batch this message was part of failed: every message of that batch gets
    /// this error (sharing the connector's error). The batch may or may not be
    /// stored (see [`IggyConnector::publish`]); publishing again may store it twice.
    #[error("the batch of {messages} messages this one was part of failed")]
    Publish {
        /// How many messages the failed batch held.
        messages: usize,
        /// What the connector reported.
        #[source]
        source: Arc<ConnectorError>,
    },
    /// The message was refused before it was queued (unknown topic or partition, an
    /// oversized payload); nothing was stored.
    #[error(transparent)]
    Rejected(#[from] ConnectorError),
    /// The buffer was full and the backpressure mode is [`Backpressure::FailFast`];
    /// nothing was queued.
    #[error("the publish buffer is full ({capacity} messages waiting for the broker)")]
    BufferFull {
        /// [`BatchingOptions::buffer_messages`].
        capacity: usize,
    },
    /// The buffer stayed full for the whole [`Backpressure::WaitTimeout`]; nothing
    /// was queued.
    #[error(
        "the publish buffer stayed full ({capacity} messages waiting for the broker) for {waited:?}"
    )]
    BufferTimeout {
        /// [`BatchingOptions::buffer_messages`].
        capacity: usize,
        /// How long the call waited.
        waited: Duration,
    },
    /// The publisher was shut down before the message was queued; nothing was
    /// queued.
    #[error("the batching publisher is shut down")]
    Closed,
    /// The publisher's task stopped before the broker answered (the runtime is
    /// shutting down); the message may or may not be stored.
    #[error("the batching publisher stopped before the broker answered")]
    Lost,
    /// The options are invalid.
    #[error("invalid batching option {field}: {message}")]
    InvalidOptions {
        /// The field at fault.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl BatchError {
    /// The connector's error behind this one, if there is one.
    #[must_use]
    pub fn connector_error(&self) -> Option<&ConnectorError> {
        match self {
            Self::Publish { source, .. } => Some(source),
            Self::Rejected(source) => Some(source),
            _ => None,
        }
    }

    /// Whether the message certainly was not stored (it never left the buffer).
    #[must_use]
    pub fn is_not_stored(&self) -> bool {
        matches!(
            self,
            Self::Rejected(_) | Self::BufferFull { .. } | Self::BufferTimeout { .. } | Self::Closed
        )
    }
}

/// The receipt of a submitted message, once the broker answered for its batch.
///
/// Awaiting it is optional: a submitted message is sent whether or not anyone waits
/// for its receipt.
#[must_use = "the receipt says whether the message was stored"]
pub struct PendingReceipt {
    reply: oneshot::Receiver<Result<PublishReceipt, BatchError>>,
}

impl fmt::Debug for PendingReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingReceipt").finish_non_exhaustive()
    }
}

impl Future for PendingReceipt {
    type Output = Result<PublishReceipt, BatchError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.reply)
            .poll(cx)
            .map(|reply| reply.unwrap_or(Err(BatchError::Lost)))
    }
}

/// The lanes of one topic: one per partition, and one for keyless messages (each
/// of its batches goes to the next partition, round-robin). Started on first use.
pub(crate) struct TopicLanes {
    stream: StreamName,
    topic: TopicName,
    partitions: u32,
    /// `partitions + 1` slots; the last is the balanced lane.
    lanes: Box<[OnceLock<LaneHandle>]>,
}

impl TopicLanes {
    fn new(stream: StreamName, topic: TopicName, partitions: u32) -> Self {
        Self {
            stream,
            topic,
            partitions,
            lanes: (0..=partitions).map(|_| OnceLock::new()).collect(),
        }
    }
}

#[derive(Clone)]
struct LaneHandle {
    sender: mpsc::UnboundedSender<LaneMessage>,
    signal: Arc<LaneSignal>,
}

/// What a lane's producers tell its task without waking it for every message.
#[derive(Default)]
struct LaneSignal {
    /// Messages queued and not yet taken into a batch.
    queued: AtomicUsize,
    /// Their bytes.
    queued_bytes: AtomicUsize,
    /// Wakes the task early: a full batch is queued, or a flush or close waits.
    wake: Notify,
}

struct Item {
    message: OutgoingMessage,
    size: usize,
    submitted: Instant,
    reply: oneshot::Sender<Result<PublishReceipt, BatchError>>,
    _permit: OwnedSemaphorePermit,
}

enum LaneMessage {
    Item(Item),
    /// Send what is queued before it, then answer.
    Flush(oneshot::Sender<()>),
    /// Refuse new messages, send everything queued, end, then answer.
    Close(oneshot::Sender<()>),
}

type TopicMap = HashMap<StreamName, HashMap<TopicName, Arc<TopicLanes>>>;

struct Inner {
    connector: Arc<dyn IggyConnector>,
    options: BatchingOptions,
    buffer: Arc<Semaphore>,
    closed: AtomicBool,
    /// Also serializes starting lanes with shutdown.
    topics: Mutex<TopicMap>,
}

/// Coalesces single publishes into batches: by [`BatchingOptions::linger`] time and
/// by batch length and size. Cheap to clone; clones share the buffer.
///
/// - **Receipts**: each message gets its own [`PublishReceipt`] (`count` 1, its own
///   offset) once the broker acknowledged its batch, under the same durability as
///   [`IggyConnector::publish`]. If the batch fails, every message of it gets the
///   error ([`BatchError::Publish`]).
/// - **Order**: messages of one partition (same partition, or same key) are sent in
///   the order they were submitted, one batch at a time per partition; a failed
///   batch does not stop the ones after it.
/// - **Backpressure**: at most [`BatchingOptions::buffer_messages`] messages wait for
///   the broker; past that, [`BatchingOptions::backpressure`] applies.
/// - **Flush and shutdown**: [`BatchingPublisher::flush`] returns once everything
///   submitted before it was answered; [`BatchingPublisher::shutdown`] refuses new
///   messages and returns once everything queued was answered. Dropping the last
///   clone without shutdown still sends what was queued (in the background).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use rustok_iggy::batching::{BatchingOptions, BatchingPublisher};
/// use rustok_iggy::connector::{EmbeddedConnector, ConnectorConfig, IggyConnector,
///     OutgoingMessage, Partitioning, StreamName, TopicName, TopicSpec};
///
/// let dir = tempfile::tempdir().unwrap();
/// let connector = Arc::new(EmbeddedConnector::new());
/// connector.connect(&ConnectorConfig::embedded(dir.path())).await?;
/// let (stream, topic) = (StreamName::new("shop")?, TopicName::new("orders")?);
/// connector.ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 4)).await?;
///
/// let publisher = BatchingPublisher::new(connector.clone(), BatchingOptions::default())?;
/// let receipt = publisher
///     .publish(&stream, &topic, Partitioning::Key("tenant-1".into()),
///              OutgoingMessage::new(&b"hello"[..]))
///     .await?;
/// assert_eq!(receipt.count, 1);
/// publisher.shutdown().await;
/// connector.shutdown().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct BatchingPublisher {
    inner: Arc<Inner>,
}

impl fmt::Debug for BatchingPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchingPublisher")
            .field("options", &self.inner.options)
            .field("mode", &self.inner.connector.mode())
            .field("buffered", &self.buffered())
            .finish()
    }
}

impl BatchingPublisher {
    /// A publisher over a connected `connector`. Needs a Tokio runtime: each lane
    /// runs as a task.
    pub fn new(
        connector: Arc<dyn IggyConnector>,
        options: BatchingOptions,
    ) -> Result<Self, BatchError> {
        options.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                connector,
                buffer: Arc::new(Semaphore::new(options.buffer_messages)),
                options,
                closed: AtomicBool::new(false),
                topics: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &BatchingOptions {
        &self.inner.options
    }

    /// The connector underneath.
    #[must_use]
    pub fn connector(&self) -> &Arc<dyn IggyConnector> {
        &self.inner.connector
    }

    /// Messages submitted and not yet answered by the broker.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.inner
            .options
            .buffer_messages
            .saturating_sub(self.inner.buffer.available_permits())
    }

    /// Publishes one message as part of a batch and returns its own receipt once the
    /// broker acknowledged the batch. Same as [`BatchingPublisher::submit`] followed
    /// by awaiting the receipt.
    ///
    /// Once the message is queued it is sent even if this future is dropped.
    pub async fn publish(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partitioning: Partitioning,
        message: OutgoingMessage,
    ) -> Result<PublishReceipt, BatchError> {
        self.submit(stream, topic, partitioning, message)
            .await?
            .await
    }

    /// Queues one message (waiting for room in the buffer as
    /// [`BatchingOptions::backpressure`] says) and returns its pending receipt.
    ///
    /// Messages submitted one after the other to the same partition (or key) are
    /// stored in that order. `Partitioning::Key` is resolved here with
    /// [`Partitioning::fixed_partition`] over the topic's partition count, so keyed messages share
    /// their partition's batches. The topic and partition are checked before the
    /// message is queued (the topic's partition count is read once and cached), so
    /// an unknown target fails this call alone ([`BatchError::Rejected`]).
    pub async fn submit(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partitioning: Partitioning,
        message: OutgoingMessage,
    ) -> Result<PendingReceipt, BatchError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BatchError::Closed);
        }
        let lanes = match self.cached_lanes(stream, topic) {
            Some(lanes) => lanes,
            None => {
                let info = self
                    .inner
                    .connector
                    .topic_info(stream, topic)
                    .await?
                    .ok_or_else(|| ConnectorError::TopicNotFound {
                        stream: stream.to_string(),
                        topic: topic.to_string(),
                    })?;
                self.lanes_for(stream, topic, info.partitions)
            }
        };
        let partition = partitioning.fixed_partition(lanes.partitions);
        self.submit_to(&lanes, partition, message).await
    }

    /// Returns once every message submitted before this call was answered by the
    /// broker (acknowledged or failed; each caller gets its own outcome). Batches
    /// waiting for their linger time are sent at once.
    pub async fn flush(&self) {
        let mut answers = Vec::new();
        for lane in self.started_lanes() {
            let (done, answer) = oneshot::channel();
            if lane.sender.send(LaneMessage::Flush(done)).is_ok() {
                lane.signal.wake.notify_one();
                answers.push(answer);
            }
        }
        for answer in answers {
            // An error means the lane ended, which it does only once it is empty.
            let _ = answer.await;
        }
    }

    /// Refuses new messages ([`BatchError::Closed`], also for calls waiting for room
    /// in the buffer) and returns once every queued message was answered by the
    /// broker. The connector stays connected. Calling it again does nothing.
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.buffer.close();
        let mut answers = Vec::new();
        for lane in self.started_lanes() {
            let (done, answer) = oneshot::channel();
            if lane.sender.send(LaneMessage::Close(done)).is_ok() {
                lane.signal.wake.notify_one();
                answers.push(answer);
            }
        }
        for answer in answers {
            let _ = answer.await;
        }
    }

    /// The lanes of a topic whose partition count is known (the typed transports
    /// know it); made on first use.
    pub(crate) fn lanes_for(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partitions: u32,
    ) -> Arc<TopicLanes> {
        let mut topics = self.topics();
        if let Some(lanes) = topics.get(stream).and_then(|by_topic| by_topic.get(topic))
            && lanes.partitions == partitions
        {
            return Arc::clone(lanes);
        }
        // New, or the topic was found with another partition count: new lanes (the
        // old ones finish what they hold).
        let lanes = Arc::new(TopicLanes::new(stream.clone(), topic.clone(), partitions));
        topics
            .entry(stream.clone())
            .or_default()
            .insert(topic.clone(), Arc::clone(&lanes));
        lanes
    }

    /// Queues `message` on the lane of `partition` (`None`: balanced) of `lanes`.
    pub(crate) async fn submit_to(
        &self,
        lanes: &TopicLanes,
        partition: Option<u32>,
        message: OutgoingMessage,
    ) -> Result<PendingReceipt, BatchError> {
        message.check_size()?;
        let slot = match partition {
            None => lanes.partitions,
            Some(p) if p < lanes.partitions => p,
            Some(p) => {
                return Err(ConnectorError::PartitionNotFound {
                    stream: lanes.stream.to_string(),
                    topic: lanes.topic.to_string(),
                    partition: p,
                    partitions: lanes.partitions,
                }
                .into());
            }
        } as usize;
        let permit = self.acquire().await?;
        let lane = self.lane(lanes, slot)?;
        let size = FRAME_HEADER_BYTES + message.payload.len() + message.headers.encoded_len();
        let (reply, receipt) = oneshot::channel();
        let item = Item {
            message,
            size,
            submitted: Instant::now(),
            reply,
            _permit: permit,
        };
        // Counted before it is visible to the lane, which counts it out.
        let queued = lane.signal.queued.fetch_add(1, Ordering::AcqRel) + 1;
        let bytes = lane.signal.queued_bytes.fetch_add(size, Ordering::AcqRel) + size;
        if lane.sender.send(LaneMessage::Item(item)).is_err() {
            // The lane was closed by shutdown.
            lane.signal.queued.fetch_sub(1, Ordering::AcqRel);
            lane.signal.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return Err(BatchError::Closed);
        }
        if queued >= self.inner.options.max_batch_messages
            || bytes >= self.inner.options.max_batch_bytes
        {
            lane.signal.wake.notify_one();
        }
        Ok(PendingReceipt { reply: receipt })
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, TopicMap> {
        self.inner
            .topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn cached_lanes(&self, stream: &StreamName, topic: &TopicName) -> Option<Arc<TopicLanes>> {
        self.topics().get(stream)?.get(topic).cloned()
    }

    /// Every lane started so far.
    fn started_lanes(&self) -> Vec<LaneHandle> {
        self.topics()
            .values()
            .flat_map(HashMap::values)
            .flat_map(|lanes| lanes.lanes.iter().filter_map(OnceLock::get))
            .cloned()
            .collect()
    }

    /// The lane in `slot`, started on first use (under the topics lock, so that
    /// shutdown sees every lane that can hold a message).
    fn lane<'a>(&self, lanes: &'a TopicLanes, slot: usize) -> Result<&'a LaneHandle, BatchError> {
        let cell = lanes.lanes.get(slot).ok_or(BatchError::Lost)?;
        if let Some(lane) = cell.get() {
            return Ok(lane);
        }
        let _topics = self.topics();
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BatchError::Closed);
        }
        Ok(cell.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let signal = Arc::new(LaneSignal::default());
            let lane = Lane {
                connector: Arc::clone(&self.inner.connector),
                limits: Limits::of(&self.inner.options),
                stream: lanes.stream.clone(),
                topic: lanes.topic.clone(),
                partition: u32::try_from(slot).ok().filter(|&p| p < lanes.partitions),
                partitions: lanes.partitions,
                balanced: RoundRobin::new(),
                retry: self.inner.options.publish_retry,
                signal: Arc::clone(&signal),
            };
            tokio::spawn(lane.run(receiver));
            LaneHandle { sender, signal }
        }))
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, BatchError> {
        let buffer = Arc::clone(&self.inner.buffer);
        let capacity = self.inner.options.buffer_messages;
        match self.inner.options.backpressure {
            Backpressure::Wait => buffer.acquire_owned().await.map_err(|_| BatchError::Closed),
            Backpressure::WaitTimeout(waited) => {
                match tokio::time::timeout(waited, buffer.acquire_owned()).await {
                    Ok(permit) => permit.map_err(|_| BatchError::Closed),
                    Err(_) => Err(BatchError::BufferTimeout { capacity, waited }),
                }
            }
            Backpressure::FailFast => buffer.try_acquire_owned().map_err(|e| match e {
                TryAcquireError::NoPermits => BatchError::BufferFull { capacity },
                TryAcquireError::Closed => BatchError::Closed,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    linger: Duration,
    max_messages: usize,
    max_bytes: usize,
}

impl Limits {
    fn of(options: &BatchingOptions) -> Self {
        Self {
            linger: options.linger,
            max_messages: options.max_batch_messages,
            max_bytes: options.max_batch_bytes,
        }
    }
}

/// The task of one lane: forms batches, sends one at a time, answers each message.
struct Lane {
    connector: Arc<dyn IggyConnector>,
    limits: Limits,
    stream: StreamName,
    topic: TopicName,
    /// `None`: the balanced lane.
    partition: Option<u32>,
    /// The topic's partition count, and the balanced lane's cursor over them: a
    /// batch's partition is chosen before its first attempt, so that a retry goes
    /// where the first attempt went.
    partitions: u32,
    balanced: RoundRobin,
    retry: PublishRetry,
    signal: Arc<LaneSignal>,
}

impl Lane {
    /// Waits for a first message, then until its linger time is over or a full
    /// batch is queued (producers signal that; they do not wake the task for every
    /// message), takes a batch, sends it, answers; again until the queue ends.
    async fn run(self, mut queue: mpsc::UnboundedReceiver<LaneMessage>) {
        let mut carried: Option<Item> = None;
        let mut closed: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            let first = match carried.take() {
                Some(item) => item,
                None => match queue.recv().await {
                    None => break,
                    Some(LaneMessage::Flush(done)) => {
                        // Everything before it was answered already.
                        let _ = done.send(());
                        continue;
                    }
                    Some(LaneMessage::Close(done)) => {
                        queue.close();
                        closed.push(done);
                        continue;
                    }
                    Some(LaneMessage::Item(item)) => {
                        self.taken(&item);
                        item
                    }
                },
            };
            // Let the tasks that are ready run first (the callers just answered,
            // typically), so that what they submit joins this batch, even with no
            // linger and a connector that blocks its thread (fsync).
            tokio::task::yield_now().await;
            let deadline = first.submitted + self.limits.linger;
            if closed.is_empty() && !self.full() && Instant::now() < deadline {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = self.signal.wake.notified() => {}
                }
            }
            let mut bytes = first.size;
            let mut batch = vec![first];
            let mut flushes = Vec::new();
            while batch.len() < self.limits.max_messages && bytes < self.limits.max_bytes {
                match queue.try_recv() {
                    Ok(LaneMessage::Item(item)) => {
                        self.taken(&item);
                        if bytes.saturating_add(item.size) > self.limits.max_bytes {
                            carried = Some(item);
                            break;
                        }
                        bytes = bytes.saturating_add(item.size);
                        batch.push(item);
                    }
                    Ok(LaneMessage::Flush(done)) => {
                        flushes.push(done);
                        break;
                    }
                    Ok(LaneMessage::Close(done)) => {
                        queue.close();
                        closed.push(done);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.send(batch).await;
            for done in flushes {
                let _ = done.send(());
            }
        }
        for done in closed {
            let _ = done.send(());
        }
    }

    /// Counts `item` out of the queue.
    fn taken(&self, item: &Item) {
        self.signal.queued.fetch_sub(1, Ordering::AcqRel);
        self.signal
            .queued_bytes
            .fetch_sub(item.size, Ordering::AcqRel);
    }

    /// Whether a full batch is queued (besides the message already taken).
    fn full(&self) -> bool {
        self.signal.queued.load(Ordering::Acquire) + 1 >= self.limits.max_messages
            || self.signal.queued_bytes.load(Ordering::Acquire) >= self.limits.max_bytes
    }

    /// Publishes one batch and answers each of its messages. Records the same
    /// metrics as [`crate::Transport`]'s publishes, per batch.
    async fn send(&self, mut batch: Vec<Item>) {
        let bytes: u64 = batch
            .iter()
            .map(|item| item.message.payload.len() as u64)
            .sum();
        // Ids of 0 get one here, so that a retry resends the same ids.
        let messages = batch
            .iter_mut()
            .map(|item| {
                let mut message = std::mem::take(&mut item.message);
                if message.id == 0 {
                    message.id = uuid::Uuid::new_v4().as_u128();
                }
                message
            })
            .collect();
        let partition = self
            .partition
            .unwrap_or_else(|| self.balanced.next(self.partitions));
        let request = PublishRequest {
            stream: self.stream.clone(),
            topic: self.topic.clone(),
            partitioning: Partitioning::Partition(partition),
            messages,
        };
        let started = std::time::Instant::now();
        let result = self
            .retry
            .publish(request, |request| self.connector.publish(request))
            .await;
        let metrics = Metrics::global();
        metrics.observe(
            metric_names::OPERATION_DURATION,
            &[("messaging_operation_name", "publish")],
            started.elapsed(),
        );
        match result {
            Ok(receipt) => {
                let topic = [("messaging_destination_name", self.topic.as_str())];
                metrics.add(metric_names::SENT_MESSAGES, &topic, batch.len() as u64);
                metrics.add(metric_names::SENT_BYTES, &topic, bytes);
                for (index, item) in (0u32..).zip(batch) {
                    let offset = receipt
                        .offset_of(index)
                        .unwrap_or(receipt.base_offset + u64::from(index));
                    let mut own = PublishReceipt::stored(receipt.partition, offset, 1);
                    if receipt.is_duplicate(index) {
                        own.duplicates.push(Duplicate { index: 0, offset });
                    }
                    let _ = item.reply.send(Ok(own));
                }
            }
            Err(error) => {
                tracing::warn!(stream = %self.stream, topic = %self.topic, messages = batch.len(), %error, "a coalesced batch failed");
                let source = Arc::new(error);
                let messages = batch.len();
                for item in batch {
                    let _ = item.reply.send(Err(BatchError::Publish {
                        messages,
                        source: Arc::clone(&source),
                    }));
                }
            }
        }
    }
}
