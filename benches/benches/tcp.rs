//! How does our remote path compare with the official SDK used directly?
//!
//! One embedded broker with its Iggy TCP listener on 127.0.0.1 (same process,
//! loopback), batches of 1000, 100-byte and 1 KB payloads:
//! - `publish/<size>/sdk_producer`: the official `IggyProducer` (direct mode,
//!   partition 0) sends 1000 messages;
//! - `publish/<size>/remote_connector`: `RemoteConnector::publish` of the same;
//! - `publish/<size>/transport`: `Transport<Blob>::publish_batch` over a
//!   `RemoteConnector` (Postcard payloads of the same size, plus the typed headers);
//! - `consume/<size>/sdk_consumer`: the official `IggyConsumer` in a consumer group
//!   (polls of 1000, offset stored at each poll);
//! - `consume/<size>/remote_connector`: a `RemoteConnector` group member polls 1000
//!   and commits once per poll;
//! - `consume/<size>/transport`: `Subscription<Blob>` over a `RemoteConnector`,
//!   `ack` per delivery.
//!
//! Run with: cargo bench -p benches --bench tcp

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::brokers::{self, Broker};
use benches::events::Blob;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use futures::StreamExt;
use iggy::prelude::{
    AutoCommit, AutoCommitWhen, DirectConfig, IggyClient, IggyMessage, Partitioning,
    PollingStrategy,
};
use rustok_iggy::{
    SubscriptionOptions, Transport, TransportOptions,
    connector::{DurabilityPolicy, GroupName, IggyConnector, StartPosition, StreamName},
};
use rustok_iggy_connector::{PublishRequest, RemoteConnector};
use tokio::runtime::Runtime;

const BATCH: usize = 1000;
/// Messages stored for the consume benches; each consumer group reads them once.
const STORED: u64 = 50_000;

struct Setup {
    broker: Broker,
    sdk: IggyClient,
    remote: Arc<RemoteConnector>,
}

fn sdk_messages(size: usize) -> Vec<IggyMessage> {
    let payload = benches::events::payload(size);
    (1..=BATCH as u128)
        .map(|id| {
            IggyMessage::builder()
                .id(id)
                .payload(payload.clone())
                .build()
                .expect("a message")
        })
        .collect()
}

fn blobs(size: usize) -> Vec<Blob> {
    (0..BATCH as u64).map(|i| Blob::sized(i, size)).collect()
}

async fn transport(remote: &Arc<RemoteConnector>, stream: &str) -> Transport<Blob> {
    let options = TransportOptions {
        stream: StreamName::new(stream).expect("a stream name"),
        partitions: 1,
        ..TransportOptions::default()
    };
    Transport::new(Arc::clone(remote) as Arc<dyn IggyConnector>, options)
        .await
        .expect("transport")
}

fn publish(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    s: &Setup,
    size: usize,
) {
    let label = benches::size_label(size);
    let (stream, sdk_topic) = brokers::names("tcp", &format!("sdk-{label}"));
    let (_, raw_topic) = brokers::names("tcp", &format!("raw-{label}"));
    rt.block_on(async {
        brokers::topic(s.broker.connector.as_ref(), &stream, &sdk_topic).await;
        brokers::topic(s.broker.connector.as_ref(), &stream, &raw_topic).await;
    });

    let producer = s
        .sdk
        .producer(stream.as_str(), sdk_topic.as_str())
        .expect("a producer")
        .direct(DirectConfig::builder().batch_length(BATCH as u32).build())
        .partitioning(Partitioning::partition_id(0))
        .build();
    rt.block_on(producer.init()).expect("producer init");
    // The SDK's messages are not `Clone`: each batch is built outside the timing.
    group.bench_function(
        BenchmarkId::new(format!("publish/{label}"), "sdk_producer"),
        |b| {
            b.to_async(rt).iter_batched(
                || sdk_messages(size),
                |messages| async { black_box(producer.send(messages).await.expect("send")) },
                BatchSize::SmallInput,
            );
        },
    );
    rt.block_on(producer.shutdown());

    let messages = brokers::raw_batch(BATCH, size);
    group.bench_function(
        BenchmarkId::new(format!("publish/{label}"), "remote_connector"),
        |b| {
            b.to_async(rt).iter_batched(
                || PublishRequest {
                    messages: messages.clone(),
                    ..PublishRequest::new(stream.clone(), raw_topic.clone()).partition(0)
                },
                |request| async { black_box(s.remote.publish(request).await.expect("publish")) },
                BatchSize::SmallInput,
            );
        },
    );

    let typed = rt.block_on(transport(&s.remote, &format!("tcp-publish-{label}")));
    let events = blobs(size);
    group.bench_function(
        BenchmarkId::new(format!("publish/{label}"), "transport"),
        |b| {
            b.to_async(rt)
                .iter(|| async { black_box(typed.publish_batch(&events).await.expect("publish")) });
        },
    );
}

/// Runs `pass(take)` (which returns the time it spent consuming `take` messages) until
/// `iters` batches were consumed.
async fn passes<F, Fut>(iters: u64, mut pass: F) -> Duration
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Duration>,
{
    let mut left = iters * BATCH as u64;
    let mut elapsed = Duration::ZERO;
    while left > 0 {
        let take = left.min(STORED);
        elapsed += pass(take).await;
        left -= take;
    }
    elapsed
}

