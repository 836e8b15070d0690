//! Backups of a running embedded broker, restore, and verification of a data
//! directory (`EmbeddedConnector::backup`, `backup_data_dir`, `restore_data_dir`,
//! `verify_data_dir`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustok_iggy_connector::ops::{BackupMode, backup_data_dir, restore_data_dir, verify_data_dir};
use rustok_iggy_connector::{
    ConnectorConfig, ConnectorError, EmbeddedConnector, IggyConnector, OutgoingMessage,
    PublishRequest, ReceivedMessage, StartPosition,
};
use tests::conformance::{committed, group, read_all};
use tests::{create_topic, names, open_embedded, within};
use tokio::sync::watch;

const PARTITIONS: u32 = 3;

fn config(dir: &Path) -> ConnectorConfig {
    let mut config = ConnectorConfig::embedded(dir);
    // Small segments: a backup spans closed segments and the active one.
    config.embedded.segment_size_bytes = 4096;
    config
}

/// id → (partition, offset) of every acknowledged publish.
type Acked = Arc<Mutex<BTreeMap<u128, (u32, u64)>>>;

fn acked(log: &Acked) -> BTreeMap<u128, (u32, u64)> {
    log.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Publishes until `stop`, one message at a time over the partitions, recording
/// every receipt; `count` follows how many were acknowledged.
fn spawn_publisher(
    connector: Arc<EmbeddedConnector>,
    log: Acked,
    stop: Arc<AtomicBool>,
    count: watch::Sender<usize>,
    first_id: u128,
) -> tokio::task::JoinHandle<()> {
    let (stream, topic) = names("shop", "orders");
    tokio::spawn(async move {
        let mut id = first_id;
        while !stop.load(Ordering::Relaxed) {
            let partition = (id % u128::from(PARTITIONS)) as u32;
            let receipt = connector
                .publish(
                    PublishRequest::new(stream.clone(), topic.clone())
                        .partition(partition)
                        .message(OutgoingMessage::new(vec![b'p'; 200]).with_id(id)),
                )
                .await
                .expect("publish");
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, (receipt.partition, receipt.base_offset));
            count.send_modify(|n| *n += 1);
            id += 1;
            tokio::task::yield_now().await;
        }
    })
}

async fn contents(connector: &dyn IggyConnector) -> Vec<Vec<ReceivedMessage>> {
    let (stream, topic) = names("shop", "orders");
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        out.push(read_all(connector, &stream, &topic, p, 0).await);
    }
    out
}

