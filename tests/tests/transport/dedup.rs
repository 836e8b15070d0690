//! Effectively-once publish on the embedded connector: a publish whose batch the
//! broker stored but whose answer was lost (a wrapper connector that fails after the
//! real publish) is sent again with the same ids, stored once, and the receipt says
//! it was a duplicate; through `Transport`, `publish_batch` and the batching
//! publisher; each group that gives up on an event keeps a dead letter of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rustok_iggy::prelude::*;
use rustok_iggy::{
    HandlerError, PublishRetry, RetryPolicy,
    batching::{BatchingOptions, BatchingTransport},
    connector::IggyConnector,
    consume::ConsumeOptions,
    dead_letter::{DeadLetterConfig, DeadLetters},
    metadata::EventMetadata,
    testing::{Hooks, Observed},
};
use rustok_iggy_connector::{
    ConnectorError, OutgoingMessage, PublishReceipt, PublishRequest, StartPosition, StreamName,
    TopicName,
};
use serde::{Deserialize, Serialize};
use tests::{embedded_config, open_embedded};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "payments")]
struct Paid {
    n: u64,
}

/// Hooks on a real connector: the next `lose` publishes are stored by it, then
/// answered with an error (a timeout, unless told otherwise), as if the answer had
/// been lost on the way.
#[derive(Debug)]
struct LostAnswers {
    lose: AtomicU32,
    publishes: AtomicU32,
    answer: fn() -> ConnectorError,
}

impl LostAnswers {
    fn new(inner: Arc<dyn IggyConnector>, lose: u32) -> Arc<Observed<Self>> {
        Self::answering(inner, lose, timed_out)
    }

    /// Like [`LostAnswers::new`], answering a lost publish with `answer()`.
    fn answering(
        inner: Arc<dyn IggyConnector>,
        lose: u32,
        answer: fn() -> ConnectorError,
    ) -> Arc<Observed<Self>> {
        Observed::new(
            inner,
            Self {
                lose: AtomicU32::new(lose),
                publishes: AtomicU32::new(0),
                answer,
            },
        )
    }
}

fn timed_out() -> ConnectorError {
    ConnectorError::Timeout {
        what: "injected: the publish answer was lost after the broker stored the batch".into(),
        after: Duration::from_secs(5),
    }
}

/// The official SDK's own report of a lost connection, as a remote connector may
/// hold it: an Iggy error inside the connector's error.
fn sdk_disconnected() -> ConnectorError {
    ConnectorError::Iggy {
        context: "injected: the connection dropped after the broker stored the batch".into(),
        source: iggy::prelude::IggyError::Disconnected,
    }
}

#[async_trait]
impl Hooks for LostAnswers {
    async fn before_publish(&self, _request: &PublishRequest) -> Result<(), ConnectorError> {
        self.publishes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn after_publish(
        &self,
        _stream: &StreamName,
        _topic: &TopicName,
        answer: Result<PublishReceipt, ConnectorError>,
    ) -> Result<PublishReceipt, ConnectorError> {
        let receipt = answer?;
        let lost = self
            .lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lost {
            return Err((self.answer)());
        }
        Ok(receipt)
    }
}

fn options() -> TransportOptions {
    TransportOptions {
        partitions: 2,
        publish_retry: PublishRetry {
            backoff: Duration::from_millis(1),
            ..PublishRetry::default()
        },
        ..TransportOptions::default()
    }
}

/// Every stored event id of the topic, over both partitions.
async fn stored(connector: &dyn IggyConnector) -> Vec<u128> {
    let stream = StreamName::new("rustok").unwrap();
    let topic = TopicName::new("payments").unwrap();
    let mut ids = Vec::new();
    for partition in 0..2 {
        let read = connector
            .poll(&stream, &topic, partition, StartPosition::Earliest, 1000)
            .await
            .unwrap();
        ids.extend(read.iter().map(|m| m.id));
    }
    ids
}

#[tokio::test]
async fn a_publish_whose_answer_was_lost_is_retried_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = open_embedded(&embedded_config(dir.path())).await;
    let lossy = LostAnswers::new(embedded.clone(), 1);
    let payments = Transport::<Paid>::new(lossy.clone(), options())
        .await
        .unwrap();

    let receipt = payments.publish(&Paid { n: 1 }).await.unwrap();
    assert_eq!(
        lossy.hooks().publishes.load(Ordering::SeqCst),
        2,
        "one retry"
    );
    assert!(
        receipt.duplicate,
        "the retry found the first attempt stored"
    );
    assert_eq!(receipt.offset, 0);
    assert_eq!(
        stored(embedded.as_ref()).await,
        [receipt.event_id.as_u128()]
    );

