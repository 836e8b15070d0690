//! The brokers and clients the benches run against: an embedded broker in a
//! temporary directory (optionally with its Iggy TCP listener on `127.0.0.1:0`), a
//! `RemoteConnector` and an official SDK client connected to that listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use iggy::prelude::{Client, IggyClient};
use rustok_iggy_connector::{
    ConnectorConfig, ConnectorMode, DurabilityPolicy, EmbeddedConnector, IggyConnector,
    OutgoingMessage, PublishRequest, RemoteConnector, RemoteConnectorConfig, Secret, StreamName,
    TopicName, TopicSpec,
};

/// Root credentials of the listener (the defaults).
pub const USERNAME: &str = "iggy";
/// Root password of the listener.
pub const PASSWORD: &str = "iggy";

/// Where the data directories go: `$RUSTOK_BENCH_TMPDIR`, else `/dev/shm` (tmpfs:
/// the figures measure the broker, not the disk), else the system temporary
/// directory.
#[must_use]
pub fn data_parent() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUSTOK_BENCH_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm = PathBuf::from("/dev/shm");
    let writable = shm.is_dir()
        && tempfile::Builder::new()
            .prefix("rustok-probe-")
            .tempdir_in(&shm)
            .is_ok();
    if writable { shm } else { std::env::temp_dir() }
}

/// An embedded broker in a temporary directory.
pub struct Broker {
    /// The connector that owns it.
    pub connector: Arc<EmbeddedConnector>,
    dir: tempfile::TempDir,
}

impl Broker {
    /// Opens a broker with `durability`; with `tcp`, its Iggy listener listens on
    /// an ephemeral port of 127.0.0.1 (root `iggy`/`iggy`).
    pub async fn start(durability: DurabilityPolicy, tcp: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rustok-bench-")
            .tempdir_in(data_parent())
            .expect("a temporary data directory");
        let mut config = ConnectorConfig::embedded(dir.path());
        config.embedded.durability = durability;
        config.embedded.fsync_interval_ms = 1000;
        config.embedded.tcp_enabled = tcp;
        config.embedded.tcp_port = 0;
        config.embedded.tcp_address = "127.0.0.1".into();
        let connector = Arc::new(EmbeddedConnector::new());
        connector.connect(&config).await.expect("the broker opens");
        Self { connector, dir }
    }

    /// The connector as the typed layer takes it.
    #[must_use]
    pub fn shared(&self) -> Arc<dyn IggyConnector> {
        Arc::clone(&self.connector) as Arc<dyn IggyConnector>
    }

    /// The listener's address.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.connector.tcp_address().expect("the listener is on")
    }

    /// The data directory.
    #[must_use]
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Shuts the broker down and removes its directory.
    pub async fn shutdown(self) {
        self.connector.shutdown().await.expect("clean shutdown");
    }
}

/// A connected `RemoteConnector` on the listener at `address`.
pub async fn remote(address: SocketAddr) -> Arc<RemoteConnector> {
    let config = ConnectorConfig {
        mode: ConnectorMode::Remote,
        remote: RemoteConnectorConfig {
            addresses: vec![address.to_string()],
            username: USERNAME.into(),
            password: Secret::new(PASSWORD),
            ..RemoteConnectorConfig::default()
        },
        ..ConnectorConfig::default()
    };
    let connector = Arc::new(RemoteConnector::new());
    connector.connect(&config).await.expect("remote connect");
    connector
}

/// An official SDK client, connected and logged in as root.
pub async fn sdk_client(address: SocketAddr) -> IggyClient {
    let client =
        IggyClient::from_connection_string(&format!("iggy://{USERNAME}:{PASSWORD}@{address}"))
            .expect("a connection string");
    client.connect().await.expect("SDK connect");
    client
}

/// Stream and topic names.
#[must_use]
pub fn names(stream: &str, topic: &str) -> (StreamName, TopicName) {
    (
        StreamName::new(stream).expect("a stream name"),
        TopicName::new(topic).expect("a topic name"),
    )
}

/// Creates `stream`/`topic` with one partition.
pub async fn topic(connector: &dyn IggyConnector, stream: &StreamName, topic: &TopicName) {
    connector
        .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 1))
        .await
        .expect("topic");
}

/// Appends `total` messages of `size` bytes to partition 0, in batches of 1000.
pub async fn fill(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
    total: u64,
    size: usize,
) {
    let messages = raw_batch(1000, size);
    for _ in 0..total.div_ceil(1000) {
        connector
            .publish(PublishRequest {
                messages: messages.clone(),
                ..PublishRequest::new(stream.clone(), topic.clone()).partition(0)
            })
            .await
            .expect("publish");
    }
}

/// `count` raw messages of `size` bytes with id 0: the connector gives each send
/// fresh ids, so a batch published again is stored again (fixed ids would be
/// duplicates for the broker's deduplication window).
#[must_use]
pub fn raw_batch(count: usize, size: usize) -> Vec<OutgoingMessage> {
    let payload = crate::events::payload(size);
    (0..count)
        .map(|_| OutgoingMessage::new(payload.clone()))
        .collect()
}
