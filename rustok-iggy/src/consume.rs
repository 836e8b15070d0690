//! Consuming with a handler: [`Transport::consume`](crate::Transport::consume) runs it
//! with retries and a dead-letter topic, and this module holds its options and
//! reports, plus the parts of a subscription's contract beyond the root types:
//! [`Events`], [`Undecided`], [`RawDelivery`], [`SettleError`], [`HeldPartition`], the decode failure
//! kinds and the redelivery [`Backoff`]. The guarantee is the commit rule: an offset is
//! committed only when every event before it was handled, dead-lettered or
//! deliberately skipped, so nothing acknowledged is lost and a crash redelivers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use futures::StreamExt;
use rustok_iggy_connector::{ConnectorError, Metrics, StartPosition, metric_names};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::dead_letter::{DeadLetters, Failure};
use crate::error::{DecodeError, Error};
use crate::event_impl::IggyEvent;
use crate::metadata::trace_id;
use crate::retry::{HandlerError, RetryPolicy};
use crate::subscription::{Delivery, Subscription, SubscriptionOptions};
use crate::tiers::{self, Tiers};
use crate::transport::Transport;

mod options;

pub use options::{ConsumeOptions, ConsumeReport, OnNewerSchema, Received};

pub use crate::acks::HeldPartition;
pub use crate::decode::DecodeFailure;
pub use crate::retry::{Backoff, MAX_TIERS, RetryTiers};
pub use crate::subscription::{Events, RawDelivery, SettleError, Undecided};
pub use crate::tiers::retry_header;

#[derive(Debug, Default)]
struct Counters {
    handled: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    held: AtomicU64,
}

/// Whether the runner must give up on `error`: retrying cannot help (the credentials
/// are refused, the stream, topic or group is gone, the connector was shut down).
/// Anything else (a lost connection, a timeout, a broker restarting) is ridden out.
fn is_fatal(error: &ConnectorError) -> bool {
    matches!(
        error,
        ConnectorError::Auth { .. }
            | ConnectorError::NotConnected
            | ConnectorError::StreamNotFound { .. }
            | ConnectorError::TopicNotFound { .. }
            | ConnectorError::PartitionNotFound { .. }
            | ConnectorError::GroupNotFound { .. }
            | ConnectorError::TopologyMismatch { .. }
            | ConnectorError::InvalidName(_)
            | ConnectorError::InvalidRequest(_)
            | ConnectorError::Config { .. }
            | ConnectorError::FeatureDisabled { .. }
    )
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
    ///   event. A failing dead-letter write is retried (its partition waits).
    /// - An event of a newer schema version holds its partition by default
    ///   ([`OnNewerSchema::Hold`]): nothing after it in the partition is handled or
    ///   committed, it is delivered again after the subscription's
    ///   `redelivery_backoff`, and [`Transport::held_partitions`] and the
    ///   `rustok_iggy_partition_held` gauge name it, until a consumer that knows the
    ///   version takes the partition over.
    /// - The commit rule: a group's offset moves past an event only when the handler
    ///   accepted it or its dead letter is confirmed. A stop, a dead-letter outage or
    ///   a connector error never moves it past anything else: such events are
    ///   delivered again.
    /// - A failed start (joining the group, opening the dead-letter topic) or fetch (a
    ///   lost connection, a broker restart) is ridden out: the runner tries again
    ///   after a backoff while the connection comes back,
    ///   counted in [`ConsumeReport::errors`] and `rustok_iggy_consumer_errors_total`.
    ///   The runner returns an error only for what retrying cannot fix: refused
    ///   credentials, a deleted stream, topic or group, a connector shut down.
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
        let shutdown = std::pin::pin!(shutdown);
        let mut shutdown = shutdown;
        let set_up = set_up(self.topic().as_str(), group, shutdown.as_mut(), || async {
            let dead_letters = self.dead_letters(&options.dead_letter).await?;
            let tiers = match &options.retry.tiers {
                Some(tiers) => Some(self.tier_subscriptions(group, &options, tiers).await?),
                None => None,
            };
            let subscription = self
                .subscribe_with(
                    group,
                    options.start,
                    runner_subscription(options.subscription),
                )
                .await?;
            Ok((subscription, dead_letters, tiers))
        })
        .await?;
        let Some(((subscription, dead_letters, tiers), setup_errors)) = set_up else {
            return Ok(ConsumeReport::default());
        };
        let handler = Arc::new(handler);
        let mut report = match tiers {
            None => {
                run(
                    subscription,
                    dead_letters,
                    group,
                    options,
                    shutdown,
                    handler,
                    Stage::default(),
                )
                .await?
            }
            Some((tiers, tier_subscriptions)) => {
                run_with_tiers(
                    subscription,
                    tier_subscriptions,
                    tiers,
                    dead_letters,
                    group,
                    options,
                    shutdown,
                    handler,
                )
                .await?
            }
        };
        report.errors += setup_errors;
        Ok(report)
    }

    /// Opens the retry tier topics of this transport's topic (created when missing)
    /// and joins `group` on each.
    async fn tier_subscriptions(
        &self,
        group: &str,
        options: &ConsumeOptions,
        tiers: &RetryTiers,
    ) -> Result<(Arc<Tiers>, Vec<Subscription<E>>), Error> {
        let name = rustok_iggy_connector::GroupName::new(group)?;
        let tiers = Tiers::open(
            Arc::clone(self.connector()),
            self.stream().clone(),
            self.topic().clone(),
            &name,
            self.partitions(),
            options
                .dead_letter
                .retention
                .unwrap_or_else(|| self.dead_letter_retention()),
            tiers,
        )
        .await?;
        let mut subscriptions = Vec::new();
        for topic in tiers.topics() {
            let consumer = self
                .connector()
                .join_group(self.stream(), topic, &name, StartPosition::Earliest)
                .await?;
            subscriptions.push(Subscription::new(
                topic.to_string(),
                Arc::from(consumer),
                runner_subscription(options.subscription),
                Arc::clone(self.upcasters()),
            ));
        }
        Ok((Arc::new(tiers), subscriptions))
    }
}

