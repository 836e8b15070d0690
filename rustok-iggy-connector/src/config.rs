//! Connector configuration (the `embedded` and `remote` sections of `events.iggy`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use rustok_iggy_storage::Durability;

use crate::error::ConnectorError;
use crate::names::StreamName;
use crate::partition::check_partition_count;

/// Where the broker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorMode {
    /// A persistent broker inside this process (the default).
    #[default]
    Embedded,
    /// An Iggy server or cluster reached through the official `iggy` SDK.
    Remote,
}

impl fmt::Display for ConnectorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Embedded => "embedded",
            Self::Remote => "remote",
        })
    }
}

/// Configuration of a connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Embedded or remote.
    pub mode: ConnectorMode,
    /// The stream events go to unless an event names its own.
    pub stream_name: StreamName,
    /// Partitions of topics created without an explicit count.
    pub partitions: u32,
    /// Settings of the embedded broker.
    pub embedded: EmbeddedConnectorConfig,
    /// Settings of the remote connection.
    pub remote: RemoteConnectorConfig,
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        Self {
            mode: ConnectorMode::Embedded,
            stream_name: StreamName::new("rustok").unwrap_or_else(|_| unreachable!()),
            partitions: 8,
            embedded: EmbeddedConnectorConfig::default(),
            remote: RemoteConnectorConfig::default(),
        }
    }
}

impl ConnectorConfig {
    /// An embedded configuration with its data in `data_dir`.
    ///
    /// The TCP listener is **off** in this configuration (the connector's own calls
    /// never use sockets, and a fixed port would clash between brokers of one
    /// machine); turn it on with `config.embedded.tcp_enabled = true`. The
    /// deserialized and `Default` configurations have it on.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            embedded: EmbeddedConnectorConfig {
                data_dir: data_dir.into(),
                tcp_enabled: false,
                http_enabled: false,
                ..EmbeddedConnectorConfig::default()
            },
            ..Self::default()
        }
    }

    /// Checks the values that serde cannot (ranges, combinations).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        check_partition_count(self.partitions)
            .map_err(|e| ConnectorError::config("partitions", e.to_string()))?;
        self.embedded.validate()?;
        if self.mode == ConnectorMode::Remote {
            self.remote.validate()?;
        }
        Ok(())
    }
}

/// When the embedded broker forces appended data to stable storage (fsync).
///
/// Every policy writes each batch to the operating system before `publish` returns, so
/// an acknowledged batch survives the process being killed (SIGKILL, panic, OOM)
/// under **every** policy. The policies differ only on power loss or a kernel crash:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityPolicy {
    /// fsync before `publish` returns: an acknowledged batch survives power loss.
    /// Slowest.
    EveryBatch,
    /// fsync at most `fsync_interval` after the write (group commit in the
    /// background): power loss may lose up to one interval of acknowledged batches.
    #[default]
    Interval,
    /// fsync only when a segment is closed and at shutdown: power loss may lose
    /// everything written since. Fastest.
    Never,
}

