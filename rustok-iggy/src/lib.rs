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
//! assert_eq!(event.partition(4), Some(rustok_iggy::connector::partition_for(b"acme", 4)));
//! ```
#![warn(missing_docs, unreachable_pub)]

// Implementation modules. What they define is public through the root (the
// names most programs use) or through exactly one of the public modules below.
mod acks;
mod coalesce;
#[path = "codec.rs"]
mod codec_impl;
#[path = "config.rs"]
mod config_impl;
mod connect;
mod decode;
mod error;
#[path = "event.rs"]
mod event_impl;
mod key;
mod publish;
mod publish_retry;
mod retry;
mod subscription;
#[cfg(feature = "testing")]
pub mod testing;
mod tiers;
mod transport;

pub mod batching;
pub mod consume;
pub mod dead_letter;
pub mod envelope;
pub mod health;
pub mod metadata;
pub mod replay;
pub mod schema;
pub mod upcast;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The connection layer (the `rustok-iggy-connector` crate): the
/// [`IggyConnector`](connector::IggyConnector) trait and its modes, names
/// ([`StreamName`](connector::StreamName), [`TopicName`](connector::TopicName),
/// [`GroupName`](connector::GroupName)), [`StartPosition`](connector::StartPosition),
/// [`partition_for`](connector::partition_for), connector configuration and errors.
/// Connector-level types are reachable only through this path (and the prelude).
pub use rustok_iggy_connector as connector;

pub use codec_impl::Codec;
pub use config_impl::IggyConfig;
pub use connect::connect;
pub use error::{DecodeError, Error};
pub use event_impl::IggyEvent;
pub use key::PartitionKey;
pub use publish_retry::PublishRetry;
pub use retry::{HandlerError, RetryPolicy};
/// Derives [`IggyEvent`]; see the trait for the attributes.
pub use rustok_iggy_derive::IggyEvent;
pub use subscription::{Delivery, DeliveryInfo, Subscription, SubscriptionOptions};
pub use transport::{Receipt, Transport, TransportOptions};

/// Payload codecs: the errors of turning an event into the bytes of a message and
/// back. The [`Codec`] itself is at the root. A codec error names the codec and never
/// loses the message: a consumer turns it into a [`DecodeError`].
pub mod codec {
    pub use crate::codec_impl::{CodecError, UnknownCodec};
}

/// Configuration: the parts and the diagnostics of [`IggyConfig`] (itself at the
/// root), the `events.iggy` section of an application's configuration. A
/// configuration is checked as a whole before anything connects: every problem is a
/// [`ConfigError`](config::ConfigError), every accepted oddity a
/// [`ConfigWarning`](config::ConfigWarning).
pub mod config {
    pub use crate::config_impl::{ConfigError, ConfigWarning, RetentionConfig, TopologyConfig};
}

/// What the derive records about an event type beyond the [`IggyEvent`] trait (itself
/// at the root): [`EventTypeInfo`](event::EventTypeInfo), the static description a
/// transport checks and writes into every message's headers.
pub mod event {
    pub use crate::event_impl::EventTypeInfo;
}

/// The names most programs need: `use rustok_iggy::prelude::*;`.
///
/// A glob convenience: every name here is a second path to an item whose one
/// documented home is the crate root, [`metadata`](mod@crate::metadata) or
/// [`connector`](mod@crate::connector).
pub mod prelude {
    pub use crate::connector::StartPosition;
    pub use crate::metadata::EventMetadata;
    pub use crate::{
        Codec, Delivery, IggyConfig, IggyEvent, PartitionKey, Subscription, Transport,
        TransportOptions,
    };
    pub use futures::StreamExt as _;
}
