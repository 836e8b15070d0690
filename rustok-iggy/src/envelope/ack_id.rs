//! [`AckId`]: what names one delivery of an envelope (a leaf: the base error names it).

use std::fmt;

/// Names one delivery of an envelope, to acknowledge it: the subscription
/// ([`EnvelopeStream`](super::EnvelopeStream)) that received it, its partition and offset there, and which
/// delivery of that subscription it was.
///
/// Two groups that receive the same event, or a re-driven dead letter with the id of
/// an event already received, get different `AckId`s: acknowledging one never settles
/// the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct AckId {
    /// The subscription that received it (unique within its [`IggyTransport`](super::IggyTransport)).
    pub subscription: u64,
    /// The partition.
    pub partition: u32,
    /// The offset in that partition.
    pub offset: u64,
    /// Which delivery of the subscription it was (1 for the first): a redelivery of
    /// the same offset gets a new one.
    pub delivery: u64,
}

impl fmt::Display for AckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivery {} of subscription {} (partition {}, offset {})",
            self.delivery, self.subscription, self.partition, self.offset
        )
    }
}