/// Settings of the embedded broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConnectorConfig {
    /// Where the broker keeps its data. Created if missing.
    pub data_dir: PathBuf,
    /// `false` keeps the data in a fresh temporary directory that is removed at
    /// shutdown (`data_dir` is then ignored).
    pub persistent: bool,
    /// When appended data is forced to disk.
    pub durability: DurabilityPolicy,
    /// The group-commit interval of [`DurabilityPolicy::Interval`], in milliseconds.
    pub fsync_interval_ms: u64,
    /// A segment file is closed and a new one started past this many bytes.
    pub segment_size_bytes: u64,
    /// Start the TCP listener that speaks the Iggy binary protocol, so that the
    /// official `iggy` SDK, `iggy-cli` and other processes can use this broker.
    pub tcp_enabled: bool,
    /// The address the listener binds (an IP address, or `localhost`). The default,
    /// `127.0.0.1`, accepts connections from this machine only.
    pub tcp_address: String,
    /// The listener's port; 0 picks a free ephemeral port (ask
    /// `EmbeddedConnector::tcp_address` for the one bound).
    pub tcp_port: u16,
    /// What one client, or all of them, may hold of the listener: connections,
    /// time before and between frames before login, time to read a reply, logins
    /// waiting for a password check, failed logins per connection.
    pub tcp_limits: ListenerLimits,
    /// Start the HTTP endpoint: `GET /ping`, `/health` (JSON) and `/metrics`
    /// (Prometheus text).
    pub http_enabled: bool,
    /// The address the HTTP endpoint binds; `127.0.0.1` by default.
    pub http_address: String,
    /// The HTTP endpoint's port; 0 picks a free one (ask
    /// `EmbeddedConnector::http_address`).
    pub http_port: u16,
    /// Connections the HTTP endpoint serves at once (default 64). Past it, new
    /// connections wait in the listen queue until one ends.
    pub http_max_connections: u32,
    /// How long one HTTP connection may last, in milliseconds (default 10,000): it
    /// carries one request, and reading that request and writing the whole answer
    /// must fit, so a client that sends slowly or never reads is cut off.
    pub http_timeout_ms: u64,
    /// Name of the root user (id 0) of the listener. Default `iggy`.
    pub root_username: String,
    /// Password of the root user. The default, `iggy`, is Iggy's well-known
    /// development password: **change it** before the listener is reachable by
    /// anyone else (set `tcp_address` to a non-loopback address only with a
    /// strong password). It is never written to disk or logged, and skipped when
    /// the configuration is serialized.
    #[serde(skip_serializing)]
    pub root_password: Secret,
    /// Fault injection, for drills and tests: every fsync the broker's storage
    /// makes (segment data and index files, directories, the consumer-offsets
    /// journal) first sleeps this long on the thread that runs it, as on a slow
    /// disk. Zero (the default) injects nothing. Set in code only; not read from
    /// YAML.
    #[serde(skip)]
    pub fault_fsync_delay: Duration,
    /// Message-id deduplication of every partition (on by default).
    pub deduplication: DeduplicationConfig,
}

/// The embedded broker's deduplication window, per partition, with the semantics of
/// the Iggy server's `message_deduplication` (`enabled`, `max_entries`, `expiry`): a
/// message whose id the partition stored within the window is not stored again, the
/// other messages of its batch are; id 0 is never a duplicate (the broker assigns a
/// random id). Unlike the Iggy server's, it is on by default, and it survives a
/// restart: the window is rebuilt from the tail of the log when the broker opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeduplicationConfig {
    /// Deduplicate (default `true`).
    pub enabled: bool,
    /// Ids remembered per partition (default 10,000, as the Iggy server): the oldest
    /// is forgotten past it. About 64 bytes of memory each.
    pub max_entries: u32,
    /// How long an id is remembered after its message was stored, in milliseconds
    /// (default 60,000, the Iggy server's `1 m`); 0 remembers ids until
    /// `max_entries` pushes them out.
    pub expiry_ms: u64,
}

impl Default for DeduplicationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 10_000,
            expiry_ms: 60_000,
        }
    }
}

impl DeduplicationConfig {
    /// No deduplication: every message is stored.
    #[must_use]
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The expiry, `None` for none.
    #[must_use]
    pub fn expiry(&self) -> Option<Duration> {
        (self.expiry_ms > 0).then(|| Duration::from_millis(self.expiry_ms))
    }
}

impl Default for EmbeddedConnectorConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data/iggy"),
            persistent: true,
            durability: DurabilityPolicy::Interval,
            fsync_interval_ms: 1000,
            segment_size_bytes: 1024 * 1024 * 1024,
            tcp_enabled: true,
            tcp_address: "127.0.0.1".to_owned(),
            tcp_port: 8090,
            tcp_limits: ListenerLimits::default(),
            http_enabled: true,
            http_address: "127.0.0.1".to_owned(),
            http_port: 3000,
            http_max_connections: 64,
            http_timeout_ms: 10_000,
            root_username: "iggy".to_owned(),
            root_password: Secret::new("iggy"),
            deduplication: DeduplicationConfig::default(),
            fault_fsync_delay: Duration::ZERO,
        }
    }
}

impl EmbeddedConnectorConfig {
    /// The policy with its interval.
    #[must_use]
    pub fn durability(&self) -> Durability {
        match self.durability {
            DurabilityPolicy::EveryBatch => Durability::EveryBatch,
            DurabilityPolicy::Interval => {
                Durability::Interval(Duration::from_millis(self.fsync_interval_ms))
            }
            DurabilityPolicy::Never => Durability::Never,
        }
    }

