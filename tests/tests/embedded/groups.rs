//! Consumer groups of the embedded broker: splitting, rebalancing, commits.

use std::collections::BTreeSet;

use rustok_iggy_connector::{
    ConnectorError, GroupName, IggyConnector, OutgoingMessage, PublishRequest, StartPosition,
};
use tests::{create_topic, embedded_config, names, open_embedded, within};

async fn publish_each(
    connector: &dyn IggyConnector,
    stream: &rustok_iggy_connector::StreamName,
    topic: &rustok_iggy_connector::TopicName,
    partitions: u32,
    per_partition: u64,
) {
    for partition in 0..partitions {
        let mut request = PublishRequest::new(stream.clone(), topic.clone()).partition(partition);
        for i in 0..per_partition {
            request = request.message(OutgoingMessage::new(
                format!("{partition}:{i}").into_bytes(),
            ));
        }
        connector.publish(request).await.unwrap();
    }
}

#[tokio::test]
async fn two_members_split_then_one_takes_over_after_a_leave() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("s", "t");
    create_topic(connector.as_ref(), &stream, &topic, 4).await;
    publish_each(connector.as_ref(), &stream, &topic, 4, 5).await;
    let group = GroupName::new("workers").unwrap();

    let a = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let b = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let (pa, pb) = (a.assignment().partitions, b.assignment().partitions);
    assert_eq!(pa.len(), 2);
    assert_eq!(pb.len(), 2);
    assert!(
        pa.iter().all(|p| !pb.contains(p)),
        "disjoint: {pa:?} {pb:?}"
    );

    // Each member reads only its own partitions; commits the first 3 of each.
    let mut seen_a = Vec::new();
    while seen_a.len() < 10 {
        seen_a.extend(within("a polls", a.poll(100)).await.unwrap());
    }
    assert!(seen_a.iter().all(|m| pa.contains(&m.partition)));
    for &p in &pa {
        a.commit(p, 2).await.unwrap();
    }
    // b may not commit a's partitions.
    assert!(matches!(
        b.commit(pa[0], 4).await,
        Err(ConnectorError::Fenced { .. })
    ));

    a.leave().await.unwrap();
    assert_eq!(b.assignment().partitions, vec![0, 1, 2, 3]);
    let mut seen_b = BTreeSet::new();
    while seen_b.len() < 4 * 5 - 3 * 2 {
        for m in within("b polls", b.poll(100)).await.unwrap() {
            assert!(seen_b.insert((m.partition, m.offset)), "duplicate {m:?}");
        }
    }
    // b got a's partitions from after a's commits: nothing skipped, nothing committed re-read.
    for &p in &pa {
        let offsets: Vec<u64> = seen_b
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(offsets, vec![3, 4]);
    }
    for &p in &pb {
        let offsets: Vec<u64> = seen_b
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    }
    assert!(matches!(
        a.commit(pa[0], 4).await,
        Err(ConnectorError::Fenced { .. })
    ));
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_waiting_member_is_woken_by_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("s", "wake");
    create_topic(connector.as_ref(), &stream, &topic, 2).await;
    let member = connector
        .join_group(
            &stream,
            &topic,
            &GroupName::new("g").unwrap(),
            StartPosition::Earliest,
        )
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { member.poll(10).await });
    tokio::task::yield_now().await;
    connector
        .publish(
            PublishRequest::new(stream.clone(), topic.clone())
                .partition(1)
                .message(OutgoingMessage::new(&b"wake"[..])),
        )
        .await
        .unwrap();
    let got = within("the woken poll", waiting).await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"wake");
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn start_positions_of_a_new_group() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("s", "start");
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    publish_each(connector.as_ref(), &stream, &topic, 1, 5).await;

    let latest = connector
        .join_group(
            &stream,
            &topic,
            &GroupName::new("latest").unwrap(),
            StartPosition::Latest,
        )
        .await
        .unwrap();
    let from_offset = connector
        .join_group(
            &stream,
            &topic,
            &GroupName::new("offset").unwrap(),
            StartPosition::Offset(3),
        )
        .await
        .unwrap();
    publish_each(connector.as_ref(), &stream, &topic, 1, 1).await;
    let got = within("latest", latest.poll(100)).await.unwrap();
    assert_eq!(got.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![5]);
    let got = within("offset", from_offset.poll(100)).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    connector.shutdown().await.unwrap();
}
