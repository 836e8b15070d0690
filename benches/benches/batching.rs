//! Single-event `publish` throughput with and without the batching publisher, at
//! 1,000 concurrent callers: typed `Transport<E>::publish` against
//! `BatchingTransport<E>::publish` (default options), events of about 100 bytes
//! keyed by caller over 8 partitions. Each caller publishes one event after the
//! other, waiting for each receipt.
//!
//! Settings:
//! - `embedded_interval`: the embedded broker in process, durability `interval`
//!   (the default; no fsync on the publish path);
//! - `embedded_every_batch`: the same with durability `every_batch` (an fsync
//!   before each acknowledgement), data on the disk of the system temporary
//!   directory (the other settings use tmpfs when there is one, see
//!   `benches::brokers::data_parent`);
//! - `remote`: `RemoteConnector` (pool of 2, the default) against the embedded
//!   broker's Iggy TCP listener in this process;
//! - `remote_1ms`: the same through a proxy that holds each reply 1 ms (a network
//!   round trip; `benches::delay`).
//!
//! `raw_*` do the same with raw `OutgoingMessage`s (no typed encoding) on the
//! embedded broker, to show the publisher's own cost.
//!
//! Run with: cargo bench -p benches --bench batching

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy::connector::{OutgoingMessage, Partitioning, PublishRequest};
use rustok_iggy::prelude::*;
use rustok_iggy::{
    batching::{BatchingOptions, BatchingPublisher, BatchingTransport},
    connector::{ConnectorConfig, DurabilityPolicy, EmbeddedConnector, IggyConnector},
};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

const CALLERS: u64 = 1000;

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant_id)]
struct OrderPlaced {
    tenant_id: String,
    order_id: u64,
    note: String,
}

fn event(caller: u64, order_id: u64) -> OrderPlaced {
    OrderPlaced {
        tenant_id: format!("tenant-{caller}"),
        order_id,
        note: "x".repeat(48),
    }
}

/// A broker (and, for `remote`, a client connector on its listener).
struct Setup {
    _dir: tempfile::TempDir,
    _proxy: Option<benches::delay::DelayProxy>,
    broker: Arc<EmbeddedConnector>,
    connector: Arc<dyn IggyConnector>,
    orders: Transport<OrderPlaced>,
    batched: BatchingTransport<OrderPlaced>,
}

fn setup(
    rt: &Runtime,
    durability: DurabilityPolicy,
    remote: bool,
    delay: Option<Duration>,
) -> Setup {
    // `every_batch` measures fsync: on the disk of the temporary directory. The
    // others on tmpfs when there is one (they write gigabytes, and measure the
    // broker, not the disk).
    let parent = match durability {
        DurabilityPolicy::EveryBatch => std::env::temp_dir(),
        _ => benches::brokers::data_parent(),
    };
    let dir = tempfile::Builder::new()
        .prefix("rustok-bench-batching-")
        .tempdir_in(parent)
        .expect("tempdir");
    let mut config = ConnectorConfig::embedded(dir.path());
    config.embedded.durability = durability;
    config.embedded.tcp_enabled = remote;
    config.embedded.tcp_port = 0;
    rt.block_on(async {
        let broker = Arc::new(EmbeddedConnector::new());
        broker.connect(&config).await.expect("connect");
        let listener = broker.tcp_address();
        let proxy = match (listener, delay) {
            (Some(upstream), Some(delay)) => {
                Some(benches::delay::DelayProxy::start(upstream, delay).await)
            }
            _ => None,
        };
        let connector: Arc<dyn IggyConnector> = if remote {
            let address = proxy
                .as_ref()
                .map_or_else(|| listener.expect("listener"), |p| p.address());
            benches::brokers::remote(address).await
        } else {
            broker.clone()
        };
        let orders = Transport::<OrderPlaced>::new(
            Arc::clone(&connector),
            TransportOptions {
                partitions: 8,
                ..TransportOptions::default()
            },
        )
        .await
        .expect("transport");
        let batched =
            BatchingTransport::new(&orders, BatchingOptions::default()).expect("batching");
        Setup {
            _dir: dir,
            _proxy: proxy,
            broker,
            connector,
            orders,
            batched,
        }
    })
}

