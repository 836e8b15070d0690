//! The `IggyConnector` trait: one contract, two modes.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::{ConnectorConfig, ConnectorMode};
use crate::error::ConnectorError;
use crate::message::{OutgoingMessage, ReceivedMessage};
use crate::names::{GroupName, StreamName, TopicName};
use crate::partition::{RoundRobin, check_partition_count, partition_for};

/// Retention of a topic: whole old segments are deleted past either limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Messages older than this may be deleted. `None` keeps them forever.
    pub max_age: Option<Duration>,
    /// The topic may not grow past this many bytes. `None` means no limit.
    pub max_size_bytes: Option<u64>,
}

/// What a topic should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Its stream (created if missing).
    pub stream: StreamName,
    /// The topic.
    pub topic: TopicName,
    /// Number of partitions (1 to [`MAX_PARTITIONS`](crate::MAX_PARTITIONS)).
    pub partitions: u32,
    /// Retention.
    pub retention: Retention,
}

impl TopicSpec {
    /// A topic with `partitions` partitions and no retention limit.
    #[must_use]
    pub fn new(stream: StreamName, topic: TopicName, partitions: u32) -> Self {
        Self {
            stream,
            topic,
            partitions,
            retention: Retention::default(),
        }
    }

    /// Checks what the type cannot: 1 to [`MAX_PARTITIONS`](crate::MAX_PARTITIONS) partitions. Every
    /// connector checks a spec with this before it creates or compares a topic.
    ///
    /// # Errors
    /// [`ConnectorError::InvalidRequest`] naming the count and the allowed range.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        Ok(check_partition_count(self.partitions)?)
    }
}

/// A topic as the broker has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Its stream.
    pub stream: StreamName,
    /// The topic.
    pub topic: TopicName,
    /// Number of partitions; ids are `0..partitions`.
    pub partitions: u32,
    /// Retention in force.
    pub retention: Retention,
    /// Per partition, the offset the next message will get (0 for an empty partition).
    pub next_offsets: Vec<u64>,
}

/// Which partition a batch goes to.
#[derive(Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// Round-robin over the partitions.
    Balanced,
    /// This partition (0-based).
    Partition(u32),
    /// The partition of this key: [`crate::partition_for`] (what every Iggy client computes).
    Key(Bytes),
}

impl Partitioning {
    /// The partition this names in a topic of `partitions` partitions: `Partition(p)`
    /// is `p` as given (the connector checks that it exists), `Key` is
    /// [`partition_for`]; `None` for `Balanced`, which the connector picks.
    #[must_use]
    pub fn fixed_partition(&self, partitions: u32) -> Option<u32> {
        match self {
            Self::Balanced => None,
            Self::Partition(p) => Some(*p),
            Self::Key(key) => Some(partition_for(key, partitions)),
        }
    }

    /// The partition a batch goes to: [`fixed_partition`](Self::fixed_partition), or
    /// for `Balanced` the next partition of the topic's `round_robin`. Every connector
    /// (in-process, over the TCP listener, remote) chooses with this.
    pub fn resolve(&self, partitions: u32, round_robin: &RoundRobin) -> u32 {
        self.fixed_partition(partitions)
            .unwrap_or_else(|| round_robin.next(partitions))
    }
}

impl From<iggy_binary_protocol::WirePartitioning> for Partitioning {
    /// The partitioning of an Iggy `SendMessages` request.
    fn from(wire: iggy_binary_protocol::WirePartitioning) -> Self {
        use iggy_binary_protocol::WirePartitioning as Wire;
        match wire {
            Wire::Balanced => Self::Balanced,
            Wire::PartitionId(p) => Self::Partition(p),
            Wire::MessagesKey(key) => Self::Key(Bytes::from(key)),
        }
    }
}

impl fmt::Debug for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Balanced => f.write_str("Balanced"),
            Self::Partition(p) => write!(f, "Partition({p})"),
            Self::Key(key) => write!(f, "Key({} bytes)", key.len()),
        }
    }
}

