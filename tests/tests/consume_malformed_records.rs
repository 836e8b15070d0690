//! A stored record whose user headers do not decode (written by another client, or
//! stored by an older broker) is a decode error for that one message: the messages
//! around it in its partition and the other partitions keep flowing, through a
//! subscription and through the handler runner, on both connectors.
//!
//! The damaged record is made on disk: a message's first header key kind is set to
//! the reserved kind 0 and both checksums are sealed again, so recovery keeps it as a
//! valid record.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use iggy_binary_protocol::batch::{
    BATCH_HEADER_SIZE, BATCH_MESSAGE_HEADER_SIZE, BatchHeader, calculate_batch_checksum,
};
use rustok_iggy::prelude::*;
use rustok_iggy::{ConsumeOptions, DeadLetterConfig, DeadLetters, Error, IggyConnector};
use rustok_iggy_connector::{
    ConnectorConfig, EmbeddedConnector, Headers, OutgoingMessage, PublishRequest, StreamName,
    TopicName,
};
use serde::{Deserialize, Serialize};
use tests::conformance::{open_remote, remote_config};
use tests::wire::{PASSWORD, USERNAME};
use tests::within;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", stream = "damaged", key = key, codec = "postcard", event_type = "job")]
struct Job {
    key: String,
    n: u64,
}

/// Publishes job `n` to `partition` (one record per message).
async fn publish(connector: &dyn IggyConnector, partition: u32, n: u64) -> u64 {
    let mut headers = Headers::new();
    headers.insert_str("event_type", "job").unwrap();
    headers.insert_str("schema_version", "1").unwrap();
    headers.insert_str("codec", "postcard").unwrap();
    let payload = postcard::to_allocvec(&Job { key: "k".into(), n }).unwrap();
    within(
        "publish",
        connector.publish(
            PublishRequest::new(
                StreamName::new("damaged").unwrap(),
                TopicName::new("jobs").unwrap(),
            )
            .partition(partition)
            .message(OutgoingMessage::new(payload).with_headers(headers)),
        ),
    )
    .await
    .unwrap()
    .base_offset
}

/// Seals a message frame (XXH3-64 of everything after the checksum field) and the
/// batch (over the frame checksums) again.
fn reseal(record: &mut [u8]) {
    let mut header = BatchHeader::decode(record).unwrap();
    let frame_start = BATCH_HEADER_SIZE;
    let checksum = twox_hash::XxHash3_64::oneshot(&record[frame_start + 8..]);
    record[frame_start..frame_start + 8].copy_from_slice(&checksum.to_le_bytes());
    header.batch_checksum = calculate_batch_checksum(&header, &record[BATCH_HEADER_SIZE..]);
    header.encode_into(&mut record[..BATCH_HEADER_SIZE]);
}

