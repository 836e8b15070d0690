//! Consuming: `Subscription<E>` (a `Stream` of deliveries to acknowledge) and
//! `Events<E>` (a `Stream` of plain events).

use std::collections::VecDeque;
use std::fmt;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{Future, Stream, StreamExt};
use rustok_iggy_connector::{
    ConnectorError, Counter, GroupConsumer, Headers, HistogramHandle, Metrics, ReceivedMessage,
    metric_names, now_micros,
};
use tokio::time::{Instant, Sleep};
use uuid::Uuid;

use crate::acks::AckState;
use crate::decode::{DecodedInfo, Decoder, decode_message};
use crate::error::{DecodeError, Error};
use crate::event::IggyEvent;
use crate::metadata::EventMetadata;
use crate::upcast::Upcasters;

/// Where and how a delivery arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryInfo {
    /// The partition.
    pub partition: u32,
    /// The offset in that partition.
    pub offset: u64,
    /// The event id (the Iggy message id).
    pub event_id: Uuid,
    /// The event type the message names.
    pub event_type: String,
    /// The schema version it was written with.
    pub schema_version: u32,
    /// When the broker appended it (µs since the Unix epoch).
    pub timestamp: u64,
    /// 1 for the first delivery in this process, 2 after one `nack`, ...
    pub attempt: u32,
    /// Correlation, causation, tenant, actor, trace context.
    pub metadata: EventMetadata,
    /// Every user header of the message.
    pub headers: Headers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDrop {
    /// A dropped delivery is delivered again at once.
    Redeliver,
    /// A dropped handle counts as handled.
    Settle,
}

/// The metrics of a subscription, resolved once for its topic and group.
#[derive(Debug)]
struct Labels {
    consumed: Counter,
    consumed_bytes: Counter,
    end_to_end: HistogramHandle,
    acked: Counter,
    nacked: Counter,
}

impl Labels {
    fn new(topic: &str, group: &str) -> Self {
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
        }
    }
}

/// The acknowledgement side of one delivery.
struct AckHandle {
    labels: Arc<Labels>,
    acks: Arc<AckState>,
    message: Option<ReceivedMessage>,
    attempt: u32,
    on_drop: OnDrop,
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
    async fn ack(mut self) -> Result<(), Error> {
        let Some(message) = self.message.take() else {
            return Ok(());
        };
        self.labels.acked.add(1);
        if let Some(offset) = self.acks.settle(message.partition, message.offset) {
            self.acks.request_commit(message.partition, offset);
        }
        Ok(())
    }

    fn nack(mut self, delay: Duration) {
        if let Some(message) = self.message.take() {
            self.labels.nacked.add(1);
            self.acks.requeue(message, self.attempt + 1, delay);
        }
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            match self.on_drop {
                OnDrop::Redeliver => self.acks.requeue(message, self.attempt + 1, Duration::ZERO),
                // The commit point moves on; the next commit (or the subscription's
                // close) stores it.
                OnDrop::Settle => {
                    if let Some(offset) = self.acks.settle(message.partition, message.offset) {
                        self.acks.request_commit(message.partition, offset);
                    }
                }
            }
        }
    }
}

/// One event handed to the application, to be acknowledged.
///
/// Dereferences to the event. Call [`Delivery::ack`] once it is handled: only then can
/// its offset be committed. [`Delivery::nack`] asks for it again after a delay.
/// A delivery dropped without either is delivered again at once.
pub struct Delivery<E> {
    event: E,
    info: DeliveryInfo,
    handle: AckHandle,
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

    /// Acknowledges the delivery: the group's committed offset for its partition moves
    /// past it as soon as every earlier delivery of that partition is acknowledged too.
    ///
    /// The commit itself is made right after, in the background, one at a time per
    /// subscription: acknowledgements that arrive while a commit is in flight are
    /// covered by the next one. [`Subscription::commit`] waits until every
    /// acknowledgement is committed; [`Subscription::close`] does that too. If the
    /// partition was reassigned to another member meanwhile, its commit is refused
    /// and that member receives the event again (at-least-once).
    pub async fn ack(self) -> Result<(), Error> {
        self.handle.ack().await
    }

