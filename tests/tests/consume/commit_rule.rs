//! The commit rule of the typed consume path, on both connectors: a group's offset
//! moves past an event only when that event was handled successfully, explicitly
//! skipped, or confirmed in the dead-letter topic. A stop, a dropped item, a
//! dead-letter outage or a rebalance never moves it past anything else.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use rustok_iggy::prelude::*;
use rustok_iggy::{
    Error, RetryPolicy, SubscriptionOptions,
    connector::{GroupName, IggyConnector, StreamName},
    consume::{Backoff, ConsumeOptions, Undecided},
    dead_letter::{DeadLetter, DeadLetterConfig},
    upcast::Upcasters,
};
use rustok_iggy_connector::{Headers, OutgoingMessage, PublishRequest, error_chain, metric_names};
use serde::{Deserialize, Serialize};
use tests::conformance::{Harness, Target, run};
use tests::faulty::DeadLetterOutage;
use tests::within;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", key = key, codec = "postcard", event_type = "job", version = 2)]
struct Job {
    key: String,
    n: u64,
}

/// Version 1 of a job, as an older producer wrote it: same field count, so Postcard
/// reads it as a version 2 job without complaint (silently wrong).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobV1 {
    key: String,
    n: u64,
}

/// What a newer consumer knows: version 3 of the same event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", key = key, codec = "postcard", event_type = "job", version = 3)]
struct JobV3 {
    key: String,
    n: u64,
    priority: u8,
}

fn job(n: u64) -> Job {
    Job { key: "k".into(), n }
}

async fn transport<E: IggyEvent>(
    connector: Arc<dyn IggyConnector>,
    stream: &StreamName,
    partitions: u32,
) -> Transport<E> {
    Transport::new(
        connector,
        TransportOptions {
            stream: stream.clone(),
            partitions,
            ..TransportOptions::default()
        },
    )
    .await
    .expect("the topic is ready")
}

async fn jobs(h: &mut Harness, case: &str, partitions: u32) -> Transport<Job> {
    let stream = h.stream(case);
    transport(Arc::clone(&h.connector), &stream, partitions).await
}

/// Publishes raw bytes (what another client could write) to `partition`.
async fn publish_raw(
    connector: &dyn IggyConnector,
    jobs: &Transport<Job>,
    partition: u32,
    payload: &[u8],
    headers: Headers,
) -> u64 {
    within(
        "publish raw",
        connector.publish(
            PublishRequest::new(jobs.stream().clone(), jobs.topic().clone())
                .partition(partition)
                .message(OutgoingMessage::new(payload.to_vec()).with_headers(headers)),
        ),
    )
    .await
    .expect("raw publish")
    .base_offset
}

fn headers(version: u32) -> Headers {
    let mut headers = Headers::new();
    headers.insert_str("event_type", "job").unwrap();
    headers
        .insert_str("schema_version", version.to_string())
        .unwrap();
    headers.insert_str("codec", "postcard").unwrap();
    headers
}

async fn committed(
    connector: &dyn IggyConnector,
    jobs: &Transport<Job>,
    group: &str,
) -> Vec<Option<u64>> {
    within(
        "committed offsets",
        connector.committed_offsets(jobs.stream(), jobs.topic(), &GroupName::new(group).unwrap()),
    )
    .await
    .expect("committed offsets")
}

async fn letters(jobs: &Transport<Job>) -> Vec<DeadLetter> {
    jobs.dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap()
        .list(1000)
        .await
        .unwrap()
}

type Handled = Arc<Mutex<BTreeSet<(u32, u64)>>>;

/// Records a handled delivery.
fn note(handled: &Handled, info: &rustok_iggy::DeliveryInfo) {
    handled
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((info.partition, info.offset));
}

