//! Replay bounds on both connectors: a finite replay (`ReplayUntil::Head` or
//! `ReplayUntil::Timestamp`) always ends, also when it starts at, or past, the head of
//! a partition, or at a time after the last event. With `IGGY_TEST_ADDRESS` set, also
//! against that server.

use std::sync::Arc;

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy::{ReplayFrom, ReplayUntil};
use serde::{Deserialize, Serialize};
use tests::conformance::Harness;
use tests::within;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "ledger", key = account)]
struct Entry {
    account: String,
    seq: u64,
}

async fn ledger(h: &mut Harness, case: &str, partitions: u32) -> Transport<Entry> {
    let stream = h.stream(case);
    Transport::new(
        Arc::clone(&h.connector),
        TransportOptions {
            stream,
            partitions,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap()
}

/// Collects a replay; fails the test if it does not end.
async fn collect(
    transport: &Transport<Entry>,
    from: ReplayFrom,
    until: ReplayUntil,
) -> Vec<(u32, u64)> {
    let replay = transport.replay(from, until).await.unwrap();
    let mut seen: Vec<(u32, u64)> = within(
        &format!("the replay {from:?} .. {until:?} ends"),
        replay.collect::<Vec<_>>(),
    )
    .await
    .into_iter()
    .map(|r| {
        let r = r.unwrap();
        (r.info.partition, r.info.offset)
    })
    .collect();
    seen.sort_unstable();
    seen
}

/// Publishes `count` entries of `account` (one partition); returns the receipts.
async fn publish(
    transport: &Transport<Entry>,
    account: &str,
    count: u64,
) -> Vec<rustok_iggy::Receipt> {
    let mut receipts = Vec::new();
    for seq in 0..count {
        receipts.push(
            transport
                .publish(&Entry {
                    account: account.into(),
                    seq,
                })
                .await
                .unwrap(),
        );
    }
    receipts
}

async fn from_the_head_ends_empty(mut h: Harness) {
    let ledger = ledger(&mut h, "head", 1).await;
    publish(&ledger, "a", 3).await;
    let seen = collect(&ledger, ReplayFrom::Offset(3), ReplayUntil::Head).await;
    assert_eq!(seen, vec![], "{:?}", h.target);
    let seen = collect(
        &ledger,
        ReplayFrom::Offset(3),
        ReplayUntil::Timestamp(u64::MAX),
    )
    .await;
    assert_eq!(seen, vec![], "{:?}", h.target);
    h.finish().await;
}

async fn past_the_head_ends_empty(mut h: Harness) {
    let ledger = ledger(&mut h, "past", 1).await;
    publish(&ledger, "a", 3).await;
    let seen = collect(&ledger, ReplayFrom::Offset(1_000), ReplayUntil::Head).await;
    assert_eq!(seen, vec![], "{:?}", h.target);
    h.finish().await;
}

async fn from_a_time_after_the_last_event_ends_empty(mut h: Harness) {
    let ledger = ledger(&mut h, "late", 1).await;
    let receipts = publish(&ledger, "a", 3).await;
    let last = collect(&ledger, ReplayFrom::Beginning, ReplayUntil::Head).await;
    assert_eq!(last.len(), receipts.len());
    let newest = within(
        "replay",
        ledger
            .replay(ReplayFrom::Beginning, ReplayUntil::Head)
            .await
            .unwrap()
            .collect::<Vec<_>>(),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap().info.timestamp)
    .max()
    .unwrap();
    let seen = collect(
        &ledger,
        ReplayFrom::Timestamp(newest + 1),
        ReplayUntil::Head,
    )
    .await;
    assert_eq!(seen, vec![], "{:?}", h.target);
    h.finish().await;
}

/// Partitions that hold events from the start offset on replay them; those whose head
/// is at or below it end at once; empty partitions too.
async fn mixed_partitions_end_after_what_they_hold(mut h: Harness) {
    let ledger = ledger(&mut h, "mixed", 3).await;
    // Three accounts, one per partition (found by their routing), with 5, 2 and 0
    // events.
    let mut by_partition: [Option<String>; 3] = [None, None, None];
    let mut n = 0;
    while by_partition.iter().any(Option::is_none) {
        let account = format!("acct-{n}");
        let partition = rustok_iggy::partition_for(account.as_bytes(), 3) as usize;
        by_partition[partition].get_or_insert(account);
        n += 1;
    }
    let [Some(five), Some(two), Some(_empty)] = by_partition.clone() else {
        unreachable!()
    };
    let five_at = publish(&ledger, &five, 5).await[0].partition;
    publish(&ledger, &two, 2).await;
    let seen = collect(&ledger, ReplayFrom::Offset(3), ReplayUntil::Head).await;
    assert_eq!(seen, vec![(five_at, 3), (five_at, 4)], "{:?}", h.target);
    h.finish().await;
}

/// A replay that started at the head ends even when events are published while it
/// runs: the head is the one of its start.
async fn events_published_after_the_start_are_not_waited_for(mut h: Harness) {
    let ledger = ledger(&mut h, "moving", 1).await;
    publish(&ledger, "a", 2).await;
    let replay = ledger
        .replay(ReplayFrom::Offset(2), ReplayUntil::Head)
        .await
        .unwrap();
    publish(&ledger, "a", 2).await;
    let seen = within("the replay ends", replay.collect::<Vec<_>>()).await;
    assert!(seen.is_empty(), "{:?}: {seen:?}", h.target);
    h.finish().await;
}

tests::both_modes!(
    from_the_head_ends_empty,
    past_the_head_ends_empty,
    from_a_time_after_the_last_event_ends_empty,
    mixed_partitions_end_after_what_they_hold,
    events_published_after_the_start_are_not_waited_for,
);
