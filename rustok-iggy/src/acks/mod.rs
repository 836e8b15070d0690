//! Acknowledgement bookkeeping of a subscription: which deliveries are outstanding,
//! which offset may be committed, what must be delivered again, which partitions are
//! held.
//!
//! The bookkeeping is per batch, not per event. Each fetch admits its messages into
//! one [`Chunk`] per partition: a bitmap of settled offsets. A delivery settles by
//! setting its bit and giving back its in-flight slot (atomics only, no lock); the
//! committer walks the chunks of each partition under the lock, once per commit round,
//! to find how far the contiguous settled prefix reaches.
//!
//! The rules:
//! - a partition's commit point (its *floor*) only passes offsets that are settled
//!   (handled, explicitly skipped, or confirmed in the dead-letter topic);
//! - every delivery handed out holds one in-flight slot until it is settled, nacked or
//!   dropped, exactly once, whatever happens to its partition meanwhile (a rebalance,
//!   a hold): the count never drifts;
//! - a rebalance makes the connector read kept partitions again from their last
//!   commit; what this subscription already admitted is not admitted twice (the
//!   deliveries in hand settle it), and a jump past the expected offset means that
//!   another member handled (and committed) what lies before it;
//! - a held partition admits nothing after its held offset; when the hold ends, the
//!   partition is read again from there (a seek).

mod commit;
mod held;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::task::AtomicWaker;
use rustok_iggy_connector::ReceivedMessage;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use held::HeldPartition;
pub(crate) use held::held_in;

/// `held_at` of a partition that is not held.
const NOT_HELD: u64 = u64::MAX;

/// What the deliveries of one partition read without a lock.
#[derive(Debug)]
pub(crate) struct PartitionFlags {
    partition: u32,
    /// This member lost the partition: its deliveries belong to the new owner.
    retired: AtomicBool,
    /// The offset the partition is held at ([`NOT_HELD`] when it is not).
    held_at: AtomicU64,
}

/// Settled flags of offsets `first..first + len` of one partition, admitted by one
/// fetch.
#[derive(Debug)]
pub(crate) struct Chunk {
    flags: Arc<PartitionFlags>,
    first: u64,
    bits: Box<[AtomicU64]>,
}

impl Chunk {
    fn new(flags: Arc<PartitionFlags>, first: u64, len: u32) -> Self {
        Self {
            flags,
            first,
            bits: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Sets the flag of `index`; returns whether it was unset.
    fn settle(&self, index: u32) -> bool {
        let bit = 1u64 << (index % 64);
        match self.bits.get((index / 64) as usize) {
            Some(word) => word.fetch_or(bit, Ordering::SeqCst) & bit == 0,
            None => false,
        }
    }

    /// The first unsettled index below `len`.
    fn first_unsettled(&self, len: u32) -> Option<u32> {
        for (w, word) in self.bits.iter().enumerate() {
            let base = u32::try_from(w * 64).unwrap_or(u32::MAX);
            if base >= len {
                return None;
            }
            let unset = !word.load(Ordering::SeqCst);
            if unset != 0 {
                let index = base + unset.trailing_zeros();
                return (index < len).then_some(index);
            }
        }
        None
    }
}

/// The place of one delivery in its partition's bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    chunk: Arc<Chunk>,
    index: u32,
}

impl Ticket {
    /// The delivery's offset.
    pub(crate) fn offset(&self) -> u64 {
        self.chunk.first + u64::from(self.index)
    }

    /// Whether the delivery left this subscription's flow: its partition went to
    /// another member, or is held at an earlier offset (the delivery is read again
    /// once the hold ends).
    pub(crate) fn is_superseded(&self) -> bool {
        let flags = &self.chunk.flags;
        flags.retired.load(Ordering::SeqCst) || flags.held_at.load(Ordering::SeqCst) < self.offset()
    }

    fn is_held_here(&self) -> bool {
        self.chunk.flags.held_at.load(Ordering::SeqCst) == self.offset()
    }

