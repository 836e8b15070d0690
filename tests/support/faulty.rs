//! A connector wrapper (a test double) that makes dead-letter writes fail on demand:
//! a dead-letter outage, with everything else passed through to a real connector.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rustok_iggy_connector::{
    ConnectorConfig, ConnectorError, ConnectorMode, GroupConsumer, GroupName, IggyConnector,
    MessageSubscriber, PingReport, PublishReceipt, PublishRequest, ReceivedMessage, StartPosition,
    StreamName, TopicInfo, TopicName, TopicSpec,
};
use tokio::sync::Notify;

/// Passes every call to `inner`, except publishes to a `*.dlq` topic (or the topics
/// named by [`DeadLetterOutage::of_topics_ending`]) while
/// [`DeadLetterOutage::set_down`] is on: those fail with a connection error.
#[derive(Debug)]
pub struct DeadLetterOutage {
    inner: Arc<dyn IggyConnector>,
    suffix: &'static str,
    down: AtomicBool,
    failures: AtomicU64,
    failed: Notify,
}

impl DeadLetterOutage {
    /// Wraps `inner`; dead-letter writes work until [`DeadLetterOutage::set_down`].
    pub fn new(inner: Arc<dyn IggyConnector>) -> Arc<Self> {
        Self::of_topics_ending(inner, ".dlq")
    }

    /// Wraps `inner`; publishes to topics whose name ends with `suffix` (a retry
    /// tier, `.retry.1`) fail during the outage.
    pub fn of_topics_ending(inner: Arc<dyn IggyConnector>, suffix: &'static str) -> Arc<Self> {
        Arc::new(Self {
            inner,
            suffix,
            down: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            failed: Notify::new(),
        })
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
impl IggyConnector for DeadLetterOutage {
    fn mode(&self) -> ConnectorMode {
        self.inner.mode()
    }
    async fn connect(&self, config: &ConnectorConfig) -> Result<(), ConnectorError> {
        self.inner.connect(config).await
    }
    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }
    async fn ping(&self, timeout: Duration) -> Result<PingReport, ConnectorError> {
        self.inner.ping(timeout).await
    }
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<TopicInfo, ConnectorError> {
        self.inner.ensure_topic(spec).await
    }
    async fn topic_info(
        &self,
        stream: &StreamName,
        topic: &TopicName,
    ) -> Result<Option<TopicInfo>, ConnectorError> {
        self.inner.topic_info(stream, topic).await
    }
    async fn publish(&self, request: PublishRequest) -> Result<PublishReceipt, ConnectorError> {
        if request.topic.as_str().ends_with(self.suffix) && self.down.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            self.failed.notify_one();
            return Err(ConnectorError::Connection {
                message: "injected: the dead-letter topic is unavailable".into(),
                source: None,
            });
        }
        self.inner.publish(request).await
    }
    async fn poll(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partition: u32,
        from: StartPosition,
        max: u32,
    ) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        self.inner.poll(stream, topic, partition, from, max).await
    }
    async fn subscribe(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partition: u32,
        from: StartPosition,
    ) -> Result<Box<dyn MessageSubscriber>, ConnectorError> {
        self.inner.subscribe(stream, topic, partition, from).await
    }
    async fn join_group(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        group: &GroupName,
        start: StartPosition,
    ) -> Result<Box<dyn GroupConsumer>, ConnectorError> {
        self.inner.join_group(stream, topic, group, start).await
    }
    async fn committed_offsets(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        group: &GroupName,
    ) -> Result<Vec<Option<u64>>, ConnectorError> {
        self.inner.committed_offsets(stream, topic, group).await
    }
    async fn shutdown(&self) -> Result<(), ConnectorError> {
        // The wrapped connector belongs to the test, which shuts it down.
        Ok(())
    }
}
