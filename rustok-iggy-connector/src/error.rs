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

    /// Whether retrying the same call later may succeed: exactly when
    /// [`kind`](Self::kind) is [`ErrorKind::Transient`] (a lost or impossible
    /// connection, a timeout, a connector not connected yet, also when the Iggy SDK
    /// reports it inside [`ConnectorError::Iggy`], [`ConnectorError::Publish`] or
    /// [`ConnectorError::Receive`]). One rule: the publish retries of `Transport` and
    /// the batching publisher, the remote connector's resends and the closing commit
    /// of a subscription all go by it.
    ///
    /// A publish retried on it may have been stored by the attempt before (its answer
    /// was lost). The retries resend the same message ids to the same partition, so a
    /// broker that deduplicates stores it once: the embedded broker (on by default), or
    /// an Iggy server with `message_deduplication` enabled. Without deduplication the
    /// retry may store the batch twice (at-least-once).
    ///
    /// ```
    /// use rustok_iggy_connector::ConnectorError;
    ///
    /// assert!(ConnectorError::NotConnected.is_transient());
    /// assert!(!ConnectorError::InvalidRequest("empty batch".into()).is_transient());
    /// ```
    #[must_use]
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// What kind of failure this is, for a caller deciding what to do next: retry
    /// later, create what is missing, fix the request, re-read the assignment, or
    /// give up. Every variant has one kind; an error from the Iggy SDK is classified
    /// by the server's answer.
    ///
    /// ```
    /// use rustok_iggy_connector::{ConnectorError, ErrorKind};
    ///
    /// let missing = ConnectorError::StreamNotFound { stream: "shop".into() };
    /// assert_eq!(missing.kind(), ErrorKind::NotFound);
    /// assert_eq!(ConnectorError::NotConnected.kind(), ErrorKind::Transient);
    /// ```
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connection { .. } | Self::Timeout { .. } | Self::NotConnected => {
                ErrorKind::Transient
            }
            Self::StreamNotFound { .. }
            | Self::TopicNotFound { .. }
            | Self::PartitionNotFound { .. }
            | Self::GroupNotFound { .. } => ErrorKind::NotFound,
            Self::AlreadyExists { .. } | Self::AlreadyConnected => ErrorKind::AlreadyExists,
            Self::Auth { .. } => ErrorKind::Unauthorized,
            Self::FeatureDisabled { .. }
            | Self::Config { .. }
            | Self::InvalidName(_)
            | Self::TopologyMismatch { .. }
            | Self::InvalidRequest(_) => ErrorKind::Invalid,
            Self::Fenced { .. } => ErrorKind::Fenced,
            Self::ShuttingDown => ErrorKind::ShuttingDown,
            Self::DataDirInUse { .. } | Self::Io { .. } => ErrorKind::Storage,
            #[cfg(feature = "embedded")]
            Self::Storage(_) => ErrorKind::Storage,
            Self::Wire(_) => ErrorKind::Malformed,
            Self::Publish { source, .. } | Self::Receive { source, .. } => source
                .as_deref()
                .and_then(sdk_kind)
                .unwrap_or(ErrorKind::Other),
            #[cfg(feature = "remote")]
            Self::Iggy { source, .. } => sdk_error_kind(source),
        }
    }
}

/// What kind of failure a [`ConnectorError`] is: what a caller can do about it.
/// See [`ConnectorError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Retrying the same call later may succeed: the connection was lost or could
    /// not be made, a call timed out, or the connector is not connected yet (also as
    /// the Iggy SDK reports it). [`ConnectorError::is_transient`] is this kind, and
    /// what the library's own retries go by. A publish retried after such a failure
    /// may have been stored already: retries resend the same message ids, which a
    /// deduplicating broker stores once (see [`ConnectorError::is_transient`]).
    Transient,
    /// The stream, topic, partition or consumer group does not exist.
    NotFound,
    /// What was to be created exists already (or the connector is connected already).
    AlreadyExists,
    /// The credentials were refused, or the user lacks the permission.
    Unauthorized,
    /// The request or the configuration is invalid: sent again unchanged, it fails
    /// again.
    Invalid,
    /// This group member no longer owns the partition: its un-committed deliveries go
    /// to the new owner; re-read the assignment.
    Fenced,
    /// The connector is shutting down.
    ShuttingDown,
    /// The local storage failed (disk, data directory, metadata files).
    Storage,
    /// Bytes that do not decode (a batch record, headers).
    Malformed,
    /// A failure none of the kinds above describes (a refusal of the server this
    /// version does not classify).
    Other,
}

/// The kind of a failure from the Iggy SDK found as a source, if it is one.
fn sdk_kind(source: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<ErrorKind> {
    #[cfg(feature = "remote")]
    if let Some(error) = source.downcast_ref::<iggy::prelude::IggyError>() {
        return Some(sdk_error_kind(error));
    }
    let _ = source;
    None
}

/// The kind of an Iggy SDK error, by its code in the error table: the one rule for
/// the SDK's errors, used by [`ConnectorError::kind`] and by the remote connector
/// when it maps an SDK error onto a [`ConnectorError`] variant.
#[cfg(feature = "remote")]
pub(crate) fn sdk_error_kind(error: &iggy::prelude::IggyError) -> ErrorKind {
    use crate::error_codes::ErrorCode as C;
    match C(error.as_code()) {
        C::DISCONNECTED
        | C::CANNOT_ESTABLISH_CONNECTION
        | C::STALE_CLIENT
        | C::TCP_ERROR
        | C::QUIC_ERROR
        | C::NOT_CONNECTED
        | C::CLIENT_SHUTDOWN
        | C::CONNECTION_CLOSED
        | C::EMPTY_RESPONSE => ErrorKind::Transient,
        C::UNAUTHENTICATED
        | C::UNAUTHORIZED
        | C::INVALID_CREDENTIALS
        | C::INVALID_USERNAME
        | C::INVALID_PASSWORD
        | C::USER_INACTIVE
        | C::INVALID_PERSONAL_ACCESS_TOKEN
        | C::PERSONAL_ACCESS_TOKEN_EXPIRED => ErrorKind::Unauthorized,
        C::STREAM_ID_NOT_FOUND
        | C::STREAM_NAME_NOT_FOUND
        | C::TOPIC_ID_NOT_FOUND
        | C::TOPIC_NAME_NOT_FOUND
        | C::PARTITION_NOT_FOUND
        | C::CONSUMER_GROUP_ID_NOT_FOUND
        | C::CONSUMER_GROUP_NAME_NOT_FOUND => ErrorKind::NotFound,
        C::STREAM_NAME_ALREADY_EXISTS
        | C::TOPIC_NAME_ALREADY_EXISTS
        | C::CONSUMER_GROUP_NAME_ALREADY_EXISTS => ErrorKind::AlreadyExists,
        _ => ErrorKind::Other,
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
