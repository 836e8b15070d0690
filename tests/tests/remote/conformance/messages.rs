//! Conformance cases: publishing (per-key order, batches) and replay.

use std::collections::{BTreeMap, BTreeSet};

use rustok_iggy_connector::{
    ConnectorError, HeaderValue, Headers, OutgoingMessage, PublishRequest, StartPosition,
    partition_for,
};
use tests::conformance::{Harness, collect, committed, group, new_id, publish, read_all};
use tests::within;

/// Same key → same partition (the function every Iggy client uses), in publish order,
/// with the event id and the headers intact.
pub(crate) async fn publish_and_consume_keep_the_order_of_each_key(mut h: Harness) {
    let stream = h.stream("order");
    let topic = h.topic(&stream, "orders", 4).await;
    let keys = ["tenant-a", "tenant-b", "tenant-c", "tenant-d", "tenant-e"];
    let mut sent: BTreeMap<&str, Vec<(u32, u64, u128)>> = BTreeMap::new();
    for seq in 0..20u64 {
        for key in keys {
            let id = new_id();
            let mut headers = Headers::new();
            headers.insert_str("key", key).unwrap();
            headers.insert("seq", HeaderValue::u64(seq)).unwrap();
            let receipt = publish(
                h.connector.as_ref(),
                PublishRequest::new(stream.clone(), topic.clone())
                    .key(key.as_bytes().to_vec())
                    .message(
                        OutgoingMessage::new(format!("{key}:{seq}").into_bytes())
                            .with_id(id)
                            .with_headers(headers),
                    ),
            )
            .await;
            assert_eq!(receipt.partition, partition_for(key.as_bytes(), 4), "{key}");
            assert_eq!(receipt.count, 1);
            sent.entry(key)
                .or_default()
                .push((receipt.partition, receipt.base_offset, id));
        }
    }
    let mut stored = BTreeMap::new();
    for partition in 0..4 {
        for message in read_all(h.connector.as_ref(), &stream, &topic, partition, 0).await {
            stored.insert((message.partition, message.offset), message);
        }
    }
    assert_eq!(stored.len(), keys.len() * 20);
    for (key, publishes) in &sent {
        // Publish order is offset order within the key's partition.
        assert!(
            publishes.windows(2).all(|w| w[0].1 < w[1].1),
            "{key}: {publishes:?}"
        );
        for (seq, (partition, offset, id)) in publishes.iter().enumerate() {
            let message = &stored[&(*partition, *offset)];
            assert_eq!(message.id, *id, "the event id is the message id");
            assert_eq!(message.payload, format!("{key}:{seq}").into_bytes());
            assert_eq!(message.headers.get_str("key"), Some(*key));
            assert_eq!(
                message.headers.get("seq").and_then(|value| value.as_u64()),
                Some(seq as u64)
            );
            assert!(message.timestamp > 0 && message.origin_timestamp > 0);
        }
    }
    h.finish().await;
}

