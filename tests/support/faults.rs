//! Helpers of the storage fault tests (`embedded/faults.rs`,
//! `embedded/damage.rs`).
//!
//! Segments are 4096 bytes (the smallest allowed) and every message is one record of
//! 256 + 48 + 1000 = 1304 bytes, so a segment holds 4 records and segments start at
//! offsets 0, 4, 8, ... The payload of message `n` starts with `n`, so a read checks
//! that each offset holds the message published there.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustok_iggy_connector::{
    ConnectorConfig, ConnectorError, EmbeddedConnector, GroupName, IggyConnector, OutgoingMessage,
    PublishReceipt, PublishRequest, ReceivedMessage, StartPosition, StorageError,
};

use crate::{create_topic, embedded_config, names, open_embedded, within};

/// Bytes of every payload.
pub const PAYLOAD: usize = 1000;

pub fn config(data: &Path) -> ConnectorConfig {
    let mut config = embedded_config(data);
    config.embedded.segment_size_bytes = 4096;
    config
}

/// The payload of message number `n`: `n`, then filler.
pub fn payload(n: u64) -> Vec<u8> {
    let mut bytes = n.to_le_bytes().to_vec();
    bytes.resize(PAYLOAD, (n % 251) as u8);
    bytes
}

pub fn number(message: &ReceivedMessage) -> u64 {
    assert_eq!(
        message.payload.len(),
        PAYLOAD,
        "payload of offset {}",
        message.offset
    );
    let n = u64::from_le_bytes(message.payload[..8].try_into().unwrap());
    assert_eq!(
        &message.payload[..],
        &payload(n)[..],
        "payload of offset {}",
        message.offset
    );
    n
}

pub fn partition_dir(data: &Path, partition: u32) -> PathBuf {
    data.join(format!("streams/0/topics/0/partitions/{partition}"))
}

pub fn segment(data: &Path, partition: u32, base: u64, ext: &str) -> PathBuf {
    partition_dir(data, partition).join(format!("{base:020}.{ext}"))
}

pub async fn publish(
    connector: &EmbeddedConnector,
    partition: u32,
    n: u64,
) -> Result<PublishReceipt, ConnectorError> {
    let (stream, topic) = names("s", "t");
    within(
        "publish",
        connector.publish(
            PublishRequest::new(stream, topic)
                .partition(partition)
                .message(OutgoingMessage::new(payload(n))),
        ),
    )
    .await
}

/// Publishes message numbers `range` to `partition`; each must land at the offset
/// equal to its number.
pub async fn publish_range(
    connector: &EmbeddedConnector,
    partition: u32,
    range: std::ops::Range<u64>,
) {
    for n in range {
        let receipt = publish(connector, partition, n).await.expect("publish");
        assert_eq!(receipt.base_offset, n, "message {n} lands at offset {n}");
    }
}

pub async fn read(
    connector: &EmbeddedConnector,
    partition: u32,
    from: StartPosition,
) -> Vec<ReceivedMessage> {
    let (stream, topic) = names("s", "t");
    within(
        "poll",
        connector.poll(&stream, &topic, partition, from, 10_000),
    )
    .await
    .expect("poll")
}

/// The offsets of the whole partition, each checked to carry the message published
/// at that offset.
pub async fn offsets(connector: &EmbeddedConnector, partition: u32) -> Vec<u64> {
    read(connector, partition, StartPosition::Earliest)
        .await
        .iter()
        .map(|m| {
            assert_eq!(
                number(m),
                m.offset,
                "the message at offset {} is intact",
                m.offset
            );
            m.offset
        })
        .collect()
}

/// A broker with topic s/t (2 partitions): `p0` messages in partition 0, `p1` in 1.
pub async fn populated(data: &Path, p0: u64, p1: u64) -> Arc<EmbeddedConnector> {
    let connector = open_embedded(&config(data)).await;
    let (stream, topic) = names("s", "t");
    create_topic(connector.as_ref(), &stream, &topic, 2).await;
    publish_range(&connector, 0, 0..p0).await;
    publish_range(&connector, 1, 0..p1).await;
    connector
}

pub async fn connect(data: &Path) -> Result<Arc<EmbeddedConnector>, ConnectorError> {
    let connector = Arc::new(EmbeddedConnector::new());
    within("connect", connector.connect(&config(data))).await?;
    Ok(connector)
}

pub async fn shutdown(connector: &EmbeddedConnector) {
    within("shutdown", connector.shutdown())
        .await
        .expect("shutdown");
}

/// Every file under `dir` with its bytes (the lock file aside).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for path in walk(dir) {
        if path.is_file() && path.file_name().is_some_and(|n| n != ".lock") {
            files.insert(path.clone(), fs::read(&path).unwrap());
        }
    }
    files
}

/// `dir` and everything under it, parents first.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() && !out[i].is_symlink() {
            let mut children: Vec<PathBuf> = fs::read_dir(&out[i])
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            children.sort();
            out.extend(children);
        }
        i += 1;
    }
    out
}

pub fn storage_io(err: &ConnectorError) -> Option<(&'static str, &Path, &std::io::Error)> {
    match err {
        ConnectorError::Storage(StorageError::Io { op, path, source }) => Some((op, path, source)),
        _ => None,
    }
}

/// The consumer group the tests use.
pub fn group() -> GroupName {
    GroupName::new("g").expect("valid group name")
}