/// 1,000 concurrent callers, `rounds` sequential publishes each.
async fn unbatched(orders: &Transport<OrderPlaced>, rounds: u64) {
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let orders = orders.clone();
            tokio::spawn(async move {
                for round in 0..rounds {
                    orders
                        .publish(&event(caller, round))
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller");
    }
}

/// The same load through the batching transport.
async fn batched(batched: &BatchingTransport<OrderPlaced>, rounds: u64) {
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let batched = batched.clone();
            tokio::spawn(async move {
                for round in 0..rounds {
                    batched
                        .publish(&event(caller, round))
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller");
    }
}

/// Raw messages (no typed encoding), straight to the connector.
async fn raw_unbatched(s: &Setup, rounds: u64) {
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let connector = Arc::clone(&s.connector);
            let (stream, topic) = (s.orders.stream().clone(), s.orders.topic().clone());
            tokio::spawn(async move {
                for _ in 0..rounds {
                    connector
                        .publish(PublishRequest {
                            partitioning: Partitioning::Partition((caller % 8) as u32),
                            messages: vec![OutgoingMessage::new(vec![b'x'; 100])],
                            ..PublishRequest::new(stream.clone(), topic.clone())
                        })
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller");
    }
}

/// Raw messages through the batching publisher.
async fn raw_batched(s: &Setup, publisher: &BatchingPublisher, rounds: u64) {
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let publisher = publisher.clone();
            let (stream, topic) = (s.orders.stream().clone(), s.orders.topic().clone());
            tokio::spawn(async move {
                for _ in 0..rounds {
                    publisher
                        .publish(
                            &stream,
                            &topic,
                            Partitioning::Partition((caller % 8) as u32),
                            OutgoingMessage::new(vec![b'x'; 100]),
                        )
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller");
    }
}

fn publish(c: &mut Criterion) {
    let rt = benches::runtime();
    let mut group = c.benchmark_group("publish_1000_callers");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    let millisecond = Some(Duration::from_millis(1));
    for (name, durability, remote, delay, rounds) in [
        (
            "embedded_interval",
            DurabilityPolicy::Interval,
            false,
            None,
            10u64,
        ),
        (
            "embedded_every_batch",
            DurabilityPolicy::EveryBatch,
            false,
            None,
            1,
        ),
        ("remote", DurabilityPolicy::Interval, true, None, 1),
        (
            "remote_1ms",
            DurabilityPolicy::Interval,
            true,
            millisecond,
            1,
        ),
    ] {
        let s = setup(&rt, durability, remote, delay);
        group.throughput(Throughput::Elements(CALLERS * rounds));
        group.bench_function(BenchmarkId::new("unbatched", name), |b| {
            b.to_async(&rt).iter(|| unbatched(&s.orders, rounds));
        });
        group.bench_function(BenchmarkId::new("batched", name), |b| {
            b.to_async(&rt).iter(|| batched(&s.batched, rounds));
        });
        if name == "embedded_interval" {
            let publisher =
                BatchingPublisher::new(Arc::clone(&s.connector), BatchingOptions::default())
                    .expect("publisher");
            group.bench_function(BenchmarkId::new("raw_unbatched", name), |b| {
                b.to_async(&rt).iter(|| raw_unbatched(&s, rounds));
            });
            group.bench_function(BenchmarkId::new("raw_batched", name), |b| {
                b.to_async(&rt).iter(|| raw_batched(&s, &publisher, rounds));
            });
            rt.block_on(publisher.shutdown());
        }
        rt.block_on(async {
            s.batched.shutdown().await;
            s.connector.shutdown().await.expect("shutdown");
            s.broker.shutdown().await.expect("shutdown");
        });
    }
    group.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
