//! `IggyConfig`: the `events.iggy` section of the application's configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rustok_iggy_connector::{
    ConnectorConfig, ConnectorMode, DurabilityPolicy, EmbeddedConnectorConfig,
    RemoteConnectorConfig, RemoteProtocol, Retention, StreamName, TopicName,
};
use serde::{Deserialize, Serialize};

use crate::codec::Codec;

/// Why a configuration was refused. `Display` names the field and what is allowed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not valid YAML.
    #[error("configuration is not valid YAML")]
    Syntax(#[source] serde_yaml_ng::Error),
    /// A field has a wrong value or type, or is unknown.
    #[error("{path}: {message}")]
    Field {
        /// The field, as a dotted path (`events.iggy.mode`).
        path: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// `${VAR}` names an environment variable that is not set (and has no default).
    #[error(
        "{path}: environment variable {var} is not set (write ${{{var}:-default}} for a default)"
    )]
    MissingEnv {
        /// The field holding the reference.
        path: String,
        /// The variable.
        var: String,
    },
    /// The document has no `events.iggy` section.
    #[error("no `events.iggy` section in the configuration")]
    MissingSection,
}

/// A field that is read but cannot take effect with the rest of the configuration
/// (for example `embedded.tcp_port` with `embedded.tcp_enabled: false`). Loading logs
/// each one; [`IggyConfig::warnings`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigWarning {
    /// The field, as a dotted path within the section (`embedded.tcp_port`).
    pub path: String,
    /// Why it has no effect.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Stream, partitions and topic routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    /// The stream every topic lives in, unless an event type names its own.
    pub stream_name: StreamName,
    /// Partitions of each topic created by rustok-iggy.
    pub domain_partitions: u32,
    /// Replicas of each partition. Only 1 is accepted: the embedded broker is a single
    /// node, and Iggy 0.11 has no per-topic replication factor (a cluster replicates
    /// by its own configuration). Kept so that configurations written for the
    /// original design load.
    pub replication_factor: u32,
    /// Topic of envelopes whose event type matches no route (`EventTransport`).
    pub default_topic: TopicName,
    /// Envelope routing: event-type prefix → topic (`EventTransport`). The longest
    /// matching prefix wins; `order.` matches `order.placed`.
    pub routes: BTreeMap<String, TopicName>,
    /// Topics of system (platform) events rather than domain events, typed or
    /// envelopes: they are created with `retention.system_max_age_days` instead of
    /// the domain limits.
    pub system_topics: BTreeSet<TopicName>,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            stream_name: StreamName::new("rustok").unwrap_or_else(|_| unreachable!()),
            domain_partitions: 8,
            replication_factor: 1,
            default_topic: TopicName::new("domain").unwrap_or_else(|_| unreachable!()),
            routes: BTreeMap::new(),
            system_topics: BTreeSet::new(),
        }
    }
}

impl TopologyConfig {
    /// The topic for `event_type` (longest matching route prefix, else the default).
    #[must_use]
    pub fn topic_for(&self, event_type: &str) -> &TopicName {
        self.routes
            .iter()
            .filter(|(prefix, _)| event_type.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(&self.default_topic, |(_, topic)| topic)
    }
}

/// Retention of the topics rustok-iggy creates. `None` keeps data forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Age limit of domain topics, in days.
    pub domain_max_age_days: Option<u32>,
    /// Size limit of each domain topic, in GB (10^9 bytes).
    pub domain_max_size_gb: Option<u64>,
    /// Age limit of system topics (`topology.system_topics`), in days; none by
    /// default.
    pub system_max_age_days: Option<u32>,
    /// Age limit of dead-letter topics, in days.
    pub dlq_max_age_days: Option<u32>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            domain_max_age_days: Some(30),
            domain_max_size_gb: Some(10),
            system_max_age_days: None,
            dlq_max_age_days: Some(365),
        }
    }
}

fn days(days: Option<u32>) -> Option<Duration> {
    days.map(|d| Duration::from_secs(u64::from(d) * 86_400))
}

impl RetentionConfig {
    /// Retention of domain topics (every topic not in `topology.system_topics`).
    #[must_use]
    pub fn domain(&self) -> Retention {
        Retention {
            max_age: days(self.domain_max_age_days),
            max_size_bytes: self
                .domain_max_size_gb
                .map(|gb| gb.saturating_mul(1_000_000_000)),
        }
    }

