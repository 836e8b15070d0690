//! `RemoteConnector` across a server restart: the embedded broker's TCP listener is
//! stopped and started again (same data directory, same port) under a running
//! producer and a running group consumer.
//!
//! - every publish that was acknowledged is stored afterwards, where its receipt says;
//! - the consumer resumes from its committed offsets: no event whose commit
//!   succeeded is delivered again, and no un-committed event is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustok_iggy_connector::{
    ConnectorConfig, DurabilityPolicy, EmbeddedConnector, GroupName, IggyConnector,
    OutgoingMessage, PublishRequest, StartPosition, StreamName, TopicName, TopicSpec,
};
use tests::conformance::{open_remote, remote_config};
use tests::wire::{PASSWORD, USERNAME};
use tests::{STEP_TIMEOUT, within};
use tokio::sync::watch;

const PARTITIONS: u32 = 2;

/// What the producer and the consumer observed.
#[derive(Debug, Default)]
struct Log {
    /// id → (partition, offset) of every acknowledged publish.
    acked: BTreeMap<u128, (u32, u64)>,
    /// Failed publishes (not acknowledged; they may or may not be stored).
    publish_errors: usize,
    /// Every delivery, in order: (partition, offset, id).
    delivered: Vec<(u32, u64, u128)>,
    /// Per partition, the highest offset whose commit succeeded.
    committed: BTreeMap<u32, u64>,
    /// Deliveries of an offset at or below an offset already committed.
    redelivered_committed: Vec<(u32, u64)>,
    /// Failed polls or commits.
    consume_errors: usize,
    /// The last error either side saw.
    last_error: Option<String>,
}

type Shared = Arc<Mutex<Log>>;

fn lock(log: &Shared) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits (bounded by [`STEP_TIMEOUT`]) until `condition` holds on the log.
async fn wait_for(what: &str, log: &Shared, condition: impl Fn(&Log) -> bool) {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        if condition(&lock(log)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {STEP_TIMEOUT:?} waiting for {what}: {:?}",
            summary(&lock(log))
        );
        tick.tick().await;
    }
}

fn summary(log: &Log) -> String {
    format!(
        "acked {}, publish errors {}, delivered {}, committed {:?}, consume errors {}, last error {:?}",
        log.acked.len(),
        log.publish_errors,
        log.delivered.len(),
        log.committed,
        log.consume_errors,
        log.last_error
    )
}

/// Publishes one message at a time (alternating partitions) until `stop`.
async fn produce(
    connector: Arc<dyn IggyConnector>,
    stream: StreamName,
    topic: TopicName,
    log: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let mut n: u64 = 0;
    while !*stop.borrow() {
        let id = u128::from(n) + 1;
        let request = PublishRequest::new(stream.clone(), topic.clone())
            .partition((n % u64::from(PARTITIONS)) as u32)
            .message(OutgoingMessage::new(format!("event {n}").into_bytes()).with_id(id));
        tokio::select! {
            result = connector.publish(request) => match result {
                Ok(receipt) => {
                    lock(&log).acked.insert(id, (receipt.partition, receipt.base_offset));
                }
                Err(error) => {
                    let mut log = lock(&log);
                    log.publish_errors += 1;
                    log.last_error = Some(error.to_string());
                }
            },
            _ = stop.changed() => return,
        }
        n += 1;
    }
}

/// Polls, "handles" and commits each message, until `stop`. A failed commit ends
/// the batch: the rest is delivered again after the consumer rejoins.
async fn consume(
    connector: Arc<dyn IggyConnector>,
    stream: StreamName,
    topic: TopicName,
    group: GroupName,
    log: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let member = within(
        "join the group",
        connector.join_group(&stream, &topic, &group, StartPosition::Earliest),
    )
    .await
    .expect("join");
    while !*stop.borrow() {
        let polled = tokio::select! {
            polled = member.poll(20) => polled,
            _ = stop.changed() => break,
        };
        let messages = match polled {
            Ok(messages) => messages,
            Err(error) => {
                let mut log = lock(&log);
                log.consume_errors += 1;
                log.last_error = Some(error.to_string());
                continue;
            }
        };
        for message in messages {
            {
                let mut log = lock(&log);
                if log
                    .committed
                    .get(&message.partition)
                    .is_some_and(|&c| message.offset <= c)
                {
                    log.redelivered_committed
                        .push((message.partition, message.offset));
                }
                log.delivered
                    .push((message.partition, message.offset, message.id));
            }
            match member.commit(message.partition, message.offset).await {
                Ok(()) => {
                    let mut log = lock(&log);
                    let entry = log
                        .committed
                        .entry(message.partition)
                        .or_insert(message.offset);
                    *entry = (*entry).max(message.offset);
                }
                Err(error) => {
                    let mut log = lock(&log);
                    log.consume_errors += 1;
                    log.last_error = Some(error.to_string());
                    break;
                }
            }
        }
    }
    let _ = member.leave().await;
}

