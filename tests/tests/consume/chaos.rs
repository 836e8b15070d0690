//! Consumer chaos: `consume()` with a dead-letter topic over 20,000 events (set
//! `RUSTOK_CHAOS_EVENTS` for more, `RUSTOK_CHAOS_SEED` to replay a run), on both
//! connectors (embedded, and the remote connector through the embedded broker's
//! listener), under seeded faults:
//!
//! - an undecodable payload about every 1,000 events;
//! - handlers that fail: retryable then fine, retryable for ever, permanent;
//! - two broker restarts (remote: the listener goes away under the running consumer;
//!   embedded: the broker in the process is shut down and opened again);
//! - a second member joining and leaving the group, four times;
//! - a dead-letter outage window;
//! - graceful stops at random points, each followed by a restart.
//!
//! Checked: at every stop, every offset at or below a committed offset was handled
//! or is in the dead-letter topic (committed offsets never pass an unsettled event);
//! at the end every event is handled or dead-lettered, none is missing, and the
//! group is committed to the end of every partition. The duplicate count
//! (at-least-once) is printed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{
    HandlerError, RetryPolicy, SubscriptionOptions,
    connector::{GroupName, IggyConnector},
    consume::{ConsumeOptions, ConsumeReport},
    dead_letter::DeadLetterConfig,
    testing::Observed,
};
use rustok_iggy_connector::{
    ConnectorConfig, DurabilityPolicy, EmbeddedConnector, OutgoingMessage, PublishRequest,
};
use serde::{Deserialize, Serialize};
use tests::conformance::{open_remote, remote_config};
use tests::faulty::DeadLetterOutage;
use tests::wire::{PASSWORD, USERNAME};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

const PARTITIONS: u32 = 4;
const GROUP: &str = "chaos";
/// How long one step (reaching a milestone, a restart) may take before the test fails.
const STEP: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", stream = "chaos", key = key, codec = "postcard")]
struct Job {
    key: String,
    n: u64,
}

/// What the handler does with job `n` (the same in every process and attempt).
fn behaviour(n: u64) -> Behaviour {
    if n % 997 == 13 {
        Behaviour::Permanent
    } else if n % 1499 == 7 {
        Behaviour::AlwaysRetryable
    } else if n % 331 == 5 {
        Behaviour::RetryableOnce
    } else {
        Behaviour::Fine
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Fine,
    RetryableOnce,
    AlwaysRetryable,
    Permanent,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// What is stored where: per (partition, offset), a job or an undecodable payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Job(u64),
    Garbage,
}

/// What the handlers saw, across every runner and process of the test.
#[derive(Debug, Default)]
struct Log {
    /// (partition, offset) handled successfully, with how many times.
    handled: HashMap<(u32, u64), u32>,
    /// Successful handler calls.
    calls: u64,
}

type Shared = Arc<(Mutex<Log>, Notify)>;

fn log(shared: &Shared) -> std::sync::MutexGuard<'_, Log> {
    shared.0.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Embedded,
    Listener,
}

/// The broker (with its listener in remote mode) and how consumers reach it.
pub(super) struct World {
    pub(super) mode: Mode,
    dir: tempfile::TempDir,
    pub(super) broker: Arc<EmbeddedConnector>,
    port: u16,
}

fn broker_config(dir: &std::path::Path, mode: Mode, port: u16) -> ConnectorConfig {
    let mut config = ConnectorConfig::embedded(dir);
    config.embedded.durability = DurabilityPolicy::EveryBatch;
    if mode == Mode::Listener {
        config.embedded.tcp_enabled = true;
        config.embedded.tcp_address = "127.0.0.1".into();
        config.embedded.tcp_port = port;
    }
    config
}

impl World {
    pub(super) async fn open(mode: Mode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(EmbeddedConnector::new());
        broker
            .connect(&broker_config(dir.path(), mode, 0))
            .await
            .unwrap();
        let port = broker.tcp_address().map_or(0, |a| a.port());
        Self {
            mode,
            dir,
            broker,
            port,
        }
    }

    /// Stops the broker and opens it again on the same directory (and port).
    pub(super) async fn restart_broker(&mut self) {
        tests::within("stop the broker", self.broker.shutdown())
            .await
            .unwrap();
        let broker = Arc::new(EmbeddedConnector::new());
        tokio::time::timeout(
            STEP,
            broker.connect(&broker_config(self.dir.path(), self.mode, self.port)),
        )
        .await
        .expect("the broker restarts in time")
        .unwrap();
        self.broker = broker;
    }

