//! `rustok_iggy::testing`: each helper of the kit does what its documentation says,
//! on the real embedded broker, and fails when the thing it checks did not happen.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy::testing::{KitError, TestKit, fail_attempts, fail_first, fail_when};
use rustok_iggy::{
    Error, RetryPolicy,
    connector::{GroupName, TopicName},
    consume::ConsumeOptions,
    dead_letter::DeadLetterConfig,
};
use rustok_iggy_connector::{OutgoingMessage, PublishRequest};
use serde::{Deserialize, Serialize};
use tests::within;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "kit.orders", key = tenant)]
struct OrderPlaced {
    tenant: String,
    cents: i64,
}

fn order(tenant: &str, cents: i64) -> OrderPlaced {
    OrderPlaced {
        tenant: tenant.to_owned(),
        cents,
    }
}

/// Runs the handler runner of group `group` in the background until `stop` is
/// notified.
fn run<H, F>(
    orders: &Transport<OrderPlaced>,
    group: &'static str,
    options: ConsumeOptions,
    stop: &std::sync::Arc<Notify>,
    handler: H,
) -> tokio::task::JoinHandle<Result<rustok_iggy::consume::ConsumeReport, Error>>
where
    H: Fn(rustok_iggy::consume::Received<OrderPlaced>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), rustok_iggy::HandlerError>> + Send + 'static,
{
    let orders = orders.clone();
    let stop = std::sync::Arc::clone(stop);
    tokio::spawn(async move {
        orders
            .consume(
                group,
                options,
                async move { stop.notified().await },
                handler,
            )
            .await
    })
}

fn retry(attempts: u32, delay: Duration) -> ConsumeOptions {
    ConsumeOptions {
        retry: RetryPolicy::fixed(attempts, delay),
        ..ConsumeOptions::default()
    }
}

