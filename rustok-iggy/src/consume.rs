//! The handler runner: `Transport::consume` with retries and a dead-letter topic.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use rustok_iggy_connector::{Metrics, StartPosition, metric_names};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::dead_letter::{DeadLetterConfig, DeadLetters, Failure};
use crate::error::{DecodeError, Error};
use crate::event::IggyEvent;
use crate::metadata::trace_id;
use crate::retry::{HandlerError, RetryPolicy};
use crate::subscription::{Delivery, DeliveryInfo, Subscription, SubscriptionOptions};
use crate::transport::Transport;

/// Settings of [`Transport::consume`].
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
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            dead_letter: DeadLetterConfig::default(),
            subscription: SubscriptionOptions::default(),
            start: StartPosition::Earliest,
            queue_per_partition: 64,
        }
    }
}

/// An event handed to a handler: the event and where it came from. Cheap to clone
/// (retries hand the same event again).
#[derive(Debug)]
pub struct Received<E> {
    event: Arc<E>,
    info: Arc<DeliveryInfo>,
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

/// What a [`Transport::consume`] run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumeReport {
    /// Events the handler accepted (and that were acknowledged).
    pub handled: u64,
    /// Handler failures that were retried.
    pub retried: u64,
    /// Events written to the dead-letter topic (and then acknowledged).
    pub dead_lettered: u64,
}

#[derive(Debug, Default)]
struct Counters {
    handled: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
}

enum Work<E> {
    Deliver(Box<Delivery<E>>),
    Undecodable(Box<DecodeError>),
}

impl<E: IggyEvent> Transport<E> {
    /// Runs `handler` on every event of consumer group `group` until `shutdown`
    /// completes.
    ///
    /// - Partitions are handled concurrently, events of one partition one after the
    ///   other: while an event is retried its partition waits, so per-key order holds.
    /// - A handler error marked retryable is retried per `options.retry` (exponential
    ///   backoff with jitter); after the last attempt, or at once for a permanent error,
    ///   an undecodable payload or an unknown event type, the event is written to the
    ///   dead-letter topic (`<topic>.dlq` by default) with its origin, the error and
    ///   the attempt count.
    /// - The dead-letter write is confirmed **before** the source offset is
    ///   acknowledged: a crash in between may duplicate a dead letter, never lose the
    ///   event.
    /// - On shutdown the runner stops fetching, lets every partition finish the event
    ///   in hand (a pending retry is abandoned: the event stays unacknowledged and is
    ///   delivered again later), commits what was acknowledged and leaves the group.
    pub async fn consume<H, F>(
        &self,
        group: &str,
        options: ConsumeOptions,
        shutdown: impl Future<Output = ()> + Send,
        handler: H,
    ) -> Result<ConsumeReport, Error>
    where
        H: Fn(Received<E>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let dead_letters = DeadLetters::for_transport(self, &options.dead_letter).await?;
        let subscription = self
            .subscribe_with(group, options.start, options.subscription)
            .await?;
        run(
            subscription,
            dead_letters,
            group,
            options,
            shutdown,
            handler,
        )
        .await
    }
}

impl crate::envelope::IggyTransport {
    /// The handler runner of [`Transport::consume`] for envelopes of `topic`: the
    /// same retries, dead-letter topic (`<topic>.dlq`), ordering and shutdown. Events
    /// are acknowledged by the runner; [`crate::EventTransport::acknowledge`] is not
    /// needed.
    pub async fn consume<H, F>(
        &self,
        group: &str,
        topic: &rustok_iggy_connector::TopicName,
        options: ConsumeOptions,
        shutdown: impl Future<Output = ()> + Send,
        handler: H,
    ) -> Result<ConsumeReport, Error>
    where
        H: Fn(Received<crate::envelope::EventEnvelope>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let (subscription, _) = self
            .envelope_subscription(group, topic, options.start, options.subscription)
            .await?;
        let dead_letters = DeadLetters::for_envelopes(self, topic, &options.dead_letter).await?;
        run(
            subscription,
            dead_letters,
            group,
            options,
            shutdown,
            handler,
        )
        .await
    }
}

