//! The handler runner: retries, the dead-letter topic, re-drive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::testing::{KitError, TestKit};
use rustok_iggy::{
    HandlerError, RetryPolicy, consume::ConsumeOptions, dead_letter::DeadLetterConfig,
};
use rustok_iggy_connector::{OutgoingMessage, PublishRequest};
use serde::{Deserialize, Serialize};
use tests::within;
use tokio::sync::{Notify, mpsc};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "payments", key = account)]
struct PaymentRequested {
    account: String,
    amount: i64,
}

fn payment(account: &str, amount: i64) -> PaymentRequested {
    PaymentRequested {
        account: account.to_owned(),
        amount,
    }
}

fn options(max_attempts: u32) -> ConsumeOptions {
    ConsumeOptions {
        retry: RetryPolicy::fixed(max_attempts, Duration::from_millis(1)),
        ..ConsumeOptions::default()
    }
}

#[tokio::test]
async fn failing_events_are_retried_then_dead_lettered_and_can_be_redriven() {
    let kit = TestKit::builder().partitions(2).start().await.unwrap();
    let connector = kit.connector();
    let payments = kit.transport::<PaymentRequested>().await.unwrap();
    let metadata = EventMetadata::new().correlation_id("corr-42");
    payments.publish(&payment("alice", 10)).await.unwrap();
    let bad = payments
        .publish_with(&payment("alice", -5), &metadata)
        .await
        .unwrap();
    payments.publish(&payment("alice", 20)).await.unwrap();
    payments.publish(&payment("bob", 30)).await.unwrap();

    let attempts = Arc::new(AtomicU32::new(0));
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let stop = Arc::new(Notify::new());
    let runner = {
        let payments = payments.clone();
        let attempts = Arc::clone(&attempts);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            payments
                .consume(
                    "ledger",
                    options(3),
                    async move { stop.notified().await },
                    move |event| {
                        let attempts = Arc::clone(&attempts);
                        let seen = seen_tx.clone();
                        async move {
                            if event.amount < 0 {
                                attempts.fetch_add(1, Ordering::SeqCst);
                                return Err(HandlerError::retryable(format!(
                                    "negative amount {}",
                                    event.amount
                                )));
                            }
                            seen.send((event.account.clone(), event.amount)).unwrap();
                            Ok(())
                        }
                    },
                )
                .await
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(within("handled events", seen_rx.recv()).await.unwrap());
    }
    let alice: Vec<i64> = seen
        .iter()
        .filter(|(a, _)| a == "alice")
        .map(|(_, x)| *x)
        .collect();
    assert_eq!(
        alice,
        vec![10, 20],
        "the partition waited for the retries, order kept"
    );

    // Every event committed: the dead letter was confirmed before its commit.
    kit.wait_for_consumed::<PaymentRequested>("ledger", 4)
        .await
        .unwrap();
    let dead_letters = payments
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    assert_eq!(dead_letters.topic().as_str(), "payments.dlq");
    let letters = kit.dead_letters::<PaymentRequested>().await.unwrap();
    assert!(matches!(
        kit.assert_no_dead_letters().await,
        Err(KitError::DeadLetters { letters }) if letters.len() == 1
    ));
    stop.notify_one();
    let report = within("runner stops", runner).await.unwrap().unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(
        (report.handled, report.retried, report.dead_lettered),
        (3, 2, 1)
    );

    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.event_id, bad.event_id);
    assert_eq!(
        (
            letter.original_topic.as_str(),
            letter.original_partition,
            letter.original_offset
        ),
        ("payments", bad.partition, bad.offset)
    );
    assert_eq!(letter.attempts, 3);
    assert_eq!(letter.group, "ledger");
    assert_eq!(letter.error, "negative amount -5");
    assert_eq!(letter.event_type.as_deref(), Some("payment_requested"));
    assert_eq!(dead_letters.depth().await.unwrap(), 1);

    // Every source offset is committed (the dead-lettered one too).
    let committed = connector
        .committed_offsets(
            payments.stream(),
            payments.topic(),
            &rustok_iggy::connector::GroupName::new("ledger").unwrap(),
        )
        .await
        .unwrap();
    let in_partition = |p: u32| {
        ["alice", "alice", "alice", "bob"]
            .iter()
            .filter(|a| payment(a, 0).partition(2) == Some(p))
            .count() as u64
    };
    for p in 0..2u32 {
        let expected = in_partition(p).checked_sub(1);
        assert_eq!(committed[p as usize], expected, "partition {p}");
    }

    // Re-drive: the event is back in the source topic with its id and correlation.
    assert!(dead_letters.redrive_one(bad.event_id).await.unwrap());
    let replay = payments
        .replay(
            StartPosition::Earliest,
            rustok_iggy::replay::ReplayUntil::Head,
        )
        .await
        .unwrap();
    use futures::StreamExt;
    let all: Vec<_> = within("replay", replay.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(all.len(), 5);
    let copies: Vec<_> = all
        .iter()
        .filter(|r| r.info.event_id == bad.event_id)
        .collect();
    assert_eq!(copies.len(), 2, "the original and the re-driven copy");
    let again = copies
        .iter()
        .find(|r| r.info.offset > bad.offset)
        .expect("re-driven after the original");
    assert_eq!(again.event, payment("alice", -5));
    assert_eq!(again.info.partition, bad.partition);
    assert_eq!(
        again.info.metadata().correlation_id.as_deref(),
        Some("corr-42")
    );
    kit.assert_no_dead_letters().await.unwrap();
    kit.shutdown().await.unwrap();
}

#[tokio::test]
async fn permanent_errors_and_undecodable_payloads_skip_the_retries() {
    let kit = TestKit::builder().partitions(1).start().await.unwrap();
    let connector = kit.connector();
    let payments = kit.transport::<PaymentRequested>().await.unwrap();
    payments.publish(&payment("carol", -1)).await.unwrap();
    connector
        .publish(
            PublishRequest::new(payments.stream().clone(), payments.topic().clone())
                .partition(0)
                .message(OutgoingMessage::new(&b"not json"[..])),
        )
        .await
        .unwrap();
    payments.publish(&payment("carol", 7)).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let handled = Arc::new(Notify::new());
    let stop = {
        let handled = Arc::clone(&handled);
        async move { handled.notified().await }
    };
    let report = {
        let calls = Arc::clone(&calls);
        let handled = Arc::clone(&handled);
        within(
            "runner",
            payments.consume("strict", options(5), stop, move |event| {
                let calls = Arc::clone(&calls);
                let handled = Arc::clone(&handled);
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if event.amount < 0 {
                        return Err(HandlerError::permanent("invalid"));
                    }
                    handled.notify_one();
                    Ok(())
                }
            }),
        )
        .await
        .unwrap()
    };
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "no retry of a permanent error"
    );
    assert_eq!(
        (report.handled, report.retried, report.dead_lettered),
        (1, 0, 2)
    );
    let letters = kit.dead_letters::<PaymentRequested>().await.unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].error, "invalid");
    assert!(
        letters[1].error.contains("could not decode"),
        "{}",
        letters[1].error
    );
    assert_eq!(&letters[1].payload[..], b"not json");
    kit.shutdown().await.unwrap();
}