fn handled_set(handled: &Handled) -> BTreeSet<(u32, u64)> {
    handled
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Every offset at or below a partition's committed offset was handled or is in the
/// dead-letter topic.
fn assert_commit_rule(
    target: Target,
    committed: &[Option<u64>],
    handled: &BTreeSet<(u32, u64)>,
    letters: &[DeadLetter],
) {
    for (partition, committed) in committed.iter().enumerate() {
        let partition = partition as u32;
        let Some(committed) = *committed else {
            continue;
        };
        for offset in 0..=committed {
            let dead_lettered = letters
                .iter()
                .any(|l| l.original_partition == partition && l.original_offset == offset);
            assert!(
                handled.contains(&(partition, offset)) || dead_lettered,
                "{target:?}: partition {partition} is committed at {committed}, past offset \
                 {offset}, which was neither handled nor dead-lettered (handled {handled:?}, \
                 {} dead letters)",
                letters.len()
            );
        }
    }
}

async fn a_stop_never_commits_a_queued_undecodable_event(h: Harness) {
    stop_with_a_queued_undecodable_event(h, ConsumeOptions::default()).await;
}

/// The same with a queue of one per partition (the dispatcher waits to hand the next
/// event over when the stop comes) and the subscription told to skip what is dropped
/// undecided: the runner decides every decode error itself and never skips one.
async fn a_stop_while_dispatching_never_commits_an_undecodable_event(h: Harness) {
    let options = ConsumeOptions {
        queue_per_partition: 1,
        subscription: SubscriptionOptions {
            undecided: Undecided::Skip,
            ..SubscriptionOptions::default()
        },
        ..ConsumeOptions::default()
    };
    stop_with_a_queued_undecodable_event(h, options).await;
}

async fn stop_with_a_queued_undecodable_event(mut h: Harness, options: ConsumeOptions) {
    let jobs = jobs(&mut h, "stop", 1).await;
    jobs.publish(&job(0)).await.unwrap();
    let garbage = publish_raw(
        h.connector.as_ref(),
        &jobs,
        0,
        b"\xff\xff\xff",
        Headers::new(),
    )
    .await;
    jobs.publish(&job(2)).await.unwrap();

    let handled = Handled::default();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let shutdown = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        async move {
            // Stop while job 0 is in its handler; then let the handler finish.
            entered.notified().await;
            release.notify_one();
        }
    };
    let report = {
        let (handled, entered, release) = (
            Arc::clone(&handled),
            Arc::clone(&entered),
            Arc::clone(&release),
        );
        within(
            "the runner stops",
            jobs.consume("g", options.clone(), shutdown, move |event| {
                let (handled, entered, release) = (
                    Arc::clone(&handled),
                    Arc::clone(&entered),
                    Arc::clone(&release),
                );
                async move {
                    if event.n == 0 {
                        entered.notify_one();
                        release.notified().await;
                    }
                    note(&handled, event.info());
                    Ok(())
                }
            }),
        )
        .await
        .expect("a clean stop")
    };
    let after_stop = committed(h.connector.as_ref(), &jobs, "g").await;
    assert_commit_rule(
        h.target,
        &after_stop,
        &handled_set(&handled),
        &letters(&jobs).await,
    );
    assert_eq!(report.handled, 1, "{:?}: only job 0 was in hand", h.target);

    // The next run takes over: the undecodable event goes to the dead-letter topic.
    let done = Arc::new(Notify::new());
    let stop = Arc::clone(&done);
    {
        let (handled, done) = (Arc::clone(&handled), Arc::clone(&done));
        within(
            "the second run",
            jobs.consume(
                "g",
                options,
                async move { stop.notified().await },
                move |event| {
                    let (handled, done) = (Arc::clone(&handled), Arc::clone(&done));
                    async move {
                        note(&handled, event.info());
                        if event.n == 2 {
                            done.notify_one();
                        }
                        Ok(())
                    }
                },
            ),
        )
        .await
        .expect("a clean stop");
    }
    let letters = letters(&jobs).await;
    assert_eq!(
        letters
            .iter()
            .map(|l| l.original_offset)
            .collect::<Vec<_>>(),
        vec![garbage],
        "{:?}",
        h.target
    );
    let final_offsets = committed(h.connector.as_ref(), &jobs, "g").await;
    assert_eq!(final_offsets, vec![Some(2)], "{:?}", h.target);
    assert_commit_rule(h.target, &final_offsets, &handled_set(&handled), &letters);
    h.finish().await;
}

