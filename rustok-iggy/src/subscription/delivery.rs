//! What the application holds: a [`Delivery`] (or a [`RawDelivery`]) and the handle
//! that settles it exactly once.

use std::fmt;
use std::ops::Deref;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use rustok_iggy_connector::{
    ConnectorError, Counter, ErrorKind, GroupConsumer, HistogramHandle, Metrics, ReceivedMessage,
    metric_names,
};

use super::info::DeliveryInfo;
use crate::acks::{AckState, Committed, Lease, Ticket};
use crate::dead_letter::{DeadLetterError, DeadLetters, Failure};
use crate::retry::Backoff;

/// Why settling a delivery failed: [`Delivery::ack_and_commit`], [`Delivery::term`],
/// and the same decisions on a [`RawDelivery`] or a [`crate::DecodeError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettleError {
    /// The group's committed offset does not cover the delivery:
    /// [`ConnectorError::Fenced`] when its partition went to another member first
    /// (which delivers it again), or the commit's own error (the delivery stays
    /// settled and the commit is tried again in the background).
    #[error("the commit does not cover the delivery")]
    Commit(#[source] ConnectorError),
    /// The dead letter was not written: the delivery's partition is held at it, and
    /// it is delivered again after `redelivery_backoff`.
    #[error("the dead letter was not written; the delivery is held")]
    DeadLetter(#[source] DeadLetterError),
}

impl SettleError {
    /// What kind of failure this is (see [`crate::Error::kind`]): the kind of its
    /// source.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Commit(error) => error.kind(),
            Self::DeadLetter(error) => error.kind(),
        }
    }
}

/// The metrics of a subscription, resolved once for its topic and group.
#[derive(Debug)]
pub(super) struct Labels {
    pub(super) consumed: Counter,
    pub(super) consumed_bytes: Counter,
    pub(super) end_to_end: HistogramHandle,
    pub(super) acked: Counter,
    pub(super) nacked: Counter,
    pub(super) skipped: Counter,
    pub(super) errors: Counter,
    pub(super) expired: Counter,
    pub(super) dead_lettered: Counter,
}

impl Labels {
    pub(super) fn new(topic: &str, group: &str) -> Self {
        let metrics = Metrics::global();
        let labels = [
            ("messaging_destination_name", topic),
            ("messaging_consumer_group_name", group),
        ];
        Self {
            consumed: metrics.counter_handle(metric_names::CONSUMED_MESSAGES, &labels),
            consumed_bytes: metrics.counter_handle(metric_names::CONSUMED_BYTES, &labels),
            end_to_end: metrics.histogram_handle(metric_names::END_TO_END_LATENCY, &labels),
            acked: metrics.counter_handle(metric_names::ACKED, &labels),
            nacked: metrics.counter_handle(metric_names::NACKED, &labels),
            skipped: metrics.counter_handle(metric_names::SKIPPED, &labels),
            errors: metrics.counter_handle(metric_names::CONSUMER_ERRORS, &labels),
            expired: metrics.counter_handle(metric_names::ACK_EXPIRED, &labels),
            dead_lettered: metrics.counter_handle(metric_names::DEAD_LETTERED, &labels),
        }
    }
}

/// What a subscription shares with its deliveries and its committer.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) labels: Labels,
    pub(super) acks: AckState,
    pub(super) consumer: Arc<dyn GroupConsumer>,
    pub(super) redelivery_backoff: Backoff,
    /// Where [`Delivery::term`] writes (set once, by the transport).
    pub(super) terminal: std::sync::OnceLock<Terminal>,
    /// Background commits that failed and were tried again (also in `labels.errors`,
    /// with the failed fetches, which the stream itself reports).
    pub(super) commit_failures: std::sync::atomic::AtomicU64,
}

/// The dead-letter topic of a subscription's transport, opened (created when
/// missing) on the first [`Delivery::term`].
pub(crate) struct Terminal {
    pub(crate) open: Box<
        dyn Fn() -> futures::future::BoxFuture<'static, Result<DeadLetters, DeadLetterError>>
            + Send
            + Sync,
    >,
    pub(crate) opened: tokio::sync::OnceCell<DeadLetters>,
}

impl fmt::Debug for Terminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Terminal")
            .field("opened", &self.opened.get())
            .finish_non_exhaustive()
    }
}

/// What a delivery dropped without a decision does.
#[derive(Debug)]
pub(super) enum OnDrop {
    /// Delivered again at once.
    Redeliver,
    /// Holds its partition (an undecided decode error), with the reason.
    Hold(Box<str>),
    /// Counts as skipped (an undecided decode error under [`Undecided::Skip`]).
    Skip,
}

