//! Retry-tier chaos, on both connectors: 400 events over two partitions, a handler
//! that fails at random (seeded: `RUSTOK_CHAOS_SEED` replays a run; the outcome of
//! each event's attempt depends only on the seed, the event and the attempt), retry
//! tiers of 2 ms and 5 ms, and the runner stopped at random points (after a seeded
//! number of handler calls) and started again until every event reached its end.
//!
//! `tier_chaos_across_broker_restarts` adds three broker restarts on the same data
//! directory, each in the middle of a run (after a seeded share of its handler
//! calls): the remote connector rides the restart out under the running runner (the
//! listener comes back on the same port); in process, where the connector is the
//! broker, the runner is stopped, the broker restarted and the runner started again
//! on it (as in `chaos.rs`).
//!
//! What "exactly once" means here. Delivery is at-least-once: a stop between a
//! handler's success and the commit that covers it may hand the event to the
//! handler again after the restart. So the handled side is counted by event id
//! (the idempotence consumers are asked for): an event counts as handled when the
//! handler accepted it at least once; the number of repeated successes is printed,
//! not asserted. The dead-letter side is exact: every dead letter is one stored
//! record. The test asserts that every published event is **either** handled
//! **or** in the dead-letter topic, never both and never neither, that no event
//! has two dead letters, and that the group is committed to the end of the source
//! topic and of every tier topic (nothing is left behind in a tier).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{
    HandlerError, RetryPolicy,
    connector::{GroupName, IggyConnector, StreamName, TopicName},
    consume::ConsumeOptions,
    dead_letter::DeadLetterConfig,
};
use serde::{Deserialize, Serialize};
use tests::conformance::Harness;
use tests::within;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::chaos::{Mode, World};

const EVENTS: u64 = 400;
const PARTITIONS: u32 = 2;
/// Attempts an event gets: the source, then one per tier.
const LAST_ATTEMPT: u32 = 3;
/// Broker restarts of `tier_chaos_across_broker_restarts`, at runs 2, 4 and 6.
const RESTARTS: u64 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "tierchaos", key = tenant)]
struct Job {
    tenant: String,
    seq: u64,
}

fn mix(mut x: u64) -> u64 {
    // SplitMix64: stable, seedable, no dependency.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Retryable,
    Permanent,
}

fn outcome(seed: u64, seq: u64, attempt: u32) -> Outcome {
    if mix(seed ^ mix(seq)).is_multiple_of(25) {
        return Outcome::Permanent;
    }
    if mix(seed ^ mix(seq) ^ mix(u64::from(attempt) << 40)) % 100 < 35 {
        Outcome::Retryable
    } else {
        Outcome::Ok
    }
}

#[derive(Debug, Default)]
struct Ledger {
    /// Successful handler calls per event id.
    handled: BTreeMap<Uuid, u32>,
    /// Events that reached their end (handled, or failed for the last time).
    ended: BTreeSet<Uuid>,
    /// Handler calls of the current run.
    calls: u64,
}

/// Where a chaos run happens: a conformance target (its broker is not restarted), or
/// a broker of the test's own that is restarted on its data directory.
enum Site {
    Harness(Box<Harness>),
    Own {
        world: World,
        connector: Arc<dyn IggyConnector>,
    },
}

impl Site {
    async fn own(mode: Mode) -> Self {
        let world = World::open(mode).await;
        let connector = world.consumer_connector().await;
        Self::Own { world, connector }
    }

    fn label(&self) -> String {
        match self {
            Self::Harness(h) => format!("{:?}", h.target),
            Self::Own { world, .. } => format!("{:?} with broker restarts", world.mode),
        }
    }

    fn connector(&self) -> Arc<dyn IggyConnector> {
        match self {
            Self::Harness(h) => Arc::clone(&h.connector),
            Self::Own { connector, .. } => Arc::clone(connector),
        }
    }

    fn stream(&mut self) -> StreamName {
        match self {
            Self::Harness(h) => h.stream("tierchaos"),
            Self::Own { .. } => StreamName::new("tierchaos").unwrap(),
        }
    }

