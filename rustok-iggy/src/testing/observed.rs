//! A connector that passes every call through to a real one, with hooks around
//! publishes, group commits and shutdown: the kit's own connector (it announces
//! commits), and the seam a test uses to inject a fault at one call without writing
//! the forwarding of every [`IggyConnector`] method again.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rustok_iggy_connector::{
    Assignment, ConnectorConfig, ConnectorError, ConnectorMode, GroupConsumer, GroupName,
    IggyConnector, MessageSubscriber, PingReport, PublishReceipt, PublishRequest, ReceivedMessage,
    StartPosition, StreamName, TopicInfo, TopicName, TopicSpec,
};

/// What an [`Observed`] connector calls around the calls it passes through. Every
/// method has a default that changes nothing, so a hook overrides only what it
/// watches or breaks; `()` is the hook that does nothing.
///
/// A hook that returns an error makes the call fail with it: that is how a test
/// injects a broker failure (an outage, a lost answer, a crash between two writes)
/// into a real connector.
#[async_trait]
pub trait Hooks: Send + Sync + fmt::Debug + 'static {
    /// Called before a publish is passed on. An error is the publish's answer, and
    /// the request is then not passed on (nothing is stored). It may wait (a gate).
    async fn before_publish(&self, request: &PublishRequest) -> Result<(), ConnectorError> {
        let _ = request;
        Ok(())
    }

    /// Called with the inner connector's answer to a publish to `stream`/`topic`;
    /// what it returns is the answer the caller gets. Turning an `Ok` into an error
    /// is a stored batch whose answer was lost.
    fn after_publish(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        answer: Result<PublishReceipt, ConnectorError>,
    ) -> Result<PublishReceipt, ConnectorError> {
        let _ = (stream, topic);
        answer
    }

    /// Called before a group member's commit of `offset` on `partition` is passed
    /// on. An error is the commit's answer, and nothing is committed.
    fn before_commit(
        &self,
        group: &GroupName,
        partition: u32,
        offset: u64,
    ) -> Result<(), ConnectorError> {
        let _ = (group, partition, offset);
        Ok(())
    }

    /// Called after the inner member stored a commit of `offset` on `partition`
    /// (not after a failed one).
    fn after_commit(&self, group: &GroupName, partition: u32, offset: u64) {
        let _ = (group, partition, offset);
    }

    /// Whether [`IggyConnector::shutdown`] is passed on (by default it is). `false`
    /// when the inner connector belongs to someone else, who shuts it down: the
    /// wrapper's shutdown then succeeds and leaves it running.
    fn passes_shutdown_on(&self) -> bool {
        true
    }
}

/// The hook that does nothing: an [`Observed`] connector with it is a plain
/// pass-through.
impl Hooks for () {}

/// A connector that passes every call through to `inner` unchanged, except that it
/// calls `H`'s [`Hooks`] around publishes, the commits of the group members it
/// hands out, and shutdown.
///
/// Its guarantees are the inner connector's, as far as the hooks leave the calls
/// alone. [`crate::testing::TestKit::connector`] is one, over the kit's embedded
/// broker.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all()
/// #     .build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use rustok_iggy::connector::{ConnectorError, IggyConnector, PublishRequest};
/// use rustok_iggy::testing::{Hooks, Observed, TestKit};
///
/// /// Publishes fail while `down` is on.
/// #[derive(Debug, Default)]
/// struct Outage { down: AtomicBool }
///
/// #[async_trait::async_trait]
/// impl Hooks for Outage {
///     async fn before_publish(&self, _: &PublishRequest) -> Result<(), ConnectorError> {
///         if self.down.load(Ordering::SeqCst) {
///             return Err(ConnectorError::NotConnected);
///         }
///         Ok(())
///     }
/// }
///
/// let kit = TestKit::start().await?;
/// let outage = Observed::new(kit.connector(), Outage::default());
/// outage.hooks().down.store(true, Ordering::SeqCst);
/// // A transport on `outage` now sees a broker that refuses every publish.
/// # let _: Arc<dyn IggyConnector> = outage;
/// # Ok::<(), rustok_iggy::testing::KitError>(()) }).unwrap();
/// ```
pub struct Observed<H> {
    inner: Arc<dyn IggyConnector>,
    hooks: Arc<H>,
}

impl<H: Hooks> Observed<H> {
    /// Wraps `inner`, calling `hooks` around its calls.
    pub fn new(inner: Arc<dyn IggyConnector>, hooks: H) -> Arc<Self> {
        Arc::new(Self {
            inner,
            hooks: Arc::new(hooks),
        })
    }

    /// The hooks (to switch a fault on or off, or read what they counted).
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The connector every call is passed to.
    pub fn inner(&self) -> &Arc<dyn IggyConnector> {
        &self.inner
    }
}

impl<H: fmt::Debug> fmt::Debug for Observed<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observed")
            .field("inner", &self.inner)
            .field("hooks", &self.hooks)
            .finish()
    }
}

#[async_trait]
impl<H: Hooks> IggyConnector for Observed<H> {
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
        self.hooks.before_publish(&request).await?;
        let (stream, topic) = (request.stream.clone(), request.topic.clone());
        let answer = self.inner.publish(request).await;
        self.hooks.after_publish(&stream, &topic, answer)
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
            hooks: Arc::clone(&self.hooks),
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
        if self.hooks.passes_shutdown_on() {
            self.inner.shutdown().await
        } else {
            Ok(())
        }
    }
}

/// A group member whose commits go through the hooks.
struct ObservedMember<H> {
    inner: Box<dyn GroupConsumer>,
    hooks: Arc<H>,
}

impl<H> fmt::Debug for ObservedMember<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

#[async_trait]
impl<H: Hooks> GroupConsumer for ObservedMember<H> {
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
        self.hooks
            .before_commit(self.inner.group(), partition, offset)?;
        self.inner.commit(partition, offset).await?;
        self.hooks
            .after_commit(self.inner.group(), partition, offset);
        Ok(())
    }

    async fn leave(&self) -> Result<(), ConnectorError> {
        self.inner.leave().await
    }
}
