//! The settle vocabulary of a subscription on both connectors: `term` (poison,
//! straight to the dead-letter topic under the commit rule) and the acknowledgement
//! deadline (`ack_wait`, extended by `in_progress`).

use std::sync::Arc;
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{
    SubscriptionOptions,
    connector::{GroupName, IggyConnector},
    dead_letter::{DeadLetter, DeadLetterConfig},
};
use rustok_iggy_connector::metric_names;
use serde::{Deserialize, Serialize};
use tests::conformance::Harness;
use tests::faulty::DeadLetterOutage;
use tests::{metric_value, within};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "settle", key = tenant)]
struct Step {
    tenant: String,
    seq: u64,
}

fn step(seq: u64) -> Step {
    Step {
        tenant: "t".into(),
        seq,
    }
}

async fn steps(connector: Arc<dyn IggyConnector>, h: &mut Harness, case: &str) -> Transport<Step> {
    let stream = h.stream(case);
    let transport = Transport::new(
        connector,
        TransportOptions {
            stream,
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .expect("the topic is ready");
    for seq in 0..3 {
        transport.publish(&step(seq)).await.unwrap();
    }
    transport
}

async fn next(subscription: &mut Subscription<Step>) -> Delivery<Step> {
    within("a delivery", subscription.next())
        .await
        .expect("stream open")
        .expect("a delivery")
}

async fn committed(transport: &Transport<Step>, group: &str) -> Option<u64> {
    within(
        "committed offsets",
        transport.connector().committed_offsets(
            transport.stream(),
            transport.topic(),
            &GroupName::new(group).unwrap(),
        ),
    )
    .await
    .expect("committed offsets")[0]
}

async fn letters(transport: &Transport<Step>) -> Vec<DeadLetter> {
    transport
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap()
        .list(100)
        .await
        .unwrap()
}

/// A term'd delivery is in the dead-letter topic once, with its reason and attempt
/// count, the events after it flow, and the commit passes it.
async fn term_dead_letters_at_once_with_the_reason(mut h: Harness) {
    let transport = steps(Arc::clone(&h.connector), &mut h, "term").await;
    let mut subscription = transport.subscribe("term").await.unwrap();
    next(&mut subscription).await.ack().await.unwrap();
    let poison = next(&mut subscription).await;
    assert_eq!(poison.seq, 1);
    let poison_id = poison.info().event_id;
    poison.term("amount is negative").await.unwrap();
    let after = next(&mut subscription).await;
    assert_eq!(after.seq, 2, "the event after the poison flows");
    after.ack().await.unwrap();
    subscription.commit().await.unwrap();
    assert_eq!(committed(&transport, "term").await, Some(2));
    let letters = letters(&transport).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].event_id, poison_id);
    assert_eq!(letters[0].error, "amount is negative");
    assert_eq!(letters[0].original_offset, 1);
    assert_eq!(letters[0].attempts, 1);
    subscription.close().await.unwrap();
    h.finish().await;
}

/// While the dead-letter topic refuses writes, `term` fails and nothing at or after
/// the event is committed, even with later events acknowledged; once it is back,
/// the event comes again, terminates, and the commit moves on.
async fn term_commits_nothing_past_a_failed_dead_letter(mut h: Harness) {
    let outage = DeadLetterOutage::new(Arc::clone(&h.connector));
    let transport = steps(outage.clone(), &mut h, "termdown").await;
    let options = SubscriptionOptions {
        redelivery_backoff: rustok_iggy::consume::Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(10),
        ),
        ..SubscriptionOptions::default()
    };
    let mut subscription = transport
        .subscribe_with("termdown", StartPosition::Earliest, options)
        .await
        .unwrap();
    let first = next(&mut subscription).await;
    let poison = next(&mut subscription).await;
    let later = next(&mut subscription).await;
    assert_eq!((first.seq, poison.seq, later.seq), (0, 1, 2));
    first.ack().await.unwrap();
    outage.hooks().set_down(true);
    poison
        .term("poison")
        .await
        .expect_err("the dead-letter write is refused");
    later.ack().await.unwrap();
    subscription.commit().await.unwrap();
    assert_eq!(
        committed(&transport, "termdown").await,
        Some(0),
        "nothing past the event whose dead letter failed is committed"
    );
    outage.hooks().set_down(false);
    assert!(letters(&transport).await.is_empty());
    let again = next(&mut subscription).await;
    assert_eq!((again.seq, again.info().attempt), (1, 2));
    again.term("poison").await.unwrap();
    let later = next(&mut subscription).await;
    assert_eq!(later.seq, 2, "the event after it is delivered again");
    later.ack().await.unwrap();
    subscription.commit().await.unwrap();
    assert_eq!(committed(&transport, "termdown").await, Some(2));
    assert_eq!(letters(&transport).await.len(), 1);
    subscription.close().await.unwrap();
    h.finish().await;
}

fn with_ack_wait(wait: Duration) -> SubscriptionOptions {
    SubscriptionOptions {
        ack_wait: Some(wait),
        ..SubscriptionOptions::default()
    }
}

