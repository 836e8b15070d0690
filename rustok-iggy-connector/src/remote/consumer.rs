//! Consumer-group members on a remote server, with commit after ack.
//!
//! Each member has its own connection: the server keys membership by connection
//! (link), so two members in one process are two members for the server too, and
//! a member's polls never queue behind another's.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

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
use tokio::task::JoinHandle;

use super::backoff::{Backoff, unless_closed};
use super::client::{self, is_already_exists, is_group_not_found, is_membership_error, sdk_error};
use super::link::{self, At, Link, ident, poll_partition, topic_error};
use crate::connector::{Assignment, GroupConsumer, StartPosition};
use crate::error::ConnectorError;
use crate::error_codes::ErrorCode;
use crate::member::{Cursors, first_after, start_to_store};
use crate::message::ReceivedMessage;
use crate::names::{GroupName, StreamName, TopicName};

/// How long a busy member reads with its cached assignment before it asks the server
/// again. A partition it lost is noticed at once (the server refuses the poll), one it
/// gained when its reads come back empty or after this interval.
const REFRESH: Duration = Duration::from_millis(250);

/// The membership as this member last saw it.
#[derive(Debug, Default)]
struct Membership {
    /// Counts this member's joins (a reconnect makes the server forget the member,
    /// which then joins again).
    epoch: u64,
    assignment: Assignment,
    /// Partitions whose cursor restarts after the group's commit before they are read
    /// again: they left the assignment (or the membership was renewed) since their
    /// cursor was set. What was read of them before is not delivered any more.
    lost: BTreeSet<u32>,
    /// The server refused a read (the assignment is out of date), or a read came back
    /// empty: the next poll round asks the server first.
    stale: bool,
    synced_at: Option<Instant>,
}

impl Membership {
    /// Whether what was read of `partition` may still be delivered.
    fn readable(&self, partition: u32) -> bool {
        self.assignment.partitions.contains(&partition) && !self.lost.contains(&partition)
    }

    fn needs_sync(&self) -> bool {
        self.stale || self.synced_at.is_none_or(|at| at.elapsed() >= REFRESH)
    }
}

/// Drops what a poll read of partitions it may no longer deliver: a seek came for
/// them after the read, or the member lost them (or renewed its membership) since.
/// `advanced` (the cursor moves of the read) loses them too.
fn drop_unreadable(
    messages: &mut Vec<ReceivedMessage>,
    advanced: &mut Vec<(u32, u64)>,
    seeks: &[(u32, u64)],
    membership: &Membership,
) {
    let keep = |partition: u32| {
        membership.readable(partition) && !seeks.iter().any(|&(p, _)| p == partition)
    };
    messages.retain(|m| keep(m.partition));
    advanced.retain(|&(partition, _)| keep(partition));
}

/// A poll read ahead of the caller.
#[derive(Debug, Default)]
enum Ahead {
    #[default]
    Nothing,
    /// A poll round running in the background.
    Reading(JoinHandle<Result<Vec<ReceivedMessage>, ConnectorError>>),
    /// Read and not handed out yet (the cursors are past it).
    Read(Vec<ReceivedMessage>),
}

/// The shared part of a member (a task of its own holds a weak reference to make it
/// leave at shutdown).
pub(crate) struct MemberInner {
    client: IggyClient,
    stream: StreamName,
    topic: TopicName,
    group: GroupName,
    partitions: u32,
    /// Where this member reads each owned partition; taken by one poll round at a time.
    cursors: tokio::sync::Mutex<Cursors<()>>,
    membership: std::sync::Mutex<Membership>,
    /// The next poll, read while the caller handles the last one.
    ahead: tokio::sync::Mutex<Ahead>,
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
            .field("epoch", &self.membership().epoch)
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

