//! What does message-id deduplication cost on publish throughput?
//!
//! Through `EmbeddedConnector` (durability `never`, 100-byte payloads, fresh ids on
//! every send, so nothing is a duplicate): `publish/<on|off>/batch<N>` appends one
//! batch of `N` with the deduplication window on (the default: 10,000 ids per
//! partition, 1 minute) and off. With the window on, the first 10,000 messages fill
//! it; after that every message also evicts the oldest id, the steady state.
//!
//! Run with: cargo bench -p benches --bench dedup

use std::hint::black_box;
use std::sync::Arc;

use benches::brokers;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy_connector::{
    ConnectorConfig, DeduplicationConfig, DurabilityPolicy, EmbeddedConnector, IggyConnector,
    OutgoingMessage, PublishRequest,
};

const BATCHES: [usize; 2] = [1, 100];
const SIZE: usize = 100;

fn publish(c: &mut Criterion) {
    let rt = benches::runtime();
    let mut group = c.benchmark_group("dedup");
    for (deduplication, name) in [
        (DeduplicationConfig::default(), "on"),
        (DeduplicationConfig::disabled(), "off"),
    ] {
        let dir = tempfile::Builder::new()
            .prefix("rustok-bench-")
            .tempdir_in(brokers::data_parent())
            .expect("a temporary data directory");
        let mut config = ConnectorConfig::embedded(dir.path());
        config.embedded.durability = DurabilityPolicy::Never;
        config.embedded.deduplication = deduplication;
        let connector = Arc::new(EmbeddedConnector::new());
        rt.block_on(connector.connect(&config))
            .expect("the broker opens");
        for batch in BATCHES {
            let (stream, topic) = brokers::names("bench", &format!("dedup-{batch}"));
            rt.block_on(brokers::topic(connector.as_ref(), &stream, &topic));
            let payload = benches::events::payload(SIZE);
            let mut next_id: u128 = 1;
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::new(format!("publish/{name}"), batch), |b| {
                b.to_async(&rt).iter_batched(
                    || {
                        let messages = (0..batch)
                            .map(|_| {
                                next_id += 1;
                                OutgoingMessage::new(payload.clone()).with_id(next_id)
                            })
                            .collect();
                        PublishRequest {
                            messages,
                            ..PublishRequest::new(stream.clone(), topic.clone()).partition(0)
                        }
                    },
                    |request| async {
                        black_box(connector.publish(request).await.expect("publish"))
                    },
                    BatchSize::SmallInput,
                );
            });
        }
        rt.block_on(connector.shutdown()).expect("shutdown");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches::criterion();
    targets = publish
}
criterion_main!(benches);
