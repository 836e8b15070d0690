//! The pause between polls at the head of a partition (the server has no push).

use std::time::Duration;

use tokio::sync::watch;

use crate::error::ConnectorError;

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
