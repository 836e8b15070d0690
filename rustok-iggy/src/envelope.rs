//! The platform contract: [`EventEnvelope`] and the object-safe [`EventTransport`],
//! implemented by [`IggyTransport`] for code that passes envelopes rather than generic
//! event types. Envelopes carry the same headers as typed events, and delivery is
//! at-least-once under the same commit rule: a received envelope is committed only
//! after it and every earlier delivery of its partition were acknowledged.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use rustok_iggy_connector::{
    ConnectorError, GroupName, HeaderValue, IggyConnector, OutgoingMessage, Partitioning,
    PublishRequest, ReceivedMessage, StartPosition, TopicName, TopicSpec, now_micros,
    partition_for,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

mod ack_id;
pub use ack_id::AckId;

use crate::codec_impl::Codec;
use crate::config_impl::IggyConfig;
use crate::dead_letter::{DeadLetterConfig, DeadLetters};
use crate::decode::DecodeFailure;
use crate::decode::DecodedInfo;
use crate::error::Error;
use crate::health::{HealthReport, HealthThresholds};
use crate::metadata::{EventHeaders, EventMetadata, OutgoingHeaders, header, id_texts};
use crate::publish::send;
use crate::replay::{Replay, ReplayUntil, replay_with};
use crate::subscription::{Delivery, DeliveryInfo, RawDelivery, Subscription, SubscriptionOptions};
use crate::transport::traceparent_value;

/// An event as the platform passes it around: identity, type, version, tenancy,
/// causality, tracing, and a JSON-shaped payload.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// The event id; consumers deduplicate by it.
    pub id: Uuid,
    /// The event type (`order.placed`); routes the envelope to its topic.
    pub event_type: String,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The tenant; envelopes of one tenant share a partition and keep their order.
    pub tenant_id: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
    /// W3C `traceparent`.
    pub traceparent: Option<String>,
    /// The user or service that acted.
    pub actor_id: Option<String>,
    /// When it happened (µs since the Unix epoch).
    pub occurred_at: u64,
    /// The event body.
    pub payload: serde_json::Value,
}

impl EventEnvelope {
    /// An envelope with a fresh id, version 1, `occurred_at` now, and no metadata.
    pub fn new(event_type: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            id: Uuid::new_v4(),
            event_type: event_type.into(),
            schema_version: 1,
            tenant_id: None,
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            actor_id: None,
            occurred_at: now_micros(),
            payload,
        }
    }

    /// Sets the tenant.
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant.into());
        self
    }

    fn metadata(&self) -> EventMetadata {
        EventMetadata {
            event_id: Some(self.id),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            tenant_id: self.tenant_id.clone(),
            actor_id: self.actor_id.clone(),
            traceparent: self.traceparent.clone(),
            tracestate: None,
        }
    }
}

/// How reliable a transport is (the platform picks transports by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReliabilityLevel {
    /// Lost on a crash.
    InMemory,
    /// Stored in the application's database first.
    Outbox,
    /// A durable, replayable log (Iggy).
    Streaming,
}

