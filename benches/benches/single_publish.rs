//! How many single events per second does `Transport<E>::publish` carry when
//! callers await one event at a time?
//!
//! One embedded broker with its Iggy TCP listener on 127.0.0.1, a
//! `Transport<Blob>` (100-byte Postcard payloads) over a `RemoteConnector`, one
//! partition. Each iteration publishes 1000 events with `Transport::publish`, split
//! among `callers` tasks that each await their events one after the other:
//! - `single_publish/tcp/<callers>` for 1, 10 and 1000 callers. With one caller each
//!   event is a round trip; with more, concurrent publishes share requests
//!   (coalescing with zero linger), so the rate grows with the callers.
//!
//! Run with: cargo bench -p benches --bench single_publish

use std::sync::Arc;

use benches::brokers::{self, Broker};
use benches::events::Blob;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy::{DurabilityPolicy, IggyConnector, StreamName, Transport, TransportOptions};

const EVENTS: usize = 1000;

fn single_publish(c: &mut Criterion) {
    let rt = benches::runtime();
    let broker = rt.block_on(Broker::start(DurabilityPolicy::Never, true));
    let remote = rt.block_on(brokers::remote(broker.address()));
    let transport = rt
        .block_on(Transport::<Blob>::new(
            Arc::clone(&remote) as Arc<dyn IggyConnector>,
            TransportOptions {
                stream: StreamName::new("single").expect("a stream name"),
                partitions: 1,
                ..TransportOptions::default()
            },
        ))
        .expect("transport");
    let mut group = c.benchmark_group("single_publish");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for callers in [1usize, 10, 1000] {
        group.bench_function(BenchmarkId::new("tcp", callers), |b| {
            b.to_async(&rt).iter(|| {
                let transport = transport.clone();
                async move {
                    let tasks: Vec<_> = (0..callers)
                        .map(|caller| {
                            let transport = transport.clone();
                            tokio::spawn(async move {
                                for i in (caller..EVENTS).step_by(callers) {
                                    let event = Blob::sized(i as u64, 100);
                                    transport.publish(&event).await.expect("publish");
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("a publishing task");
                    }
                }
            });
        });
    }
    group.finish();
    rt.block_on(async {
        remote.shutdown().await.expect("remote shutdown");
        broker.shutdown().await;
    });
}

criterion_group! {
    name = benches;
    config = benches::criterion();
    targets = single_publish
}
criterion_main!(benches);
