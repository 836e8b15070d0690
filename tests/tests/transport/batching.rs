//! The batching publisher on the embedded connector: receipts per caller, order per
//! key under concurrency, errors shared by a failed batch, backpressure modes,
//! flush and shutdown.
//!
//! Batches are made deterministic with a linger of an hour: nothing leaves a lane
//! until its batch is full, `flush`, or `shutdown`. A gate in front of the connector
//! holds batches "in flight" to fill the buffer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use rustok_iggy::connector::{
    ConnectorError, IggyConnector, OutgoingMessage, Partitioning, PublishReceipt, PublishRequest,
    StartPosition,
};
use rustok_iggy::prelude::*;
use rustok_iggy::{
    Error, IggyConfig,
    batching::{Backpressure, BatchError, BatchingOptions, BatchingPublisher, BatchingTransport},
    connector::{StreamName, TopicName},
    envelope::{EventEnvelope, EventTransport, IggyTransport},
    testing::{Hooks, Observed},
};
use serde::{Deserialize, Serialize};
use tests::{create_topic, embedded_config, names, open_embedded, within};
use tokio::sync::watch;

const HOUR: Duration = Duration::from_secs(3600);

/// Hooks on an embedded connector: a gate (publishes wait while it is closed), the
/// size of every batch recorded, and the batches of one partition failed on demand.
#[derive(Debug)]
struct Gate {
    open: watch::Sender<bool>,
    batches: Mutex<Vec<(Option<u32>, usize)>>,
    failing_partition: Mutex<Option<u32>>,
}

impl Gate {
    fn new(inner: Arc<dyn IggyConnector>) -> Arc<Observed<Self>> {
        Observed::new(
            inner,
            Self {
                open: watch::channel(true).0,
                batches: Mutex::new(Vec::new()),
                failing_partition: Mutex::new(None),
            },
        )
    }

    fn close_gate(&self) {
        self.open.send_replace(false);
    }

    fn open_gate(&self) {
        self.open.send_replace(true);
    }

    fn fail_partition(&self, partition: u32) {
        *self
            .failing_partition
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(partition);
    }

