//! `RemoteConnector`: the `IggyConnector` over an Iggy server or cluster, through the
//! official `iggy` SDK (every byte on the wire is the SDK's).

mod backoff;
mod client;
mod consumer;
mod convert;
mod publish;
// Only the migration tool (embedded → remote) copies stored messages.
#[cfg(feature = "embedded")]
pub(crate) mod copy;
mod link;
mod subscriber;

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use iggy::prelude::{
    ConsumerGroupClient, Identifier, StreamClient, SystemClient, TopicClient, TopicCreateOptions,
    TopicUpdateOptions, UserClient,
};

use self::client::{is_already_exists, is_group_not_found, sdk_error};
use self::link::{At, Link, ident, topic_error};
use crate::config::{ConnectorConfig, ConnectorMode};
use crate::connector::{
    GroupConsumer, IggyConnector, MessageSubscriber, PingReport, PublishReceipt, PublishRequest,
    StartPosition, TopicInfo, TopicSpec,
};
use crate::error::ConnectorError;
use crate::message::ReceivedMessage;
use crate::names::{GroupName, StreamName, TopicName};

/// The remote mode: an Iggy server or cluster reached through the official `iggy`
/// SDK (TCP, optionally TLS, or QUIC).
///
/// - `connect` tries `remote.addresses` in order, each for at most
///   `remote.connect_timeout_ms`, and signs in with the personal access token when
///   one is set, else with user name and password. Wrong credentials fail with
///   [`ConnectorError::Auth`], an unreachable server with
///   [`ConnectorError::Connection`]. A lost connection is re-established by the SDK
///   (`reconnection_retries` passes, `reconnection_interval_ms` apart; 0 retries
///   turns reconnection off), which signs in again. It redials the address in use
///   and the nodes the cluster's roster names; the other configured addresses are
///   tried at `connect` and for each new group member's connection.
/// - The connector keeps `remote.pool_size` connections (default 2): the Iggy
///   protocol carries one request at a time per connection, so the calls of
///   partition `p` (publishing, replay reads) go to connection `p % pool_size`:
///   one partition's calls keep their order, different partitions' calls run in
///   parallel. Connection 0 also carries the metadata calls. Every connection is
///   opened at `connect` (all or none) and re-established by the SDK on its own.
/// - Publishing resolves the partition here (the key hash every Iggy client uses,
///   or a round-robin), so the receipt names the exact partition; the event id is
///   the Iggy message id; headers are Iggy user headers.
/// - Replay (`poll`, `subscribe`) reads with an explicit offset or timestamp and a
///   client-side cursor, so no stored consumer offset is read or moved.
/// - Each group member ([`IggyConnector::join_group`]) has its own connection and
///   commits only when told to (after the handler acked). After a reconnect it
///   joins again and resumes after the group's committed offsets: committed events
///   are not delivered again, un-committed ones are. The server refuses a poll or a
///   commit on a partition the member does not own, so a commit on a partition it
///   lost fails with [`ConnectorError::Fenced`]. A member reads with the assignment
///   it saw last and asks the server again (`SyncConsumerGroup`) when a poll or a
///   commit was refused, when its reads come back empty, and at least every 250 ms
///   while busy; a partition it lost and got back restarts after the committed
///   offset. After a poll that returned a full batch it reads the next one ahead
///   ([`GroupConsumer::reads_ahead`](crate::GroupConsumer::reads_ahead)).
///
/// A group member's `poll` and a subscriber's `next_batch` are cancel-safe: the SDK
/// completes an exchange that was started even when the caller stops waiting, and
/// cursors move only when messages are returned. Cancelling any other call leaves
/// nothing that repeating the call does not finish.
///
/// ```
/// # tokio_test_block_on(async {
/// use rustok_iggy_connector::*;
///
/// // A server to talk to: here an embedded broker's Iggy TCP listener.
/// let dir = tempfile::tempdir().unwrap();
/// let mut server_config = ConnectorConfig::embedded(dir.path());
/// server_config.embedded.tcp_enabled = true;
/// server_config.embedded.tcp_port = 0;
/// let server = EmbeddedConnector::new();
/// server.connect(&server_config).await?;
///
/// // Remote mode is a configuration: the address and the credentials.
/// let mut config = ConnectorConfig { mode: ConnectorMode::Remote, ..ConnectorConfig::default() };
/// config.remote.addresses = vec![server.tcp_address().unwrap().to_string()];
/// config.remote.username = "iggy".into();
/// config.remote.password = Secret::new("iggy");
/// let connector = RemoteConnector::new();
/// connector.connect(&config).await?;
///
/// let (stream, topic) = (StreamName::new("shop")?, TopicName::new("orders")?);
/// connector.ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 2)).await?;
/// let receipt = connector
///     .publish(PublishRequest::new(stream.clone(), topic.clone())
///         .key(&b"tenant-1"[..])
///         .message(OutgoingMessage::new(&b"hello"[..])))
///     .await?;
/// assert_eq!(receipt.partition, partition_for(b"tenant-1", 2));
/// let read = connector.poll(&stream, &topic, receipt.partition, StartPosition::Earliest, 10).await?;
/// assert_eq!(&read[0].payload[..], b"hello");
/// connector.shutdown().await?;
/// server.shutdown().await?;
/// # Ok::<(), ConnectorError>(()) });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Runtime::new().unwrap().block_on(f) }
/// ```
#[derive(Default)]
pub struct RemoteConnector {
    link: RwLock<Option<Arc<Link>>>,
}

