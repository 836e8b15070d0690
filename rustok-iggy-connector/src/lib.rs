//! The connection layer of rustok-iggy: one object-safe [`IggyConnector`] trait and its
//! two modes.
//!
//! - **embedded** (feature `embedded`, on by default): [`EmbeddedConnector`] runs a
//!   real, persistent broker inside the process. Partitions are segment logs of Iggy
//!   batch records on local disk; consumer offsets and metadata survive restarts.
//! - **remote** (feature `remote`): `RemoteConnector` talks to an Iggy server or
//!   cluster through the official `iggy` SDK.
//!
//! [`ops`] holds the operations on data directories (backup, restore, verify,
//! migrate to a remote server); the `rustok-iggy-server` crate is their command line.
//!
//! Most users depend on `rustok-iggy`, which re-exports what they need from here.
#![warn(missing_docs, unreachable_pub)]

mod batch;
mod config;
mod connector;
mod error;
pub mod error_codes;
#[cfg(any(feature = "embedded", feature = "remote"))]
mod member;
mod message;
mod metrics;
mod names;
mod partition;

#[cfg(feature = "embedded")]
mod embedded;
#[cfg(feature = "embedded")]
pub mod ops;
#[cfg(feature = "remote")]
mod remote;

pub use batch::now_micros;
pub use config::{
    ConnectorConfig, ConnectorMode, DeduplicationConfig, Durability, DurabilityPolicy,
    EmbeddedConnectorConfig, ListenerLimits, RemoteConnectorConfig, RemoteProtocol, Secret,
};
pub use connector::{
    Assignment, Duplicate, GroupConsumer, IggyConnector, MessageSubscriber, Partitioning,
    PingReport, PublishReceipt, PublishRequest, Retention, StartPosition, TopicInfo, TopicSpec,
    UnwritablePartition,
};
pub use error::{ConnectorError, ErrorChain, ErrorKind, error_chain};
pub use iggy_binary_protocol::WireError;
pub use message::{
    HeaderError, HeaderKind, HeaderValue, HeaderValueRef, Headers, MAX_HEADER_FIELD_LENGTH,
    MAX_PAYLOAD_SIZE, MalformedHeaders, ORIGINAL_TIMESTAMP_HEADER, OutgoingMessage,
    ReceivedMessage,
};
pub use metrics::{Counter, HistogramHandle, Metrics, names as metric_names};
pub use names::{GroupName, MAX_NAME_LENGTH, NameError, StreamName, TopicName, validate_name};
#[allow(deprecated)]
pub use partition::calculate_partition;
pub use partition::{
    MAX_PARTITIONS, PartitionCountError, RoundRobin, check_partition_count, partition_for,
};

#[cfg(feature = "embedded")]
pub use embedded::{EmbeddedConnector, StorageError, VerifySummary};
#[cfg(feature = "remote")]
pub use remote::RemoteConnector;
