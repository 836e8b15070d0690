//! Opportunistic coalescing of single-event publishes: while a request of a
//! transport's topic goes to one partition (or to the balanced choice), events
//! published for the same target by other tasks wait, and go together in the next
//! request. There is no linger: an event published while nothing is in flight for
//! its target is sent at once, alone, exactly as without coalescing.
//!
//! Every request goes to a partition chosen before its first attempt (the balanced
//! lane picks one per request), so that a retry after a transient failure resends
//! the same ids to the same partition.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustok_iggy_connector::{
    ConnectorError, IggyConnector, OutgoingMessage, Partitioning, PublishReceipt, PublishRequest,
    RoundRobin, StreamName, TopicName,
};
use tokio::sync::oneshot;

use crate::batching::BatchError;
use crate::error::Error;
use crate::publish::{send_recorded, send_with};
use crate::publish_retry::PublishRetry;

/// Where a coalesced event was stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub(crate) partition: u32,
    /// Its offset (for a duplicate, that of the copy stored before).
    pub(crate) offset: u64,
    /// The broker had its id already and did not store it again.
    pub(crate) duplicate: bool,
}

impl Placed {
    /// Message `index` of a request the broker acknowledged with `receipt`.
    fn of(receipt: &PublishReceipt, index: u32) -> Self {
        Self {
            partition: receipt.partition,
            offset: receipt
                .offset_of(index)
                .unwrap_or(receipt.base_offset + u64::from(index)),
            duplicate: receipt.is_duplicate(index),
        }
    }
}

/// The reply to one waiting event.
type Reply = oneshot::Sender<Result<Placed, Error>>;

/// The waiting events of one target, and whether a request for it is in flight.
#[derive(Default)]
struct Lane {
    busy: bool,
    waiting: Vec<(OutgoingMessage, Reply)>,
}

/// The lanes of one transport (shared by its clones), by target partition.
pub(crate) struct Coalescer {
    destination: Destination,
    lanes: Mutex<HashMap<Option<u32>, Lane>>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

/// Where the requests go.
pub(crate) struct Destination {
    pub(crate) connector: Arc<dyn IggyConnector>,
    pub(crate) stream: StreamName,
    pub(crate) topic: TopicName,
    /// The topic's partition count.
    pub(crate) partitions: u32,
    /// The balanced choice of the transport (shared with its batches).
    pub(crate) balanced: Arc<RoundRobin>,
    /// Retries of a request after a transient failure.
    pub(crate) retry: PublishRetry,
}

impl Destination {
    /// A request for `target`; the balanced target gets its partition now, so that
    /// retries of the request go where it went.
    fn request(&self, target: Option<u32>, messages: Vec<OutgoingMessage>) -> PublishRequest {
        let partition = target.unwrap_or_else(|| self.balanced.next(self.partitions));
        PublishRequest {
            stream: self.stream.clone(),
            topic: self.topic.clone(),
            partitioning: Partitioning::Partition(partition),
            messages,
        }
    }
}

impl Coalescer {
    pub(crate) fn new(destination: Destination) -> Self {
        Self {
            destination,
            lanes: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Option<u32>, Lane>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `message` to `target`: at once when nothing is in flight for it,
    /// else with the other events waiting for it, in the next request. Returns when
    /// the broker accepted the request that carried it. A failed shared request
    /// fails each of its events with [`BatchError::Publish`]; a request that carried
    /// only this event fails with the connector's own error.
    pub(crate) async fn publish(
        self: &Arc<Self>,
        target: Option<u32>,
        message: OutgoingMessage,
    ) -> Result<Placed, Error> {
        let waiting = {
            let mut lanes = self.lock();
            let lane = lanes.entry(target).or_default();
            if lane.busy {
                let (reply, answer) = oneshot::channel();
                lane.waiting.push((message, reply));
                Err(answer)
            } else {
                lane.busy = true;
                Ok(message)
            }
        };
        match waiting {
            Ok(message) => {
                // Hands the lane on when this call ends, however it ends (a dropped
                // future included): what waits meanwhile is sent by a task.
                let _lane = Handover {
                    coalescer: Arc::clone(self),
                    target,
                };
                let destination = &self.destination;
                let request = destination.request(target, vec![message]);
                let receipt =
                    send_with(destination.connector.as_ref(), request, destination.retry).await?;
                Ok(Placed::of(&receipt, 0))
            }
            Err(answer) => answer
                .await
                .unwrap_or(Err(Error::Connector(ConnectorError::ShuttingDown))),
        }
    }

    /// Takes what waits for `target`, or marks the lane idle when nothing does.
    fn take_waiting(&self, target: Option<u32>) -> Vec<(OutgoingMessage, Reply)> {
        let mut lanes = self.lock();
        let Some(lane) = lanes.get_mut(&target) else {
            return Vec::new();
        };
        let waiting = std::mem::take(&mut lane.waiting);
        if waiting.is_empty() {
            lane.busy = false;
        }
        waiting
    }

    /// Sends what waits for `target`, request after request, until nothing does.
    async fn drain(
        self: Arc<Self>,
        target: Option<u32>,
        mut waiting: Vec<(OutgoingMessage, Reply)>,
    ) {
        while !waiting.is_empty() {
            let (messages, replies): (Vec<_>, Vec<_>) = waiting.into_iter().unzip();
            let count = messages.len();
            let destination = &self.destination;
            let request = destination.request(target, messages);
            match send_recorded(destination.connector.as_ref(), request, destination.retry).await {
                Ok(receipt) => {
                    for (position, reply) in (0u32..).zip(replies) {
                        let _ = reply.send(Ok(Placed::of(&receipt, position)));
                    }
                }
                Err(error) => {
                    let source = Arc::new(error);
                    for reply in replies {
                        let _ = reply.send(Err(Error::Batch(BatchError::Publish {
                            messages: count,
                            source: Arc::clone(&source),
                        })));
                    }
                }
            }
            waiting = self.take_waiting(target);
        }
    }
}

/// The lane of a call that sent alone: when the call ends, what waits is handed to
/// a task (so the call returns as soon as its own request is answered).
struct Handover {
    coalescer: Arc<Coalescer>,
    target: Option<u32>,
}

impl Drop for Handover {
    fn drop(&mut self) {
        let waiting = self.coalescer.take_waiting(self.target);
        if waiting.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(Arc::clone(&self.coalescer).drain(self.target, waiting));
            }
            Err(_) => {
                // No runtime to send them on (it is shutting down): they fail, and
                // the lane is free again.
                let mut waiting = waiting;
                while !waiting.is_empty() {
                    for (_, reply) in waiting {
                        let _ = reply.send(Err(Error::Connector(ConnectorError::ShuttingDown)));
                    }
                    waiting = self.coalescer.take_waiting(self.target);
                }
            }
        }
    }
}