async fn a_dead_letter_outage_then_a_stop_commits_nothing_past_the_event(mut h: Harness) {
    let stream = h.stream("outage");
    let outage = DeadLetterOutage::new(Arc::clone(&h.connector));
    let jobs: Transport<Job> = transport(outage.clone(), &stream, 1).await;
    let garbage = publish_raw(h.connector.as_ref(), &jobs, 0, b"\xff\xff", Headers::new()).await;
    jobs.publish(&job(1)).await.unwrap();
    outage.hooks().set_down(true);

    let handled = Handled::default();
    let options = ConsumeOptions {
        retry: RetryPolicy::fixed(3, Duration::from_millis(1)),
        ..ConsumeOptions::default()
    };
    let shutdown = {
        let outage = Arc::clone(&outage);
        async move { outage.hooks().wait_for_failure().await }
    };
    {
        let handled = Arc::clone(&handled);
        within(
            "the runner stops during the outage",
            jobs.consume("g", options.clone(), shutdown, move |event| {
                let handled = Arc::clone(&handled);
                async move {
                    note(&handled, event.info());
                    Ok(())
                }
            }),
        )
        .await
        .expect("a clean stop");
    }
    assert!(outage.hooks().failures() > 0);
    let after_stop = committed(h.connector.as_ref(), &jobs, "g").await;
    let no_letters = letters(&jobs).await;
    assert!(no_letters.is_empty(), "{:?}", h.target);
    assert_commit_rule(h.target, &after_stop, &handled_set(&handled), &no_letters);

    // The outage ends: the next run dead-letters the event, then handles job 1.
    outage.hooks().set_down(false);
    let done = Arc::new(Notify::new());
    let stop = Arc::clone(&done);
    {
        let (handled, done) = (Arc::clone(&handled), Arc::clone(&done));
        within(
            "the second run",
            jobs.consume(
                "g",
                options,
                async move { stop.notified().await },
                move |event| {
                    let (handled, done) = (Arc::clone(&handled), Arc::clone(&done));
                    async move {
                        note(&handled, event.info());
                        done.notify_one();
                        Ok(())
                    }
                },
            ),
        )
        .await
        .expect("a clean stop");
    }
    let letters = letters(&jobs).await;
    assert_eq!(
        letters
            .iter()
            .map(|l| l.original_offset)
            .collect::<Vec<_>>(),
        vec![garbage],
        "{:?}",
        h.target
    );
    let final_offsets = committed(h.connector.as_ref(), &jobs, "g").await;
    assert_eq!(final_offsets, vec![Some(1)], "{:?}", h.target);
    assert_commit_rule(h.target, &final_offsets, &handled_set(&handled), &letters);
    h.finish().await;
}

/// Takes the next item, if one comes within a short wait: acks deliveries (recording
/// them), drops decode errors undecided (what `filter_map(Result::ok)` or `item?` do).
async fn take_dropping_errors<E: Send + 'static>(
    subscription: &mut Subscription<E>,
    handled: &mut BTreeSet<(u32, u64)>,
) -> bool {
    match tokio::time::timeout(Duration::from_millis(300), subscription.next()).await {
        Ok(Some(Ok(delivery))) => {
            handled.insert((delivery.info().partition, delivery.info().offset));
            delivery.ack().await.unwrap();
            true
        }
        Ok(Some(Err(Error::Decode(error)))) => {
            drop(error);
            true
        }
        Ok(Some(Err(other))) => panic!("unexpected error item: {other}"),
        Ok(None) | Err(_) => false,
    }
}