/// A delivery neither settled nor extended within `ack_wait` is delivered again
/// with the next attempt number, and the expiry is counted.
async fn an_expired_delivery_is_delivered_again(mut h: Harness) {
    let transport = steps(Arc::clone(&h.connector), &mut h, "expire").await;
    let group = format!("expire-{:?}", h.target).to_lowercase();
    let labels = [
        ("messaging_destination_name", "settle"),
        ("messaging_consumer_group_name", group.as_str()),
    ];
    let before = metric_value(metric_names::ACK_EXPIRED, &labels);
    let mut subscription = transport
        .subscribe_with(
            &group,
            StartPosition::Earliest,
            with_ack_wait(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    let hung = next(&mut subscription).await;
    assert_eq!((hung.seq, hung.info().attempt), (0, 1));
    let mut others = Vec::new();
    // The two later events may expire too while the first one's copy is awaited.
    let again = loop {
        let delivery = next(&mut subscription).await;
        if delivery.seq == 0 {
            break delivery;
        }
        others.push(delivery);
    };
    assert_eq!(
        again.info().attempt,
        2,
        "the redelivery counts as attempt 2"
    );
    assert!(hung.is_expired());
    assert!(metric_value(metric_names::ACK_EXPIRED, &labels) >= before + 1.0);
    again.ack().await.unwrap();
    drop(hung);
    drop(others);
    subscription.close().await.unwrap();
    h.finish().await;
}

/// `in_progress` moves the deadline: the first delivery, extended every quarter of
/// `ack_wait` while the subscription is awaited (a handler's heartbeat), outlives
/// the second one, which is not extended: the second one is delivered again first
/// and the first one has not expired. (Without the extension the first one's
/// deadline, the earlier one, comes first.)
async fn in_progress_prevents_the_redelivery(mut h: Harness) {
    let transport = steps(Arc::clone(&h.connector), &mut h, "progress").await;
    let wait = Duration::from_millis(400);
    let mut subscription = transport
        .subscribe_with("progress", StartPosition::Earliest, with_ack_wait(wait))
        .await
        .unwrap();
    let long = next(&mut subscription).await;
    let short = next(&mut subscription).await;
    let third = next(&mut subscription).await;
    assert_eq!((long.seq, short.seq, third.seq), (0, 1, 2));
    third.ack().await.unwrap();
    let mut heartbeat = tokio::time::interval(wait / 4);
    let again = within("the redelivery", async {
        loop {
            tokio::select! {
                _ = heartbeat.tick() => long.in_progress(),
                delivery = subscription.next() => break delivery,
            }
        }
    })
    .await
    .expect("stream open")
    .expect("a delivery");
    assert_eq!(
        (again.seq, again.info().attempt),
        (1, 2),
        "the delivery that was not extended expires first"
    );
    assert!(short.is_expired());
    assert!(!long.is_expired(), "the extended delivery has not expired");
    long.ack().await.unwrap();
    again.ack().await.unwrap();
    subscription.commit().await.unwrap();
    assert_eq!(committed(&transport, "progress").await, Some(2));
    drop(short);
    assert_eq!(subscription.in_flight(), 0);
    subscription.close().await.unwrap();
    h.finish().await;
}

/// A late `ack` of an expired delivery counts the event as handled once: the
/// commit moves to it but not past the next, unhandled event; acknowledging the
/// copy delivered again commits nothing more, and the in-flight count ends at zero
/// (no slot is given back twice).
async fn a_late_ack_commits_once_and_never_past_an_unhandled_event(mut h: Harness) {
    let transport = steps(Arc::clone(&h.connector), &mut h, "late").await;
    let mut subscription = transport
        .subscribe_with(
            "late",
            StartPosition::Earliest,
            with_ack_wait(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    let late = next(&mut subscription).await;
    let unhandled = next(&mut subscription).await;
    let mut pending = vec![unhandled];
    let copy = loop {
        let delivery = next(&mut subscription).await;
        if delivery.seq == 0 {
            break delivery;
        }
        pending.push(delivery);
    };
    assert!(late.is_expired());
    late.ack().await.unwrap();
    subscription.commit().await.unwrap();
    assert_eq!(
        committed(&transport, "late").await,
        Some(0),
        "the late ack commits its event, not the unhandled one after it"
    );
    copy.ack().await.unwrap();
    subscription.commit().await.unwrap();
    assert_eq!(committed(&transport, "late").await, Some(0));
    // Settle the rest: whatever expired meanwhile comes again; each event once.
    let mut done = std::collections::BTreeSet::new();
    for delivery in pending.drain(..) {
        if !delivery.is_expired() {
            done.insert(delivery.seq);
            delivery.ack().await.unwrap();
        }
    }
    while done.len() < 2 {
        let delivery = next(&mut subscription).await;
        if delivery.seq != 0 {
            done.insert(delivery.seq);
        }
        delivery.ack().await.unwrap();
    }
    subscription.commit().await.unwrap();
    assert_eq!(committed(&transport, "late").await, Some(2));
    assert_eq!(subscription.in_flight(), 0);
    subscription.close().await.unwrap();
    h.finish().await;
}

tests::both_modes!(
    term_dead_letters_at_once_with_the_reason,
    term_commits_nothing_past_a_failed_dead_letter,
    an_expired_delivery_is_delivered_again,
    in_progress_prevents_the_redelivery,
    a_late_ack_commits_once_and_never_past_an_unhandled_event,
);
