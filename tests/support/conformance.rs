//! The targets of the connector conformance suite, and bounded waits over the
//! connector trait.
//!
//! One case runs against three targets:
//! - [`Target::Embedded`]: an `EmbeddedConnector` in this process, in a temporary
//!   directory;
//! - [`Target::Listener`]: a `RemoteConnector` (the official SDK) against an embedded
//!   broker's TCP listener on `127.0.0.1:0`;
//! - [`Target::External`]: a `RemoteConnector` against the Iggy server at
//!   `IGGY_TEST_ADDRESS` (`IGGY_TEST_USERNAME`, `IGGY_TEST_PASSWORD`, default
//!   `iggy`/`iggy`). When the variable is unset the case prints that it was skipped.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use iggy::prelude::{Client, Identifier, IggyClient, StreamClient, UserClient};
use rustok_iggy_connector::{
    ConnectorConfig, ConnectorMode, EmbeddedConnector, GroupConsumer, GroupName, IggyConnector,
    OutgoingMessage, PollFrom, PublishReceipt, PublishRequest, ReceivedMessage, RemoteConnector,
    RemoteConnectorConfig, Secret, StreamName, TopicName, TopicSpec,
};

use crate::wire::{PASSWORD, USERNAME, WireBroker};
use crate::{STEP_TIMEOUT, within};

/// Where a conformance case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `EmbeddedConnector`, in process.
    Embedded,
    /// `RemoteConnector` against an embedded broker's TCP listener.
    Listener,
    /// `RemoteConnector` against the server at `IGGY_TEST_ADDRESS`.
    External,
}

/// The environment variable naming an external Iggy server (`host:port`).
pub const EXTERNAL_ADDRESS_VAR: &str = "IGGY_TEST_ADDRESS";

/// A connector under test, with what it runs on.
pub struct Harness {
    /// Which target this is.
    pub target: Target,
    /// The connector the case uses.
    pub connector: Arc<dyn IggyConnector>,
    /// The configuration of a remote connector (`None` for the embedded target).
    pub remote: Option<ConnectorConfig>,
    broker: Option<WireBroker>,
    _dir: Option<tempfile::TempDir>,
    streams: Vec<StreamName>,
    extra: Vec<Arc<dyn IggyConnector>>,
}

/// A remote configuration for `address` with the given credentials, with short
/// timeouts so that failures show quickly.
pub fn remote_config(address: &str, username: &str, password: &str) -> ConnectorConfig {
    ConnectorConfig {
        mode: ConnectorMode::Remote,
        remote: RemoteConnectorConfig {
            addresses: vec![address.to_owned()],
            username: username.to_owned(),
            password: Secret::new(password),
            connect_timeout_ms: 5_000,
            reconnection_retries: 50,
            reconnection_interval_ms: 100,
            heartbeat_interval_ms: 2_000,
            ..RemoteConnectorConfig::default()
        },
        ..ConnectorConfig::default()
    }
}

/// A connected `RemoteConnector` on `config`.
pub async fn open_remote(config: &ConnectorConfig) -> Arc<dyn IggyConnector> {
    let connector = RemoteConnector::new();
    within("connect the remote connector", connector.connect(config))
        .await
        .expect("the remote connector connects");
    Arc::new(connector)
}

fn external() -> Option<(String, String, String)> {
    let address = std::env::var(EXTERNAL_ADDRESS_VAR).ok()?;
    let username = std::env::var("IGGY_TEST_USERNAME").unwrap_or_else(|_| "iggy".into());
    let password = std::env::var("IGGY_TEST_PASSWORD").unwrap_or_else(|_| "iggy".into());
    Some((address, username, password))
}

