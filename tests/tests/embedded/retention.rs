//! Retention deletes whole old segments; recent data and offsets stay.

use std::time::Duration;

use rustok_iggy_connector::{
    GroupName, IggyConnector, OutgoingMessage, PublishRequest, Retention, StartPosition, TopicSpec,
};
use tests::{embedded_config, names, open_embedded, within};

async fn fill(
    connector: &dyn IggyConnector,
    stream: &rustok_iggy_connector::StreamName,
    topic: &rustok_iggy_connector::TopicName,
    batches: u64,
) {
    for batch in 0..batches {
        let mut request = PublishRequest::new(stream.clone(), topic.clone()).partition(0);
        for i in 0..10 {
            request = request.message(OutgoingMessage::new(vec![(batch * 10 + i) as u8; 200]));
        }
        connector.publish(request).await.unwrap();
    }
}

#[tokio::test]
async fn age_retention_keeps_the_active_segment_and_the_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.segment_size_bytes = 4096;
    let connector = open_embedded(&config).await;
    let (stream, topic) = names("s", "aging");
    let mut spec = TopicSpec::new(stream.clone(), topic.clone(), 1);
    connector.ensure_topic(&spec).await.unwrap();
    fill(connector.as_ref(), &stream, &topic, 20).await;
    let group = GroupName::new("g").unwrap();
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    member.commit(0, 149).await.unwrap();

    spec.retention = Retention {
        max_age: Some(Duration::from_micros(1)),
        max_size_bytes: None,
    };
    connector.ensure_topic(&spec).await.unwrap();
    connector.enforce_retention().unwrap();

    let left = connector
        .poll(&stream, &topic, 0, StartPosition::Earliest, 1000)
        .await
        .unwrap();
    assert!(!left.is_empty(), "the active segment stays");
    assert!(left[0].offset > 0, "old segments were deleted");
    assert_eq!(left.last().unwrap().offset, 199, "the newest data stays");
    let offsets: Vec<u64> = left.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (left[0].offset..200).collect::<Vec<_>>());
    assert_eq!(
        connector
            .committed_offsets(&stream, &topic, &group)
            .await
            .unwrap(),
        vec![Some(149)]
    );

    // Offsets are never reused. Retention does not wait for consumers: the member
    // resumes after its commit or at the oldest retained message, whichever is later.
    fill(connector.as_ref(), &stream, &topic, 1).await;
    let got = within("resume", member.poll(1)).await.unwrap();
    assert_eq!(got[0].offset, left[0].offset.max(150));
    let info = connector
        .topic_info(&stream, &topic)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.next_offsets, vec![210]);
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn size_retention_bounds_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.segment_size_bytes = 4096;
    let connector = open_embedded(&config).await;
    let (stream, topic) = names("s", "sized");
    let mut spec = TopicSpec::new(stream.clone(), topic.clone(), 1);
    spec.retention.max_size_bytes = Some(3 * 4096);
    connector.ensure_topic(&spec).await.unwrap();
    fill(connector.as_ref(), &stream, &topic, 40).await;
    connector.enforce_retention().unwrap();
    let left = connector
        .poll(&stream, &topic, 0, StartPosition::Earliest, 10_000)
        .await
        .unwrap();
    let bytes: usize = left.iter().map(|m| m.payload.len() + 48).sum();
    assert!(bytes <= 4 * 4096, "{bytes} bytes left");
    assert_eq!(left.last().unwrap().offset, 399);
    connector.shutdown().await.unwrap();
}