/// A batch of messages for one partition of one topic.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// Target stream.
    pub stream: StreamName,
    /// Target topic.
    pub topic: TopicName,
    /// Target partition.
    pub partitioning: Partitioning,
    /// The messages, in order. They are appended contiguously, in this order.
    pub messages: Vec<OutgoingMessage>,
}

impl PublishRequest {
    /// A request for `stream`/`topic` with balanced partitioning and no messages yet.
    #[must_use]
    pub fn new(stream: StreamName, topic: TopicName) -> Self {
        Self {
            stream,
            topic,
            partitioning: Partitioning::Balanced,
            messages: Vec::new(),
        }
    }

    /// Routes the batch by `key`.
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.partitioning = Partitioning::Key(key.into());
        self
    }

    /// Routes the batch to `partition`.
    #[must_use]
    pub fn partition(mut self, partition: u32) -> Self {
        self.partitioning = Partitioning::Partition(partition);
        self
    }

    /// Refuses an empty batch and payloads over the Iggy limit (what every
    /// connector checks before sending).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.messages.is_empty() {
            return Err(ConnectorError::InvalidRequest(
                "a batch needs at least one message".into(),
            ));
        }
        self.messages
            .iter()
            .try_for_each(OutgoingMessage::check_size)
    }

    /// Adds a message.
    #[must_use]
    pub fn message(mut self, message: OutgoingMessage) -> Self {
        self.messages.push(message);
        self
    }
}

/// The broker's acknowledgement of a published batch.
///
/// The messages the broker stored have contiguous offsets from `base_offset`, in
/// batch order. A message whose id the partition had stored already, within its
/// deduplication window, was not stored again: it is listed in `duplicates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReceipt {
    /// The partition the batch went to.
    pub partition: u32,
    /// The offset of the first message stored by this batch; the others stored
    /// follow contiguously. When every message was a duplicate, the offset of the
    /// first one's stored copy.
    pub base_offset: u64,
    /// How many messages the batch held (stored and duplicates).
    pub count: u32,
    /// The messages that were duplicates, in batch order.
    pub duplicates: Vec<Duplicate>,
}

/// A message of a published batch that the broker had stored before (the same
/// message id, within the partition's deduplication window), so did not store again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    /// Its position in the batch.
    pub index: u32,
    /// The offset of the stored copy.
    pub offset: u64,
}

impl PublishReceipt {
    /// A receipt for `count` messages all stored from `base_offset`.
    #[must_use]
    pub fn stored(partition: u32, base_offset: u64, count: u32) -> Self {
        Self {
            partition,
            base_offset,
            count,
            duplicates: Vec::new(),
        }
    }

    /// Whether message `index` of the batch was a duplicate (not stored again).
    #[must_use]
    pub fn is_duplicate(&self, index: u32) -> bool {
        self.duplicates.iter().any(|d| d.index == index)
    }

    /// The offset of message `index` of the batch: where it was stored, or for a
    /// duplicate where its copy was stored before. `None` past the batch.
    #[must_use]
    pub fn offset_of(&self, index: u32) -> Option<u64> {
        if index >= self.count {
            return None;
        }
        let mut before = 0u64;
        for duplicate in &self.duplicates {
            if duplicate.index == index {
                return Some(duplicate.offset);
            }
            if duplicate.index < index {
                before += 1;
            }
        }
        Some(self.base_offset + u64::from(index) - before)
    }
}

/// Where a read starts: a [`poll`](IggyConnector::poll), a
/// [`subscribe`](IggyConnector::subscribe), a consumer group on partitions it has no
/// committed offset for, and a replay all use this one vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// From the oldest retained message.
    #[default]
    Earliest,
    /// Only messages appended from now on (for a group: after the group was created).
    Latest,
    /// From this offset (or the oldest retained one, if it was deleted); for a group, in
    /// every partition.
    Offset(u64),
    /// From the first message appended at or after this time (µs since the Unix epoch).
    Timestamp(u64),
}

/// A group member's share of the partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// Increases at every rebalance of the group.
    pub generation: u64,
    /// The partitions this member owns.
    pub partitions: Vec<u32>,
}