/// Positions of every message: (partition, offset) → id.
fn positions(contents: &[Vec<ReceivedMessage>]) -> BTreeMap<(u32, u64), u128> {
    contents
        .iter()
        .flatten()
        .map(|m| ((m.partition, m.offset), m.id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_publishing_holds_everything_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&config(dir.path())).await;
    let (stream, topic) = names("shop", "orders");
    create_topic(&*connector, &stream, &topic, PARTITIONS).await;
    let member = connector
        .join_group(&stream, &topic, &group("billing"), StartPosition::Earliest)
        .await
        .unwrap();

    let log = Acked::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (count, mut counted) = watch::channel(0usize);
    let publishers: Vec<_> = (0..2)
        .map(|n| {
            spawn_publisher(
                connector.clone(),
                log.clone(),
                stop.clone(),
                count.clone(),
                1 + n * 1_000_000,
            )
        })
        .collect();
    within(
        "300 acknowledged publishes",
        counted.wait_for(|n| *n >= 300),
    )
    .await
    .unwrap();
    member.commit(1, 20).await.unwrap();
    let before = acked(&log);
    let backups = tempfile::tempdir().unwrap();
    let dest = backups.path().join("backup-1");
    let summary = within("backup", connector.backup(&dest)).await.unwrap();
    // Publishing went on during the backup.
    let during = *counted.borrow();
    within(
        "more publishes after the backup",
        counted.wait_for(|n| *n >= during + 100),
    )
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for publisher in publishers {
        publisher.await.unwrap();
    }

    assert_eq!(summary.mode, BackupMode::Snapshot);
    assert_eq!(summary.partitions, PARTITIONS);
    assert!(summary.segments > PARTITIONS, "{summary:?}");
    let cut = &summary.next_offsets["shop/orders"];
    for (id, (partition, offset)) in &before {
        assert!(
            *offset < cut[*partition as usize],
            "message {id} at {partition}/{offset} was acknowledged before the backup"
        );
    }
    // The backup verifies clean and reads like a data directory.
    let verified = verify_data_dir(&dest).unwrap();
    assert!(verified.is_clean(), "{:?}", verified.damage);
    assert_eq!(verified.messages, summary.messages);
    assert!(dest.join("backup.json").is_file());

    let original = contents(&*connector).await;
    member.leave().await.unwrap();
    connector.shutdown().await.unwrap();
    let restored = open_embedded(&ConnectorConfig::embedded(&dest)).await;
    let copy = contents(&*restored).await;
    let copied = positions(&copy);
    for (id, (partition, offset)) in &before {
        assert_eq!(copied.get(&(*partition, *offset)), Some(id));
    }
    // Each partition of the backup is exactly the original up to the cut.
    for p in 0..PARTITIONS as usize {
        let prefix: Vec<_> = original[p]
            .iter()
            .filter(|m| m.offset < cut[p])
            .map(|m| (m.offset, m.id))
            .collect();
        let backed: Vec<_> = copy[p].iter().map(|m| (m.offset, m.id)).collect();
        assert_eq!(prefix, backed, "partition {p}");
    }
    assert_eq!(
        committed(&*restored, &stream, &topic, &group("billing")).await,
        vec![None, Some(20), None]
    );
    // It accepts new messages after the old ones.
    let receipt = restored
        .publish(
            PublishRequest::new(stream.clone(), topic.clone())
                .partition(0)
                .message(OutgoingMessage::new(&b"after restore"[..])),
        )
        .await
        .unwrap();
    assert_eq!(receipt.base_offset, cut[0]);
    restored.shutdown().await.unwrap();
}

/// A stopped data directory with 3 partitions of 60 messages each (several segments).
async fn stopped_data_dir(dir: &Path) -> Vec<Vec<ReceivedMessage>> {
    let connector = open_embedded(&config(dir)).await;
    let (stream, topic) = names("shop", "orders");
    create_topic(&*connector, &stream, &topic, PARTITIONS).await;
    for n in 0..180u128 {
        connector
            .publish(
                PublishRequest::new(stream.clone(), topic.clone())
                    .partition((n % 3) as u32)
                    .message(OutgoingMessage::new(vec![b'q'; 150]).with_id(n + 1)),
            )
            .await
            .unwrap();
    }
    let member = connector
        .join_group(&stream, &topic, &group("billing"), StartPosition::Earliest)
        .await
        .unwrap();
    member.commit(2, 7).await.unwrap();
    member.leave().await.unwrap();
    let out = contents(&*connector).await;
    connector.shutdown().await.unwrap();
    out
}

#[tokio::test]
async fn restore_puts_a_backup_in_place_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let original = stopped_data_dir(dir.path()).await;
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup");
    let summary = backup_data_dir(dir.path(), &backup).unwrap();
    assert_eq!(summary.mode, BackupMode::Offline);
    assert_eq!(summary.messages, 180);
    assert_eq!(summary.next_offsets["shop/orders"], vec![60, 60, 60]);

    let target = work.path().join("restored");
    let verified = restore_data_dir(&backup, &target).unwrap();
    assert!(verified.is_clean());
    // As private as the data directory: the directory and its metadata files.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for dir in [&backup, &target] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
        assert_eq!(mode(&dir.join("metadata.json")), 0o600);
    }
    let restored = open_embedded(&config(&target)).await;
    assert_eq!(positions(&contents(&*restored).await), positions(&original));
    let (stream, topic) = names("shop", "orders");
    assert_eq!(
        committed(&*restored, &stream, &topic, &group("billing")).await,
        vec![None, None, Some(7)]
    );
    restored.shutdown().await.unwrap();

    // Never over an existing directory, never over an existing backup.
    let err = restore_data_dir(&backup, &target).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    let err = backup_data_dir(dir.path(), &backup).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    // Not a data directory.
    let err = backup_data_dir(work.path(), work.path().join("b2")).unwrap_err();
    assert!(
        err.to_string().contains("not an embedded data directory"),
        "{err}"
    );
}