    /// Retention of system topics (`topology.system_topics`).
    #[must_use]
    pub fn system(&self) -> Retention {
        Retention {
            max_age: days(self.system_max_age_days),
            max_size_bytes: None,
        }
    }

    /// Retention of dead-letter topics.
    #[must_use]
    pub fn dead_letter(&self) -> Retention {
        Retention {
            max_age: days(self.dlq_max_age_days),
            max_size_bytes: None,
        }
    }
}

/// Configuration of rustok-iggy: the `events.iggy` section.
///
/// ```yaml
/// events:
///   transport: iggy
///   iggy:
///     mode: embedded          # embedded | remote
///     serialization: json     # json | postcard (envelopes of EventTransport)
///     topology: { stream_name: rustok, domain_partitions: 8, replication_factor: 1 }
///     embedded: { data_dir: ./data/iggy }
///     remote: { addresses: ["127.0.0.1:8090"], username: rustok, password: "${IGGY_PASSWORD}" }
///     retention: { domain_max_age_days: 30, domain_max_size_gb: 10 }
/// ```
///
/// Any string may hold `${VAR}` or `${VAR:-default}`, replaced by the environment
/// variable when the configuration is loaded (for secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct IggyConfig {
    /// Embedded (default) or remote.
    pub mode: ConnectorMode,
    /// Codec of envelopes published through `EventTransport`.
    pub serialization: Codec,
    /// Stream, partitions, routing.
    pub topology: TopologyConfig,
    /// The embedded broker.
    pub embedded: EmbeddedConnectorConfig,
    /// The remote server.
    pub remote: RemoteConnectorConfig,
    /// Retention of created topics.
    pub retention: RetentionConfig,
}

#[derive(Deserialize)]
struct Document {
    events: Option<EventsSection>,
}

#[derive(Deserialize)]
struct EventsSection {
    #[serde(default)]
    iggy: Option<serde_yaml_ng::Value>,
}

impl IggyConfig {
    /// Loads the `events.iggy` section of a YAML document (other keys of the document
    /// are ignored; `events.transport` is not checked). `${VAR}` references are read
    /// from the process environment.
    pub fn from_yaml(document: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_with_env(document, |var| std::env::var(var).ok())
    }

    /// [`IggyConfig::from_yaml`] with `${VAR}` references resolved by `env`.
    pub fn from_yaml_with_env(
        document: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let doc: Document = serde_yaml_ng::from_str(document).map_err(ConfigError::Syntax)?;
        let section = doc
            .events
            .and_then(|e| e.iggy)
            .ok_or(ConfigError::MissingSection)?;
        Self::from_value(section, "events.iggy", &env)
    }

    /// Loads a YAML document that is the `iggy` section itself.
    pub fn from_section_yaml(section: &str) -> Result<Self, ConfigError> {
        let value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(section).map_err(ConfigError::Syntax)?;
        Self::from_value(value, "", &|var| std::env::var(var).ok())
    }