fn broker_config(dir: &std::path::Path, port: u16) -> ConnectorConfig {
    let mut config = ConnectorConfig::embedded(dir);
    config.embedded.tcp_enabled = true;
    config.embedded.tcp_address = "127.0.0.1".into();
    config.embedded.tcp_port = port;
    config.embedded.durability = DurabilityPolicy::EveryBatch;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_restart_keeps_acked_events_and_resumes_from_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedConnector::new();
    within(
        "start the broker",
        broker.connect(&broker_config(dir.path(), 0)),
    )
    .await
    .expect("the broker starts");
    let address = broker.tcp_address().expect("the listener is on");

    let mut client_config = remote_config(&address.to_string(), USERNAME, PASSWORD);
    client_config.remote.reconnection_retries = 200;
    client_config.remote.reconnection_interval_ms = 25;
    let producer = open_remote(&client_config).await;
    let consumer = open_remote(&client_config).await;
    let stream = StreamName::new("faults").unwrap();
    let topic = TopicName::new("events").unwrap();
    let group = GroupName::new("resilient").unwrap();
    within(
        "create the topic",
        producer.ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), PARTITIONS)),
    )
    .await
    .unwrap();

    let log = Shared::default();
    let (stop_producer, producer_stop) = watch::channel(false);
    let (stop_consumer, consumer_stop) = watch::channel(false);
    let producing = tokio::spawn(produce(
        Arc::clone(&producer),
        stream.clone(),
        topic.clone(),
        Arc::clone(&log),
        producer_stop,
    ));
    let consuming = tokio::spawn(consume(
        Arc::clone(&consumer),
        stream.clone(),
        topic.clone(),
        group.clone(),
        Arc::clone(&log),
        consumer_stop,
    ));

    wait_for("traffic before the restart", &log, |l| {
        l.acked.len() >= 40 && l.committed.values().count() == PARTITIONS as usize
    })
    .await;

    // Stop the listener (and the broker), then start it again on the same port and
    // data directory while the producer and the consumer keep going.
    within("stop the broker", broker.shutdown())
        .await
        .expect("clean shutdown");
    let acked_before = lock(&log).acked.len();
    let restarted = EmbeddedConnector::new();
    within(
        "restart the broker on the same port",
        restarted.connect(&broker_config(dir.path(), address.port())),
    )
    .await
    .expect("the broker restarts on the same port");
    assert_eq!(restarted.tcp_address(), Some(address));

    wait_for("traffic after the restart", &log, |l| {
        l.acked.len() >= acked_before + 40
    })
    .await;
    stop_producer.send_replace(true);
    within("the producer stops", producing).await.unwrap();
    // The consumer catches up with everything acknowledged.
    wait_for("the consumer commits every acknowledged event", &log, |l| {
        l.acked
            .values()
            .all(|&(p, o)| l.committed.get(&p).is_some_and(|&c| c >= o))
    })
    .await;
    stop_consumer.send_replace(true);
    within("the consumer stops", consuming).await.unwrap();

    // Both tasks are done: the log is final.
    let log = std::mem::take(&mut *lock(&log));
    // Every acknowledged publish is stored, where its receipt says.
    let checker = open_remote(&client_config).await;
    let mut stored: BTreeMap<(u32, u64), u128> = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let mut next = 0;
        loop {
            let batch = within(
                "read back",
                checker.poll(&stream, &topic, partition, StartPosition::Offset(next), 500),
            )
            .await
            .unwrap();
            let Some(last) = batch.last() else { break };
            next = last.offset + 1;
            stored.extend(batch.iter().map(|m| ((m.partition, m.offset), m.id)));
        }
    }
    for (id, position) in &log.acked {
        assert_eq!(
            stored.get(position),
            Some(id),
            "acknowledged event {id} at {position:?} is missing"
        );
    }
    // No committed event was delivered again.
    assert!(
        log.redelivered_committed.is_empty(),
        "committed events delivered again: {:?}",
        log.redelivered_committed
    );
    // No stored event was lost for the consumer: up to its last commit, every
    // offset of every partition was delivered.
    let delivered: BTreeSet<(u32, u64)> = log.delivered.iter().map(|&(p, o, _)| (p, o)).collect();
    for (&(partition, offset), _) in stored.iter() {
        if log.committed.get(&partition).is_some_and(|&c| offset <= c) {
            assert!(
                delivered.contains(&(partition, offset)),
                "({partition}, {offset}) was never delivered"
            );
        }
    }
    let offsets = within(
        "committed offsets",
        checker.committed_offsets(&stream, &topic, &group),
    )
    .await
    .unwrap();
    for partition in 0..PARTITIONS {
        assert_eq!(
            offsets[partition as usize],
            log.committed.get(&partition).copied(),
            "the server's committed offset of partition {partition} is the consumer's last successful commit"
        );
    }
    println!("{}", summary(&log));

    within("shutdown", checker.shutdown()).await.unwrap();
    within("shutdown", producer.shutdown()).await.unwrap();
    within("shutdown", consumer.shutdown()).await.unwrap();
    within("stop the broker", restarted.shutdown())
        .await
        .unwrap();
}
