//! Conformance cases: topology and the typed errors of unknown targets.

use std::time::Duration;

use rustok_iggy_connector::{
    ConnectorError, OutgoingMessage, PublishRequest, Retention, StartPosition, StreamName,
    TopicName, TopicSpec,
};
use tests::conformance::{Harness, group, publish};
use tests::within;

/// `ensure_topic` creates the stream and the topic with their retention, is
/// idempotent, and refuses a different partition count without
/// touching the data.
pub(crate) async fn topology_is_created_and_a_mismatch_is_reported(mut h: Harness) {
    let stream = h.stream("topology");
    let topic = TopicName::new("audit").unwrap();
    let connector = h.connector.as_ref();
    assert_eq!(
        within("topic info", connector.topic_info(&stream, &topic))
            .await
            .unwrap(),
        None
    );
    let spec = TopicSpec {
        retention: Retention {
            max_age: Some(Duration::from_secs(7 * 86_400)),
            max_size_bytes: Some(10_000_000_000),
        },
        ..TopicSpec::new(stream.clone(), topic.clone(), 3)
    };
    let info = within("ensure", connector.ensure_topic(&spec))
        .await
        .unwrap();
    assert_eq!(info.partitions, 3);
    assert_eq!(info.next_offsets, vec![0, 0, 0]);
    assert_eq!(info.retention, spec.retention);
    assert_eq!(
        within("topic info", connector.topic_info(&stream, &topic))
            .await
            .unwrap(),
        Some(info.clone())
    );
    assert_eq!(
        within("ensure again", connector.ensure_topic(&spec))
            .await
            .unwrap(),
        info
    );

    publish(
        connector,
        PublishRequest::new(stream.clone(), topic.clone())
            .partition(1)
            .message(OutgoingMessage::new(&b"kept"[..])),
    )
    .await;
    let wider = TopicSpec {
        partitions: 5,
        ..spec.clone()
    };
    let err = within("ensure 5 partitions", connector.ensure_topic(&wider))
        .await
        .unwrap_err();
    match &err {
        ConnectorError::TopologyMismatch {
            stream: s,
            topic: t,
            message,
        } => {
            assert_eq!((s.as_str(), t.as_str()), (stream.as_str(), "audit"));
            assert!(message.contains('3') && message.contains('5'), "{message}");
        }
        other => panic!("expected TopologyMismatch, got {other:?}"),
    }
    let after = within("topic info", connector.topic_info(&stream, &topic))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.partitions, 3, "never recreated");
    assert_eq!(after.next_offsets, vec![0, 1, 0], "data kept");

    let zero = TopicSpec::new(stream.clone(), TopicName::new("empty").unwrap(), 0);
    let err = connector.ensure_topic(&zero).await.unwrap_err();
    assert!(matches!(err, ConnectorError::InvalidRequest(_)), "{err:?}");
    h.finish().await;
}

/// `ensure_topic` on an existing topic with another retention updates it.
pub(crate) async fn retention_is_updated_on_an_existing_topic(mut h: Harness) {
    let stream = h.stream("retention");
    let topic = TopicName::new("audit").unwrap();
    let connector = h.connector.as_ref();
    let spec = TopicSpec {
        retention: Retention {
            max_age: Some(Duration::from_secs(7 * 86_400)),
            max_size_bytes: Some(10_000_000_000),
        },
        ..TopicSpec::new(stream.clone(), topic.clone(), 2)
    };
    within("ensure", connector.ensure_topic(&spec))
        .await
        .unwrap();
    let shorter = TopicSpec {
        retention: Retention {
            max_age: Some(Duration::from_secs(86_400)),
            max_size_bytes: None,
        },
        ..spec.clone()
    };
    let updated = within("ensure new retention", connector.ensure_topic(&shorter))
        .await
        .unwrap();
    assert_eq!(updated.retention, shorter.retention);
    assert_eq!(
        within("topic info", connector.topic_info(&stream, &topic))
            .await
            .unwrap()
            .unwrap()
            .retention,
        shorter.retention
    );

    h.finish().await;
}

/// Missing streams, topics, partitions and groups are typed errors.
pub(crate) async fn unknown_targets_are_typed_errors(mut h: Harness) {
    let stream = h.stream("errors");
    let topic = h.topic(&stream, "known", 2).await;
    let missing = TopicName::new("missing").unwrap();
    let connector = h.connector.as_ref();
    let one = |s: &StreamName, t: &TopicName| {
        PublishRequest::new(s.clone(), t.clone()).message(OutgoingMessage::new(&b"x"[..]))
    };

    let err = connector.publish(one(&stream, &missing)).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::TopicNotFound { topic, .. } if topic == "missing"),
        "{err:?}"
    );
    let err = connector
        .poll(&stream, &missing, 0, StartPosition::Earliest, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::TopicNotFound { .. }),
        "{err:?}"
    );
    let err = connector
        .subscribe(&stream, &missing, 0, StartPosition::Earliest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::TopicNotFound { .. }),
        "{err:?}"
    );
    let err = connector
        .join_group(&stream, &missing, &group("g"), StartPosition::Earliest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::TopicNotFound { .. }),
        "{err:?}"
    );

    let nowhere = StreamName::new(format!("{stream}-missing")).unwrap();
    let err = connector.publish(one(&nowhere, &topic)).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::StreamNotFound { .. }),
        "{err:?}"
    );

    let err = connector
        .publish(one(&stream, &topic).partition(2))
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
        "{err:?}"
    );
    let err = connector
        .poll(&stream, &topic, 7, StartPosition::Earliest, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::PartitionNotFound {
                partition: 7,
                partitions: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let err = connector
        .subscribe(&stream, &topic, 7, StartPosition::Earliest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::PartitionNotFound { .. }),
        "{err:?}"
    );

    let err = connector
        .committed_offsets(&stream, &topic, &group("nobody"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::GroupNotFound { .. }),
        "{err:?}"
    );
    h.finish().await;
}
