//! A stored record whose user headers do not decode (written by another client, or
//! stored by an older broker) is a decode error for that one message: the messages
//! around it in its partition and the other partitions keep flowing, through a
//! subscription and through the handler runner, on both connectors.
//!
//! The damaged record is written through the storage engine (`rustok-iggy-storage`)
//! while the broker is closed: a valid record whose message carries user-header bytes
//! that do not decode.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy::{
    Error, connector::IggyConnector, consume::ConsumeOptions, dead_letter::DeadLetterConfig,
};
use rustok_iggy_connector::{
    ConnectorConfig, EmbeddedConnector, Headers, OutgoingMessage, PublishRequest, StreamName,
    TopicName, error_chain,
};
use rustok_iggy_storage::record::RecordBuilder;
use rustok_iggy_storage::{Durability, LogConfig, PartitionLog};
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

/// A data directory with jobs 0, 1, 2 in partition 0 and 10, 11 in partition 1, job 1
/// stored with user headers that do not decode: written through the storage engine
/// while the broker is closed, as an older broker (or another client through a
/// server that let it pass) would have left it.
async fn damaged_data_dir(data: &Path) {
    let config = ConnectorConfig::embedded(data);
    let connector: Arc<dyn IggyConnector> = {
        let connector = EmbeddedConnector::new();
        connector.connect(&config).await.unwrap();
        Arc::new(connector)
    };
    Transport::<Job>::new(
        Arc::clone(&connector),
        TransportOptions {
            partitions: 2,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(publish(connector.as_ref(), 0, 0).await, 0);
    connector.shutdown().await.unwrap();

    {
        let mut log = PartitionLog::open(
            &data.join("streams/0/topics/0/partitions/0"),
            LogConfig {
                partition_id: 0,
                segment_size_bytes: config.embedded.segment_size_bytes,
                durability: Durability::EveryBatch,
            },
        )
        .unwrap();
        let payload = postcard::to_allocvec(&Job {
            key: "k".into(),
            n: 1,
        })
        .unwrap();
        let mut builder = RecordBuilder::new();
        // A header whose key kind is 0 (reserved), cut short.
        builder.push(
            uuid::Uuid::new_v4().as_u128(),
            &payload,
            &[0, 9, 0, 0, 0, b'k'],
        );
        let mut record = builder.finish(rustok_iggy_connector::now_micros());
        assert_eq!(
            log.append(&mut record, rustok_iggy_connector::now_micros())
                .unwrap()
                .base_offset,
            1
        );
    }

    let connector: Arc<dyn IggyConnector> = {
        let connector = EmbeddedConnector::new();
        connector.connect(&config).await.unwrap();
        Arc::new(connector)
    };
    assert_eq!(publish(connector.as_ref(), 0, 2).await, 2);
    for n in 10..12 {
        publish(connector.as_ref(), 1, n).await;
    }
    connector.shutdown().await.unwrap();
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
                // The reason is the error's source (Display does not repeat it).
                errors.push((
                    error.partition,
                    error.offset,
                    error_chain(&error).to_string(),
                ));
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
    let letters = jobs
        .dead_letters(&DeadLetterConfig::default())
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
