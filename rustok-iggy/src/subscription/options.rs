//! The settings of a subscription.

use std::time::Duration;

use crate::retry::Backoff;

/// What happens to a [`DecodeError`](crate::DecodeError) that is dropped without a decision (see
/// [`DecodeError`](crate::DecodeError) for the decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Undecided {
    /// Its partition is held: the partition's commit stays before the event, later
    /// events of the partition wait, and the event is delivered again after
    /// [`SubscriptionOptions::redelivery_backoff`]. Nothing is lost and nothing
    /// passes it; [`Subscription::held_partitions`](crate::Subscription::held_partitions) and the
    /// `rustok_iggy_partition_held` gauge name the partition.
    #[default]
    Hold,
    /// It counts as explicitly skipped: the commit may pass it. Never applies to a
    /// [`DecodeFailure::NewerSchemaVersion`](crate::consume::DecodeFailure::NewerSchemaVersion), which is always held: during a rolling
    /// upgrade, the newer consumers that know the version take it over.
    Skip,
}

/// Settings of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Most messages fetched from the broker at once.
    pub batch_size: u32,
    /// Most deliveries handed out and not yet settled (acknowledged, nacked, dropped
    /// or decided); at the limit the subscription hands out nothing more and stops
    /// fetching until one is settled (backpressure). A hard limit. Messages read and
    /// not delivered yet count too: the buffered batch, the next fetch the
    /// subscription starts while that batch is handed out (when the connector does not
    /// read ahead itself), and on the remote connector the next poll it reads ahead (so
    /// a fetch there asks for at most half the free room, and at least one message).
    pub max_in_flight: usize,
    /// What a dropped, undecided decode error does (held by default).
    pub undecided: Undecided,
    /// Delay before a held event is delivered again: doubling from `initial` up to
    /// `max` with each delivery (1 s up to 60 s by default).
    pub redelivery_backoff: Backoff,
    /// How long [`Subscription::close`](crate::Subscription::close) keeps trying its final commit while the
    /// connection is lost or the server restarts (10 s by default).
    pub close_timeout: Duration,
    /// The acknowledgement deadline: a delivery neither settled (acknowledged,
    /// nacked, terminated, dropped) nor extended ([`Delivery::in_progress`](crate::Delivery::in_progress)) within
    /// this time is delivered again (attempt + 1), gives back its in-flight slot,
    /// and counts in `rustok_iggy_ack_expired_total`; its partition's commit keeps
    /// waiting for it. A late `ack` of the expired delivery still counts the event
    /// as handled (once: the copy then settles nothing more); a late `nack` or drop
    /// does nothing. Deadlines are checked while the subscription is polled.
    ///
    /// `None` (the default): no deadline. Opt in, because a deadline redelivers
    /// what a slow but healthy handler still holds (JetStream's 30 s is a good
    /// value when handlers are quick); the handler runner ([`Transport::consume`](crate::Transport::consume))
    /// awaits its handler itself and does not use it.
    pub ack_wait: Option<Duration>,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            batch_size: 256,
            max_in_flight: 1024,
            undecided: Undecided::Hold,
            redelivery_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            close_timeout: Duration::from_secs(10),
            ack_wait: None,
        }
    }
}
