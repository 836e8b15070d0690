//! The embedded broker keeps what it acknowledged across restarts.

use rustok_iggy_connector::{
    ConnectorError, GroupName, Headers, IggyConnector, OutgoingMessage, PublishRequest,
    StartPosition,
};
use tests::{create_topic, embedded_config, names, open_embedded, within};

fn message(i: u64) -> OutgoingMessage {
    let mut headers = Headers::new();
    headers.insert_str("i", i.to_string()).unwrap();
    OutgoingMessage::new(format!("event-{i}").into_bytes())
        .with_id(u128::from(i) + 1)
        .with_headers(headers)
}

#[tokio::test]
async fn publish_shutdown_reopen_reads_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(dir.path());
    let (stream, topic) = names("shop", "orders");

    let mut receipts = Vec::new();
    {
        let connector = open_embedded(&config).await;
        create_topic(connector.as_ref(), &stream, &topic, 3).await;
        for i in 0..30u64 {
            let receipt = connector
                .publish(
                    PublishRequest::new(stream.clone(), topic.clone())
                        .partition((i % 3) as u32)
                        .message(message(i)),
                )
                .await
                .unwrap();
            receipts.push((i, receipt));
        }
        connector.shutdown().await.unwrap();
        assert!(matches!(
            connector
                .publish(PublishRequest::new(stream.clone(), topic.clone()).message(message(99)))
                .await,
            Err(ConnectorError::NotConnected)
        ));
    }

    let connector = open_embedded(&config).await;
    let info = connector
        .topic_info(&stream, &topic)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.partitions, 3);
    assert_eq!(info.next_offsets, vec![10, 10, 10]);
    for partition in 0..3 {
        let read = connector
            .poll(&stream, &topic, partition, StartPosition::Earliest, 100)
            .await
            .unwrap();
        assert_eq!(read.len(), 10);
        for message in &read {
            let (i, receipt) = receipts
                .iter()
                .find(|(_, r)| r.partition == partition && r.base_offset == message.offset)
                .expect("every stored message was acknowledged");
            assert_eq!(&message.payload[..], format!("event-{i}").as_bytes());
            assert_eq!(message.id, u128::from(*i) + 1);
            assert_eq!(message.headers.get_str("i"), Some(i.to_string().as_str()));
            assert_eq!(receipt.count, 1);
        }
    }
    // New appends continue after the recovered offsets.
    let receipt = connector
        .publish(
            PublishRequest::new(stream.clone(), topic.clone())
                .partition(1)
                .message(message(30)),
        )
        .await
        .unwrap();
    assert_eq!(receipt.base_offset, 10);
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn committed_group_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(dir.path());
    let (stream, topic) = names("shop", "payments");
    let group = GroupName::new("billing").unwrap();
    {
        let connector = open_embedded(&config).await;
        create_topic(connector.as_ref(), &stream, &topic, 1).await;
        let mut request = PublishRequest::new(stream.clone(), topic.clone()).partition(0);
        for i in 0..10 {
            request = request.message(message(i));
        }
        connector.publish(request).await.unwrap();
        let member = connector
            .join_group(&stream, &topic, &group, StartPosition::Earliest)
            .await
            .unwrap();
        let polled = within("first poll", member.poll(4)).await.unwrap();
        assert_eq!(
            polled.iter().map(|m| m.offset).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        member.commit(0, 3).await.unwrap();
        connector.shutdown().await.unwrap();
    }
    let connector = open_embedded(&config).await;
    assert_eq!(
        connector
            .committed_offsets(&stream, &topic, &group)
            .await
            .unwrap(),
        vec![Some(3)]
    );
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let polled = within("poll after restart", member.poll(100))
        .await
        .unwrap();
    assert_eq!(
        polled.first().map(|m| m.offset),
        Some(4),
        "resumes after the commit"
    );
    assert_eq!(polled.len(), 6);
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_data_directory_is_held_by_one_broker_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(dir.path());
    let first = open_embedded(&config).await;
    let second = rustok_iggy_connector::EmbeddedConnector::new();
    assert!(matches!(
        second.connect(&config).await,
        Err(ConnectorError::DataDirInUse { .. })
    ));
    first.shutdown().await.unwrap();
    drop(first);
    second.connect(&config).await.unwrap();
    second.shutdown().await.unwrap();
}
