//! How many heap allocations does the typed layer make per event?
//!
//! A counting global allocator (`stats_alloc`) around the system one; a
//! current-thread runtime, so that the broker's and the subscription's background
//! work is counted too. Postcard, 1000 medium events (`OrderShipped`) per batch,
//! embedded broker in process, one partition. Per event:
//! - `encode`: `IggyEvent::encode` alone (the codec's own allocations);
//! - `publish_typed`: `Transport<E>::publish_batch`;
//! - `publish_by_hand`: encode each event and one `IggyConnector::publish`;
//! - `decode`: `IggyEvent::decode` alone (the decoded value's own fields);
//! - `consume_typed`: `Subscription<E>` fetch, decode, hand out, `ack` each;
//! - `consume_by_hand`: `GroupConsumer::poll(1000)`, decode each, one commit.
//!
//! Prints the figures and writes them to `<results>/allocations.json`. Not a
//! criterion bench: counts do not need repetitions.
//!
//! Run with: cargo bench -p benches --bench allocations

use std::alloc::System;
use std::sync::Arc;

use benches::brokers::{self, Broker};
use benches::events::{ShippedPostcard, order_shipped};
use futures::StreamExt;
use rustok_iggy::{
    IggyEvent, SubscriptionOptions, Transport, TransportOptions,
    connector::{DurabilityPolicy, GroupName, StartPosition, StreamName},
};
use rustok_iggy_connector::{OutgoingMessage, PublishRequest};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BATCH: usize = 1000;
/// Batches measured per figure (after one batch of warm-up).
const ROUNDS: usize = 5;

/// Allocations per event of `rounds` runs of `work` (each handling `BATCH` events).
async fn per_event<F, Fut>(mut work: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    work().await;
    let region = Region::new(GLOBAL);
    for _ in 0..ROUNDS {
        work().await;
    }
    region.change().allocations as f64 / (ROUNDS * BATCH) as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(run());
}

async fn run() {
    let broker = Broker::start(DurabilityPolicy::Never, false).await;
    let connector = broker.shared();
    let events: Vec<ShippedPostcard> = (0..BATCH as u64)
        .map(|i| ShippedPostcard(order_shipped(i)))
        .collect();
    let transport = Transport::<ShippedPostcard>::new(
        Arc::clone(&connector),
        TransportOptions {
            stream: StreamName::new("allocations").expect("a stream name"),
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .expect("transport");
    let (stream, raw_topic) = brokers::names("allocations", "raw");
    brokers::topic(connector.as_ref(), &stream, &raw_topic).await;

    let encode = per_event(|| async {
        for event in &events {
            std::hint::black_box(event.encode().expect("encode"));
        }
    })
    .await;
    let publish_typed = per_event(|| async {
        transport.publish_batch(&events).await.expect("publish");
    })
    .await;
    let publish_by_hand = per_event(|| async {
        let messages = events
            .iter()
            .map(|e| OutgoingMessage::new(e.encode().expect("encode")).with_id(benches::fresh_id()))
            .collect();
        let request = PublishRequest {
            messages,
            ..PublishRequest::new(stream.clone(), raw_topic.clone()).partition(0)
        };
        connector.publish(request).await.expect("publish");
    })
    .await;

    let payloads: Vec<Vec<u8>> = events.iter().map(|e| e.encode().expect("encode")).collect();
    let decode = per_event(|| async {
        for payload in &payloads {
            std::hint::black_box(ShippedPostcard::decode(payload).expect("decode"));
        }
    })
    .await;
    let options = SubscriptionOptions {
        batch_size: BATCH as u32,
        max_in_flight: 4 * BATCH,
        ..SubscriptionOptions::default()
    };
    let mut subscription = transport
        .subscribe_with("allocations", StartPosition::Earliest, options)
        .await
        .expect("subscribe");
    // Measured by hand: the batches borrow the subscription mutably.
    let mut consume_batch = async || {
        for _ in 0..BATCH {
            let delivery = subscription.next().await.expect("open").expect("event");
            std::hint::black_box(delivery.event());
            delivery.ack().await.expect("ack");
        }
    };
    consume_batch().await;
    let region = Region::new(GLOBAL);
    for _ in 0..ROUNDS {
        consume_batch().await;
    }
    let consume_typed = region.change().allocations as f64 / (ROUNDS * BATCH) as f64;
    subscription.close().await.expect("close");
    let group = GroupName::new("by-hand").expect("a group name");
    let member = connector
        .join_group(&stream, &raw_topic, &group, StartPosition::Earliest)
        .await
        .expect("join");
    let consume_by_hand = per_event(|| async {
        let mut got = 0;
        while got < BATCH {
            let messages = member.poll((BATCH - got) as u32).await.expect("poll");
            for message in &messages {
                std::hint::black_box(ShippedPostcard::decode(&message.payload).expect("decode"));
            }
            let last = messages.last().expect("a message");
            member.commit(0, last.offset).await.expect("commit");
            got += messages.len();
        }
    })
    .await;
    member.leave().await.expect("leave");
    broker.shutdown().await;

    let figures = serde_json::json!({
        "encode": encode,
        "publish_typed": publish_typed,
        "publish_by_hand": publish_by_hand,
        "publish_typed_beyond_codec": publish_typed - encode,
        "decode": decode,
        "consume_typed": consume_typed,
        "consume_by_hand": consume_by_hand,
        "consume_typed_beyond_decoded_value": consume_typed - decode,
    });
    println!("allocations per event: {figures:#}");
    benches::write_result("allocations.json", &figures);
}