impl crate::envelope::IggyTransport {
    /// The handler runner of [`Transport::consume`] for envelopes of `topic`: the
    /// same retries, dead-letter topic (`<topic>.dlq`), ordering and shutdown. Events
    /// are acknowledged by the runner; [`crate::envelope::EventTransport::acknowledge`] is not
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
        if options.retry.tiers.is_some() {
            return Err(Error::Connector(ConnectorError::InvalidRequest(
                "retry tiers are a feature of the typed runner (Transport::consume); \
                 the envelope runner retries in place"
                    .into(),
            )));
        }
        let shutdown = std::pin::pin!(shutdown);
        let mut shutdown = shutdown;
        let set_up = set_up(topic.as_str(), group, shutdown.as_mut(), || async {
            let (subscription, _) = self
                .envelope_subscription(
                    group,
                    topic,
                    options.start,
                    runner_subscription(options.subscription),
                )
                .await?;
            let dead_letters = self.dead_letters(topic, &options.dead_letter).await?;
            Ok((subscription, dead_letters))
        })
        .await?;
        let Some(((subscription, dead_letters), setup_errors)) = set_up else {
            return Ok(ConsumeReport::default());
        };
        let mut report = run(
            subscription,
            dead_letters,
            group,
            options,
            shutdown,
            Arc::new(handler),
            Stage::default(),
        )
        .await?;
        report.errors += setup_errors;
        Ok(report)
    }
}

/// Pause between two failed set-ups of a runner: doubling from 10 ms up to 5 s.
const SET_UP_RETRY: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(5));

