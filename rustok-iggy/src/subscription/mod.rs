//! Consuming: `Subscription<E>` (a `Stream` of deliveries to acknowledge) and
//! `Events<E>` (a `Stream` of plain events).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{Future, Stream, StreamExt};
use rustok_iggy_connector::{ConnectorError, GroupConsumer, ReceivedMessage, now_micros};
use tokio::time::{Instant, Sleep};

use crate::acks::{AckState, HeldPartition, Ticket};
use crate::decode::DecodeFailure;
use crate::decode::{DecodedInfo, Decoder, decode_message};
use crate::error::{DecodeError, Error};
use crate::event_impl::IggyEvent;
use crate::retry::Backoff;
use crate::upcast::Upcasters;

mod delivery;
mod info;
mod options;
#[cfg(test)]
mod prefetch_tests;

pub(crate) use delivery::Terminal;
use delivery::{AckHandle, Core, Labels, OnDrop};
pub use delivery::{Delivery, RawDelivery, SettleError};
pub use info::DeliveryInfo;
pub use options::{SubscriptionOptions, Undecided};

/// Least time between two background commit rounds of a subscription.
const COMMIT_PACE: Duration = Duration::from_millis(1);

/// Pause after a failed fetch: doubling from 10 ms up to 5 s, reset by a success.
const FETCH_RETRY: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(5));

/// A fetch in flight, run as a task of its own so that it is driven even while nobody
/// polls the subscription: on the remote connector a call that hits a lost connection
/// leads the connection's reconnect, and every other call on that connection (the
/// commits) waits for it. Dropping it cancels the fetch (the connector's `poll` is
/// cancel-safe).
struct Fetch(tokio::task::JoinHandle<Result<Vec<ReceivedMessage>, ConnectorError>>);

impl Fetch {
    fn spawn(
        runtime: &tokio::runtime::Handle,
        consumer: Arc<dyn GroupConsumer>,
        batch: u32,
    ) -> Self {
        Self(runtime.spawn(async move { consumer.poll(batch).await }))
    }

    /// Cancels the fetch and returns once it is gone (what it held is released).
    async fn cancel(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Future for Fetch {
    type Output = Result<Vec<ReceivedMessage>, ConnectorError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(fetched)) => Poll::Ready(fetched),
            Poll::Ready(Err(error)) if error.is_panic() => {
                std::panic::resume_unwind(error.into_panic())
            }
            // Cancelled: only the runtime shutting down does that.
            Poll::Ready(Err(_)) => Poll::Ready(Err(ConnectorError::ShuttingDown)),
        }
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A consumer-group subscription: a [`Stream`] of [`Delivery`] items.
///
/// Delivery is **at-least-once**. A partition's committed offset moves past an event
/// only when the event was acknowledged, explicitly skipped or dead-lettered, and only
/// over the contiguous settled prefix. After a crash or a restart, or when the group
/// rebalances, everything after the last commit is delivered again; handlers should
/// be idempotent by [`DeliveryInfo::event_id`]. Within a partition (so for one key)
/// events arrive in publish order.
///
/// A message that cannot be decoded is an `Err(Error::Decode(..))` item naming its
/// offset and the cause, with a decision to make (see [`DecodeError`]); the stream
/// goes on after it. A failed fetch is an `Err(Error::Connector(..))` item; the
/// subscription tries again after a backoff (10 ms doubling up to 5 s), so a caller
/// that logs the error and goes on rides out a disconnection.
pub struct Subscription<E> {
    core: Arc<Core>,
    topic: String,
    buffer: VecDeque<(ReceivedMessage, Ticket)>,
    fetch: Option<Fetch>,
    /// Seeks made while `fetch` was in flight: what it returns of those partitions
    /// may come from before the seek, so it is dropped and the seek made again.
    stale: Vec<(u32, u64)>,
    /// Where fetches run (the runtime the subscription was opened on).
    runtime: tokio::runtime::Handle,
    /// Wakes the subscription when the next redelivery is due.
    timer: Option<Pin<Box<Sleep>>>,
    next_due: Option<Instant>,
    /// The pause after a failed fetch.
    retry: Option<Pin<Box<Sleep>>>,
    failures: u32,
    generation: u64,
    owned: Vec<u32>,
    options: SubscriptionOptions,
    decoder: Decoder<E>,
    unreported: Unreported,
}

/// Consumption not yet added to the subscription's metrics: they are recorded when
/// the fetched batch is handed out (and when the subscription waits or ends), not per
/// delivery.
#[derive(Debug, Default)]
struct Unreported {
    messages: u64,
    bytes: u64,
    /// The next first delivery records its end-to-end latency (one sample per fetch).
    sample_age: bool,
}

impl Unreported {
    fn report(&mut self, labels: &Labels) {
        if self.messages > 0 {
            labels.consumed.add(std::mem::take(&mut self.messages));
            labels.consumed_bytes.add(std::mem::take(&mut self.bytes));
        }
    }
}

impl<E> fmt::Debug for Subscription<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("group", self.core.consumer.group())
            .field("buffered", &self.buffer.len())
            .field("in_flight", &self.core.acks.in_flight())
            .finish()
    }
}