impl Harness {
    /// Opens `target`, or `None` (after printing why) when it is not available.
    pub async fn open(target: Target) -> Option<Self> {
        match target {
            Target::Embedded => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let connector = EmbeddedConnector::new();
                within(
                    "open the embedded broker",
                    connector.connect(&ConnectorConfig::embedded(dir.path())),
                )
                .await
                .expect("the embedded broker opens");
                Some(Self::new(
                    target,
                    Arc::new(connector),
                    None,
                    None,
                    Some(dir),
                ))
            }
            Target::Listener => {
                let broker = WireBroker::start().await;
                let config = remote_config(&broker.address.to_string(), USERNAME, PASSWORD);
                let connector = open_remote(&config).await;
                Some(Self::new(
                    target,
                    connector,
                    Some(config),
                    Some(broker),
                    None,
                ))
            }
            Target::External => {
                let Some((address, username, password)) = external() else {
                    println!(
                        "skipped: {EXTERNAL_ADDRESS_VAR} is not set (set it, with IGGY_TEST_USERNAME \
                         and IGGY_TEST_PASSWORD, to run this case against an external Iggy server)"
                    );
                    return None;
                };
                let config = remote_config(&address, &username, &password);
                let connector = open_remote(&config).await;
                Some(Self::new(target, connector, Some(config), None, None))
            }
        }
    }

    fn new(
        target: Target,
        connector: Arc<dyn IggyConnector>,
        remote: Option<ConnectorConfig>,
        broker: Option<WireBroker>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        Self {
            target,
            connector,
            remote,
            broker,
            _dir: dir,
            streams: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// A stream name unique to this run (cases run in parallel, and an external
    /// server keeps what earlier runs left).
    pub fn stream(&mut self, case: &str) -> StreamName {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let stream =
            StreamName::new(format!("conf-{case}-{}", &unique[..12])).expect("a valid stream name");
        self.streams.push(stream.clone());
        stream
    }

    /// Creates `stream`/`topic` with `partitions` partitions.
    pub async fn topic(&self, stream: &StreamName, topic: &str, partitions: u32) -> TopicName {
        let topic = TopicName::new(topic).expect("a valid topic name");
        within(
            "create the topic",
            self.connector
                .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), partitions)),
        )
        .await
        .expect("the topic is created");
        topic
    }

    /// Another connector to the same broker: the same one in process (embedded),
    /// a new connection for a remote target. What a restarted consumer process
    /// would use.
    pub async fn another(&mut self) -> Arc<dyn IggyConnector> {
        match &self.remote {
            None => Arc::clone(&self.connector),
            Some(config) => {
                let connector = open_remote(config).await;
                self.extra.push(Arc::clone(&connector));
                connector
            }
        }
    }

    /// Shuts everything down (and, on an external server, deletes the streams
    /// the case created).
    pub async fn finish(self) {
        for connector in &self.extra {
            within("shut an extra connector down", connector.shutdown())
                .await
                .expect("clean shutdown");
        }
        within("shut the connector down", self.connector.shutdown())
            .await
            .expect("clean shutdown");
        if self.target == Target::External
            && let Some((address, username, password)) = external()
        {
            delete_streams(&address, &username, &password, &self.streams).await;
        }
        if let Some(broker) = self.broker {
            broker.shutdown().await;
        }
    }
}

async fn delete_streams(address: &str, username: &str, password: &str, streams: &[StreamName]) {
    let Ok(client) = IggyClient::builder()
        .with_tcp()
        .with_server_address(address.to_owned())
        .build()
    else {
        return;
    };
    if within("connect", client.connect()).await.is_err()
        || within("login", client.login_user(username, password))
            .await
            .is_err()
    {
        return;
    }
    for stream in streams {
        if let Ok(id) = Identifier::named(stream.as_str()) {
            let _ = within("delete a test stream", client.delete_stream(&id)).await;
        }
    }
    let _ = client.shutdown().await;
}

/// Declares one test per case and target: modules `embedded`, `listener` and
/// `external` of the calling file, each with a `#[tokio::test]` per case that runs
/// it with [`run`]. A case is an `async fn(Harness)` of the calling module.
#[macro_export]
macro_rules! both_modes {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { $crate::conformance::run($crate::conformance::Target::Embedded, super::$case).await; } )*
        }
        mod listener {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { $crate::conformance::run($crate::conformance::Target::Listener, super::$case).await; } )*
        }
        mod external {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { $crate::conformance::run($crate::conformance::Target::External, super::$case).await; } )*
        }
    };
}

/// Runs `case` on `target` (or prints that the target is unavailable).
pub async fn run<F, Fut>(target: Target, case: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(harness) = Harness::open(target).await {
        case(harness).await;
    }
}

