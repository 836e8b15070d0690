//! A remote group member reads with the assignment it saw last and reads one poll
//! ahead: the server's fence keeps a member from committing a partition it lost, and
//! what it read ahead of a partition it lost is never committed by it.

use std::collections::BTreeSet;

use rustok_iggy_connector::{ConnectorError, ReceivedMessage, StartPosition};
use tests::conformance::{Harness, Target, collect, committed, fill, group, positions};
use tests::within;

async fn listener() -> Harness {
    Harness::open(Target::Listener)
        .await
        .expect("the embedded listener is always available")
}

/// `a` owned every partition when it last asked; `b` joined since. `a` commits on
/// `b`'s partition with that out-of-date view: the server refuses it, nothing is
/// stored, and `a` sees its new assignment afterwards.
#[tokio::test]
async fn a_commit_on_a_partition_lost_since_the_last_poll_is_fenced() {
    let mut h = listener().await;
    let stream = h.stream("fence");
    let topic = h.topic(&stream, "work", 2).await;
    fill(h.connector.as_ref(), &stream, &topic, 2, 10).await;
    let g = group("fenced");
    let a = within(
        "join a",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    let got = collect(a.as_ref(), 20).await;
    assert_eq!(positions(&got).len(), 20);

    let b = within(
        "join b",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    let lost = b.assignment().partitions;
    assert_eq!(lost.len(), 1, "{lost:?}");
    let lost = lost[0];
    assert!(
        a.assignment().partitions.contains(&lost),
        "a has not asked since b joined: {:?}",
        a.assignment()
    );

    let fenced = within("a commits the lost partition", a.commit(lost, 9)).await;
    assert!(
        matches!(fenced, Err(ConnectorError::Fenced { partition, .. }) if partition == lost),
        "{fenced:?}"
    );
    assert_eq!(
        committed(h.connector.as_ref(), &stream, &topic, &g).await,
        vec![None, None],
        "nothing was stored"
    );
    assert!(
        !a.assignment().partitions.contains(&lost),
        "the refusal made a ask again: {:?}",
        a.assignment()
    );

    // b starts the partition at the beginning: nothing of it was committed.
    let got = collect(b.as_ref(), 10).await;
    assert_eq!(
        got.iter()
            .map(|m| (m.partition, m.offset))
            .collect::<Vec<_>>(),
        (0..10).map(|o| (lost, o)).collect::<Vec<_>>()
    );
    within("b commits", b.commit(lost, 9)).await.unwrap();
    within("a leaves", a.leave()).await.unwrap();
    within("b leaves", b.leave()).await.unwrap();
    h.finish().await;
}

/// `a` reads full polls, so the next one is read ahead; `b` joins meanwhile and takes
/// a partition. Whatever `a` still gets of it (read ahead before it knew) is refused
/// when `a` commits it, and `b` gets the whole partition from the start: nothing lost,
/// nothing committed by the member that lost it.
#[tokio::test]
async fn what_was_read_ahead_of_a_lost_partition_is_never_committed_by_the_loser() {
    const PER_PARTITION: u64 = 400;
    let mut h = listener().await;
    let stream = h.stream("ahead");
    let topic = h.topic(&stream, "work", 2).await;
    fill(h.connector.as_ref(), &stream, &topic, 2, PER_PARTITION).await;
    let g = group("readers-ahead");
    let a = within(
        "join a",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    assert!(a.reads_ahead());
    let first = within("a polls a full batch", a.poll(100)).await.unwrap();
    assert_eq!(first.len(), 100, "a full poll: the next one is read ahead");

    let b = within(
        "join b",
        h.connector
            .join_group(&stream, &topic, &g, StartPosition::Earliest),
    )
    .await
    .unwrap();
    let lost = b.assignment().partitions;
    assert_eq!(lost.len(), 1, "{lost:?}");
    let lost = lost[0];
    let kept = 1 - lost;

    // a reads its own partition to the end, and commits everything it got.
    let mut of_kept = BTreeSet::new();
    let mut of_lost: Vec<ReceivedMessage> = Vec::new();
    for message in first {
        if message.partition == kept {
            of_kept.insert(message.offset);
        } else {
            of_lost.push(message);
        }
    }
    while (of_kept.len() as u64) < PER_PARTITION {
        let batch = within("a polls", a.poll(100)).await.unwrap();
        for message in batch {
            if message.partition == kept {
                of_kept.insert(message.offset);
            } else {
                of_lost.push(message);
            }
        }
    }
    assert_eq!(of_kept, (0..PER_PARTITION).collect::<BTreeSet<_>>());
    within("a commits its partition", a.commit(kept, PER_PARTITION - 1))
        .await
        .unwrap();
    println!(
        "a got {} messages of the partition it lost (read before it knew)",
        of_lost.len()
    );
    for message in &of_lost {
        let refused = within(
            "a commits the lost partition",
            a.commit(lost, message.offset),
        )
        .await;
        assert!(
            matches!(refused, Err(ConnectorError::Fenced { partition, .. }) if partition == lost),
            "offset {}: {refused:?}",
            message.offset
        );
    }
    let mut expected = vec![None, None];
    expected[kept as usize] = Some(PER_PARTITION - 1);
    assert_eq!(
        committed(h.connector.as_ref(), &stream, &topic, &g).await,
        expected,
        "the lost partition has no commit of a"
    );

    // b gets the whole partition, from the start.
    let got = collect(b.as_ref(), PER_PARTITION as usize).await;
    assert_eq!(
        got.iter()
            .map(|m| (m.partition, m.offset))
            .collect::<Vec<_>>(),
        (0..PER_PARTITION).map(|o| (lost, o)).collect::<Vec<_>>()
    );
    within("a leaves", a.leave()).await.unwrap();
    within("b leaves", b.leave()).await.unwrap();
    h.finish().await;
}