/// The platform's object-safe event transport.
///
/// Delivery is at-least-once, as for [`crate::Transport`]: an envelope received by a
/// consumer group is committed only after it was acknowledged, over the contiguous
/// acknowledged prefix of its partition.
#[async_trait]
pub trait EventTransport: Send + Sync {
    /// Publishes one envelope; returns once the broker accepted it. On error it may
    /// or may not be stored: publishing it again may store it twice (consumers
    /// deduplicate by [`EventEnvelope::id`]).
    async fn publish(&self, envelope: EventEnvelope) -> Result<(), Error>;
    /// Publishes envelopes; per tenant their order is kept. Not atomic: on error,
    /// some may be stored already.
    async fn publish_batch(&self, envelopes: Vec<EventEnvelope>) -> Result<(), Error>;
    /// Acknowledges one received delivery (see [`ReceivedEnvelope::ack_id`]): its
    /// group's committed offset moves past it once every earlier delivery of its
    /// partition is acknowledged too (the commit is made in the background, as
    /// [`crate::Delivery::ack`]). Fails with [`Error::NotPending`] for a delivery that
    /// is not pending (already acknowledged or nacked, never received, or its stream
    /// closed).
    async fn acknowledge(&self, ack: AckId) -> Result<(), Error>;
    /// Asks for a received delivery again after `delay` (as [`crate::Delivery::nack`]):
    /// the partition's commit waits for it.
    async fn nack(&self, ack: AckId, delay: Duration) -> Result<(), Error>;
    /// Stops gracefully: refuses new publishes and subscriptions, ends every stream
    /// of this transport, commits what was acknowledged and leaves the groups. What
    /// was received and not acknowledged is delivered again (after a restart, or to
    /// the group's other members).
    async fn shutdown(&self) -> Result<(), Error>;
    /// How reliable this transport is.
    fn reliability_level(&self) -> ReliabilityLevel;
    /// For downcasting to the concrete transport.
    fn as_any(&self) -> &dyn Any;
}

/// A JSON value in a form Postcard can carry (Postcard is not self-describing, so
/// `serde_json::Value` cannot go through it directly).
#[derive(Serialize, Deserialize)]
enum CompactValue {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    String(String),
    Array(Vec<CompactValue>),
    Object(Vec<(String, CompactValue)>),
}

impl From<&serde_json::Value> for CompactValue {
    fn from(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Self::U64(u),
                (None, Some(i)) => Self::I64(i),
                (None, None) => Self::F64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Self::String(s.clone()),
            Value::Array(items) => Self::Array(items.iter().map(Self::from).collect()),
            Value::Object(map) => Self::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<CompactValue> for serde_json::Value {
    fn from(value: CompactValue) -> Self {
        match value {
            CompactValue::Null => Self::Null,
            CompactValue::Bool(b) => Self::Bool(b),
            CompactValue::U64(u) => Self::from(u),
            CompactValue::I64(i) => Self::from(i),
            CompactValue::F64(f) => {
                serde_json::Number::from_f64(f).map_or(Self::Null, Self::Number)
            }
            CompactValue::String(s) => Self::String(s),
            CompactValue::Array(items) => Self::Array(items.into_iter().map(Self::from).collect()),
            CompactValue::Object(entries) => Self::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, Self::from(v)))
                    .collect(),
            ),
        }
    }
}

fn encode_payload(codec: Codec, envelope: &EventEnvelope) -> Result<Vec<u8>, Error> {
    Ok(match codec {
        Codec::Json => codec.encode_value(&envelope.event_type, &envelope.payload)?,
        Codec::Postcard => {
            codec.encode_value(&envelope.event_type, &CompactValue::from(&envelope.payload))?
        }
    })
}

/// Reads an envelope back from a message written by [`IggyTransport`] (or by a typed
/// [`crate::Transport`]: the headers are the same).
fn decode_envelope(
    message: &ReceivedMessage,
) -> Result<(EventEnvelope, DecodedInfo), (DecodeFailure, Option<String>)> {
    let headers = &message.headers;
    let read = EventHeaders::read(headers).map_err(|invalid| {
        let named = headers.get_str(header::EVENT_TYPE);
        (
            DecodeFailure::InvalidHeader { name: invalid.name },
            named.map(str::to_owned),
        )
    })?;
    let Some(named) = read.event_type.map(str::to_owned) else {
        return Err((
            DecodeFailure::InvalidHeader {
                name: header::EVENT_TYPE,
            },
            None,
        ));
    };
    let fail = |failure| (failure, Some(named.clone()));
    let (codec, schema_version) = (read.codec, read.schema_version);
    let payload = match codec {
        Codec::Json => codec.decode_value::<serde_json::Value>(&named, &message.payload),
        Codec::Postcard => codec
            .decode_value::<CompactValue>(&named, &message.payload)
            .map(serde_json::Value::from),
    }
    .map_err(|e| fail(DecodeFailure::Codec(e)))?;
    let metadata = EventMetadata::read(headers, message.id);
    let id = read.event_id(message.id);
    let envelope = EventEnvelope {
        id,
        event_type: named.clone(),
        schema_version,
        tenant_id: metadata.tenant_id,
        correlation_id: metadata.correlation_id,
        causation_id: metadata.causation_id,
        traceparent: metadata.traceparent,
        actor_id: metadata.actor_id,
        occurred_at: headers
            .get_str(header::OCCURRED_AT)
            .and_then(|t| t.parse().ok())
            .unwrap_or(message.origin_timestamp),
        payload,
    };
    Ok((
        envelope,
        DecodedInfo {
            event_type: named.into(),
            schema_version,
            event_id: id,
        },
    ))
}

