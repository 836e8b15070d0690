//! Hooks (on the test kit's pass-through connector, [`Observed`]) that make
//! dead-letter writes fail on demand: a dead-letter outage, with everything else
//! passed through to a real connector.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use rustok_iggy::testing::{Hooks, Observed};
use rustok_iggy_connector::{ConnectorError, IggyConnector, PublishRequest};
use tokio::sync::Notify;

/// Publishes to a `*.dlq` topic (or the topics named by
/// [`DeadLetterOutage::of_topics_ending`]) fail with a connection error while
/// [`DeadLetterOutage::set_down`] is on; every other call passes through. The
/// wrapper's shutdown leaves the inner connector, which belongs to the test, running.
#[derive(Debug)]
pub struct DeadLetterOutage {
    suffix: &'static str,
    down: AtomicBool,
    failures: AtomicU64,
    failed: Notify,
}

impl DeadLetterOutage {
    /// Wraps `inner`; dead-letter writes work until [`DeadLetterOutage::set_down`].
    pub fn new(inner: Arc<dyn IggyConnector>) -> Arc<Observed<Self>> {
        Self::of_topics_ending(inner, ".dlq")
    }

    /// Wraps `inner`; publishes to topics whose name ends with `suffix` (a retry
    /// tier, `.retry.1`) fail during the outage.
    pub fn of_topics_ending(
        inner: Arc<dyn IggyConnector>,
        suffix: &'static str,
    ) -> Arc<Observed<Self>> {
        Observed::new(
            inner,
            Self {
                suffix,
                down: AtomicBool::new(false),
                failures: AtomicU64::new(0),
                failed: Notify::new(),
            },
        )
    }

    /// Starts (`true`) or ends (`false`) the outage.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Dead-letter writes refused so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// Waits until a dead-letter write was refused (one that happened before the call
    /// counts once).
    pub async fn wait_for_failure(&self) {
        self.failed.notified().await;
    }
}

#[async_trait]
impl Hooks for DeadLetterOutage {
    async fn before_publish(&self, request: &PublishRequest) -> Result<(), ConnectorError> {
        if request.topic.as_str().ends_with(self.suffix) && self.down.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            self.failed.notify_one();
            return Err(ConnectorError::Connection {
                message: "injected: the dead-letter topic is unavailable".into(),
                source: None,
            });
        }
        Ok(())
    }

    fn passes_shutdown_on(&self) -> bool {
        false
    }
}