/// A batch lands contiguously in one partition, in order; balanced batches go
/// round-robin and their receipts name the exact partition.
pub(crate) async fn batch_publish_appends_contiguously(mut h: Harness) {
    let stream = h.stream("batch");
    let topic = h.topic(&stream, "batches", 3).await;
    let batch = |n: usize| -> (PublishRequest, Vec<u128>) {
        let ids: Vec<u128> = (0..n).map(|_| new_id()).collect();
        let mut request = PublishRequest::new(stream.clone(), topic.clone()).key(&b"the-key"[..]);
        for (i, id) in ids.iter().enumerate() {
            request =
                request.message(OutgoingMessage::new(format!("m{i}").into_bytes()).with_id(*id));
        }
        (request, ids)
    };
    let (first, mut ids) = batch(50);
    let (second, more) = batch(30);
    ids.extend(more);
    let r1 = publish(h.connector.as_ref(), first).await;
    let r2 = publish(h.connector.as_ref(), second).await;
    assert_eq!(r1.partition, partition_for(b"the-key", 3));
    assert_eq!((r1.count, r2.count), (50, 30));
    assert_eq!(r2.partition, r1.partition);
    assert_eq!(
        r2.base_offset,
        r1.base_offset + 50,
        "batches append contiguously"
    );
    let read = read_all(
        h.connector.as_ref(),
        &stream,
        &topic,
        r1.partition,
        r1.base_offset,
    )
    .await;
    assert_eq!(
        read.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (r1.base_offset..r1.base_offset + 80).collect::<Vec<_>>()
    );
    assert_eq!(read.iter().map(|m| m.id).collect::<Vec<_>>(), ids);

    // Balanced: three batches of two visit the three partitions.
    let mut partitions = BTreeSet::new();
    for round in 0..3 {
        let ids = [new_id(), new_id()];
        let request = PublishRequest::new(stream.clone(), topic.clone())
            .message(OutgoingMessage::new(format!("b{round}a").into_bytes()).with_id(ids[0]))
            .message(OutgoingMessage::new(format!("b{round}b").into_bytes()).with_id(ids[1]));
        let receipt = publish(h.connector.as_ref(), request).await;
        partitions.insert(receipt.partition);
        let read = within(
            "poll the balanced batch",
            h.connector.poll(
                &stream,
                &topic,
                receipt.partition,
                StartPosition::Offset(receipt.base_offset),
                2,
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            read.iter().map(|m| m.id).collect::<Vec<_>>(),
            ids,
            "receipt {receipt:?}"
        );
    }
    assert_eq!(partitions, BTreeSet::from([0, 1, 2]));

    let empty = h
        .connector
        .publish(PublishRequest::new(stream.clone(), topic.clone()))
        .await;
    assert!(
        matches!(empty, Err(ConnectorError::InvalidRequest(_))),
        "{empty:?}"
    );
    h.finish().await;
}

/// Replay from the first message, an offset, a timestamp, or the head, through
/// `poll` and `subscribe`, leaves the group's committed offsets alone.
pub(crate) async fn replay_reads_from_first_offset_and_timestamp_without_moving_group_offsets(
    mut h: Harness,
) {
    let stream = h.stream("replay");
    let topic = h.topic(&stream, "events", 1).await;
    let publish_one = |i: u64| {
        PublishRequest::new(stream.clone(), topic.clone())
            .partition(0)
            .message(OutgoingMessage::new(format!("e{i}").into_bytes()))
    };
    for i in 0..5 {
        publish(h.connector.as_ref(), publish_one(i)).await;
    }
    let g = group("auditors");
    let member = within(
        "join",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    assert_eq!(collect(member.as_ref(), 5).await.len(), 5);
    within("commit", member.commit(0, 2)).await.unwrap();
    for i in 5..10 {
        publish(h.connector.as_ref(), publish_one(i)).await;
    }

    let connector = h.connector.as_ref();
    let all = within(
        "poll first",
        connector.poll(&stream, &topic, 0, StartPosition::Earliest, 100),
    )
    .await
    .unwrap();
    assert_eq!(
        all.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    let capped = within(
        "poll capped",
        connector.poll(&stream, &topic, 0, StartPosition::Earliest, 3),
    )
    .await
    .unwrap();
    assert_eq!(
        capped.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let from_offset = within(
        "poll offset",
        connector.poll(&stream, &topic, 0, StartPosition::Offset(7), 100),
    )
    .await
    .unwrap();
    assert_eq!(
        from_offset.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    let t = all[5].timestamp;
    let first_at_t = all.iter().find(|m| m.timestamp >= t).unwrap().offset;
    let from_time = within(
        "poll timestamp",
        connector.poll(&stream, &topic, 0, StartPosition::Timestamp(t), 100),
    )
    .await
    .unwrap();
    assert_eq!(
        from_time.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (first_at_t..10).collect::<Vec<_>>()
    );
    let latest = within(
        "poll latest",
        connector.poll(&stream, &topic, 0, StartPosition::Latest, 100),
    )
    .await
    .unwrap();
    assert!(latest.is_empty());

    let mut from_first = within(
        "subscribe",
        connector.subscribe(&stream, &topic, 0, StartPosition::Earliest),
    )
    .await
    .unwrap();
    let batch = within("next batch", from_first.next_batch(4))
        .await
        .unwrap();
    assert_eq!(
        batch.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let mut rest = Vec::new();
    while rest.len() < 6 {
        rest.extend(
            within("next batch", from_first.next_batch(100))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        rest.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (4..10).collect::<Vec<_>>()
    );
    let mut by_time = within(
        "subscribe",
        connector.subscribe(&stream, &topic, 0, StartPosition::Timestamp(t)),
    )
    .await
    .unwrap();
    let batch = within("next batch", by_time.next_batch(100)).await.unwrap();
    assert_eq!(batch.first().map(|m| m.offset), Some(first_at_t));

    // A subscriber at the head waits for the next message.
    let mut at_head = within(
        "subscribe",
        connector.subscribe(&stream, &topic, 0, StartPosition::Latest),
    )
    .await
    .unwrap();
    let waiting = tokio::spawn(async move { at_head.next_batch(10).await });
    publish(connector, publish_one(10)).await;
    let woken = within("the head subscriber wakes", waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(woken.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![10]);
    let more = within("next batch", from_first.next_batch(100))
        .await
        .unwrap();
    assert_eq!(more.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![10]);

    assert_eq!(
        committed(connector, &stream, &topic, &g).await,
        vec![Some(2)]
    );
    within("leave", member.leave()).await.unwrap();
    let resumed = within(
        "rejoin",
        connector.join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    let again = collect(resumed.as_ref(), 8).await;
    assert_eq!(
        again.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (3..=10).collect::<Vec<_>>()
    );
    within("leave", resumed.leave()).await.unwrap();
    h.finish().await;
}
