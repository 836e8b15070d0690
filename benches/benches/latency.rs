//! Publish → delivery latency at a fixed rate, embedded in-process and over TCP.
//!
//! A producer thread publishes one event (about 100 bytes) every 100 µs (10,000
//! events/s), each carrying the time it was handed to `publish`; a consumer task on
//! the tokio runtime records, for each delivery, the time from that moment to the
//! moment it got it. The first half second is warm-up and not counted. The pacing is
//! open-loop (a late publish does not delay the schedule of the next ones), so a
//! stall shows up in the percentiles instead of slowing the producer. Cases:
//! - `embedded`: `Transport<Blob>::publish` → `Subscription<Blob>`, `ack` per
//!   delivery (the typed path), on the embedded broker in-process;
//! - `embedded_raw`: `IggyConnector::publish` → a `GroupConsumer` that commits once
//!   per poll (no typed layer, no commit per event);
//! - `tcp`: the typed path over a `RemoteConnector` to the broker's listener;
//! - `baseline`: no broker, the send time goes through a tokio channel: what the
//!   machine's scheduling costs under its current load.
//!
//! Criterion measures mean times per iteration, not distributions, so this target
//! has its own timed loop (`harness = false`): it prints p50, p99, p99.9 and max and
//! writes them to `<target>/criterion/rustok/latency.json`.
//!
//! Run with: cargo bench -p benches --bench latency
//! (`RUSTOK_LATENCY_SECONDS` sets the measured seconds per case, 5 by default.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::brokers::{self, Broker};
use benches::events::Blob;
use benches::pacing::{self, percentile};
use futures::StreamExt;
use rustok_iggy::{
    SubscriptionOptions, Transport, TransportOptions,
    connector::{DurabilityPolicy, GroupName, IggyConnector, StartPosition, StreamName},
};
use rustok_iggy_connector::{OutgoingMessage, PublishRequest};
use tokio::runtime::Runtime;

/// Events per second.
const RATE: u64 = 10_000;
/// Not counted.
const WARM_UP: Duration = Duration::from_millis(500);
/// Payload size of the events.
const SIZE: usize = 100;

/// Latencies of one case, in nanoseconds, sorted.
struct Measured {
    sorted: Vec<u64>,
    /// How late the sends started against the schedule, sorted.
    late: Vec<u64>,
    seconds: f64,
}

impl Measured {
    fn percentile(&self, p: f64) -> f64 {
        percentile(&self.sorted, p)
    }

    fn json(&self) -> serde_json::Value {
        let mean = self.sorted.iter().sum::<u64>() as f64 / self.sorted.len() as f64 / 1000.0;
        serde_json::json!({
            "rate_per_s": RATE,
            "events": self.sorted.len(),
            "seconds": self.seconds,
            "mean_us": mean,
            "p50_us": self.percentile(50.0),
            "p99_us": self.percentile(99.0),
            "p999_us": self.percentile(99.9),
            "max_us": self.sorted.last().copied().unwrap_or(0) as f64 / 1000.0,
            "send_late_p99_us": percentile(&self.late, 99.0),
            "send_late_p999_us": percentile(&self.late, 99.9),
        })
    }
}

/// The counted part of a case: latencies after the warm-up, sorted.
fn measured(mut latencies: Vec<u64>, lateness: Vec<u64>, warm: usize, seconds: f64) -> Measured {
    let mut sorted = latencies.split_off(warm);
    sorted.sort_unstable();
    let mut late = lateness[warm.min(lateness.len())..].to_vec();
    late.sort_unstable();
    Measured {
        sorted,
        late,
        seconds,
    }
}

fn counts(seconds: f64) -> (usize, usize) {
    let warm = (RATE as f64 * WARM_UP.as_secs_f64()) as usize;
    (warm, warm + (RATE as f64 * seconds) as usize)
}

/// The floor of this machine under its current load: the producer thread hands the
/// send time to a task on the same runtime through a tokio channel (no broker).
fn baseline(rt: &Runtime, seconds: f64) -> Measured {
    let (warm, total) = counts(seconds);
    let origin = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let consumer = rt.spawn(async move {
        let mut latencies = Vec::with_capacity(total);
        while let Some(sent) = rx.recv().await {
            latencies.push((origin.elapsed().as_nanos() as u64).saturating_sub(sent));
        }
        latencies
    });
    let lateness = pacing::paced(RATE, origin, total, |sent| {
        tx.send(sent).expect("receiver alive")
    });
    drop(tx);
    let latencies = rt.block_on(consumer).expect("consumer task");
    measured(latencies, lateness, warm, seconds)
}