impl fmt::Debug for RemoteConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let link = self.link.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("RemoteConnector")
            .field("link", &*link)
            .finish()
    }
}

impl RemoteConnector {
    /// A connector that is not connected yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The address of the server the connector reached (the first of
    /// `remote.addresses` that answered).
    pub fn server_address(&self) -> Result<String, ConnectorError> {
        Ok(self.link()?.addresses[0].clone())
    }

    /// Every topic of every stream the signed-in user may list, as (stream, topic)
    /// names: what `topic_info` and `poll` can then read (as
    /// [`EmbeddedConnector::topics`](crate::EmbeddedConnector::topics) on a data
    /// directory). Two metadata calls per stream; nothing is written.
    ///
    /// # Errors
    /// [`ConnectorError::NotConnected`]; the server's error (a user without the
    /// permission to list streams gets [`ConnectorError::Auth`]); a stream deleted
    /// while it is listed is left out.
    pub async fn topics(&self) -> Result<Vec<(StreamName, TopicName)>, ConnectorError> {
        let link = self.link()?;
        let streams = link
            .client
            .get_streams()
            .await
            .map_err(|e| sdk_error("list streams", e))?;
        let mut found = Vec::new();
        for stream in streams {
            let name = StreamName::new(stream.name)?;
            let topics = match link.client.get_topics(&ident(name.as_str())?).await {
                Ok(topics) => topics,
                Err(e) if client::is_stream_not_found(&e) => continue,
                Err(e) => return Err(sdk_error(format!("list the topics of {name}"), e)),
            };
            for topic in topics {
                found.push((name.clone(), TopicName::new(topic.name)?));
            }
        }
        found.sort();
        Ok(found)
    }

    fn link(&self) -> Result<Arc<Link>, ConnectorError> {
        self.link
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(Arc::clone)
            .ok_or(ConnectorError::NotConnected)
    }

    async fn create_stream_if_missing(
        link: &Link,
        stream: &StreamName,
        id: &Identifier,
    ) -> Result<(), ConnectorError> {
        let exists = match link.client.get_stream(id).await {
            Ok(found) => found.is_some(),
            Err(e) if client::is_stream_not_found(&e) => false,
            Err(e) => return Err(sdk_error(format!("describe stream {stream}"), e)),
        };
        if !exists {
            match link.client.create_stream(stream.as_str()).await {
                Ok(_) => tracing::info!(%stream, "stream created"),
                Err(e) if is_already_exists(&e) => {}
                Err(e) => return Err(sdk_error(format!("create stream {stream}"), e)),
            }
        }
        Ok(())
    }
}

fn mismatch(spec: &TopicSpec, partitions: u32) -> ConnectorError {
    ConnectorError::TopologyMismatch {
        stream: spec.stream.to_string(),
        topic: spec.topic.to_string(),
        message: format!(
            "the topic has {partitions} partitions, {} were asked for; it is not recreated (that would lose data)",
            spec.partitions
        ),
    }
}

#[async_trait]
impl IggyConnector for RemoteConnector {
    fn mode(&self) -> ConnectorMode {
        ConnectorMode::Remote
    }