/// A partition that refuses writes: its log was poisoned by a failed write or fsync
/// (embedded), until the broker is reopened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnwritablePartition {
    /// Its stream.
    pub stream: StreamName,
    /// Its topic.
    pub topic: TopicName,
    /// The partition.
    pub partition: u32,
}

impl fmt::Display for UnwritablePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} partition {}",
            self.stream, self.topic, self.partition
        )
    }
}

/// What [`IggyConnector::ping`] found: the broker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PingReport {
    /// How long the answer took.
    pub round_trip: Duration,
    /// Partitions that refuse writes (known to the embedded broker; a remote
    /// server reports none through this call).
    pub unwritable: Vec<UnwritablePartition>,
}

impl PingReport {
    /// A report of an answer after `round_trip`, with the partitions that refuse
    /// writes.
    #[must_use]
    pub fn new(round_trip: Duration, unwritable: Vec<UnwritablePartition>) -> Self {
        Self {
            round_trip,
            unwritable,
        }
    }
}

/// Reads one partition from a position, waiting at its head for new messages.
///
/// A subscriber has its own cursor and never reads or moves any stored consumer
/// offset: it is what replay is built on.
#[async_trait]
pub trait MessageSubscriber: Send + fmt::Debug {
    /// The next messages (at most `max`), waiting until at least one is available.
    async fn next_batch(&mut self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError>;
}

/// A member of a consumer group.
///
/// Delivery is at-least-once: [`GroupConsumer::poll`] never commits; the caller
/// commits with [`GroupConsumer::commit`] after it has handled the messages. When the
/// group rebalances, a partition's new owner starts after that partition's last
/// commit, so whatever was polled but not committed is delivered again.
#[async_trait]
pub trait GroupConsumer: Send + Sync + fmt::Debug {
    /// The group.
    fn group(&self) -> &GroupName;

    /// The partitions this member owns now.
    fn assignment(&self) -> Assignment;

    /// The next messages from the partitions this member owns (at most `max`, in
    /// offset order within each partition), waiting until at least one is available.
    /// Does not commit anything.
    async fn poll(&self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError>;

    /// Makes `partition` read from `offset` on: this member's read position only,
    /// never the group's committed offset. Used to read a partition again after a
    /// pause (messages that were read and set aside). Messages of `partition` that a
    /// poll returns after `seek` returned start at `offset`, a poll in progress
    /// included. Has no effect on a partition this member does not own; a rebalance
    /// that follows restarts every owned partition after its last commit, as always.
    fn seek(&self, partition: u32, offset: u64);

    /// Whether [`poll`](Self::poll) reads ahead: after a poll that returned `max`
    /// messages, the next poll of up to `max` is read in the background while the
    /// caller handles the batch. A caller bounding what it holds unhandled counts
    /// that read too. `false` unless the connector says otherwise.
    fn reads_ahead(&self) -> bool {
        false
    }

    /// Stores `offset` (the last handled message) as the group's committed offset for
    /// `partition`. Fails with [`ConnectorError::Fenced`] when the partition is no
    /// longer assigned to this member.
    async fn commit(&self, partition: u32, offset: u64) -> Result<(), ConnectorError>;

    /// Leaves the group; its partitions go to the remaining members.
    async fn leave(&self) -> Result<(), ConnectorError>;
}

/// The connection layer: a broker in this process, or a remote Iggy server.
///
/// Object-safe: the typed layer holds an `Arc<dyn IggyConnector>`.
#[async_trait]
pub trait IggyConnector: Send + Sync + fmt::Debug + 'static {
    /// Which mode this connector implements.
    fn mode(&self) -> ConnectorMode;

    /// Opens the broker (embedded) or the connection (remote).
    async fn connect(&self, config: &ConnectorConfig) -> Result<(), ConnectorError>;

    /// Whether [`IggyConnector::connect`] succeeded and no shutdown followed. This
    /// is not a liveness check: a remote server may be gone while this is `true`
    /// (use [`IggyConnector::ping`]).
    fn is_connected(&self) -> bool;