fn consume(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    s: &Setup,
    size: usize,
) {
    let label = benches::size_label(size);
    let (stream, topic) = brokers::names("tcp", &format!("stored-{label}"));
    let typed_stream = format!("tcp-consume-{label}");
    let typed = rt.block_on(transport(&s.remote, &typed_stream));
    rt.block_on(async {
        let connector = s.broker.connector.as_ref();
        brokers::topic(connector, &stream, &topic).await;
        brokers::fill(connector, &stream, &topic, STORED, size).await;
        // Typed events, published in-process (the broker is the same).
        let local = Transport::<Blob>::new(
            s.broker.shared(),
            TransportOptions {
                stream: StreamName::new(typed_stream.as_str()).expect("a name"),
                partitions: 1,
                ..TransportOptions::default()
            },
        )
        .await
        .expect("transport");
        let events = blobs(size);
        for _ in 0..STORED / BATCH as u64 {
            local.publish_batch(&events).await.expect("publish");
        }
    });

    group.bench_function(
        BenchmarkId::new(format!("consume/{label}"), "sdk_consumer"),
        |b| {
            b.to_async(rt).iter_custom(|iters| {
                passes(iters, |take| {
                    let (client, stream, topic) = (&s.sdk, stream.as_str(), topic.as_str());
                    async move {
                        let mut consumer = client
                            .consumer_group(&benches::unique("sdk"), stream, topic)
                            .expect("a consumer")
                            .batch_length(BATCH as u32)
                            .without_poll_interval()
                            .auto_commit(AutoCommit::When(AutoCommitWhen::PollingMessages))
                            .create_consumer_group_if_not_exists()
                            .auto_join_consumer_group()
                            .polling_strategy(PollingStrategy::next())
                            .build();
                        consumer.init().await.expect("consumer init");
                        let start = Instant::now();
                        for _ in 0..take {
                            let received = consumer.next().await.expect("open").expect("message");
                            black_box(received);
                        }
                        let elapsed = start.elapsed();
                        consumer.shutdown().await.expect("consumer shutdown");
                        elapsed
                    }
                })
            });
        },
    );

    group.bench_function(
        BenchmarkId::new(format!("consume/{label}"), "remote_connector"),
        |b| {
            b.to_async(rt).iter_custom(|iters| {
                passes(iters, |take| {
                    let (remote, stream, topic) = (&s.remote, &stream, &topic);
                    async move {
                        let group = GroupName::new(benches::unique("remote")).expect("a name");
                        let member = remote
                            .join_group(stream, topic, &group, StartPosition::Earliest)
                            .await
                            .expect("join");
                        let start = Instant::now();
                        let mut got = 0;
                        while got < take {
                            let messages = member.poll(BATCH as u32).await.expect("poll");
                            let last = messages.last().expect("a message");
                            member.commit(0, last.offset).await.expect("commit");
                            got += messages.len() as u64;
                            black_box(messages);
                        }
                        let elapsed = start.elapsed();
                        member.leave().await.expect("leave");
                        elapsed
                    }
                })
            });
        },
    );

    group.bench_function(
        BenchmarkId::new(format!("consume/{label}"), "transport"),
        |b| {
            b.to_async(rt).iter_custom(|iters| {
                passes(iters, |take| {
                    let typed = &typed;
                    async move {
                        let options = SubscriptionOptions {
                            batch_size: BATCH as u32,
                            max_in_flight: 4 * BATCH,
                            ..SubscriptionOptions::default()
                        };
                        let mut subscription = typed
                            .subscribe_with(
                                &benches::unique("typed"),
                                StartPosition::Earliest,
                                options,
                            )
                            .await
                            .expect("subscribe");
                        let start = Instant::now();
                        for _ in 0..take {
                            let delivery = subscription.next().await.expect("open").expect("event");
                            black_box(delivery.event());
                            delivery.ack().await.expect("ack");
                        }
                        let elapsed = start.elapsed();
                        subscription.close().await.expect("close");
                        elapsed
                    }
                })
            });
        },
    );
}

async fn setup(address: SocketAddr, broker: Broker) -> Setup {
    Setup {
        sdk: brokers::sdk_client(address).await,
        remote: brokers::remote(address).await,
        broker,
    }
}

fn tcp(c: &mut Criterion) {
    let rt = benches::runtime();
    let broker = rt.block_on(Broker::start(DurabilityPolicy::Never, true));
    let s = rt.block_on(setup(broker.address(), broker));
    let mut group = c.benchmark_group("tcp");
    group.throughput(Throughput::Elements(BATCH as u64));
    for size in benches::PAYLOAD_SIZES {
        publish(&mut group, &rt, &s, size);
        consume(&mut group, &rt, &s, size);
    }
    group.finish();
    rt.block_on(async {
        s.remote.shutdown().await.expect("remote shutdown");
        drop(s.sdk);
        s.broker.shutdown().await;
    });
}

criterion_group! {
    name = benches;
    config = benches::criterion();
    targets = tcp
}
criterion_main!(benches);
