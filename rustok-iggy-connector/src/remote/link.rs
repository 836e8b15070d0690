//! The remote connector's link to the server: its pool of SDK clients (each one a
//! logged-in server link), the topic metadata it caches, and the group members it
//! opened.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use iggy::prelude::{
    Consumer, Identifier, IggyClient, IggyError, MessageClient, PollingStrategy, StreamClient,
    TopicClient, TopicDetails,
};
use tokio::sync::watch;

use super::client::{is_partition_not_found, is_stream_not_found, is_topic_not_found, sdk_error};
use super::convert;
use crate::config::RemoteConnectorConfig;
use crate::error::ConnectorError;
use crate::message::ReceivedMessage;
use crate::names::{StreamName, TopicName};
use crate::partition::RoundRobin;

/// The consumer id of replay reads. Replay polls name an explicit offset (or
/// timestamp) and never auto-commit, so nothing is ever stored under it.
const REPLAY_CONSUMER_ID: u32 = 0x7275_7374;

/// What the connector remembers about a topic.
#[derive(Debug)]
pub(super) struct TopicMeta {
    /// Partition count, as the server last described it.
    pub(super) partitions: u32,
    /// Cursor of balanced publishing (client-side round-robin).
    pub(super) balanced: RoundRobin,
}

impl TopicMeta {}

/// A live link to the server: the pool of SDK clients, from connect to shutdown.
pub(super) struct Link {
    /// Connection 0: metadata calls, and the partition-scoped calls of the
    /// partitions it serves.
    pub(super) client: IggyClient,
    /// Connections 1.. of the pool (`remote.pool_size - 1` of them).
    pool: Vec<IggyClient>,
    pub(super) config: RemoteConnectorConfig,
    /// The configured addresses, the one that answered first.
    pub(super) addresses: Vec<String>,
    topics: Mutex<HashMap<(String, String), Arc<TopicMeta>>>,
    /// Becomes `true` at shutdown: waiting polls end, and group members leave.
    pub(super) closed: watch::Sender<bool>,
    /// Whatever must finish before shutdown returns (a member leaving its group)
    /// holds a receiver; [`departed`](Self::departed) waits until none is left.
    departures: watch::Sender<()>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("addresses", &self.addresses)
            .field("protocol", &self.config.protocol)
            .field("pool_size", &self.pool_size())
            .finish_non_exhaustive()
    }
}

/// The SDK identifier of a stream, topic or group name.
pub(super) fn ident(name: &str) -> Result<Identifier, ConnectorError> {
    Identifier::named(name).map_err(|e| sdk_error(format!("name {name:?}"), e))
}

/// The typed error of a failed call on `stream`/`topic` (and `partition`, with the
/// topic's partition count).
pub(super) fn topic_error(
    context: impl Into<String>,
    error: IggyError,
    stream: &StreamName,
    topic: &TopicName,
    partition: Option<(u32, u32)>,
) -> ConnectorError {
    if is_stream_not_found(&error) {
        return ConnectorError::StreamNotFound {
            stream: stream.to_string(),
        };
    }
    if is_topic_not_found(&error) {
        return ConnectorError::TopicNotFound {
            stream: stream.to_string(),
            topic: topic.to_string(),
        };
    }
    if let (true, Some((partition, partitions))) = (is_partition_not_found(&error), partition) {
        return ConnectorError::PartitionNotFound {
            stream: stream.to_string(),
            topic: topic.to_string(),
            partition,
            partitions,
        };
    }
    sdk_error(context, error)
}

/// One partition of a topic, with the topic's partition count (for errors).
#[derive(Debug, Clone, Copy)]
pub(super) struct At<'a> {
    pub(super) stream: &'a StreamName,
    pub(super) topic: &'a TopicName,
    pub(super) partition: u32,
    pub(super) partitions: u32,
}

impl At<'_> {
    /// The typed error of a failed call on this partition.
    pub(super) fn error(&self, context: &str, error: IggyError) -> ConnectorError {
        topic_error(
            format!(
                "{context} {}/{} partition {}",
                self.stream, self.topic, self.partition
            ),
            error,
            self.stream,
            self.topic,
            Some((self.partition, self.partitions)),
        )
    }
}