    /// The delivery's partition.
    pub(crate) fn partition(&self) -> u32 {
        self.chunk.flags.partition
    }

    /// Whether its offset is settled (a late acknowledgement of an expired delivery
    /// can settle it while a copy waits to be delivered again).
    fn is_settled(&self) -> bool {
        let bit = 1u64 << (self.index % 64);
        self.chunk
            .bits
            .get((self.index / 64) as usize)
            .is_some_and(|word| word.load(Ordering::SeqCst) & bit != 0)
    }
}

/// [`Lease::state`]: handed out, neither settled nor expired.
const LEASE_OUT: u8 = 0;
/// [`Lease::state`]: settled, nacked or dropped by its holder.
const LEASE_DONE: u8 = 1;
/// [`Lease::state`]: its acknowledgement deadline passed; a copy is delivered again.
const LEASE_EXPIRED: u8 = 2;

/// The acknowledgement deadline of one delivery (see
/// [`crate::SubscriptionOptions::ack_wait`]), shared by its handle and the
/// subscription's expiry queue.
#[derive(Debug)]
pub(crate) struct Lease {
    state: AtomicU8,
    /// Nanoseconds after [`AckState::epoch`].
    deadline: AtomicU64,
}

impl Lease {
    /// Ends the lease on behalf of its holder; `false` when it had expired first (the
    /// holder's delivery no longer holds an in-flight slot, and a copy of it is
    /// delivered again).
    pub(crate) fn finish(&self) -> bool {
        self.state
            .compare_exchange(LEASE_OUT, LEASE_DONE, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Whether the deadline passed before the holder settled it.
    pub(crate) fn is_expired(&self) -> bool {
        self.state.load(Ordering::SeqCst) == LEASE_EXPIRED
    }
}

/// A handed-out delivery whose deadline is watched.
#[derive(Debug)]
struct Expiry {
    /// Its place in the queue: the deadline when it was (re)queued; the lease's own
    /// deadline is never earlier (an extension only moves it later).
    at: Instant,
    lease: Arc<Lease>,
    message: ReceivedMessage,
    ticket: Ticket,
    attempt: u32,
}

#[derive(Debug)]
struct Track {
    flags: Arc<PartitionFlags>,
    /// Admitted chunks in offset order, with the length each still counts for.
    chunks: VecDeque<(Arc<Chunk>, u32)>,
    /// Every offset up to this one is done (settled, or handled by an earlier owner).
    floor: Option<u64>,
    /// The last offset this subscription committed (or the one it started after).
    stored: Option<u64>,
    /// The next offset expected from the connector.
    next: u64,
    hold: Option<HeldPartition>,
}

impl Track {
    /// A partition first read at `first`: everything before it was handled earlier.
    fn new(partition: u32, first: u64) -> Self {
        let floor = first.checked_sub(1);
        Self {
            flags: Arc::new(PartitionFlags {
                partition,
                retired: AtomicBool::new(false),
                held_at: AtomicU64::new(NOT_HELD),
            }),
            chunks: VecDeque::new(),
            floor,
            stored: floor,
            next: first,
            hold: None,
        }
    }

    /// Moves the floor over every settled offset at its front.
    fn advance(&mut self) {
        while let Some((chunk, len)) = self.chunks.front() {
            let len = *len;
            if len == 0 {
                self.chunks.pop_front();
                continue;
            }
            let last = chunk.first + u64::from(len) - 1;
            if self.floor.is_some_and(|floor| last <= floor) {
                self.chunks.pop_front();
                continue;
            }
            match chunk.first_unsettled(len) {
                None => {
                    self.floor = Some(last);
                    self.chunks.pop_front();
                }
                Some(index) => {
                    let below = (chunk.first + u64::from(index)).checked_sub(1);
                    self.floor = self.floor.max(below);
                    return;
                }
            }
        }
    }

    fn owns(&self, ticket: &Ticket) -> bool {
        Arc::ptr_eq(&self.flags, &ticket.chunk.flags)
    }
}

/// A message waiting to be delivered again.
#[derive(Debug)]
pub(crate) struct Redelivery {
    pub(crate) due: Instant,
    pub(crate) message: ReceivedMessage,
    pub(crate) ticket: Ticket,
    pub(crate) attempt: u32,
}

/// What the subscription must do after looking at the queue.
#[derive(Debug, Default)]
pub(crate) struct QueueWork {
    /// Partitions to read again from an offset (a hold ended).
    pub(crate) seeks: Vec<(u32, u64)>,
    /// A redelivery that is due.
    pub(crate) due: Option<Redelivery>,
    /// When the next redelivery or acknowledgement deadline will be due.
    pub(crate) next_due: Option<Instant>,
    /// Deliveries whose acknowledgement deadline passed now (each is delivered again).
    pub(crate) expired: u64,
}

#[derive(Debug, Default)]
struct Inner {
    tracks: HashMap<u32, Track>,
    /// Sorted by due time.
    redeliver: VecDeque<Redelivery>,
    /// Acknowledgement deadlines, sorted by [`Expiry::at`].
    leases: VecDeque<Expiry>,
    seeks: Vec<(u32, u64)>,
    closed: bool,
    /// A commit round is running (one at a time: committed offsets only grow).
    committing: bool,
    /// Run another round before leaving (asked for while one was running).
    again: bool,
}

/// Shared between a subscription, its deliveries and its committer.
#[derive(Debug)]
pub(crate) struct AckState {
    /// Unique in the process (names this subscription's held partitions).
    id: u64,
    topic: String,
    group: String,
    inner: Mutex<Inner>,
    in_flight: AtomicUsize,
    /// The subscription waits for an in-flight slot.
    blocked: AtomicBool,
    /// Wakes the subscription.
    pub(crate) waker: AtomicWaker,
    /// Redeliveries or seeks were queued since the subscription last looked.
    changed: AtomicBool,
    /// Something was settled since the last commit round started.
    commit_requested: AtomicBool,
    /// Wakes the background committer.
    pub(crate) commit_wake: Notify,
    /// A commit round ended.
    round_done: Notify,
    /// The acknowledgement deadline of a delivery (`None`: none).
    ack_wait: Option<Duration>,
    /// What lease deadlines count from.
    epoch: Instant,
}

/// Where an acknowledgement stands with respect to the committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committed {
    /// The group's committed offset covers it.
    Covered,
    /// Not yet (a commit is pending, or an earlier delivery is outstanding).
    Pending,
    /// The partition is no longer this member's: the new owner delivers it again.
    Gone,
}

impl AckState {
    /// Sets the held-partition gauge and the process-wide list [`held_in`] reads.
    fn publish_hold(&self, hold: HeldPartition, held: bool) {
        held::publish(self.id, &self.topic, &self.group, hold, held);
    }

