//! What does the schema fingerprint header cost?
//!
//! Every message `Transport<E>` publishes carries `schema_fingerprint` (16 hex
//! digits); a Postcard consumer parses it and compares it with its own type's. The
//! library has no switch to leave the header out, so the two sides are compared at
//! the connector, with the exact header set the typed layer writes: setup publishes
//! 1000 medium Postcard events (`OrderShipped`) through `Transport<E>`, reads them
//! back, and keeps their headers as stored ("with"); "without" is the same set with
//! `schema_fingerprint` removed. Payloads, ids and every other header are the same.
//! Embedded broker in process, durability `never`, one partition, batches of 1000.
//!
//! The machine the suite runs on is shared, so "with" and "without" are measured in
//! pairs: each iteration of `…/with` first does the same work on the "without"
//! messages, untimed, then times its own, and `…/without` the reverse. Both benches do
//! the same work in the same order of topics; only which half is timed differs, so
//! drift of the machine's load and the order of the benches fall on both alike.
//! - `publish/with`, `publish/without`: `IggyConnector::publish` of the batch (fresh
//!   ids per send, set outside the timed part, so nothing is a duplicate);
//! - `publish/typed`: `Transport<E>::publish_batch` of the same events (the whole
//!   typed publish, header included: the scale the difference is a share of);
//! - `build/fingerprint_header`: per message, what the typed layer adds to build the
//!   header (the type's schema looked up, the fingerprint's text, its header value);
//! - `consume/typed_with`, `consume/typed_without`: `Subscription<E>` (fetch 1000,
//!   decode, check the headers, `ack` each) over 100,000 stored messages of each kind;
//!   "without" skips the fingerprint check, as for any message without the header;
//! - `consume/raw_with`, `consume/raw_without`: `GroupConsumer::poll(1000)` and one
//!   commit per batch over the same messages (the storage and header reading alone,
//!   no check);
//! - `check/fingerprint`: per message, the consumer's check alone (the type's schema
//!   looked up, the header's text parsed, compared).
//!
//! The header's size per message is written to
//! `<target>/criterion/rustok/schema_header.json`.
//!
//! Run with: cargo bench -p benches --bench schema_header

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use benches::brokers::{self, Broker};
use benches::consume;
use benches::events::{ShippedPostcard, order_shipped};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy::metadata::header;
use rustok_iggy::schema::{self, EventSchema, Fingerprint};
use rustok_iggy::{
    IggyEvent, Transport,
    connector::{DurabilityPolicy, GroupName, IggyConnector, StartPosition, StreamName},
};
use rustok_iggy_connector::{HeaderValue, OutgoingMessage, PublishRequest, TopicName};
use tokio::runtime::Runtime;

type E = ShippedPostcard;

const BATCH: usize = 1000;
/// Messages stored per kind for the consume benches; each group reads them once.
const STORED: u64 = 100_000;

/// The messages `Transport<E>` writes for `events`, as stored: published through
/// the typed layer, read back from the broker.
async fn typed_messages(connector: &Arc<dyn IggyConnector>, events: &[E]) -> Vec<OutgoingMessage> {
    let transport = Transport::<E>::new(
        Arc::clone(connector),
        benches::one_partition("schema-source"),
    )
    .await
    .expect("transport");
    transport.publish_batch(events).await.expect("publish");
    let group = GroupName::new("schema-source").expect("a group name");
    let member = connector
        .join_group(
            transport.stream(),
            transport.topic(),
            &group,
            StartPosition::Earliest,
        )
        .await
        .expect("join");
    let mut messages = Vec::with_capacity(events.len());
    while messages.len() < events.len() {
        messages.extend(member.poll(BATCH as u32).await.expect("poll"));
    }
    member.leave().await.expect("leave");
    messages
        .into_iter()
        .map(|message| OutgoingMessage {
            id: message.id,
            payload: message.payload,
            headers: message.headers,
        })
        .collect()
}

/// `messages` without the schema fingerprint header (every other header kept).
fn without_fingerprint(messages: &[OutgoingMessage]) -> Vec<OutgoingMessage> {
    messages
        .iter()
        .map(|message| {
            let mut message = message.clone();
            message
                .headers
                .remove(header::SCHEMA_FINGERPRINT)
                .expect("the typed layer writes the fingerprint");
            message
        })
        .collect()
}

fn request(
    stream: &StreamName,
    topic: &TopicName,
    messages: Vec<OutgoingMessage>,
) -> PublishRequest {
    PublishRequest {
        messages,
        ..PublishRequest::new(stream.clone(), topic.clone()).partition(0)
    }
}

/// The schema of `event`'s type and event type, looked up as the typed layer does
/// per message (the traced schemas are cached per type).
fn schema_of(event: &E) -> &'static EventSchema {
    schema::schemas::<E>()
        .expect("a traced schema")
        .iter()
        .find(|schema| schema.event_type == event.event_type())
        .expect("its schema")
}