/// Damages the user headers of the one-message record at `offset` of `partition`.
fn damage_headers(data: &Path, partition: u32, offset: u64) {
    let dir = data.join(format!("streams/0/topics/0/partitions/{partition}"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let mut position = 0;
        while position + BATCH_HEADER_SIZE <= bytes.len() {
            let header = BatchHeader::decode(&bytes[position..]).unwrap();
            let end = position + header.total_size();
            if header.base_offset == offset {
                assert_eq!(header.message_count, 1);
                let record = &mut bytes[position..end];
                let frame = BATCH_HEADER_SIZE;
                let payload_len =
                    u32::from_le_bytes(record[frame + 36..frame + 40].try_into().unwrap()) as usize;
                let headers_at = frame + BATCH_MESSAGE_HEADER_SIZE + payload_len;
                assert_eq!(record[headers_at], 2, "the first header key is text");
                record[headers_at] = 0;
                reseal(record);
                std::fs::write(&path, &bytes).unwrap();
                return;
            }
            position = end;
        }
    }
    panic!("no record at offset {offset} of partition {partition}");
}

/// A data directory with jobs 0, 1, 2 in partition 0 (1 damaged) and 10, 11 in 1.
async fn damaged_data_dir(data: &Path) {
    let connector = EmbeddedConnector::new();
    connector
        .connect(&ConnectorConfig::embedded(data))
        .await
        .unwrap();
    let connector: Arc<dyn IggyConnector> = Arc::new(connector);
    Transport::<Job>::new(
        Arc::clone(&connector),
        TransportOptions {
            partitions: 2,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    for n in 0..3 {
        assert_eq!(publish(connector.as_ref(), 0, n).await, n);
    }
    for n in 10..12 {
        publish(connector.as_ref(), 1, n).await;
    }
    connector.shutdown().await.unwrap();
    damage_headers(data, 0, 1);
}

/// The broker over the damaged directory, and the connector the consumer uses
/// (the broker itself, or a remote connector through its listener).
async fn open(data: &Path, remote: bool) -> (Arc<EmbeddedConnector>, Arc<dyn IggyConnector>) {
    let mut config = ConnectorConfig::embedded(data);
    if remote {
        config.embedded.tcp_enabled = true;
        config.embedded.tcp_address = "127.0.0.1".into();
        config.embedded.tcp_port = 0;
    }
    let broker = Arc::new(EmbeddedConnector::new());
    within("open the broker", broker.connect(&config))
        .await
        .unwrap();
    let consumer: Arc<dyn IggyConnector> = if remote {
        let address = broker.tcp_address().unwrap().to_string();
        open_remote(&remote_config(&address, USERNAME, PASSWORD)).await
    } else {
        broker.clone()
    };
    (broker, consumer)
}

async fn jobs(connector: Arc<dyn IggyConnector>) -> Transport<Job> {
    Transport::new(
        connector,
        TransportOptions {
            partitions: 2,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap()
}

async fn a_subscription_reports_the_damaged_message_and_goes_on(remote: bool) {
    let dir = tempfile::tempdir().unwrap();
    damaged_data_dir(dir.path()).await;
    let (broker, connector) = open(dir.path(), remote).await;
    let jobs = jobs(Arc::clone(&connector)).await;
    let mut subscription = jobs.subscribe("g").await.unwrap();
    let mut delivered = BTreeSet::new();
    let mut errors = Vec::new();
    while delivered.len() < 4 || errors.is_empty() {
        match within(
            &format!("the next item (delivered {delivered:?}, errors {errors:?})"),
            subscription.next(),
        )
        .await
        .unwrap()
        {
            Ok(delivery) => {
                delivered.insert(delivery.n);
                delivery.ack().await.unwrap();
            }
            Err(Error::Decode(mut error)) => {
                errors.push((error.partition, error.offset, error.to_string()));
                // The application's decision: skip it.
                error.take_delivery().unwrap().ack().await.unwrap();
            }
            Err(other) => {
                panic!("remote {remote}: the stream failed instead of one message: {other}")
            }
        }
    }
    assert_eq!(delivered, BTreeSet::from([0, 2, 10, 11]), "remote {remote}");
    assert_eq!(errors.len(), 1, "remote {remote}: {errors:?}");
    assert_eq!((errors[0].0, errors[0].1), (0, 1), "remote {remote}");
    assert!(
        errors[0].2.contains("header"),
        "remote {remote}: {}",
        errors[0].2
    );
    subscription.close().await.unwrap();
    connector.shutdown().await.unwrap();
    broker.shutdown().await.unwrap();
}

async fn the_runner_dead_letters_the_damaged_message(remote: bool) {
    let dir = tempfile::tempdir().unwrap();
    damaged_data_dir(dir.path()).await;
    let (broker, connector) = open(dir.path(), remote).await;
    let jobs = jobs(Arc::clone(&connector)).await;
    let handled = Arc::new(Mutex::new(BTreeSet::new()));
    let all = Arc::new(Notify::new());
    let stop = Arc::clone(&all);
    let report = {
        let (handled, all) = (Arc::clone(&handled), Arc::clone(&all));
        within(
            "the runner handles every good event",
            jobs.consume(
                "g",
                ConsumeOptions::default(),
                async move { stop.notified().await },
                move |job| {
                    let (handled, all) = (Arc::clone(&handled), Arc::clone(&all));
                    async move {
                        let mut handled = handled.lock().unwrap_or_else(PoisonError::into_inner);
                        handled.insert(job.n);
                        if handled.len() == 4 {
                            all.notify_one();
                        }
                        Ok(())
                    }
                },
            ),
        )
        .await
        .expect("the runner ends cleanly")
    };
    assert_eq!(report.handled, 4, "remote {remote}");
    // Partition 0 is handled in order: once job 2 is handled, the damaged message
    // before it was dead-lettered.
    let letters = DeadLetters::for_transport(&jobs, &DeadLetterConfig::default())
        .await
        .unwrap()
        .list(10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "remote {remote}");
    assert_eq!(
        (letters[0].original_partition, letters[0].original_offset),
        (0, 1)
    );
    assert!(
        letters[0].error.contains("header"),
        "remote {remote}: {}",
        letters[0].error
    );
    connector.shutdown().await.unwrap();
    broker.shutdown().await.unwrap();
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscription_reports_the_damaged_message_and_goes_on() {
        super::a_subscription_reports_the_damaged_message_and_goes_on(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_runner_dead_letters_the_damaged_message() {
        super::the_runner_dead_letters_the_damaged_message(false).await;
    }
}

mod listener {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscription_reports_the_damaged_message_and_goes_on() {
        super::a_subscription_reports_the_damaged_message_and_goes_on(true).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_runner_dead_letters_the_damaged_message() {
        super::the_runner_dead_letters_the_damaged_message(true).await;
    }
}
