//! Errors of the typed layer.

use rustok_iggy_connector::{ConnectorError, ErrorKind, HeaderError, NameError};

use crate::codec_impl::CodecError;
use crate::config_impl::ConfigError;
use crate::dead_letter::{DeadLetterError, DeadLetters};
use crate::decode::DecodeFailure;
use crate::subscription::{RawDelivery, SettleError};

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
    NotPending(crate::envelope::AckId),
    /// Metadata does not fit in a user header (values are 1 to 255 bytes).
    #[error("invalid event metadata")]
    InvalidMetadata(#[from] HeaderError),
    /// A publish through a batching publisher failed (see [`crate::batching::BatchError`]).
    #[error(transparent)]
    Batch(#[from] crate::batching::BatchError),
    /// Settling a delivery failed (a commit, or the dead letter of a terminated one).
    #[error(transparent)]
    Settle(#[from] SettleError),
    /// A dead-letter operation failed.
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
}

impl Error {
    /// What kind of failure this is, for a caller deciding what to do next (retry
    /// later, create what is missing, fix the request, give up): the connector's
    /// [`ErrorKind`] for failures of the connection layer, and the same vocabulary for
    /// this layer's own failures. Encoding and decoding failures are
    /// [`ErrorKind::Malformed`]; a full or shut-down batching buffer is
    /// [`ErrorKind::Transient`] or [`ErrorKind::ShuttingDown`]; a failed settlement or
    /// dead-letter operation has its own kind ([`SettleError::kind`],
    /// [`DeadLetterError::kind`]).
    ///
    /// ```
    /// use rustok_iggy::Error;
    /// use rustok_iggy::connector::{ConnectorError, ErrorKind};
    ///
    /// let error = Error::from(ConnectorError::Timeout {
    ///     what: "the broker's answer".into(),
    ///     after: std::time::Duration::from_secs(5),
    /// });
    /// assert_eq!(error.kind(), ErrorKind::Transient);
    /// ```
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        use crate::batching::BatchError;
        match self {
            Self::Connector(error) => error.kind(),
            Self::Codec(_) | Self::Decode(_) => ErrorKind::Malformed,
            Self::Config(_)
            | Self::InvalidName(_)
            | Self::NotPending(_)
            | Self::InvalidMetadata(_) => ErrorKind::Invalid,
            Self::Settle(error) => error.kind(),
            Self::DeadLetter(error) => error.kind(),
            Self::Batch(error) => match error {
                BatchError::Publish { source, .. } => source.kind(),
                BatchError::Rejected(source) => source.kind(),
                BatchError::BufferFull { .. } | BatchError::BufferTimeout { .. } => {
                    ErrorKind::Transient
                }
                BatchError::Closed => ErrorKind::ShuttingDown,
                BatchError::InvalidOptions { .. } => ErrorKind::Invalid,
                // May or may not be stored: the caller cannot tell which.
                BatchError::Lost => ErrorKind::Other,
            },
        }
    }
}

impl Error {
    /// The failure of the connection layer underneath, looking through the errors of
    /// a settlement and of a dead-letter operation (for the runner's "ride it out or
    /// give up" rule).
    pub(crate) fn connector_error(&self) -> Option<&ConnectorError> {
        match self {
            Self::Connector(error)
            | Self::Settle(SettleError::Commit(error))
            | Self::DeadLetter(DeadLetterError::Connector(error))
            | Self::Settle(SettleError::DeadLetter(DeadLetterError::Connector(error))) => {
                Some(error)
            }
            _ => None,
        }
    }
}

/// A received message that could not be decoded: where it is, why, and a decision
/// still to make.
///
/// It carries its raw delivery; nothing is committed past it until it is decided:
/// - [`DecodeError::skip`]: it counts as handled (explicitly skipped); the group's
///   commit may pass it;
/// - [`DecodeError::dead_letter`]: written to the dead-letter topic, then settled
///   (the write is confirmed before the commit may pass it);
/// - [`DecodeError::hold`]: its partition is held: its commit stays before the event,
///   later events of the partition wait, and the event is delivered again after the
///   subscription's `redelivery_backoff` (what a consumer that does not know a newer
///   schema version does during a rolling upgrade, until one that knows it takes over);
/// - [`DecodeError::retry_later`]: delivered again after a delay, while the rest of the
///   partition flows (its commit waits);
/// - [`DecodeError::take_delivery`]: the raw delivery, to acknowledge (counts as
///   handled) or nack yourself.
///
/// Dropped undecided (`item?`, `filter_map(Result::ok)`), it follows
/// [`crate::SubscriptionOptions::undecided`]: [`crate::consume::Undecided::Hold`] by default,
/// so a dropped error is never committed. A [`DecodeFailure::NewerSchemaVersion`] is
/// held when dropped whatever that setting says: it is a rolling upgrade, not garbage.
/// Errors of a replay carry no delivery (a replay commits nothing); their decisions do
/// nothing.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode the message at {topic} partition {partition} offset {offset}")]
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
    /// The undecodable message with its acknowledgement handle; the decision is then
    /// the caller's (see [`RawDelivery`]).
    pub fn take_delivery(&mut self) -> Option<RawDelivery> {
        self.delivery.take()
    }

    /// Whether the message was written at a schema version newer than this consumer
    /// knows (see [`DecodeFailure::NewerSchemaVersion`]).
    #[must_use]
    pub fn is_newer_schema_version(&self) -> bool {
        matches!(self.failure, DecodeFailure::NewerSchemaVersion { .. })
    }

    /// Skips the event: it counts as handled, and the group's committed offset may move
    /// past it (in the background, like [`crate::Delivery::ack`]).
    pub async fn skip(mut self) -> Result<(), SettleError> {
        match self.delivery.take() {
            Some(raw) => raw.skip(),
            None => Ok(()),
        }
    }

    /// Writes the event to `dead_letters` with this error as the reason, then settles
    /// it: the dead-letter write is confirmed before the commit may pass the event. If
    /// the write fails, it fails with [`SettleError::DeadLetter`] and the event is held
    /// as if dropped (delivered again later, never committed past).
    pub async fn dead_letter(mut self, dead_letters: &DeadLetters) -> Result<(), SettleError> {
        let Some(raw) = self.delivery.take() else {
            return Ok(());
        };
        let reason = self.to_string();
        raw.dead_letter(dead_letters, reason).await
    }

    /// Holds the event's partition (see the type's documentation): nothing after it is
    /// delivered or committed, and it is delivered again after the subscription's
    /// `redelivery_backoff`.
    pub fn hold(mut self) {
        if let Some(raw) = self.delivery.take() {
            raw.hold();
        }
    }

    /// Delivers the event again after `delay`; the rest of its partition keeps flowing
    /// meanwhile and the partition's commit waits for it.
    pub fn retry_later(mut self, delay: std::time::Duration) {
        if let Some(raw) = self.delivery.take() {
            raw.nack(delay);
        }
    }
}