/// The acknowledgement side of one delivery: it settles exactly once (a decision, or
/// its drop), giving back its in-flight slot.
pub(super) struct AckHandle {
    pub(super) core: Arc<Core>,
    pub(super) message: Option<ReceivedMessage>,
    pub(super) ticket: Ticket,
    pub(super) attempt: u32,
    pub(super) on_drop: OnDrop,
    /// The acknowledgement deadline, when the subscription has one.
    pub(super) lease: Option<Arc<Lease>>,
}

impl fmt::Debug for AckHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckHandle")
            .field("message", &self.message)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl AckHandle {
    /// Settles the delivery (handled, skipped or dead-lettered), counting it in
    /// `counter`.
    fn settle(&mut self, counter: fn(&Labels) -> &Counter) {
        if self.message.take().is_some() {
            counter(&self.core.labels).add(1);
            if self.lease.as_ref().is_none_or(|lease| lease.finish()) {
                self.core.acks.settle(&self.ticket);
            } else {
                // Expired: a late settlement still settles the event (it was handled,
                // skipped or dead-lettered), once; the copy delivered again settles
                // nothing more.
                self.core.acks.settle_late(&self.ticket);
            }
        }
    }

    /// Takes the message unless the delivery's deadline expired: then a copy is
    /// already delivered again, and a nack, a hold or a drop of this one does
    /// nothing.
    fn take_live(&mut self) -> Option<ReceivedMessage> {
        let message = self.message.take()?;
        match &self.lease {
            Some(lease) if !lease.finish() => None,
            _ => Some(message),
        }
    }

    fn extend(&self) {
        if let Some(lease) = &self.lease
            && self.message.is_some()
        {
            self.core.acks.extend(lease);
        }
    }

    fn is_expired(&self) -> bool {
        self.lease.as_ref().is_some_and(|lease| lease.is_expired())
    }

    fn nack(&mut self, delay: Duration) {
        if let Some(message) = self.take_live() {
            self.core.labels.nacked.add(1);
            self.core
                .acks
                .requeue(message, self.ticket.clone(), self.attempt + 1, delay);
        }
    }

    fn hold(&mut self, reason: &str) {
        if let Some(message) = self.take_live() {
            let delay = self.core.redelivery_backoff.delay(self.attempt);
            self.core.acks.hold(
                message,
                self.ticket.clone(),
                self.attempt + 1,
                reason,
                delay,
            );
        }
    }

    /// Settles, then waits until the group's committed offset covers the delivery.
    async fn settle_and_commit(mut self) -> Result<(), SettleError> {
        self.settle(|l| &l.acked);
        let core = Arc::clone(&self.core);
        let ticket = self.ticket.clone();
        drop(self);
        loop {
            core.acks
                .commit_now(core.consumer.as_ref())
                .await
                .map_err(SettleError::Commit)?;
            let mut ended = pin!(core.acks.round_done().notified());
            ended.as_mut().enable();
            let lost = || {
                !core
                    .consumer
                    .assignment()
                    .partitions
                    .contains(&ticket.partition())
            };
            match core.acks.committed(&ticket) {
                Committed::Covered => return Ok(()),
                // The partition went to another member, which delivers it again.
                state if state == Committed::Gone || lost() => {
                    return Err(SettleError::Commit(ConnectorError::Fenced {
                        group: core.acks.group().to_owned(),
                        partition: ticket.partition(),
                        generation: core.consumer.assignment().generation,
                    }));
                }
                // An earlier delivery of the partition is outstanding: wait for the
                // next commit round (it follows the next settlement).
                _ => ended.await,
            }
        }
    }

    fn is_superseded(&self) -> bool {
        self.ticket.is_superseded()
    }

    /// Writes the delivery to the subscription's dead-letter topic with `reason`,
    /// then settles it (see [`Delivery::term`]).
    async fn term(mut self, reason: String) -> Result<(), SettleError> {
        let core = Arc::clone(&self.core);
        let opened = match core.terminal.get() {
            Some(terminal) => terminal.opened.get_or_try_init(|| (terminal.open)()).await,
            None => Err(DeadLetterError::NoDeadLetterTopic),
        };
        match opened {
            Ok(dead_letters) => {
                self.dead_letter(dead_letters, reason, |l| &l.dead_lettered)
                    .await
            }
            Err(error) => {
                self.hold(&reason);
                Err(SettleError::DeadLetter(error))
            }
        }
    }

    /// Writes the delivery to `dead_letters` with `reason`, then settles it; on a
    /// failed write its partition is held (delivered again later, never committed
    /// past).
    async fn dead_letter(
        &mut self,
        dead_letters: &DeadLetters,
        reason: String,
        counter: fn(&Labels) -> &Counter,
    ) -> Result<(), SettleError> {
        let Some(message) = self.message.as_ref() else {
            return Ok(());
        };
        let written = dead_letters
            .write(Failure {
                message,
                group: self.core.acks.group(),
                error: reason.clone(),
                attempts: self.attempt,
            })
            .await;
        match written {
            Ok(()) => {
                self.settle(counter);
                Ok(())
            }
            Err(error) => {
                self.hold(&reason);
                Err(SettleError::DeadLetter(error))
            }
        }
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.on_drop, OnDrop::Redeliver) {
            OnDrop::Redeliver => self.nack(Duration::ZERO),
            OnDrop::Hold(reason) => self.hold(&reason),
            OnDrop::Skip => self.settle(|l| &l.skipped),
        }
    }
}

