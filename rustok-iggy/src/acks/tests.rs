//! The bookkeeping rules, one at a time.

use super::*;
use crate::acks::held::held_in;

fn message(partition: u32, offset: u64) -> ReceivedMessage {
    ReceivedMessage {
        partition,
        offset,
        id: u128::from(offset) + 1,
        timestamp: 0,
        origin_timestamp: 0,
        payload: bytes::Bytes::new(),
        headers: rustok_iggy_connector::Headers::new(),
        malformed_headers: None,
    }
}

fn admit(acks: &AckState, messages: &[(u32, u64)]) -> Vec<(ReceivedMessage, Ticket)> {
    let mut out = VecDeque::new();
    acks.admit(
        messages.iter().map(|&(p, o)| message(p, o)).collect(),
        &[0, 1, 2],
        &mut out,
    );
    for _ in 0..out.len() {
        assert!(acks.try_take_slot(usize::MAX));
    }
    out.into_iter().collect()
}

fn points(acks: &AckState) -> Vec<(u32, u64)> {
    let mut points = acks.commit_points();
    points.sort_unstable();
    points
}

#[test]
fn commits_only_the_contiguous_settled_prefix() {
    let acks = AckState::new("t", "g", None);
    let d = admit(&acks, &[(0, 0), (0, 1), (0, 2), (0, 3)]);
    acks.settle(&d[1].1);
    acks.settle(&d[2].1);
    assert_eq!(points(&acks), vec![], "0 is still outstanding");
    acks.settle(&d[0].1);
    assert_eq!(points(&acks), vec![(0, 2)]);
    acks.record_stored(0, 2);
    assert_eq!(points(&acks), vec![]);
    acks.settle(&d[3].1);
    assert_eq!(points(&acks), vec![(0, 3)]);
    assert_eq!(acks.in_flight(), 0);
}

#[test]
fn partitions_are_independent_and_resume_after_their_start() {
    let acks = AckState::new("t", "g", None);
    let d = admit(&acks, &[(0, 10), (1, 5), (1, 6)]);
    acks.settle(&d[1].1);
    assert_eq!(points(&acks), vec![(1, 5)]);
    assert_eq!(acks.in_flight(), 2);
}

#[test]
fn copies_read_again_after_a_rebalance_are_not_admitted_twice() {
    let acks = AckState::new("t", "g", None);
    let first = admit(&acks, &[(0, 0), (0, 1), (0, 2)]);
    // The connector restarts after the last commit (none): 0..=2 come again.
    let again = admit(&acks, &[(0, 0), (0, 1), (0, 2), (0, 3)]);
    assert_eq!(
        again.iter().map(|(m, _)| m.offset).collect::<Vec<_>>(),
        vec![3]
    );
    for (_, ticket) in first.iter().chain(&again) {
        acks.settle(ticket);
    }
    assert_eq!(acks.in_flight(), 0, "every slot given back exactly once");
    assert_eq!(points(&acks), vec![(0, 3)]);
}

