//! The connection layer of rustok-iggy: one object-safe [`IggyConnector`] trait and its
//! two modes.
//!
//! - **embedded** (feature `embedded`, on by default): [`EmbeddedConnector`] runs a
//!   real, persistent broker inside the process. Partitions are segment logs of Iggy
//!   batch records on local disk; consumer offsets and metadata survive restarts.
//! - **remote** (feature `remote`): `RemoteConnector` talks to an Iggy server or
//!   cluster through the official `iggy` SDK.
//!
//! Most users depend on `rustok-iggy`, which re-exports what they need from here.
#![warn(missing_docs, unreachable_pub)]

mod batch;
mod config;
mod connector;
mod error;
pub mod error_codes;
mod message;
mod metrics;
mod names;
mod partition;

#[cfg(feature = "embedded")]
mod embedded;
#[cfg(feature = "embedded")]
mod ops;
#[cfg(feature = "remote")]
mod remote;

pub use batch::{MAX_PAYLOAD_SIZE, now_micros};
pub use config::{
    ConnectorConfig, ConnectorMode, Durability, DurabilityPolicy, EmbeddedConnectorConfig,
    ListenerLimits, RemoteConnectorConfig, RemoteProtocol, Secret,
};
pub use connector::{
    Assignment, GroupConsumer, IggyConnector, MessageSubscriber, Partitioning, PollFrom,
    PublishReceipt, PublishRequest, Retention, StartPosition, TopicInfo, TopicSpec,
};
pub use error::ConnectorError;
pub use iggy_binary_protocol::WireError;
pub use message::{
    HeaderError, HeaderKind, HeaderValue, Headers, MAX_HEADER_FIELD_LENGTH, OutgoingMessage,
    ReceivedMessage,
};
pub use metrics::{Counter, HistogramHandle, Metrics, names as metric_names};
pub use names::{GroupName, MAX_NAME_LENGTH, NameError, StreamName, TopicName, validate_name};
pub use partition::partition_for;

#[cfg(feature = "embedded")]
pub use embedded::{
    BackupMode, BackupSummary, EmbeddedConnector, StorageError, VerifySummary, backup_data_dir,
    restore_data_dir, verify_data_dir,
};
#[cfg(feature = "remote")]
pub use remote::RemoteConnector;

#[cfg(all(feature = "embedded", feature = "remote"))]
pub use ops::{MigrateOptions, MigrateProgress, MigrateReport, default_progress_file, migrate};
