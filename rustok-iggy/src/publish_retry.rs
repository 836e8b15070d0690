//! Publish retries: a publish that failed on a lost connection or a timeout is sent
//! again, with the same message ids to the same partition, so that the broker's
//! deduplication window stores it once.

use std::future::Future;
use std::time::Duration;

use rustok_iggy_connector::ConnectorError;

/// How often a publish is sent again after a transient failure (a lost connection,
/// a timeout: [`ConnectorError::is_transient`]). Other errors are returned at once.
///
/// Every retry resends the same message ids to the same partition. With the broker's
/// deduplication on (the embedded broker's default; `message_deduplication` on an
/// Iggy server), a batch the broker stored before its answer was lost is stored
/// once, and the receipt says the event was a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRetry {
    /// Retries after the first attempt (default 3); 0 never retries.
    pub max_retries: u32,
    /// The pause before the first retry (default 50 ms), doubled for each next one.
    pub backoff: Duration,
    /// The longest pause (default 1 s).
    pub max_backoff: Duration,
}

impl Default for PublishRetry {
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl PublishRetry {
    /// No retry: the first failure is returned.
    #[must_use]
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not transient,
    /// or the retries are used up (the last error is returned).
    pub(crate) async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let mut pause = self.backoff;
        let mut retries = 0;
        loop {
            match attempt().await {
                Err(error) if error.is_transient() && retries < self.max_retries => {
                    retries += 1;
                    tracing::warn!(%error, retry = retries, ?pause, "publish failed; sending it again with the same message ids");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(self.max_backoff);
                }
                other => return other,
            }
        }
    }
}