    /// Asks for the event again after `delay` (attempt + 1). The partition's commit
    /// waits for it; other events keep flowing, so a nacked event may come back
    /// after later ones.
    pub fn nack(self, delay: Duration) {
        self.handle.nack(delay);
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
    handle: AckHandle,
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

    /// Acknowledges it (see [`Delivery::ack`]).
    pub async fn ack(self) -> Result<(), Error> {
        self.handle.ack().await
    }

    /// Asks for it again after `delay` (see [`Delivery::nack`]).
    pub fn nack(self, delay: Duration) {
        self.handle.nack(delay);
    }
}

/// Settings of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Most messages fetched from the broker at once.
    pub batch_size: u32,
    /// Most deliveries handed out and not yet acknowledged; past it the subscription
    /// stops fetching until some are acknowledged (backpressure).
    pub max_in_flight: usize,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            batch_size: 256,
            max_in_flight: 1024,
        }
    }
}

type Fetch = BoxFuture<'static, Result<Vec<ReceivedMessage>, ConnectorError>>;

/// A consumer-group subscription: a [`Stream`] of [`Delivery`] items.
///
/// Delivery is **at-least-once**. A partition's committed offset only moves past
/// events that were acknowledged, and only over the contiguous acknowledged prefix.
/// After a crash or a restart, or when the group rebalances, everything after the
/// last commit is delivered again; handlers should be idempotent by
/// [`DeliveryInfo::event_id`]. Within a partition (so for one key) events arrive in
/// publish order.
///
/// A message that cannot be decoded is an `Err(Error::Decode(..))` item naming its
/// offset and the cause; the stream goes on after it.
pub struct Subscription<E> {
    topic: String,
    labels: Arc<Labels>,
    consumer: Arc<dyn GroupConsumer>,
    acks: Arc<AckState>,
    buffer: VecDeque<ReceivedMessage>,
    fetch: Option<Fetch>,
    timer: Option<Pin<Box<Sleep>>>,
    generation: u64,
    options: SubscriptionOptions,
    decoder: Decoder<E>,
}

impl<E> fmt::Debug for Subscription<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("group", self.consumer.group())
            .field("buffered", &self.buffer.len())
            .field("in_flight", &self.acks.in_flight())
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
        let decoder: Decoder<E> = Arc::new(move |message| decode_message(message, &upcasters));
        Self::with_decoder(topic, consumer, options, decoder)
    }
}

impl<E: Send + 'static> Subscription<E> {
    pub(crate) fn with_decoder(
        topic: String,
        consumer: Arc<dyn GroupConsumer>,
        options: SubscriptionOptions,
        decoder: Decoder<E>,
    ) -> Self {
        let acks = Arc::new(AckState::default());
        tokio::spawn(commit_in_background(
            Arc::clone(&acks),
            Arc::clone(&consumer),
        ));
        Self {
            labels: Arc::new(Labels::new(&topic, consumer.group().as_str())),
            topic,
            generation: consumer.assignment().generation,
            consumer,
            acks,
            buffer: VecDeque::new(),
            fetch: None,
            timer: None,
            options,
            decoder,
        }
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<u32> {
        self.consumer.assignment().partitions
    }

    /// Waits until every acknowledgement made so far is committed.
    pub async fn commit(&self) -> Result<(), Error> {
        self.acks.commit_pending(self.consumer.as_ref()).await?;
        Ok(())
    }

    /// Commits what was acknowledged and leaves the group; un-acknowledged deliveries
    /// are delivered again to the remaining members.
    pub async fn close(self) -> Result<(), Error> {
        self.acks.close();
        let owned = self.consumer.assignment().partitions;
        for (partition, offset) in self.acks.commit_points() {
            if owned.contains(&partition) {
                self.acks.request_commit(partition, offset);
            }
        }
        self.acks.commit_pending(self.consumer.as_ref()).await?;
        self.consumer.leave().await?;
        Ok(())
    }

    fn handle(&self, message: ReceivedMessage, attempt: u32, on_drop: OnDrop) -> AckHandle {
        AckHandle {
            labels: Arc::clone(&self.labels),
            acks: Arc::clone(&self.acks),
            message: Some(message),
            attempt,
            on_drop,
        }
    }

    fn deliver(&self, message: ReceivedMessage, attempt: u32) -> Result<Delivery<E>, Error> {
        self.labels.consumed.add(1);
        self.labels.consumed_bytes.add(message.payload.len() as u64);
        if attempt == 1 {
            let age = now_micros().saturating_sub(message.timestamp);
            self.labels.end_to_end.observe(Duration::from_micros(age));
        }
        match (self.decoder)(&message) {
            Ok((event, decoded)) => {
                let DecodedInfo {
                    event_type,
                    schema_version,
                } = decoded;
                let info = DeliveryInfo {
                    partition: message.partition,
                    offset: message.offset,
                    event_id: Uuid::from_u128(message.id),
                    event_type,
                    schema_version,
                    timestamp: message.timestamp,
                    attempt,
                    metadata: EventMetadata::read(&message.headers, message.id),
                    headers: message.headers.clone(),
                };
                Ok(Delivery {
                    event,
                    info,
                    handle: self.handle(message, attempt, OnDrop::Redeliver),
                })
            }
            Err((failure, event_type)) => Err(Error::Decode(Box::new(DecodeError {
                topic: self.topic.clone(),
                partition: message.partition,
                offset: message.offset,
                event_type,
                failure,
                delivery: Some(RawDelivery {
                    handle: self.handle(message, attempt, OnDrop::Settle),
                }),
            }))),
        }
    }

    /// Forgets partitions this member no longer owns after a rebalance.
    fn check_assignment(&mut self) {
        let assignment = self.consumer.assignment();
        if assignment.generation == self.generation {
            return;
        }
        self.generation = assignment.generation;
        let owned = assignment.partitions;
        self.buffer.retain(|m| owned.contains(&m.partition));
        for partition in self.acks.commit_points().into_iter().map(|(p, _)| p) {
            if !owned.contains(&partition) {
                self.acks.forget_partition(partition);
            }
        }
    }
}

