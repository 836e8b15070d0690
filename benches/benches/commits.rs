//! How many consumer-offset commits per second, on a real disk?
//!
//! `C` tasks (1, or 8 on 8 partitions of one topic) each commit their partition's
//! offset in a loop, waiting for each commit; criterion reports commits per second.
//! Cases, in one run:
//! - `before/<C>`: the previous design, reproduced: a commit rewrites the
//!   partition's `offsets.json` (temporary file, fsync, rename, fsync of the
//!   directory) under the partition's lock, on the runtime's worker thread (what
//!   `Partition::store_offset` did under `every_batch` and `interval`);
//! - `interval/<C>` (the default policy) and `every_batch/<C>`: a group member of
//!   the embedded broker (`GroupConsumer::commit`): one append to the partition's
//!   offsets journal, fsynced by the sync threads (at the next tick under
//!   `interval`; before the commit returns, shared by concurrent commits, under
//!   `every_batch`).
//!
//! The data directories are on the real disk (the system temporary directory, or
//! `RUSTOK_BENCH_DISK_DIR`), not on tmpfs: an fsync must cost what it costs.
//!
//! Run with: cargo bench -p benches --bench commits

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy_connector::{
    ConnectorConfig, DurabilityPolicy, EmbeddedConnector, GroupConsumer, GroupName, IggyConnector,
    OutgoingMessage, PublishRequest, StartPosition, TopicSpec,
};
use tokio::runtime::Runtime;

const PARTITIONS: u32 = 8;
/// Messages per partition: every committed offset stays below the end of the log.
const MESSAGES: u64 = 1000;
const COMMITTERS: [u32; 2] = [1, 8];

fn disk_dir() -> PathBuf {
    std::env::var_os("RUSTOK_BENCH_DISK_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// The previous commit path: the offsets of one partition, rewritten whole and
/// fsynced twice per commit, under a lock.
struct RewrittenOffsets {
    dir: PathBuf,
    groups: Mutex<BTreeMap<u32, u64>>,
}

impl RewrittenOffsets {
    fn commit(&self, group: u32, offset: u64) {
        let mut groups = self.groups.lock().expect("the lock");
        groups.insert(group, offset);
        let bytes = serde_json::to_vec_pretty(&serde_json::json!({
            "consumers": {},
            "groups": &*groups,
        }))
        .expect("JSON");
        let path = self.dir.join("offsets.json");
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).expect("create");
        file.write_all(&bytes).expect("write");
        file.sync_all().expect("fsync");
        drop(file);
        fs::rename(&tmp, &path).expect("rename");
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .expect("fsync the directory");
    }
}

fn rewritten(root: &Path) -> Arc<Vec<RewrittenOffsets>> {
    Arc::new(
        (0..PARTITIONS)
            .map(|p| {
                let dir = root.join(p.to_string());
                fs::create_dir_all(&dir).expect("a partition directory");
                RewrittenOffsets {
                    dir,
                    groups: Mutex::new(BTreeMap::new()),
                }
            })
            .collect(),
    )
}

/// `iters` commits split over `committers` tasks, each on its own partition.
async fn run<F, Fut>(iters: u64, committers: u32, commit: F) -> Duration
where
    F: Fn(u32, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let per = iters.div_ceil(u64::from(committers));
    let tasks: Vec<_> = (0..committers)
        .map(|p| {
            let commit = commit.clone();
            tokio::spawn(async move {
                for n in 0..per {
                    commit(p, n % MESSAGES).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a committer");
    }
    started.elapsed()
}

struct Embedded {
    connector: Arc<EmbeddedConnector>,
    member: Arc<dyn GroupConsumer>,
    _dir: tempfile::TempDir,
}

fn embedded(rt: &Runtime, durability: DurabilityPolicy) -> Embedded {
    let dir = tempfile::Builder::new()
        .prefix("rustok-commits-")
        .tempdir_in(disk_dir())
        .expect("a data directory");
    let mut config = ConnectorConfig::embedded(dir.path());
    config.embedded.durability = durability;
    let connector = Arc::new(EmbeddedConnector::new());
    let (stream, topic) = benches::brokers::names("bench", "commits");
    let member = rt.block_on(async {
        connector.connect(&config).await.expect("the broker opens");
        connector
            .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), PARTITIONS))
            .await
            .expect("topic");
        for p in 0..PARTITIONS {
            let mut request = PublishRequest::new(stream.clone(), topic.clone()).partition(p);
            for _ in 0..MESSAGES {
                request = request.message(OutgoingMessage::new(&b"m"[..]));
            }
            connector.publish(request).await.expect("publish");
        }
        let group = GroupName::new("bench").expect("a name");
        connector
            .join_group(&stream, &topic, &group, StartPosition::Earliest)
            .await
            .expect("join")
    });
    Embedded {
        connector,
        member: Arc::from(member),
        _dir: dir,
    }
}

fn commits(c: &mut Criterion) {
    let rt = benches::runtime();
    let mut group = c.benchmark_group("commits");
    group.throughput(Throughput::Elements(1));
    let root = tempfile::Builder::new()
        .prefix("rustok-commits-before-")
        .tempdir_in(disk_dir())
        .expect("a directory");
    let old = rewritten(root.path());
    for committers in COMMITTERS {
        let old = Arc::clone(&old);
        group.bench_function(BenchmarkId::new("before", committers), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let old = Arc::clone(&old);
                run(iters, committers, move |p, offset| {
                    let old = Arc::clone(&old);
                    async move { old[p as usize].commit(0, offset) }
                })
            });
        });
    }
    for (durability, name) in [
        (DurabilityPolicy::Interval, "interval"),
        (DurabilityPolicy::EveryBatch, "every_batch"),
    ] {
        let broker = embedded(&rt, durability);
        for committers in COMMITTERS {
            let member = Arc::clone(&broker.member);
            group.bench_function(BenchmarkId::new(name, committers), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let member = Arc::clone(&member);
                    run(iters, committers, move |p, offset| {
                        let member = Arc::clone(&member);
                        async move { member.commit(p, offset).await.expect("commit") }
                    })
                });
            });
        }
        rt.block_on(broker.connector.shutdown()).expect("shutdown");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = benches::criterion();
    targets = commits
}
criterion_main!(benches);