/// Polls one partition with an explicit strategy, never committing. `from` (the
/// offset asked for, if any) drops earlier messages of a whole-batch reply.
pub(super) async fn poll_partition(
    client: &IggyClient,
    consumer: &Consumer,
    at: At<'_>,
    strategy: PollingStrategy,
    from: Option<u64>,
    max: u32,
) -> Result<PolledPartition, IggyError> {
    let (s, t) = (
        Identifier::named(at.stream.as_str())?,
        Identifier::named(at.topic.as_str())?,
    );
    let polled = client
        .poll_messages(
            &s,
            &t,
            Some(at.partition),
            consumer,
            &strategy,
            max.max(1),
            false,
        )
        .await?;
    Ok(PolledPartition {
        partition_id: polled.partition_id,
        messages: polled.messages,
        from,
        max,
    })
}

/// A poll reply, before conversion.
pub(super) struct PolledPartition {
    /// The partition id of the reply (a sentinel on a fenced group poll).
    pub(super) partition_id: u32,
    messages: Vec<iggy::prelude::IggyMessage>,
    from: Option<u64>,
    max: u32,
}

impl PolledPartition {
    /// Whether the reply carries no message.
    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The messages of `partition`.
    pub(super) fn into_messages(self, partition: u32) -> Vec<ReceivedMessage> {
        convert::received(partition, self.messages, self.from, self.max)
    }
}

impl Link {
    /// A link over connection 0 (`client`) and the other connections of the pool.
    pub(super) fn new(
        client: IggyClient,
        pool: Vec<IggyClient>,
        config: RemoteConnectorConfig,
        addresses: Vec<String>,
    ) -> Self {
        Self {
            client,
            pool,
            config,
            addresses,
            topics: Mutex::new(HashMap::new()),
            closed: watch::channel(false).0,
            departures: watch::channel(()).0,
        }
    }

    /// How many connections the pool has.
    pub(super) fn pool_size(&self) -> usize {
        self.pool.len() + 1
    }

    /// The connection that carries the calls of `partition`: connection
    /// `partition % pool_size`, so the calls of one partition stay in order while
    /// those of different partitions can run in parallel.
    pub(super) fn connection(&self, partition: u32) -> &IggyClient {
        let index = partition as usize % self.pool_size();
        match index.checked_sub(1) {
            Some(i) => self.pool.get(i).unwrap_or(&self.client),
            None => &self.client,
        }
    }

    /// Every connection of the pool, connection 0 first.
    pub(super) fn connections(&self) -> impl Iterator<Item = &IggyClient> {
        std::iter::once(&self.client).chain(&self.pool)
    }

    pub(super) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// A token that [`departed`](Self::departed) waits for: hold it until the work
    /// that must end before shutdown returns is done.
    pub(super) fn departure(&self) -> watch::Receiver<()> {
        self.departures.subscribe()
    }

    /// Returns when every [`departure`](Self::departure) token is dropped.
    pub(super) async fn departed(&self) {
        self.departures.closed().await;
    }