    fn validate(&self) -> Result<(), ConnectorError> {
        if self.persistent && self.data_dir.as_os_str().is_empty() {
            return Err(ConnectorError::config(
                "embedded.data_dir",
                "must not be empty when embedded.persistent is true",
            ));
        }
        if self.durability == DurabilityPolicy::Interval && self.fsync_interval_ms == 0 {
            return Err(ConnectorError::config(
                "embedded.fsync_interval_ms",
                "must be at least 1 with durability `interval` (use `every_batch` to fsync every batch)",
            ));
        }
        if self.segment_size_bytes < 4096 {
            return Err(ConnectorError::config(
                "embedded.segment_size_bytes",
                format!(
                    "{} is too small; allowed: at least 4096",
                    self.segment_size_bytes
                ),
            ));
        }
        if self.deduplication.enabled && self.deduplication.max_entries == 0 {
            return Err(ConnectorError::config(
                "embedded.deduplication.max_entries",
                "0 would remember nothing; allowed: at least 1 (or enabled: false)",
            ));
        }
        if self.tcp_enabled {
            self.validate_listener()?;
            self.tcp_limits.validate()?;
        }
        if self.http_enabled {
            self.http_socket_address()?;
            if self.http_max_connections == 0 {
                return Err(ConnectorError::config(
                    "embedded.http_max_connections",
                    "0 would serve nobody; allowed: at least 1",
                ));
            }
            if self.http_timeout_ms == 0 {
                return Err(ConnectorError::config(
                    "embedded.http_timeout_ms",
                    "0 would cut every connection; allowed: at least 1",
                ));
            }
        }
        Ok(())
    }

    /// The listener settings: an address, and root credentials within Iggy's
    /// limits (user name 3 to 50 characters, password 3 to 100).
    fn validate_listener(&self) -> Result<(), ConnectorError> {
        if self.tcp_address != "localhost" && self.tcp_address.parse::<std::net::IpAddr>().is_err()
        {
            return Err(ConnectorError::config(
                "embedded.tcp_address",
                format!(
                    "{:?} is not an IP address; allowed: an IPv4 or IPv6 address, or localhost",
                    self.tcp_address
                ),
            ));
        }
        let name_len = self.root_username.chars().count();
        if !(3..=50).contains(&name_len) || self.root_username.chars().any(char::is_control) {
            return Err(ConnectorError::config(
                "embedded.root_username",
                format!("must be 3 to 50 characters without control characters, not {name_len}"),
            ));
        }
        let password_len = self.root_password.expose().chars().count();
        if !(3..=100).contains(&password_len) {
            return Err(ConnectorError::config(
                "embedded.root_password",
                format!("must be 3 to 100 characters, not {password_len}"),
            ));
        }
        Ok(())
    }

    /// The socket address of the listener (`tcp_address`:`tcp_port`).
    pub fn tcp_socket_address(&self) -> Result<std::net::SocketAddr, ConnectorError> {
        use std::net::ToSocketAddrs;
        (self.tcp_address.as_str(), self.tcp_port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                ConnectorError::config(
                    "embedded.tcp_address",
                    format!("cannot resolve {:?}", self.tcp_address),
                )
            })
    }

    /// The socket address the HTTP endpoint binds.
    pub fn http_socket_address(&self) -> Result<std::net::SocketAddr, ConnectorError> {
        let ip = match self.http_address.as_str() {
            "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
            other => other.parse().map_err(|_| {
                ConnectorError::config(
                    "embedded.http_address",
                    format!("{other:?} is not an IP address; allowed: an IPv4 or IPv6 address, or localhost"),
                )
            })?,
        };
        Ok(std::net::SocketAddr::new(ip, self.http_port))
    }
}