    // Without a lost answer a publish is no duplicate.
    let fresh = payments.publish(&Paid { n: 2 }).await.unwrap();
    assert!(!fresh.duplicate);
    assert_eq!(stored(embedded.as_ref()).await.len(), 2);
}

/// A disconnect the SDK reports (an Iggy error, `ErrorKind::Transient`) is retried
/// like a lost connection: the resend carries the same id and is stored once.
#[tokio::test]
async fn a_publish_that_lost_its_connection_in_an_sdk_error_is_retried_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = open_embedded(&embedded_config(dir.path())).await;
    let lossy = LostAnswers::answering(embedded.clone(), 1, sdk_disconnected);
    let payments = Transport::<Paid>::new(lossy.clone(), options())
        .await
        .unwrap();

    let receipt = payments.publish(&Paid { n: 1 }).await.unwrap();
    assert_eq!(
        lossy.hooks().publishes.load(Ordering::SeqCst),
        2,
        "one retry"
    );
    assert!(
        receipt.duplicate,
        "the retry found the first attempt stored"
    );
    assert_eq!(
        stored(embedded.as_ref()).await,
        [receipt.event_id.as_u128()]
    );
}

#[tokio::test]
async fn a_batch_whose_answer_was_lost_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = open_embedded(&embedded_config(dir.path())).await;
    let lossy = LostAnswers::new(embedded.clone(), 1);
    let payments = Transport::<Paid>::new(lossy.clone(), options())
        .await
        .unwrap();
    let events: Vec<Paid> = (0..5).map(|n| Paid { n }).collect();
    let receipts = payments.publish_batch(&events).await.unwrap();
    assert!(receipts.iter().all(|r| r.duplicate));
    let offsets: Vec<u64> = receipts.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4]);
    let mut ids: Vec<u128> = receipts.iter().map(|r| r.event_id.as_u128()).collect();
    let mut stored = stored(embedded.as_ref()).await;
    ids.sort_unstable();
    stored.sort_unstable();
    assert_eq!(stored, ids);
}

#[tokio::test]
async fn the_batching_publisher_retries_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = open_embedded(&embedded_config(dir.path())).await;
    let lossy = LostAnswers::new(embedded.clone(), 1);
    let payments = Transport::<Paid>::new(lossy.clone(), options())
        .await
        .unwrap();
    let batching = BatchingTransport::new(
        &payments,
        BatchingOptions {
            publish_retry: PublishRetry {
                backoff: Duration::from_millis(1),
                ..PublishRetry::default()
            },
            ..BatchingOptions::default()
        },
    )
    .unwrap();
    let pending: Vec<_> = {
        let mut pending = Vec::new();
        for n in 0..10 {
            pending.push(
                batching
                    .submit_with(&Paid { n }, &EventMetadata::default())
                    .await
                    .unwrap(),
            );
        }
        pending
    };
    let mut receipts = Vec::new();
    for receipt in pending {
        receipts.push(receipt.await.unwrap());
    }
    assert!(
        receipts.iter().any(|r| r.duplicate),
        "the lost batch was found"
    );
    let mut ids: Vec<u128> = receipts.iter().map(|r| r.event_id.as_u128()).collect();
    let mut stored = stored(embedded.as_ref()).await;
    ids.sort_unstable();
    stored.sort_unstable();
    assert_eq!(stored, ids, "every event stored once");
}

#[tokio::test]
async fn without_retries_the_lost_answer_is_an_error_and_nothing_is_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = open_embedded(&embedded_config(dir.path())).await;
    let lossy = LostAnswers::new(embedded.clone(), 1);
    let payments = Transport::<Paid>::new(
        lossy.clone(),
        TransportOptions {
            publish_retry: PublishRetry::none(),
            ..options()
        },
    )
    .await
    .unwrap();
    let error = payments.publish(&Paid { n: 1 }).await.unwrap_err();
    assert!(error.to_string().contains("answer was lost"), "{error}");
    assert_eq!(lossy.hooks().publishes.load(Ordering::SeqCst), 1);
}