/// Polls `member` until it delivered at least `count` messages in total; fails the
/// test when that takes longer than [`STEP_TIMEOUT`].
pub async fn collect(member: &dyn GroupConsumer, count: usize) -> Vec<ReceivedMessage> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    while out.len() < count {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, member.poll(100)).await {
            Ok(Ok(messages)) => out.extend(messages),
            Ok(Err(error)) => panic!(
                "poll failed after {} of {count} messages: {error}",
                out.len()
            ),
            Err(_) => panic!(
                "timed out after {STEP_TIMEOUT:?} with {} of {count} messages: {:?}",
                out.len(),
                positions(&out)
            ),
        }
    }
    out
}

/// Polls `member` once, giving up (with no messages) after `wait`. Cancelling a
/// poll is allowed: it moves nothing.
pub async fn poll_briefly(member: &dyn GroupConsumer, wait: Duration) -> Vec<ReceivedMessage> {
    match tokio::time::timeout(wait, member.poll(100)).await {
        Ok(result) => result.expect("poll"),
        Err(_) => Vec::new(),
    }
}

/// (partition, offset) of each message, sorted.
pub fn positions(messages: &[ReceivedMessage]) -> Vec<(u32, u64)> {
    let mut out: Vec<_> = messages.iter().map(|m| (m.partition, m.offset)).collect();
    out.sort_unstable();
    out
}

/// Per partition, the offsets delivered, in delivery order.
pub fn offsets_by_partition(messages: &[ReceivedMessage]) -> BTreeMap<u32, Vec<u64>> {
    let mut out: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for message in messages {
        out.entry(message.partition)
            .or_default()
            .push(message.offset);
    }
    out
}

/// A group name.
pub fn group(name: &str) -> GroupName {
    GroupName::new(name).expect("a valid group name")
}

/// A random message (event) id.
pub fn new_id() -> u128 {
    uuid::Uuid::new_v4().as_u128()
}

/// Publishes `request`, failing the test unless it is acknowledged in time.
pub async fn publish(connector: &dyn IggyConnector, request: PublishRequest) -> PublishReceipt {
    within("publish", connector.publish(request))
        .await
        .expect("publish is acknowledged")
}

/// Publishes `count` messages to each partition; returns the ids by (partition, offset).
pub async fn fill(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
    partitions: u32,
    count: u64,
) -> BTreeMap<(u32, u64), u128> {
    let mut ids = BTreeMap::new();
    for partition in 0..partitions {
        let mut request = PublishRequest::new(stream.clone(), topic.clone()).partition(partition);
        let batch: Vec<u128> = (0..count).map(|_| new_id()).collect();
        for (i, id) in batch.iter().enumerate() {
            request = request.message(
                OutgoingMessage::new(format!("{partition}:{i}").into_bytes()).with_id(*id),
            );
        }
        let receipt = publish(connector, request).await;
        assert_eq!(receipt.partition, partition);
        for (i, id) in batch.into_iter().enumerate() {
            ids.insert((partition, receipt.base_offset + i as u64), id);
        }
    }
    ids
}

/// Every message of `partition` from `from` on, read with `poll` (which never waits).
pub async fn read_all(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
    partition: u32,
    from: u64,
) -> Vec<ReceivedMessage> {
    let mut out: Vec<ReceivedMessage> = Vec::new();
    loop {
        let next = out.last().map_or(from, |m| m.offset + 1);
        let batch = within(
            "poll",
            connector.poll(stream, topic, partition, PollFrom::Offset(next), 100),
        )
        .await
        .expect("poll");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// The group's committed offsets.
pub async fn committed(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
    group: &GroupName,
) -> Vec<Option<u64>> {
    within(
        "committed offsets",
        connector.committed_offsets(stream, topic, group),
    )
    .await
    .expect("committed offsets")
}

/// (partition, offset) for every partition and offset given, sorted.
pub fn expect_positions(
    partitions: &[u32],
    offsets: std::ops::RangeInclusive<u64>,
) -> Vec<(u32, u64)> {
    let mut out: Vec<_> = partitions
        .iter()
        .flat_map(|&p| offsets.clone().map(move |o| (p, o)))
        .collect();
    out.sort_unstable();
    out
}
