//! Replay: read a topic again from a [`StartPosition`] (the beginning, an offset, a
//! time, or the head) until a [`ReplayUntil`], under no consumer identity: no group's
//! committed offset is read or moved, and nothing is acknowledged. A finite replay
//! always ends.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{BoxStream, SelectAll};
use futures::{Stream, StreamExt};
use rustok_iggy_connector::{
    ConnectorError, IggyConnector, MessageSubscriber, ReceivedMessage, StartPosition, StreamName,
    TopicName,
};

use crate::decode::Decoder;
use crate::error::{DecodeError, Error};
use crate::subscription::DeliveryInfo;

/// Where a replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayUntil {
    /// At the events stored when the replay started (a finite replay).
    Head,
    /// Before the first event stored after this time (µs; first stored, as for
    /// [`StartPosition::Timestamp`]); also bounded by the head at the start.
    Timestamp(u64),
    /// Never: after catching up, follow new events.
    Follow,
}

/// A replayed event: the event and where it was. Nothing to acknowledge.
#[derive(Debug, Clone)]
pub struct Replayed<E> {
    /// The event.
    pub event: E,
    /// Where it was.
    pub info: DeliveryInfo,
}

/// A [`Stream`] of replayed events, merged over the partitions (ordered within each).
/// Decode failures are error items; the replay goes on.
pub struct Replay<E> {
    inner: SelectAll<BoxStream<'static, Result<Replayed<E>, Error>>>,
}

impl<E> fmt::Debug for Replay<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("partitions", &self.inner.len())
            .finish()
    }
}

impl<E> Stream for Replay<E> {
    type Item = Result<Replayed<E>, Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// How one partition is read.
enum Source {
    /// A finite replay: non-waiting reads from `next` until `end` (the head when the
    /// replay started) or an empty read, so it ends whatever is (not) stored.
    Bounded {
        connector: Arc<dyn IggyConnector>,
        stream: StreamName,
        topic: TopicName,
        partition: u32,
        next: StartPosition,
        end: u64,
    },
    /// `ReplayUntil::Follow`: a reader that waits at the head for new events.
    Follow(Box<dyn MessageSubscriber>),
}

struct PartitionReplay {
    source: Source,
    /// `StartPosition::Timestamp`: messages first stored before it are left out. The
    /// broker's time index finds the start by append time; a migrated message was
    /// appended at the migration's time but first stored earlier
    /// ([`ReceivedMessage::stored_at`]).
    from_time: Option<u64>,
    until_time: Option<u64>,
    done: bool,
}

/// How many messages one read asks for.
const READ_BATCH: u32 = 256;

impl PartitionReplay {
    /// The next messages of this partition, with `done` set once the end is reached
    /// (the messages past the end are left out).
    async fn next_messages(&mut self) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let mut batch = match &mut self.source {
            Source::Follow(subscriber) => subscriber.next_batch(READ_BATCH).await?,
            Source::Bounded {
                connector,
                stream,
                topic,
                partition,
                next,
                end,
            } => {
                let mut batch = connector
                    .poll(stream, topic, *partition, *next, READ_BATCH)
                    .await?;
                match batch.last() {
                    // Nothing (more) at or after the start: the partition is done.
                    None => self.done = true,
                    Some(last) => {
                        *next = StartPosition::Offset(last.offset + 1);
                        if last.offset + 1 >= *end {
                            self.done = true;
                        }
                    }
                }
                let end = *end;
                batch.retain(|m| m.offset < end);
                batch
            }
        };
        if let Some(ts) = self.from_time {
            batch.retain(|m| m.stored_at() >= ts);
        }
        if let Some(ts) = self.until_time
            && let Some(cut) = batch.iter().position(|m| m.stored_at() > ts)
        {
            batch.truncate(cut);
            self.done = true;
        }
        Ok(batch)
    }
}

/// A replay of `stream`/`topic` decoded by `decoder` (see [`crate::Transport::replay`]).
pub(crate) async fn replay_with<E: Send + 'static>(
    connector: &Arc<dyn IggyConnector>,
    stream: &StreamName,
    topic: &TopicName,
    decoder: Decoder<E>,
    from: StartPosition,
    until: ReplayUntil,
) -> Result<Replay<E>, Error> {
    let info = connector.topic_info(stream, topic).await?.ok_or_else(|| {
        ConnectorError::TopicNotFound {
            stream: stream.to_string(),
            topic: topic.to_string(),
        }
    })?;
    let poll_from = from;
    let mut inner = SelectAll::new();
    for partition in 0..info.partitions {
        let head = info
            .next_offsets
            .get(partition as usize)
            .copied()
            .unwrap_or(0);
        let (source, until_time) = match until {
            ReplayUntil::Follow => (
                Source::Follow(
                    connector
                        .subscribe(stream, topic, partition, poll_from)
                        .await?,
                ),
                None,
            ),
            ReplayUntil::Head | ReplayUntil::Timestamp(_) => {
                // `Latest` starts at the head: a bounded replay from there is empty.
                let starts_past_the_end = match from {
                    StartPosition::Offset(offset) => offset >= head,
                    StartPosition::Latest => true,
                    StartPosition::Earliest | StartPosition::Timestamp(_) => head == 0,
                };
                if starts_past_the_end {
                    continue;
                }
                let until_time = match until {
                    ReplayUntil::Timestamp(ts) => Some(ts),
                    _ => None,
                };
                let source = Source::Bounded {
                    connector: Arc::clone(connector),
                    stream: stream.clone(),
                    topic: topic.clone(),
                    partition,
                    next: poll_from,
                    end: head,
                };
                (source, until_time)
            }
        };
        let state = PartitionReplay {
            source,
            from_time: match from {
                StartPosition::Timestamp(ts) => Some(ts),
                _ => None,
            },
            until_time,
            done: false,
        };
        let decoder = Arc::clone(&decoder);
        let topic = topic.to_string();
        let stream = futures::stream::unfold(state, move |mut state| {
            let decoder = Arc::clone(&decoder);
            let topic = topic.clone();
            async move {
                if state.done {
                    return None;
                }
                let batch = match state.next_messages().await {
                    Ok(batch) => batch,
                    Err(ConnectorError::ShuttingDown) => return None,
                    Err(e) => {
                        state.done = true;
                        return Some((vec![Err(Error::from(e))], state));
                    }
                };
                let items = batch
                    .iter()
                    .map(|message| replayed(message, &decoder, &topic))
                    .collect::<Vec<_>>();
                Some((items, state))
            }
        })
        .flat_map(futures::stream::iter)
        .boxed();
        inner.push(stream);
    }
    Ok(Replay { inner })
}

fn replayed<E>(
    message: &ReceivedMessage,
    decoder: &Decoder<E>,
    topic: &str,
) -> Result<Replayed<E>, Error> {
    match decoder(message) {
        Ok((event, decoded)) => Ok(Replayed {
            event,
            info: DeliveryInfo {
                partition: message.partition,
                offset: message.offset,
                event_id: crate::metadata::event_id(&message.headers, message.id),
                event_type: decoded.event_type,
                schema_version: decoded.schema_version,
                timestamp: message.stored_at(),
                attempt: 1,
                headers: message.headers.clone(),
            },
        }),
        Err((failure, event_type)) => Err(Error::Decode(Box::new(DecodeError {
            topic: topic.to_owned(),
            partition: message.partition,
            offset: message.offset,
            event_type,
            failure,
            delivery: None,
        }))),
    }
}
