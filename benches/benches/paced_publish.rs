//! Does one sender that awaits each `Transport<E>::publish` before the next keep
//! 10,000 events/s?
//!
//! A thread wants to start one publish every 100 µs and awaits each (on the tokio
//! runtime, through its handle). The schedule is open-loop: publish `i` is due at
//! `t0 + i · 100 µs` whatever happened before, and its *lateness* is how far behind
//! that its start was. A sender that cannot keep the rate falls further behind with
//! every event, so its lateness grows to seconds; one that can shows only the
//! machine's scheduling stalls. The first half second is warm-up and not counted.
//! Cases (100-byte events, one partition):
//! - `baseline`: no broker, the sender hands a number to a tokio channel: what the
//!   pacing itself costs under the machine's current load;
//! - `embedded`: `Transport<Blob>::publish` on the embedded broker, in-process;
//! - `tcp`: `Transport<Blob>::publish` over a `RemoteConnector` to the broker's
//!   Iggy listener on 127.0.0.1;
//! - `tcp_connector`: `RemoteConnector::publish` of one pre-built message without
//!   headers (no typed layer: the connector's send path and the round trip);
//! - `tcp_sdk`: the official SDK client's `send_messages` of one message (the round
//!   trip alone).
//!
//! Besides the lateness it reports how long each call took (its start to its
//! answer), and the rate the sender reached.
//!
//! Criterion measures mean times per iteration, not distributions, so this target
//! has its own timed loop (`harness = false`); it prints the figures and writes
//! them to `<target>/criterion/rustok/paced_publish.json`.
//!
//! Run with: cargo bench -p benches --bench paced_publish [case]
//! (`RUSTOK_LATENCY_SECONDS` sets the measured seconds per case, 5 by default.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::brokers::{self, Broker};
use benches::events::Blob;
use benches::pacing::{self, percentile};
use iggy::prelude::{Identifier, IggyMessage, MessageClient, Partitioning};
use rustok_iggy::{
    Transport, TransportOptions,
    connector::{DurabilityPolicy, IggyConnector, StreamName},
};
use rustok_iggy_connector::{OutgoingMessage, PublishRequest};
use tokio::runtime::{Handle, Runtime};

/// Events per second.
const RATE: u64 = 10_000;
/// Not counted.
const WARM_UP: Duration = Duration::from_millis(500);
/// Payload size of the events.
const SIZE: usize = 100;

/// What one case measured (nanoseconds, sorted; the warm-up left out).
struct Measured {
    late: Vec<u64>,
    calls: Vec<u64>,
    /// Counted sends per second, from the first counted one's due time to the last
    /// one's answer.
    achieved: f64,
}

impl Measured {
    fn json(&self) -> serde_json::Value {
        let mean = self.calls.iter().sum::<u64>() as f64 / self.calls.len().max(1) as f64 / 1000.0;
        serde_json::json!({
            "rate_per_s": RATE,
            "events": self.late.len(),
            "achieved_per_s": self.achieved,
            "late_p50_us": percentile(&self.late, 50.0),
            "late_p99_us": percentile(&self.late, 99.0),
            "late_p999_us": percentile(&self.late, 99.9),
            "late_max_us": self.late.last().copied().unwrap_or(0) as f64 / 1000.0,
            "call_mean_us": mean,
            "call_p50_us": percentile(&self.calls, 50.0),
            "call_p99_us": percentile(&self.calls, 99.0),
            "call_max_us": self.calls.last().copied().unwrap_or(0) as f64 / 1000.0,
        })
    }
}

/// Runs `send` `RATE` times a second for the warm-up and `seconds`, timing each call.
fn measure(seconds: f64, mut send: impl FnMut(u64)) -> Measured {
    let warm = (RATE as f64 * WARM_UP.as_secs_f64()) as usize;
    let total = warm + (RATE as f64 * seconds) as usize;
    let origin = Instant::now();
    let mut calls = Vec::with_capacity(total);
    let mut late = pacing::paced(RATE, origin, total, |now| {
        send(now);
        calls.push((origin.elapsed().as_nanos() as u64).saturating_sub(now));
    });
    let finished = origin.elapsed();
    // The counted part starts at the first counted send's due time.
    let counted_from = Duration::from_nanos(1_000_000_000 / RATE) * warm as u32;
    let achieved = (total - warm) as f64 / (finished.saturating_sub(counted_from)).as_secs_f64();
    let mut late = late.split_off(warm);
    late.sort_unstable();
    let mut calls = calls.split_off(warm);
    calls.sort_unstable();
    Measured {
        late,
        calls,
        achieved,
    }
}

fn baseline(rt: &Runtime, seconds: f64) -> Measured {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let drain = rt.spawn(async move { while rx.recv().await.is_some() {} });
    let measured = measure(seconds, |now| tx.send(now).expect("receiver alive"));
    drop(tx);
    rt.block_on(drain).expect("the channel's reader");
    measured
}

