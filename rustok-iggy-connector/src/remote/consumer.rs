//! Consumer-group members on a remote server, with commit after ack.
//!
//! Each member has its own connection: the server keys membership by connection
//! (link), so two members in one process are two members for the server too, and
//! a member's polls never queue behind another's.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use iggy::prelude::{
    Consumer, ConsumerGroupClient, ConsumerOffsetClient, Identifier, IggyClient, IggyError,
    PollingStrategy, RESYNC_REQUIRED_PARTITION_SENTINEL,
};
use iggy_binary_protocol::codes::SYNC_CONSUMER_GROUP_CODE;
use iggy_binary_protocol::requests::consumer_groups::SyncConsumerGroupRequest;
use iggy_binary_protocol::responses::consumer_groups::SyncConsumerGroupResponse;
use iggy_binary_protocol::{WireDecode, WireEncode, WireIdentifier};
use tokio::sync::{oneshot, watch};

use super::backoff::{Backoff, unless_closed};
use super::client::{self, is_already_exists, is_group_not_found, is_membership_error, sdk_error};
use super::link::{self, At, Link, ident, poll_partition, topic_error};
use crate::connector::{Assignment, GroupConsumer, StartPosition};
use crate::error::ConnectorError;
use crate::error_codes::ErrorCode;
use crate::member::{Cursors, start_to_store};
use crate::message::ReceivedMessage;
use crate::names::{GroupName, StreamName, TopicName};

/// The membership as last synced: `epoch` counts this member's joins (a reconnect
/// makes the server forget the member, which then joins again).
#[derive(Debug, Clone)]
struct Synced {
    epoch: u64,
    assignment: Assignment,
}

/// The shared part of a member (a task of its own holds a weak reference to make it
/// leave at shutdown).
pub(crate) struct MemberInner {
    client: IggyClient,
    stream: StreamName,
    topic: TopicName,
    group: GroupName,
    partitions: u32,
    /// Set for one (membership epoch, group generation).
    cursors: tokio::sync::Mutex<Cursors<(u64, u64)>>,
    assignment: std::sync::Mutex<Assignment>,
    epoch: AtomicU64,
    left: AtomicBool,
    closed: watch::Receiver<bool>,
    /// Never sent: dropped with the member, it ends the member's shutdown task.
    _dropped: oneshot::Sender<()>,
    /// Read positions asked for by `seek`, applied by the next poll round.
    seeks: std::sync::Mutex<Vec<(u32, u64)>>,
    /// How long leaving waits for the server (the connect timeout: over a lost
    /// connection, the leave request first has to reconnect).
    leave_timeout: Duration,
}

