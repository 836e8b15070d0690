//! The handler runner on the remote connector rides out a server restart: the
//! embedded broker behind the TCP listener is stopped and started again (same data
//! directory, same port) while `consume()` runs. The runner keeps going, every event
//! published before and after is handled, and it returns only when asked to stop.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use rustok_iggy::prelude::*;
use rustok_iggy::{ConsumeOptions, IggyConnector};
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
            tokio::task::JoinHandle<Result<rustok_iggy::ConsumeReport, rustok_iggy::Error>>,
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