/// The first (closed) segment file of partition `p`.
fn first_segment(root: &Path, p: u32) -> std::path::PathBuf {
    let dir = root.join(format!("streams/0/topics/0/partitions/{p}"));
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() > 1, "partition {p} needs several segments");
    logs.remove(0)
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn verify_finds_a_flipped_byte_and_restore_refuses_a_damaged_backup() {
    let dir = tempfile::tempdir().unwrap();
    stopped_data_dir(dir.path()).await;
    let clean = verify_data_dir(dir.path()).unwrap();
    assert!(clean.is_clean(), "{:?}", clean.damage);
    assert_eq!((clean.partitions, clean.messages), (PARTITIONS, 180));

    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup");
    backup_data_dir(dir.path(), &backup).unwrap();

    // A byte of a payload in the middle of a sealed segment: recovery trusts sealed
    // segments, so a full walk finds it (or the first read of that record).
    let segment = first_segment(dir.path(), 1);
    flip_byte(&segment, 256 + 48 + 600);
    let damaged = verify_data_dir(dir.path()).unwrap();
    assert_eq!(damaged.damage.len(), 1, "{:?}", damaged.damage);
    assert!(
        damaged.damage[0].contains("shop/orders partition 1")
            && damaged.damage[0].contains(&segment.display().to_string()),
        "{:?}",
        damaged.damage
    );
    // The running broker's own verify sees it too, and its reads skip exactly the
    // damaged record (offset 1; records are 454 bytes): nothing to repair by
    // hand. The damage stays reported until retention deletes the segment.
    let running = open_embedded(&config(dir.path())).await;
    assert!(!running.verify().unwrap().is_clean());
    // A directory in use is not verified from outside.
    assert!(matches!(
        verify_data_dir(dir.path()),
        Err(ConnectorError::DataDirInUse { .. })
    ));
    let (stream, topic) = names("shop", "orders");
    let offsets: Vec<u64> = read_all(&*running, &stream, &topic, 1, 0)
        .await
        .iter()
        .map(|m| m.offset)
        .collect();
    let lost: Vec<u64> = (0..60).filter(|o| !offsets.contains(o)).collect();
    assert_eq!(lost, vec![1], "only the damaged record");
    running.shutdown().await.unwrap();
    let reopened = open_embedded(&config(dir.path())).await;
    let offsets: Vec<u64> = read_all(&*reopened, &stream, &topic, 1, 0)
        .await
        .iter()
        .map(|m| m.offset)
        .collect();
    assert_eq!(offsets, (0..60).filter(|&o| o != 1).collect::<Vec<_>>());
    reopened.shutdown().await.unwrap();
    assert_eq!(verify_data_dir(dir.path()).unwrap().damage.len(), 1);

    // A damaged backup is not restored.
    flip_byte(&first_segment(&backup, 0), 256 + 10);
    let err = restore_data_dir(&backup, work.path().join("restored")).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(!work.path().join("restored").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_level_backup_of_a_directory_in_use_is_a_clean_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&config(dir.path())).await;
    let (stream, topic) = names("shop", "orders");
    create_topic(&*connector, &stream, &topic, PARTITIONS).await;
    let member = connector
        .join_group(&stream, &topic, &group("billing"), StartPosition::Earliest)
        .await
        .unwrap();
    let log = Acked::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (count, mut counted) = watch::channel(0usize);
    let publisher = spawn_publisher(connector.clone(), log.clone(), stop.clone(), count, 1);
    within("200 publishes", counted.wait_for(|n| *n >= 200))
        .await
        .unwrap();
    member.commit(0, 30).await.unwrap();
    let before = acked(&log);
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("live");
    // The broker holds the directory: the copy is read from the files (as the
    // command line does for a broker in another process) while publishing goes on.
    let data_dir = dir.path().to_owned();
    let target = backup.clone();
    let summary = tokio::task::spawn_blocking(move || backup_data_dir(&data_dir, &target))
        .await
        .unwrap()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    assert_eq!(summary.mode, BackupMode::Live);
    let verified = verify_data_dir(&backup).unwrap();
    assert!(verified.is_clean(), "{:?}", verified.damage);

    let original = positions(&contents(&*connector).await);
    member.leave().await.unwrap();
    connector.shutdown().await.unwrap();
    let copy = open_embedded(&ConnectorConfig::embedded(&backup)).await;
    let copied = positions(&contents(&*copy).await);
    // Everything acknowledged before the copy began is in it, and everything in it
    // is where the original has it.
    for (id, (partition, offset)) in &before {
        assert_eq!(copied.get(&(*partition, *offset)), Some(id));
    }
    for (position, id) in &copied {
        assert_eq!(original.get(position), Some(id));
    }
    let offsets = committed(&*copy, &stream, &topic, &group("billing")).await;
    assert_eq!(offsets[0], Some(30));
    copy.shutdown().await.unwrap();
}