impl<E: Send + 'static> Stream for Subscription<E> {
    type Item = Result<Delivery<E>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.acks.waker.register(cx.waker());
        loop {
            // Due redeliveries first: they are the oldest outstanding events.
            match this.acks.take_due(Instant::now()) {
                Ok(Some(redelivery)) => {
                    this.timer = None;
                    return Poll::Ready(Some(this.deliver(redelivery.message, redelivery.attempt)));
                }
                Ok(None) => this.timer = None,
                Err(due) => {
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
            }
            if let Some(message) = this.buffer.pop_front() {
                this.acks.delivered(message.partition, message.offset);
                return Poll::Ready(Some(this.deliver(message, 1)));
            }
            if this.acks.in_flight() >= this.options.max_in_flight {
                return Poll::Pending;
            }
            let batch = this.options.batch_size.max(1);
            let fetch = this.fetch.get_or_insert_with(|| {
                let consumer = Arc::clone(&this.consumer);
                Box::pin(async move { consumer.poll(batch).await })
            });
            match fetch.as_mut().poll(cx) {
                Poll::Ready(Ok(messages)) => {
                    this.fetch = None;
                    this.buffer.extend(messages);
                    this.check_assignment();
                }
                Poll::Ready(Err(ConnectorError::ShuttingDown)) => {
                    this.fetch = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Err(e)) => {
                    this.fetch = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Stores acknowledged offsets as they come, coalescing those that arrive while a
/// commit is in flight, until the subscription is closed or dropped.
async fn commit_in_background(acks: Arc<AckState>, consumer: Arc<dyn GroupConsumer>) {
    loop {
        acks.commit_wake.notified().await;
        let closed = acks.is_closed();
        if let Err(e) = acks.commit_pending(consumer.as_ref()).await {
            tracing::warn!(group = %consumer.group(), error = %e, "commit failed; retried with the next acknowledgement");
        }
        if closed {
            return;
        }
    }
}

impl<E> Drop for Subscription<E> {
    fn drop(&mut self) {
        self.acks.close();
    }
}

/// Plain events of a consumer group: a [`Stream`] of `Result<E, Error>`.
///
/// Each event is acknowledged when the next one is asked for, so an event is
/// committed only after the application came back from handling it: at-least-once,
/// like [`Subscription`]. The last event taken before the stream is dropped is
/// delivered again after a restart. Decode failures are error items (and count as
/// handled once surfaced).
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
                    return Some((Err(e), (subscription, None)));
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