/// Limits of the embedded broker's TCP listener (`embedded.tcp_limits`): what one
/// client, or all of them, may hold of it. Every field must be at least 1.
///
/// Before it has logged in, a connection may also send frames of at most 4 KiB
/// (a login with the longest names and password fits); a larger one is refused from
/// its header, before any of its body is read, and the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerLimits {
    /// Most connections open at once, logged in or not. Default 1024. Keep it below
    /// the process's open-file limit (`ulimit -n`) minus the files of the data
    /// directory (two per partition).
    pub max_connections: u32,
    /// Most connections that have not logged in, at once. Default 128.
    ///
    /// When a new connection would pass this limit or `max_connections`, the
    /// listener closes the oldest connection that has not logged in and is not
    /// having its password checked, taken from the client address that holds the
    /// most connections not logged in (so a flood from one address replaces its
    /// own connections). If there is none, the new connection is closed.
    pub max_unauthenticated: u32,
    /// Milliseconds a new connection may take to send its first complete frame
    /// before it is closed. Default 10,000.
    pub first_frame_timeout_ms: u64,
    /// Milliseconds a connection that has not logged in (or logged out) may go
    /// without sending a complete frame before it is closed. Default 30,000.
    pub unauthenticated_idle_timeout_ms: u64,
    /// Milliseconds a reply may wait for the client to take any of it (a client
    /// that stopped reading) before the connection is closed. Default 30,000. The
    /// listener answers one request at a time per connection, so such a client
    /// holds at most one reply until then.
    pub write_timeout_ms: u64,
    /// Most logins waiting for a password check (4 run at once). Default 64. Turns
    /// go round-robin between client addresses; when the queue is full, the newest
    /// waiting login of the address with the most waiting is refused (the
    /// connection is closed), or the new one if its address has the most.
    pub login_queue: u32,
    /// Failed logins after which the listener closes the connection. Default 3.
    pub max_failed_logins: u32,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_unauthenticated: 128,
            first_frame_timeout_ms: 10_000,
            unauthenticated_idle_timeout_ms: 30_000,
            write_timeout_ms: 30_000,
            login_queue: 64,
            max_failed_logins: 3,
        }
    }
}

impl ListenerLimits {
    /// The first-frame timeout.
    #[must_use]
    pub fn first_frame_timeout(&self) -> Duration {
        Duration::from_millis(self.first_frame_timeout_ms)
    }

    /// The idle timeout of connections that have not logged in.
    #[must_use]
    pub fn unauthenticated_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.unauthenticated_idle_timeout_ms)
    }

    /// The write timeout.
    #[must_use]
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    fn validate(&self) -> Result<(), ConnectorError> {
        let fields = [
            ("max_connections", u64::from(self.max_connections)),
            ("max_unauthenticated", u64::from(self.max_unauthenticated)),
            ("first_frame_timeout_ms", self.first_frame_timeout_ms),
            (
                "unauthenticated_idle_timeout_ms",
                self.unauthenticated_idle_timeout_ms,
            ),
            ("write_timeout_ms", self.write_timeout_ms),
            ("login_queue", u64::from(self.login_queue)),
            ("max_failed_logins", u64::from(self.max_failed_logins)),
        ];
        for (field, value) in fields {
            if value == 0 {
                return Err(ConnectorError::config(
                    format!("embedded.tcp_limits.{field}"),
                    "must be at least 1",
                ));
            }
        }
        if self.max_unauthenticated > self.max_connections {
            return Err(ConnectorError::config(
                "embedded.tcp_limits.max_unauthenticated",
                format!(
                    "{} is more than max_connections ({})",
                    self.max_unauthenticated, self.max_connections
                ),
            ));
        }
        Ok(())
    }
}

/// A secret string (a password or a token), kept in a [`secrecy::SecretString`]:
/// `Debug` never prints it, its memory is zeroized when it is dropped, and it does
/// not implement `Serialize`, so no configuration can write it back out (the
/// configurations skip their secret fields when serialized). It deserializes from a
/// plain string.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(SecretString::from(secret.into()))
    }

    /// The secret itself.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// Transport to a remote Iggy server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteProtocol {
    /// The Iggy binary protocol over TCP.
    #[default]
    Tcp,
    /// The Iggy binary protocol over QUIC.
    Quic,
    /// The Iggy HTTP API.
    Http,
}