impl<E: IggyEvent> Subscription<E> {
    pub(crate) fn new(
        topic: String,
        consumer: Arc<dyn GroupConsumer>,
        options: SubscriptionOptions,
        upcasters: Arc<Upcasters<E>>,
    ) -> Self {
        // The event's schemas are looked up once, not per message.
        let schemas = crate::schema::schemas::<E>().ok();
        let decoder: Decoder<E> =
            Arc::new(move |message| decode_message(message, &upcasters, schemas));
        Self::with_decoder(topic, consumer, options, decoder)
    }
}

impl<E> Subscription<E> {
    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<u32> {
        self.core.consumer.assignment().partitions
    }

    /// The partitions this subscription holds now (see [`Undecided::Hold`]): each
    /// one's commit waits at its held event until a decision settles it, or until the
    /// partition goes to another member (a consumer that knows a newer schema version,
    /// during a rolling upgrade). The `rustok_iggy_partition_held` gauge says the same.
    pub fn held_partitions(&self) -> Vec<HeldPartition> {
        self.core.acks.held_partitions()
    }

    /// Deliveries handed out and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.core.acks.in_flight()
    }

    /// Waits until every acknowledgement made so far is committed (stored by the
    /// broker). Returns the commit's error, if one fails (it is retried later).
    pub async fn commit(&self) -> Result<(), Error> {
        self.core
            .acks
            .commit_now(self.core.consumer.as_ref())
            .await?;
        Ok(())
    }

    /// Commits what was acknowledged and leaves the group; un-acknowledged deliveries
    /// are delivered again to the remaining members. What is acknowledged after this
    /// is not committed. The way to end a subscription on the remote connector.
    ///
    /// The closing commit rides out a lost connection or a server restarting: a
    /// commit that fails on it is tried again after a backoff (10 ms doubling) until
    /// [`SubscriptionOptions::close_timeout`] (10 s by default) has passed since the
    /// call. When the server is not back by then, `close` returns that error (a
    /// [`ConnectorError::Timeout`] when the last try was cut short) and what it would
    /// have committed is delivered again to the group. Leaving the group waits at
    /// most the connector's connect timeout on top; the member's connection is
    /// closed either way, which makes the server drop the membership. So `close`
    /// always returns, within `close_timeout` plus that.
    pub async fn close(mut self) -> Result<(), Error> {
        self.core.acks.close();
        // Nothing more is fetched. A fetch in flight may lead the reconnect of the
        // member's connection, which the commit then waits for: cancelled, it lets
        // the commit reconnect on its own.
        if let Some(fetch) = self.fetch.take() {
            fetch.cancel().await;
        }
        let committed = self.commit_to_close().await;
        let left = self.core.consumer.leave().await;
        committed?;
        left?;
        Ok(())
    }

    /// The closing commit, tried again on a transient failure until the close timeout.
    async fn commit_to_close(&self) -> Result<(), ConnectorError> {
        let limit = self.options.close_timeout;
        let deadline = Instant::now() + limit;
        let mut failures = 0;
        loop {
            let attempt = self.core.acks.commit_now(self.core.consumer.as_ref());
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Err(error)) if error.is_transient() && Instant::now() < deadline => {
                    failures += 1;
                    let pause = FETCH_RETRY.delay(failures);
                    tracing::debug!(group = %self.core.consumer.group(), %error, ?pause, "the closing commit failed; trying again");
                    tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
                }
                Ok(committed) => return committed,
                Err(_elapsed) => {
                    return Err(ConnectorError::Timeout {
                        what: format!(
                            "the closing commit of group {:?}",
                            self.core.consumer.group().as_str()
                        ),
                        after: limit,
                    });
                }
            }
        }
    }
}

