//! The life of a dead letter, on both connectors: re-driven at most once, dismissed,
//! counted by `depth` (and health) only while neither, kept by the configured
//! retention. With `IGGY_TEST_ADDRESS` set, also against that server.

use std::sync::Arc;
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{
    HandlerError, RetryPolicy,
    consume::ConsumeOptions,
    dead_letter::{DeadLetterConfig, DeadLetters},
    health::{HealthStatus, HealthThresholds},
};
use rustok_iggy_connector::{OutgoingMessage, PublishRequest};
use serde::{Deserialize, Serialize};
use tests::conformance::{Harness, read_all};
use tests::within;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "invoices", key = customer)]
struct InvoiceIssued {
    customer: String,
    number: u64,
}

async fn invoices(h: &mut Harness, case: &str) -> Transport<InvoiceIssued> {
    let stream = h.stream(case);
    Transport::new(
        Arc::clone(&h.connector),
        TransportOptions {
            stream,
            partitions: 2,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap()
}

/// Publishes `count` invoices and runs the handler runner, which gives up on every
/// one of them, until all are dead letters.
async fn dead_letter_all(transport: &Transport<InvoiceIssued>, count: u64) {
    let events: Vec<InvoiceIssued> = (0..count)
        .map(|number| InvoiceIssued {
            customer: format!("c{}", number % 3),
            number,
        })
        .collect();
    dead_letter(transport, &events, count).await;
}

/// Publishes `events` and runs the handler runner, which gives up on every event it
/// receives, until `count` new letters are open.
async fn dead_letter(transport: &Transport<InvoiceIssued>, events: &[InvoiceIssued], count: u64) {
    let letters = transport
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    let open_before = letters.depth().await.unwrap();
    for chunk in events.chunks(500) {
        transport.publish_batch(chunk).await.unwrap();
    }
    let stop = Arc::new(Notify::new());
    let runner = {
        let transport = transport.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            transport
                .consume(
                    "billing",
                    ConsumeOptions {
                        retry: RetryPolicy::fixed(1, Duration::from_millis(1)),
                        ..ConsumeOptions::default()
                    },
                    async move { stop.notified().await },
                    |_| async { Err(HandlerError::permanent("the tax service refused it")) },
                )
                .await
        })
    };
    within("every invoice dead-lettered", async {
        while letters.depth().await.unwrap() < open_before + count {
            tokio::task::yield_now().await;
        }
    })
    .await;
    stop.notify_one();
    let report = within("the runner stops", runner).await.unwrap().unwrap();
    assert_eq!(report.dead_lettered, count);
}

/// Messages stored in the source topic.
async fn stored(h: &Harness, transport: &Transport<InvoiceIssued>) -> usize {
    let mut total = 0;
    for partition in 0..transport.partitions() {
        total += read_all(
            h.connector.as_ref(),
            transport.stream(),
            transport.topic(),
            partition,
            0,
        )
        .await
        .len();
    }
    total
}

async fn redrive_twice_publishes_once(mut h: Harness) {
    let invoices = invoices(&mut h, "redrive-once").await;
    dead_letter_all(&invoices, 4).await;
    let letters = invoices
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    assert_eq!(stored(&h, &invoices).await, 4);
    assert_eq!(
        within("redrive", letters.redrive(|_| true)).await.unwrap(),
        4
    );
    assert_eq!(stored(&h, &invoices).await, 8);
    assert_eq!(
        within("redrive again", letters.redrive(|_| true))
            .await
            .unwrap(),
        0,
        "{:?}: nothing left to re-drive",
        h.target
    );
    assert_eq!(
        stored(&h, &invoices).await,
        8,
        "{:?}: no duplicates",
        h.target
    );
    h.finish().await;
}