    fn batches(&self) -> Vec<(Option<u32>, usize)> {
        self.batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Hooks for Gate {
    async fn before_publish(&self, request: &PublishRequest) -> Result<(), ConnectorError> {
        let mut open = self.open.subscribe();
        open.wait_for(|open| *open)
            .await
            .expect("the gate lives as long as the connector");
        let partition = match request.partitioning {
            Partitioning::Partition(p) => Some(p),
            _ => None,
        };
        self.batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((partition, request.messages.len()));
        let failing = *self
            .failing_partition
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if partition.is_some() && partition == failing {
            return Err(ConnectorError::Publish {
                message: "injected failure".into(),
                source: None,
            });
        }
        Ok(())
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    embedded: Arc<dyn IggyConnector>,
    observed: Arc<Observed<Gate>>,
    stream: StreamName,
    topic: TopicName,
}

async fn setup(partitions: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn IggyConnector> = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("shop", "orders");
    create_topic(&*embedded, &stream, &topic, partitions).await;
    Setup {
        _dir: dir,
        observed: Gate::new(Arc::clone(&embedded)),
        embedded,
        stream,
        topic,
    }
}

fn options(linger: Duration) -> BatchingOptions {
    BatchingOptions {
        linger,
        ..BatchingOptions::default()
    }
}

fn message(id: u128) -> OutgoingMessage {
    OutgoingMessage::new(format!("m{id}").into_bytes()).with_id(id)
}

/// Every stored message of the topic by id: (partition, offset).
async fn stored(s: &Setup, partitions: u32) -> BTreeMap<u128, (u32, u64)> {
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let read = s
            .embedded
            .poll(&s.stream, &s.topic, p, StartPosition::Earliest, 100_000)
            .await
            .unwrap();
        for m in read {
            assert!(
                out.insert(m.id, (p, m.offset)).is_none(),
                "id {} twice",
                m.id
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_caller_gets_its_own_receipt_and_each_key_keeps_its_order() {
    let s = setup(4).await;
    let publisher =
        BatchingPublisher::new(s.observed.clone(), options(Duration::from_millis(2))).unwrap();
    // 1000 concurrent callers over 20 keys; each caller submits 5 messages in a row
    // without waiting in between, then waits for the 5 receipts.
    let mut callers = Vec::new();
    for caller in 0..1000u128 {
        let publisher = publisher.clone();
        let (stream, topic) = (s.stream.clone(), s.topic.clone());
        callers.push(tokio::spawn(async move {
            let key = format!("key-{}", caller % 20);
            let mut pending = Vec::new();
            for seq in 0..5u128 {
                let id = caller * 10 + seq + 1;
                let receipt = publisher
                    .submit(
                        &stream,
                        &topic,
                        Partitioning::Key(key.clone().into()),
                        message(id),
                    )
                    .await
                    .unwrap();
                pending.push((id, receipt));
            }
            let mut receipts = Vec::new();
            for (id, receipt) in pending {
                receipts.push((id, receipt.await.unwrap()));
            }
            (key, receipts)
        }));
    }
    let mut receipts: BTreeMap<u128, PublishReceipt> = BTreeMap::new();
    for caller in callers {
        let (key, list) = within("a caller's receipts", caller).await.unwrap();
        let expected = rustok_iggy::connector::partition_for(key.as_bytes(), 4);
        let offsets: Vec<u64> = list.iter().map(|(_, r)| r.base_offset).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "a caller's messages of one key must keep their order: {offsets:?}"
        );
        for (id, receipt) in list {
            assert_eq!(receipt.partition, expected);
            assert_eq!(receipt.count, 1);
            receipts.insert(id, receipt);
        }
    }
    assert_eq!(receipts.len(), 5000);
    // Each receipt names exactly where its own message is stored.
    let stored = stored(&s, 4).await;
    assert_eq!(stored.len(), 5000);
    for (id, receipt) in &receipts {
        assert_eq!(stored[id], (receipt.partition, receipt.base_offset), "{id}");
    }
    let batches = s.observed.hooks().batches();
    assert!(
        batches.len() < 5000,
        "{} requests for 5000 messages",
        batches.len()
    );
    publisher.shutdown().await;
}

#[tokio::test]
async fn batches_form_by_count_and_by_bytes() {
    let s = setup(2).await;
    let publisher = BatchingPublisher::new(
        s.observed.clone(),
        BatchingOptions {
            linger: HOUR,
            max_batch_messages: 10,
            max_batch_bytes: 10 * (48 + 100),
            ..BatchingOptions::default()
        },
    )
    .unwrap();
    let mut pending = Vec::new();
    // 25 small messages to partition 0: two full batches of 10 by count, 5 left.
    for id in 1..=25u128 {
        pending.push(
            publisher
                .submit(&s.stream, &s.topic, Partitioning::Partition(0), message(id))
                .await
                .unwrap(),
        );
    }
    // 6 messages of 300 bytes to partition 1: 348 bytes each with the frame header;
    // 4 make 1392, a 5th would pass the 1480-byte limit: batches of 4 and 2.
    for id in 101..=106u128 {
        let big = OutgoingMessage::new(vec![b'x'; 300]).with_id(id);
        pending.push(
            publisher
                .submit(&s.stream, &s.topic, Partitioning::Partition(1), big)
                .await
                .unwrap(),
        );
    }
    publisher.flush().await;
    for receipt in pending {
        receipt
            .now_or_never()
            .expect("answered by flush")
            .expect("stored");
    }
    let mut by_partition: BTreeMap<Option<u32>, Vec<usize>> = BTreeMap::new();
    for (partition, len) in s.observed.hooks().batches() {
        by_partition.entry(partition).or_default().push(len);
    }
    assert_eq!(by_partition[&Some(0)], vec![10, 10, 5]);
    assert_eq!(by_partition[&Some(1)], vec![4, 2]);
    publisher.shutdown().await;
}

#[tokio::test]
async fn a_failed_batch_reaches_every_caller_of_it_and_no_one_else() {
    let s = setup(2).await;
    s.observed.hooks().fail_partition(1);
    let publisher = BatchingPublisher::new(s.observed.clone(), options(HOUR)).unwrap();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for id in 1..=20u128 {
        let partition = (id % 2) as u32;
        let receipt = publisher
            .submit(
                &s.stream,
                &s.topic,
                Partitioning::Partition(partition),
                message(id),
            )
            .await
            .unwrap();
        let list = if partition == 1 { &mut bad } else { &mut good };
        list.push(receipt);
    }
    publisher.flush().await;
    let mut sources = Vec::new();
    for receipt in bad {
        match receipt.await {
            Err(BatchError::Publish { messages, source }) => {
                assert_eq!(messages, 10);
                assert!(
                    matches!(*source, ConnectorError::Publish { .. }),
                    "{source}"
                );
                sources.push(source);
            }
            other => panic!("expected the batch's error, got {other:?}"),
        }
    }
    assert_eq!(sources.len(), 10);
    assert!(
        sources.iter().all(|s| Arc::ptr_eq(s, &sources[0])),
        "one failure, shared by the callers of its batch"
    );
    for receipt in good {
        assert_eq!(receipt.await.unwrap().partition, 0);
    }
    // Refused before queuing: only that call fails.
    let err = publisher
        .publish(&s.stream, &s.topic, Partitioning::Partition(7), message(99))
        .await
        .unwrap_err();
    assert!(err.is_not_stored(), "{err}");
    assert!(
        matches!(
            err.connector_error(),
            Some(ConnectorError::PartitionNotFound { partition: 7, .. })
        ),
        "{err}"
    );
    let (_, missing) = names("shop", "missing");
    let err = publisher
        .publish(&s.stream, &missing, Partitioning::Balanced, message(98))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.connector_error(),
            Some(ConnectorError::TopicNotFound { .. })
        ),
        "{err}"
    );
    publisher.shutdown().await;
}

/// A publisher with a buffer of 4 whose first 4 messages are held at the gate.
async fn full_buffer(
    s: &Setup,
    backpressure: Backpressure,
) -> (
    BatchingPublisher,
    Vec<rustok_iggy::batching::PendingReceipt>,
) {
    let publisher = BatchingPublisher::new(
        s.observed.clone(),
        BatchingOptions {
            linger: Duration::ZERO,
            buffer_messages: 4,
            backpressure,
            ..BatchingOptions::default()
        },
    )
    .unwrap();
    s.observed.hooks().close_gate();
    let mut held = Vec::new();
    for id in 1..=4u128 {
        held.push(
            publisher
                .submit(&s.stream, &s.topic, Partitioning::Partition(0), message(id))
                .await
                .unwrap(),
        );
    }
    assert_eq!(publisher.buffered(), 4);
    (publisher, held)
}

#[tokio::test]
async fn fail_fast_refuses_when_the_buffer_is_full() {
    let s = setup(1).await;
    let (publisher, held) = full_buffer(&s, Backpressure::FailFast).await;
    let err = publisher
        .submit(&s.stream, &s.topic, Partitioning::Partition(0), message(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BatchError::BufferFull { capacity: 4 }),
        "{err}"
    );
    assert!(err.is_not_stored());
    s.observed.hooks().open_gate();
    for receipt in held {
        within("held receipt", receipt).await.unwrap();
    }
    // Room again.
    publisher
        .publish(&s.stream, &s.topic, Partitioning::Partition(0), message(6))
        .await
        .unwrap();
    assert!(!stored(&s, 1).await.contains_key(&5));
    publisher.shutdown().await;
}

#[tokio::test]
async fn wait_with_timeout_gives_up_when_the_buffer_stays_full() {
    let s = setup(1).await;
    let (publisher, held) =
        full_buffer(&s, Backpressure::WaitTimeout(Duration::from_millis(50))).await;
    let err = within(
        "the timed wait",
        publisher.submit(&s.stream, &s.topic, Partitioning::Partition(0), message(5)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, BatchError::BufferTimeout { capacity: 4, waited } if waited == Duration::from_millis(50)),
        "{err}"
    );
    s.observed.hooks().open_gate();
    for receipt in held {
        within("held receipt", receipt).await.unwrap();
    }
    publisher.shutdown().await;
}

#[tokio::test]
async fn wait_blocks_until_there_is_room() {
    let s = setup(1).await;
    let (publisher, held) = full_buffer(&s, Backpressure::Wait).await;
    let waiting = {
        let publisher = publisher.clone();
        let (stream, topic) = (s.stream.clone(), s.topic.clone());
        tokio::spawn(async move {
            publisher
                .publish(&stream, &topic, Partitioning::Partition(0), message(5))
                .await
        })
    };
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "the fifth call must wait for room");
    s.observed.hooks().open_gate();
    let receipt = within("the waiting call", waiting).await.unwrap().unwrap();
    let mut offsets = Vec::new();
    for receipt in held {
        offsets.push(within("held receipt", receipt).await.unwrap().base_offset);
    }
    offsets.push(receipt.base_offset);
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    publisher.shutdown().await;
}

#[tokio::test]
async fn flush_sends_lingering_batches_and_waits_for_their_answers() {
    let s = setup(3).await;
    let publisher = BatchingPublisher::new(s.observed.clone(), options(HOUR)).unwrap();
    let mut pending = Vec::new();
    for id in 1..=90u128 {
        pending.push(
            publisher
                .submit(&s.stream, &s.topic, Partitioning::Balanced, message(id))
                .await
                .unwrap(),
        );
    }
    for id in 91..=120u128 {
        pending.push(
            publisher
                .submit(
                    &s.stream,
                    &s.topic,
                    Partitioning::Partition((id % 3) as u32),
                    message(id),
                )
                .await
                .unwrap(),
        );
    }
    assert!(
        s.observed.hooks().batches().is_empty(),
        "nothing sent before flush"
    );
    within("flush", publisher.flush()).await;
    for receipt in pending {
        receipt
            .now_or_never()
            .expect("answered when flush returns")
            .unwrap();
    }
    assert_eq!(stored(&s, 3).await.len(), 120);
    // One request per lane: the balanced lane and the three partitions.
    assert_eq!(s.observed.hooks().batches().len(), 4);
    assert_eq!(publisher.buffered(), 0);
    publisher.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_the_queue_and_refuses_new_messages() {
    let s = setup(2).await;
    let publisher = BatchingPublisher::new(
        s.observed.clone(),
        BatchingOptions {
            linger: HOUR,
            buffer_messages: 50,
            ..BatchingOptions::default()
        },
    )
    .unwrap();
    let mut pending = Vec::new();
    for id in 1..=50u128 {
        pending.push(
            publisher
                .submit(
                    &s.stream,
                    &s.topic,
                    Partitioning::Partition((id % 2) as u32),
                    message(id),
                )
                .await
                .unwrap(),
        );
    }
    // The buffer is full: this call waits, and shutdown turns it away.
    let waiting = {
        let publisher = publisher.clone();
        let (stream, topic) = (s.stream.clone(), s.topic.clone());
        tokio::spawn(async move {
            publisher
                .publish(&stream, &topic, Partitioning::Partition(0), message(51))
                .await
        })
    };
    tokio::task::yield_now().await;
    within("shutdown", publisher.shutdown()).await;
    assert!(matches!(
        within("the waiting call", waiting).await.unwrap(),
        Err(BatchError::Closed)
    ));
    for receipt in pending {
        receipt
            .now_or_never()
            .expect("answered when shutdown returns")
            .unwrap();
    }
    assert_eq!(stored(&s, 2).await.len(), 50);
    let err = publisher
        .publish(&s.stream, &s.topic, Partitioning::Partition(0), message(52))
        .await
        .unwrap_err();
    assert!(matches!(err, BatchError::Closed), "{err}");
    // Idempotent.
    publisher.shutdown().await;
}

#[tokio::test]
async fn dropping_the_publisher_still_sends_what_was_queued() {
    let s = setup(1).await;
    let publisher =
        BatchingPublisher::new(s.observed.clone(), options(Duration::from_millis(5))).unwrap();
    let mut pending = Vec::new();
    for id in 1..=10u128 {
        pending.push(
            publisher
                .submit(&s.stream, &s.topic, Partitioning::Partition(0), message(id))
                .await
                .unwrap(),
        );
    }
    drop(publisher);
    for receipt in pending {
        within("receipt after drop", receipt).await.unwrap();
    }
    assert_eq!(stored(&s, 1).await.len(), 10);
}

#[tokio::test]
async fn invalid_options_are_refused() {
    let s = setup(1).await;
    for (options, field) in [
        (
            BatchingOptions {
                max_batch_messages: 0,
                ..BatchingOptions::default()
            },
            "max_batch_messages",
        ),
        (
            BatchingOptions {
                buffer_messages: 0,
                ..BatchingOptions::default()
            },
            "buffer_messages",
        ),
    ] {
        let err = BatchingPublisher::new(s.observed.clone(), options).unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant_id)]
struct OrderPlaced {
    tenant_id: String,
    seq: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typed_events_through_a_batching_transport_keep_their_order_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let orders = Transport::<OrderPlaced>::new(
        connector.clone(),
        TransportOptions {
            partitions: 4,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    let batched = BatchingTransport::new(&orders, options(Duration::from_millis(2))).unwrap();
    let tenants = 10u64;
    let per_tenant = 100u64;
    let mut tasks = Vec::new();
    for tenant in 0..tenants {
        let batched = batched.clone();
        tasks.push(tokio::spawn(async move {
            let mut pending = Vec::new();
            for seq in 0..per_tenant {
                let event = OrderPlaced {
                    tenant_id: format!("tenant-{tenant}"),
                    seq,
                };
                pending.push(
                    batched
                        .submit_with(&event, &EventMetadata::default())
                        .await
                        .unwrap(),
                );
            }
            let mut receipts = Vec::new();
            for p in pending {
                let id = p.event_id();
                let receipt = p.await.unwrap();
                assert_eq!(receipt.event_id, id);
                receipts.push(receipt);
            }
            receipts
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for receipt in within("tenant receipts", task).await.unwrap() {
            assert!(all.insert((receipt.partition, receipt.offset)));
        }
    }
    assert_eq!(all.len() as u64, tenants * per_tenant);
    // Single publishes from 200 concurrent callers, too.
    let mut callers = Vec::new();
    for caller in 0..200u64 {
        let batched = batched.clone();
        callers.push(tokio::spawn(async move {
            batched
                .publish(&OrderPlaced {
                    tenant_id: format!("solo-{caller}"),
                    seq: 0,
                })
                .await
        }));
    }
    for caller in callers {
        let receipt = within("solo receipt", caller).await.unwrap().unwrap();
        assert!(all.insert((receipt.partition, receipt.offset)));
    }
    batched.shutdown().await;

    let mut subscription = orders.subscribe("readers").await.unwrap();
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for _ in 0..all.len() {
        let delivery = within("delivery", subscription.next())
            .await
            .unwrap()
            .unwrap();
        seen.entry(delivery.tenant_id.clone())
            .or_default()
            .push(delivery.seq);
        delivery.ack().await.unwrap();
    }
    for tenant in 0..tenants {
        assert_eq!(
            seen[&format!("tenant-{tenant}")],
            (0..per_tenant).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envelopes_through_a_batching_event_transport() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let mut config = IggyConfig::default();
    config.topology.domain_partitions = 3;
    let transport = Arc::new(
        IggyTransport::with_connector(connector.clone(), config)
            .with_batching(options(Duration::from_millis(2)))
            .unwrap(),
    );
    let platform: Arc<dyn EventTransport> = transport.clone();
    let mut tasks = Vec::new();
    for caller in 0..300u64 {
        let platform = Arc::clone(&platform);
        tasks.push(tokio::spawn(async move {
            let envelope = EventEnvelope::new("order.placed", serde_json::json!({ "n": caller }))
                .with_tenant(format!("t{}", caller % 7));
            let id = envelope.id;
            platform.publish(envelope).await.map(|()| id)
        }));
    }
    let mut ids = BTreeSet::new();
    for task in tasks {
        ids.insert(within("envelope publish", task).await.unwrap().unwrap());
    }
    // publish_batch keeps the order of each tenant.
    let batch: Vec<_> = (0..50u64)
        .map(|n| {
            EventEnvelope::new("order.placed", serde_json::json!({ "seq": n }))
                .with_tenant("ordered")
        })
        .collect();
    let batch_ids: Vec<_> = batch.iter().map(|e| e.id).collect();
    platform.publish_batch(batch).await.unwrap();
    transport.shutdown().await;

    let topic = transport.transport().topic_for("order.placed").clone();
    let mut stream = transport
        .transport()
        .subscribe("readers", &topic)
        .await
        .unwrap();
    let mut ordered = Vec::new();
    for _ in 0..350 {
        let envelope = within("envelope", stream.next()).await.unwrap().unwrap();
        if envelope.tenant_id.as_deref() == Some("ordered") {
            ordered.push(envelope.id);
        } else {
            assert!(ids.remove(&envelope.id));
        }
        platform.acknowledge(envelope.ack_id).await.unwrap();
    }
    assert!(ids.is_empty());
    assert_eq!(ordered, batch_ids);
    assert!(matches!(
        platform
            .publish(EventEnvelope::new("order.placed", serde_json::json!({})))
            .await,
        Err(Error::Batch(BatchError::Closed))
    ));
}

#[tokio::test]
async fn batched_publishes_count_in_the_sent_messages_metric() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("shop", "metered-by-batching");
    create_topic(&*connector, &stream, &topic, 2).await;
    let publisher = BatchingPublisher::new(connector.clone(), options(HOUR)).unwrap();
    let mut pending = Vec::new();
    for id in 1..=25u128 {
        pending.push(
            publisher
                .submit(
                    &stream,
                    &topic,
                    Partitioning::Partition((id % 2) as u32),
                    message(id),
                )
                .await
                .unwrap(),
        );
    }
    publisher.shutdown().await;
    for receipt in pending {
        receipt.await.unwrap();
    }
    let text = rustok_iggy::connector::Metrics::global().render();
    assert!(
        text.lines().any(|line| line
            == "messaging_client_sent_messages_total{messaging_destination_name=\"metered-by-batching\"} 25"),
        "{text}"
    );
}
