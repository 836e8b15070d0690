//! Replay cursors over one partition of a remote server.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use iggy::prelude::PollingStrategy;
use tokio::sync::watch;

use super::backoff::{Backoff, unless_closed};
use super::convert;
use super::link::{At, Link};
use crate::connector::{MessageSubscriber, StartPosition};
use crate::error::ConnectorError;
use crate::message::ReceivedMessage;
use crate::names::{StreamName, TopicName};

/// Where the cursor stands.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// Nothing read yet: the original start (`First` or `Timestamp`).
    Start(StartPosition),
    /// The next offset to read.
    At(u64),
}

/// A [`MessageSubscriber`] over a remote partition. It polls with an explicit
/// strategy under the replay identity and keeps its cursor here, so no stored
/// consumer offset is read or moved.
pub(super) struct RemoteSubscriber {
    link: Arc<Link>,
    stream: StreamName,
    topic: TopicName,
    partition: (u32, u32),
    cursor: Cursor,
    closed: watch::Receiver<bool>,
}

impl fmt::Debug for RemoteSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSubscriber")
            .field("stream", &self.stream)
            .field("topic", &self.topic)
            .field("partition", &self.partition.0)
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl RemoteSubscriber {
    /// A subscriber from `from`; `Latest` is resolved to the partition's head now.
    pub(super) async fn open(
        link: Arc<Link>,
        stream: StreamName,
        topic: TopicName,
        partition: (u32, u32),
        from: StartPosition,
    ) -> Result<Self, ConnectorError> {
        let cursor = match from {
            StartPosition::Latest => {
                let at = At {
                    stream: &stream,
                    topic: &topic,
                    partition: partition.0,
                    partitions: partition.1,
                };
                Cursor::At(super::link::head_offset(link.connection(partition.0), at).await?)
            }
            StartPosition::Offset(offset) => Cursor::At(offset),
            StartPosition::Earliest | StartPosition::Timestamp(_) => Cursor::Start(from),
        };
        let closed = link.closed.subscribe();
        Ok(Self {
            link,
            stream,
            topic,
            partition,
            cursor,
            closed,
        })
    }
}

#[async_trait]
impl MessageSubscriber for RemoteSubscriber {
    /// Cancel-safe: the cursor moves only when a batch is returned. Fails with
    /// [`ConnectorError::ShuttingDown`] once the connector shuts down, whenever the
    /// shutdown lands.
    async fn next_batch(&mut self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let batch = self.next_batch_until_closed(max).await;
        unless_closed(batch, &self.closed)
    }
}

impl RemoteSubscriber {
    /// The read; [`MessageSubscriber::next_batch`] reports its failures after a
    /// shutdown as the shutdown.
    async fn next_batch_until_closed(
        &mut self,
        max: u32,
    ) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        let max = max.max(1);
        let mut backoff = Backoff::new();
        loop {
            if self.link.is_closed() {
                return Err(ConnectorError::ShuttingDown);
            }
            let (strategy, from) = match self.cursor {
                Cursor::At(offset) => (PollingStrategy::offset(offset), Some(offset)),
                Cursor::Start(start) => (convert::strategy(start), None),
            };
            let at = At {
                stream: &self.stream,
                topic: &self.topic,
                partition: self.partition.0,
                partitions: self.partition.1,
            };
            let messages = self.link.replay(at, strategy, from, max).await?;
            if let Some(last) = messages.last() {
                self.cursor = Cursor::At(last.offset + 1);
                return Ok(messages);
            }
            backoff.wait(&mut self.closed).await?;
        }
    }
}
