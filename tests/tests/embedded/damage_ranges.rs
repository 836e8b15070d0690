//! Damage inside the files of a stopped embedded broker costs exactly the damaged
//! records: a flipped byte in the middle of the active segment or of a closed
//! segment loses that one record, everything after it is kept and served, the
//! damaged bytes are copied aside, nothing is cut from a closed segment, the damage
//! is reported (`verify`, `/health`), and its offsets are not handed out again.
//! Damage to an index file alone loses nothing.
//!
//! Records are 1304 bytes (one 1000-byte message each, see `tests::faults`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustok_iggy_connector::{EmbeddedConnector, IggyConnector, PollFrom};
use tests::faults::{self, offsets, partition_dir, populated, publish_range, read, segment};
use tests::{create_topic, names, within};

const RECORD: u64 = 1304;

/// Segments of 64 MiB: everything below stays in the active segment.
fn one_segment(data: &Path) -> rustok_iggy_connector::ConnectorConfig {
    let mut config = faults::config(data);
    config.embedded.segment_size_bytes = 64 * 1024 * 1024;
    config.embedded.http_enabled = true;
    config.embedded.http_port = 0;
    config
}

async fn open(config: &rustok_iggy_connector::ConnectorConfig) -> Arc<EmbeddedConnector> {
    let connector = Arc::new(EmbeddedConnector::new());
    within("connect", connector.connect(config))
        .await
        .expect("the broker opens");
    connector
}

fn flip(path: &Path, position: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= 0x5A;
    fs::write(path, bytes).unwrap();
}

/// The files under the partition's quarantine directory.
fn quarantined(data: &Path, partition: u32) -> Vec<PathBuf> {
    let dir = partition_dir(data, partition).join("quarantine");
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

async fn health(connector: &EmbeddedConnector) -> serde_json::Value {
    let url = format!("http://{}/health", connector.http_address().unwrap());
    let reply = within("GET /health", reqwest::get(url)).await.unwrap();
    within("health body", reply.json()).await.unwrap()
}

#[tokio::test]
async fn damage_in_the_middle_of_the_active_segment_loses_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = one_segment(&data);
    let connector = open(&config).await;
    let (stream, topic) = names("s", "t");
    create_topic(connector.as_ref(), &stream, &topic, 2).await;
    publish_range(&connector, 0, 0..1000).await;
    within("shutdown", connector.shutdown()).await.unwrap();
    let log = segment(&data, 0, 0, "log");
    let length = fs::metadata(&log).unwrap().len();
    assert_eq!(length, 1000 * RECORD, "one segment holds every record");
    let damaged = fs::read(&log).unwrap()[(10 * RECORD) as usize..(11 * RECORD) as usize].to_vec();
    // A payload byte of record 10.
    flip(&log, 10 * RECORD + 400);

    for restart in 0..2 {
        let connector = open(&config).await;
        let expected: Vec<u64> = (0..1000).filter(|&o| o != 10).collect();
        let mut expected = expected;
        if restart == 1 {
            expected.push(1000);
        }
        assert_eq!(offsets(&connector, 0).await, expected, "restart {restart}");
        // A read starting at the lost offset starts after it.
        let from_lost = read(&connector, 0, PollFrom::Offset(10)).await;
        assert_eq!(from_lost.first().map(|m| m.offset), Some(11));
        assert_eq!(
            fs::metadata(&log).unwrap().len(),
            length + restart * RECORD,
            "nothing is cut from the segment"
        );
        let copies = quarantined(&data, 0);
        assert_eq!(copies.len(), 1, "the damaged range is copied aside once");
        let copied = fs::read(&copies[0]).unwrap();
        let mut expected_copy = damaged.clone();
        expected_copy[400] ^= 0x5A;
        assert_eq!(copied, expected_copy, "the copy holds the damaged record");

        let summary = connector.verify().unwrap();
        assert_eq!(summary.damage.len(), 1, "{:?}", summary.damage);
        assert!(
            summary.damage[0].contains(&format!("byte {}", 10 * RECORD)),
            "{:?}",
            summary.damage
        );
        assert_eq!(summary.messages, 999 + restart);
        let health = health(&connector).await;
        assert_eq!(health["status"], "degraded", "{health}");
        assert_eq!(health["storage"]["damaged_ranges"], 1, "{health}");
        assert_eq!(health["storage"]["lost_messages"], 1, "{health}");

        if restart == 0 {
            // The lost offset is not handed out again.
            publish_range(&connector, 0, 1000..1001).await;
        }
        within("shutdown", connector.shutdown()).await.unwrap();
    }
}