    pub(crate) fn new(topic: &str, group: &str, ack_wait: Option<Duration>) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            topic: topic.to_owned(),
            group: group.to_owned(),
            inner: Mutex::new(Inner::default()),
            in_flight: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            changed: AtomicBool::new(false),
            commit_requested: AtomicBool::new(false),
            commit_wake: Notify::new(),
            round_done: Notify::new(),
            ack_wait: ack_wait.filter(|wait| !wait.is_zero()),
            epoch: Instant::now(),
        }
    }

    fn since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn lease_deadline(&self, lease: &Lease) -> Instant {
        self.epoch + Duration::from_nanos(lease.deadline.load(Ordering::SeqCst))
    }

    /// Starts the acknowledgement deadline of a delivery being handed out (`None`
    /// when the subscription has no `ack_wait`); returns the lease and its deadline.
    pub(crate) fn lease(
        &self,
        message: &ReceivedMessage,
        ticket: &Ticket,
        attempt: u32,
    ) -> Option<(Arc<Lease>, Instant)> {
        let wait = self.ack_wait?;
        let at = Instant::now() + wait;
        let lease = Arc::new(Lease {
            state: AtomicU8::new(LEASE_OUT),
            deadline: AtomicU64::new(self.since_epoch(at)),
        });
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        push_expiry(
            &mut inner.leases,
            Expiry {
                at,
                lease: Arc::clone(&lease),
                message: message.clone(),
                ticket: ticket.clone(),
                attempt,
            },
        );
        Some((lease, at))
    }

