//! Publish throughput of `RemoteConnector` with connection pools of 1, 2 and 4
//! against the embedded broker's Iggy TCP listener (in this process, 127.0.0.1).
//!
//! 8 tasks publish concurrently, each to its own partition of an 8-partition topic
//! (independent partitions: what the pool parallelises), each waiting for its
//! receipt before the next request. Requests of 1 message (round-trip bound) and of
//! 100 messages (100-byte payloads); straight to the listener (`loopback`: client
//! and server share the machine's cores, so the figures are CPU-bound) and through
//! a proxy that holds each reply 1 ms (`1ms`: a network round trip, what the pool is
//! for; `benches::delay`).
//!
//! Run with: cargo bench -p benches --bench pool

use std::sync::Arc;
use std::time::Duration;

use benches::brokers::{Broker, PASSWORD, USERNAME, names, raw_batch};
use benches::delay::DelayProxy;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy_connector::{
    ConnectorConfig, ConnectorMode, DurabilityPolicy, IggyConnector, OutgoingMessage,
    PublishRequest, RemoteConnector, RemoteConnectorConfig, Secret, StreamName, TopicName,
    TopicSpec,
};

const PARTITIONS: u32 = 8;
/// Requests each task sends per iteration.
const REQUESTS: usize = 25;

async fn remote(address: std::net::SocketAddr, pool_size: u32) -> Arc<RemoteConnector> {
    let config = ConnectorConfig {
        mode: ConnectorMode::Remote,
        remote: RemoteConnectorConfig {
            addresses: vec![address.to_string()],
            username: USERNAME.into(),
            password: Secret::new(PASSWORD),
            pool_size,
            ..RemoteConnectorConfig::default()
        },
        ..ConnectorConfig::default()
    };
    let connector = Arc::new(RemoteConnector::new());
    connector.connect(&config).await.expect("remote connect");
    connector
}

/// One iteration: every task sends `REQUESTS` requests of `messages` to its
/// partition, one after the other.
async fn round(
    connector: &Arc<RemoteConnector>,
    stream: &StreamName,
    topic: &TopicName,
    messages: &[OutgoingMessage],
) {
    let tasks: Vec<_> = (0..PARTITIONS)
        .map(|partition| {
            let connector = Arc::clone(connector);
            let request = PublishRequest {
                messages: messages.to_vec(),
                ..PublishRequest::new(stream.clone(), topic.clone()).partition(partition)
            };
            tokio::spawn(async move {
                for _ in 0..REQUESTS {
                    connector.publish(request.clone()).await.expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher task");
    }
}

fn pool(c: &mut Criterion) {
    let rt = benches::runtime();
    let broker = rt.block_on(Broker::start(DurabilityPolicy::Interval, true));
    let (stream, topic) = names("bench", "pool");
    rt.block_on(async {
        broker
            .connector
            .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), PARTITIONS))
            .await
            .expect("topic");
    });
    let proxy = rt.block_on(DelayProxy::start(
        broker.address(),
        Duration::from_millis(1),
    ));
    let mut group = c.benchmark_group("remote_pool_publish");
    group.measurement_time(Duration::from_secs(5));
    let links = [("loopback", broker.address()), ("1ms", proxy.address())];
    for ((link, address), batch) in links
        .into_iter()
        .flat_map(|link| [1usize, 100].map(|batch| (link, batch)))
    {
        let messages = raw_batch(batch, 100);
        group.throughput(Throughput::Elements(
            u64::from(PARTITIONS) * REQUESTS as u64 * batch as u64,
        ));
        for pool_size in [1u32, 2, 4] {
            let connector = rt.block_on(remote(address, pool_size));
            let id = BenchmarkId::new(format!("{link}/batch{batch}"), format!("pool{pool_size}"));
            group.bench_function(id, |b| {
                b.to_async(&rt)
                    .iter(|| round(&connector, &stream, &topic, &messages));
            });
            rt.block_on(connector.shutdown()).expect("shutdown");
        }
    }
    group.finish();
    drop(proxy);
    rt.block_on(broker.shutdown());
}

criterion_group! {
    name = benches;
    config = benches::criterion();
    targets = pool
}
criterion_main!(benches);