/// Settings of the connection to a remote Iggy server or cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConnectorConfig {
    /// Server addresses (`host:port`), tried in order.
    pub addresses: Vec<String>,
    /// The transport.
    pub protocol: RemoteProtocol,
    /// User name.
    pub username: String,
    /// Password (skipped when the configuration is serialized).
    #[serde(skip_serializing)]
    pub password: Secret,
    /// A personal access token; used instead of user name and password when set
    /// (skipped when the configuration is serialized).
    #[serde(skip_serializing)]
    pub personal_access_token: Secret,
    /// Use TLS.
    pub tls_enabled: bool,
    /// A CA certificate file (PEM) to validate the server with; webpki roots if unset.
    pub tls_ca_file: Option<PathBuf>,
    /// The server name to validate the certificate against; the host of the address
    /// if unset.
    pub tls_domain: Option<String>,
    /// How long one connection attempt may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How many times a lost connection is re-established before giving up.
    pub reconnection_retries: u32,
    /// Pause between reconnection attempts, in milliseconds.
    pub reconnection_interval_ms: u64,
    /// Interval of the keep-alive ping, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Connections the connector keeps to the server for partition-scoped calls
    /// (publishing and replay reads); 1 to 64, default 2. The Iggy protocol carries one
    /// request at a time per connection, so calls on different partitions run in
    /// parallel only on different connections: partition `p` always uses connection
    /// `p % pool_size` (its calls stay in order), and connection 0 also carries the
    /// metadata calls. Each connection reconnects on its own. Group members open
    /// their own connection besides these.
    pub pool_size: u32,
}