/// `(name, timed, untimed)`: each bench of a pair times its own messages and runs
/// the other's first, untimed by criterion.
fn pairs<'a, T>(with: &'a T, without: &'a T) -> [(&'static str, &'a T, &'a T); 2] {
    [("with", with, without), ("without", without, with)]
}

/// The time of both halves of every iteration of a pair of benches (warm-up
/// included): the ratio of the totals compares "with" and "without" measured side by
/// side, each pair within a few milliseconds, whatever the machine's load did
/// between the two benches.
struct Paired {
    with_ns: AtomicU64,
    without_ns: AtomicU64,
    pairs: AtomicU64,
}

impl Paired {
    const fn new() -> Self {
        Self {
            with_ns: AtomicU64::new(0),
            without_ns: AtomicU64::new(0),
            pairs: AtomicU64::new(0),
        }
    }

    /// Records one iteration of the bench timing `name`: `own` its half, `other`
    /// the other's.
    fn add(&self, name: &str, own: Duration, other: Duration) {
        let (with, without) = if name == "with" {
            (own, other)
        } else {
            (other, own)
        };
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.with_ns.fetch_add(ns(with), Ordering::Relaxed);
        self.without_ns.fetch_add(ns(without), Ordering::Relaxed);
        self.pairs.fetch_add(1, Ordering::Relaxed);
    }

    fn result(&self) -> serde_json::Value {
        let (with, without) = (
            self.with_ns.load(Ordering::Relaxed),
            self.without_ns.load(Ordering::Relaxed),
        );
        serde_json::json!({
            "pairs": self.pairs.load(Ordering::Relaxed),
            "with_ns": with,
            "without_ns": without,
            "ratio": with as f64 / without.max(1) as f64,
        })
    }
}

static PUBLISH: Paired = Paired::new();
static CONSUME_TYPED: Paired = Paired::new();
static CONSUME_RAW: Paired = Paired::new();

/// Times `future`.
async fn timed<F: Future>(future: F) -> (F::Output, Duration) {
    let start = Instant::now();
    let output = future.await;
    (output, start.elapsed())
}

fn publish(
    c: &mut Criterion,
    rt: &Runtime,
    connector: &Arc<dyn IggyConnector>,
    events: &[E],
    with: &[OutgoingMessage],
    without: &[OutgoingMessage],
) {
    let mut group = c.benchmark_group("schema_header");
    group.throughput(Throughput::Elements(BATCH as u64));
    let topics: Vec<(StreamName, TopicName)> = ["with", "without"]
        .iter()
        .map(|name| brokers::names("schema-publish", &format!("publish-{name}")))
        .collect();
    for (stream, topic) in &topics {
        rt.block_on(brokers::topic(connector.as_ref(), stream, topic));
    }
    let (with_topic, without_topic) = (&topics[0], &topics[1]);
    for (name, (own_messages, timed_topic), (untimed, untimed_topic)) in
        pairs(&(with, with_topic), &(without, without_topic))
    {
        group.bench_function(BenchmarkId::new("publish", name), |b| {
            b.to_async(rt).iter_custom(|iters| async move {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let (stream, topic) = untimed_topic;
                    let other = request(stream, topic, benches::fresh_ids(untimed.to_vec()));
                    let (stored, other) = timed(connector.publish(other)).await;
                    stored.expect("publish");
                    let (stream, topic) = timed_topic;
                    let own = request(stream, topic, benches::fresh_ids(own_messages.to_vec()));
                    let (stored, own) = timed(connector.publish(own)).await;
                    black_box(stored.expect("publish"));
                    elapsed += own;
                    PUBLISH.add(name, own, other);
                }
                elapsed
            });
        });
    }
    let transport = rt
        .block_on(Transport::<E>::new(
            Arc::clone(connector),
            benches::one_partition("schema-typed"),
        ))
        .expect("transport");
    group.bench_function(BenchmarkId::new("publish", "typed"), |b| {
        b.to_async(rt)
            .iter(|| async { black_box(transport.publish_batch(events).await.expect("publish")) });
    });
    group.finish();

    let mut group = c.benchmark_group("schema_header");
    group.throughput(Throughput::Elements(1));
    let event = &events[0];
    group.bench_function(BenchmarkId::new("build", "fingerprint_header"), |b| {
        b.iter(|| {
            let schema = schema_of(black_box(event));
            black_box(HeaderValue::string(schema.fingerprint.to_string()))
        });
    });
    let stored = with[0]
        .headers
        .get_str(header::SCHEMA_FINGERPRINT)
        .expect("the fingerprint")
        .to_owned();
    group.bench_function(BenchmarkId::new("check", "fingerprint"), |b| {
        b.iter(|| {
            let schema = schema_of(black_box(event));
            let found: Fingerprint = black_box(stored.as_str()).parse().expect("a fingerprint");
            assert!(schema.reads(found));
        });
    });
    group.finish();
}

