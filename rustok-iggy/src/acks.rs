//! Acknowledgement bookkeeping of a subscription: which deliveries are outstanding,
//! which offset may be committed, what must be delivered again.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::task::AtomicWaker;
use rustok_iggy_connector::{ConnectorError, GroupConsumer, ReceivedMessage};
use tokio::time::Instant;

#[derive(Debug, Default)]
struct PartitionAcks {
    /// Delivered and not yet settled.
    outstanding: BTreeSet<u64>,
    /// The highest offset ever delivered.
    highest: Option<u64>,
    /// The last offset committed (or being committed).
    committed: Option<u64>,
}

impl PartitionAcks {
    /// The offset that may be committed now: everything delivered below the oldest
    /// outstanding delivery is settled.
    fn commit_point(&self) -> Option<u64> {
        match self.outstanding.first() {
            Some(&oldest) => oldest.checked_sub(1),
            None => self.highest,
        }
    }
}

/// A message waiting to be delivered again.
#[derive(Debug)]
pub(crate) struct Redelivery {
    pub(crate) due: Instant,
    pub(crate) message: ReceivedMessage,
    pub(crate) attempt: u32,
}

#[derive(Debug, Default)]
struct Inner {
    partitions: HashMap<u32, PartitionAcks>,
    in_flight: usize,
    redeliver: VecDeque<Redelivery>,
    /// Commit points waiting for the committer, per partition.
    pending: HashMap<u32, u64>,
    closed: bool,
}

/// Shared between a subscription and its deliveries.
#[derive(Debug, Default)]
pub(crate) struct AckState {
    inner: Mutex<Inner>,
    /// Wakes the subscription when capacity frees up or a redelivery is queued.
    pub(crate) waker: AtomicWaker,
    /// Wakes the background committer.
    pub(crate) commit_wake: tokio::sync::Notify,
    /// Serializes commits, so that a partition's committed offset only grows.
    commit_lock: tokio::sync::Mutex<()>,
}