async fn depth_and_health_count_open_letters_only(mut h: Harness) {
    let invoices = invoices(&mut h, "depth").await;
    dead_letter_all(&invoices, 3).await;
    let letters = invoices
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    assert_eq!(letters.depth().await.unwrap(), 3);
    let health = invoices
        .health("billing", &HealthThresholds::default())
        .await
        .unwrap();
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    let first = letters.list(1).await.unwrap().remove(0);
    assert!(
        within("redrive one", letters.redrive_one(first.event_id))
            .await
            .unwrap()
    );
    assert_eq!(letters.depth().await.unwrap(), 2, "{:?}", h.target);
    within("redrive the rest", letters.redrive(|_| true))
        .await
        .unwrap();
    assert_eq!(letters.depth().await.unwrap(), 0, "{:?}", h.target);
    // The re-driven events are consumed again (here: by a new group, from the
    // start) so the lag check is healthy; the dead-letter check must be too.
    let thresholds = HealthThresholds {
        lag_degraded: u64::MAX,
        lag_unhealthy: u64::MAX,
        ..HealthThresholds::default()
    };
    let health = invoices.health("billing", &thresholds).await.unwrap();
    assert_eq!(
        health.status,
        HealthStatus::Healthy,
        "{:?}: {health:?}",
        h.target
    );
    h.finish().await;
}

async fn dismissed_letters_are_never_redriven(mut h: Harness) {
    let invoices = invoices(&mut h, "dismiss").await;
    dead_letter_all(&invoices, 6).await;
    let letters = invoices
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    let open = letters.list(usize::MAX).await.unwrap();
    assert_eq!(open.len(), 6);
    assert!(letters.dismiss_one(open[0].event_id).await.unwrap());
    assert!(
        !letters.dismiss_one(open[0].event_id).await.unwrap(),
        "{:?}: dismissed once",
        h.target
    );
    assert_eq!(letters.depth().await.unwrap(), 5);
    let c1 = letters
        .dismiss(|l| l.payload.windows(2).any(|w| w == b"c1"))
        .await
        .unwrap();
    assert_eq!(
        c1,
        open.iter()
            .skip(1)
            .filter(|l| l.payload.windows(2).any(|w| w == b"c1"))
            .count()
    );
    assert_eq!(letters.depth().await.unwrap(), 5 - c1 as u64);
    assert_eq!(letters.purge().await.unwrap(), 5 - c1);
    assert_eq!(letters.depth().await.unwrap(), 0, "{:?}", h.target);
    assert!(letters.list(usize::MAX).await.unwrap().is_empty());
    assert_eq!(letters.redrive(|_| true).await.unwrap(), 0);
    assert_eq!(
        stored(&h, &invoices).await,
        6,
        "{:?}: nothing re-published",
        h.target
    );
    h.finish().await;
}

/// A re-driven event that fails again is a new letter: open, and re-driven once more
/// (only it).
async fn a_letter_that_fails_again_is_redriven_again(mut h: Harness) {
    let invoices = invoices(&mut h, "again").await;
    dead_letter_all(&invoices, 2).await;
    let letters = invoices
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    let first = letters.list(1).await.unwrap().remove(0);
    assert!(letters.redrive_one(first.event_id).await.unwrap());
    // The runner picks the re-driven event up (the group committed past the rest)
    // and gives up on it again.
    dead_letter(&invoices, &[], 1).await;
    let open = letters.list(usize::MAX).await.unwrap();
    assert_eq!(open.len(), 2, "{:?}: {open:?}", h.target);
    assert_eq!(
        open.iter().filter(|l| l.event_id == first.event_id).count(),
        1
    );
    assert_eq!(
        letters
            .redrive(|l| l.event_id == first.event_id)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        letters
            .redrive(|l| l.event_id == first.event_id)
            .await
            .unwrap(),
        0
    );
    assert_eq!(stored(&h, &invoices).await, 4);
    h.finish().await;
}