async fn a_dropped_decode_error_is_not_committed(mut h: Harness) {
    let jobs = jobs(&mut h, "dropped", 1).await;
    let group = format!("dropped-{:?}", h.target);
    publish_raw(h.connector.as_ref(), &jobs, 0, b"\xff\xff", Headers::new()).await;
    jobs.publish(&job(1)).await.unwrap();
    jobs.publish(&job(2)).await.unwrap();
    let mut subscription = jobs.subscribe(&group).await.unwrap();
    let mut handled = BTreeSet::new();
    // What `item?` in a task or `filter_map(Result::ok)` does: drop the error.
    match within("the error item", subscription.next()).await.unwrap() {
        Err(Error::Decode(error)) => drop(error),
        other => panic!("{:?}: expected a decode error, got {other:?}", h.target),
    }
    // Its partition is held: nothing after it is delivered, nothing is committed.
    let held = subscription.held_partitions();
    assert_eq!(held.len(), 1, "{:?}", h.target);
    assert_eq!((held[0].partition, held[0].offset), (0, 0));
    assert_eq!(jobs.held_partitions(&group), held);
    let gauge = tests::metric_value(
        metric_names::PARTITION_HELD,
        &[
            ("messaging_destination_name", "jobs"),
            ("messaging_consumer_group_name", &group),
            ("partition", "0"),
        ],
    );
    assert_eq!(gauge, 1.0, "{:?}: the held-partition gauge", h.target);
    for _ in 0..2 {
        if !take_dropping_errors(&mut subscription, &mut handled).await {
            break;
        }
    }
    subscription.commit().await.unwrap();
    subscription.close().await.unwrap();
    let offsets = committed(h.connector.as_ref(), &jobs, &group).await;
    assert_eq!(offsets, vec![None], "{:?}", h.target);
    assert_commit_rule(h.target, &offsets, &handled, &[]);
    assert!(
        jobs.held_partitions(&group).is_empty(),
        "a closed subscription holds nothing"
    );

    // The next subscription gets it again; skipping it is an explicit decision.
    let mut subscription = jobs.subscribe(&group).await.unwrap();
    match within("the error item again", subscription.next())
        .await
        .unwrap()
    {
        Err(Error::Decode(error)) => {
            assert_eq!(error.offset, 0);
            error.skip().await.unwrap();
        }
        other => panic!(
            "{:?}: expected the decode error again, got {other:?}",
            h.target
        ),
    }
    for n in 1..3 {
        let delivery = within("the next job", subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivery.n, n);
        delivery.ack().await.unwrap();
    }
    subscription.close().await.unwrap();
    assert_eq!(
        committed(h.connector.as_ref(), &jobs, &group).await,
        vec![Some(2)]
    );
    h.finish().await;
}

async fn a_newer_schema_version_holds_its_partition(mut h: Harness) {
    let jobs = jobs(&mut h, "newer", 1).await;
    jobs.publish(&job(0)).await.unwrap();
    let v3 = postcard::to_allocvec(&JobV3 {
        key: "k".into(),
        n: 1,
        priority: 9,
    })
    .unwrap();
    let newer = publish_raw(h.connector.as_ref(), &jobs, 0, &v3, headers(3)).await;
    jobs.publish(&job(2)).await.unwrap();

    // The old consumer (version 2) meets version 3: it neither skips nor dead-letters
    // it, even told to skip what it drops undecided.
    let options = SubscriptionOptions {
        undecided: Undecided::Skip,
        redelivery_backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(40)),
        ..SubscriptionOptions::default()
    };
    let mut subscription = jobs
        .subscribe_with("g", StartPosition::Earliest, options)
        .await
        .unwrap();
    let first = within("job 0", subscription.next()).await.unwrap().unwrap();
    assert_eq!(first.n, 0);
    first.ack().await.unwrap();
    // Dropped undecided three times: held each time, delivered again after the backoff.
    for attempt in 1..=3 {
        match within("the newer event", subscription.next())
            .await
            .unwrap()
        {
            Err(Error::Decode(mut error)) => {
                assert!(error.is_newer_schema_version(), "{error}");
                assert_eq!(error.offset, newer);
                assert_eq!(
                    error.take_delivery().map(|raw| raw.attempt()),
                    Some(attempt)
                );
            }
            other => panic!("{:?}: expected the newer event, got {other:?}", h.target),
        }
        let held = subscription.held_partitions();
        assert_eq!(held.len(), 1, "{:?}", h.target);
        assert_eq!(held[0].offset, newer);
        assert!(
            held[0].reason.contains("schema version 3"),
            "{}",
            held[0].reason
        );
    }
    subscription.commit().await.unwrap();
    subscription.close().await.unwrap();
    let offsets = committed(h.connector.as_ref(), &jobs, "g").await;
    assert!(
        offsets[0].is_none_or(|c| c < newer),
        "{:?}: the group was committed past the newer event: {offsets:?}",
        h.target
    );

    // A consumer that knows version 3 takes over and gets it.
    let upgraded: Transport<JobV3> = transport(Arc::clone(&h.connector), jobs.stream(), 1)
        .await
        .with_upcasters(Upcasters::new().register("job", 2, |v2: Job| JobV3 {
            key: v2.key,
            n: v2.n,
            priority: 0,
        }));
    let mut subscription = upgraded.subscribe("g").await.unwrap();
    let first = within("the newer event", subscription.next())
        .await
        .unwrap()
        .expect("decodable by the newer consumer");
    assert_eq!(
        (first.info().offset, first.n, first.priority),
        (newer, 1, 9),
        "{:?}",
        h.target
    );
    first.ack().await.unwrap();
    let second = within("the next event", subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.n, 2);
    second.ack().await.unwrap();
    subscription.close().await.unwrap();
    h.finish().await;
}

