//! The typed layer on both connectors: in process (embedded) and through the official
//! SDK against the embedded broker's TCP listener (remote). With `IGGY_TEST_ADDRESS`
//! set, also against that server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy::{
    Error, HandlerError, RetryPolicy, SubscriptionOptions,
    connector::StartPosition,
    consume::ConsumeOptions,
    dead_letter::DeadLetterConfig,
    health::{HealthStatus, HealthThresholds},
    replay::ReplayUntil,
    upcast::Upcasters,
};
use rustok_iggy_connector::{Headers, OutgoingMessage, PublishRequest, error_chain};
use serde::{Deserialize, Serialize};
use tests::conformance::{Harness, Target, run};
use tests::within;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant, codec = "postcard", version = 2)]
struct OrderPlaced {
    tenant: String,
    seq: u64,
    currency: String,
}

/// Version 1 of the same event, as an older producer wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlacedV1 {
    tenant: String,
    seq: u64,
}

fn order(tenant: &str, seq: u64) -> OrderPlaced {
    OrderPlaced {
        tenant: tenant.into(),
        seq,
        currency: "EUR".into(),
    }
}

async fn orders(h: &mut Harness, case: &str, partitions: u32) -> Transport<OrderPlaced> {
    let stream = h.stream(case);
    Transport::new(
        Arc::clone(&h.connector),
        TransportOptions {
            stream,
            partitions,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap()
}

async fn next<E: IggyEvent>(subscription: &mut Subscription<E>) -> Delivery<E> {
    within("a delivery", subscription.next())
        .await
        .expect("stream open")
        .expect("a delivery")
}

async fn ordering_per_key(mut h: Harness) {
    let orders = orders(&mut h, "order", 3).await;
    let tenants = ["a", "b", "c", "d"];
    let mut published: Vec<OrderPlaced> = (0..20)
        .map(|seq| order(tenants[seq as usize % 4], seq))
        .collect();
    for event in &published {
        orders.publish(event).await.unwrap();
    }
    let batch: Vec<OrderPlaced> = (20..40)
        .map(|seq| order(tenants[seq as usize % 4], seq))
        .collect();
    orders.publish_batch(&batch).await.unwrap();
    published.extend(batch);
    let mut subscription = orders.subscribe("g").await.unwrap();
    let mut per_tenant: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for _ in 0..40 {
        let d = next(&mut subscription).await;
        assert_eq!(Some(d.info().partition), d.partition(3), "{:?}", h.target);
        per_tenant.entry(d.tenant.clone()).or_default().push(d.seq);
        d.ack().await.unwrap();
    }
    for (tenant, seqs) in &per_tenant {
        let expected: Vec<u64> = published
            .iter()
            .filter(|e| &e.tenant == tenant)
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, &expected, "{:?}: order of {tenant}", h.target);
    }
    subscription.close().await.unwrap();
    h.finish().await;
}

async fn restart_redelivers_only_unacked(mut h: Harness) {
    let orders = orders(&mut h, "redeliver", 1).await;
    for seq in 0..5 {
        orders.publish(&order("a", seq)).await.unwrap();
    }
    {
        let mut subscription = orders.subscribe("billing").await.unwrap();
        for _ in 0..3 {
            next(&mut subscription).await.ack().await.unwrap();
        }
        let fourth = next(&mut subscription).await;
        assert_eq!(fourth.seq, 3);
        std::mem::forget(fourth);
        subscription.close().await.unwrap();
    }
    let other = h.another().await;
    let again = Transport::<OrderPlaced>::new(
        other,
        TransportOptions {
            stream: orders.stream().clone(),
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    let mut subscription = again.subscribe("billing").await.unwrap();
    let d = next(&mut subscription).await;
    assert_eq!(
        d.seq, 3,
        "{:?}: resumes at the first unacknowledged event",
        h.target
    );
    d.ack().await.unwrap();
    assert_eq!(next(&mut subscription).await.seq, 4);
    subscription.close().await.unwrap();
    h.finish().await;
}

async fn split_between_members(mut h: Harness) {
    let orders = orders(&mut h, "split", 4).await;
    let mut a = orders.subscribe("workers").await.unwrap();
    let mut b = orders.subscribe("workers").await.unwrap();
    // The remote assignment is learnt on the first poll: publish, then read.
    for seq in 0..40 {
        orders
            .publish(&order(&format!("t{seq}"), seq))
            .await
            .unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut from_a = 0;
    while seen.len() < 40 {
        tokio::select! {
            Some(d) = a.next() => { let d = d.unwrap(); from_a += 1; seen.insert(d.seq); d.ack().await.unwrap(); }
            Some(d) = b.next() => { let d = d.unwrap(); seen.insert(d.seq); d.ack().await.unwrap(); }
            () = tokio::time::sleep(tests::STEP_TIMEOUT) => panic!("{:?}: stalled at {}", h.target, seen.len()),
        }
    }
    assert!(
        from_a > 0 && from_a < 40,
        "{:?}: both members took a share ({from_a} of 40 from a)",
        h.target
    );
    let (pa, pb) = (a.assignment(), b.assignment());
    assert!(
        pa.iter().all(|p| !pb.contains(p)),
        "{:?}: disjoint {pa:?} {pb:?}",
        h.target
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
    h.finish().await;
}

async fn start_latest_and_decode_errors(mut h: Harness) {
    let orders = orders(&mut h, "start", 1).await;
    orders.publish(&order("a", 0)).await.unwrap();
    let mut latest = orders
        .subscribe_with(
            "late",
            StartPosition::Latest,
            SubscriptionOptions::default(),
        )
        .await
        .unwrap();
    h.connector
        .publish(
            PublishRequest::new(orders.stream().clone(), orders.topic().clone())
                .partition(0)
                .message(OutgoingMessage::new(&b"\xff\xff"[..])),
        )
        .await
        .unwrap();
    orders.publish(&order("a", 1)).await.unwrap();
    match within("the error item", latest.next()).await.unwrap() {
        Err(Error::Decode(e)) => {
            assert_eq!(e.offset, 1, "{:?}", h.target);
            // The application's decision: skip it (dropped, it would hold the partition).
            e.skip().await.unwrap();
        }
        other => panic!("{:?}: expected a decode error, got {other:?}", h.target),
    }
    assert_eq!(next(&mut latest).await.seq, 1);
    latest.close().await.unwrap();
    h.finish().await;
}

async fn retries_then_dead_letter(mut h: Harness) {
    let orders = orders(&mut h, "dlq", 2).await;
    orders.publish(&order("a", 1)).await.unwrap();
    let poison = orders.publish(&order("a", 666)).await.unwrap();
    orders.publish(&order("a", 2)).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let done = Arc::new(Notify::new());
    let options = ConsumeOptions {
        retry: RetryPolicy::fixed(3, Duration::from_millis(1)),
        ..ConsumeOptions::default()
    };
    let report = {
        let (calls, done) = (Arc::clone(&calls), Arc::clone(&done));
        let stop = Arc::clone(&done);
        within(
            "the runner",
            orders.consume(
                "ledger",
                options,
                async move { stop.notified().await },
                move |event| {
                    let (calls, done) = (Arc::clone(&calls), Arc::clone(&done));
                    async move {
                        if event.seq == 666 {
                            calls.fetch_add(1, Ordering::SeqCst);
                            return Err(HandlerError::retryable("poison"));
                        }
                        if event.seq == 2 {
                            done.notify_one();
                        }
                        Ok(())
                    }
                },
            ),
        )
        .await
        .unwrap()
    };
    assert_eq!(calls.load(Ordering::SeqCst), 3, "{:?}", h.target);
    assert_eq!((report.handled, report.dead_lettered), (2, 1));
    let letters = orders
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap()
        .list(10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].event_id, letters[0].original_offset),
        (poison.event_id, poison.offset)
    );
    h.finish().await;
}

async fn replay_windows_leave_groups_alone(mut h: Harness) {
    let orders = orders(&mut h, "replay", 2).await;
    let mut receipts = Vec::new();
    for seq in 0..10 {
        receipts.push(
            orders
                .publish(&order(if seq % 2 == 0 { "x" } else { "y" }, seq))
                .await
                .unwrap(),
        );
    }
    let mut subscription = orders.subscribe("g").await.unwrap();
    for _ in 0..4 {
        next(&mut subscription).await.ack().await.unwrap();
    }
    subscription.close().await.unwrap();
    let group = rustok_iggy::connector::GroupName::new("g").unwrap();
    let before = h
        .connector
        .committed_offsets(orders.stream(), orders.topic(), &group)
        .await
        .unwrap();

    let all: Vec<_> = within(
        "replay all",
        orders
            .replay(StartPosition::Earliest, ReplayUntil::Head)
            .await
            .unwrap()
            .collect::<Vec<_>>(),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    assert_eq!(all.len(), 10, "{:?}", h.target);
    // A time window: from the 5th event's broker timestamp on.
    let from_ts = all
        .iter()
        .find(|r| r.event.seq == 5)
        .unwrap()
        .info
        .timestamp;
    let window: Vec<u64> = within(
        "replay window",
        orders
            .replay(StartPosition::Timestamp(from_ts), ReplayUntil::Head)
            .await
            .unwrap()
            .collect::<Vec<_>>(),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap().event.seq)
    .collect();
    let expected: Vec<u64> = all
        .iter()
        .filter(|r| r.info.timestamp >= from_ts)
        .map(|r| r.event.seq)
        .collect();
    let mut window_sorted = window.clone();
    window_sorted.sort_unstable();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_unstable();
    assert_eq!(window_sorted, expected_sorted, "{:?}", h.target);
    assert!(window.contains(&5) && !window.is_empty());
    let after = h
        .connector
        .committed_offsets(orders.stream(), orders.topic(), &group)
        .await
        .unwrap();
    assert_eq!(
        before, after,
        "{:?}: replay never moves a group's offsets",
        h.target
    );
    h.finish().await;
}

async fn older_versions_through_upcasters(mut h: Harness) {
    let orders = orders(&mut h, "upcast", 1).await;
    // An old producer wrote version 1 in postcard.
    let mut headers = Headers::new();
    headers.insert_str("event_type", "order_placed").unwrap();
    headers.insert_str("schema_version", "1").unwrap();
    headers.insert_str("codec", "postcard").unwrap();
    let v1 = postcard::to_allocvec(&OrderPlacedV1 {
        tenant: "old".into(),
        seq: 7,
    })
    .unwrap();
    h.connector
        .publish(
            PublishRequest::new(orders.stream().clone(), orders.topic().clone())
                .partition(0)
                .message(OutgoingMessage::new(v1).with_headers(headers)),
        )
        .await
        .unwrap();
    // A newer producer wrote version 3, which this consumer does not know.
    let mut newer = Headers::new();
    newer.insert_str("event_type", "order_placed").unwrap();
    newer.insert_str("schema_version", "3").unwrap();
    h.connector
        .publish(
            PublishRequest::new(orders.stream().clone(), orders.topic().clone())
                .partition(0)
                .message(OutgoingMessage::new(&b"?"[..]).with_headers(newer)),
        )
        .await
        .unwrap();
    orders.publish(&order("new", 8)).await.unwrap();

    let orders =
        orders.with_upcasters(
            Upcasters::new().register("order_placed", 1, |v1: OrderPlacedV1| OrderPlaced {
                tenant: v1.tenant,
                seq: v1.seq,
                currency: "USD".into(),
            }),
        );
    let mut subscription = orders.subscribe("g").await.unwrap();
    let old = next(&mut subscription).await;
    assert_eq!(
        *old,
        OrderPlaced {
            tenant: "old".into(),
            seq: 7,
            currency: "USD".into()
        },
        "{:?}",
        h.target
    );
    assert_eq!(old.info().schema_version, 1);
    old.ack().await.unwrap();
    match within("newer version", subscription.next()).await.unwrap() {
        Err(Error::Decode(e)) => {
            // The reason is the error's source (Display does not repeat it).
            let text = error_chain(&e).to_string();
            assert!(text.contains("schema version 3"), "{text}");
            // An explicit decision (dropped, it would hold the partition).
            e.skip().await.unwrap();
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert_eq!(next(&mut subscription).await.seq, 8);
    subscription.close().await.unwrap();
    h.finish().await;
}

async fn health_degrades_with_lag(mut h: Harness) {
    let orders = orders(&mut h, "health", 1).await;
    for seq in 0..5 {
        orders.publish(&order("a", seq)).await.unwrap();
    }
    let thresholds = HealthThresholds {
        lag_degraded: 3,
        lag_unhealthy: 100,
        ..HealthThresholds::default()
    };
    let report = orders.health("g", &thresholds).await.unwrap();
    assert_eq!(
        report.status,
        HealthStatus::Degraded,
        "{:?}: {report:?}",
        h.target
    );
    assert_eq!(report.lag, vec![5]);
    let mut subscription = orders.subscribe("g").await.unwrap();
    for _ in 0..5 {
        next(&mut subscription).await.ack().await.unwrap();
    }
    subscription.commit().await.unwrap();
    let report = orders.health("g", &thresholds).await.unwrap();
    assert_eq!(
        report.status,
        HealthStatus::Healthy,
        "{:?}: {report:?}",
        h.target
    );
    assert_eq!(report.lag, vec![0]);
    subscription.close().await.unwrap();
    h.finish().await;
}

macro_rules! both_modes {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::run(super::Target::Embedded, super::$case).await; } )*
        }
        mod listener {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::run(super::Target::Listener, super::$case).await; } )*
        }
        mod external {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::run(super::Target::External, super::$case).await; } )*
        }
    };
}