    /// A connector for a consumer: the broker itself, or a remote connector to it.
    pub(super) async fn consumer_connector(&self) -> Arc<dyn IggyConnector> {
        match self.mode {
            Mode::Embedded => self.broker.clone(),
            Mode::Listener => {
                let mut config =
                    remote_config(&format!("127.0.0.1:{}", self.port), USERNAME, PASSWORD);
                config.remote.reconnection_retries = 20;
                config.remote.reconnection_interval_ms = 25;
                open_remote(&config).await
            }
        }
    }
}

async fn transport(connector: Arc<dyn IggyConnector>) -> Transport<Job> {
    Transport::new(
        connector,
        TransportOptions {
            partitions: PARTITIONS,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap()
}

/// Publishes `events` jobs and an undecodable payload about every 1,000; returns what
/// is stored where.
async fn publish(world: &World, events: u64, rng: &mut u64) -> BTreeMap<(u32, u64), Stored> {
    let jobs = transport(world.broker.clone()).await;
    let mut stored = BTreeMap::new();
    let mut next_garbage = 500 + xorshift(rng) % 1000;
    let mut n = 0;
    while n < events {
        let end = (n + 100).min(events);
        let batch: Vec<Job> = (n..end)
            .map(|n| Job {
                key: format!("k{}", n % 13),
                n,
            })
            .collect();
        for (receipt, job) in jobs.publish_batch(&batch).await.unwrap().iter().zip(&batch) {
            stored.insert((receipt.partition, receipt.offset), Stored::Job(job.n));
        }
        n = end;
        if n >= next_garbage {
            let partition = (xorshift(rng) % u64::from(PARTITIONS)) as u32;
            let receipt = world
                .broker
                .publish(
                    PublishRequest::new(jobs.stream().clone(), jobs.topic().clone())
                        .partition(partition)
                        .message(OutgoingMessage::new(&b"\xff\x00garbage"[..])),
                )
                .await
                .unwrap();
            stored.insert((partition, receipt.base_offset), Stored::Garbage);
            next_garbage += 700 + xorshift(rng) % 600;
        }
    }
    stored
}

/// A running `consume()`.
struct Runner {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<ConsumeReport, rustok_iggy::Error>>,
    connector: Arc<dyn IggyConnector>,
    outage: Arc<Observed<DeadLetterOutage>>,
}

async fn start_runner(world: &World, shared: &Shared, dlq_down: bool) -> Runner {
    let connector = world.consumer_connector().await;
    let outage = DeadLetterOutage::new(Arc::clone(&connector));
    outage.hooks().set_down(dlq_down);
    let jobs = transport(outage.clone()).await;
    let (stop, mut stopped) = watch::channel(false);
    let options = ConsumeOptions {
        retry: RetryPolicy::fixed(3, Duration::from_millis(1)),
        subscription: SubscriptionOptions {
            batch_size: 64,
            max_in_flight: 256,
            ..SubscriptionOptions::default()
        },
        ..ConsumeOptions::default()
    };
    let shared = Arc::clone(shared);
    let task = tokio::spawn(async move {
        jobs.consume(
            GROUP,
            options,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
            move |job| {
                let shared = Arc::clone(&shared);
                async move {
                    let info = job.info();
                    match behaviour(job.n) {
                        Behaviour::Permanent => {
                            return Err(HandlerError::permanent("a permanent failure"));
                        }
                        Behaviour::AlwaysRetryable => {
                            return Err(HandlerError::retryable("a failure that stays"));
                        }
                        Behaviour::RetryableOnce if info.attempt == 1 => {
                            return Err(HandlerError::retryable("a passing failure"));
                        }
                        _ => {}
                    }
                    let mut log = log(&shared);
                    *log.handled
                        .entry((info.partition, info.offset))
                        .or_default() += 1;
                    log.calls += 1;
                    drop(log);
                    shared.1.notify_waiters();
                    Ok(())
                }
            },
        )
        .await
    });
    Runner {
        stop,
        task,
        connector,
        outage,
    }
}

impl Runner {
    async fn stop(self, mode: Mode) -> ConsumeReport {
        self.stop.send_replace(true);
        let report = tokio::time::timeout(STEP, self.task)
            .await
            .expect("the runner stops in time")
            .unwrap()
            .expect("the runner ends cleanly");
        if mode == Mode::Listener {
            self.connector.shutdown().await.unwrap();
        }
        report
    }
}

/// Handled positions (once or more).
fn handled(shared: &Shared) -> usize {
    log(shared).handled.len()
}

/// Waits until at least `target` positions are handled.
async fn reach(shared: &Shared, target: usize, what: &str) {
    let waited = tokio::time::timeout(STEP, async {
        loop {
            let notified = shared.1.notified();
            if handled(shared) >= target {
                return;
            }
            notified.await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "timed out reaching {what}: {} of {target} handled",
        handled(shared)
    );
}

/// Waits (polling, bounded by [`STEP`]) until `condition` holds.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(STEP, async {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while !condition() {
            tick.tick().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

/// The dead-lettered positions (original partition and offset).
async fn dead_lettered(world: &World) -> BTreeSet<(u32, u64)> {
    let jobs = transport(world.broker.clone()).await;
    jobs.dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap()
        .list(usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.original_partition, l.original_offset))
        .collect()
}

/// Nothing runs: every offset at or below a committed offset is handled or
/// dead-lettered.
async fn check_commit_rule(world: &World, shared: &Shared, when: &str) -> Vec<Option<u64>> {
    let jobs = transport(world.broker.clone()).await;
    let committed = world
        .broker
        .committed_offsets(jobs.stream(), jobs.topic(), &GroupName::new(GROUP).unwrap())
        .await
        .unwrap();
    let letters = dead_lettered(world).await;
    let log = log(shared);
    for (partition, committed) in committed.iter().enumerate() {
        let Some(committed) = *committed else {
            continue;
        };
        for offset in 0..=committed {
            let position = (partition as u32, offset);
            assert!(
                log.handled.contains_key(&position) || letters.contains(&position),
                "{:?} {when}: partition {partition} is committed at {committed}, past offset \
                 {offset}, which is neither handled nor dead-lettered",
                world.mode
            );
        }
    }
    committed
}

/// One milestone of the run, at a number of handled positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Stop,
    RestartBroker,
    Join,
    Leave,
    Outage,
}

async fn chaos(mode: Mode) {
    let events: u64 = std::env::var("RUSTOK_CHAOS_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("RUSTOK_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_c4a0_5eed_c4a0);
    let mut rng = seed.max(1);
    let mut world = World::open(mode).await;
    let stored = publish(&world, events, &mut rng).await;
    let total = stored.len();

    // Milestones by handled positions (a fraction of all, jittered by the seed).
    let at = |fraction: f64, rng: &mut u64| -> usize {
        let jitter = (xorshift(rng) % 200) as f64 / 10_000.0;
        ((fraction + jitter) * total as f64) as usize
    };
    let mut plan = vec![
        (at(0.30, &mut rng), Action::RestartBroker),
        (at(0.65, &mut rng), Action::RestartBroker),
        (at(0.45, &mut rng), Action::Outage),
    ];
    for (join, leave) in [(0.10, 0.20), (0.25, 0.35), (0.40, 0.50), (0.75, 0.85)] {
        plan.push((at(join, &mut rng), Action::Join));
        plan.push((at(leave, &mut rng), Action::Leave));
    }
    for _ in 0..4 {
        let fraction = 0.05 + (xorshift(&mut rng) % 9000) as f64 / 10_000.0;
        plan.push((at(fraction, &mut rng), Action::Stop));
    }
    plan.sort();

    let shared: Shared = Arc::default();
    let mut dlq_down = false;
    let mut main = Some(start_runner(&world, &shared, dlq_down).await);
    let mut helper: Option<Runner> = None;
    let mut stops = 0;
    let mut errors = 0u64;
    for (target, action) in plan {
        reach(&shared, target, &format!("{action:?} at {target}")).await;
        match action {
            Action::Stop => {
                if let Some(h) = helper.take() {
                    errors += h.stop(mode).await.errors;
                }
                errors += main.take().unwrap().stop(mode).await.errors;
                stops += 1;
                check_commit_rule(&world, &shared, &format!("after stop {stops}")).await;
                main = Some(start_runner(&world, &shared, dlq_down).await);
            }
            Action::RestartBroker => match mode {
                // The remote consumers ride the restart out.
                Mode::Listener => world.restart_broker().await,
                // In process, the connector is the broker: its consumers stop with it.
                Mode::Embedded => {
                    if let Some(h) = helper.take() {
                        errors += h.stop(mode).await.errors;
                    }
                    errors += main.take().unwrap().stop(mode).await.errors;
                    world.restart_broker().await;
                    check_commit_rule(&world, &shared, "after a broker restart").await;
                    main = Some(start_runner(&world, &shared, dlq_down).await);
                }
            },
            Action::Join => {
                if helper.is_none() {
                    helper = Some(start_runner(&world, &shared, dlq_down).await);
                }
            }
            Action::Leave => {
                if let Some(h) = helper.take() {
                    errors += h.stop(mode).await.errors;
                }
            }
            Action::Outage => {
                // The dead-letter topic goes away until writes were refused, with a
                // graceful stop and a restart in the middle of it; then it is back.
                dlq_down = true;
                for runner in main.iter().chain(helper.iter()) {
                    runner.outage.hooks().set_down(true);
                }
                let refused = |main: &Option<Runner>, helper: &Option<Runner>| {
                    main.iter()
                        .chain(helper.iter())
                        .map(|r| r.outage.hooks().failures())
                        .sum::<u64>()
                };
                wait_until("dead-letter writes refused", || {
                    refused(&main, &helper) >= 3
                })
                .await;
                if let Some(h) = helper.take() {
                    errors += h.stop(mode).await.errors;
                }
                errors += main.take().unwrap().stop(mode).await.errors;
                stops += 1;
                check_commit_rule(&world, &shared, "after a stop in the outage").await;
                main = Some(start_runner(&world, &shared, dlq_down).await);
                wait_until("dead-letter writes refused again", || {
                    refused(&main, &helper) >= 3
                })
                .await;
                dlq_down = false;
                for runner in main.iter().chain(helper.iter()) {
                    runner.outage.hooks().set_down(false);
                }
            }
        }
    }
    // Everything is handled or dead-lettered: wait for the runners to get there.
    let expected_handled = stored
        .iter()
        .filter(|(_, s)| matches!(s, Stored::Job(n) if matches!(behaviour(*n), Behaviour::Fine | Behaviour::RetryableOnce)))
        .count();
    reach(&shared, expected_handled, "every event handled").await;
    let expected_letters = total - expected_handled;
    tokio::time::timeout(STEP, async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while dead_lettered(&world).await.len() < expected_letters {
            tick.tick().await;
        }
    })
    .await
    .expect("every failure is dead-lettered in time");
    if let Some(h) = helper.take() {
        errors += h.stop(mode).await.errors;
    }
    errors += main.take().unwrap().stop(mode).await.errors;

    // Nothing is missing: every position is handled, or dead-lettered.
    let letters = dead_lettered(&world).await;
    let log = std::mem::take(&mut *log(&shared));
    for (&position, &what) in &stored {
        let expect_handled = matches!(what, Stored::Job(n) if matches!(behaviour(n), Behaviour::Fine | Behaviour::RetryableOnce));
        if expect_handled {
            assert!(
                log.handled.contains_key(&position),
                "{mode:?}: {what:?} at {position:?} was never handled"
            );
        } else {
            assert!(
                letters.contains(&position),
                "{mode:?}: {what:?} at {position:?} is not in the dead-letter topic"
            );
            assert!(
                !log.handled.contains_key(&position),
                "{mode:?}: {what:?} at {position:?} was handled"
            );
        }
    }
    let committed = {
        let jobs = transport(world.broker.clone()).await;
        world
            .broker
            .committed_offsets(jobs.stream(), jobs.topic(), &GroupName::new(GROUP).unwrap())
            .await
            .unwrap()
    };
    for partition in 0..PARTITIONS {
        let last = stored
            .keys()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| *o)
            .max();
        assert_eq!(
            committed[partition as usize], last,
            "{mode:?}: partition {partition} is committed to its end"
        );
    }
    let duplicates = log.calls - log.handled.len() as u64;
    println!(
        "{mode:?}: seed {seed}, {events} events + {} undecodable, {} handled, {} dead-lettered, \
         {duplicates} duplicate deliveries (at-least-once), {stops} stops, {errors} failed \
         fetches ridden out",
        total as u64 - events,
        log.handled.len(),
        letters.len(),
    );
    world.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_consumer_chaos() {
    chaos(Mode::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_consumer_chaos() {
    chaos(Mode::Listener).await;
}