/// One event handed to the application, to be settled.
///
/// Dereferences to the event. The settle vocabulary:
/// - [`Delivery::ack`]: handled; only then can its offset be committed;
/// - [`Delivery::nack`]: asks for it again after a delay;
/// - [`Delivery::term`]: poison; it goes to the dead-letter topic now, with no retry;
/// - [`Delivery::in_progress`]: still being handled; extends its acknowledgement
///   deadline ([`crate::SubscriptionOptions::ack_wait`]).
///
/// A delivery dropped without a decision is delivered again at once; one neither
/// settled nor extended within `ack_wait` (when set) is delivered again too.
pub struct Delivery<E> {
    pub(super) event: E,
    pub(super) info: DeliveryInfo,
    pub(super) handle: AckHandle,
}

impl<E> fmt::Debug for Delivery<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<E> Deref for Delivery<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.event
    }
}

impl<E> Delivery<E> {
    /// Where and how it arrived.
    pub fn info(&self) -> &DeliveryInfo {
        &self.info
    }

    /// The event.
    pub fn event(&self) -> &E {
        &self.event
    }

    /// Acknowledges the delivery: it counts as handled, and the group's committed
    /// offset for its partition may move past it as soon as every earlier delivery of
    /// that partition is settled too.
    ///
    /// When the ack becomes a commit: right after, in the background, one commit at a
    /// time per subscription and at most one round per millisecond (acknowledgements
    /// that arrive meanwhile are covered by the next one). Until then a crash delivers
    /// the event again (at-least-once). To wait for the commit, use
    /// [`Delivery::ack_and_commit`], [`Subscription::commit`] or
    /// [`Subscription::close`]. Dropping the subscription stores what was acknowledged
    /// before it returns on the embedded connector; on the remote connector it only
    /// starts those commits in the background, so a process that exits right after may
    /// see the event again: call [`Subscription::close`] (or `ack_and_commit`) before
    /// exiting. If the partition was reassigned to another member meanwhile, the
    /// commit is refused and that member receives the event again.
    ///
    /// [`Subscription::commit`]: crate::Subscription::commit
    /// [`Subscription::close`]: crate::Subscription::close
    pub async fn ack(mut self) -> Result<(), SettleError> {
        self.handle.settle(|l| &l.acked);
        Ok(())
    }

    /// Acknowledges the delivery and returns once the group's committed offset covers
    /// it (stored by the broker): after this, a crash does not deliver it again.
    ///
    /// The commit covers a partition's contiguous acknowledged prefix, so this also
    /// waits for the earlier deliveries of the partition to be settled: do not call it
    /// while holding an earlier delivery of the same partition in the same task.
    /// Fails with [`SettleError::Commit`]: holding [`ConnectorError::Fenced`] when the
    /// partition went to another member first (which receives the event again), or
    /// the commit's error (the commit is retried in the background).
    pub async fn ack_and_commit(self) -> Result<(), SettleError> {
        let Self { handle, .. } = self;
        handle.settle_and_commit().await
    }

    /// Asks for the event again after `delay` (attempt + 1). The partition's commit
    /// waits for it; other events keep flowing, so a nacked event may come back
    /// after later ones. Does nothing when the delivery's `ack_wait` expired (a copy
    /// is already delivered again).
    pub fn nack(mut self, delay: Duration) {
        self.handle.nack(delay);
    }

