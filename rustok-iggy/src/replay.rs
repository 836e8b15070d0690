//! Replay: read a topic again from an offset, a time or the beginning, under no
//! consumer identity (group offsets never move).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{BoxStream, SelectAll};
use futures::{Stream, StreamExt};
use rustok_iggy_connector::{MessageSubscriber, PollFrom};

use crate::decode::decode_message;
use crate::error::{DecodeError, Error};
use crate::event::IggyEvent;
use crate::metadata::EventMetadata;
use crate::subscription::DeliveryInfo;
use crate::transport::Transport;

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The oldest retained event of every partition.
    Beginning,
    /// This offset in every partition.
    Offset(u64),
    /// The first event stored at or after this time (µs since the Unix epoch).
    Timestamp(u64),
}

/// Where a replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayUntil {
    /// At the events stored when the replay started (a finite replay).
    Head,
    /// Before the first event stored after this time (µs); also bounded by the head
    /// at the start.
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

struct PartitionReplay {
    subscriber: Box<dyn MessageSubscriber>,
    /// Stop before this offset (`None`: follow).
    end: Option<u64>,
    until_time: Option<u64>,
    done: bool,
}

impl<E: IggyEvent> Transport<E> {
    /// Replays the topic from `from` until `until`, under its own consumer identity:
    /// no group's committed offset is read or moved. Upcasters of this transport apply.
    pub async fn replay(&self, from: ReplayFrom, until: ReplayUntil) -> Result<Replay<E>, Error> {
        let info = self
            .connector()
            .topic_info(self.stream(), self.topic())
            .await?
            .ok_or_else(|| rustok_iggy_connector::ConnectorError::TopicNotFound {
                stream: self.stream().to_string(),
                topic: self.topic().to_string(),
            })?;
        let poll_from = match from {
            ReplayFrom::Beginning => PollFrom::First,
            ReplayFrom::Offset(offset) => PollFrom::Offset(offset),
            ReplayFrom::Timestamp(ts) => PollFrom::Timestamp(ts),
        };
        let mut inner = SelectAll::new();
        for partition in 0..info.partitions {
            let head = info
                .next_offsets
                .get(partition as usize)
                .copied()
                .unwrap_or(0);
            let (end, until_time) = match until {
                ReplayUntil::Head => (Some(head), None),
                ReplayUntil::Timestamp(ts) => (Some(head), Some(ts)),
                ReplayUntil::Follow => (None, None),
            };
            if end == Some(0) {
                continue;
            }
            let subscriber = self
                .connector()
                .subscribe(self.stream(), self.topic(), partition, poll_from)
                .await?;
            let state = PartitionReplay {
                subscriber,
                end,
                until_time,
                done: false,
            };
            let upcasters = Arc::clone(self.upcasters());
            let topic = self.topic().to_string();
            let stream = futures::stream::unfold(state, move |mut state| {
                let upcasters = Arc::clone(&upcasters);
                let topic = topic.clone();
                async move {
                    if state.done {
                        return None;
                    }
                    let batch = match state.subscriber.next_batch(256).await {
                        Ok(batch) => batch,
                        Err(rustok_iggy_connector::ConnectorError::ShuttingDown) => return None,
                        Err(e) => {
                            state.done = true;
                            return Some((vec![Err(Error::from(e))], state));
                        }
                    };
                    let mut items = Vec::with_capacity(batch.len());
                    for message in batch {
                        let past_end = state.end.is_some_and(|end| message.offset >= end);
                        let past_time = state.until_time.is_some_and(|ts| message.timestamp > ts);
                        if past_end || past_time {
                            state.done = true;
                            break;
                        }
                        if state.end.is_some_and(|end| message.offset + 1 >= end) {
                            state.done = true;
                        }
                        items.push(match decode_message::<E>(&message, &upcasters) {
                            Ok((event, decoded)) => Ok(Replayed {
                                event,
                                info: DeliveryInfo {
                                    partition: message.partition,
                                    offset: message.offset,
                                    event_id: crate::metadata::event_id(
                                        &message.headers,
                                        message.id,
                                    ),
                                    event_type: decoded.event_type,
                                    schema_version: decoded.schema_version,
                                    timestamp: message.timestamp,
                                    attempt: 1,
                                    metadata: EventMetadata::read(&message.headers, message.id),
                                    headers: message.headers.clone(),
                                },
                            }),
                            Err((failure, event_type)) => {
                                Err(Error::Decode(Box::new(DecodeError {
                                    topic: topic.clone(),
                                    partition: message.partition,
                                    offset: message.offset,
                                    event_type,
                                    failure,
                                    delivery: None,
                                })))
                            }
                        });
                        if state.done {
                            break;
                        }
                    }
                    Some((items, state))
                }
            })
            .flat_map(futures::stream::iter)
            .boxed();
            inner.push(stream);
        }
        Ok(Replay { inner })
    }
}
