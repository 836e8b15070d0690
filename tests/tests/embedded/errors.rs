//! Bad input to the embedded connector gets typed errors.

use rustok_iggy_connector::{
    ConnectorConfig, ConnectorError, EmbeddedConnector, IggyConnector, NameError, OutgoingMessage,
    PublishRequest, StartPosition, StreamName, TopicName, TopicSpec,
};
use tests::{create_topic, embedded_config, names, open_embedded};

#[tokio::test]
async fn unknown_stream_topic_and_partition_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("s", "t");
    let message = || OutgoingMessage::new(&b"x"[..]);

    let err = connector
        .publish(PublishRequest::new(stream.clone(), topic.clone()).message(message()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::StreamNotFound { ref stream } if stream == "s"),
        "{err}"
    );

    create_topic(connector.as_ref(), &stream, &topic, 2).await;
    let other = TopicName::new("missing").unwrap();
    let err = connector
        .poll(&stream, &other, 0, StartPosition::Earliest, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::TopicNotFound { .. }), "{err}");

    let err = connector
        .publish(
            PublishRequest::new(stream.clone(), topic.clone())
                .partition(2)
                .message(message()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::PartitionNotFound {
                partition: 2,
                partitions: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "partition 2 does not exist in s/t (2 partitions, ids 0..2)"
    );

    let err = connector
        .publish(PublishRequest::new(stream.clone(), topic.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::InvalidRequest(_)), "{err}");

    let err = connector
        .ensure_topic(&TopicSpec::new(
            stream.clone(),
            TopicName::new("zero").unwrap(),
            0,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::InvalidRequest(_)), "{err}");

    let err = connector
        .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 3))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::TopologyMismatch { .. }),
        "{err}"
    );
    connector.shutdown().await.unwrap();
}

#[test]
fn invalid_names_are_refused() {
    assert!(matches!(StreamName::new(""), Err(NameError::Empty { .. })));
    assert!(matches!(
        TopicName::new("a\nb"),
        Err(NameError::InvalidCharacter { .. })
    ));
    assert!(matches!(
        TopicName::new("x".repeat(256)),
        Err(NameError::TooLong { len: 256, .. })
    ));
}

#[tokio::test]
async fn calls_before_connect_and_bad_config_are_typed_errors() {
    let connector = EmbeddedConnector::new();
    let (stream, topic) = names("s", "t");
    assert!(matches!(
        connector
            .poll(&stream, &topic, 0, StartPosition::Earliest, 1)
            .await,
        Err(ConnectorError::NotConnected)
    ));
    let mut config = ConnectorConfig::embedded("/nonexistent/never");
    config.partitions = 0;
    let err = connector.connect(&config).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Config { ref field, .. } if field == "partitions"),
        "{err}"
    );
    let err = connector
        .connect(&ConnectorConfig::embedded(
            "/proc/rustok-iggy-cannot-create",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Io { .. }), "{err}");
}