    async fn connect(&self, config: &ConnectorConfig) -> Result<(), ConnectorError> {
        // The remote section is checked whatever `mode` says: this connector is remote.
        ConnectorConfig {
            mode: ConnectorMode::Remote,
            ..config.clone()
        }
        .validate()?;
        if self.is_connected() {
            return Err(ConnectorError::AlreadyConnected);
        }
        let (client, reached) = client::open(&config.remote, &config.remote.addresses).await?;
        // Later connections (group members) try the address that answered first.
        let mut addresses = vec![reached.clone()];
        addresses.extend(
            config
                .remote
                .addresses
                .iter()
                .filter(|a| **a != reached)
                .cloned(),
        );
        // The rest of the pool: more connections to the server that answered (each
        // reconnects on its own, as connection 0 does).
        let extra = config.remote.pool_size.saturating_sub(1) as usize;
        let opened = futures::future::join_all(
            (0..extra).map(|_| client::open(&config.remote, &addresses[..1])),
        )
        .await;
        let mut pool = Vec::with_capacity(extra);
        let mut failure = None;
        for result in opened {
            match result {
                Ok((extra_client, _)) => pool.push(extra_client),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        if let Some(error) = failure {
            for extra_client in pool.iter().chain(std::iter::once(&client)) {
                client::shutdown_quietly(extra_client).await;
            }
            return Err(error);
        }
        let link = Arc::new(Link::new(client, pool, config.remote.clone(), addresses));
        let raced = {
            let mut slot = self.link.write().unwrap_or_else(PoisonError::into_inner);
            if slot.is_some() {
                true
            } else {
                *slot = Some(Arc::clone(&link));
                false
            }
        };
        if raced {
            for connection in link.connections() {
                client::shutdown_quietly(connection).await;
            }
            return Err(ConnectorError::AlreadyConnected);
        }
        Ok(())
    }

    fn is_connected(&self) -> bool {
        self.link
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Sends an Iggy `Ping` on the metadata connection and waits for the answer.
    async fn ping(&self, timeout: Duration) -> Result<PingReport, ConnectorError> {
        let link = self.link()?;
        let started = std::time::Instant::now();
        match tokio::time::timeout(timeout, link.client.ping()).await {
            Ok(Ok(())) => Ok(PingReport::new(started.elapsed(), Vec::new())),
            Ok(Err(e)) => Err(sdk_error("ping the server", e)),
            Err(_) => Err(ConnectorError::Timeout {
                what: format!("the server's answer to a ping ({})", link.addresses[0]),
                after: timeout,
            }),
        }
    }

    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<TopicInfo, ConnectorError> {
        spec.validate()?;
        let link = self.link()?;
        let (s, t) = (ident(spec.stream.as_str())?, ident(spec.topic.as_str())?);
        Self::create_stream_if_missing(&link, &spec.stream, &s).await?;
        let details = match link.describe(&spec.stream, &spec.topic).await? {
            Some(details) => details,
            None => {
                let options = TopicCreateOptions {
                    partitions_count: Some(spec.partitions),
                    message_expiry: Some(convert::message_expiry(&spec.retention)),
                    max_topic_size: Some(convert::max_topic_size(&spec.retention)),
                    ..TopicCreateOptions::default()
                };
                match link
                    .client
                    .create_topic(&s, spec.topic.as_str(), &options)
                    .await
                {
                    Ok(created) => {
                        tracing::info!(stream = %spec.stream, topic = %spec.topic, partitions = spec.partitions, "topic created");
                        // The creation reply may omit the partitions; read it back.
                        match link.describe(&spec.stream, &spec.topic).await? {
                            Some(details) => details,
                            None => created,
                        }
                    }
                    Err(e) if is_already_exists(&e) => link
                        .describe(&spec.stream, &spec.topic)
                        .await?
                        .ok_or_else(|| ConnectorError::TopicNotFound {
                            stream: spec.stream.to_string(),
                            topic: spec.topic.to_string(),
                        })?,
                    Err(e) => {
                        return Err(topic_error(
                            format!("create topic {}/{}", spec.stream, spec.topic),
                            e,
                            &spec.stream,
                            &spec.topic,
                            None,
                        ));
                    }
                }
            }
        };
        if details.partitions_count != spec.partitions {
            return Err(mismatch(spec, details.partitions_count));
        }
        if convert::same_retention(&convert::retention_of(&details), &spec.retention) {
            return Ok(convert::topic_info(&spec.stream, &spec.topic, &details));
        }
        let options = TopicUpdateOptions {
            message_expiry: Some(convert::message_expiry(&spec.retention)),
            max_topic_size: Some(convert::max_topic_size(&spec.retention)),
            ..TopicUpdateOptions::default()
        };
        link.client
            .update_topic(&s, &t, spec.topic.as_str(), &options)
            .await
            .map_err(|e| {
                topic_error(
                    format!("update the retention of {}/{}", spec.stream, spec.topic),
                    e,
                    &spec.stream,
                    &spec.topic,
                    None,
                )
            })?;
        let details = link
            .describe(&spec.stream, &spec.topic)
            .await?
            .ok_or_else(|| ConnectorError::TopicNotFound {
                stream: spec.stream.to_string(),
                topic: spec.topic.to_string(),
            })?;
        Ok(convert::topic_info(&spec.stream, &spec.topic, &details))
    }

    async fn topic_info(
        &self,
        stream: &StreamName,
        topic: &TopicName,
    ) -> Result<Option<TopicInfo>, ConnectorError> {
        let link = self.link()?;
        Ok(link
            .describe(stream, topic)
            .await?
            .map(|details| convert::topic_info(stream, topic, &details)))
    }

    /// Returns once the server acknowledged the batch (its durability is the
    /// server's policy). A send that fails on a lost connection is sent again
    /// (up to 3 times, at most `reconnection_retries`, `reconnection_interval_ms`
    /// apart, once the SDK reconnected) with the same message ids to the same
    /// partition; ids of 0 get a UUIDv4 before the first send. With the server's
    /// `message_deduplication` on, a batch stored before its answer was lost is then
    /// stored once, and the receipt lists the messages found stored before the
    /// resend as duplicates. With it off, a resend may store a batch twice.
    async fn publish(&self, request: PublishRequest) -> Result<PublishReceipt, ConnectorError> {
        publish::publish(&self.link()?, request).await
    }

    async fn poll(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partition: u32,
        from: StartPosition,
        max: u32,
    ) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let link = self.link()?;
        let partitions = link.check_partition(stream, topic, partition).await?;
        if max == 0 || from == StartPosition::Latest {
            return Ok(Vec::new());
        }
        let start = match from {
            StartPosition::Offset(offset) => Some(offset),
            _ => None,
        };
        let at = At {
            stream,
            topic,
            partition,
            partitions,
        };
        link.replay(at, convert::strategy(from), start, max).await
    }

    async fn subscribe(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partition: u32,
        from: StartPosition,
    ) -> Result<Box<dyn MessageSubscriber>, ConnectorError> {
        let link = self.link()?;
        let partitions = link.check_partition(stream, topic, partition).await?;
        let subscriber = subscriber::RemoteSubscriber::open(
            link,
            stream.clone(),
            topic.clone(),
            (partition, partitions),
            from,
        )
        .await?;
        Ok(Box::new(subscriber))
    }

    async fn join_group(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        group: &GroupName,
        start: StartPosition,
    ) -> Result<Box<dyn GroupConsumer>, ConnectorError> {
        let link = self.link()?;
        let member = consumer::join(&link, stream, topic, group, start).await?;
        Ok(Box::new(member))
    }

    async fn committed_offsets(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        group: &GroupName,
    ) -> Result<Vec<Option<u64>>, ConnectorError> {
        let link = self.link()?;
        let meta = link.require(stream, topic).await?;
        let (s, t, g) = (
            ident(stream.as_str())?,
            ident(topic.as_str())?,
            ident(group.as_str())?,
        );
        let group_not_found = || ConnectorError::GroupNotFound {
            stream: stream.to_string(),
            topic: topic.to_string(),
            group: group.to_string(),
        };
        match link.client.get_consumer_group(&s, &t, &g).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(group_not_found()),
            Err(e) if is_group_not_found(&e) => return Err(group_not_found()),
            Err(e) => return Err(topic_error("describe the group", e, stream, topic, None)),
        }
        let mut offsets = Vec::with_capacity(meta.partitions as usize);
        for partition in 0..meta.partitions {
            let stored = consumer::stored_group_offset(&link.client, &s, &t, &g, partition)
                .await
                .map_err(|e| {
                    if is_group_not_found(&e) {
                        group_not_found()
                    } else {
                        topic_error("read a committed offset", e, stream, topic, None)
                    }
                })?;
            offsets.push(stored);
        }
        Ok(offsets)
    }

    /// Leaves every group joined through this connector (their pending `poll`s fail
    /// with [`ConnectorError::ShuttingDown`]), signs out and closes the connections.
    async fn shutdown(&self) -> Result<(), ConnectorError> {
        let link = self
            .link
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(link) = link else {
            return Ok(());
        };
        link.closed.send_replace(true);
        // Every member leaves its group on the closed signal.
        link.departed().await;
        for connection in link.connections() {
            if let Err(error) = connection.logout_user().await {
                tracing::debug!(%error, "signing out at shutdown failed");
            }
            client::shutdown_quietly(connection).await;
        }
        tracing::info!("remote connector closed");
        Ok(())
    }
}
