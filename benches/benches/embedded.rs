//! How fast is the embedded broker in-process?
//!
//! Through `EmbeddedConnector` (direct calls, no sockets), 100-byte and 1 KB
//! payloads, batches of 1 and 1000:
//! - `publish/<policy>/batch<N>`: append one batch (durability `never` and
//!   `interval`);
//! - `consume/batch<N>`: a consumer-group member polls `N` and commits once per
//!   poll (a fresh group re-reads the stored messages on each pass);
//! - `poll/batch<N>`: a replay read of `N` messages by offset (no group, no
//!   commit).
//!
//! Run with: cargo bench -p benches --bench embedded

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::brokers::{self, Broker};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy_connector::{
    DurabilityPolicy, GroupName, IggyConnector, PublishRequest, StartPosition,
};
use tokio::runtime::Runtime;

/// Messages stored for the consume and poll benches.
const STORED: u64 = 100_000;
const BATCHES: [usize; 2] = [1, 1000];

fn publish(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("embedded");
    for (policy, name) in [
        (DurabilityPolicy::Never, "never"),
        (DurabilityPolicy::Interval, "interval"),
    ] {
        for batch in BATCHES {
            for size in benches::PAYLOAD_SIZES {
                let broker = rt.block_on(Broker::start(policy, false));
                let (stream, topic) = brokers::names("bench", "publish");
                rt.block_on(brokers::topic(broker.connector.as_ref(), &stream, &topic));
                let messages = brokers::raw_batch(batch, size);
                group.throughput(Throughput::Elements(batch as u64));
                let id = BenchmarkId::new(
                    format!("publish/{name}/batch{batch}"),
                    benches::size_label(size),
                );
                group.bench_function(id, |b| {
                    b.to_async(rt).iter_batched(
                        || PublishRequest {
                            messages: messages.clone(),
                            ..PublishRequest::new(stream.clone(), topic.clone()).partition(0)
                        },
                        |request| async {
                            black_box(broker.connector.publish(request).await.expect("publish"))
                        },
                        BatchSize::SmallInput,
                    );
                });
                rt.block_on(broker.shutdown());
            }
        }
    }
    group.finish();
}

fn consume(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("embedded");
    for size in benches::PAYLOAD_SIZES {
        let broker = rt.block_on(Broker::start(DurabilityPolicy::Never, false));
        let (stream, topic) = brokers::names("bench", "consume");
        rt.block_on(async {
            brokers::topic(broker.connector.as_ref(), &stream, &topic).await;
            brokers::fill(broker.connector.as_ref(), &stream, &topic, STORED, size).await;
        });
        for batch in BATCHES {
            group.throughput(Throughput::Elements(batch as u64));
            let id = BenchmarkId::new(format!("consume/batch{batch}"), benches::size_label(size));
            group.bench_function(id, |b| {
                b.to_async(rt).iter_custom(|iters| {
                    let connector = &broker.connector;
                    let (stream, topic) = (&stream, &topic);
                    async move {
                        let mut left = iters * batch as u64;
                        let mut elapsed = Duration::ZERO;
                        while left > 0 {
                            let take = left.min(STORED);
                            let group = GroupName::new(benches::unique("g")).expect("a name");
                            let member = connector
                                .join_group(stream, topic, &group, StartPosition::Earliest)
                                .await
                                .expect("join");
                            let start = Instant::now();
                            let mut got = 0;
                            while got < take {
                                let messages = member.poll(batch as u32).await.expect("poll");
                                let last = messages.last().expect("a message");
                                member.commit(0, last.offset).await.expect("commit");
                                got += messages.len() as u64;
                                black_box(messages);
                            }
                            elapsed += start.elapsed();
                            member.leave().await.expect("leave");
                            left -= take;
                        }
                        elapsed
                    }
                });
            });
            let id = BenchmarkId::new(format!("poll/batch{batch}"), benches::size_label(size));
            let mut offset = 0u64;
            group.bench_function(id, |b| {
                b.to_async(rt).iter(|| {
                    let from = offset;
                    offset = (offset + batch as u64) % (STORED - batch as u64);
                    let (connector, stream, topic) = (&broker.connector, &stream, &topic);
                    async move {
                        let read = connector
                            .poll(stream, topic, 0, StartPosition::Offset(from), batch as u32)
                            .await
                            .expect("poll");
                        assert_eq!(read.len(), batch);
                        black_box(read)
                    }
                });
            });
        }
        rt.block_on(broker.shutdown());
    }
    group.finish();
}

fn embedded(c: &mut Criterion) {
    let rt = benches::runtime();
    publish(c, &rt);
    consume(c, &rt);
}

criterion_group! {
    name = benches;
    config = benches::criterion();
    targets = embedded
}
criterion_main!(benches);