/// More letters in one partition than one read returns: every one re-driven, once.
async fn redrive_streams_a_large_topic(mut h: Harness) {
    let invoices = invoices(&mut h, "large").await;
    let events: Vec<InvoiceIssued> = (0..1_100)
        .map(|number| InvoiceIssued {
            customer: "one-partition".into(),
            number,
        })
        .collect();
    dead_letter(&invoices, &events, 1_100).await;
    let letters = invoices
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    assert_eq!(letters.depth().await.unwrap(), 1_100);
    assert_eq!(
        within("redrive", letters.redrive(|_| true)).await.unwrap(),
        1_100
    );
    assert_eq!(letters.depth().await.unwrap(), 0, "{:?}", h.target);
    assert_eq!(
        within("redrive again", letters.redrive(|_| true))
            .await
            .unwrap(),
        0
    );
    assert_eq!(stored(&h, &invoices).await, 2_200);
    h.finish().await;
}

/// The dead-letter topic gets `retention.dlq_max_age_days`; opening it without a
/// retention keeps the one it has.
async fn dead_letter_retention_comes_from_the_configuration(mut h: Harness) {
    let mut config = IggyConfig::default();
    config.topology.stream_name = h.stream("retention");
    config.topology.domain_partitions = 2;
    config.retention.dlq_max_age_days = Some(30);
    config.retention.domain_max_age_days = Some(3);
    let invoices = Transport::<InvoiceIssued>::from_config(Arc::clone(&h.connector), &config)
        .await
        .unwrap();
    dead_letter_all(&invoices, 1).await;
    let dlq = rustok_iggy::connector::TopicName::new("invoices.dlq").unwrap();
    let info = h
        .connector
        .topic_info(invoices.stream(), &dlq)
        .await
        .unwrap()
        .expect("the dead-letter topic");
    assert_eq!(
        info.retention.max_age,
        Some(Duration::from_secs(30 * 86_400)),
        "{:?}",
        h.target
    );
    let source = h
        .connector
        .topic_info(invoices.stream(), invoices.topic())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        source.retention.max_age,
        Some(Duration::from_secs(3 * 86_400))
    );
    DeadLetters::open(
        Arc::clone(&h.connector),
        invoices.stream().clone(),
        invoices.topic().clone(),
        2,
        &DeadLetterConfig::default(),
    )
    .await
    .unwrap();
    let info = h
        .connector
        .topic_info(invoices.stream(), &dlq)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        info.retention.max_age,
        Some(Duration::from_secs(30 * 86_400))
    );
    h.finish().await;
}

/// A message in the dead-letter topic that names no valid origin (written there by
/// hand) does not stop the others from being re-driven; it stays open until it is
/// dismissed.
async fn a_letter_without_an_origin_is_left_open(mut h: Harness) {
    let invoices = invoices(&mut h, "no-origin").await;
    dead_letter_all(&invoices, 2).await;
    let letters = invoices
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    h.connector
        .publish(
            PublishRequest::new(invoices.stream().clone(), letters.topic().clone())
                .partition(0)
                .message(OutgoingMessage::new(&b"by hand"[..])),
        )
        .await
        .unwrap();
    assert_eq!(letters.depth().await.unwrap(), 3);
    assert_eq!(
        letters.redrive(|_| true).await.unwrap(),
        2,
        "{:?}",
        h.target
    );
    let open = letters.list(10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].original_stream, "");
    assert_eq!(letters.redrive(|_| true).await.unwrap(), 0);
    assert_eq!(
        letters
            .dismiss(|l| l.original_stream.is_empty())
            .await
            .unwrap(),
        1
    );
    assert_eq!(letters.depth().await.unwrap(), 0);
    assert_eq!(stored(&h, &invoices).await, 4);
    h.finish().await;
}

tests::both_modes!(
    redrive_twice_publishes_once,
    depth_and_health_count_open_letters_only,
    dismissed_letters_are_never_redriven,
    a_letter_that_fails_again_is_redriven_again,
    redrive_streams_a_large_topic,
    dead_letter_retention_comes_from_the_configuration,
    a_letter_without_an_origin_is_left_open,
);
