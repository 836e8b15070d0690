//! Every failure has a kind a caller can act on, and the same failure has the same
//! kind on both connectors: a missing stream, topic or partition is `NotFound`, a
//! refused sign-in is `Unauthorized`, a request that cannot succeed is `Invalid`,
//! bytes that do not decode are `Malformed`, a call on a shut-down connector is
//! `ShuttingDown` or `Transient` (never `Other`).

use rustok_iggy::{
    Error,
    connector::{ConnectorError, ErrorKind, IggyConnector, StreamName, TopicName, TopicSpec},
};
use rustok_iggy_connector::{OutgoingMessage, PublishRequest, RemoteConnector};
use tests::conformance::{Harness, remote_config};
use tests::wire::{USERNAME, WireBroker};
use tests::{embedded_config, open_embedded, within};

fn one_message(stream: &StreamName, topic: &TopicName) -> PublishRequest {
    PublishRequest::new(stream.clone(), topic.clone())
        .partition(0)
        .message(OutgoingMessage::new(b"x".to_vec()))
}

async fn missing_things_are_not_found(mut h: Harness) {
    let stream = h.stream("kinds");
    let missing = TopicName::new("missing").unwrap();
    let error = h
        .connector
        .publish(one_message(&stream, &missing))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "no stream: {error:?}");

    let topic = h.topic(&stream, "present", 1).await;
    let error = h
        .connector
        .publish(one_message(&stream, &missing))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "no topic: {error:?}");
    let error = h
        .connector
        .publish(one_message(&stream, &topic).partition(7))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "no partition: {error:?}");
    h.finish().await;
}

async fn requests_that_cannot_succeed_are_invalid(mut h: Harness) {
    let stream = h.stream("kinds");
    let topic = h.topic(&stream, "present", 1).await;
    let empty = PublishRequest::new(stream.clone(), topic.clone()).partition(0);
    let error = h.connector.publish(empty).await.unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::Invalid,
        "an empty batch: {error:?}"
    );
    let error = h
        .connector
        .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 0))
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::Invalid,
        "zero partitions: {error:?}"
    );
    h.finish().await;
}

tests::both_modes!(
    missing_things_are_not_found,
    requests_that_cannot_succeed_are_invalid
);

#[tokio::test]
async fn a_refused_sign_in_is_unauthorized() {
    let broker = WireBroker::start().await;
    let mut wrong = remote_config(&broker.address.to_string(), USERNAME, "not-the-password");
    wrong.remote.reconnection_retries = 1;
    let error = within("a refused sign-in", RemoteConnector::new().connect(&wrong))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unauthorized, "{error:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_shut_down_connector_says_so_or_asks_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let stream = StreamName::new("kinds").unwrap();
    let topic = TopicName::new("kinds").unwrap();
    connector.shutdown().await.unwrap();
    let error = connector
        .publish(one_message(&stream, &topic))
        .await
        .unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::ShuttingDown | ErrorKind::Transient),
        "{error:?}"
    );
}

#[test]
fn a_fenced_member_is_fenced_through_the_typed_layer() {
    let error = Error::from(ConnectorError::Fenced {
        group: "readers".into(),
        partition: 0,
        generation: 3,
    });
    assert_eq!(error.kind(), ErrorKind::Fenced);
}