    /// Terminates the delivery as poison: the event is written to the dead-letter
    /// topic of the subscription's transport (`<topic>.dlq`, created when missing,
    /// with the transport's dead-letter retention) with `reason` in its
    /// [`crate::dead_letter::dlq_header::ERROR`] header (cut to 255 bytes) and the attempt count,
    /// and it is not delivered again.
    ///
    /// Guarantee (the commit rule): the delivery is settled, so that the commit may
    /// pass it, only after the broker confirmed the dead letter. When the write
    /// fails, it fails with [`SettleError::DeadLetter`] (the [`DeadLetterError`]:
    /// [`DeadLetterError::NoDeadLetterTopic`] for a subscription without one) and the
    /// delivery's partition is held at it (see
    /// [`crate::consume::Undecided::Hold`]): nothing after it is committed, and it is
    /// delivered again after `redelivery_backoff`. A crash between the write and
    /// the commit delivers it again, and terminating it again writes a second dead
    /// letter with the same event id (at-least-once).
    pub async fn term(self, reason: impl Into<String>) -> Result<(), SettleError> {
        let Self { handle, .. } = self;
        handle.term(reason.into()).await
    }

    /// Tells the subscription the event is still being handled: its acknowledgement
    /// deadline moves to [`crate::SubscriptionOptions::ack_wait`] from now. Call it
    /// more often than `ack_wait` while a long handling runs. Does nothing without
    /// an `ack_wait`, or once the deadline expired (a copy is already delivered
    /// again).
    pub fn in_progress(&self) {
        self.handle.extend();
    }

    /// Whether the acknowledgement deadline passed before the delivery was settled:
    /// a copy is delivered again (attempt + 1). Settling this one still works
    /// (an `ack` counts the event as handled, once), but a `nack` or a drop does
    /// nothing.
    pub fn is_expired(&self) -> bool {
        self.handle.is_expired()
    }

    /// Whether the delivery left this subscription's flow: its partition went to
    /// another member, or is held at an earlier offset. Handling it is harmless (at
    /// least once) but wasted: drop it, it is delivered again where it belongs.
    pub(crate) fn is_superseded(&self) -> bool {
        self.handle.is_superseded()
    }

    /// Splits the delivery into the event, its info and the raw delivery that still
    /// has to be acknowledged.
    pub fn into_parts(self) -> (E, DeliveryInfo, RawDelivery) {
        let Self {
            event,
            info,
            handle,
        } = self;
        (event, info, RawDelivery { handle })
    }
}

/// A delivery without a decoded event: acknowledge it, ask for it again, or read its
/// bytes (for dead-lettering).
#[derive(Debug)]
pub struct RawDelivery {
    pub(super) handle: AckHandle,
}

impl RawDelivery {
    /// The message as received.
    pub fn message(&self) -> Option<&ReceivedMessage> {
        self.handle.message.as_ref()
    }

    /// The delivery attempt (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.handle.attempt
    }

    /// Acknowledges it: it counts as handled (see [`Delivery::ack`]).
    pub async fn ack(mut self) -> Result<(), SettleError> {
        self.handle.settle(|l| &l.acked);
        Ok(())
    }

    /// Acknowledges it and waits for the commit; fails with [`SettleError::Commit`]
    /// (see [`Delivery::ack_and_commit`]).
    pub async fn ack_and_commit(self) -> Result<(), SettleError> {
        self.handle.settle_and_commit().await
    }

    /// Asks for it again after `delay` (see [`Delivery::nack`]).
    pub fn nack(mut self, delay: Duration) {
        self.handle.nack(delay);
    }

    /// Terminates it as poison: to the dead-letter topic now; fails with
    /// [`SettleError::DeadLetter`] and holds it when the write fails (see
    /// [`Delivery::term`]).
    pub async fn term(self, reason: impl Into<String>) -> Result<(), SettleError> {
        self.handle.term(reason.into()).await
    }

    /// Extends its acknowledgement deadline (see [`Delivery::in_progress`]).
    pub fn in_progress(&self) {
        self.handle.extend();
    }

    /// Settles it as explicitly skipped.
    pub(crate) fn skip(mut self) -> Result<(), SettleError> {
        self.handle.settle(|l| &l.skipped);
        Ok(())
    }

    /// Holds its partition (see [`Undecided::Hold`]).
    pub(crate) fn hold(mut self) {
        let reason = match &self.handle.on_drop {
            OnDrop::Hold(reason) => reason.to_string(),
            _ => "held by the application".to_owned(),
        };
        self.handle.hold(&reason);
    }

    /// Writes it to the dead-letter topic with `reason`, then settles it; on a failed
    /// write it is held (delivered again later, never committed past).
    pub(crate) async fn dead_letter(
        mut self,
        dead_letters: &DeadLetters,
        reason: String,
    ) -> Result<(), SettleError> {
        self.handle
            .dead_letter(dead_letters, reason, |l| &l.dead_lettered)
            .await
    }

    /// Whether it left this subscription's flow (see [`Delivery`]).
    pub(crate) fn is_superseded(&self) -> bool {
        self.handle.is_superseded()
    }
}
