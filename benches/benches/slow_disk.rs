//! Does a slow disk stall the application's runtime?
//!
//! Four tasks publish to one partition with durability `every_batch`, each waiting
//! for its acknowledgement, while a 1 ms ticker runs on the same tokio runtime (one
//! worker per core) and records how late each tick fires. Every fsync of the
//! storage is slowed by the fault-injection seam (`embedded.fault_fsync_delay`,
//! `RUSTOK_SLOW_DISK_DELAY_MS`, 10 ms by default). Cases, in one run:
//! - `before`: the previous design, reproduced on the same storage engine: each
//!   publish takes the partition's lock, appends and fsyncs inside it, on the
//!   runtime's worker thread (what `Partition::append` did);
//! - `after`: the embedded broker (`EmbeddedConnector::publish`): the append is a
//!   `write` on the caller's thread, the fsync runs on the broker's sync threads,
//!   concurrent publishes share it;
//! - `idle`: the ticker alone (this machine's scheduling under its current load).
//!
//! Criterion measures mean times per iteration, not distributions, so this target
//! has its own timed loop (`harness = false`, as `latency`): it prints tick lateness
//! p50, p99, p99.9 and max and the publishes per second, and writes them to
//! `<target>/criterion/rustok/slow_disk.json`. Data directories are on the real
//! disk (the system temporary directory, or `RUSTOK_BENCH_DISK_DIR`).
//!
//! Run with: cargo bench -p benches --bench slow_disk
//! To compare with code that has no seam, slow every fsync with strace instead, for
//! both binaries (`RUSTOK_SLOW_DISK_DELAY_MS=0` here):
//! `strace -f --seccomp-bpf -qq -o /dev/null -e trace=fsync,fdatasync
//! -e inject=fsync,fdatasync:delay_enter=10000 target/release/deps/slow_disk-* --bench`.
//! (`RUSTOK_SLOW_DISK_SECONDS` sets the measured seconds per case, 5 by default.)

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rustok_iggy_connector::{
    ConnectorConfig, DurabilityPolicy, EmbeddedConnector, IggyConnector, OutgoingMessage,
    PublishRequest,
};
use rustok_iggy_storage::record::RecordBuilder;
use rustok_iggy_storage::{Disk, Durability, LogConfig, PartitionLog};
use tokio::runtime::Runtime;

const PUBLISHERS: usize = 4;
const PAYLOAD: usize = 100;

/// Where the data directories go: a real disk.
fn disk_dir() -> PathBuf {
    std::env::var_os("RUSTOK_BENCH_DISK_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// Tick lateness (ns, sorted) and publishes done.
struct Measured {
    late: Vec<u64>,
    publishes: u64,
    seconds: f64,
}

impl Measured {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "ticks": self.late.len(),
            "tick_late_p50_us": percentile(&self.late, 50.0),
            "tick_late_p99_us": percentile(&self.late, 99.0),
            "tick_late_p999_us": percentile(&self.late, 99.9),
            "tick_late_max_us": self.late.last().copied().unwrap_or(0) as f64 / 1000.0,
            "publishes_per_s": self.publishes as f64 / self.seconds,
        })
    }
}

/// The `p`th percentile of sorted nanoseconds, in µs.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Runs a 1 ms ticker on `rt` while `load` runs, for `seconds`; `load` gets a stop
/// flag and returns how many publishes it made.
fn measure<F, Fut>(rt: &Runtime, seconds: f64, load: F) -> Measured
where
    F: FnOnce(Arc<AtomicBool>) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let stop = Arc::clone(&stop);
        rt.spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            let mut late = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let at = interval.tick().await;
                late.push(
                    Instant::now()
                        .saturating_duration_since(at.into_std())
                        .as_nanos() as u64,
                );
            }
            late
        })
    };
    let load = rt.spawn(load(Arc::clone(&stop)));
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut late = rt.block_on(ticker).expect("the ticker");
    let publishes = rt.block_on(load).expect("the publishers");
    // The first ticks (the runtime starting the tasks) are not counted; a starved
    // ticker may have seen few ticks at all, so at most a tenth of them.
    let skip = (late.len() / 10).min(50);
    let mut late = late.split_off(skip);
    late.sort_unstable();
    Measured {
        late,
        publishes,
        seconds,
    }
}