/// Deliveries received and not yet acknowledged, by [`AckId`].
type Pending = Arc<Mutex<HashMap<AckId, RawDelivery>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the stream's task hands over: the envelope, where it came from, and what is
/// left to acknowledge.
type Parts = (EventEnvelope, DeliveryInfo, RawDelivery);

/// One open [`EnvelopeStream`]: how to stop its task and wait for it.
#[derive(Debug)]
struct StreamControl {
    id: u64,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<JoinHandle<Result<(), Error>>>>,
}

impl StreamControl {
    /// Whether its task is over (nothing left to wait for).
    fn finished(&self) -> bool {
        self.task
            .try_lock()
            .is_ok_and(|task| task.as_ref().is_none_or(JoinHandle::is_finished))
    }

    /// Stops the task and waits until it closed its subscription (what was
    /// acknowledged committed, the group left).
    async fn stop_and_wait(&self) -> Result<(), Error> {
        self.stop.send_replace(true);
        let mut task = self.task.lock().await;
        let Some(handle) = task.take() else {
            return Ok(());
        };
        match handle.await {
            Ok(closed) => closed,
            Err(e) => {
                // The subscription was dropped with the task: nothing is committed
                // past what was acknowledged.
                tracing::error!(subscription = self.id, error = %e, "an envelope stream's task failed");
                Ok(())
            }
        }
    }
}

/// Moves deliveries from the subscription to its [`EnvelopeStream`] until the stream
/// is dropped or stopped, then closes the subscription.
async fn pump(
    mut subscription: Subscription<EventEnvelope>,
    sender: mpsc::Sender<Result<Parts, Error>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    loop {
        let item = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            () = sender.closed() => break,
            item = subscription.next() => item,
        };
        let Some(item) = item else {
            break;
        };
        let item = item.map(Delivery::into_parts);
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            sent = sender.send(item) => if sent.is_err() { break },
        }
    }
    subscription.close().await
}

/// `EventTransport` over Iggy: envelopes are routed to topics by event type
/// (`topology.routes`, else `topology.default_topic`), partitioned by tenant, their
/// fields carried in user headers, their payload encoded with
/// `serialization` (JSON or Postcard).
///
/// It has what [`crate::Transport`] has for typed events: at-least-once consumer
/// groups ([`IggyTransport::subscribe`], acknowledged by [`AckId`]), the handler
/// runner ([`IggyTransport::consume`]), [`IggyTransport::replay`],
/// [`IggyTransport::health`], a `traceparent` on every message, publish metrics and
/// spans, and a graceful [`EventTransport::shutdown`].
pub struct IggyTransport {
    connector: Arc<dyn IggyConnector>,
    /// Whether `shutdown` shuts the connector down too (it was opened by `new`).
    owns_connector: bool,
    config: IggyConfig,
    partitions: Mutex<HashMap<TopicName, u32>>,
    pending: Pending,
    streams: Mutex<Vec<Arc<StreamControl>>>,
    next_subscription: AtomicU64,
    closed: AtomicBool,
}