impl fmt::Debug for MemberInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteGroupMember")
            .field("stream", &self.stream)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl MemberInner {
    fn ids(&self) -> Result<(Identifier, Identifier, Identifier), ConnectorError> {
        Ok((
            ident(self.stream.as_str())?,
            ident(self.topic.as_str())?,
            ident(self.group.as_str())?,
        ))
    }

    fn group_error(&self, context: &str, error: IggyError) -> ConnectorError {
        if is_group_not_found(&error) {
            return ConnectorError::GroupNotFound {
                stream: self.stream.to_string(),
                topic: self.topic.to_string(),
                group: self.group.to_string(),
            };
        }
        topic_error(
            format!("{context} (group {:?})", self.group.as_str()),
            error,
            &self.stream,
            &self.topic,
            None,
        )
    }

    fn at(&self, partition: u32) -> At<'_> {
        At {
            stream: &self.stream,
            topic: &self.topic,
            partition,
            partitions: self.partitions,
        }
    }

    fn fenced(&self, partition: u32) -> ConnectorError {
        ConnectorError::Fenced {
            group: self.group.to_string(),
            partition,
            generation: self.cached_assignment().generation,
        }
    }

    fn cached_assignment(&self) -> Assignment {
        self.assignment
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Joins (again) and starts a new membership epoch.
    async fn join(&self) -> Result<(), ConnectorError> {
        let (s, t, g) = self.ids()?;
        self.client
            .join_consumer_group(&s, &t, &g)
            .await
            .map_err(|e| self.group_error("join", e))?;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// This member's assignment as the server has it (SyncConsumerGroup), `None`
    /// when the server does not know this connection as a member.
    async fn sync(&self) -> Result<Option<Assignment>, ConnectorError> {
        let wire = |name: &str| {
            WireIdentifier::named(name).map_err(|e| ConnectorError::InvalidRequest(e.to_string()))
        };
        let request = SyncConsumerGroupRequest {
            stream_id: wire(self.stream.as_str())?,
            topic_id: wire(self.topic.as_str())?,
            group_id: wire(self.group.as_str())?,
        };
        let reply = self
            .client
            .send_binary_request(SYNC_CONSUMER_GROUP_CODE, request.to_bytes())
            .await
            .map_err(|e| self.group_error("sync the assignment", e))?;
        if reply.is_empty() {
            return Ok(None);
        }
        let (response, _) = SyncConsumerGroupResponse::decode(&reply)?;
        let mut partitions = response.partitions;
        partitions.sort_unstable();
        Ok(Some(Assignment {
            generation: response.generation,
            partitions,
        }))
    }

    /// The current membership, joining again when the server forgot this member
    /// (the connection was re-established, or the server restarted).
    async fn current(&self) -> Result<Synced, ConnectorError> {
        if self.left.load(Ordering::Acquire) {
            return Err(ConnectorError::InvalidRequest(format!(
                "this member already left group {:?}",
                self.group.as_str()
            )));
        }
        let assignment = match self.sync().await? {
            Some(assignment) => assignment,
            None => {
                tracing::info!(group = %self.group, "not a group member any more (reconnected?); joining again");
                self.join().await?;
                self.sync().await?.ok_or_else(|| ConnectorError::Receive {
                    message: format!(
                        "the server does not list this connection as a member of group {:?} right after it joined",
                        self.group.as_str()
                    ),
                    source: None,
                })?
            }
        };
        *self
            .assignment
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = assignment.clone();
        Ok(Synced {
            epoch: self.epoch.load(Ordering::Acquire),
            assignment,
        })
    }

    /// The group's committed offset of `partition`.
    async fn stored_offset(&self, partition: u32) -> Result<Option<u64>, ConnectorError> {
        let (s, t, g) = self.ids()?;
        stored_group_offset(&self.client, &s, &t, &g, partition)
            .await
            .map_err(|e| self.group_error("read the committed offset", e))
    }

    /// Leaves the group once and closes this member's connection. The leave request
    /// waits at most `leave_timeout` (the server may be gone); the connection is
    /// closed in any case. A member whose connection is already gone (the server
    /// restarted under it) has left: the server drops a membership with its
    /// connection.
    pub(crate) async fn leave_now(&self) -> Result<(), ConnectorError> {
        if self.left.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = match self.ids() {
            Ok((s, t, g)) => {
                let leave = self.client.leave_consumer_group(&s, &t, &g);
                match tokio::time::timeout(self.leave_timeout, leave).await {
                    Ok(Ok(())) => Ok(()),
                    // Already gone from the group (it was deleted, or the server
                    // forgot this connection): the goal is reached.
                    Ok(Err(e)) if is_membership_error(&e) || is_group_not_found(&e) => Ok(()),
                    // The member's connection is gone (the server restarted under
                    // it): the server dropped the membership with the connection.
                    Ok(Err(
                        IggyError::Disconnected
                        | IggyError::NotConnected
                        | IggyError::ConnectionClosed
                        | IggyError::StaleClient,
                    )) => Ok(()),
                    Ok(Err(e)) => Err(self.group_error("leave", e)),
                    Err(_elapsed) => Err(ConnectorError::Timeout {
                        what: format!("leave group {:?}", self.group.as_str()),
                        after: self.leave_timeout,
                    }),
                }
            }
            Err(e) => Err(e),
        };
        // Closing the connection makes the server drop the membership anyway.
        client::shutdown_quietly(&self.client).await;
        result
    }
}

/// The committed offset of a group on one partition (`None`: nothing committed).
pub(super) async fn stored_group_offset(
    client: &IggyClient,
    stream: &Identifier,
    topic: &Identifier,
    group: &Identifier,
    partition: u32,
) -> Result<Option<u64>, IggyError> {
    match client
        .get_consumer_offset(
            &Consumer::group(group.clone()),
            stream,
            topic,
            Some(partition),
        )
        .await
    {
        Ok(info) => Ok(info.map(|i| i.stored_offset)),
        Err(e) if ErrorCode(e.as_code()) == ErrorCode::CONSUMER_OFFSET_NOT_FOUND => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens a member of `group` on its own connection: creates the group when it is
/// missing (then stores the offsets `start` implies), joins, and syncs.
pub(super) async fn join(
    link: &Arc<Link>,
    stream: &StreamName,
    topic: &TopicName,
    group: &GroupName,
    start: StartPosition,
) -> Result<RemoteGroupMember, ConnectorError> {
    let meta = link.require(stream, topic).await?;
    let (client, _) = client::open(&link.config, &link.addresses).await?;
    let (dropped_tx, dropped) = oneshot::channel();
    let inner = Arc::new(MemberInner {
        client,
        stream: stream.clone(),
        topic: topic.clone(),
        group: group.clone(),
        partitions: meta.partitions,
        cursors: tokio::sync::Mutex::new(Cursors::default()),
        assignment: std::sync::Mutex::new(Assignment::default()),
        epoch: AtomicU64::new(0),
        left: AtomicBool::new(false),
        closed: link.closed.subscribe(),
        _dropped: dropped_tx,
        seeks: std::sync::Mutex::new(Vec::new()),
        leave_timeout: Duration::from_millis(link.config.connect_timeout_ms),
    });
    if let Err(error) = set_up(&inner, start).await {
        client::shutdown_quietly(&inner.client).await;
        inner.left.store(true, Ordering::Release);
        return Err(error);
    }
    leave_at_close(&inner, link, dropped);
    Ok(RemoteGroupMember { inner })
}

/// Makes the member leave its group when the link closes (shutdown waits for it
/// through the link's departure token); the task ends early when the member is
/// dropped (its `Drop` leaves on its own).
fn leave_at_close(inner: &Arc<MemberInner>, link: &Link, dropped: oneshot::Receiver<()>) {
    let member = Arc::downgrade(inner);
    let mut closed = link.closed.subscribe();
    let departure = link.departure();
    tokio::spawn(async move {
        let _departure = departure;
        tokio::select! {
            () = async { drop(closed.wait_for(|closed| *closed).await) } => {
                if let Some(inner) = member.upgrade()
                    && let Err(error) = inner.leave_now().await
                {
                    tracing::warn!(%error, "leaving a group at shutdown failed");
                }
            }
            _ = dropped => {}
        }
    });
}

async fn set_up(inner: &MemberInner, start: StartPosition) -> Result<(), ConnectorError> {
    let (s, t, g) = inner.ids()?;
    let exists = match inner.client.get_consumer_group(&s, &t, &g).await {
        Ok(found) => found.is_some(),
        Err(e) if is_group_not_found(&e) => false,
        Err(e) => return Err(inner.group_error("describe", e)),
    };
    let created = !exists
        && match inner
            .client
            .create_consumer_group(&s, &t, inner.group.as_str())
            .await
        {
            Ok(_) => true,
            // Another member created it between the two calls.
            Err(e) if is_already_exists(&e) => false,
            Err(e) => return Err(inner.group_error("create", e)),
        };
    inner.join().await?;
    if created {
        initialize_offsets(inner, start).await?;
    }
    inner.current().await?;
    Ok(())
}

/// Stores the starting offsets of a group this member created, so that a restart
/// before the first commit does not move its start (the embedded broker's rule).
async fn initialize_offsets(
    inner: &MemberInner,
    start: StartPosition,
) -> Result<(), ConnectorError> {
    let (s, t, g) = inner.ids()?;
    for partition in 0..inner.partitions {
        let at = inner.at(partition);
        let first_to_read = match start {
            StartPosition::Earliest => continue,
            StartPosition::Latest => link::head_offset(&inner.client, at).await?,
            StartPosition::Offset(offset) => offset,
            StartPosition::Timestamp(micros) => link::offset_at(&inner.client, at, micros).await?,
        };
        let Some(last_handled) = start_to_store(first_to_read) else {
            continue;
        };
        match inner
            .client
            .store_consumer_offset(
                &Consumer::group(g.clone()),
                &s,
                &t,
                Some(partition),
                last_handled,
            )
            .await
        {
            Ok(()) => {}
            // Another member joined meanwhile and owns the partition; it starts at
            // the beginning there.
            Err(e) if is_membership_error(&e) => {
                tracing::warn!(group = %inner.group, partition, "could not store the start offset: the partition went to another member");
            }
            Err(e) => return Err(inner.group_error("store the start offset", e)),
        }
    }
    Ok(())
}

/// A [`GroupConsumer`] on a remote server.
///
/// `poll` reads every owned partition from this member's own cursor with an explicit
/// offset (never the server's auto-commit), `commit` stores the group offset after
/// re-checking ownership with the server. When the server reports a new generation,
/// or forgot this member (reconnect) and it joined again, every owned partition
/// restarts after the group's committed offset.
#[derive(Debug)]
pub(super) struct RemoteGroupMember {
    inner: Arc<MemberInner>,
}

impl RemoteGroupMember {
    /// One poll over the owned partitions, each from this member's cursor.
    async fn poll_owned(&self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let inner = &*self.inner;
        let max = max.max(1);
        let mut cursors = inner.cursors.lock().await;
        let mut closed = inner.closed.clone();
        let mut backoff = Backoff::new();
        let consumer = Consumer::group(ident(inner.group.as_str())?);
        loop {
            if *closed.borrow() {
                return Err(ConnectorError::ShuttingDown);
            }
            let synced = inner.current().await?;
            let key = (synced.epoch, synced.assignment.generation);
            if !cursors.is_for(&key) {
                let mut committed = Vec::with_capacity(synced.assignment.partitions.len());
                for &partition in &synced.assignment.partitions {
                    committed.push((partition, inner.stored_offset(partition).await?));
                }
                cursors.reset(key, committed);
            }
            for (partition, offset) in
                std::mem::take(&mut *inner.seeks.lock().unwrap_or_else(PoisonError::into_inner))
            {
                if synced.assignment.partitions.contains(&partition) {
                    cursors.seek(partition, offset);
                }
            }
            let mut out = Vec::new();
            let mut advanced = Vec::new();
            for (partition, from) in cursors.round(&synced.assignment.partitions) {
                let polled = poll_partition(
                    &inner.client,
                    &consumer,
                    inner.at(partition),
                    PollingStrategy::offset(from),
                    Some(from),
                    max - out.len() as u32,
                )
                .await;
                let polled = match polled {
                    Ok(polled)
                        if polled.is_empty()
                            && polled.partition_id == RESYNC_REQUIRED_PARTITION_SENTINEL =>
                    {
                        break;
                    }
                    Ok(polled) => polled,
                    // Rebalanced under this poll: the next round syncs again.
                    Err(e) if is_membership_error(&e) => break,
                    Err(e) => return Err(inner.group_error("poll", e)),
                };
                let messages = polled.into_messages(partition);
                if let Some(last) = messages.last() {
                    advanced.push((partition, last.offset + 1));
                    out.extend(messages);
                    if out.len() as u32 >= max {
                        break;
                    }
                }
            }
            {
                // A seek that came while this round read: what was read of that
                // partition is from before it; drop it (the next round reads from the
                // sought offset).
                let seeks = inner.seeks.lock().unwrap_or_else(PoisonError::into_inner);
                if !seeks.is_empty() {
                    out.retain(|m| !seeks.iter().any(|&(p, _)| p == m.partition));
                    advanced.retain(|(partition, _)| !seeks.iter().any(|&(p, _)| p == *partition));
                }
            }
            if !out.is_empty() {
                cursors.finish_round(advanced);
                return Ok(out);
            }
            cursors.finish_round([]);
            if !inner
                .seeks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
            {
                continue;
            }
            backoff.wait(&mut closed).await?;
        }
    }
}

#[async_trait]
impl GroupConsumer for RemoteGroupMember {
    fn group(&self) -> &GroupName {
        &self.inner.group
    }

    /// The assignment as of this member's last exchange with the server (every
    /// `poll` and `commit` refreshes it).
    fn assignment(&self) -> Assignment {
        if self.inner.left.load(Ordering::Acquire) {
            return Assignment::default();
        }
        self.inner.cached_assignment()
    }

    /// Cancel-safe: the cursors move only when messages are returned. Fails with
    /// [`ConnectorError::ShuttingDown`] once the connector shuts down, whenever the
    /// shutdown lands.
    async fn poll(&self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let polled = self.poll_owned(max).await;
        unless_closed(polled, &self.inner.closed)
    }

    /// Applied at the start of the next poll round (a poll waiting at the head polls
    /// again within 100 ms).
    fn seek(&self, partition: u32, offset: u64) {
        self.inner
            .seeks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((partition, offset));
    }

    async fn commit(&self, partition: u32, offset: u64) -> Result<(), ConnectorError> {
        let inner = &*self.inner;
        if partition >= inner.partitions {
            return Err(ConnectorError::PartitionNotFound {
                stream: inner.stream.to_string(),
                topic: inner.topic.to_string(),
                partition,
                partitions: inner.partitions,
            });
        }
        if *inner.closed.borrow() {
            return Err(ConnectorError::ShuttingDown);
        }
        if inner.left.load(Ordering::Acquire) {
            return Err(inner.fenced(partition));
        }
        let synced = inner.current().await?;
        if !synced.assignment.partitions.contains(&partition) {
            return Err(ConnectorError::Fenced {
                group: inner.group.to_string(),
                partition,
                generation: synced.assignment.generation,
            });
        }
        let (s, t, g) = inner.ids()?;
        match inner
            .client
            .store_consumer_offset(&Consumer::group(g), &s, &t, Some(partition), offset)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_membership_error(&e) => Err(inner.fenced(partition)),
            Err(e) => Err(sdk_error(
                format!(
                    "commit offset {offset} of partition {partition} for group {:?}",
                    inner.group.as_str()
                ),
                e,
            )),
        }
    }

    /// Waits at most `remote.connect_timeout_ms` for the server (then fails with
    /// [`ConnectorError::Timeout`]); this member's connection is closed in any case,
    /// which makes the server drop the membership.
    async fn leave(&self) -> Result<(), ConnectorError> {
        self.inner.leave_now().await
    }
}

impl Drop for RemoteGroupMember {
    fn drop(&mut self) {
        if self.inner.left.load(Ordering::Acquire) {
            return;
        }
        // Leave in the background; without a runtime, closing the connection (when
        // the client drops) makes the server drop the membership.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::clone(&self.inner);
            runtime.spawn(async move {
                if let Err(error) = inner.leave_now().await {
                    tracing::debug!(%error, "leaving the group on drop failed");
                }
            });
        }
    }
}