/// `Transport<Blob>::publish`, awaited one after the other.
fn typed(handle: &Handle, connector: Arc<dyn IggyConnector>, seconds: f64) -> Measured {
    let options = TransportOptions {
        stream: StreamName::new(benches::unique("paced")).expect("a name"),
        partitions: 1,
        ..TransportOptions::default()
    };
    let transport = handle
        .block_on(Transport::<Blob>::new(connector, options))
        .expect("transport");
    let body = Blob::sized(0, SIZE).body;
    measure(seconds, |seq| {
        let event = Blob {
            seq,
            body: body.clone(),
        };
        handle.block_on(transport.publish(&event)).expect("publish");
    })
}

/// `IggyConnector::publish` of one message without headers.
fn connector(handle: &Handle, connector: Arc<dyn IggyConnector>, seconds: f64) -> Measured {
    let (stream, topic) = brokers::names(&benches::unique("paced-raw"), "raw");
    handle.block_on(brokers::topic(connector.as_ref(), &stream, &topic));
    let payload = benches::events::payload(SIZE);
    measure(seconds, |_| {
        let request = PublishRequest::new(stream.clone(), topic.clone())
            .partition(0)
            .message(OutgoingMessage::new(payload.clone()));
        handle
            .block_on(connector.publish(request))
            .expect("publish");
    })
}

/// The official SDK client's `send_messages` of one message.
fn sdk(handle: &Handle, broker: &Broker, seconds: f64) -> Measured {
    let (stream, topic) = brokers::names(&benches::unique("paced-sdk"), "raw");
    let client = handle.block_on(async {
        brokers::topic(broker.connector.as_ref(), &stream, &topic).await;
        brokers::sdk_client(broker.address()).await
    });
    let (s, t) = (
        Identifier::named(stream.as_str()).expect("a stream id"),
        Identifier::named(topic.as_str()).expect("a topic id"),
    );
    let partitioning = Partitioning::partition_id(0);
    let payload = benches::events::payload(SIZE);
    let mut id = 0u128;
    measure(seconds, |_| {
        id += 1;
        let mut messages = [IggyMessage::builder()
            .id(id)
            .payload(payload.clone())
            .build()
            .expect("a message")];
        handle
            .block_on(client.send_messages(&s, &t, &partitioning, &mut messages))
            .expect("send");
    })
}

fn main() {
    let filters = pacing::filters();
    let wanted = |case: &str| {
        let id = format!("paced_publish/{case}");
        filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
    };
    let seconds = pacing::seconds();
    let rt = benches::runtime();
    let handle = rt.handle().clone();
    let mut results = serde_json::Map::new();

    if wanted("baseline") {
        results.insert("baseline".into(), baseline(&rt, seconds).json());
    }
    let broker = rt.block_on(Broker::start(DurabilityPolicy::Never, true));
    if wanted("embedded") {
        let measured = typed(&handle, broker.shared(), seconds);
        results.insert("embedded".into(), measured.json());
    }
    if wanted("tcp") || wanted("tcp_connector") {
        let remote = rt.block_on(brokers::remote(broker.address()));
        let shared = Arc::clone(&remote) as Arc<dyn IggyConnector>;
        if wanted("tcp") {
            let measured = typed(&handle, Arc::clone(&shared), seconds);
            results.insert("tcp".into(), measured.json());
        }
        if wanted("tcp_connector") {
            results.insert(
                "tcp_connector".into(),
                connector(&handle, shared, seconds).json(),
            );
        }
        rt.block_on(remote.shutdown()).expect("remote shutdown");
    }
    if wanted("tcp_sdk") {
        results.insert("tcp_sdk".into(), sdk(&handle, &broker, seconds).json());
    }
    rt.block_on(broker.shutdown());

    if results.is_empty() {
        return;
    }
    println!("one sender awaiting each publish, paced at {RATE} events/s (µs)");
    println!(
        "{:<14} {:>9} {:>9} {:>9} {:>9} | {:>8} {:>8} {:>8} | {:>9} {:>7}",
        "case",
        "late p50",
        "late p99",
        "p99.9",
        "max",
        "call p50",
        "p99",
        "mean",
        "reached/s",
        "events"
    );
    for (case, r) in &results {
        let f = |key: &str| r[key].as_f64().unwrap_or_default();
        println!(
            "{case:<14} {:>9.1} {:>9.1} {:>9.1} {:>9.1} | {:>8.1} {:>8.1} {:>8.1} | {:>9.0} {:>7}",
            f("late_p50_us"),
            f("late_p99_us"),
            f("late_p999_us"),
            f("late_max_us"),
            f("call_p50_us"),
            f("call_p99_us"),
            f("call_mean_us"),
            f("achieved_per_s"),
            r["events"],
        );
    }
    benches::write_result("paced_publish.json", &results.into());
}