/// The runner: dispatches deliveries to one worker per partition until `shutdown`,
/// then drains, commits and leaves.
async fn run<E, H, F>(
    mut subscription: Subscription<E>,
    dead_letters: DeadLetters,
    group: &str,
    options: ConsumeOptions,
    shutdown: impl Future<Output = ()> + Send,
    handler: H,
) -> Result<ConsumeReport, Error>
where
    E: Send + Sync + 'static,
    H: Fn(Received<E>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let topic = dead_letters.source().to_string();
    let handler = Arc::new(handler);
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = watch::channel(false);
    let mut workers: HashMap<u32, mpsc::Sender<Work<E>>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let group_name: Arc<str> = Arc::from(group);
    tokio::pin!(shutdown);

    let outcome = loop {
        let item = tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            item = subscription.next() => item,
        };
        let (partition, work) = match item {
            None => break Ok(()),
            Some(Ok(delivery)) => (delivery.info().partition, Work::Deliver(Box::new(delivery))),
            Some(Err(Error::Decode(e))) => (e.partition, Work::Undecodable(e)),
            Some(Err(e)) => break Err(e),
        };
        let sender = workers.entry(partition).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(options.queue_per_partition.max(1));
            tasks.spawn(partition_worker(
                rx,
                Worker {
                    handler: Arc::clone(&handler),
                    dead_letters: dead_letters.clone(),
                    retry: options.retry,
                    group: Arc::clone(&group_name),
                    topic: topic.clone(),
                    counters: Arc::clone(&counters),
                    stopped: stopped.clone(),
                },
            ));
            tx
        });
        let send = tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            sent = sender.send(work) => sent,
        };
        if send.is_err() {
            break Err(Error::Connector(
                rustok_iggy_connector::ConnectorError::ShuttingDown,
            ));
        }
    };

    // Drain: no new work; each worker finishes the event in hand.
    stop.send_replace(true);
    drop(workers);
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "a partition worker panicked");
        }
    }
    let closed = subscription.close().await;
    outcome?;
    closed?;
    Ok(ConsumeReport {
        handled: counters.handled.load(Ordering::Relaxed),
        retried: counters.retried.load(Ordering::Relaxed),
        dead_lettered: counters.dead_lettered.load(Ordering::Relaxed),
    })
}

/// What a partition worker needs.
struct Worker<H> {
    handler: Arc<H>,
    dead_letters: DeadLetters,
    retry: RetryPolicy,
    group: Arc<str>,
    topic: String,
    counters: Arc<Counters>,
    stopped: watch::Receiver<bool>,
}