/// The consume pairs: per batch, 1000 messages from the other side (untimed), then
/// 1000 from the bench's own (timed), each side read by a fresh group per pass.
fn consume(
    c: &mut Criterion,
    rt: &Runtime,
    connector: &Arc<dyn IggyConnector>,
    with: &[OutgoingMessage],
    without: &[OutgoingMessage],
) {
    let transports: Vec<Transport<E>> = ["with", "without"]
        .iter()
        .map(|name| {
            let transport = rt
                .block_on(Transport::<E>::new(
                    Arc::clone(connector),
                    benches::one_partition(&format!("schema-consume-{name}")),
                ))
                .expect("transport");
            let messages = if *name == "with" { with } else { without };
            rt.block_on(async {
                for _ in 0..STORED / BATCH as u64 {
                    let request = request(
                        transport.stream(),
                        transport.topic(),
                        benches::fresh_ids(messages.to_vec()),
                    );
                    connector.publish(request).await.expect("publish");
                }
            });
            transport
        })
        .collect();
    let mut group = c.benchmark_group("schema_header");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, own_side, untimed) in pairs(&transports[0], &transports[1]) {
        group.bench_function(BenchmarkId::new("consume", format!("typed_{name}")), |b| {
            b.to_async(rt).iter_custom(|iters| async move {
                let mut left = iters * BATCH as u64;
                let mut elapsed = Duration::ZERO;
                while left > 0 {
                    let mut other = consume::subscribe(untimed, BATCH).await;
                    let mut own = consume::subscribe(own_side, BATCH).await;
                    let mut pass = left.min(STORED);
                    left -= pass;
                    while pass > 0 {
                        let ((), other_time) = timed(consume::take(&mut other, BATCH as u64)).await;
                        let ((), own_time) = timed(consume::take(&mut own, BATCH as u64)).await;
                        elapsed += own_time;
                        CONSUME_TYPED.add(name, own_time, other_time);
                        pass -= BATCH as u64;
                    }
                    other.close().await.expect("close");
                    own.close().await.expect("close");
                }
                elapsed
            });
        });
        group.bench_function(BenchmarkId::new("consume", format!("raw_{name}")), |b| {
            b.to_async(rt).iter_custom(|iters| async move {
                let mut left = iters * BATCH as u64;
                let mut elapsed = Duration::ZERO;
                while left > 0 {
                    let other = consume::join(connector, (untimed.stream(), untimed.topic())).await;
                    let own = consume::join(connector, (own_side.stream(), own_side.topic())).await;
                    let mut pass = left.min(STORED);
                    left -= pass;
                    while pass > 0 {
                        let ((), other_time) =
                            timed(consume::poll(other.as_ref(), BATCH as u64, BATCH, &|_| {}))
                                .await;
                        let ((), own_time) =
                            timed(consume::poll(own.as_ref(), BATCH as u64, BATCH, &|_| {})).await;
                        elapsed += own_time;
                        CONSUME_RAW.add(name, own_time, other_time);
                        pass -= BATCH as u64;
                    }
                    other.leave().await.expect("leave");
                    own.leave().await.expect("leave");
                }
                elapsed
            });
        });
    }
    group.finish();
}

fn schema_header(c: &mut Criterion) {
    let rt = benches::runtime();
    let broker = rt.block_on(Broker::start(DurabilityPolicy::Never, false));
    let connector = broker.shared();
    let events: Vec<E> = (0..BATCH as u64)
        .map(|i| ShippedPostcard(order_shipped(i)))
        .collect();
    let with = rt.block_on(typed_messages(&connector, &events));
    let without = without_fingerprint(&with);
    publish(c, &rt, &connector, &events, &with, &without);
    consume(c, &rt, &connector, &with, &without);
    let header_bytes = |messages: &[OutgoingMessage]| messages[0].headers.encoded_len();
    benches::write_result(
        "schema_header.json",
        &serde_json::json!({
            "event": "OrderShipped (postcard)",
            "payload_bytes": with[0].payload.len(),
            "headers_bytes_with": header_bytes(&with),
            "headers_bytes_without": header_bytes(&without),
            "fingerprint_header_bytes": header_bytes(&with) - header_bytes(&without),
            "paired": {
                "publish": PUBLISH.result(),
                "consume_typed": CONSUME_TYPED.result(),
                "consume_raw": CONSUME_RAW.result(),
            },
        }),
    );
    rt.block_on(broker.shutdown());
}

criterion_group! {
    name = benches;
    config = benches::criterion();
    targets = schema_header
}
criterion_main!(benches);
