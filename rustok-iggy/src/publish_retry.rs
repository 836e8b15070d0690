//! Publish retries: a publish that failed on a lost connection or a timeout is sent
//! again, with the same message ids to the same partition, so that the broker's
//! deduplication window stores it once.

use std::future::Future;
use std::time::Duration;

use rustok_iggy_connector::{ConnectorError, PublishReceipt, PublishRequest};

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

    /// Sends `request` with `publish` until it is accepted, fails with an error that is
    /// not transient, or the retries are used up (the last error is returned). Every
    /// attempt but the last possible one sends a clone and keeps `request` for the
    /// next (messages built with shared payloads and headers clone for a reference
    /// count each); the last sends `request` itself, so no retry costs no copy.
    pub(crate) async fn publish<F, Fut>(
        &self,
        request: PublishRequest,
        mut publish: F,
    ) -> Result<PublishReceipt, ConnectorError>
    where
        F: FnMut(PublishRequest) -> Fut,
        Fut: Future<Output = Result<PublishReceipt, ConnectorError>>,
    {
        let mut pause = self.backoff;
        let mut retries = 0;
        while retries < self.max_retries {
            match publish(request.clone()).await {
                Err(error) if error.is_transient() => {
                    retries += 1;
                    tracing::warn!(%error, retry = retries, ?pause, "publish failed; sending it again with the same message ids");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(self.max_backoff);
                }
                other => return other,
            }
        }
        publish(request).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rustok_iggy_connector::{OutgoingMessage, Partitioning, StreamName, TopicName};

    use super::*;

    fn timed_out() -> ConnectorError {
        ConnectorError::Timeout {
            what: "injected".into(),
            after: Duration::from_secs(1),
        }
    }

    fn request() -> PublishRequest {
        let mut request =
            PublishRequest::new(StreamName::new("s").unwrap(), TopicName::new("t").unwrap())
                .partition(1);
        request.messages = (1..=3)
            .map(|id| OutgoingMessage::new(vec![id as u8; 4]).with_id(id))
            .collect();
        request
    }

    /// What an attempt sent: the partitioning and the messages (ids, payloads,
    /// headers).
    type Sent = (Partitioning, Vec<OutgoingMessage>);

    fn sent(request: &PublishRequest) -> Sent {
        (request.partitioning.clone(), request.messages.clone())
    }

    fn retry(max_retries: u32) -> PublishRetry {
        PublishRetry {
            max_retries,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        }
    }

    /// Sends with `retry`, failing the first `failures` attempts with `error()`;
    /// returns the answer and the requests each attempt got.
    async fn send(
        retry: PublishRetry,
        failures: usize,
        error: fn() -> ConnectorError,
    ) -> (Result<PublishReceipt, ConnectorError>, Vec<Sent>) {
        let seen = Mutex::new(Vec::new());
        let answer = retry
            .publish(request(), |request| {
                let attempt = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(sent(&request));
                    seen.len()
                };
                async move {
                    if attempt <= failures {
                        Err(error())
                    } else {
                        Ok(PublishReceipt::stored(1, 0, request.messages.len() as u32))
                    }
                }
            })
            .await;
        (answer, seen.into_inner().unwrap())
    }

    #[tokio::test]
    async fn transient_failures_resend_the_same_request() {
        let (answer, seen) = send(retry(3), 2, timed_out).await;
        assert_eq!(answer.unwrap().count, 3);
        assert_eq!(seen.len(), 3, "two retries");
        for attempt in &seen {
            assert_eq!(
                attempt,
                &sent(&request()),
                "same ids, payloads and partition"
            );
        }
    }

    #[tokio::test]
    async fn the_last_retry_is_the_last_attempt_and_its_error_is_returned() {
        let (answer, seen) = send(retry(2), 5, timed_out).await;
        assert!(matches!(answer, Err(ConnectorError::Timeout { .. })));
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|attempt| attempt == &sent(&request())));

        let (answer, seen) = send(PublishRetry::none(), 1, timed_out).await;
        assert!(answer.is_err());
        assert_eq!(seen, [sent(&request())], "no retry");
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let (answer, seen) = send(retry(3), 1, || {
            ConnectorError::InvalidRequest("injected".into())
        })
        .await;
        assert!(matches!(answer, Err(ConnectorError::InvalidRequest(_))));
        assert_eq!(seen.len(), 1);
    }
}
