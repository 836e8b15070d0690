//! The fetch that runs while a batch is handed out (`Subscription::prefetch`) and the
//! seeks made while it is in flight (`Subscription::drop_stale`), against a group
//! member that serves its partitions from memory.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use rustok_iggy_connector::{
    Assignment, ConnectorError, GroupConsumer, GroupName, Headers, ReceivedMessage,
};
use tokio::sync::{Notify, mpsc, oneshot};

use super::{Subscription, SubscriptionOptions, Undecided};
use crate::decode::{DecodeFailure, DecodedInfo, Decoder};
use crate::error::Error;
use crate::retry::Backoff;

/// Longest wait for something the test expects to happen.
const WAIT: Duration = Duration::from_secs(5);

/// What one poll of the fake did.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Polled {
    /// Its `max`.
    max: u32,
    /// The (partition, offset) it read, in order.
    read: Vec<(u32, u64)>,
}

#[derive(Debug, Default)]
struct State {
    /// Per partition, how many messages it holds (offsets `0..len`).
    logs: BTreeMap<u32, u64>,
    /// Per partition, the next offset a poll reads.
    cursor: BTreeMap<u32, u64>,
    assignment: Assignment,
    /// Polls so far.
    polls: usize,
    /// Poll number n (1-based) waits for its gate after reading and before returning.
    gates: HashMap<usize, oneshot::Receiver<()>>,
    /// What the test settled, before it settled it.
    settled: BTreeSet<(u32, u64)>,
    /// Every commit, in order.
    commits: Vec<(u32, u64)>,
    /// Commits that passed an offset the test had not settled.
    early: Vec<(u32, u64)>,
    /// Messages polls returned so far.
    read_total: usize,
    /// When set, a poll whose `max` with what was read and not settled passes this
    /// limit is recorded in `over`: (unsettled, max).
    limit: Option<usize>,
    over: Vec<(usize, u32)>,
}

/// A group member serving `logs` from memory: a poll reads from each owned partition's
/// cursor (seeks move the cursor) and reports what it read on a channel.
struct MemberFake {
    group: GroupName,
    reads_ahead: bool,
    state: Mutex<State>,
    /// New messages or a seek: a waiting poll looks again.
    wake: Notify,
    polled: mpsc::UnboundedSender<Polled>,
    /// Run (once) by the next call of `assignment`.
    on_assignment: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for MemberFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberFake").finish_non_exhaustive()
    }
}

impl MemberFake {
    fn new(
        partitions: &[(u32, u64)],
        reads_ahead: bool,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Polled>) {
        let (polled, events) = mpsc::unbounded_channel();
        let state = State {
            logs: partitions.iter().copied().collect(),
            cursor: partitions.iter().map(|&(p, _)| (p, 0)).collect(),
            assignment: Assignment {
                generation: 1,
                partitions: partitions.iter().map(|&(p, _)| p).collect(),
            },
            ..State::default()
        };
        let fake = Arc::new(Self {
            group: GroupName::new("g").unwrap(),
            reads_ahead,
            state: Mutex::new(state),
            wake: Notify::new(),
            polled,
            on_assignment: Mutex::new(None),
        });
        (fake, events)
    }

    /// Makes poll number `n` (1-based) wait, after it read, until the returned sender
    /// is used (or dropped).
    fn gate(&self, n: usize) -> oneshot::Sender<()> {
        let (open, gate) = oneshot::channel();
        self.state.lock().unwrap().gates.insert(n, gate);
        open
    }

    fn settled(&self, partition: u32, offset: u64) {
        self.state
            .lock()
            .unwrap()
            .settled
            .insert((partition, offset));
    }

    fn early_commits(&self) -> Vec<(u32, u64)> {
        self.state.lock().unwrap().early.clone()
    }

    fn commits(&self) -> Vec<(u32, u64)> {
        self.state.lock().unwrap().commits.clone()
    }

    fn rebalance(&self, partitions: &[u32]) {
        let mut state = self.state.lock().unwrap();
        state.assignment.generation += 1;
        state.assignment.partitions = partitions.to_vec();
        // A kept partition is read again after its last commit.
        let committed: BTreeMap<u32, u64> = state.commits.iter().copied().collect();
        for &p in partitions {
            let from = committed.get(&p).map_or(0, |&c| c + 1);
            state.cursor.insert(p, from);
        }
        drop(state);
        self.wake.notify_waiters();
    }
}

