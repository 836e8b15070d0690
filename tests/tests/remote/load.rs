//! Load over TCP: 8 producers and 4 consumer-group members, all
//! `RemoteConnector`s, against an embedded broker running as a separate process
//! (`load-broker`), whose resident memory is read from `/proc/<pid>/status` during
//! and after the run. Three members join at the start, the fourth once a quarter
//! of the events went through: the group rebalances under load. Members commit
//! after handling each batch.
//!
//! - nothing is lost: every acknowledged event is consumed at least once;
//! - duplicates only where redelivery allows them: an event is delivered again
//!   only if its partition's committed offset had not reached it (a rebalance hands
//!   un-committed events to the new owner); a committed event is never delivered
//!   again. Duplicates are counted and printed;
//! - the broker's peak resident memory (`VmHWM`) stays under [`RSS_CEILING_MIB`].
//!
//! CI runs 100,000 events. The full run:
//!
//! ```sh
//! RUSTOK_IGGY_LOAD_EVENTS=1000000 cargo test --release -p tests --test remote load:: -- --nocapture
//! ```
//!
//! Every wait is bounded: the whole run by [`deadline`], each step by
//! [`tests::within`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustok_iggy_connector::{
    ConnectorError, GroupName, OutgoingMessage, PublishRequest, StartPosition, StreamName,
    TopicName, TopicSpec,
};
use tests::conformance::{open_remote, remote_config};
use tests::process::{BrokerOptions, BrokerProcess, status_kib};
use tests::wire::{PASSWORD, USERNAME};
use tests::within;
use tokio::sync::watch;

const PRODUCERS: u64 = 8;
const CONSUMERS: usize = 4;
const PARTITIONS: u32 = 8;
/// Messages per publish call.
const BATCH: u64 = 100;
/// Messages per group poll.
const POLL: u32 = 1_000;
/// Payload bytes per event.
const PAYLOAD: usize = 100;
/// Events of the CI run; `RUSTOK_IGGY_LOAD_EVENTS` overrides it.
const CI_EVENTS: u64 = 100_000;
/// The broker's peak resident memory may not pass this. Measured peaks (2-core
/// machine, see the README): 9.3 MiB in a debug build with 100,000 events, 9.7 MiB
/// with 1,000,000; 7.0 MiB in a release build with 1,000,000. The ceiling leaves
/// room (more cores, more threads and allocator arenas) while still catching
/// anything that keeps events in memory: 1,000,000 events of 100 bytes are 100 MB
/// of payload alone.
const RSS_CEILING_MIB: u64 = 64;

fn events() -> u64 {
    std::env::var("RUSTOK_IGGY_LOAD_EVENTS")
        .ok()
        .map(|v| v.parse().expect("RUSTOK_IGGY_LOAD_EVENTS is a number"))
        .unwrap_or(CI_EVENTS)
}

/// The whole run's bound: two minutes, plus a minute per 100,000 events.
fn deadline(events: u64) -> Duration {
    Duration::from_secs(120 + 60 * events.div_ceil(100_000))
}

// ---- what the consumers saw ---------------------------------------------------------