/// Runs `attempt` (joining the group, opening the dead-letter topic) until it
/// succeeds, trying again after a backoff while it fails on what a retry can fix (a
/// lost connection, a broker restarting: see [`is_fatal`]), each failure counted in
/// `rustok_iggy_consumer_errors_total`. `None` when `shutdown` came first; else the
/// result and how many attempts failed.
async fn set_up<T, A, Fut>(
    topic: &str,
    group: &str,
    mut shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + ?Sized)>,
    mut attempt: A,
) -> Result<Option<(T, u64)>, Error>
where
    A: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut failures = 0u64;
    loop {
        let result = tokio::select! {
            biased;
            () = shutdown.as_mut() => return Ok(None),
            result = attempt() => result,
        };
        match result {
            Ok(value) => return Ok(Some((value, failures))),
            Err(e) if e.connector_error().is_some_and(|e| !is_fatal(e)) => {
                failures += 1;
                Metrics::global().add(
                    metric_names::CONSUMER_ERRORS,
                    &[
                        ("messaging_destination_name", topic),
                        ("messaging_consumer_group_name", group),
                    ],
                    1,
                );
                let pause = SET_UP_RETRY.delay(u32::try_from(failures).unwrap_or(u32::MAX));
                tracing::warn!(group, error = %e, failures, ?pause, "the runner could not start; trying again after a backoff");
                tokio::select! {
                    biased;
                    () = shutdown.as_mut() => return Ok(None),
                    () = tokio::time::sleep(pause) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The runner decides every decode error itself; one it lets go (a stop) is held,
/// never skipped.
/// The runner's subscription: undecided decode errors hold their partition, and the
/// runner enforces `ack_wait` per handler attempt itself (see `partition_worker`), so
/// deliveries queued behind a running handler do not expire while they wait.
fn runner_subscription(options: SubscriptionOptions) -> SubscriptionOptions {
    SubscriptionOptions {
        undecided: Undecided::Hold,
        ack_wait: None,
        ..options
    }
}

/// Lets go of work the runner will not do (it is stopping): nothing of it is
/// committed, it is delivered again later.
fn release<E>(work: Work<E>) {
    match work {
        Work::Deliver(delivery) => drop(delivery),
        Work::Undecodable(error) => error.retry_later(Duration::ZERO),
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
    handler: Arc<H>,
    stage: Stage,
) -> Result<ConsumeReport, Error>
where
    E: Send + Sync + 'static,
    H: Fn(Received<E>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let topic = match (&stage.tiers, stage.tier) {
        (Some(tiers), tier) if tier > 0 => tiers.topic(tier).to_string(),
        _ => dead_letters.source().to_string(),
    };
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = watch::channel(false);
    let mut workers: HashMap<u32, mpsc::Sender<Work<E>>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let group_name: Arc<str> = Arc::from(group);
    tokio::pin!(shutdown);

    let mut errors = 0u64;
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
            Some(Err(Error::Connector(e))) if !is_fatal(&e) => {
                errors += 1;
                tracing::warn!(group, error = %rustok_iggy_connector::error_chain(&e), errors, "fetch failed; trying again after a backoff");
                continue;
            }
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
                    newer_schema: options.newer_schema,
                    group: Arc::clone(&group_name),
                    topic: topic.clone(),
                    counters: Arc::clone(&counters),
                    stopped: stopped.clone(),
                    stage: stage.clone(),
                    ack_wait: options.subscription.ack_wait,
                },
            ));
            tx
        });
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => {
                release(work);
                break Ok(());
            }
            permit = sender.reserve() => permit,
        };
        match permit {
            Ok(permit) => permit.send(work),
            Err(_) => {
                release(work);
                break Err(Error::Connector(ConnectorError::ShuttingDown));
            }
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
    // Failed fetches came through the stream; failed background commits did not.
    errors += subscription.commit_failures();
    let closed = subscription.close().await;
    outcome?;
    closed?;
    Ok(ConsumeReport {
        handled: counters.handled.load(Ordering::Relaxed),
        retried: counters.retried.load(Ordering::Relaxed),
        dead_lettered: counters.dead_lettered.load(Ordering::Relaxed),
        held: counters.held.load(Ordering::Relaxed),
        errors,
    })
}