async fn the_runner_does_not_dead_letter_a_newer_schema_version(mut h: Harness) {
    let jobs = jobs(&mut h, "newer-runner", 1).await;
    let v3 = postcard::to_allocvec(&JobV3 {
        key: "k".into(),
        n: 0,
        priority: 1,
    })
    .unwrap();
    publish_raw(h.connector.as_ref(), &jobs, 0, &v3, headers(3)).await;
    jobs.publish(&job(1)).await.unwrap();
    let handled = Handled::default();
    let group_name = format!("newer-runner-{:?}", h.target);
    {
        let handled = Arc::clone(&handled);
        let group = group_name.clone();
        let dead_letters = jobs
            .dead_letters(&DeadLetterConfig::default())
            .await
            .unwrap();
        // Stop once the runner holds the partition (or dead-lettered the event).
        let (watch_jobs, group) = (jobs.clone(), group.clone());
        let shutdown = async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                if !watch_jobs.held_partitions(&group).is_empty()
                    || dead_letters.depth().await.unwrap() > 0
                {
                    return;
                }
            }
        };
        let report = within(
            "the runner",
            jobs.consume(
                &group_name,
                ConsumeOptions::default(),
                shutdown,
                move |event| {
                    let handled = Arc::clone(&handled);
                    async move {
                        note(&handled, event.info());
                        Ok(())
                    }
                },
            ),
        )
        .await
        .unwrap();
        assert!(report.held >= 1, "{:?}: {report:?}", h.target);
        assert_eq!(report.dead_lettered, 0);
    }
    assert!(
        jobs.held_partitions(&group_name).is_empty(),
        "a stopped runner holds nothing"
    );
    assert!(
        handled_set(&handled).is_empty(),
        "job 1 waits behind the held event"
    );
    let letters = letters(&jobs).await;
    assert!(
        letters.is_empty(),
        "{:?}: a newer version was dead-lettered",
        h.target
    );
    let offsets = committed(h.connector.as_ref(), &jobs, &group_name).await;
    assert_eq!(offsets, vec![None], "{:?}", h.target);
    h.finish().await;
}