/// A failed settlement and a failed dead-letter operation keep their kind when they
/// become an `Error` (what a caller that turns them into one with `?` decides by):
/// the connector's kind for a connection failure, `Invalid` for what sending
/// again cannot fix.
#[test]
fn settle_and_dead_letter_errors_keep_their_kind_through_error() {
    use rustok_iggy::consume::SettleError;
    use rustok_iggy::dead_letter::DeadLetterError;

    let fenced = || ConnectorError::Fenced {
        group: "readers".into(),
        partition: 1,
        generation: 4,
    };
    let timeout = || ConnectorError::Timeout {
        what: "the broker's answer".into(),
        after: std::time::Duration::from_secs(1),
    };
    let settle = [
        (SettleError::Commit(fenced()), ErrorKind::Fenced),
        (SettleError::Commit(timeout()), ErrorKind::Transient),
        (
            SettleError::Commit(ConnectorError::ShuttingDown),
            ErrorKind::ShuttingDown,
        ),
        (
            SettleError::DeadLetter(DeadLetterError::Connector(timeout())),
            ErrorKind::Transient,
        ),
        (
            SettleError::DeadLetter(DeadLetterError::NoDeadLetterTopic),
            ErrorKind::Invalid,
        ),
    ];
    for (error, kind) in settle {
        assert_eq!(error.kind(), kind, "{error:?}");
        let error = Error::from(error);
        assert!(matches!(error, Error::Settle(_)), "{error:?}");
        assert_eq!(error.kind(), kind, "through Error: {error:?}");
    }
    let header = rustok_iggy::connector::Headers::new()
        .insert_str("dlq.error", String::new())
        .expect_err("an empty header value");
    let dead_letter = [
        (DeadLetterError::Connector(timeout()), ErrorKind::Transient),
        (
            DeadLetterError::Connector(ConnectorError::TopicNotFound {
                stream: "s".into(),
                topic: "t.dlq".into(),
            }),
            ErrorKind::NotFound,
        ),
        (DeadLetterError::InvalidHeader(header), ErrorKind::Invalid),
        (DeadLetterError::NoDeadLetterTopic, ErrorKind::Invalid),
    ];
    for (error, kind) in dead_letter {
        assert_eq!(error.kind(), kind, "{error:?}");
        let error = Error::from(error);
        assert!(matches!(error, Error::DeadLetter(_)), "{error:?}");
        assert_eq!(error.kind(), kind, "through Error: {error:?}");
    }
}

/// "Retry later" is one rule: `is_transient()` (what the publish retries, the remote
/// resends and the closing commit go by) says yes exactly when `kind()` is
/// `Transient`, also for an Iggy SDK error inside `Iggy`, `Publish` or `Receive`,
/// for every code of the error table.
#[test]
fn retry_later_is_one_rule() {
    use iggy::prelude::IggyError;
    use rustok_iggy_connector::error_codes::ErrorCode;

    let sdk = |code: ErrorCode| IggyError::from_code(code.0);
    let mut errors: Vec<(String, ConnectorError)> = vec![
        (
            "Connection".into(),
            ConnectorError::Connection {
                message: "x".into(),
                source: None,
            },
        ),
        (
            "Timeout".into(),
            ConnectorError::Timeout {
                what: "x".into(),
                after: std::time::Duration::from_secs(1),
            },
        ),
        ("NotConnected".into(), ConnectorError::NotConnected),
        ("ShuttingDown".into(), ConnectorError::ShuttingDown),
        (
            "Publish without a source".into(),
            ConnectorError::Publish {
                message: "x".into(),
                source: None,
            },
        ),
    ];
    for &(code, name) in ErrorCode::ALL {
        errors.push((
            format!("Iggy({name})"),
            ConnectorError::Iggy {
                context: "x".into(),
                source: sdk(code),
            },
        ));
        errors.push((
            format!("Publish({name})"),
            ConnectorError::Publish {
                message: "x".into(),
                source: Some(Box::new(sdk(code))),
            },
        ));
        errors.push((
            format!("Receive({name})"),
            ConnectorError::Receive {
                message: "x".into(),
                source: Some(Box::new(sdk(code))),
            },
        ));
    }
    let disagreeing: Vec<String> = errors
        .iter()
        .filter(|(_, e)| e.is_transient() != (e.kind() == ErrorKind::Transient))
        .map(|(name, e)| {
            format!(
                "{name}: is_transient {}, kind {:?}",
                e.is_transient(),
                e.kind()
            )
        })
        .collect();
    assert!(disagreeing.is_empty(), "{disagreeing:#?}");

    // A disconnect reported by the SDK is "retry later", whichever variant holds it.
    let disconnected = ConnectorError::Iggy {
        context: "publish".into(),
        source: IggyError::Disconnected,
    };
    assert!(disconnected.is_transient());
    // An SDK client that was shut down asks for a retry too (the remote connector's
    // own mapping of that answer is a lost connection).
    let shut = ConnectorError::Iggy {
        context: "publish".into(),
        source: IggyError::ClientShutdown,
    };
    assert_eq!(shut.kind(), ErrorKind::Transient);
    assert!(!ConnectorError::ShuttingDown.is_transient());
}
