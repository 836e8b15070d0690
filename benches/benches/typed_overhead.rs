//! What does the typed layer cost over raw bytes?
//!
//! Per codec, on the embedded broker in-process, batches of 1000 medium events
//! (`OrderShipped`), one partition:
//! - `publish/<codec>/typed`: `Transport<E>::publish_batch` (encode, event id,
//!   headers, routing, one append);
//! - `publish/<codec>/raw_encode`: what a program does by hand with the connector:
//!   encode each event with the same codec, one `IggyConnector::publish`;
//! - `publish/<codec>/raw_bytes`: the same payload bytes, encoded beforehand, in one
//!   `IggyConnector::publish` (the storage alone);
//! - `publish/<codec>/raw_bytes_headers`: the same, each message with headers of the
//!   typed layer's names and sizes (the storage of what the typed path writes);
//! - `consume/<codec>/typed`: `Subscription<E>` (fetch 1000, decode, check the
//!   headers, hand out, `ack` each delivery, which commits the group offset);
//! - `consume/<codec>/raw_decode`: `GroupConsumer::poll(1000)`, decode each payload,
//!   one commit per batch;
//! - `consume/<codec>/raw_bytes`: `GroupConsumer::poll(1000)` and one commit per
//!   batch, no decoding.
//!
//! Run with: cargo bench -p benches --bench typed_overhead

use std::hint::black_box;
use std::sync::Arc;

use benches::brokers::{self, Broker};
use benches::events::{OrderShipped, ShippedJson, ShippedPostcard, order_shipped};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy::metadata::header;
use rustok_iggy::{
    IggyEvent, Transport,
    connector::{DurabilityPolicy, IggyConnector, StreamName},
};
use rustok_iggy_connector::{Headers, OutgoingMessage, PublishRequest, TopicName};
use tokio::runtime::Runtime;

const BATCH: usize = 1000;
/// Events stored for the consume benches; each consumer group reads them once.
const STORED: u64 = 100_000;

fn encoded<E: IggyEvent>(events: &[E]) -> Vec<OutgoingMessage> {
    events
        .iter()
        .map(|event| {
            OutgoingMessage::new(event.encode().expect("encode")).with_id(benches::fresh_id())
        })
        .collect()
}

/// `messages` with headers of the names and value sizes the typed layer writes.
fn with_typed_headers(messages: &[OutgoingMessage], codec: &'static str) -> Vec<OutgoingMessage> {
    let trace = rustok_iggy::metadata::new_traceparent();
    messages
        .iter()
        .map(|message| {
            let mut headers = Headers::new();
            let fields = [
                (header::EVENT_TYPE, "order_shipped".to_owned()),
                (header::SCHEMA_VERSION, "1".to_owned()),
                (header::CODEC, codec.to_owned()),
                (
                    header::EVENT_ID,
                    uuid::Uuid::from_u128(message.id).to_string(),
                ),
                (header::TRACEPARENT, trace.clone()),
            ];
            for (name, value) in fields {
                headers.insert_str(name, value).expect("a header");
            }
            message.clone().with_headers(headers)
        })
        .collect()
}

