//! Connector configuration (the `embedded` and `remote` sections of `events.iggy`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::names::StreamName;

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
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            embedded: EmbeddedConnectorConfig {
                data_dir: data_dir.into(),
                ..EmbeddedConnectorConfig::default()
            },
            ..Self::default()
        }
    }

    /// Checks the values that serde cannot (ranges, combinations).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.partitions == 0 || self.partitions > 1000 {
            return Err(ConnectorError::config(
                "partitions",
                format!("{} is out of range; allowed: 1 to 1000", self.partitions),
            ));
        }
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

/// A durability policy with its interval, as the storage engine takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// See [`DurabilityPolicy::EveryBatch`].
    EveryBatch,
    /// See [`DurabilityPolicy::Interval`].
    Interval(Duration),
    /// See [`DurabilityPolicy::Never`].
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
}

impl Default for EmbeddedConnectorConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data/iggy"),
            persistent: true,
            durability: DurabilityPolicy::Interval,
            fsync_interval_ms: 1000,
            segment_size_bytes: 1024 * 1024 * 1024,
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
        Ok(())
    }
}

/// A secret string (a password or a token): `Debug` and `Display` never print it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
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
    /// Password.
    pub password: Secret,
    /// A personal access token; used instead of user name and password when set.
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
        }
    }
}

impl RemoteConnectorConfig {
    fn validate(&self) -> Result<(), ConnectorError> {
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
    fn secrets_do_not_leak_in_debug() {
        let mut config = RemoteConnectorConfig::default();
        config.password = Secret::new("hunter2");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