fn message(partition: u32, offset: u64) -> ReceivedMessage {
    ReceivedMessage {
        partition,
        offset,
        id: (u128::from(partition) << 64) | u128::from(offset + 1),
        timestamp: 0,
        origin_timestamp: 0,
        payload: bytes::Bytes::new(),
        headers: Headers::new(),
        malformed_headers: None,
    }
}

#[async_trait]
impl GroupConsumer for MemberFake {
    fn group(&self) -> &GroupName {
        &self.group
    }

    fn assignment(&self) -> Assignment {
        let hook = self.on_assignment.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        self.state.lock().unwrap().assignment.clone()
    }

    async fn poll(&self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        loop {
            let wake = self.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let (read, gate) = {
                let mut state = self.state.lock().unwrap();
                let unsettled = state.read_total - state.settled.len();
                if state
                    .limit
                    .is_some_and(|limit| unsettled + max as usize > limit)
                {
                    state.over.push((unsettled, max));
                }
                let mut read = Vec::new();
                let owned = state.assignment.partitions.clone();
                for p in owned {
                    let len = state.logs.get(&p).copied().unwrap_or(0);
                    let cursor = state.cursor.entry(p).or_insert(0);
                    while *cursor < len && read.len() < max as usize {
                        read.push((p, *cursor));
                        *cursor += 1;
                    }
                }
                if read.is_empty() {
                    (read, None)
                } else {
                    state.polls += 1;
                    state.read_total += read.len();
                    let n = state.polls;
                    (read, state.gates.remove(&n))
                }
            };
            if read.is_empty() {
                wake.await;
                continue;
            }
            let _ = self.polled.send(Polled {
                max,
                read: read.clone(),
            });
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            return Ok(read.into_iter().map(|(p, o)| message(p, o)).collect());
        }
    }

    fn seek(&self, partition: u32, offset: u64) {
        let mut state = self.state.lock().unwrap();
        if state.assignment.partitions.contains(&partition) {
            state.cursor.insert(partition, offset);
        }
        drop(state);
        self.wake.notify_waiters();
    }

    fn reads_ahead(&self) -> bool {
        self.reads_ahead
    }

    async fn commit(&self, partition: u32, offset: u64) -> Result<(), ConnectorError> {
        let mut state = self.state.lock().unwrap();
        let passed = (0..=offset).any(|o| !state.settled.contains(&(partition, o)));
        if passed {
            state.early.push((partition, offset));
        }
        state.commits.push((partition, offset));
        Ok(())
    }