impl Default for RemoteConnectorConfig {
    fn default() -> Self {
        Self {
            addresses: vec!["127.0.0.1:8090".to_owned()],
            protocol: RemoteProtocol::Tcp,
            username: "rustok".to_owned(),
            password: Secret::default(),
            personal_access_token: Secret::default(),
            tls_enabled: false,
            tls_ca_file: None,
            tls_domain: None,
            connect_timeout_ms: 5_000,
            reconnection_retries: 10,
            reconnection_interval_ms: 1_000,
            heartbeat_interval_ms: 5_000,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

/// The default of [`RemoteConnectorConfig::pool_size`].
const DEFAULT_POOL_SIZE: u32 = 2;
/// The largest [`RemoteConnectorConfig::pool_size`].
const MAX_POOL_SIZE: u32 = 64;

impl RemoteConnectorConfig {
    /// Checks the remote settings, what the SDK needs included (so that a
    /// configuration that cannot connect is refused when it is loaded).
    pub(crate) fn validate(&self) -> Result<(), ConnectorError> {
        if self.heartbeat_interval_ms == 0 {
            return Err(ConnectorError::config(
                "remote.heartbeat_interval_ms",
                "must be at least 1",
            ));
        }
        if self.protocol == RemoteProtocol::Http {
            return Err(ConnectorError::config(
                "remote.protocol",
                "`http` cannot carry consumer-group membership (Iggy's HTTP API has no join, sync \
                 or heartbeat); allowed: tcp, quic",
            ));
        }
        if self.protocol == RemoteProtocol::Quic && self.tls_ca_file.is_some() {
            return Err(ConnectorError::config(
                "remote.tls_ca_file",
                "the iggy SDK's QUIC client validates against the system roots only; unset it or \
                 use protocol tcp",
            ));
        }
        if self.addresses.is_empty() {
            return Err(ConnectorError::config(
                "remote.addresses",
                "must list at least one host:port",
            ));
        }
        for (index, address) in self.addresses.iter().enumerate() {
            let valid = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(ConnectorError::config(
                    format!("remote.addresses[{index}]"),
                    format!("{address:?} is not host:port"),
                ));
            }
        }
        if self.personal_access_token.is_empty() && self.username.is_empty() {
            return Err(ConnectorError::config(
                "remote.username",
                "must be set unless remote.personal_access_token is",
            ));
        }
        if self.connect_timeout_ms == 0 {
            return Err(ConnectorError::config(
                "remote.connect_timeout_ms",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            return Err(ConnectorError::config(
                "remote.pool_size",
                format!(
                    "{} is out of range; allowed: 1 to {MAX_POOL_SIZE}",
                    self.pool_size
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_embedded() {
        let config = ConnectorConfig::default();
        config.validate().unwrap();
        assert_eq!(config.mode, ConnectorMode::Embedded);
        assert_eq!(
            config.embedded.durability(),
            Durability::Interval(Duration::from_secs(1))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let mut config = ConnectorConfig {
            partitions: 0,
            ..ConnectorConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("partitions") && err.contains("1 to 1000"),
            "{err}"
        );
        config.partitions = 1;
        config.mode = ConnectorMode::Remote;
        config.remote.addresses = vec!["nope".into()];
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("remote.addresses[0]"), "{err}");
    }

    #[test]
    fn unknown_fields_and_values_are_refused() {
        let err = serde_json::from_str::<ConnectorConfig>(r#"{"mode":"cloud"}"#).unwrap_err();
        assert!(
            err.to_string().contains("embedded") && err.to_string().contains("remote"),
            "{err}"
        );
        assert!(serde_json::from_str::<ConnectorConfig>(r#"{"modes":"remote"}"#).is_err());
    }

    #[test]
    fn listener_defaults_and_limits() {
        let embedded = EmbeddedConnectorConfig::default();
        assert!(embedded.tcp_enabled);
        assert_eq!(embedded.tcp_port, 8090);
        assert_eq!(embedded.root_username, "iggy");
        assert_eq!(embedded.root_password.expose(), "iggy");
        let hidden = EmbeddedConnectorConfig {
            root_password: Secret::new("hunter2"),
            ..EmbeddedConnectorConfig::default()
        };
        assert!(!format!("{hidden:?}").contains("hunter2"));
        let mut config = ConnectorConfig::default();
        config.embedded.root_password = Secret::new("ab");
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("embedded.root_password"), "{err}");
        config.embedded.root_password = Secret::new("abc");
        config.embedded.root_username = "x".repeat(51);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("embedded.root_username"), "{err}");
        config.embedded.root_username = "admin".into();
        config.embedded.tcp_address = "not an ip".into();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("embedded.tcp_address"), "{err}");
        config.embedded.tcp_enabled = false;
        config.validate().unwrap();
        let parsed: EmbeddedConnectorConfig =
            serde_json::from_str(r#"{"tcp_port": 0, "root_password": "s3cret!"}"#).unwrap();
        assert_eq!(parsed.tcp_port, 0);
        assert_eq!(
            parsed.tcp_socket_address().unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert!(serde_json::from_str::<EmbeddedConnectorConfig>(r#"{"tcp_prot": 1}"#).is_err());
    }

    #[test]
    fn listener_limits_have_defaults_and_refuse_zero() {
        let limits = ListenerLimits::default();
        assert_eq!(limits.max_connections, 1024);
        assert_eq!(limits.max_unauthenticated, 128);
        assert_eq!(limits.write_timeout(), Duration::from_secs(30));
        let parsed: EmbeddedConnectorConfig =
            serde_json::from_str(r#"{"tcp_limits": {"max_connections": 10}}"#).unwrap();
        assert_eq!(parsed.tcp_limits.max_connections, 10);
        assert_eq!(parsed.tcp_limits.max_failed_logins, 3);
        let mut config = ConnectorConfig::default();
        config.embedded.tcp_limits.write_timeout_ms = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("embedded.tcp_limits.write_timeout_ms"),
            "{err}"
        );
        config.embedded.tcp_limits = ListenerLimits {
            max_connections: 4,
            max_unauthenticated: 5,
            ..ListenerLimits::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max_unauthenticated"), "{err}");
        assert!(
            serde_json::from_str::<ListenerLimits>(r#"{"max_conections": 1}"#).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn secrets_do_not_leak_in_debug() {
        let config = RemoteConnectorConfig {
            password: Secret::new("hunter2"),
            ..RemoteConnectorConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    /// Whether `T` implements `Serialize`, decided at compile time: the inherent
    /// method exists only when it does, and wins over the trait's fallback.
    struct Probe<T>(std::marker::PhantomData<T>);

    trait NotSerialize {
        fn serializable(&self) -> bool {
            false
        }
    }

    impl<T> NotSerialize for Probe<T> {}

    impl<T: Serialize> Probe<T> {
        #[allow(
            dead_code,
            reason = "called only when T implements Serialize, which the test refutes"
        )]
        fn serializable(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_secret_cannot_be_serialized() {
        assert!(
            !Probe::<Secret>(std::marker::PhantomData).serializable(),
            "Secret implements Serialize"
        );
    }

    #[test]
    fn a_serialized_configuration_holds_no_secret() {
        let mut config = ConnectorConfig::default();
        config.embedded.root_password = Secret::new("root-hunter2");
        config.remote.password = Secret::new("remote-hunter2");
        config.remote.personal_access_token = Secret::new("token-hunter2");
        let json = serde_json::to_string(&config).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        // What was written reads back, with the secrets at their defaults.
        let back: ConnectorConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.embedded.root_password, Secret::new("iggy"));
        assert!(back.remote.password.is_empty());
    }
}