    fn remember(&self, stream: &StreamName, topic: &TopicName, partitions: u32) -> Arc<TopicMeta> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (stream.to_string(), topic.to_string());
        match topics.get(&key) {
            Some(meta) if meta.partitions == partitions => Arc::clone(meta),
            _ => {
                let meta = Arc::new(TopicMeta {
                    partitions,
                    balanced: RoundRobin::new(),
                });
                topics.insert(key, Arc::clone(&meta));
                meta
            }
        }
    }

    pub(super) fn forget(&self, stream: &StreamName, topic: &TopicName) {
        self.topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(stream.to_string(), topic.to_string()));
    }

    fn cached(&self, stream: &StreamName, topic: &TopicName) -> Option<Arc<TopicMeta>> {
        self.topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(stream.to_string(), topic.to_string()))
            .cloned()
    }

    /// The topic as the server describes it, `None` when it or its stream is
    /// missing. Refreshes the cached partition count.
    pub(super) async fn describe(
        &self,
        stream: &StreamName,
        topic: &TopicName,
    ) -> Result<Option<TopicDetails>, ConnectorError> {
        let (s, t) = (ident(stream.as_str())?, ident(topic.as_str())?);
        match self.client.get_topic(&s, &t).await {
            Ok(Some(details)) => {
                self.remember(stream, topic, details.partitions_count);
                Ok(Some(details))
            }
            Ok(None) => {
                self.forget(stream, topic);
                Ok(None)
            }
            Err(e) if is_stream_not_found(&e) || is_topic_not_found(&e) => {
                self.forget(stream, topic);
                Ok(None)
            }
            Err(e) => Err(sdk_error(format!("describe topic {stream}/{topic}"), e)),
        }
    }

    /// The topic's metadata (cached), or the typed error naming what is missing.
    pub(super) async fn require(
        &self,
        stream: &StreamName,
        topic: &TopicName,
    ) -> Result<Arc<TopicMeta>, ConnectorError> {
        if let Some(meta) = self.cached(stream, topic) {
            return Ok(meta);
        }
        self.require_fresh(stream, topic).await
    }

    async fn require_fresh(
        &self,
        stream: &StreamName,
        topic: &TopicName,
    ) -> Result<Arc<TopicMeta>, ConnectorError> {
        if self.describe(stream, topic).await?.is_some()
            && let Some(meta) = self.cached(stream, topic)
        {
            return Ok(meta);
        }
        let s = ident(stream.as_str())?;
        let stream_exists = match self.client.get_stream(&s).await {
            Ok(found) => found.is_some(),
            Err(e) if is_stream_not_found(&e) => false,
            Err(e) => return Err(sdk_error(format!("describe stream {stream}"), e)),
        };
        Err(if stream_exists {
            ConnectorError::TopicNotFound {
                stream: stream.to_string(),
                topic: topic.to_string(),
            }
        } else {
            ConnectorError::StreamNotFound {
                stream: stream.to_string(),
            }
        })
    }

    /// Checks that `partition` exists (re-reading the topic once when the cached
    /// count says it does not); returns the topic's partition count.
    pub(super) async fn check_partition(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partition: u32,
    ) -> Result<u32, ConnectorError> {
        let mut meta = self.require(stream, topic).await?;
        if partition >= meta.partitions {
            meta = self.require_fresh(stream, topic).await?;
        }
        if partition >= meta.partitions {
            return Err(ConnectorError::PartitionNotFound {
                stream: stream.to_string(),
                topic: topic.to_string(),
                partition,
                partitions: meta.partitions,
            });
        }
        Ok(meta.partitions)
    }

    /// Reads with the replay identity: explicit strategy, no commit.
    pub(super) async fn replay(
        &self,
        at: At<'_>,
        strategy: PollingStrategy,
        from: Option<u64>,
        max: u32,
    ) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        read_plain(self.connection(at.partition), at, strategy, from, max).await
    }
}

/// Reads one partition under the replay identity (explicit strategy, no commit).
pub(super) async fn read_plain(
    client: &IggyClient,
    at: At<'_>,
    strategy: PollingStrategy,
    from: Option<u64>,
    max: u32,
) -> Result<Vec<ReceivedMessage>, ConnectorError> {
    let consumer = Consumer::new(
        Identifier::numeric(REPLAY_CONSUMER_ID).map_err(|e| sdk_error("replay consumer id", e))?,
    );
    poll_partition(client, &consumer, at, strategy, from, max)
        .await
        .map_err(|e| at.error("poll", e))
        .map(|polled| polled.into_messages(at.partition))
}

/// The offset the next message of the partition will get.
pub(super) async fn head_offset(client: &IggyClient, at: At<'_>) -> Result<u64, ConnectorError> {
    let last = read_plain(client, at, PollingStrategy::last(), None, 1).await?;
    Ok(last.last().map_or(0, |m| m.offset + 1))
}

/// The offset of the first message appended at or after `micros`, or the head.
pub(super) async fn offset_at(
    client: &IggyClient,
    at: At<'_>,
    micros: u64,
) -> Result<u64, ConnectorError> {
    let first = read_plain(
        client,
        at,
        PollingStrategy::timestamp(micros.into()),
        None,
        1,
    )
    .await?;
    match first.first() {
        Some(message) => Ok(message.offset),
        None => head_offset(client, at).await,
    }
}
