//! In-process throughput of the embedded broker: append and poll through
//! `EmbeddedConnector`, 100-byte and 1 KB payloads, batches of 1 and 1000, durability
//! policies `never` and `interval`.
//!
//! Run with: cargo bench -p benches --bench embedded

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy_connector::{
    ConnectorConfig, DurabilityPolicy, EmbeddedConnector, IggyConnector, OutgoingMessage, PollFrom,
    PublishRequest, StreamName, TopicName, TopicSpec,
};
use tokio::runtime::Runtime;

struct Setup {
    _dir: tempfile::TempDir,
    connector: EmbeddedConnector,
    stream: StreamName,
    topic: TopicName,
}

fn setup(rt: &Runtime, durability: DurabilityPolicy) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ConnectorConfig::embedded(dir.path());
    config.embedded.durability = durability;
    config.embedded.fsync_interval_ms = 1000;
    let connector = EmbeddedConnector::new();
    let stream = StreamName::new("bench").expect("name");
    let topic = TopicName::new("events").expect("name");
    rt.block_on(async {
        connector.connect(&config).await.expect("connect");
        connector
            .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 1))
            .await
            .expect("topic");
    });
    Setup {
        _dir: dir,
        connector,
        stream,
        topic,
    }
}

fn batch(size: usize, payload: usize) -> Vec<OutgoingMessage> {
    (0..size)
        .map(|i| OutgoingMessage::new(vec![b'x'; payload]).with_id(i as u128 + 1))
        .collect()
}

fn append(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("embedded_append");
    group.measurement_time(Duration::from_secs(4));
    for (policy, name) in [
        (DurabilityPolicy::Never, "never"),
        (DurabilityPolicy::Interval, "interval"),
    ] {
        for batch_size in [1usize, 1000] {
            for payload in [100usize, 1000] {
                let s = setup(&rt, policy);
                let messages = batch(batch_size, payload);
                group.throughput(Throughput::Elements(batch_size as u64));
                let id =
                    BenchmarkId::new(format!("{name}/batch{batch_size}"), format!("{payload}B"));
                group.bench_function(id, |b| {
                    b.to_async(&rt).iter(|| async {
                        let request = PublishRequest {
                            stream: s.stream.clone(),
                            topic: s.topic.clone(),
                            partitioning: rustok_iggy_connector::Partitioning::Partition(0),
                            messages: messages.clone(),
                        };
                        black_box(s.connector.publish(request).await.expect("publish"))
                    });
                });
                rt.block_on(s.connector.shutdown()).expect("shutdown");
            }
        }
    }
    group.finish();
}

fn poll(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("embedded_poll");
    group.measurement_time(Duration::from_secs(4));
    for batch_size in [1u32, 1000] {
        for payload in [100usize, 1000] {
            let s = setup(&rt, DurabilityPolicy::Never);
            // 100k messages stored, read back in windows of `batch_size`.
            let total = 100_000u64;
            rt.block_on(async {
                for _ in 0..total / 1000 {
                    let request =
                        PublishRequest::new(s.stream.clone(), s.topic.clone()).partition(0);
                    let request = PublishRequest {
                        messages: batch(1000, payload),
                        ..request
                    };
                    s.connector.publish(request).await.expect("publish");
                }
            });
            group.throughput(Throughput::Elements(u64::from(batch_size)));
            let id = BenchmarkId::new(format!("batch{batch_size}"), format!("{payload}B"));
            let mut offset = 0u64;
            group.bench_function(id, |b| {
                b.to_async(&rt).iter(|| {
                    let from = offset;
                    offset = (offset + u64::from(batch_size)) % (total - u64::from(batch_size));
                    let s = &s;
                    async move {
                        let read = s
                            .connector
                            .poll(&s.stream, &s.topic, 0, PollFrom::Offset(from), batch_size)
                            .await
                            .expect("poll");
                        assert_eq!(read.len(), batch_size as usize);
                        black_box(read)
                    }
                });
            });
            rt.block_on(s.connector.shutdown()).expect("shutdown");
        }
    }
    group.finish();
}

criterion_group!(benches, append, poll);
criterion_main!(benches);
