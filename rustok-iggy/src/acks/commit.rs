//! Commit rounds: one at a time per subscription (committed offsets only grow), each
//! storing every partition's floor that passed its last stored offset.

use std::pin::pin;
use std::sync::atomic::Ordering;

use rustok_iggy_connector::{ConnectorError, GroupConsumer};
use tokio::sync::Notify;

use super::{AckState, Committed, Ticket};

impl AckState {
    /// Where the acknowledgement of `ticket` stands.
    pub(crate) fn committed(&self, ticket: &Ticket) -> Committed {
        let inner = self.lock();
        match inner.tracks.get(&ticket.partition()) {
            Some(track) if track.owns(ticket) => {
                if track.stored.is_some_and(|s| s >= ticket.offset()) {
                    Committed::Covered
                } else {
                    Committed::Pending
                }
            }
            _ => Committed::Gone,
        }
    }

    /// The offsets to commit now: per partition, the floor where it passed the last
    /// stored offset.
    pub(super) fn commit_points(&self) -> Vec<(u32, u64)> {
        let mut inner = self.lock();
        inner
            .tracks
            .iter_mut()
            .filter_map(|(&partition, track)| {
                track.advance();
                match track.floor {
                    Some(floor) if track.stored.is_none_or(|s| floor > s) => {
                        Some((partition, floor))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    pub(super) fn record_stored(&self, partition: u32, offset: u64) {
        if let Some(track) = self.lock().tracks.get_mut(&partition) {
            track.stored = track.stored.max(Some(offset));
        }
    }

    /// Enters the commit gate if no round is running. Otherwise, with `ask_again`,
    /// asks the running round to go once more, so that it sees everything settled
    /// before this call.
    fn try_enter(&self, ask_again: bool) -> bool {
        let mut inner = self.lock();
        if inner.committing {
            inner.again |= ask_again;
            false
        } else {
            inner.committing = true;
            true
        }
    }

    /// Leaves the gate, unless another round was asked for meanwhile. What was settled
    /// during the round is left to the background committer (woken here), so that a
    /// caller's round ends even while deliveries keep being acknowledged.
    fn try_leave(&self) -> bool {
        let mut inner = self.lock();
        if inner.again {
            inner.again = false;
            return false;
        }
        inner.committing = false;
        drop(inner);
        if self.commit_requested.load(Ordering::SeqCst) {
            self.commit_wake.notify_one();
        }
        self.round_done.notify_waiters();
        true
    }

    /// Commits until nothing is left to commit, holding the gate. On an error the gate
    /// is left and the error returned (the points stay for the next round).
    async fn rounds(&self, consumer: &dyn GroupConsumer) -> Result<(), ConnectorError> {
        let mut gate = Gate {
            acks: self,
            open: true,
        };
        loop {
            self.commit_requested.store(false, Ordering::SeqCst);
            for (partition, offset) in self.commit_points() {
                match consumer.commit(partition, offset).await {
                    Ok(()) => self.record_stored(partition, offset),
                    // The partition went to another member: the subscription forgets
                    // it when it sees the new assignment (the connector then reads
                    // it again after its last commit, should it come back).
                    Err(ConnectorError::Fenced { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            if self.try_leave() {
                gate.open = false;
                return Ok(());
            }
        }
    }

    /// Runs a commit round now, waiting for a running one to end first: when it
    /// returns `Ok`, everything settled before the call that can be committed is.
    pub(crate) async fn commit_now(
        &self,
        consumer: &dyn GroupConsumer,
    ) -> Result<(), ConnectorError> {
        loop {
            let mut ended = pin!(self.round_done.notified());
            ended.as_mut().enable();
            if self.try_enter(false) {
                return self.rounds(consumer).await;
            }
            ended.await;
        }
    }

    /// A round if none is running (the background committer: a running round wakes it
    /// again when it leaves with something left to commit).
    pub(crate) async fn commit_if_idle(
        &self,
        consumer: &dyn GroupConsumer,
    ) -> Result<(), ConnectorError> {
        if self.try_enter(false) {
            self.rounds(consumer).await
        } else {
            Ok(())
        }
    }

    /// A round if none is running, or one more of the running round: what a dropped
    /// subscription does (on the embedded connector a round completes within the
    /// call, so nothing acknowledged waits for a task that may never run).
    pub(crate) async fn commit_on_drop(
        &self,
        consumer: &dyn GroupConsumer,
    ) -> Result<(), ConnectorError> {
        if self.try_enter(true) {
            self.rounds(consumer).await
        } else {
            Ok(())
        }
    }

    /// Notified when a commit round ends.
    pub(crate) fn round_done(&self) -> &Notify {
        &self.round_done
    }
}

/// Leaves the commit gate when a round ends early (an error, or a cancelled call).
struct Gate<'a> {
    acks: &'a AckState,
    open: bool,
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        if self.open {
            let mut inner = self.acks.lock();
            inner.committing = false;
            inner.again = false;
            drop(inner);
            self.acks.round_done.notify_waiters();
        }
    }
}
