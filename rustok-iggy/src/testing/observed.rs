//! The kit's connector: the embedded connector, with every commit made through it
//! announced on a watch channel (what [`super::TestKit::wait_for_consumed`] awaits).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rustok_iggy_connector::{
    Assignment, ConnectorConfig, ConnectorError, ConnectorMode, EmbeddedConnector, GroupConsumer,
    GroupName, IggyConnector, MessageSubscriber, PingReport, PublishReceipt, PublishRequest,
    ReceivedMessage, StartPosition, StreamName, TopicInfo, TopicName, TopicSpec,
};
use tokio::sync::watch;

/// Forwards every call to the embedded connector; a commit that succeeded bumps
/// `commits` after it is stored.
pub(super) struct Observed {
    pub(super) inner: Arc<EmbeddedConnector>,
    pub(super) commits: Arc<watch::Sender<u64>>,
}

impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

#[async_trait]
impl IggyConnector for Observed {
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
        let inner = self.inner.join_group(stream, topic, group, start).await?;
        Ok(Box::new(ObservedMember {
            inner,
            commits: Arc::clone(&self.commits),
        }))
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
        self.inner.shutdown().await
    }
}

/// A group member whose successful commits are announced.
struct ObservedMember {
    inner: Box<dyn GroupConsumer>,
    commits: Arc<watch::Sender<u64>>,
}

impl fmt::Debug for ObservedMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

#[async_trait]
impl GroupConsumer for ObservedMember {
    fn group(&self) -> &GroupName {
        self.inner.group()
    }

    fn assignment(&self) -> Assignment {
        self.inner.assignment()
    }

    async fn poll(&self, max: u32) -> Result<Vec<ReceivedMessage>, ConnectorError> {
        self.inner.poll(max).await
    }

    fn seek(&self, partition: u32, offset: u64) {
        self.inner.seek(partition, offset);
    }

    fn reads_ahead(&self) -> bool {
        self.inner.reads_ahead()
    }

    async fn commit(&self, partition: u32, offset: u64) -> Result<(), ConnectorError> {
        self.inner.commit(partition, offset).await?;
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    async fn leave(&self) -> Result<(), ConnectorError> {
        self.inner.leave().await
    }
}