/// Runs a handler that gives up on every event, as group `group`, until `letters`
/// holds `depth` open letters.
async fn dead_letter_as(
    transport: &Transport<Paid>,
    letters: &DeadLetters,
    group: &'static str,
    depth: u64,
) {
    let stop = Arc::new(tokio::sync::Notify::new());
    let runner = {
        let transport = transport.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            transport
                .consume(
                    group,
                    ConsumeOptions {
                        retry: RetryPolicy::fixed(1, Duration::from_millis(1)),
                        ..ConsumeOptions::default()
                    },
                    async move { stop.notified().await },
                    |_| async { Err(HandlerError::permanent("refused")) },
                )
                .await
        })
    };
    tests::within(&format!("{group} dead-letters the event"), async {
        while letters.depth().await.unwrap() < depth {
            tokio::task::yield_now().await;
        }
    })
    .await;
    stop.notify_one();
    let report = tests::within("the runner stops", runner)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.dead_lettered, 1, "{group}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_giving_up_on_one_event_each_leave_a_letter() {
    let dir = tempfile::tempdir().unwrap();
    let connector: Arc<dyn IggyConnector> = open_embedded(&embedded_config(dir.path())).await;
    let transport = Transport::<Paid>::new(Arc::clone(&connector), TransportOptions::default())
        .await
        .unwrap();
    let letters = transport
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    let receipt = transport.publish(&Paid { n: 1 }).await.unwrap();
    dead_letter_as(&transport, &letters, "billing", 1).await;
    // Another group gives up on the same event: its letter is its own, not a
    // duplicate of billing's.
    dead_letter_as(&transport, &letters, "audit", 2).await;
    let open = letters.list(usize::MAX).await.unwrap();
    let mut groups: Vec<&str> = open.iter().map(|l| l.group.as_str()).collect();
    groups.sort_unstable();
    assert_eq!(groups, ["audit", "billing"]);
    assert!(open.iter().all(|l| l.event_id == receipt.event_id));
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_keyless_event_published_again_with_its_event_id_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = open_embedded(&embedded_config(dir.path())).await;
    let payments = Transport::<Paid>::new(embedded.clone(), options())
        .await
        .unwrap();
    // What the application does after a publish that failed: the same event, its
    // event id named, published again. Without a key it must still go to the
    // partition of the first attempt, where the broker remembers the id.
    let metadata = EventMetadata::new().event_id(uuid::Uuid::new_v4());
    let first = payments
        .publish_with(&Paid { n: 1 }, &metadata)
        .await
        .unwrap();
    let again = payments
        .publish_with(&Paid { n: 1 }, &metadata)
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(
        again.duplicate,
        "the second publish was a duplicate: {again:?}"
    );
    assert_eq!(
        (again.partition, again.offset),
        (first.partition, first.offset)
    );
    assert_eq!(stored(embedded.as_ref()).await, [first.event_id.as_u128()]);
}

/// Hooks that refuse the first publish before the broker sees it (a timeout) and
/// keep what every attempt carried: partition, ids, payloads and headers.
#[derive(Debug, Default)]
struct RefusedOnce {
    attempts: std::sync::Mutex<Vec<(String, Vec<OutgoingMessage>)>>,
}

#[async_trait]
impl Hooks for RefusedOnce {
    async fn before_publish(&self, request: &PublishRequest) -> Result<(), ConnectorError> {
        let mut attempts = self.attempts.lock().unwrap();
        attempts.push((
            format!("{:?}", request.partitioning),
            request.messages.clone(),
        ));
        if attempts.len() == 1 {
            return Err(timed_out());
        }
        Ok(())
    }
}

/// A batch whose first attempt failed before it was stored: the retry sends the
/// same messages (partition, ids, payloads, headers), and they are what is stored.
#[tokio::test]
async fn a_retried_batch_resends_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = open_embedded(&embedded_config(dir.path())).await;
    let refusing = Observed::new(embedded.clone(), RefusedOnce::default());
    let payments = Transport::<Paid>::new(refusing.clone(), options())
        .await
        .unwrap();
    let events: Vec<Paid> = (0..5).map(|n| Paid { n }).collect();
    let receipts = payments.publish_batch(&events).await.unwrap();
    assert!(
        receipts.iter().all(|r| !r.duplicate),
        "the first attempt stored nothing"
    );

    let attempts = refusing.hooks().attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 2, "one retry");
    assert_eq!(
        attempts[1], attempts[0],
        "the retry resent the same messages"
    );
    let sent = &attempts[1].1;
    let ids: Vec<u128> = receipts.iter().map(|r| r.event_id.as_u128()).collect();
    assert_eq!(sent.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    for (message, event) in sent.iter().zip(&events) {
        assert_eq!(Paid::decode(&message.payload).unwrap(), *event);
        let id = uuid::Uuid::from_u128(message.id).to_string();
        assert_eq!(message.headers.get_str("event_id"), Some(id.as_str()));
    }

    let partition = receipts[0].partition;
    let stored = embedded
        .poll(
            &StreamName::new("rustok").unwrap(),
            &TopicName::new("payments").unwrap(),
            partition,
            StartPosition::Earliest,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), events.len(), "stored once");
    for (stored, sent) in stored.iter().zip(sent) {
        assert_eq!(stored.id, sent.id);
        assert_eq!(stored.payload, sent.payload);
        assert_eq!(stored.headers, sent.headers);
    }
}
