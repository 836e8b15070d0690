//! Errors of the connection layer.

use std::io;

use crate::names::NameError;
use crate::partition::PartitionCountError;

/// What went wrong in a connector call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The broker could not be reached or the connection broke.
    #[error("connection failed: {message}")]
    Connection {
        /// What was being attempted.
        message: String,
        /// The underlying failure.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The connector is not connected (call `connect` first, or it was shut down).
    #[error("not connected: call connect() first (or the connector was shut down)")]
    NotConnected,
    /// The connector is already connected.
    #[error("already connected")]
    AlreadyConnected,
    /// The credentials were refused.
    #[error("authentication failed: {message}")]
    Auth {
        /// What the broker said.
        message: String,
        /// The underlying failure.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A mode was selected whose cargo feature is not compiled in.
    #[error(
        "the {mode} mode is not available: rustok-iggy-connector was built without the `{feature}` feature"
    )]
    FeatureDisabled {
        /// The mode asked for.
        mode: &'static str,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// The configuration is invalid.
    #[error("invalid configuration: {field}: {message}")]
    Config {
        /// The field at fault, as a dotted path.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A name does not follow the naming rule.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The stream does not exist.
    #[error("stream {stream:?} does not exist")]
    StreamNotFound {
        /// The stream.
        stream: String,
    },
    /// A stream, topic or group of that name already exists.
    #[error("{what} {name:?} already exists")]
    AlreadyExists {
        /// `stream`, `topic` or `consumer group`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Another broker (in this or another process) holds the data directory.
    #[error("the data directory {} is in use by another broker (its .lock file is held)", path.display())]
    DataDirInUse {
        /// The data directory.
        path: std::path::PathBuf,
    },
    /// The topic does not exist.
    #[error("topic {topic:?} does not exist in stream {stream:?}")]
    TopicNotFound {
        /// The stream.
        stream: String,
        /// The topic.
        topic: String,
    },
    /// The partition does not exist.
    #[error(
        "partition {partition} does not exist in {stream}/{topic} ({partitions} partitions, ids 0..{partitions})"
    )]
    PartitionNotFound {
        /// The stream.
        stream: String,
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// The consumer group does not exist.
    #[error("consumer group {group:?} does not exist on {stream}/{topic}")]
    GroupNotFound {
        /// The stream.
        stream: String,
        /// The topic.
        topic: String,
        /// The group.
        group: String,
    },
    /// A topic exists with another shape than the one asked for.
    #[error("topology mismatch for {stream}/{topic}: {message}")]
    TopologyMismatch {
        /// The stream.
        stream: String,
        /// The topic.
        topic: String,
        /// What differs.
        message: String,
    },
    /// The request is invalid (a zero partition count, an empty batch, an oversized
    /// payload, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// This group member no longer owns the partition (the group was rebalanced);
    /// its un-committed deliveries of that partition will be redelivered to the new
    /// owner.
    #[error(
        "partition {partition} is no longer assigned to this member of group {group:?} (generation {generation})"
    )]
    Fenced {
        /// The group.
        group: String,
        /// The partition.
        partition: u32,
        /// The member's current generation.
        generation: u64,
    },
    /// Publishing failed; the broker did not acknowledge the batch.
    #[error("publish failed: {message}")]
    Publish {
        /// What happened.
        message: String,
        /// The underlying failure.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Reading failed.
    #[error("receive failed: {message}")]
    Receive {
        /// What happened.
        message: String,
        /// The underlying failure.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A timeout elapsed.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long it waited.
        after: std::time::Duration,
    },
    /// The embedded broker's storage failed.
    #[cfg(feature = "embedded")]
    #[error(transparent)]
    Storage(#[from] rustok_iggy_storage::StorageError),
    /// Malformed bytes (a batch record, headers).
    #[error("malformed data")]
    Wire(#[from] crate::WireError),
    /// An I/O error outside the storage engine (metadata files, sockets).
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// An error from the official Iggy SDK.
    #[cfg(feature = "remote")]
    #[error("iggy: {context}")]
    Iggy {
        /// What was being done.
        context: String,
        /// The SDK error.
        #[source]
        source: iggy::prelude::IggyError,
    },
    /// The connector was shut down while the call waited.
    #[error("the connector is shutting down")]
    ShuttingDown,
}

impl ConnectorError {
    #[cfg(feature = "embedded")]
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Whether retrying the same call later may succeed (connection loss, timeouts).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Connection { .. } | Self::Timeout { .. } | Self::NotConnected
        )
    }
}

/// Shows an error and each of its sources, `": "`-separated: the whole story of a
/// failure in one line. Every `Display` of this workspace says only its own part (it
/// never repeats its source), so logs and reports print errors through this.
///
/// ```
/// use rustok_iggy_connector::{ConnectorError, error_chain};
///
/// let io = std::io::Error::other("disk full");
/// let error = ConnectorError::Io { context: "write meta.json".into(), source: io };
/// assert_eq!(error.to_string(), "write meta.json");
/// assert_eq!(error_chain(&error).to_string(), "write meta.json: disk full");
/// ```
#[must_use]
pub fn error_chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> ErrorChain<'a> {
    ErrorChain(error)
}

/// An error shown with its sources; see [`error_chain`].
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(error) = next {
            write!(f, ": {error}")?;
            next = error.source();
        }
        Ok(())
    }
}

impl From<PartitionCountError> for ConnectorError {
    fn from(error: PartitionCountError) -> Self {
        Self::InvalidRequest(error.to_string())
    }
}
