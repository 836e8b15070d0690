//! Errors say things once: walking each error's `source()` chain, no `Display`
//! repeats the text of its source, for representative errors of the storage engine,
//! both connectors, the typed layer and configuration loading. The whole story is
//! printed by `error_chain`. The typed layer's errors also have their kind (the
//! connectors' kinds are in `error_kinds.rs`).

use std::error::Error as StdError;

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy::{
    Error,
    connector::{ConnectorError, ErrorKind, IggyConnector, StreamName, TopicName},
    consume::SettleError,
    dead_letter::DeadLetterError,
};
use rustok_iggy_connector::{
    Headers, OutgoingMessage, PublishRequest, RemoteConnector, error_chain,
};
use rustok_iggy_storage::{Durability, LogConfig, PartitionLog};
use serde::{Deserialize, Serialize};
use tests::conformance::remote_config;
use tests::wire::{USERNAME, WireBroker};
use tests::{embedded_config, open_embedded, within};

/// Each link of `error`'s chain, outermost first.
fn chain(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut links = vec![error.to_string()];
    let mut next = error.source();
    while let Some(source) = next {
        links.push(source.to_string());
        next = source.source();
    }
    links
}

/// Asserts that no link repeats the one below it and that the chain has `min` links
/// at least (the error really has the sources this test is about).
fn says_things_once(what: &str, error: &(dyn StdError + 'static), min: usize) {
    let links = chain(error);
    assert!(
        links.len() >= min,
        "{what}: expected a chain of {min}: {links:?}"
    );
    for pair in links.windows(2) {
        assert!(
            !pair[1].is_empty() && !pair[0].contains(&pair[1]),
            "{what}: {:?} repeats its source {:?} (chain {links:?})",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(error_chain(error).to_string(), links.join(": "));
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "chains", stream = "chains", event_type = "link")]
struct Link {
    n: u64,
}

#[test]
fn storage_errors_say_things_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let error = PartitionLog::open(
        &file.join("partition"),
        LogConfig {
            partition_id: 0,
            segment_size_bytes: 1 << 20,
            durability: Durability::EveryBatch,
        },
    )
    .map(|_| ())
    .unwrap_err();
    says_things_once("storage: open under a file", &error, 2);
}

#[tokio::test]
async fn connector_errors_say_things_once() {
    // Embedded: a data directory that is a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let embedded = rustok_iggy::connector::EmbeddedConnector::new();
    let error = embedded.connect(&embedded_config(&file)).await.unwrap_err();
    says_things_once("embedded: data dir is a file", &error, 2);

    // Remote: a refused sign-in (the SDK's error is the source).
    let broker = WireBroker::start().await;
    let mut wrong = remote_config(&broker.address.to_string(), USERNAME, "not-the-password");
    wrong.remote.reconnection_retries = 1;
    let error = within("a refused sign-in", RemoteConnector::new().connect(&wrong))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Auth { .. }), "{error:?}");
    says_things_once("remote: wrong password", &error, 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn typed_errors_say_things_once() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let transport = Transport::<Link>::new(
        connector.clone(),
        TransportOptions {
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();

    // Metadata that does not fit a user header.
    let error = transport
        .publish_with(
            &Link { n: 1 },
            &EventMetadata::new().correlation_id("x".repeat(300)),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidMetadata(_)), "{error:?}");
    assert_eq!(
        error.kind(),
        ErrorKind::Invalid,
        "sent again unchanged, it fails again"
    );
    says_things_once("typed: oversized metadata", &error, 2);

    // A payload that does not decode: message, codec, serde.
    let mut headers = Headers::new();
    headers.insert_str("event_type", "link").unwrap();
    headers.insert_str("codec", "json").unwrap();
    connector
        .publish(
            PublishRequest::new(
                StreamName::new("chains").unwrap(),
                TopicName::new("chains").unwrap(),
            )
            .partition(0)
            .message(OutgoingMessage::new(b"{not json".to_vec()).with_headers(headers)),
        )
        .await
        .unwrap();
    let mut subscription = transport.subscribe("readers").await.unwrap();
    let error = within("a decode error", subscription.next())
        .await
        .expect("subscription open")
        .unwrap_err();
    assert!(matches!(error, Error::Decode(_)), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::Malformed);
    says_things_once("typed: undecodable payload", &error, 3);

    // A settlement that fails: a term once the connector shut down (the dead-letter
    // topic cannot be opened). The delivery's own error type, then the same through
    // `Error`.
    transport.publish(&Link { n: 2 }).await.unwrap();
    drop(error);
    let delivery = loop {
        match within("the event", subscription.next()).await {
            Some(Ok(delivery)) if delivery.n == 2 => break delivery,
            Some(Err(Error::Decode(undecodable))) => undecodable.skip().await.unwrap(),
            other => panic!("expected the event, got {other:?}"),
        }
    };
    connector.shutdown().await.unwrap();
    let error = delivery.term("poison").await.unwrap_err();
    assert!(
        matches!(
            error,
            SettleError::DeadLetter(DeadLetterError::Connector(ConnectorError::NotConnected))
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Transient);
    says_things_once("typed: a term that cannot be written", &error, 2);
    let error = Error::from(error);
    assert_eq!(error.kind(), ErrorKind::Transient);
    says_things_once("typed: the same through Error", &error, 2);
}

#[test]
fn config_errors_say_things_once() {
    let error = IggyConfig::from_yaml("events: [unclosed").unwrap_err();
    says_things_once("config: not YAML", &error, 2);
    let error = IggyConfig::from_section_yaml("topology: { domain_partitions: 0 }").unwrap_err();
    says_things_once("config: partitions", &error, 1);
    let text = error.to_string();
    assert!(
        text.starts_with("topology.domain_partitions: ") && text.contains("1 to 1000"),
        "{text}"
    );
}

#[test]
fn bincode_in_yaml_says_to_use_postcard() {
    let error = IggyConfig::from_section_yaml("serialization: bincode").unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("serialization: ") && text.contains("use postcard"),
        "{text}"
    );
}