async fn partition_worker<E, H, F>(mut queue: mpsc::Receiver<Work<E>>, worker: Worker<H>)
where
    E: Send + Sync + 'static,
    H: Fn(Received<E>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let Worker {
        handler,
        dead_letters,
        retry,
        group,
        topic,
        counters,
        mut stopped,
    } = worker;
    let labels = [
        ("messaging_destination_name", topic.as_str()),
        ("messaging_consumer_group_name", &*group),
    ];
    while let Some(work) = queue.recv().await {
        if *stopped.borrow() {
            // Shutting down: finish only the event in hand; queued ones stay
            // unacknowledged and are delivered again later.
            break;
        }
        match work {
            Work::Undecodable(mut error) => {
                let Some(raw) = error.take_delivery() else {
                    continue;
                };
                let Some(message) = raw.message().cloned() else {
                    continue;
                };
                let failure = Failure {
                    message: &message,
                    group: &group,
                    error: error.failure.to_string(),
                    attempts: raw.attempt(),
                };
                if dead_letter(&dead_letters, failure, &retry, &mut stopped).await {
                    counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    Metrics::global().add(metric_names::DEAD_LETTERED, &labels, 1);
                    if let Err(e) = raw.ack().await {
                        tracing::warn!(error = %e, "acknowledging a dead-lettered event failed; it will come again");
                    }
                }
            }
            Work::Deliver(delivery) => {
                let (event, info, raw) = (*delivery).into_parts();
                let received = Received {
                    event: Arc::new(event),
                    info: Arc::new(info),
                };
                let span = tracing::info_span!(
                    "handle",
                    messaging.system = "iggy",
                    messaging.destination.name = %topic,
                    messaging.consumer.group.name = %group,
                    messaging.message.id = %received.info.event_id,
                    partition = received.info.partition,
                    offset = received.info.offset,
                    event_type = %received.info.event_type,
                    traceparent = received.info.metadata.traceparent.as_deref().unwrap_or(""),
                    trace_id = received.info.metadata.traceparent.as_deref().and_then(trace_id).unwrap_or(""),
                );
                let mut failures = 0u32;
                let outcome = loop {
                    let mut attempt = received.clone();
                    if failures > 0 {
                        let mut info = (*attempt.info).clone();
                        info.attempt += failures;
                        attempt.info = Arc::new(info);
                    }
                    let started = std::time::Instant::now();
                    let result = handler(attempt).instrument(span.clone()).await;
                    Metrics::global().observe(
                        metric_names::PROCESS_DURATION,
                        &labels,
                        started.elapsed(),
                    );
                    match result {
                        Ok(()) => break Ok(()),
                        Err(error) => {
                            failures += 1;
                            let delay = if error.is_retryable() {
                                retry.backoff(failures)
                            } else {
                                None
                            };
                            match delay {
                                Some(delay) => {
                                    counters.retried.fetch_add(1, Ordering::Relaxed);
                                    Metrics::global().add(metric_names::RETRIED, &labels, 1);
                                    tracing::debug!(parent: &span, error = %error, ?delay, failures, "handler failed; retrying");
                                    tokio::select! {
                                        () = tokio::time::sleep(delay) => {}
                                        _ = stopped.wait_for(|s| *s) => break Err(None),
                                    }
                                }
                                None => break Err(Some(error)),
                            }
                        }
                    }
                };
                match outcome {
                    Ok(()) => {
                        counters.handled.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = raw.ack().await {
                            tracing::warn!(parent: &span, error = %e, "acknowledgement failed; the event will come again");
                        }
                    }
                    // Shutting down in the middle of retries: leave it unacknowledged.
                    Err(None) => drop(raw),
                    Err(Some(error)) => {
                        let Some(message) = raw.message().cloned() else {
                            continue;
                        };
                        let failure = Failure {
                            message: &message,
                            group: &group,
                            error: error.to_string(),
                            attempts: failures,
                        };
                        if dead_letter(&dead_letters, failure, &retry, &mut stopped).await {
                            counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            Metrics::global().add(metric_names::DEAD_LETTERED, &labels, 1);
                            tracing::warn!(parent: &span, error = %error, attempts = failures, "event dead-lettered");
                            if let Err(e) = raw.ack().await {
                                tracing::warn!(parent: &span, error = %e, "acknowledging a dead-lettered event failed; it will come again");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Writes a dead letter, retrying failed writes with the retry policy's backoff
/// (the partition waits: per-key order holds) until it succeeds or the runner stops.
/// Returns whether it was written; when not, the event stays unacknowledged and is
/// delivered again later.
async fn dead_letter(
    dead_letters: &DeadLetters,
    failure: Failure<'_>,
    retry: &RetryPolicy,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    let mut failures = 0u32;
    loop {
        match dead_letters.write(failure.clone()).await {
            Ok(()) => return true,
            Err(e) => {
                failures += 1;
                let delay = retry
                    .backoff(failures.min(retry.max_attempts.saturating_sub(1)).max(1))
                    .unwrap_or(retry.max_backoff)
                    .max(std::time::Duration::from_millis(10));
                tracing::error!(
                    error = %e,
                    partition = failure.message.partition,
                    offset = failure.message.offset,
                    failures,
                    ?delay,
                    "dead-letter write failed; retrying (the partition waits)"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stopped.wait_for(|s| *s) => return false,
                }
            }
        }
    }
}