#[tokio::test]
async fn published_reads_back_every_event_with_its_metadata_in_partition_order() {
    let kit = TestKit::builder().partitions(3).start().await.unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    assert!(kit.published::<OrderPlaced>().await.unwrap().is_empty());
    let metadata = EventMetadata::new()
        .correlation_id("corr-1")
        .tenant_id("acme");
    let mut receipts = vec![
        orders
            .publish_with(&order("acme", 1), &metadata)
            .await
            .unwrap(),
    ];
    for (tenant, cents) in [("globex", 2), ("acme", 3), ("initech", 4)] {
        receipts.push(orders.publish(&order(tenant, cents)).await.unwrap());
    }

    let published = kit.published::<OrderPlaced>().await.unwrap();
    let mut expected: Vec<_> = receipts
        .iter()
        .zip([1, 2, 3, 4])
        .map(|(r, cents)| (r.partition, r.offset, r.event_id, cents))
        .collect();
    expected.sort();
    let found: Vec<_> = published
        .iter()
        .map(|p| (p.partition, p.offset, p.event_id, p.event.cents))
        .collect();
    assert_eq!(found, expected);
    let first = published
        .iter()
        .find(|p| p.event_id == receipts[0].event_id)
        .unwrap();
    assert_eq!(first.event, order("acme", 1));
    assert_eq!(first.event_type, "order_placed");
    assert_eq!(first.schema_version, 1);
    assert_eq!(first.metadata.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(first.metadata.tenant_id.as_deref(), Some("acme"));
    assert_eq!(first.metadata.event_id, Some(receipts[0].event_id));
    assert!(first.timestamp > 0);
    kit.shutdown().await.unwrap();
}

#[tokio::test]
async fn published_names_the_message_that_does_not_decode() {
    let kit = TestKit::builder().partitions(1).start().await.unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    orders.publish(&order("acme", 1)).await.unwrap();
    kit.connector()
        .publish(
            PublishRequest::new(orders.stream().clone(), orders.topic().clone())
                .partition(0)
                .message(OutgoingMessage::new(&b"not json"[..])),
        )
        .await
        .unwrap();
    match kit.published::<OrderPlaced>().await {
        Err(KitError::Iggy(Error::Decode(error))) => {
            assert_eq!((error.partition, error.offset), (0, 1));
        }
        other => panic!("expected the decode error of offset 1, got {other:?}"),
    }
}

#[tokio::test]
async fn wait_for_consumed_returns_when_the_commits_cover_the_events_and_not_before() {
    let kit = TestKit::builder().partitions(2).start().await.unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    for cents in 0..6 {
        orders
            .publish(&order(["a", "b", "c"][cents as usize % 3], cents))
            .await
            .unwrap();
    }
    let mut subscription = orders.subscribe("audit").await.unwrap();
    // Four acknowledged: the kit waits for exactly those commits.
    for _ in 0..4 {
        let delivery = within("a delivery", subscription.next())
            .await
            .unwrap()
            .unwrap();
        delivery.ack().await.unwrap();
    }
    let consumed = within(
        "four consumed",
        kit.wait_for_consumed::<OrderPlaced>("audit", 4),
    )
    .await
    .unwrap();
    let committed = kit
        .connector()
        .committed_offsets(
            orders.stream(),
            orders.topic(),
            &GroupName::new("audit").unwrap(),
        )
        .await
        .unwrap();
    let covered: u64 = committed.iter().flatten().map(|o| o + 1).sum();
    assert!(consumed >= 4, "{consumed}");
    assert_eq!(consumed, covered, "the count is what the broker committed");
    drop(subscription);
}

#[tokio::test(start_paused = true)]
async fn wait_for_consumed_fails_with_what_was_reached_when_the_count_never_comes() {
    let kit = TestKit::builder()
        .partitions(1)
        .timeout(Duration::from_secs(5))
        .start()
        .await
        .unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    orders.publish(&order("a", 1)).await.unwrap();
    orders.publish(&order("a", 2)).await.unwrap();
    let mut subscription = orders.subscribe("slow").await.unwrap();
    subscription
        .next()
        .await
        .unwrap()
        .unwrap()
        .ack_and_commit()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    match kit.wait_for_consumed::<OrderPlaced>("slow", 2).await {
        Err(KitError::NotConsumed {
            group,
            consumed,
            expected,
            waited,
            ..
        }) => {
            assert_eq!((group.as_str(), consumed, expected), ("slow", 1, 2));
            assert_eq!(waited, Duration::from_secs(5));
        }
        other => panic!("expected NotConsumed, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(5), "it waited");
    // A group that never existed counts as nothing consumed.
    assert!(matches!(
        kit.wait_for_consumed::<OrderPlaced>("nobody", 1).await,
        Err(KitError::NotConsumed { consumed: 0, .. })
    ));
}

#[tokio::test]
async fn assert_no_dead_letters_lists_every_open_letter_of_every_dead_letter_topic() {
    let kit = TestKit::builder().partitions(1).start().await.unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    kit.assert_no_dead_letters().await.unwrap();
    let bad = orders.publish(&order("a", -1)).await.unwrap();
    orders.publish(&order("a", 2)).await.unwrap();
    let stop = std::sync::Arc::new(Notify::new());
    let runner = run(
        &orders,
        "ledger",
        retry(3, Duration::from_millis(1)),
        &stop,
        fail_when(|o: &OrderPlaced| o.cents < 0, |_| async { Ok(()) }),
    );
    // A second group writes its letters to a topic of its own name.
    let custom = TopicName::new("kit.orders.poison").unwrap();
    let custom_runner = run(
        &orders,
        "custom",
        ConsumeOptions {
            dead_letter: DeadLetterConfig {
                topic: Some(custom.clone()),
                retention: None,
            },
            ..retry(1, Duration::from_millis(1))
        },
        &stop,
        fail_when(|o: &OrderPlaced| o.cents < 0, |_| async { Ok(()) }),
    );
    within(
        "ledger consumed",
        kit.wait_for_consumed::<OrderPlaced>("ledger", 2),
    )
    .await
    .unwrap();
    within(
        "custom consumed",
        kit.wait_for_consumed::<OrderPlaced>("custom", 2),
    )
    .await
    .unwrap();
    stop.notify_waiters();
    let ledger = runner.await.unwrap().unwrap();
    assert_eq!((ledger.handled, ledger.dead_lettered), (1, 1));
    custom_runner.await.unwrap().unwrap();

    let letters = kit.dead_letters::<OrderPlaced>().await.unwrap();
    assert_eq!(
        letters.len(),
        1,
        "the default topic has the ledger's letter"
    );
    assert_eq!(
        (letters[0].event_id, letters[0].attempts),
        (bad.event_id, 1),
        "a permanent injected failure is not retried"
    );
    assert!(letters[0].error.contains("injected handler failure"));
    match kit.assert_no_dead_letters().await {
        Err(KitError::DeadLetters { letters }) => {
            let mut groups: Vec<_> = letters.iter().map(|l| l.group.as_str()).collect();
            groups.sort_unstable();
            assert_eq!(groups, ["custom", "ledger"], "both topics were searched");
            let text = KitError::DeadLetters { letters }.to_string();
            assert!(text.starts_with("2 open dead letter(s)"), "{text}");
            assert!(text.contains("kit.orders partition 0 offset 0"), "{text}");
        }
        other => panic!("expected two dead letters, got {other:?}"),
    }
    // Settled letters are not open any more.
    for topic in [None, Some(custom)] {
        let config = DeadLetterConfig {
            topic,
            retention: None,
        };
        orders
            .dead_letters(&config)
            .await
            .unwrap()
            .dismiss(|_| true)
            .await
            .unwrap();
    }
    kit.assert_no_dead_letters().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn on_a_paused_clock_retry_backoffs_and_nack_delays_pass_without_waiting() {
    const HOUR: Duration = Duration::from_secs(3600);
    let kit = TestKit::builder()
        .partitions(1)
        .timeout(10 * HOUR)
        .start()
        .await
        .unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    orders.publish(&order("a", 1)).await.unwrap();
    let started = tokio::time::Instant::now();

    // Two failures, each followed by a backoff of an hour, then success.
    let stop = std::sync::Arc::new(Notify::new());
    let runner = run(
        &orders,
        "patient",
        retry(3, HOUR),
        &stop,
        fail_attempts(2, |_| async { Ok(()) }),
    );
    kit.wait_for_consumed::<OrderPlaced>("patient", 1)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= 2 * HOUR,
        "both backoffs ran on the tokio clock: {:?}",
        started.elapsed()
    );
    stop.notify_waiters();
    let report = runner.await.unwrap().unwrap();
    assert_eq!((report.handled, report.retried), (1, 2));
    kit.assert_no_dead_letters().await.unwrap();

    // A nack of an hour: delivered again an hour later on the paused clock.
    let mut subscription = orders.subscribe("nacking").await.unwrap();
    let first = subscription.next().await.unwrap().unwrap();
    let nacked_at = tokio::time::Instant::now();
    first.nack(HOUR);
    let again = subscription.next().await.unwrap().unwrap();
    assert_eq!(again.info().attempt, 2);
    assert!(nacked_at.elapsed() >= HOUR, "{:?}", nacked_at.elapsed());
    again.ack_and_commit().await.unwrap();
    kit.wait_for_consumed::<OrderPlaced>("nacking", 1)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn injected_failures_count_as_their_documentation_says() {
    let kit = TestKit::builder().partitions(1).start().await.unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    for cents in 0..3 {
        orders.publish(&order("a", cents)).await.unwrap();
    }
    let stop = std::sync::Arc::new(Notify::new());

    // The first two calls fail, over all events: the first event is retried twice.
    let first_calls = run(
        &orders,
        "first",
        retry(3, Duration::from_secs(1)),
        &stop,
        fail_first(2, |_| async { Ok(()) }),
    );
    // Every event fails its first two attempts, and two attempts is all there is.
    let every_event = run(
        &orders,
        "every",
        retry(2, Duration::from_secs(1)),
        &stop,
        fail_attempts(2, |_| async { Ok(()) }),
    );
    kit.wait_for_consumed::<OrderPlaced>("first", 3)
        .await
        .unwrap();
    kit.wait_for_consumed::<OrderPlaced>("every", 3)
        .await
        .unwrap();
    stop.notify_waiters();
    let first = first_calls.await.unwrap().unwrap();
    assert_eq!(
        (first.handled, first.retried, first.dead_lettered),
        (3, 2, 0)
    );
    let every = every_event.await.unwrap().unwrap();
    assert_eq!(
        (every.handled, every.retried, every.dead_lettered),
        (0, 3, 3)
    );
    let letters = kit.dead_letters::<OrderPlaced>().await.unwrap();
    assert_eq!(letters.len(), 3);
    assert!(
        letters
            .iter()
            .all(|l| l.attempts == 2 && l.group == "every")
    );
}

#[tokio::test]
async fn restart_keeps_events_and_commits_and_the_transports_made_before() {
    let kit = TestKit::builder().partitions(1).start().await.unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    for cents in 0..4 {
        orders.publish(&order("a", cents)).await.unwrap();
    }
    let mut subscription = orders.subscribe("resume").await.unwrap();
    for _ in 0..2 {
        let delivery = within("a delivery", subscription.next())
            .await
            .unwrap()
            .unwrap();
        delivery.ack().await.unwrap();
    }
    within(
        "two consumed",
        kit.wait_for_consumed::<OrderPlaced>("resume", 2),
    )
    .await
    .unwrap();

    within("the restart", kit.restart()).await.unwrap();
    // The old subscription hands out what it had fetched, commits none of it, and
    // ends.
    let mut stale = 0;
    while let Some(delivery) = within("the old stream ends", subscription.next()).await {
        assert!(delivery.unwrap().ack_and_commit().await.is_err());
        stale += 1;
    }
    assert!(stale <= 2, "{stale}");
    drop(subscription);
    assert_eq!(kit.published::<OrderPlaced>().await.unwrap().len(), 4);
    orders.publish(&order("a", 4)).await.unwrap();
    let mut resumed = orders.subscribe("resume").await.unwrap();
    let mut offsets = Vec::new();
    for _ in 0..3 {
        let delivery = within("a delivery after the restart", resumed.next())
            .await
            .unwrap()
            .unwrap();
        offsets.push(delivery.info().offset);
        delivery.ack().await.unwrap();
    }
    assert_eq!(offsets, [2, 3, 4], "resumed after the committed offset");
    within(
        "all consumed",
        kit.wait_for_consumed::<OrderPlaced>("resume", 5),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_data_directory_lives_as_long_as_the_kit() {
    let kit = TestKit::start().await.unwrap();
    let dir = kit.data_dir().to_owned();
    kit.transport::<OrderPlaced>()
        .await
        .unwrap()
        .publish(&order("a", 1))
        .await
        .unwrap();
    assert!(dir.is_dir());
    kit.shutdown().await.unwrap();
    assert!(!dir.exists(), "the temporary directory is deleted");
}

/// A tenant whose events go to `partition` of `partitions`.
fn tenant_on(partition: u32, partitions: u32) -> String {
    (0..)
        .map(|n| format!("t{n}"))
        .find(|t| rustok_iggy::connector::partition_for(t.as_bytes(), partitions) == partition)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn wait_for_consumed_does_not_count_the_events_of_partitions_nobody_committed() {
    let kit = TestKit::builder()
        .partitions(2)
        .timeout(Duration::from_secs(5))
        .start()
        .await
        .unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    let (zero, one) = (tenant_on(0, 2), tenant_on(1, 2));
    for cents in 0..3 {
        orders.publish(&order(&zero, cents)).await.unwrap();
    }
    orders.publish(&order(&one, 9)).await.unwrap();
    // Only partition 0's events are committed: 3 of the 4.
    let mut subscription = orders.subscribe("half").await.unwrap();
    let mut committed = 0;
    while committed < 3 {
        let delivery = subscription.next().await.unwrap().unwrap();
        if delivery.info().partition == 0 {
            delivery.ack_and_commit().await.unwrap();
            committed += 1;
        } else {
            std::mem::forget(delivery);
        }
    }
    assert_eq!(
        kit.wait_for_consumed::<OrderPlaced>("half", 3)
            .await
            .unwrap(),
        3
    );
    match kit.wait_for_consumed::<OrderPlaced>("half", 4).await {
        Err(KitError::NotConsumed { consumed: 3, .. }) => {}
        other => panic!("expected NotConsumed with 3, got {other:?}"),
    }
    // Across partitions and after a restart, `published` sees all four.
    kit.restart().await.unwrap();
    let published = kit.published::<OrderPlaced>().await.unwrap();
    let partitions: Vec<_> = published.iter().map(|p| p.partition).collect();
    assert_eq!(partitions, [0, 0, 0, 1]);
}

#[tokio::test]
async fn assert_no_dead_letters_finds_a_custom_topic_whose_letters_are_on_a_later_partition() {
    let kit = TestKit::builder().partitions(2).start().await.unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    orders.publish(&order(&tenant_on(1, 2), -1)).await.unwrap();
    let stop = std::sync::Arc::new(Notify::new());
    let runner = run(
        &orders,
        "custom",
        ConsumeOptions {
            dead_letter: DeadLetterConfig {
                topic: Some(TopicName::new("poison").unwrap()),
                retention: None,
            },
            ..retry(1, Duration::from_millis(1))
        },
        &stop,
        fail_when(|o: &OrderPlaced| o.cents < 0, |_| async { Ok(()) }),
    );
    within(
        "consumed",
        kit.wait_for_consumed::<OrderPlaced>("custom", 1),
    )
    .await
    .unwrap();
    stop.notify_waiters();
    assert_eq!(runner.await.unwrap().unwrap().dead_lettered, 1);
    match kit.assert_no_dead_letters().await {
        Err(KitError::DeadLetters { letters }) => {
            assert_eq!(letters.len(), 1);
            assert_eq!(letters[0].original_partition, 1);
        }
        other => panic!("expected the letter of the custom topic, got {other:?}"),
    }
}