async fn an_older_version_without_upcaster_is_a_decode_error(mut h: Harness) {
    let jobs = jobs(&mut h, "no-upcaster", 1).await;
    let v1 = postcard::to_allocvec(&JobV1 {
        key: "k".into(),
        n: 7,
    })
    .unwrap();
    publish_raw(h.connector.as_ref(), &jobs, 0, &v1, headers(1)).await;
    let mut subscription = jobs.subscribe("g").await.unwrap();
    match within("the old event", subscription.next()).await.unwrap() {
        Err(Error::Decode(e)) => {
            // The reason is the error's source (Display does not repeat it).
            let text = error_chain(&e).to_string();
            assert!(
                text.contains("upcaster") && text.contains("version 1") && text.contains("2"),
                "{:?}: {text}",
                h.target
            );
        }
        Ok(delivery) => panic!(
            "{:?}: a version 1 event was decoded as version 2 without an upcaster: {:?}",
            h.target, *delivery
        ),
        Err(other) => panic!("{other}"),
    }
    subscription.close().await.unwrap();
    h.finish().await;
}

async fn max_in_flight_is_a_hard_limit(mut h: Harness) {
    let jobs = jobs(&mut h, "in-flight", 1).await;
    let batch: Vec<Job> = (0..40).map(job).collect();
    jobs.publish_batch(&batch).await.unwrap();
    let options = SubscriptionOptions {
        batch_size: 16,
        max_in_flight: 12,
        ..SubscriptionOptions::default()
    };
    let mut subscription = jobs
        .subscribe_with("g", StartPosition::Earliest, options)
        .await
        .unwrap();
    let mut seen = 0;
    while seen < 40 {
        let mut held = Vec::new();
        while held.len() < 12 && seen + held.len() < 40 {
            held.push(
                within("a delivery", subscription.next())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        if held.len() == 12 {
            assert!(
                subscription.next().now_or_never().is_none(),
                "{:?}: a 13th delivery was handed out with 12 unacknowledged (max_in_flight 12)",
                h.target
            );
        }
        seen += held.len();
        for delivery in held {
            delivery.ack().await.unwrap();
        }
    }
    subscription.close().await.unwrap();
    h.finish().await;
}

/// Takes up to `n` deliveries, each if it comes within a short wait.
async fn take_briefly(
    subscription: &mut Subscription<Job>,
    held: &mut Vec<Delivery<Job>>,
    seen: &mut BTreeSet<u64>,
    n: usize,
) {
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_millis(100), subscription.next()).await {
            Ok(item) => {
                let delivery = item.unwrap().unwrap();
                seen.insert(delivery.n);
                held.push(delivery);
            }
            Err(_) => return,
        }
    }
}

async fn in_flight_accounting_survives_rebalances(mut h: Harness) {
    const EVENTS: usize = 120;
    // One partition: the first member keeps it through every rebalance, and each
    // new generation makes it restart after the last commit, under the deliveries
    // this member still holds.
    let jobs = jobs(&mut h, "rebalance", 1).await;
    let batch: Vec<Job> = (0..EVENTS as u64).map(job).collect();
    jobs.publish_batch(&batch).await.unwrap();
    let options = SubscriptionOptions {
        // One message per fetch: the limit is checked before each one.
        batch_size: 1,
        max_in_flight: 8,
        ..SubscriptionOptions::default()
    };
    let mut subscription = jobs
        .subscribe_with("g", StartPosition::Earliest, options)
        .await
        .unwrap();
    let other = h.another().await;
    let group = GroupName::new("g").unwrap();
    let mut seen = BTreeSet::new();
    let mut held = Vec::new();
    for round in 0..8 {
        // Nothing is in hand: the next delivery must come (a stalled subscription
        // fails here).
        let first = within(
            &format!(
                "a delivery after {} of {EVENTS} (round {round})",
                seen.len()
            ),
            subscription.next(),
        )
        .await
        .unwrap()
        .unwrap();
        seen.insert(first.n);
        held.push(first);
        take_briefly(&mut subscription, &mut held, &mut seen, 1).await;
        // Two rebalances while deliveries are in flight: a member joins, and leaves;
        // this member keeps reading (its partition restarts after the last commit,
        // under the deliveries it holds).
        let member = within(
            "another member joins",
            other.join_group(jobs.stream(), jobs.topic(), &group, StartPosition::Earliest),
        )
        .await
        .unwrap();
        take_briefly(&mut subscription, &mut held, &mut seen, 2).await;
        within("the member leaves", member.leave()).await.unwrap();
        take_briefly(&mut subscription, &mut held, &mut seen, 2).await;
        for delivery in held.drain(..) {
            delivery.ack().await.unwrap();
        }
    }
    // Everything is acknowledged: the subscription hands out max_in_flight
    // deliveries at once again, as at the start.
    while held.len() < 8 {
        let next = within(
            &format!(
                "delivery {} of 8 with {} held after the rebalances",
                held.len() + 1,
                held.len()
            ),
            subscription.next(),
        )
        .await
        .unwrap()
        .unwrap();
        seen.insert(next.n);
        held.push(next);
    }
    for delivery in held.drain(..) {
        delivery.ack().await.unwrap();
    }
    while seen.len() < EVENTS {
        let next = within("the rest", subscription.next())
            .await
            .unwrap()
            .unwrap();
        seen.insert(next.n);
        next.ack().await.unwrap();
    }
    subscription.close().await.unwrap();
    h.finish().await;
}

