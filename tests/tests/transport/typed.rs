//! The typed transport on the embedded connector: publish, subscribe, ack, redelivery.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy::testing::TestKit;
use rustok_iggy::{Error, EventMetadata, IggyConnector, SubscriptionOptions};
use rustok_iggy_connector::{OutgoingMessage, PublishRequest};
use serde::{Deserialize, Serialize};
use tests::{embedded_config, open_embedded, within};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant_id, codec = "postcard", version = 2)]
struct OrderPlaced {
    tenant_id: String,
    seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "audit")]
struct Audited {
    what: String,
}

fn order(tenant: &str, seq: u64) -> OrderPlaced {
    OrderPlaced {
        tenant_id: tenant.to_owned(),
        seq,
    }
}

async fn transport<E: IggyEvent>(
    connector: Arc<dyn IggyConnector>,
    partitions: u32,
) -> Transport<E> {
    Transport::<E>::new(
        connector,
        TransportOptions {
            partitions,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn events_with_the_same_key_arrive_in_publish_order() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let orders = transport::<OrderPlaced>(connector.clone(), 4).await;
    let tenants = ["acme", "globex", "initech", "umbrella", "hooli"];
    let mut published = Vec::new();
    for seq in 0..100u64 {
        let event = order(tenants[(seq * 7 % 5) as usize], seq);
        let receipt = orders.publish(&event).await.unwrap();
        assert_eq!(Some(receipt.partition), event.partition(4));
        published.push(event);
    }
    let batch: Vec<_> = (100..150)
        .map(|seq| order(tenants[(seq % 5) as usize], seq))
        .collect();
    let receipts = orders.publish_batch(&batch).await.unwrap();
    assert_eq!(receipts.len(), 50);
    for (event, receipt) in batch.iter().zip(&receipts) {
        assert_eq!(Some(receipt.partition), event.partition(4));
    }
    published.extend(batch);

    let mut subscription = orders.subscribe("readers").await.unwrap();
    let mut per_tenant: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for _ in 0..150 {
        let delivery = within("delivery", subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivery.info().event_type, "order_placed");
        assert_eq!(delivery.info().schema_version, 2);
        per_tenant
            .entry(delivery.tenant_id.clone())
            .or_default()
            .push(delivery.seq);
        delivery.ack().await.unwrap();
    }
    for (tenant, seqs) in per_tenant {
        let expected: Vec<u64> = published
            .iter()
            .filter(|e| e.tenant_id == tenant)
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, expected, "order of {tenant}");
    }
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn unacked_events_are_redelivered_after_a_restart() {
    let kit = TestKit::builder().partitions(1).start().await.unwrap();
    let orders = kit.transport::<OrderPlaced>().await.unwrap();
    {
        for seq in 0..6 {
            orders.publish(&order("acme", seq)).await.unwrap();
        }
        let mut subscription = orders.subscribe("billing").await.unwrap();
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(
                within("delivery", subscription.next())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        // Ack 0, 1 and 3: only the contiguous prefix (0, 1) may be committed.
        let mut held = held.into_iter();
        let (d0, d1, d2, d3) = (
            held.next().unwrap(),
            held.next().unwrap(),
            held.next().unwrap(),
            held.next().unwrap(),
        );
        d0.ack().await.unwrap();
        d3.ack().await.unwrap();
        d1.ack().await.unwrap();
        subscription.commit().await.unwrap();
        let committed = kit
            .connector()
            .committed_offsets(
                orders.stream(),
                orders.topic(),
                &rustok_iggy::GroupName::new("billing").unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(committed, vec![Some(1)]);
        // Crash: nothing else is acknowledged.
        std::mem::forget(d2);
        std::mem::forget(subscription);
        std::mem::forget(held);
    }
    kit.restart().await.unwrap();
    assert_eq!(
        kit.wait_for_consumed::<OrderPlaced>("billing", 2)
            .await
            .unwrap(),
        2,
        "the commit survived the restart, and nothing past it"
    );
    let mut subscription = orders.subscribe("billing").await.unwrap();
    let mut seqs = Vec::new();
    for _ in 0..4 {
        let delivery = within("redelivery", subscription.next())
            .await
            .unwrap()
            .unwrap();
        seqs.push(delivery.seq);
        delivery.ack().await.unwrap();
    }
    assert_eq!(
        seqs,
        vec![2, 3, 4, 5],
        "everything after the last commit comes again"
    );
    kit.wait_for_consumed::<OrderPlaced>("billing", 6)
        .await
        .unwrap();
    kit.shutdown().await.unwrap();
}

#[tokio::test]
async fn nack_and_drop_redeliver_in_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let orders = transport::<OrderPlaced>(connector.clone(), 1).await;
    orders.publish(&order("acme", 1)).await.unwrap();
    let mut subscription = orders.subscribe("g").await.unwrap();
    let first = within("first", subscription.next()).await.unwrap().unwrap();
    assert_eq!(first.info().attempt, 1);
    first.nack(Duration::from_millis(5));
    let second = within("after nack", subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((second.seq, second.info().attempt), (1, 2));
    drop(second);
    let third = within("after drop", subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((third.seq, third.info().attempt), (1, 3));
    third.ack().await.unwrap();
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_subscribers_of_a_group_split_the_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let orders = transport::<OrderPlaced>(connector.clone(), 4).await;
    let mut a = orders.subscribe("workers").await.unwrap();
    let mut b = orders.subscribe("workers").await.unwrap();
    let (pa, pb) = (a.assignment(), b.assignment());
    assert_eq!(pa.len() + pb.len(), 4);
    assert!(pa.iter().all(|p| !pb.contains(p)));
    let tenants: Vec<String> = (0..40).map(|i| format!("tenant-{i}")).collect();
    for (seq, tenant) in tenants.iter().enumerate() {
        orders.publish(&order(tenant, seq as u64)).await.unwrap();
    }
    let mut seen = BTreeSet::new();
    while seen.len() < 40 {
        tokio::select! {
            Some(d) = a.next() => { let d = d.unwrap(); assert!(pa.contains(&d.info().partition)); seen.insert(d.seq); d.ack().await.unwrap(); }
            Some(d) = b.next() => { let d = d.unwrap(); assert!(pb.contains(&d.info().partition)); seen.insert(d.seq); d.ack().await.unwrap(); }
            () = tokio::time::sleep(tests::STEP_TIMEOUT) => panic!("stalled with {} of 40", seen.len()),
        }
    }
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn start_positions_and_metadata_travel() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let audit = transport::<Audited>(connector.clone(), 2).await;
    audit
        .publish(&Audited { what: "old".into() })
        .await
        .unwrap();
    let mut latest = audit
        .subscribe_with(
            "late",
            StartPosition::Latest,
            SubscriptionOptions::default(),
        )
        .await
        .unwrap();
    let metadata = EventMetadata::new()
        .tenant_id("acme")
        .correlation_id("corr-1")
        .causation_id("cause-1")
        .actor_id("user-7")
        .traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let receipt = audit
        .publish_with(&Audited { what: "new".into() }, &metadata)
        .await
        .unwrap();
    assert_eq!(
        receipt.partition,
        rustok_iggy::partition_for(b"acme", 2),
        "keyless events go by tenant"
    );
    let delivery = within("latest", latest.next()).await.unwrap().unwrap();
    assert_eq!(delivery.what, "new");
    let info = delivery.info();
    assert_eq!(info.event_id, receipt.event_id);
    let metadata = info.metadata();
    assert_eq!(metadata.event_id, Some(receipt.event_id));
    assert_eq!(metadata.tenant_id.as_deref(), Some("acme"));
    assert_eq!(metadata.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(metadata.causation_id.as_deref(), Some("cause-1"));
    assert_eq!(metadata.actor_id.as_deref(), Some("user-7"));
    assert_eq!(info.traceparent(), metadata.traceparent.as_deref());
    assert!(
        metadata
            .traceparent
            .as_deref()
            .unwrap()
            .starts_with("00-4bf9")
    );
    delivery.ack().await.unwrap();

    let mut earliest = audit.events("from-start").await.unwrap();
    let mut whats = BTreeSet::new();
    for _ in 0..2 {
        whats.insert(
            within("events", earliest.next())
                .await
                .unwrap()
                .unwrap()
                .what,
        );
    }
    assert_eq!(whats, BTreeSet::from(["old".to_owned(), "new".to_owned()]));
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn undecodable_messages_are_error_items_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let orders = transport::<OrderPlaced>(connector.clone(), 1).await;
    // Another client writes garbage to the topic.
    connector
        .publish(
            PublishRequest::new(orders.stream().clone(), orders.topic().clone())
                .partition(0)
                .message(OutgoingMessage::new(&[0xFFu8, 0xFF, 0xFF][..])),
        )
        .await
        .unwrap();
    orders.publish(&order("acme", 7)).await.unwrap();
    let mut subscription = orders.subscribe("strict").await.unwrap();
    match within("error item", subscription.next()).await.unwrap() {
        Err(Error::Decode(mut e)) => {
            assert_eq!((e.partition, e.offset), (0, 0));
            assert!(e.to_string().contains("offset 0"), "{e}");
            let raw = e.take_delivery().unwrap();
            assert_eq!(&raw.message().unwrap().payload[..], &[0xFF, 0xFF, 0xFF]);
            raw.ack().await.unwrap();
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    let delivery = within("next", subscription.next()).await.unwrap().unwrap();
    assert_eq!(delivery.seq, 7);
    delivery.ack().await.unwrap();
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slow_consumer_stops_fetching_at_max_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let orders = transport::<OrderPlaced>(connector.clone(), 1).await;
    let events: Vec<_> = (0..100).map(|seq| order("acme", seq)).collect();
    orders.publish_batch(&events).await.unwrap();
    let options = SubscriptionOptions {
        batch_size: 4,
        max_in_flight: 8,
        ..SubscriptionOptions::default()
    };
    let mut subscription = orders
        .subscribe_with("slow", StartPosition::Earliest, options)
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(
            within("delivery", subscription.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    // Nothing more comes until something is acknowledged.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), subscription.next())
            .await
            .is_err()
    );
    held.remove(0).ack().await.unwrap();
    let next = within("after an ack", subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.seq, 8);
    connector.shutdown().await.unwrap();
}

/// Single publishes abandoned mid-flight (their tasks aborted while others wait for a
/// shared request) never leave the partition's publishing stuck: the publishes left
/// running and later ones are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_single_publishes_do_not_block_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let orders = transport::<OrderPlaced>(connector.clone(), 1).await;
    for round in 0..20u64 {
        let tasks: Vec<_> = (0..40u64)
            .map(|i| {
                let orders = orders.clone();
                tokio::spawn(async move { orders.publish(&order("acme", round * 100 + i)).await })
            })
            .collect();
        for (i, task) in tasks.iter().enumerate() {
            if i % 2 == 0 {
                task.abort();
            }
        }
        for task in tasks {
            if let Ok(published) = task.await {
                published.unwrap();
            }
        }
        let receipt = within(
            "a publish after abandoned ones",
            orders.publish(&order("acme", round)),
        )
        .await
        .unwrap();
        assert_eq!(receipt.partition, 0);
    }
    connector.shutdown().await.unwrap();
}
