//! Damage the files of a stopped broker; reopening keeps every intact record, and
//! an offset that was fsynced is never handed out again.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustok_iggy_connector::{IggyConnector, OutgoingMessage, PollFrom, PublishRequest};
use tests::{create_topic, embedded_config, names, open_embedded};

fn log_file(data: &Path) -> PathBuf {
    let dir = data.join("streams/0/topics/0/partitions/0");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment file")
}

async fn publish_ten(data: &Path) {
    let connector = open_embedded(&embedded_config(data)).await;
    let (stream, topic) = names("s", "t");
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    for i in 0..10u8 {
        connector
            .publish(
                PublishRequest::new(stream.clone(), topic.clone())
                    .partition(0)
                    .message(OutgoingMessage::new(vec![i; 100])),
            )
            .await
            .unwrap();
    }
    connector.shutdown().await.unwrap();
}

async fn reopen_and_check(data: &Path, intact: &[u64], next: u64) {
    let connector = open_embedded(&embedded_config(data)).await;
    let (stream, topic) = names("s", "t");
    let read = connector
        .poll(&stream, &topic, 0, PollFrom::First, 100)
        .await
        .unwrap();
    let offsets: Vec<u64> = read.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, intact);
    for message in &read {
        assert_eq!(&message.payload[..], &vec![message.offset as u8; 100][..]);
    }
    let receipt = connector
        .publish(
            PublishRequest::new(stream.clone(), topic.clone())
                .partition(0)
                .message(OutgoingMessage::new(&b"after"[..])),
        )
        .await
        .unwrap();
    assert_eq!(receipt.base_offset, next, "where appends continue");
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_appended_to_the_log_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    publish_ten(dir.path()).await;
    OpenOptions::new()
        .append(true)
        .open(log_file(dir.path()))
        .unwrap()
        .write_all(&[0xAB; 333])
        .unwrap();
    // Garbage past the last fsync is a torn tail: cut.
    reopen_and_check(dir.path(), &(0..10).collect::<Vec<_>>(), 10).await;
}

#[tokio::test]
async fn a_record_cut_in_half_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    publish_ten(dir.path()).await;
    let log = log_file(dir.path());
    let len = std::fs::metadata(&log).unwrap().len();
    // Each record is 256 + 48 + 100 bytes; cut the last one in half.
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 200)
        .unwrap();
    // Offset 9 was fsynced at shutdown: it is not handed out again.
    reopen_and_check(dir.path(), &(0..9).collect::<Vec<_>>(), 10).await;
}

#[tokio::test]
async fn a_flipped_payload_byte_drops_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    publish_ten(dir.path()).await;
    let log = log_file(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    let record = 256 + 48 + 100;
    bytes[7 * record + 256 + 48 + 10] ^= 0xFF;
    std::fs::write(&log, bytes).unwrap();
    let intact: Vec<u64> = (0..10).filter(|&o| o != 7).collect();
    reopen_and_check(dir.path(), &intact, 10).await;
}