/// A fingerprint no version of `Job` has.
const FOREIGN_FINGERPRINT: &str = "0123456789abcdef";

/// Publishes a version 2 job whose fingerprint header is another shape's.
async fn publish_mismatched(connector: &dyn IggyConnector, jobs: &Transport<Job>) -> u64 {
    let mut headers = headers(2);
    headers
        .insert_str(
            rustok_iggy::metadata::header::SCHEMA_FINGERPRINT,
            FOREIGN_FINGERPRINT,
        )
        .unwrap();
    publish_raw(connector, jobs, 0, &job(0).encode().unwrap(), headers).await
}

/// The runner dead-letters a message whose schema fingerprint does not match, and
/// commits past it only once the letter is confirmed: during a dead-letter outage
/// nothing is committed past it.
async fn the_runner_dead_letters_a_schema_mismatch_before_committing(mut h: Harness) {
    let stream = h.stream("mismatch");
    let outage = DeadLetterOutage::new(Arc::clone(&h.connector));
    let jobs: Transport<Job> = transport(outage.clone(), &stream, 1).await;
    let mismatched = publish_mismatched(h.connector.as_ref(), &jobs).await;
    jobs.publish(&job(1)).await.unwrap();
    outage.hooks().set_down(true);

    let handled = Handled::default();
    let options = ConsumeOptions {
        retry: RetryPolicy::fixed(3, Duration::from_millis(1)),
        ..ConsumeOptions::default()
    };
    let shutdown = {
        let outage = Arc::clone(&outage);
        async move { outage.hooks().wait_for_failure().await }
    };
    {
        let handled = Arc::clone(&handled);
        within(
            "the runner stops during the outage",
            jobs.consume("g", options.clone(), shutdown, move |event| {
                let handled = Arc::clone(&handled);
                async move {
                    note(&handled, event.info());
                    Ok(())
                }
            }),
        )
        .await
        .expect("a clean stop");
    }
    assert!(outage.hooks().failures() > 0);
    assert!(
        !handled_set(&handled).contains(&(0, mismatched)),
        "{:?}: the mismatched message reached the handler",
        h.target
    );
    let after_stop = committed(h.connector.as_ref(), &jobs, "g").await;
    assert_eq!(after_stop, vec![None], "{:?}", h.target);
    assert!(letters(&jobs).await.is_empty(), "{:?}", h.target);

    outage.hooks().set_down(false);
    let done = Arc::new(Notify::new());
    let stop = Arc::clone(&done);
    {
        let (handled, done) = (Arc::clone(&handled), Arc::clone(&done));
        within(
            "the second run",
            jobs.consume(
                "g",
                options,
                async move { stop.notified().await },
                move |event| {
                    let (handled, done) = (Arc::clone(&handled), Arc::clone(&done));
                    async move {
                        note(&handled, event.info());
                        done.notify_one();
                        Ok(())
                    }
                },
            ),
        )
        .await
        .expect("a clean stop");
    }
    let letters = letters(&jobs).await;
    assert_eq!(
        letters
            .iter()
            .map(|l| l.original_offset)
            .collect::<Vec<_>>(),
        vec![mismatched],
        "{:?}",
        h.target
    );
    assert!(
        letters[0].error.contains(FOREIGN_FINGERPRINT),
        "{:?}: the letter names the fingerprint found: {}",
        h.target,
        letters[0].error
    );
    assert_eq!(handled_set(&handled), BTreeSet::from([(0, 1)]));
    let final_offsets = committed(h.connector.as_ref(), &jobs, "g").await;
    assert_eq!(final_offsets, vec![Some(1)], "{:?}", h.target);
    assert_commit_rule(h.target, &final_offsets, &handled_set(&handled), &letters);
    h.finish().await;
}

