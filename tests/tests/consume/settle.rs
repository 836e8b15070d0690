//! The settle vocabulary of a subscription on both connectors: `term` (poison,
//! straight to the dead-letter topic under the commit rule) and the acknowledgement
//! deadline (`ack_wait`, extended by `in_progress`).

use std::sync::Arc;
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{
    Error, SubscriptionOptions,
    connector::{ConnectorError, ErrorKind, GroupName, IggyConnector},
    consume::SettleError,
    dead_letter::{DeadLetter, DeadLetterConfig, DeadLetterError},
};
use rustok_iggy_connector::{
    Headers, OutgoingMessage, PublishRequest, metric_names, partition_for,
};
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

/// A transport of `Step`s in a stream of its own, with `partitions` partitions.
async fn transport(
    connector: Arc<dyn IggyConnector>,
    h: &mut Harness,
    case: &str,
    partitions: u32,
) -> Transport<Step> {
    let stream = h.stream(case);
    Transport::new(
        connector,
        TransportOptions {
            stream,
            partitions,
            ..TransportOptions::default()
        },
    )
    .await
    .expect("the topic is ready")
}

/// A one-partition transport holding the steps 0, 1 and 2.
async fn steps(connector: Arc<dyn IggyConnector>, h: &mut Harness, case: &str) -> Transport<Step> {
    let transport = transport(connector, h, case, 1).await;
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

/// The committed offset of each partition.
async fn committed_offsets(transport: &Transport<Step>, group: &str) -> Vec<Option<u64>> {
    within(
        "committed offsets",
        transport.connector().committed_offsets(
            transport.stream(),
            transport.topic(),
            &GroupName::new(group).unwrap(),
        ),
    )
    .await
    .expect("committed offsets")
}

async fn committed(transport: &Transport<Step>, group: &str) -> Option<u64> {
    committed_offsets(transport, group).await[0]
}

/// `error` is the dead-letter write the outage refused, as the connector said it:
/// transient, here and through `Error`.
fn assert_refused_dead_letter(error: SettleError) {
    assert!(
        matches!(
            &error,
            SettleError::DeadLetter(DeadLetterError::Connector(
                ConnectorError::Connection { .. }
            ))
        ),
        "the refused write, as the connector said it: {error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Transient);
    assert_eq!(Error::from(error).kind(), ErrorKind::Transient);
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
    let mut subscription = transport
        .subscribe_with("termdown", StartPosition::Earliest, quick_redelivery())
        .await
        .unwrap();
    let first = next(&mut subscription).await;
    let poison = next(&mut subscription).await;
    let later = next(&mut subscription).await;
    assert_eq!((first.seq, poison.seq, later.seq), (0, 1, 2));
    first.ack().await.unwrap();
    outage.hooks().set_down(true);
    let error = poison
        .term("poison")
        .await
        .expect_err("the dead-letter write is refused");
    assert_refused_dead_letter(error);
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

/// Fast redelivery of held events, so the tests need not wait.
fn quick_redelivery() -> SubscriptionOptions {
    SubscriptionOptions {
        redelivery_backoff: rustok_iggy::consume::Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(10),
        ),
        ..SubscriptionOptions::default()
    }
}

async fn undecodable(subscription: &mut Subscription<Step>) -> Box<rustok_iggy::DecodeError> {
    match within("a decode error", subscription.next()).await {
        Some(Err(Error::Decode(error))) => error,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

/// `DecodeError::dead_letter` while the dead-letter topic refuses writes fails with
/// `SettleError::DeadLetter` (the connector's transient error inside, kept through
/// `Error`) and holds the message: nothing at or after it is committed, even with
/// the event after it acknowledged; it is delivered again, and once the topic is
/// back it is dead-lettered and the commit passes it.
async fn a_decode_error_whose_dead_letter_fails_is_held(mut h: Harness) {
    let outage = DeadLetterOutage::new(Arc::clone(&h.connector));
    let transport = transport(outage.clone(), &mut h, "decodedown", 1).await;
    let mut headers = Headers::new();
    headers.insert_str("event_type", "not-a-step").unwrap();
    headers.insert_str("codec", "json").unwrap();
    within(
        "publish an undecodable message",
        h.connector.publish(
            PublishRequest::new(transport.stream().clone(), transport.topic().clone())
                .partition(0)
                .message(OutgoingMessage::new(b"{}".to_vec()).with_headers(headers)),
        ),
    )
    .await
    .unwrap();
    transport.publish(&step(1)).await.unwrap();
    let dead_letters = transport
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    let mut subscription = transport
        .subscribe_with("decodedown", StartPosition::Earliest, quick_redelivery())
        .await
        .unwrap();
    let error = undecodable(&mut subscription).await;
    assert_eq!(error.offset, 0);
    let later = next(&mut subscription).await;
    assert_eq!(later.seq, 1);

    outage.hooks().set_down(true);
    let failed = error
        .dead_letter(&dead_letters)
        .await
        .expect_err("the dead-letter write is refused");
    assert_refused_dead_letter(failed);
    later.ack().await.unwrap();
    subscription.commit().await.unwrap();
    assert_eq!(
        committed(&transport, "decodedown").await,
        None,
        "nothing at or after the message whose dead letter failed is committed"
    );

    outage.hooks().set_down(false);
    assert!(letters(&transport).await.is_empty());
    let again = undecodable(&mut subscription).await;
    assert_eq!(again.offset, 0, "the held message is delivered again");
    let dead_lettered = || {
        metric_value(
            metric_names::DEAD_LETTERED,
            &[
                ("messaging_destination_name", transport.topic().as_str()),
                ("messaging_consumer_group_name", "decodedown"),
            ],
        )
    };
    let before = dead_lettered();
    again.dead_letter(&dead_letters).await.unwrap();
    assert!(
        dead_lettered() > before,
        "a decode error's dead letter counts as dead-lettered"
    );
    let later = next(&mut subscription).await;
    assert_eq!(later.seq, 1, "the event after it is delivered again");
    later.ack().await.unwrap();
    subscription.commit().await.unwrap();
    assert_eq!(committed(&transport, "decodedown").await, Some(1));
    let letters = letters(&transport).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].original_offset, 0);
    subscription.close().await.unwrap();
    h.finish().await;
}

/// `ack_and_commit` of a delivery whose partition went to another member since it
/// was received fails with `SettleError::Commit(Fenced)` naming that partition
/// (kind `Fenced`, kept through `Error`), and nothing is stored for it; the
/// delivery of the partition the member kept commits.
async fn ack_and_commit_after_the_partition_moved_is_fenced(mut h: Harness) {
    let transport = transport(Arc::clone(&h.connector), &mut h, "fenced", 2).await;
    for partition in 0..2u32 {
        let tenant = (0..)
            .map(|i| format!("t{i}"))
            .find(|t| partition_for(t.as_bytes(), 2) == partition)
            .unwrap();
        transport
            .publish(&Step {
                tenant,
                seq: u64::from(partition),
            })
            .await
            .unwrap();
    }
    let mut subscription = transport.subscribe("fenced").await.unwrap();
    let mut held = std::collections::BTreeMap::new();
    while held.len() < 2 {
        let delivery = next(&mut subscription).await;
        held.insert(delivery.info().partition, delivery);
    }
    let other = h.another().await;
    let member = within(
        "another member joins",
        other.join_group(
            transport.stream(),
            transport.topic(),
            &GroupName::new("fenced").unwrap(),
            StartPosition::Earliest,
        ),
    )
    .await
    .unwrap();
    let lost = member.assignment().partitions;
    assert_eq!(lost.len(), 1, "{lost:?}");
    let (lost, kept) = (lost[0], 1 - lost[0]);

    let error = within(
        "ack_and_commit on the lost partition",
        held.remove(&lost).unwrap().ack_and_commit(),
    )
    .await
    .expect_err("the partition went to another member");
    match &error {
        SettleError::Commit(ConnectorError::Fenced { partition, .. }) => {
            assert_eq!(*partition, lost, "{error:?}");
        }
        other => panic!("expected a fenced commit, got {other:?}"),
    }
    assert_eq!(error.kind(), ErrorKind::Fenced);
    assert_eq!(Error::from(error).kind(), ErrorKind::Fenced);
    within(
        "ack_and_commit on the kept partition",
        held.remove(&kept).unwrap().ack_and_commit(),
    )
    .await
    .expect("the member still owns it");
    let offsets = committed_offsets(&transport, "fenced").await;
    assert_eq!(offsets[kept as usize], Some(0), "{offsets:?}");
    assert_eq!(offsets[lost as usize], None, "{offsets:?}");
    within("the member leaves", member.leave()).await.unwrap();
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
    a_decode_error_whose_dead_letter_fails_is_held,
    ack_and_commit_after_the_partition_moved_is_fenced,
    an_expired_delivery_is_delivered_again,
    in_progress_prevents_the_redelivery,
    a_late_ack_commits_once_and_never_past_an_unhandled_event,
);