impl<E: Send + 'static> Subscription<E> {
    pub(crate) fn with_decoder(
        topic: String,
        consumer: Arc<dyn GroupConsumer>,
        options: SubscriptionOptions,
        decoder: Decoder<E>,
    ) -> Self {
        let group = consumer.group().as_str().to_owned();
        let assignment = consumer.assignment();
        let core = Arc::new(Core {
            labels: Labels::new(&topic, &group),
            acks: AckState::new(&topic, &group, options.ack_wait),
            consumer,
            redelivery_backoff: options.redelivery_backoff,
            terminal: std::sync::OnceLock::new(),
            commit_failures: std::sync::atomic::AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Handle::current();
        runtime.spawn(commit_in_background(Arc::clone(&core)));
        Self {
            core,
            topic,
            buffer: VecDeque::new(),
            fetch: None,
            stale: Vec::new(),
            runtime,
            timer: None,
            next_due: None,
            retry: None,
            failures: 0,
            generation: assignment.generation,
            owned: assignment.partitions,
            options,
            decoder,
            unreported: Unreported::default(),
        }
    }

    /// Background commits that failed and were tried again so far.
    pub(crate) fn commit_failures(&self) -> u64 {
        self.core
            .commit_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where [`Delivery::term`] writes its dead letters.
    pub(crate) fn set_terminal(&self, terminal: Terminal) {
        let _ = self.core.terminal.set(terminal);
    }

    fn handle(
        &mut self,
        message: ReceivedMessage,
        ticket: Ticket,
        attempt: u32,
        on_drop: OnDrop,
    ) -> AckHandle {
        let lease = self
            .core
            .acks
            .lease(&message, &ticket, attempt)
            .map(|(lease, at)| {
                self.next_due = Some(self.next_due.map_or(at, |due| due.min(at)));
                lease
            });
        AckHandle {
            core: Arc::clone(&self.core),
            message: Some(message),
            ticket,
            attempt,
            on_drop,
            lease,
        }
    }

    fn deliver(
        &mut self,
        message: ReceivedMessage,
        ticket: Ticket,
        attempt: u32,
    ) -> Result<Delivery<E>, Error> {
        self.unreported.messages += 1;
        self.unreported.bytes += message.payload.len() as u64;
        if attempt == 1 && std::mem::take(&mut self.unreported.sample_age) {
            let age = now_micros().saturating_sub(message.timestamp);
            self.core
                .labels
                .end_to_end
                .observe(Duration::from_micros(age));
        }
        match (self.decoder)(&message) {
            Ok((event, decoded)) => {
                let DecodedInfo {
                    event_type,
                    schema_version,
                    event_id,
                } = decoded;
                let info = DeliveryInfo {
                    partition: message.partition,
                    offset: message.offset,
                    event_id,
                    event_type,
                    schema_version,
                    timestamp: message.timestamp,
                    attempt,
                    headers: message.headers.clone(),
                };
                Ok(Delivery {
                    event,
                    info,
                    handle: self.handle(message, ticket, attempt, OnDrop::Redeliver),
                })
            }
            Err((failure, event_type)) => {
                let newer = matches!(failure, DecodeFailure::NewerSchemaVersion { .. });
                let on_drop = if newer || self.options.undecided == Undecided::Hold {
                    OnDrop::Hold(failure.to_string().into_boxed_str())
                } else {
                    OnDrop::Skip
                };
                Err(Error::Decode(Box::new(DecodeError {
                    topic: self.topic.clone(),
                    partition: message.partition,
                    offset: message.offset,
                    event_type,
                    failure,
                    delivery: Some(RawDelivery {
                        handle: self.handle(message, ticket, attempt, on_drop),
                    }),
                })))
            }
        }
    }

    /// Forgets partitions this member no longer owns after a rebalance.
    fn check_assignment(&mut self) {
        let assignment = self.core.consumer.assignment();
        if assignment.generation == self.generation && assignment.partitions == self.owned {
            return;
        }
        self.generation = assignment.generation;
        self.owned = assignment.partitions;
        let owned = &self.owned;
        self.buffer.retain(|(m, _)| owned.contains(&m.partition));
        for partition in self.core.acks.tracked_partitions() {
            if !owned.contains(&partition) {
                self.core.acks.forget_partition(partition);
            }
        }
    }

    /// Makes the connector read partitions again from an offset (a hold ended), and
    /// drops what was buffered of them from there on.
    fn seek(&mut self, seeks: Vec<(u32, u64)>) {
        for (partition, offset) in seeks {
            self.core.consumer.seek(partition, offset);
            if self.fetch.is_some() {
                self.stale.push((partition, offset));
            }
            self.buffer
                .retain(|(m, _)| m.partition != partition || m.offset < offset);
        }
    }

    /// Drops what a fetch returned of partitions sought while it was in flight (it
    /// may have been read before the seek took effect) and seeks them again: the
    /// next fetch reads them from the sought offset.
    fn drop_stale(&mut self, messages: &mut Vec<ReceivedMessage>) {
        if self.stale.is_empty() {
            return;
        }
        let stale = std::mem::take(&mut self.stale);
        messages.retain(|m| !stale.iter().any(|&(partition, _)| partition == m.partition));
        for (partition, offset) in stale {
            self.core.consumer.seek(partition, offset);
        }
    }

    /// Starts the next fetch while the buffered batch is handed out, when the
    /// connector does not read ahead itself and the in-flight room holds both the
    /// buffer and the fetch: the next batch is read (and its headers decoded) on
    /// another worker meanwhile.
    fn prefetch(&mut self, max: usize) {
        if self.fetch.is_some() || self.core.consumer.reads_ahead() {
            return;
        }
        let held = self.core.acks.in_flight() + self.buffer.len();
        let room = max.saturating_sub(held);
        if room == 0 {
            return;
        }
        let batch =
            u32::try_from(fetch_size(self.options.batch_size, room, false)).unwrap_or(u32::MAX);
        self.fetch = Some(Fetch::spawn(
            &self.runtime,
            Arc::clone(&self.core.consumer),
            batch,
        ));
    }
}

impl<E: Send + 'static> Stream for Subscription<E> {
    type Item = Result<Delivery<E>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let max = this.options.max_in_flight.max(1);
        this.core.acks.waker.register(cx.waker());
        loop {
            // Seeks and due redeliveries: the lock is taken only when something was
            // queued or the next redelivery is due.
            let mut due = None;
            if let Some(work) = this.core.acks.queue_work(this.next_due) {
                this.next_due = work.next_due;
                if work.expired > 0 {
                    this.core.labels.expired.add(work.expired);
                }
                if !work.seeks.is_empty() {
                    this.seek(work.seeks);
                }
                due = work.due;
            }
            if due.is_some() || !this.buffer.is_empty() {
                if !this.core.acks.try_take_slot(max) {
                    if let Some(redelivery) = due {
                        this.core.acks.put_back(redelivery);
                    }
                    this.unreported.report(&this.core.labels);
                    return Poll::Pending;
                }
                // Due redeliveries first: they are the oldest outstanding events.
                if let Some(redelivery) = due {
                    let delivery =
                        this.deliver(redelivery.message, redelivery.ticket, redelivery.attempt);
                    if this.buffer.is_empty() {
                        this.unreported.report(&this.core.labels);
                    }
                    return Poll::Ready(Some(delivery));
                }
                while let Some((message, ticket)) = this.buffer.pop_front() {
                    if !ticket.is_superseded() {
                        let delivery = this.deliver(message, ticket, 1);
                        if this.buffer.is_empty() {
                            // The batch is handed out: its figures go to the metrics.
                            this.unreported.report(&this.core.labels);
                        }
                        return Poll::Ready(Some(delivery));
                    }
                }
                this.core.acks.return_unused_slot();
                continue;
            }
            if let Some(due) = this.next_due {
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if timer.deadline() != due {
                    timer.as_mut().reset(due);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    continue;
                }
            }
            if let Some(retry) = this.retry.as_mut() {
                if retry.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.retry = None;
            }
            // The buffer is handed out: its batch goes to the metrics at once.
            this.unreported.report(&this.core.labels);
            let room = this.core.acks.room(max);
            if room == 0 {
                return Poll::Pending;
            }
            let batch = fetch_size(
                this.options.batch_size,
                room,
                this.core.consumer.reads_ahead(),
            );
            let fetch = this.fetch.get_or_insert_with(|| {
                let batch = u32::try_from(batch).unwrap_or(u32::MAX);
                Fetch::spawn(&this.runtime, Arc::clone(&this.core.consumer), batch)
            });
            match Pin::new(fetch).poll(cx) {
                Poll::Ready(Ok(mut messages)) => {
                    this.fetch = None;
                    this.failures = 0;
                    this.drop_stale(&mut messages);
                    this.check_assignment();
                    this.core
                        .acks
                        .admit(messages, &this.owned, &mut this.buffer);
                    this.unreported.sample_age = true;
                    if !this.buffer.is_empty() {
                        this.prefetch(max);
                    }
                }
                Poll::Ready(Err(ConnectorError::ShuttingDown)) => {
                    this.fetch = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Err(e)) => {
                    this.fetch = None;
                    this.drop_stale(&mut Vec::new());
                    this.failures += 1;
                    this.core.labels.errors.add(1);
                    this.check_assignment();
                    let pause = FETCH_RETRY.delay(this.failures);
                    this.retry = Some(Box::pin(tokio::time::sleep(pause)));
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// How many messages a fetch asks for with `room` free in-flight slots: a connector
/// that reads the next poll ahead holds up to as many again, so together they stay
/// within the room (at least one message is asked for).
fn fetch_size(batch_size: u32, room: usize, reads_ahead: bool) -> usize {
    let room = if reads_ahead { (room / 2).max(1) } else { room };
    (batch_size.max(1) as usize).min(room)
}

/// Stores acknowledged offsets as they come, coalescing those that arrive while a
/// commit is in flight or within [`COMMIT_PACE`] after it, until the subscription is
/// closed or dropped. A failed commit
/// is tried again after a backoff (10 ms doubling up to 5 s).
async fn commit_in_background(core: Arc<Core>) {
    let mut failures = 0u32;
    loop {
        if core.acks.is_closed() {
            return;
        }
        core.acks.commit_wake.notified().await;
        match core.acks.commit_if_idle(core.consumer.as_ref()).await {
            Ok(()) => {
                failures = 0;
                // Acks settled meanwhile wait for the next round: commits go per batch
                // of acks, not per ack (each is a store: an offsets-journal write in
                // process, a round trip remotely).
                tokio::time::sleep(COMMIT_PACE).await;
            }
            Err(e) => {
                failures += 1;
                core.labels.errors.add(1);
                core.commit_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let pause = FETCH_RETRY.delay(failures);
                tracing::warn!(group = %core.consumer.group(), error = %e, ?pause, "commit failed; retried after the pause");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = core.acks.commit_wake.notified() => {}
                }
                core.acks.commit_wake.notify_one();
            }
        }
    }
}

impl<E> Drop for Subscription<E> {
    /// Stops redeliveries and stores what was acknowledged. On the embedded connector
    /// the commits complete before `drop` returns (a commit there is a local write);
    /// on the remote connector they continue in the background (a process that exits
    /// right after may lose them: close the subscription instead).
    fn drop(&mut self) {
        self.unreported.report(&self.core.labels);
        self.core.acks.close();
        let core = Arc::clone(&self.core);
        let mut flush: BoxFuture<'static, ()> = Box::pin(async move {
            if let Err(error) = core.acks.commit_on_drop(core.consumer.as_ref()).await {
                tracing::warn!(group = %core.consumer.group(), %error, "commit at drop failed; what it covered is delivered again");
            }
        });
        let mut cx = Context::from_waker(Waker::noop());
        if flush.as_mut().poll(&mut cx).is_pending()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(flush);
        }
    }
}

/// Plain events of a consumer group: a [`Stream`] of `Result<E, Error>`.
///
/// Each event is acknowledged when the next one is asked for, so an event is
/// committed only after the application came back from handling it: at-least-once,
/// like [`Subscription`]. The last event taken before the stream is dropped is
/// delivered again after a restart. A decode failure is an error item carrying its
/// decision (see [`DecodeError`]); dropped, it holds its partition.
pub struct Events<E> {
    inner: BoxStream<'static, Result<E, Error>>,
}

impl<E> fmt::Debug for Events<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl<E: Send + 'static> Events<E> {
    pub(crate) fn new(subscription: Subscription<E>) -> Self {
        let inner = futures::stream::unfold(
            (subscription, None::<RawDelivery>),
            |(mut subscription, previous)| async move {
                if let Some(previous) = previous
                    && let Err(e) = previous.ack().await
                {
                    return Some((Err(e.into()), (subscription, None)));
                }
                match subscription.next().await? {
                    Ok(delivery) => {
                        let (event, _, raw) = delivery.into_parts();
                        Some((Ok(event), (subscription, Some(raw))))
                    }
                    Err(e) => Some((Err(e), (subscription, None))),
                }
            },
        )
        .boxed();
        Self { inner }
    }
}

impl<E> Stream for Events<E> {
    type Item = Result<E, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::fetch_size;

    #[test]
    fn a_fetch_and_what_the_connector_reads_ahead_stay_within_the_free_room() {
        // No read-ahead: the batch, capped by the room.
        assert_eq!(fetch_size(256, 1024, false), 256);
        assert_eq!(fetch_size(256, 100, false), 100);
        // Read-ahead: the fetch and the poll read ahead of it fit in the room.
        assert_eq!(fetch_size(256, 1024, true), 256);
        assert_eq!(fetch_size(256, 300, true), 150);
        for room in 2..600 {
            assert!(2 * fetch_size(256, room, true) <= room, "room {room}");
        }
        // Always at least one message.
        assert_eq!(fetch_size(0, 1, true), 1);
        assert_eq!(fetch_size(10, 1, false), 1);
    }
}