    fn membership(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn cached_assignment(&self) -> Assignment {
        self.membership().assignment.clone()
    }

    fn seeks(&self) -> std::sync::MutexGuard<'_, Vec<(u32, u64)>> {
        self.seeks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins (again) and starts a new membership epoch: every partition restarts
    /// after the group's commit.
    async fn join(&self) -> Result<(), ConnectorError> {
        let (s, t, g) = self.ids()?;
        self.client
            .join_consumer_group(&s, &t, &g)
            .await
            .map_err(|e| self.group_error("join", e))?;
        let mut membership = self.membership();
        membership.epoch += 1;
        membership.lost.extend(0..self.partitions);
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

    /// Asks the server for this member's assignment, joining again when the server
    /// forgot this member (the connection was re-established, or the server
    /// restarted). Partitions that left the assignment restart after the group's
    /// commit should they come back.
    async fn refresh(&self) -> Result<Assignment, ConnectorError> {
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
        let mut membership = self.membership();
        let gone: Vec<u32> = membership
            .assignment
            .partitions
            .iter()
            .copied()
            .filter(|p| !assignment.partitions.contains(p))
            .collect();
        membership.lost.extend(gone);
        membership.assignment = assignment.clone();
        membership.stale = false;
        membership.synced_at = Some(Instant::now());
        Ok(assignment)
    }

    /// The assignment to read with: the cached one, unless it is out of date.
    async fn assignment_to_read(&self) -> Result<Assignment, ConnectorError> {
        let cached = {
            let membership = self.membership();
            (!membership.needs_sync()).then(|| membership.assignment.clone())
        };
        match cached {
            Some(assignment) if !self.left.load(Ordering::Acquire) => Ok(assignment),
            _ => self.refresh().await,
        }
    }

    fn mark_stale(&self) {
        self.membership().stale = true;
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
        if let Ok(mut ahead) = self.ahead.try_lock()
            && let Ahead::Reading(read) = std::mem::take(&mut *ahead)
        {
            read.abort();
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
        membership: std::sync::Mutex::new(Membership::default()),
        ahead: tokio::sync::Mutex::new(Ahead::Nothing),
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
    inner.refresh().await?;
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
/// offset (never the server's auto-commit), `commit` stores the group offset; the
/// server refuses both on a partition this member does not own (the fence), which
/// makes the member ask for its assignment again. A busy member also asks every
/// [`REFRESH`], an idle one whenever its reads come back empty, so partitions it
/// gained are noticed. A partition that left the assignment, and every partition
/// after the member joined again (reconnect), restarts after the group's committed
/// offset; what was read of it before is not delivered.
///
/// A poll that returned a full batch starts the next one at once (one poll ahead,
/// of the same size), so the next call finds it read.
#[derive(Debug)]
pub(super) struct RemoteGroupMember {
    inner: Arc<MemberInner>,
}

/// What one poll round got.
enum Round {
    Read(Vec<ReceivedMessage>),
    /// Nothing to read with the assignment used.
    Empty,
    /// The server refused a read: the assignment was out of date.
    Fenced,
}

impl MemberInner {
    /// Restarts the partitions that were lost (or were never read) after the group's
    /// commit, and applies the seeks.
    async fn set_cursors(
        &self,
        cursors: &mut Cursors<()>,
        owned: &[u32],
    ) -> Result<(), ConnectorError> {
        let lost = std::mem::take(&mut self.membership().lost);
        for partition in lost {
            cursors.forget(partition);
        }
        for &partition in owned {
            if !cursors.has(partition) {
                let committed = self.stored_offset(partition).await?;
                cursors.seek(partition, first_after(committed));
            }
        }
        for (partition, offset) in std::mem::take(&mut *self.seeks()) {
            if owned.contains(&partition) {
                cursors.seek(partition, offset);
            }
        }
        Ok(())
    }

    /// One read of the owned partitions, each from its cursor, until `max` messages.
    /// Cancel-safe: the cursors move only when it returns.
    async fn round(&self, cursors: &mut Cursors<()>, max: u32) -> Result<Round, ConnectorError> {
        if *self.closed.borrow() {
            return Err(ConnectorError::ShuttingDown);
        }
        let consumer = Consumer::group(ident(self.group.as_str())?);
        let assignment = self.assignment_to_read().await?;
        self.set_cursors(cursors, &assignment.partitions).await?;
        let mut out = Vec::new();
        let mut advanced = Vec::new();
        let mut fenced = false;
        for (partition, from) in cursors.round(&assignment.partitions) {
            let polled = poll_partition(
                &self.client,
                &consumer,
                self.at(partition),
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
                    fenced = true;
                    break;
                }
                Ok(polled) => polled,
                Err(e) if is_membership_error(&e) => {
                    fenced = true;
                    break;
                }
                Err(e) => return Err(self.group_error("poll", e)),
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
            // A seek, a lost partition or a new membership that came while this
            // round read: what was read of those partitions is not delivered (the
            // next round reads them from where they restart).
            let seeks = self.seeks();
            let mut membership = self.membership();
            drop_unreadable(&mut out, &mut advanced, &seeks, &membership);
            if fenced || out.is_empty() {
                membership.stale = true;
            }
        }
        cursors.finish_round(advanced);
        Ok(if !out.is_empty() {
            Round::Read(out)
        } else if fenced {
            Round::Fenced
        } else {
            Round::Empty
        })
    }

    /// Poll rounds until one reads something, waiting with a backoff at the head.
    async fn poll_owned(&self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let mut cursors = self.cursors.lock().await;
        let mut closed = self.closed.clone();
        let mut backoff = Backoff::new();
        // An empty round with an assignment that was not just asked for asks again
        // at once (a partition may have been gained), once.
        let mut asked_again = false;
        loop {
            match self.round(&mut cursors, max).await? {
                Round::Read(out) => return Ok(out),
                Round::Fenced | Round::Empty if !asked_again => asked_again = true,
                Round::Fenced | Round::Empty => {
                    if self.seeks().is_empty() {
                        backoff.wait(&mut closed).await?;
                    }
                    asked_again = false;
                }
            }
        }
    }

    /// Hands out what was read ahead, if any of it may still be delivered: at most
    /// `max` messages; the rest stays for the next poll.
    fn take_ahead(&self, ahead: &mut Ahead, max: u32) -> Option<Vec<ReceivedMessage>> {
        let Ahead::Read(read) = ahead else {
            return None;
        };
        drop_unreadable(read, &mut Vec::new(), &self.seeks(), &self.membership());
        let max = max as usize;
        let out = if read.len() > max {
            let rest = read.split_off(max);
            std::mem::replace(read, rest)
        } else {
            std::mem::take(read)
        };
        if read.is_empty() {
            *ahead = Ahead::Nothing;
        }
        (!out.is_empty()).then_some(out)
    }
}

impl RemoteGroupMember {
    /// The next poll: what was read ahead, else a poll of its own. After a full
    /// batch, the next round starts in the background.
    async fn next_poll(&self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let inner = &self.inner;
        let max = max.max(1);
        // Held to the end: one poll at a time hands out and reads ahead.
        let mut ahead = inner.ahead.lock().await;
        if let Ahead::Reading(read) = &mut *ahead {
            // Cancel-safe: a poll cancelled here leaves the read in place.
            let result = read.await;
            *ahead = Ahead::Nothing;
            match result {
                Ok(Ok(messages)) => *ahead = Ahead::Read(messages),
                Ok(Err(error)) => return Err(error),
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(_cancelled) => return Err(ConnectorError::ShuttingDown),
            }
        }
        let out = match inner.take_ahead(&mut ahead, max) {
            Some(out) => out,
            None => inner.poll_owned(max).await?,
        };
        if out.len() == max as usize
            && matches!(*ahead, Ahead::Nothing)
            && !inner.left.load(Ordering::Acquire)
        {
            let reader = Arc::clone(inner);
            *ahead = Ahead::Reading(tokio::spawn(async move {
                let mut cursors = reader.cursors.lock().await;
                match reader.round(&mut cursors, max).await? {
                    Round::Read(out) => Ok(out),
                    Round::Empty | Round::Fenced => Ok(Vec::new()),
                }
            }));
        }
        Ok(out)
    }

    /// Stores the offset, joining again first when the server forgot this member.
    async fn store(&self, partition: u32, offset: u64) -> Result<(), ConnectorError> {
        let inner = &*self.inner;
        let (s, t, g) = inner.ids()?;
        let consumer = Consumer::group(g);
        let mut rejoined = false;
        loop {
            match inner
                .client
                .store_consumer_offset(&consumer, &s, &t, Some(partition), offset)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if is_membership_error(&e) => {
                    // Refused: the partition is another member's now, or the server
                    // forgot this member (reconnect): ask again (joining again
                    // if need be), so that the assignment is current.
                    let member_gone =
                        ErrorCode(e.as_code()) == ErrorCode::CONSUMER_GROUP_MEMBER_NOT_FOUND;
                    inner.mark_stale();
                    let assignment = inner.refresh().await?;
                    if !member_gone || rejoined || !assignment.partitions.contains(&partition) {
                        return Err(ConnectorError::Fenced {
                            group: inner.group.to_string(),
                            partition,
                            generation: assignment.generation,
                        });
                    }
                    rejoined = true;
                }
                Err(e) => {
                    return Err(sdk_error(
                        format!(
                            "commit offset {offset} of partition {partition} for group {:?}",
                            inner.group.as_str()
                        ),
                        e,
                    ));
                }
            }
        }
    }
}

#[async_trait]
impl GroupConsumer for RemoteGroupMember {
    fn group(&self) -> &GroupName {
        &self.inner.group
    }

    /// The assignment as this member last saw it: asked at least every 250 ms while
    /// polling, and whenever the server refused a poll or a commit.
    fn assignment(&self) -> Assignment {
        if self.inner.left.load(Ordering::Acquire) {
            return Assignment::default();
        }
        self.inner.cached_assignment()
    }

    /// Cancel-safe: the cursors move only when messages are returned, and a poll read
    /// ahead stays for the next call. Fails with [`ConnectorError::ShuttingDown`] once
    /// the connector shuts down, whenever the shutdown lands.
    async fn poll(&self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let polled = self.next_poll(max).await;
        unless_closed(polled, &self.inner.closed)
    }

    /// One poll ahead, after a full one.
    fn reads_ahead(&self) -> bool {
        true
    }

    /// Applied at the start of the next poll round (a poll waiting at the head polls
    /// again within 100 ms); what was read ahead of the partition is dropped.
    fn seek(&self, partition: u32, offset: u64) {
        self.inner.seeks().push((partition, offset));
    }

    /// Returns once the server stored the offset. The server refuses it on a
    /// partition this member does not own ([`ConnectorError::Fenced`]); without a
    /// round trip of its own when the partition is in the assignment this member saw
    /// last.
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
        if !inner.cached_assignment().partitions.contains(&partition) {
            // Not in the assignment last seen: it may have been gained since.
            let assignment = inner.refresh().await?;
            if !assignment.partitions.contains(&partition) {
                return Err(ConnectorError::Fenced {
                    group: inner.group.to_string(),
                    partition,
                    generation: assignment.generation,
                });
            }
        }
        self.store(partition, offset).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(partition: u32, offset: u64) -> ReceivedMessage {
        ReceivedMessage {
            partition,
            offset,
            id: 1,
            timestamp: 0,
            origin_timestamp: 0,
            payload: bytes::Bytes::new(),
            headers: crate::message::Headers::default(),
            malformed_headers: None,
        }
    }

    #[test]
    fn what_was_read_of_lost_sought_or_renewed_partitions_is_not_delivered() {
        let mut membership = Membership {
            assignment: Assignment {
                generation: 3,
                partitions: vec![0, 1, 2],
            },
            ..Membership::default()
        };
        let all = || (0..4).map(|p| read(p, 10)).collect::<Vec<_>>();
        let moves = || (0..4).map(|p| (p, 11)).collect::<Vec<_>>();

        // Partition 3 is not owned; partition 1 was sought after the read.
        let (mut messages, mut advanced) = (all(), moves());
        drop_unreadable(&mut messages, &mut advanced, &[(1, 4)], &membership);
        let left: Vec<u32> = messages.iter().map(|m| m.partition).collect();
        assert_eq!(left, [0, 2]);
        assert_eq!(advanced, [(0, 11), (2, 11)]);

        // Partition 2 was lost and gained again since: it restarts after the commit,
        // so what was read before is not delivered.
        membership.lost.insert(2);
        let (mut messages, mut advanced) = (all(), moves());
        drop_unreadable(&mut messages, &mut advanced, &[], &membership);
        let left: Vec<u32> = messages.iter().map(|m| m.partition).collect();
        assert_eq!(left, [0, 1]);
        assert_eq!(advanced, [(0, 11), (1, 11)]);

        // A new membership (joined again): nothing read before it is delivered.
        membership.lost.extend(0..4);
        let (mut messages, mut advanced) = (all(), moves());
        drop_unreadable(&mut messages, &mut advanced, &[], &membership);
        assert!(messages.is_empty() && advanced.is_empty());
    }
}
