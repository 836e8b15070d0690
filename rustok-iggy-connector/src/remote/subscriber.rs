//! Replay cursors over one partition of a remote server.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use iggy::prelude::PollingStrategy;
use tokio::sync::watch;

use super::convert;
use super::session::{At, Session};
use crate::connector::{MessageSubscriber, PollFrom};
use crate::error::ConnectorError;
use crate::message::ReceivedMessage;
use crate::names::{StreamName, TopicName};

/// Waiting at the head of a partition: the server has no push, so the reader polls
/// again after 1 ms, doubling up to 100 ms while nothing arrives.
#[derive(Debug)]
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(100);

    pub(super) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The next pause.
    pub(super) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    /// Sleeps the next pause, or fails with [`ConnectorError::ShuttingDown`] when
    /// the connector closes first.
    pub(super) async fn wait(
        &mut self,
        closed: &mut watch::Receiver<bool>,
    ) -> Result<(), ConnectorError> {
        if *closed.borrow() {
            return Err(ConnectorError::ShuttingDown);
        }
        let delay = self.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            _ = closed.changed() => Err(ConnectorError::ShuttingDown),
        }
    }
}

/// `result`, or [`ConnectorError::ShuttingDown`] when it failed after the connector
/// closed. The shutdown signs out and closes the connections under the requests in
/// flight: what those requests then fail with (`ClientShutdown`, `Unauthenticated`,
/// "already left") is the shutdown, which a waiting read reports the same whether it
/// landed before the request, during it or while the reader waited.
pub(super) fn unless_closed<T>(
    result: Result<T, ConnectorError>,
    closed: &watch::Receiver<bool>,
) -> Result<T, ConnectorError> {
    match result {
        Err(_) if *closed.borrow() => Err(ConnectorError::ShuttingDown),
        other => other,
    }
}

/// Where the cursor stands.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// Nothing read yet: the original start (`First` or `Timestamp`).
    Start(PollFrom),
    /// The next offset to read.
    At(u64),
}

/// A [`MessageSubscriber`] over a remote partition. It polls with an explicit
/// strategy under the replay identity and keeps its cursor here, so no stored
/// consumer offset is read or moved.
pub(super) struct RemoteSubscriber {
    session: Arc<Session>,
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
        session: Arc<Session>,
        stream: StreamName,
        topic: TopicName,
        partition: (u32, u32),
        from: PollFrom,
    ) -> Result<Self, ConnectorError> {
        let cursor = match from {
            PollFrom::Latest => {
                let at = At {
                    stream: &stream,
                    topic: &topic,
                    partition: partition.0,
                    partitions: partition.1,
                };
                Cursor::At(super::session::head_offset(session.connection(partition.0), at).await?)
            }
            PollFrom::Offset(offset) => Cursor::At(offset),
            PollFrom::First | PollFrom::Timestamp(_) => Cursor::Start(from),
        };
        let closed = session.closed.subscribe();
        Ok(Self {
            session,
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
            if self.session.is_closed() {
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
            let messages = self.session.replay(at, strategy, from, max).await?;
            if let Some(last) = messages.last() {
                self.cursor = Cursor::At(last.offset + 1);
                return Ok(messages);
            }
            backoff.wait(&mut self.closed).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_100ms() {
        let mut backoff = Backoff::new();
        let delays: Vec<_> = (0..9).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 100, 100]);
    }

    #[tokio::test]
    async fn backoff_wait_ends_when_the_connector_closes() {
        let (tx, mut rx) = watch::channel(false);
        let mut backoff = Backoff::new();
        backoff.wait(&mut rx).await.unwrap();
        tx.send_replace(true);
        assert!(matches!(
            backoff.wait(&mut rx).await,
            Err(ConnectorError::ShuttingDown)
        ));
    }
}