impl fmt::Debug for IggyTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IggyTransport")
            .field("mode", &self.config.mode)
            .field("stream", &self.config.topology.stream_name)
            .field("serialization", &self.config.serialization)
            .field("pending", &lock(&self.pending).len())
            .finish_non_exhaustive()
    }
}

impl IggyTransport {
    /// Connects in the configured mode; [`EventTransport::shutdown`] shuts that
    /// connector down too.
    pub async fn new(config: IggyConfig) -> Result<Self, Error> {
        let connector = crate::connect(&config).await?;
        let mut transport = Self::with_connector(connector, config);
        transport.owns_connector = true;
        Ok(transport)
    }

    /// Uses an already connected connector (shared: [`EventTransport::shutdown`]
    /// leaves it connected).
    pub fn with_connector(connector: Arc<dyn IggyConnector>, config: IggyConfig) -> Self {
        Self {
            connector,
            owns_connector: false,
            config,
            partitions: Mutex::new(HashMap::new()),
            pending: Arc::default(),
            streams: Mutex::new(Vec::new()),
            next_subscription: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        }
    }

    /// The connector underneath.
    pub fn connector(&self) -> &Arc<dyn IggyConnector> {
        &self.connector
    }

    /// The configuration.
    pub fn config(&self) -> &IggyConfig {
        &self.config
    }

    /// The stream envelopes go to (`topology.stream_name`).
    pub fn stream_name(&self) -> &rustok_iggy_connector::StreamName {
        &self.config.topology.stream_name
    }

    /// The topic envelopes of `event_type` go to.
    pub fn topic_for(&self, event_type: &str) -> &TopicName {
        self.config.topology.topic_for(event_type)
    }