    /// Whether the runner rides a broker restart out (remote), or stops with the
    /// broker (in process); `None` when the broker is not restarted.
    fn rides_restarts_out(&self) -> Option<bool> {
        match self {
            Self::Harness(_) => None,
            Self::Own { world, .. } => Some(world.mode == Mode::Listener),
        }
    }

    /// Stops the broker and opens it again on the same directory; in process, the
    /// connector is the new broker.
    async fn restart_broker(&mut self) {
        if let Self::Own { world, connector } = self {
            world.restart_broker().await;
            if world.mode == Mode::Embedded {
                *connector = world.consumer_connector().await;
            }
        }
    }

    async fn finish(self) {
        match self {
            Self::Harness(h) => (*h).finish().await,
            Self::Own { world, connector } => {
                within("shut the connector down", connector.shutdown())
                    .await
                    .unwrap();
                within("shut the broker down", world.broker.shutdown())
                    .await
                    .unwrap();
            }
        }
    }
}

async fn jobs_on(connector: Arc<dyn IggyConnector>, stream: StreamName) -> Transport<Job> {
    within(
        "the topic is ready",
        Transport::<Job>::new(
            connector,
            TransportOptions {
                stream,
                partitions: PARTITIONS,
                ..TransportOptions::default()
            },
        ),
    )
    .await
    .unwrap()
}

async fn tier_chaos(h: Harness) {
    chaos(Site::Harness(Box::new(h))).await;
}