/// On a plain subscription, a schema mismatch dropped undecided holds its
/// partition: nothing after it is delivered and nothing is committed; the next
/// subscription gets the same refusal again.
async fn a_dropped_schema_mismatch_holds_its_partition(mut h: Harness) {
    let jobs = jobs(&mut h, "mismatchheld", 1).await;
    let group = format!("mismatch-{:?}", h.target);
    publish_mismatched(h.connector.as_ref(), &jobs).await;
    jobs.publish(&job(1)).await.unwrap();
    let mut subscription = jobs.subscribe(&group).await.unwrap();
    let mut handled = BTreeSet::new();
    match within("the error item", subscription.next()).await.unwrap() {
        Err(Error::Decode(error)) => {
            assert!(
                matches!(
                    error.failure,
                    rustok_iggy::consume::DecodeFailure::SchemaMismatch { .. }
                ),
                "{:?}: {:?}",
                h.target,
                error.failure
            );
            drop(error);
        }
        other => panic!("{:?}: expected a decode error, got {other:?}", h.target),
    }
    let held = subscription.held_partitions();
    assert_eq!(held.len(), 1, "{:?}", h.target);
    assert_eq!((held[0].partition, held[0].offset), (0, 0));
    for _ in 0..2 {
        if !take_dropping_errors(&mut subscription, &mut handled).await {
            break;
        }
    }
    assert!(handled.is_empty(), "{:?}: {handled:?}", h.target);
    subscription.commit().await.unwrap();
    subscription.close().await.unwrap();
    assert_eq!(
        committed(h.connector.as_ref(), &jobs, &group).await,
        vec![None],
        "{:?}",
        h.target
    );
    let mut subscription = jobs.subscribe(&group).await.unwrap();
    match within("the error item again", subscription.next())
        .await
        .unwrap()
    {
        Err(Error::Decode(error)) => {
            assert_eq!(error.offset, 0);
            assert!(matches!(
                error.failure,
                rustok_iggy::consume::DecodeFailure::SchemaMismatch { .. }
            ));
        }
        other => panic!("{:?}: expected the refusal again, got {other:?}", h.target),
    }
    subscription.close().await.unwrap();
    h.finish().await;
}

macro_rules! both_modes {
    ($flavor:literal: $($case:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test(flavor = $flavor)] async fn $case() { super::run(super::Target::Embedded, super::$case).await; } )*
        }
        mod listener {
            $( #[tokio::test(flavor = $flavor)] async fn $case() { super::run(super::Target::Listener, super::$case).await; } )*
        }
        mod external {
            $( #[tokio::test(flavor = $flavor)] async fn $case() { super::run(super::Target::External, super::$case).await; } )*
        }
    };
}

both_modes!(
    "current_thread":
    a_stop_never_commits_a_queued_undecodable_event,
    a_stop_while_dispatching_never_commits_an_undecodable_event,
    a_dead_letter_outage_then_a_stop_commits_nothing_past_the_event,
    a_dropped_decode_error_is_not_committed,
    the_runner_dead_letters_a_schema_mismatch_before_committing,
    a_dropped_schema_mismatch_holds_its_partition,
    a_newer_schema_version_holds_its_partition,
    the_runner_does_not_dead_letter_a_newer_schema_version,
    an_older_version_without_upcaster_is_a_decode_error,
    max_in_flight_is_a_hard_limit,
    in_flight_accounting_survives_rebalances,
);