#[derive(Debug, Default)]
struct Seen {
    /// Deliveries per event id.
    deliveries: HashMap<u128, u32>,
    /// Distinct ids delivered.
    unique: u64,
    /// Deliveries in total.
    total: u64,
    /// Per partition, the highest offset whose commit succeeded.
    committed: BTreeMap<u32, u64>,
    /// Committed events delivered again (must stay empty).
    redelivered_committed: Vec<(u32, u64)>,
    /// Commits refused because a rebalance moved the partition.
    fenced_commits: u64,
    /// Other failed polls or commits, with the last message.
    errors: u64,
    last_error: Option<String>,
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

fn event_id(producer: u64, n: u64) -> u128 {
    (u128::from(producer + 1) << 64) | u128::from(n)
}

// ---- the run ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_producers_four_group_consumers_over_tcp() {
    let events = events();
    assert_eq!(
        events % (PRODUCERS * BATCH),
        0,
        "the event count is a multiple of {}",
        PRODUCERS * BATCH
    );
    let per_producer = events / PRODUCERS;
    let deadline = deadline(events);
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        env!("CARGO_BIN_EXE_load-broker"),
        dir.path(),
        BrokerOptions::default(),
    );
    let pid = broker.pid();
    let address = broker.address.to_string();
    let rss_start = status_kib(pid, "VmRSS");
    let config = remote_config(&address, USERNAME, PASSWORD);
    let stream = StreamName::new("load").unwrap();
    let topic = TopicName::new("events").unwrap();
    let group = GroupName::new("workers").unwrap();

    let admin = open_remote(&config).await;
    within(
        "create the topic",
        admin.ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), PARTITIONS)),
    )
    .await
    .expect("the topic");

    // Memory sampler: VmRSS every 50 ms until the end.
    let (stop_tx, stop_rx) = watch::channel(false);
    let rss_peak_sampled = Arc::new(AtomicU64::new(rss_start));
    let sampler = {
        let peak = Arc::clone(&rss_peak_sampled);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        peak.fetch_max(status_kib(pid, "VmRSS"), Ordering::Relaxed);
                    }
                    _ = stop.changed() => return,
                }
            }
        })
    };

    // Consumers first (they wait for events), each its own connector.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (done_tx, done_rx) = watch::channel(false);
    // Distinct events delivered so far: the last member joins once a quarter of
    // them went through, so that the group rebalances under load.
    let (progress_tx, progress_rx) = watch::channel(0u64);
    let mut consumers = Vec::new();
    for member in 0..CONSUMERS {
        let connector = open_remote(&config).await;
        let (stream, topic, group) = (stream.clone(), topic.clone(), group.clone());
        let seen = Arc::clone(&seen);
        let done_tx = done_tx.clone();
        let mut done = done_rx.clone();
        let progress_tx = progress_tx.clone();
        let mut progress = progress_rx.clone();
        consumers.push(tokio::spawn(async move {
            if member == CONSUMERS - 1 {
                // Bounded by the run's deadline.
                progress
                    .wait_for(|&delivered| delivered >= events / 4)
                    .await
                    .expect("the progress channel");
            }
            let consumer = within(
                "join the group",
                connector.join_group(&stream, &topic, &group, StartPosition::Earliest),
            )
            .await
            .expect("joined");
            loop {
                let batch = tokio::select! {
                    batch = consumer.poll(POLL) => batch,
                    _ = done.changed() => break,
                };
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(e) => {
                        let mut seen = lock(&seen);
                        seen.errors += 1;
                        seen.last_error = Some(format!("member {member} poll: {e}"));
                        continue;
                    }
                };
                // "Handle" the batch: record every delivery.
                let mut last: BTreeMap<u32, u64> = BTreeMap::new();
                {
                    let mut seen = lock(&seen);
                    for message in &batch {
                        if seen
                            .committed
                            .get(&message.partition)
                            .is_some_and(|&c| c >= message.offset)
                        {
                            seen.redelivered_committed
                                .push((message.partition, message.offset));
                        }
                        let count = seen.deliveries.entry(message.id).or_insert(0);
                        *count += 1;
                        if *count == 1 {
                            seen.unique += 1;
                        }
                        seen.total += 1;
                        let end = last.entry(message.partition).or_insert(message.offset);
                        *end = (*end).max(message.offset);
                    }
                }
                // Then commit the last handled offset of each partition.
                for (partition, offset) in last {
                    match consumer.commit(partition, offset).await {
                        Ok(()) => {
                            let mut seen = lock(&seen);
                            let committed = seen.committed.entry(partition).or_insert(offset);
                            *committed = (*committed).max(offset);
                        }
                        Err(ConnectorError::Fenced { .. }) => lock(&seen).fenced_commits += 1,
                        Err(e) => {
                            let mut seen = lock(&seen);
                            seen.errors += 1;
                            seen.last_error = Some(format!("member {member} commit: {e}"));
                        }
                    }
                }
                // Done when every event was delivered and every partition is
                // committed to its end (the partitions hold `events` in all).
                let seen = lock(&seen);
                progress_tx.send_replace(seen.unique);
                let committed: u64 = seen.committed.values().map(|c| c + 1).sum();
                if seen.unique >= events && committed >= events {
                    let _ = done_tx.send(true);
                }
            }
            within("leave", consumer.leave()).await.expect("leave");
            within("consumer shutdown", connector.shutdown())
                .await
                .expect("shutdown");
        }));
    }

    // Producers: batches of 100, balanced over the partitions.
    let started = Instant::now();
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let connector = open_remote(&config).await;
        let (stream, topic) = (stream.clone(), topic.clone());
        producers.push(tokio::spawn(async move {
            let mut acked = 0u64;
            for first in (0..per_producer).step_by(BATCH as usize) {
                let mut request = PublishRequest::new(stream.clone(), topic.clone());
                for n in first..first + BATCH {
                    let mut payload = format!("producer {producer} event {n} ").into_bytes();
                    payload.resize(PAYLOAD, b'.');
                    request = request
                        .message(OutgoingMessage::new(payload).with_id(event_id(producer, n)));
                }
                let receipt = within("publish", connector.publish(request))
                    .await
                    .unwrap_or_else(|e| panic!("producer {producer}: publish failed: {e}"));
                acked += u64::from(receipt.count);
            }
            within("producer shutdown", connector.shutdown())
                .await
                .expect("shutdown");
            acked
        }));
    }

    let run = async {
        let mut acked = 0;
        for producer in producers {
            acked += producer.await.expect("a producer");
        }
        let produced_in = started.elapsed();
        let rss_after_produce = status_kib(pid, "VmRSS");
        for consumer in consumers {
            consumer.await.expect("a consumer");
        }
        (acked, produced_in, rss_after_produce)
    };
    let (acked, produced_in, rss_after_produce) = match tokio::time::timeout(deadline, run).await {
        Ok(result) => result,
        Err(_) => panic!(
            "the run did not finish within {deadline:?}: {:?}",
            summary(&lock(&seen))
        ),
    };
    let consumed_in = started.elapsed();
    let _ = stop_tx.send(true);
    sampler.await.expect("the sampler");
    let rss_peak_kib = status_kib(pid, "VmHWM").max(rss_peak_sampled.load(Ordering::Relaxed));
    let rss_end_kib = status_kib(pid, "VmRSS");

    // Committed offsets at the end: every partition fully committed.
    let info = within("topic_info", admin.topic_info(&stream, &topic))
        .await
        .unwrap()
        .expect("the topic");
    let committed = within(
        "committed_offsets",
        admin.committed_offsets(&stream, &topic, &group),
    )
    .await
    .unwrap();
    within("admin shutdown", admin.shutdown()).await.unwrap();
    broker.stop();

    let seen = lock(&seen);
    let duplicates = seen.total - seen.unique;
    let rate = events as f64 / consumed_in.as_secs_f64();
    let figures = format!(
        "load: {events} events ({PRODUCERS} producers, {CONSUMERS} group members, {PARTITIONS} partitions, \
         debug_assertions={}): produced in {produced_in:.2?}, all consumed in {consumed_in:.2?} \
         = {rate:.0} events/s end to end; deliveries {} (duplicates {duplicates}, fenced commits {}, \
         errors {}); broker RSS start {} KiB, after producing {} KiB, peak (VmHWM) {} KiB, \
         sampled peak {} KiB, end {} KiB",
        cfg!(debug_assertions),
        seen.total,
        seen.fenced_commits,
        seen.errors,
        rss_start,
        rss_after_produce,
        rss_peak_kib,
        rss_peak_sampled.load(Ordering::Relaxed),
        rss_end_kib,
    );
    eprintln!("{figures}");

    assert_eq!(acked, events, "every publish was acknowledged");
    assert_eq!(
        info.next_offsets.iter().sum::<u64>(),
        events,
        "the broker stored exactly what was acknowledged"
    );
    // Nothing lost: every produced id was consumed.
    for producer in 0..PRODUCERS {
        for n in 0..per_producer {
            assert!(
                seen.deliveries.contains_key(&event_id(producer, n)),
                "event {n} of producer {producer} was never consumed"
            );
        }
    }
    assert_eq!(seen.unique, events, "no unknown ids");
    // Duplicates only where redelivery allows them.
    assert!(
        seen.redelivered_committed.is_empty(),
        "committed events delivered again: {:?}",
        &seen.redelivered_committed[..seen.redelivered_committed.len().min(10)]
    );
    assert_eq!(seen.errors, 0, "errors: {:?}", seen.last_error);
    // The group committed everything.
    for (partition, next) in info.next_offsets.iter().enumerate() {
        if *next > 0 {
            assert_eq!(
                committed[partition],
                Some(next - 1),
                "partition {partition} fully committed"
            );
        }
    }
    // Bounded memory.
    assert!(
        rss_peak_kib < RSS_CEILING_MIB * 1024,
        "the broker's peak RSS {rss_peak_kib} KiB passed the {RSS_CEILING_MIB} MiB ceiling"
    );
}

fn summary(seen: &Seen) -> String {
    format!(
        "unique {}, deliveries {}, committed {:?}, fenced {}, errors {} ({:?})",
        seen.unique, seen.total, seen.committed, seen.fenced_commits, seen.errors, seen.last_error
    )
}
