//! Typed event streaming for Rust on Apache Iggy.
//!
//! Annotate a domain event with `#[derive(IggyEvent)]`; the derive records its topic,
//! event type, schema version, partition key and [`Codec`].
//!
//! ```
//! use rustok_iggy::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, IggyEvent)]
//! #[iggy(topic = "orders", key = tenant_id)]
//! struct OrderPlaced {
//!     tenant_id: String,
//!     total_cents: u64,
//! }
//!
//! let event = OrderPlaced { tenant_id: "acme".into(), total_cents: 4200 };
//! assert_eq!(event.partition(4), Some(rustok_iggy::partition_for(b"acme", 4)));
//! ```
#![warn(missing_docs, unreachable_pub)]

mod acks;
mod batching;
mod coalesce;
mod codec;
mod config;
mod connect;
mod consume;
mod dead_letter;
mod decode;
mod envelope;
mod error;
mod event;
mod health;
mod key;
mod metadata;
mod publish_retry;
mod replay;
mod retry;
pub mod schema;
mod subscription;
#[cfg(feature = "testing")]
pub mod testing;
mod tiers;
mod transport;
mod upcast;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use rustok_iggy_connector as connector;

pub use acks::HeldPartition;
pub use batching::{
    Backpressure, BatchError, BatchingEventTransport, BatchingOptions, BatchingPublisher,
    BatchingTransport, PendingEvent, PendingReceipt,
};
pub use codec::{Codec, CodecError, UnknownCodec};
pub use config::{ConfigError, ConfigWarning, IggyConfig, RetentionConfig, TopologyConfig};
pub use connect::connect;
pub use consume::{ConsumeOptions, ConsumeReport, OnNewerSchema, Received};
pub use dead_letter::{
    DEFAULT_DEAD_LETTER_RETENTION, DeadLetter, DeadLetterConfig, DeadLetters, dlq_header,
};
pub use envelope::{
    AckId, EnvelopeStream, EventEnvelope, EventTransport, IggyTransport, ReceivedEnvelope,
    ReliabilityLevel,
};
pub use error::{DecodeError, DecodeFailure, Error};
pub use event::{EventTypeInfo, IggyEvent};
pub use health::{HealthCheck, HealthReport, HealthStatus, HealthThresholds};
pub use key::PartitionKey;
pub use metadata::{EventMetadata, header, new_traceparent, trace_id};
pub use publish_retry::PublishRetry;
pub use replay::{Replay, ReplayFrom, ReplayUntil, Replayed};
pub use retry::{Backoff, HandlerError, MAX_TIERS, RetryPolicy, RetryTiers};
#[cfg(feature = "embedded")]
pub use rustok_iggy_connector::EmbeddedConnector;
pub use rustok_iggy_connector::{
    ConnectorConfig, ConnectorError, ConnectorMode, DurabilityPolicy, EmbeddedConnectorConfig,
    GroupName, IggyConnector, MAX_NAME_LENGTH, NameError, RemoteConnectorConfig, Retention,
    StartPosition, StreamName, TopicName, partition_for, validate_name,
};
/// Derives [`IggyEvent`]; see the trait for the attributes.
pub use rustok_iggy_derive::IggyEvent;
pub use subscription::{
    Delivery, DeliveryInfo, Events, RawDelivery, Subscription, SubscriptionOptions, Undecided,
};
pub use tiers::retry_header;
pub use transport::{Receipt, Transport, TransportOptions};
pub use upcast::Upcasters;

/// The names most programs need: `use rustok_iggy::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Codec, Delivery, EventMetadata, IggyConfig, IggyEvent, PartitionKey, StartPosition,
        Subscription, Transport, TransportOptions,
    };
    pub use futures::StreamExt as _;
}
