//! The options and the report of [`Transport::consume`](crate::Transport::consume),
//! and what its handler receives.

use std::ops::Deref;
use std::sync::Arc;

use rustok_iggy_connector::StartPosition;

use crate::dead_letter::DeadLetterConfig;
use crate::retry::RetryPolicy;
use crate::subscription::{DeliveryInfo, SubscriptionOptions};

/// What the handler runner does with an event written at a schema version newer than
/// the consumer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnNewerSchema {
    /// Holds its partition (see [`crate::consume::Undecided::Hold`]): the partition's commit
    /// stays before the event and its later events wait, so that a consumer that knows
    /// the version (the next release, during a rolling upgrade) takes it over when
    /// this one leaves the group. Other partitions keep flowing.
    #[default]
    Hold,
    /// Writes it to the dead-letter topic, like an undecodable payload.
    DeadLetter,
}

/// Settings of [`Transport::consume`](crate::Transport::consume).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumeOptions {
    /// Retries of a failing handler.
    pub retry: RetryPolicy,
    /// Where events go when the handler gives up.
    pub dead_letter: DeadLetterConfig,
    /// Fetching and backpressure.
    pub subscription: SubscriptionOptions,
    /// Where a new group starts.
    pub start: StartPosition,
    /// Deliveries queued per partition worker before the runner stops fetching.
    pub queue_per_partition: usize,
    /// What happens to an event of a newer schema version (held by default).
    pub newer_schema: OnNewerSchema,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            dead_letter: DeadLetterConfig::default(),
            subscription: SubscriptionOptions::default(),
            start: StartPosition::Earliest,
            queue_per_partition: 64,
            newer_schema: OnNewerSchema::Hold,
        }
    }
}

/// An event handed to a handler: the event and where it came from. Cheap to clone
/// (retries hand the same event again).
#[derive(Debug)]
pub struct Received<E> {
    pub(super) event: Arc<E>,
    pub(super) info: Arc<DeliveryInfo>,
}

impl<E> Clone for Received<E> {
    fn clone(&self) -> Self {
        Self {
            event: Arc::clone(&self.event),
            info: Arc::clone(&self.info),
        }
    }
}

impl<E> Deref for Received<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.event
    }
}

impl<E> Received<E> {
    /// Where and how it arrived (`attempt` counts retries of this runner too).
    pub fn info(&self) -> &DeliveryInfo {
        &self.info
    }
}

/// What a [`Transport::consume`](crate::Transport::consume) run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumeReport {
    /// Events the handler accepted (and that were acknowledged).
    pub handled: u64,
    /// Handler failures that were retried.
    pub retried: u64,
    /// Events written to the dead-letter topic (and then acknowledged).
    pub dead_lettered: u64,
    /// Deliveries of newer-schema events that held their partition.
    pub held: u64,
    /// Failed set-ups, fetches and commits ridden out (a lost connection, a broker
    /// restart): each was tried again after a backoff. Also counted in
    /// `rustok_iggy_consumer_errors_total`.
    pub errors: u64,
}