    async fn leave(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Events are their (partition, offset); `fail` makes the message at that offset of
/// partition 0 fail to decode while it is set.
fn decoder(fail: Option<(u64, Arc<AtomicBool>)>) -> Decoder<(u32, u64)> {
    Arc::new(move |m: &ReceivedMessage| {
        if let Some((offset, failing)) = &fail
            && m.partition == 0
            && m.offset == *offset
            && failing.load(Ordering::SeqCst)
        {
            return Err((DecodeFailure::InvalidHeader { name: "test" }, None));
        }
        Ok((
            (m.partition, m.offset),
            DecodedInfo {
                event_type: Cow::Borrowed("test"),
                schema_version: 1,
                event_id: uuid::Uuid::from_u128(m.id),
            },
        ))
    })
}

fn options(batch_size: u32, max_in_flight: usize) -> SubscriptionOptions {
    SubscriptionOptions {
        batch_size,
        max_in_flight,
        undecided: Undecided::Hold,
        redelivery_backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(1)),
        ..SubscriptionOptions::default()
    }
}

fn subscription(
    fake: &Arc<MemberFake>,
    options: SubscriptionOptions,
    decoder: Decoder<(u32, u64)>,
) -> Subscription<(u32, u64)> {
    Subscription::with_decoder(
        "t".to_owned(),
        Arc::clone(fake) as Arc<dyn GroupConsumer>,
        options,
        decoder,
    )
}

async fn next_poll(events: &mut mpsc::UnboundedReceiver<Polled>) -> Polled {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no poll within the wait")
        .expect("the fake is gone")
}

async fn next<E: Send + 'static>(
    subscription: &mut Subscription<E>,
) -> Result<super::Delivery<E>, Error> {
    tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("no delivery within the wait")
        .expect("the subscription ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_fetch_starts_while_the_batch_is_handed_out() {
    let (fake, mut polls) = MemberFake::new(&[(0, 20)], false);
    let mut subscription = subscription(&fake, options(4, 100), decoder(None));
    let first = next(&mut subscription).await.unwrap();
    assert_eq!(first.info().offset, 0);
    assert_eq!(
        next_poll(&mut polls).await.read,
        vec![(0, 0), (0, 1), (0, 2), (0, 3)]
    );
    // Only the first delivery of the batch was taken: the next fetch runs already.
    let second = next_poll(&mut polls).await;
    assert_eq!(second.read, vec![(0, 4), (0, 5), (0, 6), (0, 7)]);
    assert_eq!(
        subscription.buffer.len(),
        3,
        "the rest of the first batch is still to be handed out"
    );
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetch_asks_only_for_the_room_left_under_max_in_flight() {
    let max_in_flight = 6;
    let (fake, mut polls) = MemberFake::new(&[(0, 100)], false);
    fake.state.lock().unwrap().limit = Some(max_in_flight);
    let mut subscription = subscription(&fake, options(4, max_in_flight), decoder(None));
    // Take deliveries without settling them: what is in flight, buffered and asked
    // for by the fetch never passes max_in_flight (the fake checks at every poll).
    let mut held = Vec::new();
    for _ in 0..max_in_flight {
        held.push(next(&mut subscription).await.unwrap());
    }
    assert_eq!(next_poll(&mut polls).await.max, 4, "the batch size");
    assert_eq!(next_poll(&mut polls).await.max, 2, "the 2 left of 6");
    // Every slot is taken: nothing more is fetched until one comes back.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), subscription.next())
            .await
            .is_err()
    );
    assert!(polls.try_recv().is_err(), "no fetch past max_in_flight");
    // Settled one by one: each slot that comes back is one more message.
    for expected in 6..20 {
        let first = held.remove(0);
        fake.settled(0, first.info().offset);
        first.ack().await.unwrap();
        let delivery = next(&mut subscription).await.unwrap();
        assert_eq!(delivery.info().offset, expected);
        held.push(delivery);
    }
    assert_eq!(
        fake.state.lock().unwrap().over,
        vec![],
        "(unsettled, max) of polls past max_in_flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_prefetch_when_the_connector_reads_ahead() {
    let (fake, mut polls) = MemberFake::new(&[(0, 20)], true);
    let mut subscription = subscription(&fake, options(4, 100), decoder(None));
    let first = next(&mut subscription).await.unwrap();
    assert_eq!(next_poll(&mut polls).await.read.len(), 4);
    assert!(
        subscription.fetch.is_none(),
        "the connector reads ahead itself"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(50), polls.recv())
            .await
            .is_err(),
        "no second poll while the batch is handed out"
    );
    drop(first);
}

/// Takes deliveries and acknowledges them in order until `until` (of partition 0) is
/// acknowledged; returns the offsets delivered.
async fn ack_until(
    fake: &MemberFake,
    subscription: &mut Subscription<(u32, u64)>,
    until: u64,
) -> Vec<u64> {
    let mut delivered = Vec::new();
    loop {
        let delivery = next(subscription).await.unwrap();
        let (partition, offset) = *delivery;
        delivered.push(offset);
        fake.settled(partition, offset);
        delivery.ack().await.unwrap();
        if offset >= until {
            return delivered;
        }
    }
}

/// A subscription (batches of 3) whose first poll reads `first` and whose prefetch
/// reads `second`: offset 0 of partition 0 is delivered and acknowledged, offset 1 fails
/// to decode and is dropped undecided (a hold), then decodes and is delivered again.
/// Returns the subscription and that second delivery of offset 1, not yet settled.
async fn held_at_one(
    fake: &Arc<MemberFake>,
    polls: &mut mpsc::UnboundedReceiver<Polled>,
    first: [(u32, u64); 3],
    second: [(u32, u64); 3],
) -> (Subscription<(u32, u64)>, super::Delivery<(u32, u64)>) {
    let failing = Arc::new(AtomicBool::new(true));
    let mut subscription = subscription(
        fake,
        options(3, 100),
        decoder(Some((1, Arc::clone(&failing)))),
    );
    let zero = next(&mut subscription).await.unwrap();
    assert_eq!(zero.info().offset, 0);
    fake.settled(0, 0);
    zero.ack().await.unwrap();
    assert_eq!(next_poll(polls).await.read, first);
    assert_eq!(next_poll(polls).await.read, second);
    let Err(Error::Decode(error)) = next(&mut subscription).await else {
        panic!("offset 1 fails to decode");
    };
    assert_eq!(error.offset, 1);
    failing.store(false, Ordering::SeqCst);
    drop(error);
    let again = next(&mut subscription).await.unwrap();
    assert_eq!(*again, (0, 1));
    assert_eq!(again.info().attempt, 2);
    (subscription, again)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_that_ends_while_a_prefetch_is_in_flight_loses_nothing() {
    let (fake, mut polls) = MemberFake::new(&[(0, 10)], false);
    // The prefetch (poll 2) reads before the hold ends and returns after its seek.
    let open = fake.gate(2);
    let (mut subscription, again) = held_at_one(
        &fake,
        &mut polls,
        [(0, 0), (0, 1), (0, 2)],
        [(0, 3), (0, 4), (0, 5)],
    )
    .await;
    // Acknowledged: the hold ends, the partition is sought to 2 while the prefetch that
    // read 3..=5 is still in flight.
    fake.settled(0, 1);
    again.ack().await.unwrap();
    assert!(subscription.held_partitions().is_empty());
    open.send(()).unwrap();

    let delivered = ack_until(&fake, &mut subscription, 9).await;
    assert_eq!(
        delivered,
        (2..10).collect::<Vec<_>>(),
        "after the hold, every event once, in order"
    );
    subscription.commit().await.unwrap();
    assert_eq!(
        fake.early_commits(),
        vec![],
        "commits past an unsettled event"
    );
    assert_eq!(fake.commits().last(), Some(&(0, 9)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_that_ends_just_before_a_fetch_is_admitted_loses_nothing() {
    let (fake, mut polls) = MemberFake::new(&[(0, 10)], false);
    let open = fake.gate(2);
    let failing = Arc::new(AtomicBool::new(true));
    let mut subscription = subscription(
        &fake,
        options(3, 100),
        decoder(Some((1, Arc::clone(&failing)))),
    );
    let zero = next(&mut subscription).await.unwrap();
    fake.settled(0, 0);
    zero.ack().await.unwrap();
    assert_eq!(next_poll(&mut polls).await.read.len(), 3);
    assert_eq!(
        next_poll(&mut polls).await.read,
        vec![(0, 3), (0, 4), (0, 5)]
    );
    let Err(Error::Decode(error)) = next(&mut subscription).await else {
        panic!("offset 1 fails to decode");
    };
    failing.store(false, Ordering::SeqCst);
    drop(error);
    let again = next(&mut subscription).await.unwrap();
    assert_eq!(again.info().offset, 1);
    // The held event is acknowledged on another thread while the subscription
    // handles the prefetch's result: after it looked for seeks, before it admits the
    // result (the subscription reads the assignment in between).
    fake.settled(0, 1);
    *fake.on_assignment.lock().unwrap() = Some(Box::new(move || {
        use futures::FutureExt;
        again.ack().now_or_never().unwrap().unwrap();
    }));
    open.send(()).unwrap();

    let delivered = ack_until(&fake, &mut subscription, 9).await;
    assert!(fake.on_assignment.lock().unwrap().is_none(), "the hook ran");
    assert_eq!(
        delivered,
        (2..10).collect::<Vec<_>>(),
        "after the hold, every event once, in order"
    );
    subscription.commit().await.unwrap();
    assert_eq!(
        fake.early_commits(),
        vec![],
        "commits past an unsettled event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_with_a_prefetched_batch_commits_only_what_was_settled() {
    let (fake, mut polls) = MemberFake::new(&[(0, 10)], false);
    let mut subscription = subscription(&fake, options(3, 100), decoder(None));
    for expected in 0..2 {
        let delivery = next(&mut subscription).await.unwrap();
        assert_eq!(delivery.info().offset, expected);
        fake.settled(0, expected);
        delivery.ack().await.unwrap();
    }
    assert_eq!(next_poll(&mut polls).await.read.len(), 3);
    // The prefetch has read 3..=5 and returned: its result waits in the fetch.
    assert_eq!(
        next_poll(&mut polls).await.read,
        vec![(0, 3), (0, 4), (0, 5)]
    );
    subscription.close().await.unwrap();
    assert_eq!(fake.commits().last(), Some(&(0, 1)));
    assert_eq!(
        fake.early_commits(),
        vec![],
        "commits past an unsettled event"
    );

    // Nothing is lost: the next member of the group starts after the commit.
    fake.rebalance(&[0]);
    let mut subscription = self::subscription(&fake, options(3, 100), decoder(None));
    assert_eq!(
        ack_until(&fake, &mut subscription, 9).await,
        (2..10).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_with_a_prefetched_batch_commits_only_what_was_settled() {
    let (fake, mut polls) = MemberFake::new(&[(0, 10)], false);
    let mut subscription = subscription(&fake, options(3, 100), decoder(None));
    let delivery = next(&mut subscription).await.unwrap();
    fake.settled(0, 0);
    delivery.ack().await.unwrap();
    // Taken, not settled: delivered again.
    let taken = next(&mut subscription).await.unwrap();
    assert_eq!(taken.info().offset, 1);
    assert_eq!(next_poll(&mut polls).await.read.len(), 3);
    assert_eq!(next_poll(&mut polls).await.read.len(), 3);
    drop(subscription);
    drop(taken);
    assert_eq!(fake.commits(), vec![(0, 0)]);
    fake.rebalance(&[0]);
    let mut subscription = self::subscription(&fake, options(3, 100), decoder(None));
    assert_eq!(
        ack_until(&fake, &mut subscription, 9).await,
        (1..10).collect::<Vec<_>>()
    );
    assert_eq!(fake.early_commits(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_while_a_prefetch_is_in_flight_drops_the_lost_partition_and_keeps_order() {
    let (fake, mut polls) = MemberFake::new(&[(0, 6), (1, 6)], false);
    let open = fake.gate(2);
    let mut subscription = subscription(&fake, options(4, 100), decoder(None));
    let first = next(&mut subscription).await.unwrap();
    assert_eq!(*first, (0, 0));
    fake.settled(0, 0);
    first.ack().await.unwrap();
    assert_eq!(next_poll(&mut polls).await.read.len(), 4);
    assert_eq!(
        next_poll(&mut polls).await.read,
        vec![(0, 4), (0, 5), (1, 0), (1, 1)],
        "the prefetch read both partitions"
    );
    // Partition 1 goes to another member; partition 0 is read again after its
    // commit. The prefetch returns what it read before.
    fake.rebalance(&[0]);
    open.send(()).unwrap();
    let mut delivered = Vec::new();
    loop {
        let delivery = next(&mut subscription).await.unwrap();
        let (partition, offset) = *delivery;
        delivered.push((partition, offset));
        fake.settled(partition, offset);
        delivery.ack().await.unwrap();
        if (partition, offset) == (0, 5) {
            break;
        }
    }
    assert_eq!(
        delivered,
        (1..6).map(|o| (0, o)).collect::<Vec<_>>(),
        "partition 0 once and in order, nothing of the lost partition 1"
    );
    subscription.commit().await.unwrap();
    assert_eq!(subscription.in_flight(), 0);
    assert_eq!(fake.commits().last(), Some(&(0, 5)));
    assert_eq!(fake.early_commits(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_prefetch_keeps_what_it_read_of_the_partitions_not_sought() {
    let (fake, mut polls) = MemberFake::new(&[(0, 5), (1, 5)], false);
    let open = fake.gate(2);
    let (mut subscription, again) = held_at_one(
        &fake,
        &mut polls,
        [(0, 0), (0, 1), (0, 2)],
        [(0, 3), (0, 4), (1, 0)],
    )
    .await;
    fake.settled(0, 1);
    again.ack().await.unwrap();
    open.send(()).unwrap();

    let mut delivered: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    while delivered.values().map(Vec::len).sum::<usize>() < 8 {
        let delivery = next(&mut subscription).await.unwrap();
        let (partition, offset) = *delivery;
        delivered.entry(partition).or_default().push(offset);
        fake.settled(partition, offset);
        delivery.ack().await.unwrap();
    }
    assert_eq!(delivered[&0], vec![2, 3, 4], "partition 0 from the seek");
    assert_eq!(
        delivered[&1],
        vec![0, 1, 2, 3, 4],
        "partition 1, not sought, keeps what the prefetch read"
    );
    subscription.commit().await.unwrap();
    assert_eq!(fake.early_commits(), vec![]);
    assert_eq!(subscription.in_flight(), 0);
}