#[test]
fn a_jump_means_another_member_handled_what_lies_before() {
    let acks = AckState::new("t", "g", None);
    let old = admit(&acks, &[(0, 0), (0, 1)]);
    // The partition went away and came back; the other owner committed 9.
    let new = admit(&acks, &[(0, 10)]);
    assert_eq!(points(&acks), vec![(0, 9)]);
    acks.settle(&new[0].1);
    assert_eq!(points(&acks), vec![(0, 10)]);
    for (_, ticket) in &old {
        acks.settle(ticket);
    }
    assert_eq!(acks.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn requeued_deliveries_hold_back_the_commit() {
    let acks = AckState::new("t", "g", None);
    let mut d = admit(&acks, &[(0, 0), (0, 1)]);
    let (m0, t0) = d.remove(0);
    acks.requeue(m0, t0, 2, Duration::from_millis(50));
    acks.settle(&d[0].1);
    assert_eq!(points(&acks), vec![], "offset 0 waits for its redelivery");
    let now = Instant::now();
    let work = acks.queue_work(None).unwrap();
    assert!(work.due.is_none());
    let due = work.next_due.unwrap();
    assert!(due > now);
    assert!(acks.queue_work(Some(due)).is_none(), "not due yet");
    tokio::time::advance(Duration::from_millis(50)).await;
    let again = acks.queue_work(Some(due)).unwrap().due.unwrap();
    assert_eq!((again.message.offset, again.attempt), (0, 2));
    assert!(acks.try_take_slot(10));
    acks.settle(&again.ticket);
    assert_eq!(points(&acks), vec![(0, 1)]);
    assert_eq!(acks.in_flight(), 0);
}

#[test]
fn a_held_partition_admits_nothing_after_it_until_the_hold_ends() {
    let acks = AckState::new("t-held", "g", None);
    let mut d = admit(&acks, &[(0, 0), (0, 1), (0, 2)]);
    let (m1, t1) = d.remove(1);
    acks.settle(&d[0].1);
    acks.hold(m1, t1, 1, "newer schema version", Duration::ZERO);
    assert!(d[1].1.is_superseded(), "2 is after the held offset");
    assert_eq!(held_in("t-held", "g").len(), 1);
    assert_eq!(acks.held_partitions()[0].offset, 1);
    assert!(
        admit(&acks, &[(0, 3)]).is_empty(),
        "nothing after the hold is admitted"
    );
    assert_eq!(points(&acks), vec![(0, 0)]);
    let held = acks.queue_work(None).unwrap().due.unwrap();
    assert_eq!(held.message.offset, 1);
    assert!(acks.try_take_slot(10));
    // The application skips it: the hold ends and the partition is read again
    // right after it.
    acks.settle(&held.ticket);
    assert!(held_in("t-held", "g").is_empty());
    let work = acks.queue_work(None).unwrap();
    assert_eq!(work.seeks, vec![(0, 2)]);
    let again = admit(&acks, &[(0, 2), (0, 3)]);
    assert_eq!(again.len(), 2);
    for (_, ticket) in &again {
        acks.settle(ticket);
    }
    acks.settle(&d[1].1);
    assert_eq!(points(&acks), vec![(0, 3)]);
    assert_eq!(acks.in_flight(), 0);
}

#[test]
fn a_lost_partition_is_forgotten_but_its_slots_come_back() {
    let acks = AckState::new("t", "g", None);
    let d = admit(&acks, &[(0, 0), (1, 0)]);
    acks.forget_partition(0);
    assert!(d[0].1.is_superseded());
    acks.settle(&d[0].1);
    acks.settle(&d[1].1);
    assert_eq!(points(&acks), vec![(1, 0)]);
    assert_eq!(acks.in_flight(), 0);
}

#[test]
fn slots_are_a_hard_limit() {
    let acks = AckState::new("t", "g", None);
    assert!(acks.try_take_slot(2));
    assert!(acks.try_take_slot(2));
    assert!(!acks.try_take_slot(2));
    acks.give_back_slot();
    assert!(acks.try_take_slot(2));
}

#[test]
fn what_is_fetched_between_the_end_of_a_hold_and_its_seek_is_not_admitted() {
    let acks = AckState::new("t-held-seek", "g", None);
    let mut d = admit(&acks, &[(0, 0), (0, 1), (0, 2)]);
    let (m1, t1) = d.remove(1);
    acks.settle(&d[0].1);
    acks.hold(m1, t1, 1, "undecided", Duration::ZERO);
    assert!(admit(&acks, &[(0, 3)]).is_empty(), "held");
    let held = acks.queue_work(None).unwrap().due.unwrap();
    assert!(acks.try_take_slot(10));
    // The hold ends; the subscription has not taken its seek yet when a fetch read
    // while it was held (from past the held offset) comes back.
    acks.settle(&held.ticket);
    assert!(
        admit(&acks, &[(0, 4), (0, 5)]).is_empty(),
        "read before the seek: 2 and 3 would be skipped"
    );
    assert_eq!(points(&acks), vec![(0, 1)], "the commit stays before 2");
    assert_eq!(acks.queue_work(None).unwrap().seeks, vec![(0, 2)]);
    let again = admit(&acks, &[(0, 2), (0, 3), (0, 4)]);
    assert_eq!(again.len(), 3);
    for (_, ticket) in &again {
        acks.settle(ticket);
    }
    acks.settle(&d[1].1);
    assert_eq!(points(&acks), vec![(0, 4)]);
    assert_eq!(acks.in_flight(), 0);
}