    fn ensure_open(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ConnectorError::ShuttingDown.into());
        }
        Ok(())
    }

    /// Partition count of `topic`, creating it on first use (with the partitions
    /// and retention of the configuration).
    pub(crate) async fn partitions(&self, topic: &TopicName) -> Result<u32, Error> {
        if let Some(&n) = lock(&self.partitions).get(topic) {
            return Ok(n);
        }
        let info = self
            .connector
            .ensure_topic(&TopicSpec {
                stream: self.config.topology.stream_name.clone(),
                topic: topic.clone(),
                partitions: self.config.topology.domain_partitions,
                retention: self.config.retention_of(topic),
            })
            .await?;
        lock(&self.partitions).insert(topic.clone(), info.partitions);
        Ok(info.partitions)
    }

    /// The dead letters of the envelopes of `topic`: the dead-letter topic (named by
    /// `config`, `<topic>.dlq` by default) is created when missing, with
    /// `config.retention` or else `retention.dlq_max_age_days` of the transport's
    /// configuration. Fails with [`Error::Connector`] when `topic`'s partitions cannot
    /// be read, and with [`Error::DeadLetter`] when the dead-letter topic cannot be
    /// opened.
    pub async fn dead_letters(
        &self,
        topic: &TopicName,
        config: &DeadLetterConfig,
    ) -> Result<DeadLetters, Error> {
        let partitions = self.partitions(topic).await?;
        Ok(DeadLetters::configured(
            Arc::clone(&self.connector),
            self.stream_name().clone(),
            topic.clone(),
            partitions,
            config,
            self.config.retention.dead_letter(),
        )
        .await?)
    }

    /// The message of `envelope`, with a fresh `traceparent` when it has none.
    pub(crate) fn message(&self, envelope: &EventEnvelope) -> Result<OutgoingMessage, Error> {
        self.message_traced(envelope, None)
    }

    /// The message of `envelope`; `trace` is the `traceparent` written when the
    /// envelope has none (one per publish call: a batch is one operation), a fresh
    /// one when `None`.
    fn message_traced(
        &self,
        envelope: &EventEnvelope,
        trace: Option<&HeaderValue>,
    ) -> Result<OutgoingMessage, Error> {
        let codec = self.config.serialization;
        let fresh;
        let trace = match trace {
            Some(trace) => trace,
            None => {
                fresh = traceparent_value();
                &fresh
            }
        };
        let mut headers = OutgoingHeaders {
            event_type: HeaderValue::string(envelope.event_type.as_str()),
            schema_version: envelope.schema_version,
            codec,
            fingerprint: None,
            event_id: id_texts(&[envelope.id]),
            metadata: &envelope.metadata(),
            trace,
        }
        .write(1)?;
        headers.insert_static(
            header::OCCURRED_AT,
            HeaderValue::string(envelope.occurred_at.to_string()),
        )?;
        Ok(OutgoingMessage {
            id: envelope.id.as_u128(),
            payload: Bytes::from(encode_payload(codec, envelope)?),
            headers,
        })
    }

    async fn publish_group(
        &self,
        topic: &TopicName,
        envelopes: &[EventEnvelope],
        trace: &HeaderValue,
    ) -> Result<(), Error> {
        self.ensure_open()?;
        let partitions = self.partitions(topic).await?;
        // One request per tenant partition (order kept), keyless envelopes together.
        let mut buckets: Vec<(Option<u32>, Vec<OutgoingMessage>)> = Vec::new();
        for envelope in envelopes {
            let target = envelope
                .tenant_id
                .as_deref()
                .map(|tenant| partition_for(tenant.as_bytes(), partitions));
            let message = self.message_traced(envelope, Some(trace))?;
            match buckets.iter_mut().find(|(t, _)| *t == target) {
                Some((_, messages)) => messages.push(message),
                None => buckets.push((target, vec![message])),
            }
        }
        for (target, messages) in buckets {
            let span = tracing::debug_span!(
                "publish",
                messaging.system = "iggy",
                messaging.operation.type = "send",
                messaging.destination.name = %topic,
                messaging.batch.message_count = messages.len(),
                messaging.message.id = tracing::field::Empty,
                traceparent = tracing::field::Empty,
            );
            if let [only] = messages.as_slice() {
                span.record("messaging.message.id", Uuid::from_u128(only.id).to_string());
                span.record(
                    "traceparent",
                    only.headers
                        .get_str(header::TRACEPARENT)
                        .unwrap_or_default(),
                );
            }
            send(
                self.connector.as_ref(),
                PublishRequest {
                    stream: self.config.topology.stream_name.clone(),
                    topic: topic.clone(),
                    partitioning: target.map_or(Partitioning::Balanced, Partitioning::Partition),
                    messages,
                },
            )
            .instrument(span)
            .await?;
        }
        Ok(())
    }

    /// A subscription of `group` to the envelopes of `topic` (created when missing),
    /// and the topic's partition count.
    pub(crate) async fn envelope_subscription(
        &self,
        group: &str,
        topic: &TopicName,
        start: StartPosition,
        options: SubscriptionOptions,
    ) -> Result<(Subscription<EventEnvelope>, u32), Error> {
        self.ensure_open()?;
        let partitions = self.partitions(topic).await?;
        let group = GroupName::new(group)?;
        let consumer = self
            .connector
            .join_group(&self.config.topology.stream_name, topic, &group, start)
            .await?;
        let subscription = Subscription::with_decoder(
            topic.to_string(),
            Arc::from(consumer),
            options,
            Arc::new(decode_envelope),
        );
        Ok((subscription, partitions))
    }

    /// Receives envelopes of `topic` in consumer group `group` (created from the
    /// earliest message when new). Each received envelope stays pending until
    /// [`EventTransport::acknowledge`] (or [`EventTransport::nack`]) is called with its
    /// [`AckId`]; only acknowledged envelopes are committed (at-least-once, as
    /// [`crate::Subscription`]). Members of one group, in this process or others,
    /// split the partitions.
    pub async fn subscribe(&self, group: &str, topic: &TopicName) -> Result<EnvelopeStream, Error> {
        self.subscribe_with(
            group,
            topic,
            StartPosition::Earliest,
            SubscriptionOptions::default(),
        )
        .await
    }

    /// [`IggyTransport::subscribe`] with a start position (used only when the group is
    /// created) and options (batch size, `max_in_flight`: envelopes received and not
    /// yet acknowledged count against it).
    pub async fn subscribe_with(
        &self,
        group: &str,
        topic: &TopicName,
        start: StartPosition,
        options: SubscriptionOptions,
    ) -> Result<EnvelopeStream, Error> {
        let (subscription, _) = self
            .envelope_subscription(group, topic, start, options)
            .await?;
        let id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        let (stop, stopped) = watch::channel(false);
        let (sender, receiver) = mpsc::channel(1);
        let task = tokio::spawn(pump(subscription, sender, stopped.clone()));
        let control = Arc::new(StreamControl {
            id,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
        });
        {
            let mut streams = lock(&self.streams);
            streams.retain(|control| !control.finished());
            streams.push(Arc::clone(&control));
        }
        // A shutdown that ran meanwhile did not see this stream.
        if self.closed.load(Ordering::Acquire) {
            control.stop.send_replace(true);
        }
        Ok(EnvelopeStream {
            control,
            receiver,
            stopped,
            pending: Arc::clone(&self.pending),
            deliveries: 0,
            topic: topic.clone(),
            group: group.to_owned(),
        })
    }

    /// Replays the envelopes of `topic` from `from` until `until` under no consumer
    /// identity: no group's committed offset is read or moved (see
    /// [`crate::Transport::replay`]; a finite replay always ends).
    pub async fn replay(
        &self,
        topic: &TopicName,
        from: StartPosition,
        until: ReplayUntil,
    ) -> Result<Replay<EventEnvelope>, Error> {
        replay_with(
            &self.connector,
            self.stream_name(),
            topic,
            Arc::new(decode_envelope),
            from,
            until,
        )
        .await
    }

    /// The health of consumer group `group` on `topic`: connection, topology, lag,
    /// dead letters (see [`crate::Transport::health`]).
    pub async fn health(
        &self,
        group: &str,
        topic: &TopicName,
        thresholds: &HealthThresholds,
    ) -> Result<HealthReport, Error> {
        crate::health::check(
            self.connector.as_ref(),
            self.stream_name(),
            topic,
            group,
            thresholds,
        )
        .await
    }

    fn take_pending(&self, ack: AckId) -> Result<RawDelivery, Error> {
        lock(&self.pending)
            .remove(&ack)
            .ok_or(Error::NotPending(ack))
    }
}