/// `Transport<Blob>::publish` → `Subscription<Blob>`, `ack` per delivery.
fn typed(rt: &Runtime, connector: Arc<dyn IggyConnector>, seconds: f64) -> Measured {
    let options = TransportOptions {
        stream: StreamName::new(benches::unique("latency")).expect("a name"),
        partitions: 1,
        ..TransportOptions::default()
    };
    let transport = rt
        .block_on(Transport::<Blob>::new(connector, options))
        .expect("transport");
    let (warm, total) = counts(seconds);
    let origin = Instant::now();
    let subscription = rt
        .block_on(transport.subscribe_with(
            "latency",
            StartPosition::Latest,
            SubscriptionOptions::default(),
        ))
        .expect("subscribe");
    let consumer = rt.spawn(async move {
        let mut subscription = subscription;
        let mut latencies = Vec::with_capacity(total);
        while latencies.len() < total {
            let delivery = subscription.next().await.expect("open").expect("event");
            let now = origin.elapsed().as_nanos() as u64;
            latencies.push(now.saturating_sub(delivery.seq));
            delivery.ack().await.expect("ack");
        }
        subscription.close().await.expect("close");
        latencies
    });
    let handle = rt.handle().clone();
    let body = Blob::sized(0, SIZE).body;
    let lateness = pacing::paced(RATE, origin, total, |seq| {
        let event = Blob {
            seq,
            body: body.clone(),
        };
        handle.block_on(transport.publish(&event)).expect("publish");
    });
    let latencies = rt.block_on(consumer).expect("consumer task");
    measured(latencies, lateness, warm, seconds)
}

/// `IggyConnector::publish` of one message → a `GroupConsumer` that polls and
/// commits once per poll (no typed layer, no commit per event).
fn raw(rt: &Runtime, connector: Arc<dyn IggyConnector>, seconds: f64) -> Measured {
    let (stream, topic) = brokers::names(&benches::unique("latency-raw"), "raw");
    let (warm, total) = counts(seconds);
    let origin = Instant::now();
    let member = rt.block_on(async {
        brokers::topic(connector.as_ref(), &stream, &topic).await;
        let group = GroupName::new("latency").expect("a name");
        connector
            .join_group(&stream, &topic, &group, StartPosition::Latest)
            .await
            .expect("join")
    });
    let consumer = rt.spawn(async move {
        let mut latencies = Vec::with_capacity(total);
        while latencies.len() < total {
            let messages = member.poll(1000).await.expect("poll");
            let now = origin.elapsed().as_nanos() as u64;
            for message in &messages {
                let sent = u64::from_le_bytes(message.payload[..8].try_into().expect("8 bytes"));
                latencies.push(now.saturating_sub(sent));
            }
            let last = messages.last().expect("a message");
            member
                .commit(last.partition, last.offset)
                .await
                .expect("commit");
        }
        member.leave().await.expect("leave");
        latencies
    });
    let handle = rt.handle().clone();
    let lateness = pacing::paced(RATE, origin, total, |sent| {
        let mut payload = vec![b'x'; SIZE];
        payload[..8].copy_from_slice(&sent.to_le_bytes());
        let request = PublishRequest::new(stream.clone(), topic.clone())
            .partition(0)
            .message(OutgoingMessage::new(payload));
        handle
            .block_on(connector.publish(request))
            .expect("publish");
    });
    let latencies = rt.block_on(consumer).expect("consumer task");
    measured(latencies, lateness, warm, seconds)
}

fn main() {
    // `cargo bench` passes `--bench` and any filter: run the cases the filter names.
    let filters = pacing::filters();
    let wanted = |case: &str| {
        let id = format!("latency/{case}");
        filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
    };
    let seconds = pacing::seconds();
    let rt = benches::runtime();
    let mut results = serde_json::Map::new();

    if wanted("baseline") {
        results.insert("baseline".into(), baseline(&rt, seconds).json());
    }
    let broker = rt.block_on(Broker::start(DurabilityPolicy::Never, true));
    if wanted("embedded") {
        results.insert(
            "embedded".into(),
            typed(&rt, broker.shared(), seconds).json(),
        );
    }
    if wanted("embedded_raw") {
        results.insert(
            "embedded_raw".into(),
            raw(&rt, broker.shared(), seconds).json(),
        );
    }
    if wanted("tcp") {
        let remote = rt.block_on(brokers::remote(broker.address()));
        let connector = Arc::clone(&remote) as Arc<dyn IggyConnector>;
        results.insert("tcp".into(), typed(&rt, connector, seconds).json());
        rt.block_on(remote.shutdown()).expect("remote shutdown");
    }
    rt.block_on(broker.shutdown());

    if results.is_empty() {
        return;
    }
    println!("latency at {RATE} events/s, publish → delivery (µs)");
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "case", "p50", "p99", "p99.9", "max", "events"
    );
    for (case, r) in &results {
        println!(
            "{case:<13} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9} {:>12.1}",
            r["p50_us"].as_f64().unwrap_or_default(),
            r["p99_us"].as_f64().unwrap_or_default(),
            r["p999_us"].as_f64().unwrap_or_default(),
            r["max_us"].as_f64().unwrap_or_default(),
            r["events"],
            r["send_late_p99_us"].as_f64().unwrap_or_default(),
        );
    }
    benches::write_result("latency.json", &results.into());
}