impl AckState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a delivery handed to the application.
    pub(crate) fn delivered(&self, partition: u32, offset: u64) {
        let mut inner = self.lock();
        inner.in_flight += 1;
        let p = inner.partitions.entry(partition).or_default();
        p.outstanding.insert(offset);
        p.highest = Some(p.highest.map_or(offset, |h| h.max(offset)));
    }

    /// Settles a delivery (acked, or handled otherwise). Returns the offset to commit
    /// when the contiguous settled prefix of the partition advanced.
    pub(crate) fn settle(&self, partition: u32, offset: u64) -> Option<u64> {
        let mut inner = self.lock();
        let p = inner.partitions.get_mut(&partition)?;
        if !p.outstanding.remove(&offset) {
            return None;
        }
        inner.in_flight = inner.in_flight.saturating_sub(1);
        let p = inner.partitions.get_mut(&partition)?;
        let point = p.commit_point()?;
        let advanced = p.committed.is_none_or(|c| point > c);
        if advanced {
            p.committed = Some(point);
        }
        drop(inner);
        self.waker.wake();
        advanced.then_some(point)
    }

    /// Puts a delivery back to be delivered again after `delay`; it stays outstanding
    /// (the partition's commit waits for it).
    pub(crate) fn requeue(&self, message: ReceivedMessage, attempt: u32, delay: Duration) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        // It stays outstanding: the partition's commit must not pass it.
        inner.in_flight = inner.in_flight.saturating_sub(1);
        let entry = Redelivery {
            due: Instant::now() + delay,
            message,
            attempt,
        };
        let at = inner.redeliver.partition_point(|r| r.due <= entry.due);
        inner.redeliver.insert(at, entry);
        drop(inner);
        self.waker.wake();
    }

    /// The next redelivery that is due, or the time the earliest one will be.
    pub(crate) fn take_due(&self, now: Instant) -> Result<Option<Redelivery>, Instant> {
        let mut inner = self.lock();
        match inner.redeliver.front() {
            Some(r) if r.due <= now => {
                let r = inner.redeliver.pop_front();
                if r.is_some() {
                    inner.in_flight += 1;
                }
                Ok(r)
            }
            Some(r) => Err(r.due),
            None => Ok(None),
        }
    }

    /// Deliveries handed out and not settled.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Asks the committer to store `offset` for `partition` (the largest request
    /// wins) and wakes it.
    pub(crate) fn request_commit(&self, partition: u32, offset: u64) {
        let mut inner = self.lock();
        let entry = inner.pending.entry(partition).or_insert(offset);
        *entry = (*entry).max(offset);
        drop(inner);
        self.commit_wake.notify_one();
    }

    /// Stores every requested commit point. Commits are serialized and each takes the
    /// latest point of its partition, so acknowledgements that arrive while a commit
    /// is in flight are covered by the next one (group commit). A fenced partition is
    /// forgotten; on any other failure the point is kept for the next attempt.
    pub(crate) async fn commit_pending(
        &self,
        consumer: &dyn GroupConsumer,
    ) -> Result<(), ConnectorError> {
        let _serialized = self.commit_lock.lock().await;
        let pending: Vec<(u32, u64)> = std::mem::take(&mut self.lock().pending)
            .into_iter()
            .collect();
        let mut first_error = None;
        for (partition, offset) in pending {
            match consumer.commit(partition, offset).await {
                Ok(()) => {}
                Err(ConnectorError::Fenced { .. }) => self.forget_partition(partition),
                Err(e) => {
                    let mut inner = self.lock();
                    let entry = inner.pending.entry(partition).or_insert(offset);
                    *entry = (*entry).max(offset);
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether the subscription is closed (or dropped).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Forgets a partition this member lost: its outstanding deliveries belong to the
    /// new owner now, which starts after the last commit.
    pub(crate) fn forget_partition(&self, partition: u32) {
        let mut inner = self.lock();
        inner.pending.remove(&partition);
        if let Some(p) = inner.partitions.remove(&partition) {
            inner.in_flight = inner.in_flight.saturating_sub(p.outstanding.len());
        }
        inner.redeliver.retain(|r| r.message.partition != partition);
        drop(inner);
        self.waker.wake();
    }

    /// Drops queued redeliveries (the subscription is gone).
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.redeliver.clear();
        drop(inner);
        self.commit_wake.notify_one();
    }

    /// The commit point of every partition that has one.
    pub(crate) fn commit_points(&self) -> Vec<(u32, u64)> {
        self.lock()
            .partitions
            .iter()
            .filter_map(|(&p, acks)| acks.commit_point().map(|o| (p, o)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_acked_prefix() {
        let acks = AckState::default();
        for offset in 0..4 {
            acks.delivered(0, offset);
        }
        assert_eq!(acks.settle(0, 1), None, "0 is still outstanding");
        assert_eq!(acks.settle(0, 2), None);
        assert_eq!(acks.settle(0, 0), Some(2));
        assert_eq!(acks.settle(0, 3), Some(3));
        assert_eq!(acks.settle(0, 3), None, "settling twice does nothing");
        assert_eq!(acks.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let acks = AckState::default();
        acks.delivered(0, 10);
        acks.delivered(1, 5);
        assert_eq!(acks.settle(1, 5), Some(5));
        assert_eq!(acks.in_flight(), 1);
        let mut points = acks.commit_points();
        points.sort_unstable();
        assert_eq!(points, vec![(0, 9), (1, 5)]);
    }

    #[tokio::test(start_paused = true)]
    async fn requeued_deliveries_hold_back_the_commit() {
        let acks = AckState::default();
        acks.delivered(0, 0);
        acks.delivered(0, 1);
        let message = ReceivedMessage {
            partition: 0,
            offset: 0,
            id: 1,
            timestamp: 0,
            origin_timestamp: 0,
            payload: bytes::Bytes::new(),
            headers: rustok_iggy_connector::Headers::new(),
        };
        acks.requeue(message, 2, Duration::from_millis(50));
        assert_eq!(
            acks.settle(0, 1),
            None,
            "offset 0 is waiting for redelivery"
        );
        let now = Instant::now();
        assert!(matches!(acks.take_due(now), Err(due) if due > now));
        tokio::time::advance(Duration::from_millis(50)).await;
        let again = acks.take_due(Instant::now()).unwrap().unwrap();
        assert_eq!((again.message.offset, again.attempt), (0, 2));
        assert_eq!(acks.settle(0, 0), Some(1));
    }
}