#[async_trait]
impl EventTransport for IggyTransport {
    async fn publish(&self, envelope: EventEnvelope) -> Result<(), Error> {
        let topic = self.topic_for(&envelope.event_type).clone();
        self.publish_group(
            &topic,
            std::slice::from_ref(&envelope),
            &traceparent_value(),
        )
        .await
    }

    async fn publish_batch(&self, envelopes: Vec<EventEnvelope>) -> Result<(), Error> {
        let trace = traceparent_value();
        let mut by_topic: Vec<(TopicName, Vec<EventEnvelope>)> = Vec::new();
        for envelope in envelopes {
            let topic = self.topic_for(&envelope.event_type).clone();
            match by_topic.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, list)) => list.push(envelope),
                None => by_topic.push((topic, vec![envelope])),
            }
        }
        for (topic, list) in by_topic {
            self.publish_group(&topic, &list, &trace).await?;
        }
        Ok(())
    }

    async fn acknowledge(&self, ack: AckId) -> Result<(), Error> {
        Ok(self.take_pending(ack)?.ack().await?)
    }

    async fn nack(&self, ack: AckId, delay: Duration) -> Result<(), Error> {
        self.take_pending(ack)?.nack(delay);
        Ok(())
    }

    /// Shuts the connector down too when this transport opened it
    /// ([`IggyTransport::new`]).
    async fn shutdown(&self) -> Result<(), Error> {
        self.closed.store(true, Ordering::Release);
        let streams = std::mem::take(&mut *lock(&self.streams));
        for control in &streams {
            control.stop.send_replace(true);
        }
        // Received and not acknowledged: delivered again later.
        drop(std::mem::take(&mut *lock(&self.pending)));
        let mut first_error = None;
        for control in streams {
            if let Err(e) = control.stop_and_wait().await {
                first_error.get_or_insert(e);
            }
        }
        if self.owns_connector
            && let Err(e) = self.connector.shutdown().await
        {
            first_error.get_or_insert(e.into());
        }
        first_error.map_or(Ok(()), Err)
    }

    fn reliability_level(&self) -> ReliabilityLevel {
        ReliabilityLevel::Streaming
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An envelope received by an [`EnvelopeStream`]: the envelope, where it came from,
/// and the [`AckId`] to acknowledge it with. Dereferences to the envelope.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceivedEnvelope {
    /// The envelope.
    pub envelope: EventEnvelope,
    /// What [`EventTransport::acknowledge`] and [`EventTransport::nack`] take.
    pub ack_id: AckId,
    /// Partition, offset, attempt, headers.
    pub info: DeliveryInfo,
}