    /// Checks that the broker answers within `timeout`: a ping round trip to the
    /// server (remote), the broker being open (embedded). Fails with
    /// [`ConnectorError::NotConnected`] before `connect` or after `shutdown`,
    /// [`ConnectorError::Timeout`] when no answer came in time, and the connection's
    /// error when it is lost. The report lists the partitions that refuse writes.
    async fn ping(&self, timeout: Duration) -> Result<PingReport, ConnectorError>;

    /// Creates the stream and the topic when missing. An existing topic with another
    /// partition count is reported as [`ConnectorError::TopologyMismatch`], never
    /// recreated; its retention is updated to the one asked for.
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<TopicInfo, ConnectorError>;

    /// The topic, if it exists.
    async fn topic_info(
        &self,
        stream: &StreamName,
        topic: &TopicName,
    ) -> Result<Option<TopicInfo>, ConnectorError>;

    /// Appends the batch to one partition. Returns once the broker has accepted it:
    /// for the embedded broker, once it is written under the configured durability
    /// policy. Messages whose id the partition stored within its deduplication window
    /// are not stored again; the receipt lists them ([`PublishReceipt::duplicates`]).
    /// A message id of 0 gets a random UUIDv4 before it is sent.
    async fn publish(&self, request: PublishRequest) -> Result<PublishReceipt, ConnectorError>;

    /// Reads at most `max` messages of one partition from `from`, without waiting and
    /// without touching any consumer offset.
    async fn poll(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partition: u32,
        from: StartPosition,
        max: u32,
    ) -> Result<Vec<ReceivedMessage>, ConnectorError>;

    /// A reader of one partition from `from` that waits at the head for new messages.
    async fn subscribe(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partition: u32,
        from: StartPosition,
    ) -> Result<Box<dyn MessageSubscriber>, ConnectorError>;

    /// Joins `group` (created when missing, starting at `start`).
    async fn join_group(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        group: &GroupName,
        start: StartPosition,
    ) -> Result<Box<dyn GroupConsumer>, ConnectorError>;

    /// The group's committed offsets, one per partition (`None` where nothing was
    /// committed yet).
    async fn committed_offsets(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        group: &GroupName,
    ) -> Result<Vec<Option<u64>>, ConnectorError>;

    /// Flushes and closes. Data acknowledged before is kept; calls afterwards fail with
    /// [`ConnectorError::NotConnected`].
    async fn shutdown(&self) -> Result<(), ConnectorError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_chooses_the_partition() {
        let cursor = RoundRobin::new();
        let key = Bytes::from_static(b"tenant-7");
        assert_eq!(
            Partitioning::Key(key.clone()).resolve(5, &cursor),
            partition_for(&key, 5)
        );
        assert_eq!(Partitioning::Partition(3).resolve(5, &cursor), 3);
        let balanced: Vec<u32> = (0..6)
            .map(|_| Partitioning::Balanced.resolve(4, &cursor))
            .collect();
        assert_eq!(
            balanced,
            [0, 1, 2, 3, 0, 1],
            "keyed and fixed picks do not turn it"
        );
        assert_eq!(Partitioning::Balanced.fixed_partition(4), None);
        assert_eq!(
            Partitioning::from(iggy_binary_protocol::WirePartitioning::MessagesKey(
                b"tenant-7".to_vec()
            )),
            Partitioning::Key(key)
        );
        assert_eq!(
            Partitioning::from(iggy_binary_protocol::WirePartitioning::PartitionId(2)),
            Partitioning::Partition(2)
        );
    }

    #[test]
    fn one_check_bounds_the_partition_count() {
        let stream = StreamName::new("s").unwrap();
        let topic = TopicName::new("t").unwrap();
        let spec = |n| TopicSpec::new(stream.clone(), topic.clone(), n);
        assert!(spec(1).validate().is_ok());
        assert!(spec(crate::MAX_PARTITIONS).validate().is_ok());
        for bad in [0, crate::MAX_PARTITIONS + 1] {
            let err = spec(bad).validate().unwrap_err().to_string();
            assert!(
                err.contains("1 to 1000") && err.contains(&bad.to_string()),
                "{err}"
            );
        }
    }
}