/// What a publish variant sends.
#[derive(Clone, Copy)]
enum Publish<'a, E> {
    /// The events, through `Transport<E>::publish_batch`.
    Typed(&'a [E]),
    /// The events, encoded by hand, through `IggyConnector::publish`.
    Encode(&'a [E]),
    /// Encoded messages (fresh ids per batch), through `IggyConnector::publish`.
    Bytes(&'a [OutgoingMessage]),
}

fn case<E: IggyEvent>(
    c: &mut Criterion,
    rt: &Runtime,
    connector: &Arc<dyn IggyConnector>,
    wrap: fn(OrderShipped) -> E,
) {
    let codec = E::CODEC.as_str();
    let events: Vec<E> = (0..BATCH as u64).map(|i| wrap(order_shipped(i))).collect();
    let messages = encoded(&events);
    let mut group = c.benchmark_group("typed_overhead");
    group.throughput(Throughput::Elements(BATCH as u64));

    // Publishing: each variant writes to a broker of its own, shut down (its data
    // deleted) before the next starts, so that no variant writes into the page cache
    // an earlier one filled. (On one shared broker the same case measured 2.7× slower
    // as the third variant than as the first: the kernel's tmpfs writes, not the
    // code under test.)
    let headed = with_typed_headers(&messages, codec);
    let variants: [(&str, Publish<'_, E>); 4] = [
        ("typed", Publish::Typed(&events)),
        ("raw_encode", Publish::Encode(&events)),
        ("raw_bytes", Publish::Bytes(&messages)),
        ("raw_bytes_headers", Publish::Bytes(&headed)),
    ];
    for (variant, publish) in variants {
        let broker = rt.block_on(Broker::start(DurabilityPolicy::Never, false));
        let connector = broker.shared();
        let transport = rt
            .block_on(Transport::<E>::new(
                Arc::clone(&connector),
                benches::one_partition("publish"),
            ))
            .expect("transport");
        let (stream, raw_topic) = brokers::names("publish", &format!("raw-{codec}"));
        rt.block_on(brokers::topic(connector.as_ref(), &stream, &raw_topic));
        let request = |messages: Vec<OutgoingMessage>| PublishRequest {
            messages,
            ..PublishRequest::new(stream.clone(), raw_topic.clone()).partition(0)
        };
        group.bench_function(BenchmarkId::new(format!("publish/{codec}"), variant), |b| {
            match publish {
                Publish::Typed(events) => b.to_async(rt).iter(|| async {
                    black_box(transport.publish_batch(events).await.expect("publish"))
                }),
                Publish::Encode(events) => b.to_async(rt).iter(|| async {
                    let request = request(encoded(events));
                    black_box(connector.publish(request).await.expect("publish"))
                }),
                Publish::Bytes(messages) => b.to_async(rt).iter_batched(
                    || request(benches::fresh_ids(messages.to_vec())),
                    |request| async {
                        black_box(connector.publish(request).await.expect("publish"))
                    },
                    BatchSize::SmallInput,
                ),
            }
        });
        drop(transport);
        rt.block_on(broker.shutdown());
    }

    // Consuming: STORED events of each kind, read by a fresh group per pass.
    let transport = rt
        .block_on(Transport::<E>::new(
            Arc::clone(connector),
            benches::one_partition("consume"),
        ))
        .expect("transport");
    let (stream, raw_topic) = brokers::names("consume", &format!("raw-{codec}"));
    rt.block_on(async {
        brokers::topic(connector.as_ref(), &stream, &raw_topic).await;
        for _ in 0..STORED / BATCH as u64 {
            transport.publish_batch(&events).await.expect("publish");
            let request = PublishRequest {
                messages: benches::fresh_ids(messages.clone()),
                ..PublishRequest::new(stream.clone(), raw_topic.clone()).partition(0)
            };
            connector.publish(request).await.expect("publish");
        }
    });
    group.bench_function(BenchmarkId::new(format!("consume/{codec}"), "typed"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let transport = transport.clone();
            async move { benches::consume::typed(&transport, iters, BATCH, STORED).await }
        });
    });
    for (variant, decode) in [("raw_decode", true), ("raw_bytes", false)] {
        group.bench_function(BenchmarkId::new(format!("consume/{codec}"), variant), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let connector = Arc::clone(connector);
                let (stream, topic): (StreamName, TopicName) = (stream.clone(), raw_topic.clone());
                async move {
                    benches::consume::raw(
                        &connector,
                        (&stream, &topic),
                        iters,
                        BATCH,
                        STORED,
                        |message| {
                            if decode {
                                black_box(E::decode(&message.payload).expect("decode"));
                            }
                        },
                    )
                    .await
                }
            });
        });
    }
    group.finish();
}

fn typed_overhead(c: &mut Criterion) {
    let rt = benches::runtime();
    let broker = rt.block_on(Broker::start(DurabilityPolicy::Never, false));
    let connector = broker.shared();
    case::<ShippedJson>(c, &rt, &connector, ShippedJson);
    case::<ShippedPostcard>(c, &rt, &connector, ShippedPostcard);
    rt.block_on(broker.shutdown());
}

criterion_group! {
    name = benches;
    config = benches::criterion();
    targets = typed_overhead
}
criterion_main!(benches);