impl Deref for ReceivedEnvelope {
    type Target = EventEnvelope;
    fn deref(&self) -> &EventEnvelope {
        &self.envelope
    }
}

/// Envelopes received by [`IggyTransport::subscribe`]: a [`Stream`] of
/// `Result<ReceivedEnvelope, Error>`. Acknowledge each with
/// [`EventTransport::acknowledge`] and its [`AckId`].
///
/// Decode failures are error items (see [`crate::DecodeError`]). The stream ends
/// when its transport shuts down. Dropping it (or [`EnvelopeStream::close`]) commits
/// what was acknowledged and leaves the group; deliveries still pending are
/// delivered again, to the group's other members or after a restart.
pub struct EnvelopeStream {
    control: Arc<StreamControl>,
    receiver: mpsc::Receiver<Result<Parts, Error>>,
    stopped: watch::Receiver<bool>,
    pending: Pending,
    deliveries: u64,
    topic: TopicName,
    group: String,
}

impl fmt::Debug for EnvelopeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeStream")
            .field("subscription", &self.control.id)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("deliveries", &self.deliveries)
            .finish()
    }
}

impl EnvelopeStream {
    /// The subscription id every [`AckId`] of this stream carries.
    pub fn id(&self) -> u64 {
        self.control.id
    }

    fn forget_pending(&self) {
        let id = self.control.id;
        let stale: Vec<RawDelivery> = {
            let mut pending = lock(&self.pending);
            let keys: Vec<AckId> = pending
                .keys()
                .filter(|ack| ack.subscription == id)
                .copied()
                .collect();
            keys.iter().filter_map(|k| pending.remove(k)).collect()
        };
        drop(stale);
    }

    /// Commits what was acknowledged and leaves the group; returns once that is
    /// stored. Deliveries still pending are delivered again (to the group's other
    /// members, or after a restart).
    pub async fn close(self) -> Result<(), Error> {
        self.forget_pending();
        self.control.stop_and_wait().await
    }
}

impl Drop for EnvelopeStream {
    fn drop(&mut self) {
        self.forget_pending();
        // The task sees the receiver gone, closes the subscription and ends.
        self.control.stop.send_replace(true);
    }
}

impl Stream for EnvelopeStream {
    type Item = Result<ReceivedEnvelope, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if *self.stopped.borrow() {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(Ok((envelope, info, raw)))) => {
                self.deliveries += 1;
                let ack_id = AckId {
                    subscription: self.control.id,
                    partition: info.partition,
                    offset: info.offset,
                    delivery: self.deliveries,
                };
                lock(&self.pending).insert(ack_id, raw);
                Poll::Ready(Some(Ok(ReceivedEnvelope {
                    envelope,
                    ack_id,
                    info,
                })))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