/// Single-event publishes from many tasks at once (coalesced into shared requests
/// while one is in flight): every event is stored once, at the partition and offset
/// its receipt names, and each task's events keep their order.
async fn concurrent_single_publishes_keep_their_receipts(mut h: Harness) {
    let transport = orders(&mut h, "coalesce", 2).await;
    let tasks: Vec<_> = (0..50u64)
        .map(|task| {
            let transport = transport.clone();
            tokio::spawn(async move {
                let mut receipts = Vec::new();
                for seq in 0..8u64 {
                    let event = order(&format!("tenant-{}", task % 3), task * 100 + seq);
                    let receipt = transport.publish(&event).await.unwrap();
                    receipts.push((receipt, event));
                }
                receipts
            })
        })
        .collect();
    let mut published = BTreeMap::new();
    for task in tasks {
        let receipts = within("a publishing task", task).await.unwrap();
        for pair in receipts.windows(2) {
            let ((earlier, a), (later, b)) = (&pair[0], &pair[1]);
            if a.tenant == b.tenant {
                assert_eq!(earlier.partition, later.partition);
                assert!(earlier.offset < later.offset, "{earlier:?} then {later:?}");
            }
        }
        for (receipt, event) in receipts {
            let place = (receipt.partition, receipt.offset);
            assert!(
                published.insert(place, (receipt.event_id, event)).is_none(),
                "two receipts name {place:?}"
            );
        }
    }
    assert_eq!(published.len(), 400);
    let mut subscription = transport.subscribe("check").await.unwrap();
    for _ in 0..400 {
        let delivery = next(&mut subscription).await;
        let info = delivery.info();
        let (event_id, event) = published
            .remove(&(info.partition, info.offset))
            .unwrap_or_else(|| panic!("no receipt names {}:{}", info.partition, info.offset));
        assert_eq!(info.event_id, event_id);
        assert_eq!(delivery.event(), &event);
        delivery.ack().await.unwrap();
    }
    assert!(published.is_empty());
    subscription.close().await.unwrap();
    h.finish().await;
}

both_modes!(
    concurrent_single_publishes_keep_their_receipts,
    ordering_per_key,
    restart_redelivers_only_unacked,
    split_between_members,
    start_latest_and_decode_errors,
    retries_then_dead_letter,
    replay_windows_leave_groups_alone,
    older_versions_through_upcasters,
    health_degrades_with_lag,
);