/// The runner with retry tiers: one runner on the source topic and one on each
/// tier topic, sharing the handler and the stop; each stops when `shutdown`
/// completes or any of them ends (an error). Their reports are added up.
#[expect(clippy::too_many_arguments, reason = "the runner's parts, passed once")]
async fn run_with_tiers<E, H, F>(
    subscription: Subscription<E>,
    tier_subscriptions: Vec<Subscription<E>>,
    tiers: Arc<Tiers>,
    dead_letters: DeadLetters,
    group: &str,
    options: ConsumeOptions,
    shutdown: impl Future<Output = ()> + Send,
    handler: Arc<H>,
) -> Result<ConsumeReport, Error>
where
    E: Send + Sync + 'static,
    H: Fn(Received<E>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let (stop, stopped) = watch::channel(false);
    let stop = &stop;
    let stage_run = |subscription: Subscription<E>, tier: u32| {
        let mut stopped = stopped.clone();
        let run = run(
            subscription,
            dead_letters.clone(),
            group,
            options.clone(),
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
            Arc::clone(&handler),
            Stage {
                tiers: Some(Arc::clone(&tiers)),
                tier,
            },
        );
        async move {
            let result = run.await;
            stop.send_replace(true);
            result
        }
    };
    let mut runs = vec![stage_run(subscription, 0)];
    for (index, subscription) in tier_subscriptions.into_iter().enumerate() {
        runs.push(stage_run(
            subscription,
            u32::try_from(index + 1).unwrap_or(u32::MAX),
        ));
    }
    let mut watching = stopped.clone();
    let (results, ()) = futures::join!(futures::future::join_all(runs), async move {
        tokio::select! {
            () = shutdown => {}
            _ = watching.wait_for(|s| *s) => {}
        }
        stop.send_replace(true);
    });
    let mut total = ConsumeReport::default();
    let mut first_error = None;
    for result in results {
        match result {
            Ok(report) => {
                total.handled += report.handled;
                total.retried += report.retried;
                total.dead_lettered += report.dead_lettered;
                total.held += report.held;
                total.errors += report.errors;
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(total),
    }
}

/// What a partition worker needs.
struct Worker<H> {
    handler: Arc<H>,
    dead_letters: DeadLetters,
    retry: RetryPolicy,
    newer_schema: OnNewerSchema,
    group: Arc<str>,
    topic: String,
    counters: Arc<Counters>,
    stopped: watch::Receiver<bool>,
    stage: Stage,
    /// The subscription's acknowledgement deadline, extended while a tier event
    /// waits for its due time.
    ack_wait: Option<Duration>,
}

/// Which topic a runner consumes: the source (tier 0) or a retry tier.
#[derive(Debug, Clone, Default)]
struct Stage {
    /// The retry tiers, when the policy has them.
    tiers: Option<Arc<Tiers>>,
    /// 0: the source topic; `n`: tier `n`.
    tier: u32,
}

impl Stage {
    /// The tier a retryable failure at this stage moves to, if any is left.
    fn next_tier(&self) -> Option<(&Tiers, u32)> {
        let tiers = self.tiers.as_deref()?;
        (self.tier < tiers.len()).then_some((tiers, self.tier + 1))
    }
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
        newer_schema,
        group,
        topic,
        counters,
        mut stopped,
        stage,
        ack_wait,
    } = worker;
    let labels = [
        ("messaging_destination_name", topic.as_str()),
        ("messaging_consumer_group_name", &*group),
    ];
    while let Some(work) = queue.recv().await {
        if *stopped.borrow() {
            // Shutting down: finish only the event in hand; what is queued stays
            // unsettled and is delivered again later.
            release(work);
            queue.close();
            while let Ok(work) = queue.try_recv() {
                release(work);
            }
            break;
        }
        match work {
            Work::Undecodable(mut error) => {
                if error.is_newer_schema_version() && newer_schema == OnNewerSchema::Hold {
                    counters.held.fetch_add(1, Ordering::Relaxed);
                    error.hold();
                    continue;
                }
                let Some(raw) = error.take_delivery() else {
                    continue;
                };
                if raw.is_superseded() {
                    raw.nack(Duration::ZERO);
                    continue;
                }
                let Some(message) = raw.message().cloned() else {
                    continue;
                };
                let (message, attempts) = match tiers::origin(&message) {
                    Some(origin) if stage.tier > 0 => (
                        tiers::restored(&message, &origin),
                        origin.attempts + raw.attempt(),
                    ),
                    _ => (message, raw.attempt()),
                };
                let failure = Failure {
                    message: &message,
                    group: &group,
                    error: error.failure.to_string(),
                    attempts,
                };
                if dead_letter(&dead_letters, failure, &retry, &mut stopped).await {
                    counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    Metrics::global().add(metric_names::DEAD_LETTERED, &labels, 1);
                    if let Err(e) = raw.ack().await {
                        tracing::warn!(error = %e, "acknowledging a dead-lettered event failed; it will come again");
                    }
                } else {
                    // Stopped during a dead-letter outage: not committed, delivered
                    // again later.
                    raw.nack(Duration::ZERO);
                }
            }
            Work::Deliver(delivery) => {
                if delivery.is_superseded() {
                    // Its partition is held at an earlier event or went to another
                    // member: it is delivered again where it belongs.
                    continue;
                }
                let (event, mut info, raw) = (*delivery).into_parts();
                // From a retry tier: wait for the event's due time (this tier
                // partition waits; the source partition does not), and hand the
                // handler its original coordinates and attempt count.
                let origin = if stage.tier > 0 {
                    raw.message().and_then(tiers::origin)
                } else {
                    None
                };
                if let Some(origin) = &origin {
                    // Waiting for the due time is not a handler attempt: the
                    // runner's subscription has no deadline (the runner enforces
                    // `ack_wait` per attempt), so the wait never expires the delivery.
                    let until = tokio::time::Instant::now() + tiers::wait_for(origin);
                    let stopping = tokio::select! {
                        () = tokio::time::sleep_until(until) => false,
                        _ = stopped.wait_for(|s| *s) => true,
                    };
                    if stopping {
                        // Not handled: delivered again after a restart.
                        drop(raw);
                        continue;
                    }
                    info.partition = origin.partition;
                    info.offset = origin.offset;
                    info.timestamp = origin.timestamp;
                    info.attempt += origin.attempts;
                }
                let earlier = origin.map_or(0, |o| o.attempts);
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
                    traceparent = received.info.traceparent().unwrap_or(""),
                    trace_id = received.info.traceparent().and_then(trace_id).unwrap_or(""),
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
                    let run = handler(attempt).instrument(span.clone());
                    let result = match ack_wait {
                        None => run.await,
                        // A handler attempt that runs past `ack_wait` is cancelled
                        // (dropped at its next await) and is a failed attempt.
                        Some(wait) => match tokio::time::timeout(wait, run).await {
                            Ok(result) => result,
                            Err(_elapsed) => {
                                tracing::warn!(parent: &span, ?wait, "the handler ran past ack_wait; cancelled, counted as a failed attempt");
                                Metrics::global().add(metric_names::ACK_EXPIRED, &labels, 1);
                                Err(HandlerError::retryable(format!(
                                    "the handler ran past ack_wait ({wait:?}) and was cancelled"
                                )))
                            }
                        },
                    };
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
                        let attempts = earlier + failures;
                        if error.is_retryable()
                            && let Some((tiers, next)) = stage.next_tier()
                        {
                            let reason = error.to_string();
                            let moved = confirm(
                                || tiers.write(next, &message, origin.as_ref(), attempts, &reason),
                                &message,
                                &retry,
                                &mut stopped,
                            )
                            .await;
                            if moved {
                                counters.retried.fetch_add(1, Ordering::Relaxed);
                                Metrics::global().add(metric_names::RETRIED, &labels, 1);
                                tracing::debug!(parent: &span, error = %error, tier = next, attempts, "handler failed; moved to the next retry tier");
                                if let Err(e) = raw.ack().await {
                                    tracing::warn!(parent: &span, error = %e, "acknowledging a retried event failed; it will come again");
                                }
                            } else {
                                // Stopped during an outage of the tier topic: not
                                // committed, delivered again later.
                                raw.nack(Duration::ZERO);
                            }
                            continue;
                        }
                        let message = match &origin {
                            Some(origin) => tiers::restored(&message, origin),
                            None => message,
                        };
                        let failure = Failure {
                            message: &message,
                            group: &group,
                            error: error.to_string(),
                            attempts,
                        };
                        if dead_letter(&dead_letters, failure, &retry, &mut stopped).await {
                            counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            Metrics::global().add(metric_names::DEAD_LETTERED, &labels, 1);
                            tracing::warn!(parent: &span, error = %error, attempts = failures, "event dead-lettered");
                            if let Err(e) = raw.ack().await {
                                tracing::warn!(parent: &span, error = %e, "acknowledging a dead-lettered event failed; it will come again");
                            }
                        } else {
                            // Stopped during a dead-letter outage: not committed,
                            // delivered again later.
                            raw.nack(Duration::ZERO);
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
    let message = failure.message;
    confirm(
        || dead_letters.write(failure.clone()),
        message,
        retry,
        stopped,
    )
    .await
}

/// Runs `write` (a dead letter, a move to a retry tier) until the broker confirms
/// it, retrying failed writes with the retry policy's backoff (the partition waits)
/// until it succeeds or the runner stops. Returns whether it was written; when not,
/// the event stays unacknowledged and is delivered again later.
async fn confirm<W, Fut, Er>(
    mut write: W,
    message: &rustok_iggy_connector::ReceivedMessage,
    retry: &RetryPolicy,
    stopped: &mut watch::Receiver<bool>,
) -> bool
where
    W: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Er>>,
    Er: std::fmt::Display,
{
    let mut failures = 0u32;
    loop {
        match write().await {
            Ok(()) => return true,
            Err(e) => {
                failures += 1;
                let delay = retry
                    .backoff(failures.min(retry.max_attempts.saturating_sub(1)).max(1))
                    .unwrap_or(retry.max_backoff)
                    .max(Duration::from_millis(10));
                tracing::error!(
                    error = %e,
                    partition = message.partition,
                    offset = message.offset,
                    failures,
                    ?delay,
                    "writing a failed event onward failed; retrying (the partition waits)"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stopped.wait_for(|s| *s) => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterError;

    fn lost_connection() -> ConnectorError {
        ConnectorError::Connection {
            message: "the broker went away".into(),
            source: None,
        }
    }

    /// The runner's start rule sees the connector's failure inside a failed
    /// dead-letter open or settlement: a transient one is ridden out (counted, then
    /// tried again), one that retrying cannot fix is returned at once.
    #[tokio::test(start_paused = true)]
    async fn set_up_rides_out_what_a_retry_fixes_inside_the_wrapping_errors() {
        let transient: Vec<fn() -> Error> = vec![
            || Error::DeadLetter(DeadLetterError::Connector(lost_connection())),
            || Error::Settle(SettleError::Commit(lost_connection())),
            || {
                Error::Settle(SettleError::DeadLetter(DeadLetterError::Connector(
                    lost_connection(),
                )))
            },
            || Error::Connector(lost_connection()),
        ];
        for make in transient {
            let mut attempts = 0u32;
            let set = set_up(
                "jobs",
                "starting",
                std::pin::pin!(std::future::pending()),
                || {
                    attempts += 1;
                    let again = attempts < 3;
                    async move { if again { Err(make()) } else { Ok(attempts) } }
                },
            )
            .await
            .expect("ridden out");
            assert_eq!(set, Some((3, 2)), "{:?}", make());
        }

        let fatal: Vec<fn() -> Error> = vec![
            || Error::DeadLetter(DeadLetterError::NoDeadLetterTopic),
            || {
                Error::DeadLetter(DeadLetterError::Connector(ConnectorError::TopicNotFound {
                    stream: "s".into(),
                    topic: "jobs.dlq".into(),
                }))
            },
            || Error::Connector(ConnectorError::NotConnected),
        ];
        for make in fatal {
            let mut attempts = 0u32;
            let result = set_up(
                "jobs",
                "starting",
                std::pin::pin!(std::future::pending()),
                || {
                    attempts += 1;
                    async move { Err::<(), _>(make()) }
                },
            )
            .await;
            assert!(result.is_err(), "{:?}", make());
            assert_eq!(attempts, 1, "given up at once: {:?}", make());
        }
    }
}