#[tokio::test]
async fn damage_in_a_closed_segment_loses_only_that_record_and_the_file_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Segments of 4 records: 0, 4, 8, 12, 16 (the active one).
    let connector = populated(&data, 18, 0).await;
    within("shutdown", connector.shutdown()).await.unwrap();
    let closed = segment(&data, 0, 4, "log");
    let length = fs::metadata(&closed).unwrap().len();
    // A payload byte of offset 5 (the second record of segment 4), and the batch
    // length field of offset 10 (third record of segment 8).
    flip(&closed, RECORD + 700);
    flip(&segment(&data, 0, 8, "log"), 2 * RECORD + 33);

    let connector = faults::connect(&data).await.unwrap();
    let expected: Vec<u64> = (0..18).filter(|&o| o != 5 && o != 10).collect();
    assert_eq!(offsets(&connector, 0).await, expected);
    assert_eq!(fs::metadata(&closed).unwrap().len(), length, "not cut");
    assert_eq!(
        fs::metadata(segment(&data, 0, 8, "log")).unwrap().len(),
        4 * RECORD,
        "not cut"
    );
    assert_eq!(quarantined(&data, 0).len(), 2);
    let summary = connector.verify().unwrap();
    assert_eq!(summary.damage.len(), 2, "{:?}", summary.damage);
    publish_range(&connector, 0, 18..19).await;
    within("shutdown", connector.shutdown()).await.unwrap();

    let connector = faults::connect(&data).await.unwrap();
    let mut expected = expected;
    expected.push(18);
    assert_eq!(offsets(&connector, 0).await, expected);
    within("shutdown", connector.shutdown()).await.unwrap();
}

#[tokio::test]
async fn damage_in_an_index_file_alone_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let connector = populated(&data, 18, 0).await;
    let all = read(&connector, 0, PollFrom::First).await;
    within("shutdown", connector.shutdown()).await.unwrap();
    // A position of segment 4's offset index that still looks well-formed (it
    // stays between its neighbours), a timestamp of segment 8's time index, and a
    // byte of the active segment's index.
    let index = segment(&data, 0, 4, "index");
    let mut bytes = fs::read(&index).unwrap();
    bytes[2 * 8 + 4..2 * 8 + 8].copy_from_slice(&(2 * RECORD as u32 - 8).to_le_bytes());
    fs::write(&index, bytes).unwrap();
    flip(&segment(&data, 0, 8, "timeindex"), 12 + 3);
    flip(&segment(&data, 0, 16, "index"), 1);

    let connector = faults::connect(&data).await.unwrap();
    assert_eq!(offsets(&connector, 0).await, (0..18).collect::<Vec<_>>());
    for from in [6, 9, 17] {
        let got = read(&connector, 0, PollFrom::Offset(from)).await;
        assert_eq!(got.first().map(|m| m.offset), Some(from), "from {from}");
    }
    for target in [5, 9, 13] {
        let at = all[target].timestamp;
        let expected = all.iter().find(|m| m.timestamp >= at).unwrap().offset;
        let got = read(&connector, 0, PollFrom::Timestamp(at)).await;
        assert_eq!(got.first().map(|m| m.offset), Some(expected));
    }
    assert!(connector.verify().unwrap().is_clean());
    assert!(quarantined(&data, 0).is_empty(), "no record was damaged");
    publish_range(&connector, 0, 18..19).await;
    within("shutdown", connector.shutdown()).await.unwrap();
}