    pub(crate) fn from_value(
        mut value: serde_yaml_ng::Value,
        root: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        expand_env(&mut value, root, env)?;
        let config: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = join_path(root, &e.path().to_string());
            ConfigError::Field {
                path,
                message: e.into_inner().to_string(),
            }
        })?;
        config.validate(root)?;
        for warning in config.warnings() {
            tracing::warn!(
                field = %join_path(root, &warning.path),
                "{}",
                warning.message
            );
        }
        Ok(config)
    }

    fn validate(&self, root: &str) -> Result<(), ConfigError> {
        if self.topology.replication_factor != 1 {
            let why = match self.mode {
                ConnectorMode::Embedded => "the embedded broker is a single node",
                ConnectorMode::Remote => {
                    "Iggy 0.11 has no per-topic replication factor (a cluster replicates by \
                     its own configuration)"
                }
            };
            return Err(ConfigError::Field {
                path: join_path(root, "topology.replication_factor"),
                message: format!(
                    "{} is not possible: {why}; allowed: 1",
                    self.topology.replication_factor
                ),
            });
        }
        // The partition count is checked here, under this document's name for it, so
        // that the connector's own check below never reports its `partitions`.
        rustok_iggy_connector::check_partition_count(self.topology.domain_partitions).map_err(
            |e| ConfigError::Field {
                path: join_path(root, "topology.domain_partitions"),
                message: e.to_string(),
            },
        )?;
        // The `embedded` and `remote` sections are the connector's, with its field names.
        self.connector_config().validate().map_err(|e| match e {
            rustok_iggy_connector::ConnectorError::Config { field, message } => {
                ConfigError::Field {
                    path: join_path(root, &field),
                    message,
                }
            }
            other => ConfigError::Field {
                path: root.to_owned(),
                message: other.to_string(),
            },
        })
    }

    /// The fields that are set (differ from their default) but cannot take effect
    /// with the rest of the configuration; empty for the default configuration.
    /// Loading from YAML logs each one (at `warn`, with the field's full path).
    #[must_use]
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let mut out = Vec::new();
        let mut warn = |path: &str, message: String| {
            out.push(ConfigWarning {
                path: path.to_owned(),
                message,
            });
        };
        if self.retention.system_max_age_days.is_some() && self.topology.system_topics.is_empty() {
            warn(
                "retention.system_max_age_days",
                "applies to the topics listed in topology.system_topics, and none is listed".into(),
            );
        }
        let embedded_default = EmbeddedConnectorConfig::default();
        let remote_default = RemoteConnectorConfig::default();
        match self.mode {
            ConnectorMode::Embedded => {
                if self.remote != remote_default {
                    warn(
                        "remote",
                        "not used in embedded mode (it applies when mode is remote)".into(),
                    );
                }
                self.embedded_warnings(&embedded_default, &mut warn);
            }
            ConnectorMode::Remote => {
                if self.embedded != embedded_default {
                    warn(
                        "embedded",
                        "not used in remote mode (it applies when mode is embedded)".into(),
                    );
                }
                self.remote_warnings(&remote_default, &mut warn);
            }
        }
        out
    }

    fn embedded_warnings(
        &self,
        default: &EmbeddedConnectorConfig,
        warn: &mut impl FnMut(&str, String),
    ) {
        let e = &self.embedded;
        if !e.persistent && e.data_dir != default.data_dir {
            warn(
                "embedded.data_dir",
                "ignored: embedded.persistent is false (a temporary directory is used)".into(),
            );
        }
        if e.durability != DurabilityPolicy::Interval
            && e.fsync_interval_ms != default.fsync_interval_ms
        {
            warn(
                "embedded.fsync_interval_ms",
                "ignored: it applies to durability `interval` only".into(),
            );
        }
        if !e.deduplication.enabled {
            let set = [
                (
                    "embedded.deduplication.max_entries",
                    e.deduplication.max_entries != default.deduplication.max_entries,
                ),
                (
                    "embedded.deduplication.expiry_ms",
                    e.deduplication.expiry_ms != default.deduplication.expiry_ms,
                ),
            ];
            for (path, _) in set.into_iter().filter(|(_, set)| *set) {
                warn(
                    path,
                    "ignored: embedded.deduplication.enabled is false".into(),
                );
            }
        }
        if !e.tcp_enabled {
            let set = [
                ("embedded.tcp_address", e.tcp_address != default.tcp_address),
                ("embedded.tcp_port", e.tcp_port != default.tcp_port),
                (
                    "embedded.root_username",
                    e.root_username != default.root_username,
                ),
                (
                    "embedded.root_password",
                    e.root_password != default.root_password,
                ),
            ];
            for (path, _) in set.into_iter().filter(|(_, set)| *set) {
                warn(path, "ignored: embedded.tcp_enabled is false".into());
            }
        }
        if !e.http_enabled {
            let set = [
                (
                    "embedded.http_address",
                    e.http_address != default.http_address,
                ),
                ("embedded.http_port", e.http_port != default.http_port),
            ];
            for (path, _) in set.into_iter().filter(|(_, set)| *set) {
                warn(path, "ignored: embedded.http_enabled is false".into());
            }
        }
    }

    fn remote_warnings(
        &self,
        default: &RemoteConnectorConfig,
        warn: &mut impl FnMut(&str, String),
    ) {
        let r = &self.remote;
        if r.protocol == RemoteProtocol::Tcp && !r.tls_enabled {
            if r.tls_ca_file.is_some() {
                warn(
                    "remote.tls_ca_file",
                    "ignored: remote.tls_enabled is false".into(),
                );
            }
            if r.tls_domain.is_some() {
                warn(
                    "remote.tls_domain",
                    "ignored: remote.tls_enabled is false".into(),
                );
            }
        }
        if !r.personal_access_token.is_empty() {
            if r.username != default.username {
                warn(
                    "remote.username",
                    "ignored: remote.personal_access_token is used to sign in".into(),
                );
            }
            if !r.password.is_empty() {
                warn(
                    "remote.password",
                    "ignored: remote.personal_access_token is used to sign in".into(),
                );
            }
        }
        if r.reconnection_retries == 0
            && r.reconnection_interval_ms != default.reconnection_interval_ms
        {
            warn(
                "remote.reconnection_interval_ms",
                "ignored: remote.reconnection_retries is 0 (no reconnection)".into(),
            );
        }
    }

    /// The retention `topic` is created with: `retention.system_max_age_days` for
    /// a topic of `topology.system_topics`, the domain limits for the others.
    #[must_use]
    pub fn retention_of(&self, topic: &TopicName) -> Retention {
        if self.topology.system_topics.contains(topic) {
            self.retention.system()
        } else {
            self.retention.domain()
        }
    }

    /// The connector part of the configuration.
    #[must_use]
    pub fn connector_config(&self) -> ConnectorConfig {
        ConnectorConfig {
            mode: self.mode,
            stream_name: self.topology.stream_name.clone(),
            partitions: self.topology.domain_partitions,
            embedded: self.embedded.clone(),
            remote: self.remote.clone(),
        }
    }
}

