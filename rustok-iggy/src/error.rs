//! Errors of the typed layer.

use rustok_iggy_connector::{ConnectorError, HeaderError, NameError};

use crate::codec::CodecError;
use crate::config::ConfigError;
use crate::subscription::RawDelivery;

/// What went wrong in a rustok-iggy call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection layer failed (broker, network, storage).
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// An event could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A received message could not be turned into an event.
    #[error(transparent)]
    Decode(#[from] Box<DecodeError>),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A stream, topic or group name is invalid.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// `acknowledge` or `nack` named a delivery that is not pending (never received,
    /// already acknowledged or nacked, or its stream closed).
    #[error("{0} is not pending acknowledgement")]
    NotPending(crate::AckId),
    /// Metadata does not fit in a user header (values are 1 to 255 bytes).
    #[error("invalid event metadata: {0}")]
    InvalidMetadata(#[from] HeaderError),
    /// A publish through a batching publisher failed (see [`crate::BatchError`]).
    #[error(transparent)]
    Batch(#[from] crate::batching::BatchError),
}

/// Why a received message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeFailure {
    /// The payload does not decode with its codec.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The message names an event type this consumer does not know.
    #[error("unknown event type {event_type:?}; this consumer knows {known}")]
    UnknownEventType {
        /// The type named by the message.
        event_type: String,
        /// The types the consumer knows, comma-separated.
        known: String,
    },
    /// The message was written with a schema version newer than the consumer's.
    #[error(
        "event type {event_type:?} has schema version {version}, newer than the {known} this consumer knows"
    )]
    NewerSchemaVersion {
        /// The event type.
        event_type: String,
        /// The message's version.
        version: u32,
        /// The consumer's version.
        known: u32,
    },
    /// A header rustok-iggy writes has a value it cannot read.
    #[error("header {name:?} has an invalid value")]
    InvalidHeader {
        /// The header.
        name: &'static str,
    },
}

/// A received message that could not be decoded: where it is and why.
///
/// It carries the raw delivery ([`DecodeError::take_delivery`]) so that it can be
/// acknowledged or dead-lettered explicitly. If the error is dropped without that, the
/// message counts as handled (acknowledged): it was surfaced, not silently skipped.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode the message at {topic} partition {partition} offset {offset}: {failure}")]
pub struct DecodeError {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset.
    pub offset: u64,
    /// The event type the message names, if any.
    pub event_type: Option<String>,
    /// Why.
    #[source]
    pub failure: DecodeFailure,
    pub(crate) delivery: Option<RawDelivery>,
}

impl DecodeError {
    /// The undecodable message with its acknowledgement handle.
    pub fn take_delivery(&mut self) -> Option<RawDelivery> {
        self.delivery.take()
    }
}
