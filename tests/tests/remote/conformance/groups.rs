//! Conformance cases: consumer groups (split, rebalance, commits after acks, start
//! positions, shutdown).

use std::collections::BTreeSet;

use rustok_iggy_connector::{
    ConnectorError, OutgoingMessage, PublishRequest, ReceivedMessage, StartPosition,
};
use tests::conformance::{
    Harness, collect, committed, expect_positions, fill, group, offsets_by_partition, positions,
    read_all,
};
use tests::within;

/// Two members split four partitions; one commits part of its work and leaves; the
/// other gets every partition, the un-committed work again, and nothing committed.
pub(crate) async fn group_members_split_the_partitions_and_rebalance_when_one_leaves(
    mut h: Harness,
) {
    let stream = h.stream("split");
    let topic = h.topic(&stream, "work", 4).await;
    let ids = fill(h.connector.as_ref(), &stream, &topic, 4, 10).await;
    let g = group("workers");
    let a = within(
        "join a",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    let b = within(
        "join b",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();

    let got_a = collect(a.as_ref(), 20).await;
    let got_b = collect(b.as_ref(), 20).await;
    let (pa, pb) = (a.assignment().partitions, b.assignment().partitions);
    assert_eq!((pa.len(), pb.len()), (2, 2), "{pa:?} {pb:?}");
    let all: BTreeSet<u32> = pa.iter().chain(&pb).copied().collect();
    assert_eq!(
        all,
        BTreeSet::from([0, 1, 2, 3]),
        "disjoint and complete: {pa:?} {pb:?}"
    );
    assert_eq!(positions(&got_a), expect_positions(&pa, 0..=9));
    assert_eq!(positions(&got_b), expect_positions(&pb, 0..=9));
    for message in got_a.iter().chain(&got_b) {
        assert_eq!(message.id, ids[&(message.partition, message.offset)]);
        // Within a partition, delivery follows the offsets.
    }
    for offsets in offsets_by_partition(&got_a)
        .values()
        .chain(offsets_by_partition(&got_b).values())
    {
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    }

    // A member may not commit a partition it does not own.
    let fenced = b.commit(pa[0], 0).await;
    assert!(
        matches!(fenced, Err(ConnectorError::Fenced { partition, .. }) if partition == pa[0]),
        "{fenced:?}"
    );

    for &p in &pa {
        within("a commits", a.commit(p, 9)).await.unwrap();
    }
    for &p in &pb {
        within("b commits", b.commit(p, 4)).await.unwrap();
    }
    within("b leaves", b.leave()).await.unwrap();
    fill(h.connector.as_ref(), &stream, &topic, 4, 2).await;

    // a now owns everything: b's un-committed 5..=9, and the new 10..=11 everywhere.
    let got = collect(a.as_ref(), 2 * 5 + 4 * 2).await;
    let mut expected = expect_positions(&pb, 5..=11);
    expected.extend(expect_positions(&pa, 10..=11));
    expected.sort_unstable();
    assert_eq!(
        positions(&got),
        expected,
        "nothing lost, nothing committed delivered again"
    );
    assert_eq!(a.assignment().partitions, vec![0, 1, 2, 3]);

    for p in 0..4 {
        within("a commits", a.commit(p, 11)).await.unwrap();
    }
    assert_eq!(
        committed(h.connector.as_ref(), &stream, &topic, &g).await,
        vec![Some(11); 4]
    );
    within("a leaves", a.leave()).await.unwrap();
    h.finish().await;
}

/// A member dropped without `leave` gives its partitions up.
pub(crate) async fn dropping_a_member_leaves_the_group(mut h: Harness) {
    let stream = h.stream("drop");
    let topic = h.topic(&stream, "work", 2).await;
    let g = group("droppers");
    let a = within(
        "join a",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    let b = within(
        "join b",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    drop(b);
    fill(h.connector.as_ref(), &stream, &topic, 2, 1).await;
    // a commits what it handles, so that the rebalance redelivers nothing.
    let mut seen = BTreeSet::new();
    while seen.len() < 2 {
        for message in collect(a.as_ref(), 1).await {
            within("commit", a.commit(message.partition, message.offset))
                .await
                .unwrap();
            assert!(
                seen.insert((message.partition, message.offset)),
                "duplicate {message:?}"
            );
        }
    }
    assert_eq!(seen, BTreeSet::from([(0, 0), (1, 0)]));
    assert_eq!(a.assignment().partitions, vec![0, 1]);
    drop(a);
    h.finish().await;
}

/// `poll` never commits; a restarted consumer resumes after the last commit: the
/// acked events are not delivered again, the un-acked ones are.
pub(crate) async fn commits_follow_acks_and_a_restarted_consumer_gets_the_unacked_again(
    mut h: Harness,
) {
    let stream = h.stream("acks");
    let topic = h.topic(&stream, "billing", 2).await;
    let ids = fill(h.connector.as_ref(), &stream, &topic, 2, 10).await;
    let g = group("billing");
    let first = within(
        "join",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    let got = collect(first.as_ref(), 20).await;
    assert_eq!(positions(&got), expect_positions(&[0, 1], 0..=9));
    assert_eq!(
        committed(h.connector.as_ref(), &stream, &topic, &g).await,
        vec![None, None],
        "polling commits nothing"
    );
    within("ack", first.commit(0, 3)).await.unwrap();
    within("ack", first.commit(1, 6)).await.unwrap();
    assert_eq!(
        committed(h.connector.as_ref(), &stream, &topic, &g).await,
        vec![Some(3), Some(6)]
    );
    within("leave", first.leave()).await.unwrap();
    drop(first);

    // The restarted consumer: another process for a remote target.
    let restarted = h.another().await;
    let second = within(
        "rejoin",
        restarted.join_group(&stream, &topic, &g, StartPosition::Latest),
    )
    .await
    .unwrap();
    let again = collect(second.as_ref(), 6 + 3).await;
    let mut expected = expect_positions(&[0], 4..=9);
    expected.extend(expect_positions(&[1], 7..=9));
    assert_eq!(positions(&again), expected);
    for message in &again {
        assert_eq!(message.id, ids[&(message.partition, message.offset)]);
    }
    // Nothing else is pending: the next delivery is a message published now.
    let sentinel = fill(h.connector.as_ref(), &stream, &topic, 1, 1).await;
    let next = collect(second.as_ref(), 1).await;
    assert_eq!(positions(&next), vec![(0, 10)]);
    assert_eq!(next[0].id, sentinel[&(0, 10)]);
    within("leave", second.leave()).await.unwrap();
    h.finish().await;
}

/// A group created with a start position stores it once: `Latest` skips what is
/// there, `Offset` and `Timestamp` start where they say, and a later join of the same
/// group ignores its own start.
pub(crate) async fn a_new_group_starts_where_it_was_asked_to(mut h: Harness) {
    let stream = h.stream("start");
    let topic = h.topic(&stream, "history", 2).await;
    fill(h.connector.as_ref(), &stream, &topic, 2, 3).await;
    let connector = h.connector.as_ref();
    let (stream_ref, topic_ref) = (&stream, &topic);
    let join = |name: &'static str, start: StartPosition| async move {
        within(
            "join",
            connector.join_group(stream_ref, topic_ref, &group(name), start),
        )
        .await
        .unwrap()
    };
    let latest = join("latest", StartPosition::Latest).await;
    assert_eq!(
        committed(connector, &stream, &topic, &group("latest")).await,
        vec![Some(2), Some(2)],
        "the start is stored when the group is created"
    );
    let from_offset = join("from-offset", StartPosition::Offset(1)).await;
    let all: Vec<ReceivedMessage> = [
        read_all(connector, &stream, &topic, 0, 0).await,
        read_all(connector, &stream, &topic, 1, 0).await,
    ]
    .concat();
    let t = all
        .iter()
        .find(|m| (m.partition, m.offset) == (0, 2))
        .unwrap()
        .timestamp;
    let from_time = join("from-time", StartPosition::Timestamp(t)).await;
    fill(connector, &stream, &topic, 2, 1).await;

    assert_eq!(
        positions(&collect(latest.as_ref(), 2).await),
        vec![(0, 3), (1, 3)]
    );
    assert_eq!(
        positions(&collect(from_offset.as_ref(), 6).await),
        expect_positions(&[0, 1], 1..=3)
    );
    let mut expected = Vec::new();
    for partition in 0..2 {
        let start = all
            .iter()
            .filter(|m| m.partition == partition && m.timestamp >= t)
            .map(|m| m.offset)
            .min()
            .unwrap_or(3);
        expected.extend((start..=3).map(|o| (partition, o)));
    }
    assert_eq!(
        positions(&collect(from_time.as_ref(), expected.len()).await),
        expected
    );

    // Joining an existing group again does not move its offsets.
    within("leave", latest.leave()).await.unwrap();
    let again = join("latest", StartPosition::Offset(0)).await;
    assert_eq!(
        committed(connector, &stream, &topic, &group("latest")).await,
        vec![Some(2), Some(2)]
    );
    assert_eq!(
        positions(&collect(again.as_ref(), 2).await),
        vec![(0, 3), (1, 3)]
    );
    for member in [again, from_offset, from_time] {
        within("leave", member.leave()).await.unwrap();
    }
    h.finish().await;
}

/// A member waiting in `poll` is woken by the shutdown; afterwards every call fails
/// with `NotConnected`.
pub(crate) async fn shutdown_wakes_waiters_and_ends_the_connector(mut h: Harness) {
    let stream = h.stream("shutdown");
    let topic = h.topic(&stream, "quiet", 1).await;
    let member = within(
        "join",
        h.connector
            .join_group(&stream, &topic, &group("sleepers"), StartPosition::Earliest),
    )
    .await
    .unwrap();
    let waiting = tokio::spawn(async move { member.poll(10).await });
    within("shutdown", h.connector.shutdown()).await.unwrap();
    let woken = within("the waiting poll ends", waiting).await.unwrap();
    assert!(
        matches!(woken, Err(ConnectorError::ShuttingDown)),
        "{woken:?}"
    );
    assert!(!h.connector.is_connected());
    let err = h
        .connector
        .publish(
            PublishRequest::new(stream.clone(), topic.clone())
                .message(OutgoingMessage::new(&b"late"[..])),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::NotConnected), "{err:?}");
    h.finish().await;
}