fn join_path(root: &str, path: &str) -> String {
    match (root.is_empty(), path.is_empty() || path == ".") {
        (true, _) => path.to_owned(),
        (false, true) => root.to_owned(),
        (false, false) => format!("{root}.{path}"),
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string of `value`.
fn expand_env(
    value: &mut serde_yaml_ng::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    use serde_yaml_ng::Value;
    match value {
        Value::String(text) => {
            if text.contains("${") {
                *text = expand_str(text, path, env)?;
            }
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{path}[{index}]"), env)?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().unwrap_or("?");
                expand_env(item, &join_path(path, key), env)?;
            }
        }
        Value::Tagged(tagged) => expand_env(&mut tagged.value, path, env)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn expand_str(
    text: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let reference = &after[..end];
        let (var, default) = match reference.split_once(":-") {
            Some((var, default)) => (var, Some(default)),
            None => (reference, None),
        };
        match env(var).or_else(|| default.map(str::to_owned)) {
            Some(value) => out.push_str(&value),
            None => {
                return Err(ConfigError::MissingEnv {
                    path: path.to_owned(),
                    var: var.to_owned(),
                });
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "IGGY_PASSWORD").then(|| "s3cret".to_owned())
    }

    fn load(yaml: &str) -> Result<IggyConfig, ConfigError> {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        let section = doc["events"]["iggy"].clone();
        IggyConfig::from_value(section, "events.iggy", &env)
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(
            expand_str("a${IGGY_PASSWORD}b", "p", &env).unwrap(),
            "as3cretb"
        );
        assert_eq!(expand_str("${NOPE:-x}", "p", &env).unwrap(), "x");
        let err = expand_str("${NOPE}", "events.iggy.remote.password", &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "events.iggy.remote.password: environment variable NOPE is not set (write ${NOPE:-default} for a default)"
        );
    }

    #[test]
    fn wrong_values_name_the_field_and_the_allowed_values() {
        let err = load("events:\n  iggy:\n    mode: cloud\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("events.iggy.mode: unknown variant `cloud`"),
            "{err}"
        );
        assert!(
            err.contains("`embedded`") && err.contains("`remote`"),
            "{err}"
        );

        let err = load("events:\n  iggy:\n    serialization: bincode\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("events.iggy.serialization:"), "{err}");
        assert!(err.contains("json") && err.contains("postcard"), "{err}");

        let err = load("events:\n  iggy:\n    topology:\n      domain_partitions: 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("events.iggy.topology.domain_partitions:"),
            "{err}"
        );

        let err = load("events:\n  iggy:\n    topology:\n      replication_factor: 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("replication_factor") && err.contains("allowed: 1"),
            "{err}"
        );

        let err = load("events:\n  iggy:\n    remote:\n      adresses: []\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("events.iggy.remote"), "{err}");
        assert!(err.contains("adresses"), "{err}");
    }

    #[test]
    fn routes_pick_the_longest_prefix() {
        let mut topology = TopologyConfig::default();
        topology
            .routes
            .insert("order.".into(), TopicName::new("orders").unwrap());
        topology
            .routes
            .insert("order.refund".into(), TopicName::new("refunds").unwrap());
        assert_eq!(topology.topic_for("order.placed").as_str(), "orders");
        assert_eq!(
            topology.topic_for("order.refund.issued").as_str(),
            "refunds"
        );
        assert_eq!(topology.topic_for("user.created").as_str(), "domain");
    }
}
