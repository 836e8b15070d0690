//! The handler runner on the remote connector rides out a server restart: the
//! embedded broker behind the TCP listener is stopped and started again (same data
//! directory, same port) while `consume()` runs. The runner keeps going, every event
//! published before and after is handled, and it returns only when asked to stop.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use rustok_iggy::prelude::*;
use rustok_iggy::{connector::IggyConnector, consume::ConsumeOptions};
use rustok_iggy_connector::{ConnectorConfig, DurabilityPolicy, EmbeddedConnector, metric_names};
use serde::{Deserialize, Serialize};
use tests::conformance::{open_remote, remote_config};
use tests::wire::{PASSWORD, USERNAME};
use tests::within;
use tokio::sync::{Notify, watch};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", stream = "restart", key = key, codec = "postcard")]
struct Job {
    key: String,
    n: u64,
}

fn broker_config(dir: &std::path::Path, port: u16) -> ConnectorConfig {
    let mut config = ConnectorConfig::embedded(dir);
    config.embedded.tcp_enabled = true;
    config.embedded.tcp_address = "127.0.0.1".into();
    config.embedded.tcp_port = port;
    config.embedded.durability = DurabilityPolicy::EveryBatch;
    config
}

async fn transport(connector: Arc<dyn IggyConnector>) -> Transport<Job> {
    Transport::new(
        connector,
        TransportOptions {
            partitions: 2,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap()
}

/// Publishes jobs `range`, retrying each until the broker accepts it (the producer
/// reconnects on its own after a restart).
async fn publish(jobs: &Transport<Job>, range: std::ops::Range<u64>) {
    for n in range {
        let job = Job {
            key: format!("k{}", n % 7),
            n,
        };
        within("publish (retried across the restart)", async {
            while jobs.publish(&job).await.is_err() {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_rides_out_a_server_restart() {
    const BEFORE: u64 = 40;
    const AFTER: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedConnector::new();
    within(
        "start the broker",
        broker.connect(&broker_config(dir.path(), 0)),
    )
    .await
    .unwrap();
    let address = broker.tcp_address().unwrap();
    let mut client = remote_config(&address.to_string(), USERNAME, PASSWORD);
    client.remote.reconnection_retries = 20;
    client.remote.reconnection_interval_ms = 25;
    let producer = open_remote(&client).await;
    let consumer = open_remote(&client).await;
    let jobs = transport(Arc::clone(&producer)).await;
    let consuming = transport(Arc::clone(&consumer)).await;

    let handled = Arc::new(Mutex::new(BTreeSet::new()));
    let progress = Arc::new(Notify::new());
    let (stop, mut stopped) = watch::channel(false);
    let runner = {
        let (handled, progress) = (Arc::clone(&handled), Arc::clone(&progress));
        tokio::spawn(async move {
            consuming
                .consume(
                    "resilient",
                    ConsumeOptions::default(),
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                    move |job| {
                        let (handled, progress) = (Arc::clone(&handled), Arc::clone(&progress));
                        async move {
                            handled
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .insert(job.n);
                            progress.notify_one();
                            Ok(())
                        }
                    },
                )
                .await
        })
    };
    let mut runner = Some(runner);
    let count = |handled: &Arc<Mutex<BTreeSet<u64>>>| {
        handled.lock().unwrap_or_else(PoisonError::into_inner).len() as u64
    };
    // Waits until `n` distinct jobs are handled; fails at once if the runner ends.
    async fn wait_handled(
        n: u64,
        handled: &Arc<Mutex<BTreeSet<u64>>>,
        progress: &Notify,
        runner: &mut Option<
            tokio::task::JoinHandle<
                Result<rustok_iggy::consume::ConsumeReport, rustok_iggy::Error>,
            >,
        >,
    ) {
        within(&format!("{n} jobs handled"), async {
            loop {
                let done = handled.lock().unwrap_or_else(PoisonError::into_inner).len() as u64;
                if done >= n {
                    return;
                }
                let running = runner.as_mut().unwrap();
                tokio::select! {
                    () = progress.notified() => {}
                    ended = running => {
                        panic!("the runner ended with {done} of {n} jobs handled: {:?}", ended.unwrap());
                    }
                }
            }
        })
        .await;
    }

    publish(&jobs, 0..BEFORE).await;
    wait_handled(BEFORE / 2, &handled, &progress, &mut runner).await;

    let errors = || {
        tests::metric_value(
            metric_names::CONSUMER_ERRORS,
            &[
                ("messaging_destination_name", "jobs"),
                ("messaging_consumer_group_name", "resilient"),
            ],
        )
    };
    let before = errors();
    within("stop the broker", broker.shutdown()).await.unwrap();
    // The outage: the server stays down until the consumer has seen its fetches fail.
    within("the consumer sees the outage", async {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
        while errors() == before {
            tick.tick().await;
        }
    })
    .await;
    let restarted = EmbeddedConnector::new();
    within(
        "restart the broker on the same port",
        restarted.connect(&broker_config(dir.path(), address.port())),
    )
    .await
    .unwrap();
    publish(&jobs, BEFORE..BEFORE + AFTER).await;
    wait_handled(BEFORE + AFTER, &handled, &progress, &mut runner).await;
    assert_eq!(count(&handled), BEFORE + AFTER);

    stop.send_replace(true);
    let report = within("the runner stops when asked", runner.take().unwrap())
        .await
        .unwrap()
        .expect("the runner returns Ok after riding out the restart");
    assert!(report.handled >= BEFORE + AFTER, "{report:?}");
    assert!(report.errors >= 1, "the outage is reported: {report:?}");

    within("shutdown", producer.shutdown()).await.unwrap();
    within("shutdown", consumer.shutdown()).await.unwrap();
    within("stop the broker", restarted.shutdown())
        .await
        .unwrap();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", stream = "closing", key = key, codec = "postcard")]
struct Closing {
    key: String,
    n: u64,
}

/// A runner of group "closing" on the remote connector whose last job (of `JOBS`)
/// waits in its handler.
struct Stopping {
    dir: tempfile::TempDir,
    broker: Arc<EmbeddedConnector>,
    address: std::net::SocketAddr,
    consumer: Arc<dyn IggyConnector>,
    runner:
        tokio::task::JoinHandle<Result<rustok_iggy::consume::ConsumeReport, rustok_iggy::Error>>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
    stop: watch::Sender<bool>,
}

const JOBS: u64 = 10;

async fn stopping(connect_timeout_ms: u64, close_timeout: std::time::Duration) -> Stopping {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(EmbeddedConnector::new());
    within(
        "start the broker",
        broker.connect(&broker_config(dir.path(), 0)),
    )
    .await
    .unwrap();
    let address = broker.tcp_address().unwrap();
    let mut client = remote_config(&address.to_string(), USERNAME, PASSWORD);
    client.remote.reconnection_retries = 200;
    client.remote.reconnection_interval_ms = 25;
    client.remote.connect_timeout_ms = connect_timeout_ms;
    let consumer = open_remote(&client).await;
    let options = TransportOptions {
        partitions: 1,
        ..TransportOptions::default()
    };
    let jobs = Transport::<Closing>::new(
        Arc::clone(&broker) as Arc<dyn IggyConnector>,
        options.clone(),
    )
    .await
    .unwrap();
    for n in 0..JOBS {
        jobs.publish(&Closing { key: "k".into(), n }).await.unwrap();
    }
    let consuming = Transport::<Closing>::new(Arc::clone(&consumer), options)
        .await
        .unwrap();
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (stop, mut stopped) = watch::channel(false);
    let consume_options = ConsumeOptions {
        subscription: rustok_iggy::SubscriptionOptions {
            close_timeout,
            ..rustok_iggy::SubscriptionOptions::default()
        },
        ..ConsumeOptions::default()
    };
    let runner = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        tokio::spawn(async move {
            consuming
                .consume(
                    "closing",
                    consume_options,
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                    move |job| {
                        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
                        async move {
                            if job.n == JOBS - 1 {
                                entered.notify_one();
                                release.notified().await;
                            }
                            Ok(())
                        }
                    },
                )
                .await
        })
    };
    Stopping {
        dir,
        broker,
        address,
        consumer,
        runner,
        entered,
        release,
        stop,
    }
}

impl Stopping {
    /// Waits for the last job to be in its handler, stops the broker, asks the
    /// runner to stop and lets the handler finish.
    async fn stop_during_an_outage(&self) {
        within("the last job is in its handler", self.entered.notified()).await;
        within("stop the broker", self.broker.shutdown())
            .await
            .unwrap();
        self.stop.send_replace(true);
        self.release.notify_one();
    }

    async fn restart_broker(&self) -> EmbeddedConnector {
        let restarted = EmbeddedConnector::new();
        within(
            "restart the broker on the same port",
            restarted.connect(&broker_config(self.dir.path(), self.address.port())),
        )
        .await
        .unwrap();
        restarted
    }
}

async fn committed(broker: &EmbeddedConnector) -> Vec<Option<u64>> {
    let stream = rustok_iggy::connector::StreamName::new("closing").unwrap();
    let topic = rustok_iggy::connector::TopicName::new("jobs").unwrap();
    let group = rustok_iggy::connector::GroupName::new("closing").unwrap();
    within(
        "the committed offsets",
        broker.committed_offsets(&stream, &topic, &group),
    )
    .await
    .unwrap()
}

/// A stop that lands while the server is down: the event in hand is handled, the
/// closing commit fails on the lost connection and is tried again until the server
/// is back, and the runner then returns `Ok` with that event committed. (The fetch
/// the runner left in flight when it stopped must not hold up the commit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_an_outage_commits_once_the_server_is_back() {
    let mut run = stopping(5_000, std::time::Duration::from_secs(10)).await;
    run.stop_during_an_outage().await;
    let restarted = run.restart_broker().await;
    let report = within("the runner stops", &mut run.runner)
        .await
        .unwrap()
        .expect("the closing commit waits out the outage");
    assert_eq!(report.handled, JOBS, "{report:?}");
    assert_eq!(
        committed(&restarted).await,
        vec![Some(JOBS - 1)],
        "the event in hand is committed"
    );
    within("shutdown", run.consumer.shutdown()).await.unwrap();
    within("stop the broker", restarted.shutdown())
        .await
        .unwrap();
}

/// A stop while the server stays down: `close` gives up after the close timeout
/// with the connection error instead of waiting for ever, and the event in hand is
/// not committed (it is delivered again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_lasting_outage_fails_after_the_close_timeout() {
    let mut run = stopping(300, std::time::Duration::from_millis(300)).await;
    run.stop_during_an_outage().await;
    let error = within("the runner stops", &mut run.runner)
        .await
        .unwrap()
        .expect_err("the closing commit cannot be stored");
    match &error {
        rustok_iggy::Error::Connector(e) => assert!(e.is_transient(), "{error:?}"),
        other => panic!("expected the connection error, got {other:?}"),
    }
    within("shutdown", run.consumer.shutdown()).await.unwrap();
    let restarted = run.restart_broker().await;
    let committed = committed(&restarted).await;
    assert!(
        committed[0].is_none_or(|c| c < JOBS - 1),
        "the event in hand is not committed: {committed:?}"
    );
    within("stop the broker", restarted.shutdown())
        .await
        .unwrap();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", stream = "late", key = key, codec = "postcard")]
struct Late {
    key: String,
    n: u64,
}

/// A runner started while the server is down (its join fails on the lost
/// connection) keeps trying, counts each failure, and once the server is back
/// handles what is published, returning only when asked to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_started_during_an_outage_starts_once_the_server_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedConnector::new();
    within(
        "start the broker",
        broker.connect(&broker_config(dir.path(), 0)),
    )
    .await
    .unwrap();
    let address = broker.tcp_address().unwrap();
    let mut client = remote_config(&address.to_string(), USERNAME, PASSWORD);
    client.remote.reconnection_retries = 20;
    client.remote.reconnection_interval_ms = 25;
    let consumer = open_remote(&client).await;
    let options = TransportOptions {
        partitions: 1,
        ..TransportOptions::default()
    };
    let late = Transport::<Late>::new(Arc::clone(&consumer), options.clone())
        .await
        .unwrap();
    within("stop the broker", broker.shutdown()).await.unwrap();

    let errors = || {
        tests::metric_value(
            metric_names::CONSUMER_ERRORS,
            &[
                ("messaging_destination_name", "jobs"),
                ("messaging_consumer_group_name", "late"),
            ],
        )
    };
    let before = errors();
    let handled = Arc::new(Notify::new());
    let (stop, mut stopped) = watch::channel(false);
    let runner = {
        let handled = Arc::clone(&handled);
        tokio::spawn(async move {
            late.consume(
                "late",
                ConsumeOptions::default(),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
                move |_job| {
                    let handled = Arc::clone(&handled);
                    async move {
                        handled.notify_one();
                        Ok(())
                    }
                },
            )
            .await
        })
    };
    within("the runner fails to start", async {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
        while errors() == before {
            tick.tick().await;
        }
    })
    .await;
    assert!(!runner.is_finished(), "the runner keeps trying");

    let restarted = Arc::new(EmbeddedConnector::new());
    within(
        "restart the broker on the same port",
        restarted.connect(&broker_config(dir.path(), address.port())),
    )
    .await
    .unwrap();
    let producer =
        Transport::<Late>::new(Arc::clone(&restarted) as Arc<dyn IggyConnector>, options)
            .await
            .unwrap();
    producer
        .publish(&Late {
            key: "k".into(),
            n: 1,
        })
        .await
        .unwrap();
    within("the job is handled", handled.notified()).await;
    stop.send_replace(true);
    let report = within("the runner stops", runner)
        .await
        .unwrap()
        .expect("the runner rode out its failed start");
    assert_eq!(report.handled, 1, "{report:?}");
    assert!(
        report.errors >= 1,
        "the failed starts are reported: {report:?}"
    );
    within("shutdown", consumer.shutdown()).await.unwrap();
    within("stop the broker", restarted.shutdown())
        .await
        .unwrap();
}

/// A subscription closed after the server restarted under it, with nothing left to
/// commit, closes cleanly: its member's connection died with the old server, and
/// the membership with it, so leaving the group has nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_closed_after_a_server_restart_leaves_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedConnector::new();
    within(
        "start the broker",
        broker.connect(&broker_config(dir.path(), 0)),
    )
    .await
    .unwrap();
    let address = broker.tcp_address().unwrap();
    let mut client = remote_config(&address.to_string(), USERNAME, PASSWORD);
    client.remote.reconnection_retries = 20;
    client.remote.reconnection_interval_ms = 25;
    let connector = open_remote(&client).await;
    let jobs = transport(Arc::clone(&connector)).await;
    publish(&jobs, 0..1).await;
    let mut subscription = jobs.subscribe("closers").await.unwrap();
    let delivery = within("a delivery", subscription.next())
        .await
        .expect("stream open")
        .expect("a delivery");
    let partition = delivery.info().partition as usize;
    within("ack and commit", delivery.ack_and_commit())
        .await
        .unwrap();

    within("stop the broker", broker.shutdown()).await.unwrap();
    let broker = EmbeddedConnector::new();
    within(
        "restart the broker",
        broker.connect(&broker_config(dir.path(), address.port())),
    )
    .await
    .unwrap();

    within("close", subscription.close())
        .await
        .expect("nothing is left to commit or to leave");
    let committed = within(
        "the committed offsets",
        broker.committed_offsets(
            jobs.stream(),
            jobs.topic(),
            &rustok_iggy::connector::GroupName::new("closers").unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        committed[partition],
        Some(0),
        "the commit survived the restart"
    );
    within("shut the connector down", connector.shutdown())
        .await
        .unwrap();
    within("stop the broker", broker.shutdown()).await.unwrap();
}
