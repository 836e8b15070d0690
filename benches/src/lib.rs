//! Support code of the benchmark suite: the events it encodes and publishes, the
//! brokers it runs against, the criterion settings and the result files that
//! `scripts/bench.sh` turns into `benches/results/summary.md`.
//!
//! The bench targets (`benches/benches/*.rs`) answer one question each; see
//! `README.md` (section Benchmarks) for the figures.

pub mod brokers;
pub mod consume;
pub mod delay;
pub mod events;
pub mod pacing;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::Criterion;

/// The criterion settings of every group: short warm-up and measurement so that
/// the whole suite fits in a few minutes on two cores. Command-line flags
/// (`--measurement-time`, `--sample-size`, ...) still override them.
#[must_use]
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(2500))
        .nresamples(10_000)
        .without_plots()
        .configure_from_args()
}

/// A multi-threaded tokio runtime (one worker per core, as an application has).
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Where the benches write what criterion does not record (encoded sizes, latency
/// percentiles): `$RUSTOK_BENCH_OUT`, else `<target>/criterion/rustok`.
#[must_use]
pub fn results_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUSTOK_BENCH_OUT") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")),
        PathBuf::from,
    );
    target.join("criterion").join("rustok")
}

/// Writes `value` as pretty JSON to `<results_dir>/<name>`.
pub fn write_result(name: &str, value: &serde_json::Value) {
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("create the results directory");
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).expect("JSON");
    std::fs::write(&path, text).expect("write a result file");
    eprintln!("wrote {}", path.display());
}

/// A name not used before in this process (consumer groups, topics).
#[must_use]
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Message ids never used before in this process, one per call: the broker
/// deduplicates by message id, so a bench that sends the same messages again must
/// give them new ids, or the broker stores only the first copy.
#[must_use]
pub fn fresh_id() -> u128 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    u128::from(NEXT.fetch_add(1, Ordering::Relaxed)) << 64 | 0xbe9c
}

/// `messages` with fresh ids (see [`fresh_id`]).
#[must_use]
pub fn fresh_ids(
    mut messages: Vec<rustok_iggy_connector::OutgoingMessage>,
) -> Vec<rustok_iggy_connector::OutgoingMessage> {
    for message in &mut messages {
        message.id = fresh_id();
    }
    messages
}

/// Transport options for stream `stream` with topics of one partition (the
/// typed-path benches compare one partition's work).
#[must_use]
pub fn one_partition(stream: &str) -> rustok_iggy::TransportOptions {
    rustok_iggy::TransportOptions {
        stream: rustok_iggy::connector::StreamName::new(stream).expect("a stream name"),
        partitions: 1,
        ..rustok_iggy::TransportOptions::default()
    }
}

/// Payload sizes of the throughput benches.
pub const PAYLOAD_SIZES: [usize; 2] = [100, 1000];

/// `"100B"`, `"1KB"`.
#[must_use]
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1000 && bytes.is_multiple_of(1000) {
        format!("{}KB", bytes / 1000)
    } else {
        format!("{bytes}B")
    }
}