    /// Moves a lease's deadline to `ack_wait` from now, if it is still out.
    pub(crate) fn extend(&self, lease: &Lease) {
        if let Some(wait) = self.ack_wait
            && lease.state.load(Ordering::SeqCst) == LEASE_OUT
        {
            lease
                .deadline
                .store(self.since_epoch(Instant::now() + wait), Ordering::SeqCst);
        }
    }

    /// Settles the delivery of an expired lease (a late acknowledgement: the event
    /// was handled). Its in-flight slot was given back at the expiry, so none is
    /// given back here; a copy that waits to be delivered again is dropped, one that
    /// is out settles nothing more.
    pub(crate) fn settle_late(&self, ticket: &Ticket) {
        if ticket.chunk.settle(ticket.index) {
            self.request_commit();
        }
        if ticket.is_held_here() {
            self.end_hold(ticket);
        }
    }

    /// Expires the leases whose deadline is at or before `now`: each delivery is
    /// queued again (attempt + 1) and its slot given back. Returns how many expired
    /// and the next deadline.
    fn expire(&self, inner: &mut Inner, now: Instant) -> (u64, Option<Instant>) {
        let mut expired = 0;
        while let Some(first) = inner.leases.front() {
            if first.at > now {
                return (expired, Some(first.at));
            }
            let Some(mut entry) = inner.leases.pop_front() else {
                break;
            };
            if entry.lease.state.load(Ordering::SeqCst) != LEASE_OUT || entry.ticket.is_superseded()
            {
                continue;
            }
            let deadline = self.lease_deadline(&entry.lease);
            if deadline > now {
                // Extended (`in_progress`): watched again at its new deadline.
                entry.at = deadline;
                push_expiry(&mut inner.leases, entry);
                continue;
            }
            if entry
                .lease
                .state
                .compare_exchange(LEASE_OUT, LEASE_EXPIRED, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            expired += 1;
            tracing::warn!(
                topic = %self.topic,
                group = %self.group,
                partition = entry.ticket.partition(),
                offset = entry.ticket.offset(),
                attempt = entry.attempt,
                "a delivery was neither settled nor extended within ack_wait; delivered again"
            );
            push_sorted(
                &mut inner.redeliver,
                Redelivery {
                    due: now,
                    message: entry.message,
                    ticket: entry.ticket,
                    attempt: entry.attempt + 1,
                },
            );
            self.give_back_slot();
        }
        (expired, None)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The consumer group.
    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// Deliveries handed out and not yet settled, nacked or dropped.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Takes an in-flight slot if fewer than `max` are taken; otherwise marks the
    /// subscription as waiting for one (it is woken when one is given back).
    pub(crate) fn try_take_slot(&self, max: usize) -> bool {
        // Only the subscription takes slots, so a load then an add cannot overshoot.
        if self.in_flight.load(Ordering::SeqCst) < max {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        self.blocked.store(true, Ordering::SeqCst);
        // A slot given back between the load and the store would not have woken us.
        if self.in_flight.load(Ordering::SeqCst) < max {
            self.blocked.store(false, Ordering::SeqCst);
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }

    fn give_back_slot(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.blocked.load(Ordering::SeqCst) && self.blocked.swap(false, Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    fn wake_subscription(&self) {
        self.changed.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    fn request_commit(&self) {
        // A load first: while a request is pending (most acks of a batch), nothing is
        // written to the shared line.
        if !self.commit_requested.load(Ordering::SeqCst)
            && !self.commit_requested.swap(true, Ordering::SeqCst)
        {
            self.commit_wake.notify_one();
        }
    }

    /// Admits fetched `messages` of the `owned` partitions: each one new to this
    /// subscription goes to `out` with its ticket; copies of what was admitted before
    /// (a kept partition read again after a rebalance) and messages after a held
    /// offset are left out. One chunk per partition run.
    pub(crate) fn admit(
        &self,
        messages: Vec<ReceivedMessage>,
        owned: &[u32],
        out: &mut VecDeque<(ReceivedMessage, Ticket)>,
    ) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        // Which messages are admitted, and the (partition, first offset, length) of
        // each contiguous run of them: decided first, so that the messages then move
        // once, straight into `out`.
        let mut admitted = Vec::with_capacity(messages.len());
        let mut runs: Vec<(u32, u64, u32)> = Vec::new();
        for message in &messages {
            let (partition, offset) = (message.partition, message.offset);
            admitted.push(false);
            if !owned.contains(&partition) {
                continue;
            }
            if inner.seeks.iter().any(|&(p, _)| p == partition) {
                // Its hold ended and its seek is not made yet: this was read before
                // the seek (from past the held offset), and is read again after it.
                continue;
            }
            let track = inner
                .tracks
                .entry(partition)
                .or_insert_with(|| Track::new(partition, offset));
            if offset < track.next {
                // Read again after a rebalance: the delivery in hand (or its
                // settlement) stands for it.
                continue;
            }
            if track.hold.as_ref().is_some_and(|h| offset > h.offset) {
                // Held: read again once the hold ends.
                continue;
            }
            if offset > track.next {
                // Another member handled and committed what lies before it (or
                // retention deleted it): nothing before it is ours to wait for.
                track.chunks.clear();
                track.floor = track.floor.max(Some(offset - 1));
            }
            track.next = offset + 1;
            match runs.last_mut() {
                Some((p, first, len)) if *p == partition && *first + u64::from(*len) == offset => {
                    *len += 1;
                }
                _ => runs.push((partition, offset, 1)),
            }
            if let Some(last) = admitted.last_mut() {
                *last = true;
            }
        }
        let mut accepted = messages
            .into_iter()
            .zip(admitted)
            .filter_map(|(message, admitted)| admitted.then_some(message));
        for (partition, first, len) in runs {
            let Some(track) = inner.tracks.get_mut(&partition) else {
                continue;
            };
            let chunk = Arc::new(Chunk::new(Arc::clone(&track.flags), first, len));
            track.chunks.push_back((Arc::clone(&chunk), len));
            out.reserve(len as usize);
            for index in 0..len {
                if let Some(message) = accepted.next() {
                    out.push_back((
                        message,
                        Ticket {
                            chunk: Arc::clone(&chunk),
                            index,
                        },
                    ));
                }
            }
        }
    }

    /// Settles a delivery (handled, skipped, or dead-lettered): its offset may be
    /// committed once everything before it is settled too. Gives back its slot; ends
    /// its partition's hold if it is the held event.
    pub(crate) fn settle(&self, ticket: &Ticket) {
        if ticket.chunk.settle(ticket.index) {
            self.request_commit();
        }
        if ticket.is_held_here() {
            self.end_hold(ticket);
        }
        self.give_back_slot();
    }

    /// Queues a delivery to be delivered again after `delay` (it stays outstanding:
    /// the partition's commit waits for it). Gives back its slot.
    pub(crate) fn requeue(
        &self,
        message: ReceivedMessage,
        ticket: Ticket,
        attempt: u32,
        delay: Duration,
    ) {
        let mut inner = self.lock();
        let queued = !inner.closed && !ticket.is_superseded();
        if queued {
            push_sorted(
                &mut inner.redeliver,
                Redelivery {
                    due: Instant::now() + delay,
                    message,
                    ticket,
                    attempt,
                },
            );
        }
        drop(inner);
        self.give_back_slot();
        if queued {
            self.wake_subscription();
        }
    }

    /// Holds the delivery's partition at its offset (see [`HeldPartition`]) and queues
    /// the delivery again after `delay`. Gives back its slot.
    pub(crate) fn hold(
        &self,
        message: ReceivedMessage,
        ticket: Ticket,
        attempt: u32,
        reason: &str,
        delay: Duration,
    ) {
        let partition = ticket.partition();
        let offset = ticket.offset();
        let mut inner = self.lock();
        let held = !inner.closed
            && match inner.tracks.get_mut(&partition) {
                Some(track) if track.owns(&ticket) => match &mut track.hold {
                    // Held at an earlier offset: this one is read again after it.
                    Some(hold) if hold.offset < offset => false,
                    Some(hold) if hold.offset == offset => {
                        hold.attempts = attempt;
                        true
                    }
                    _ => {
                        track.hold = Some(HeldPartition {
                            partition,
                            offset,
                            reason: reason.to_owned(),
                            attempts: attempt,
                        });
                        track.flags.held_at.store(offset, Ordering::SeqCst);
                        inner.redeliver.retain(|r| {
                            r.ticket.partition() != partition || r.ticket.offset() <= offset
                        });
                        true
                    }
                },
                _ => false,
            };
        if held {
            if let Some(hold) = inner.tracks.get(&partition).and_then(|t| t.hold.clone()) {
                self.publish_hold(hold.clone(), true);
                tracing::warn!(
                    topic = %self.topic,
                    group = %self.group,
                    partition,
                    offset,
                    attempts = attempt,
                    reason = %hold.reason,
                    ?delay,
                    "partition held at an undecided event; delivered again after the delay"
                );
            }
            push_sorted(
                &mut inner.redeliver,
                Redelivery {
                    due: Instant::now() + delay,
                    message,
                    ticket,
                    attempt,
                },
            );
        }
        drop(inner);
        self.give_back_slot();
        if held {
            self.wake_subscription();
        }
    }

    /// Ends the hold of the ticket's partition (its held event was settled): the
    /// partition is read again right after it.
    fn end_hold(&self, ticket: &Ticket) {
        let partition = ticket.partition();
        let offset = ticket.offset();
        let mut inner = self.lock();
        let Some(track) = inner.tracks.get_mut(&partition) else {
            return;
        };
        if !track.owns(ticket) || track.hold.as_ref().is_none_or(|h| h.offset != offset) {
            return;
        }
        let hold = track.hold.take();
        track.flags.held_at.store(NOT_HELD, Ordering::SeqCst);
        // What was admitted after the held offset was never handed out (or is read
        // again): forget it, and read from right after the held event.
        while let Some((chunk, len)) = track.chunks.back_mut() {
            if chunk.first > offset {
                track.chunks.pop_back();
            } else {
                *len = (*len).min(u32::try_from(offset - chunk.first + 1).unwrap_or(u32::MAX));
                break;
            }
        }
        track.next = offset + 1;
        inner.seeks.push((partition, offset + 1));
        drop(inner);
        if let Some(hold) = hold {
            self.publish_hold(hold, false);
        }
        self.wake_subscription();
    }

    /// Seeks to make and the redelivery that is due, if anything was queued since the
    /// last look or the next redelivery (`next_due`) is due; `None` when there is
    /// nothing to look at (no lock taken, no clock read).
    pub(crate) fn queue_work(&self, next_due: Option<Instant>) -> Option<QueueWork> {
        // A load first: the swap (a write to a shared line) only when something was
        // queued.
        let changed =
            self.changed.load(Ordering::SeqCst) && self.changed.swap(false, Ordering::SeqCst);
        if !changed && next_due.is_none() {
            return None;
        }
        let now = Instant::now();
        if !changed && next_due.is_some_and(|due| due > now) {
            return None;
        }
        let mut inner = self.lock();
        let (expired, next_expiry) = self.expire(&mut inner, now);
        let mut work = QueueWork {
            seeks: std::mem::take(&mut inner.seeks),
            expired,
            ..QueueWork::default()
        };
        while let Some(first) = inner.redeliver.front() {
            if first.ticket.is_superseded() || first.ticket.is_settled() {
                inner.redeliver.pop_front();
                continue;
            }
            if first.due <= now {
                work.due = inner.redeliver.pop_front();
                // More may be due: look again at the next poll.
                self.changed.store(true, Ordering::SeqCst);
            } else {
                work.next_due = Some(first.due);
            }
            break;
        }
        work.next_due = match (work.next_due, next_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(work)
    }

    /// Puts back a redelivery taken by [`AckState::queue_work`] that could not be
    /// handed out (no in-flight slot).
    pub(crate) fn put_back(&self, redelivery: Redelivery) {
        let mut inner = self.lock();
        if !inner.closed {
            inner.redeliver.push_front(redelivery);
        }
        drop(inner);
        self.changed.store(true, Ordering::SeqCst);
    }

    /// Gives back a slot taken by [`AckState::try_take_slot`] that was not used.
    pub(crate) fn return_unused_slot(&self) {
        self.give_back_slot();
    }

    /// Free in-flight slots under `max`; at 0 the subscription is marked as waiting
    /// for one (it is woken when one is given back).
    pub(crate) fn room(&self, max: usize) -> usize {
        let free = max.saturating_sub(self.in_flight.load(Ordering::SeqCst));
        if free > 0 {
            return free;
        }
        self.blocked.store(true, Ordering::SeqCst);
        let free = max.saturating_sub(self.in_flight.load(Ordering::SeqCst));
        if free > 0 {
            self.blocked.store(false, Ordering::SeqCst);
        }
        free
    }

    /// Forgets a partition this member lost: its deliveries belong to the new owner
    /// now, which starts after the last commit.
    pub(crate) fn forget_partition(&self, partition: u32) {
        let mut inner = self.lock();
        inner
            .redeliver
            .retain(|r| r.ticket.partition() != partition);
        inner.leases.retain(|e| e.ticket.partition() != partition);
        inner.seeks.retain(|&(p, _)| p != partition);
        let hold = inner.tracks.remove(&partition).and_then(|track| {
            track.flags.retired.store(true, Ordering::SeqCst);
            track.hold
        });
        drop(inner);
        if let Some(hold) = hold {
            self.publish_hold(hold, false);
        }
    }

    /// The partitions this subscription has state for.
    pub(crate) fn tracked_partitions(&self) -> Vec<u32> {
        self.lock().tracks.keys().copied().collect()
    }

    /// The partitions held now.
    pub(crate) fn held_partitions(&self) -> Vec<HeldPartition> {
        let mut held: Vec<HeldPartition> = self
            .lock()
            .tracks
            .values()
            .filter_map(|t| t.hold.clone())
            .collect();
        held.sort_by_key(|h| h.partition);
        held
    }

    /// Stops redeliveries (the subscription is closed or dropped); what was settled
    /// can still be committed.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.redeliver.clear();
        inner.leases.clear();
        let holds: Vec<HeldPartition> = inner
            .tracks
            .values_mut()
            .filter_map(|t| {
                t.flags.held_at.store(NOT_HELD, Ordering::SeqCst);
                t.hold.take()
            })
            .collect();
        drop(inner);
        for hold in holds {
            self.publish_hold(hold, false);
        }
        self.commit_wake.notify_one();
        self.waker.wake();
    }

    /// Whether the subscription is closed (or dropped).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

fn push_expiry(queue: &mut VecDeque<Expiry>, entry: Expiry) {
    let at = queue.partition_point(|e| e.at <= entry.at);
    queue.insert(at, entry);
}

fn push_sorted(queue: &mut VecDeque<Redelivery>, entry: Redelivery) {
    let at = queue.partition_point(|r| r.due <= entry.due);
    queue.insert(at, entry);
}