async fn chaos(mut site: Site) {
    let seed = std::env::var("RUSTOK_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_u64);
    println!("tier chaos seed {seed} on {}", site.label());
    let stream = site.stream();
    let mut jobs = jobs_on(site.connector(), stream.clone()).await;
    let mut published = BTreeSet::new();
    let batch: Vec<Job> = (0..EVENTS)
        .map(|seq| Job {
            tenant: format!("t{}", seq % 7),
            seq,
        })
        .collect();
    for receipt in jobs.publish_batch(&batch).await.unwrap() {
        published.insert(receipt.event_id);
    }

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let changed = Arc::new(Notify::new());
    let mut runs = 0u64;
    let mut restarts = 0u64;
    let mut dead_lettered = 0u64;
    loop {
        runs += 1;
        assert!(runs < 200, "the chaos run does not converge");
        let budget = 10 + mix(seed ^ runs) % 50;
        ledger.lock().unwrap_or_else(PoisonError::into_inner).calls = 0;
        let restart = site
            .rides_restarts_out()
            .filter(|_| restarts < RESTARTS && runs.is_multiple_of(2));
        let (cut, mut cut_off) = watch::channel(false);
        let stop = {
            let (ledger, changed) = (Arc::clone(&ledger), Arc::clone(&changed));
            async move {
                loop {
                    let notified = changed.notified();
                    {
                        let ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
                        if ledger.calls >= budget || ledger.ended.len() as u64 == EVENTS {
                            return;
                        }
                    }
                    tokio::select! {
                        () = notified => {}
                        _ = cut_off.wait_for(|cut| *cut) => return,
                    }
                }
            }
        };
        let handler = {
            let (ledger, changed) = (Arc::clone(&ledger), Arc::clone(&changed));
            move |job: rustok_iggy::consume::Received<Job>| {
                let (ledger, changed) = (Arc::clone(&ledger), Arc::clone(&changed));
                async move {
                    let info = job.info();
                    let result = outcome(seed, job.seq, info.attempt);
                    {
                        let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
                        ledger.calls += 1;
                        match result {
                            Outcome::Ok => {
                                *ledger.handled.entry(info.event_id).or_default() += 1;
                                ledger.ended.insert(info.event_id);
                            }
                            Outcome::Permanent => {
                                ledger.ended.insert(info.event_id);
                            }
                            Outcome::Retryable if info.attempt >= LAST_ATTEMPT => {
                                ledger.ended.insert(info.event_id);
                            }
                            Outcome::Retryable => {}
                        }
                    }
                    changed.notify_waiters();
                    match result {
                        Outcome::Ok => Ok(()),
                        Outcome::Retryable => Err(HandlerError::retryable("flaky dependency")),
                        Outcome::Permanent => Err(HandlerError::permanent("invalid job")),
                    }
                }
            }
        };
        let options = ConsumeOptions {
            retry: RetryPolicy::tiers([Duration::from_millis(2), Duration::from_millis(5)]),
            ..ConsumeOptions::default()
        };
        let runner = {
            let jobs = jobs.clone();
            tokio::spawn(async move { jobs.consume("workers", options, stop, handler).await })
        };
        if let Some(rides_out) = restart {
            // Mid-run: after a seeded share of the run's handler calls.
            let at = 1 + mix(seed ^ runs ^ 0xB20C) % budget;
            within("the restart point", async {
                loop {
                    let notified = changed.notified();
                    {
                        let ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
                        if ledger.calls >= at || ledger.ended.len() as u64 == EVENTS {
                            return;
                        }
                    }
                    notified.await;
                }
            })
            .await;
            if !rides_out {
                cut.send_replace(true);
                let report = within("a chaos run", runner)
                    .await
                    .unwrap()
                    .expect("the runner stops cleanly");
                dead_lettered += report.dead_lettered;
                site.restart_broker().await;
                restarts += 1;
                jobs = jobs_on(site.connector(), stream.clone()).await;
                continue;
            }
            site.restart_broker().await;
            restarts += 1;
        }
        let report = within("a chaos run", runner)
            .await
            .unwrap()
            .expect("the runner stops cleanly");
        dead_lettered += report.dead_lettered;
        if ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ended
            .len() as u64
            == EVENTS
        {
            break;
        }
    }

    let letters = jobs
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap()
        .list(10_000)
        .await
        .unwrap();
    let mut letter_count: BTreeMap<Uuid, u32> = BTreeMap::new();
    for letter in &letters {
        assert_eq!(letter.original_topic, "tierchaos");
        *letter_count.entry(letter.event_id).or_default() += 1;
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(PoisonError::into_inner));
    for id in &published {
        let handled = ledger.handled.contains_key(id);
        let letters = letter_count.get(id).copied().unwrap_or(0);
        assert!(letters <= 1, "event {id} has {letters} dead letters");
        assert!(
            handled != (letters == 1),
            "event {id}: handled {handled}, dead letters {letters}"
        );
    }
    assert_eq!(
        letter_count.len() as u64,
        dead_lettered,
        "the reports count each dead letter"
    );
    let repeated: u32 = ledger.handled.values().map(|n| n - 1).sum();
    println!(
        "{}: {runs} runs, {restarts} broker restarts, {} handled ({repeated} repeated \
         successes), {} dead letters",
        site.label(),
        ledger.handled.len(),
        letters.len()
    );
    if site.rides_restarts_out().is_some() {
        assert_eq!(restarts, RESTARTS, "every planned broker restart happened");
    }

    // Nothing is left uncommitted in the source or in a tier.
    let group = GroupName::new("workers").unwrap();
    let mut topics = vec![jobs.topic().clone()];
    for n in 1..LAST_ATTEMPT {
        topics.push(TopicName::new(format!("tierchaos.workers.retry.{n}")).unwrap());
    }
    for topic in &topics {
        let info = jobs
            .connector()
            .topic_info(jobs.stream(), topic)
            .await
            .unwrap()
            .expect("the topic exists");
        let committed = jobs
            .connector()
            .committed_offsets(jobs.stream(), topic, &group)
            .await
            .unwrap();
        for (partition, next) in info.next_offsets.iter().enumerate() {
            let expected = next.checked_sub(1);
            assert_eq!(
                committed.get(partition).copied().flatten(),
                expected,
                "{topic} partition {partition} is committed to its end"
            );
        }
    }
    site.finish().await;
}

tests::both_modes!(tier_chaos);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_tier_chaos_across_broker_restarts() {
    chaos(Site::own(Mode::Embedded).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_tier_chaos_across_broker_restarts() {
    chaos(Site::own(Mode::Listener).await).await;
}