/// The previous design: lock, append, fsync inside the lock, on the worker.
fn before(rt: &Runtime, delay: Duration, seconds: f64) -> Measured {
    let dir = tempfile::Builder::new()
        .prefix("rustok-slow-disk-before-")
        .tempdir_in(disk_dir())
        .expect("a data directory");
    let config = LogConfig {
        partition_id: 0,
        segment_size_bytes: 1 << 30,
        durability: Durability::EveryBatch,
    };
    let log =
        PartitionLog::open_with(dir.path(), config, Arc::new(Disk::new(delay)), 0).expect("a log");
    let log = Arc::new(RwLock::new(log));
    measure(rt, seconds, move |stop| async move {
        let done = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..PUBLISHERS)
            .map(|_| {
                let (log, stop, done) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&done));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let mut builder = RecordBuilder::new();
                        builder.push(1, &[b'x'; PAYLOAD], &[]);
                        let mut record = builder.finish(1);
                        {
                            let mut log = log.write().expect("the lock");
                            log.append(&mut record, 1).expect("append");
                            log.sync().expect("fsync");
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a publisher");
        }
        done.load(Ordering::Relaxed)
    })
}

/// The embedded broker.
fn after(rt: &Runtime, delay: Duration, seconds: f64) -> Measured {
    let dir = tempfile::Builder::new()
        .prefix("rustok-slow-disk-after-")
        .tempdir_in(disk_dir())
        .expect("a data directory");
    let mut config = ConnectorConfig::embedded(dir.path());
    config.embedded.durability = DurabilityPolicy::EveryBatch;
    let (stream, topic) = benches::brokers::names("slow", "disk");
    let connector = Arc::new(EmbeddedConnector::new());
    rt.block_on(async {
        connector.connect(&config).await.expect("the broker opens");
        benches::brokers::topic(connector.as_ref(), &stream, &topic).await;
        connector.shutdown().await.expect("shutdown");
    });
    config.embedded.fault_fsync_delay = delay;
    rt.block_on(connector.connect(&config))
        .expect("the broker opens on a slow disk");
    let publishing = Arc::clone(&connector);
    let measured = measure(rt, seconds, move |stop| async move {
        let done = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..PUBLISHERS)
            .map(|_| {
                let (connector, stop, done) = (
                    Arc::clone(&publishing),
                    Arc::clone(&stop),
                    Arc::clone(&done),
                );
                let (stream, topic) = (stream.clone(), topic.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let request = PublishRequest::new(stream.clone(), topic.clone())
                            .partition(0)
                            .message(OutgoingMessage::new(vec![b'x'; PAYLOAD]));
                        connector.publish(request).await.expect("publish");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a publisher");
        }
        done.load(Ordering::Relaxed)
    });
    rt.block_on(connector.shutdown()).expect("shutdown");
    measured
}

fn idle(rt: &Runtime, seconds: f64) -> Measured {
    measure(rt, seconds, |_| async { 0 })
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |case: &str| {
        let id = format!("slow_disk/{case}");
        filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
    };
    let seconds: f64 = std::env::var("RUSTOK_SLOW_DISK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let delay = Duration::from_millis(
        std::env::var("RUSTOK_SLOW_DISK_DELAY_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    let rt = benches::runtime();
    let mut results = serde_json::Map::new();
    if wanted("idle") {
        results.insert("idle".into(), idle(&rt, seconds).json());
    }
    if wanted("before") {
        results.insert("before".into(), before(&rt, delay, seconds).json());
    }
    if wanted("after") {
        results.insert("after".into(), after(&rt, delay, seconds).json());
    }
    if results.is_empty() {
        return;
    }
    println!(
        "1 ms ticker lateness (µs) while {PUBLISHERS} tasks publish every_batch, fsync +{delay:?}"
    );
    println!(
        "{:<8} {:>7} {:>9} {:>9} {:>9} {:>10} {:>12}",
        "case", "ticks", "p50", "p99", "p99.9", "max", "publishes/s"
    );
    for (case, r) in &results {
        println!(
            "{case:<8} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>12.1}",
            r["ticks"].as_u64().unwrap_or_default(),
            r["tick_late_p50_us"].as_f64().unwrap_or_default(),
            r["tick_late_p99_us"].as_f64().unwrap_or_default(),
            r["tick_late_p999_us"].as_f64().unwrap_or_default(),
            r["tick_late_max_us"].as_f64().unwrap_or_default(),
            r["publishes_per_s"].as_f64().unwrap_or_default(),
        );
    }
    let mut all = serde_json::Map::new();
    all.insert("fsync_delay_ms".into(), (delay.as_millis() as u64).into());
    all.insert("cases".into(), results.into());
    benches::write_result("slow_disk.json", &all.into());
}
