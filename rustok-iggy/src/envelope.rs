//! The platform contract: `EventEnvelope` and the object-safe `EventTransport`,
//! implemented by `IggyTransport` for code that passes envelopes rather than generic
//! event types.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use rustok_iggy_connector::{
    GroupName, Headers, IggyConnector, OutgoingMessage, Partitioning, PublishRequest,
    ReceivedMessage, StartPosition, TopicName, TopicSpec, now_micros, partition_for,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::Codec;
use crate::config::IggyConfig;
use crate::decode::DecodedInfo;
use crate::error::{DecodeFailure, Error};
use crate::metadata::{EventMetadata, header};
use crate::subscription::{RawDelivery, Subscription, SubscriptionOptions};

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
#[async_trait]
pub trait EventTransport: Send + Sync {
    /// Publishes one envelope; returns once the broker accepted it.
    async fn publish(&self, envelope: EventEnvelope) -> Result<(), Error>;
    /// Publishes envelopes; per tenant their order is kept.
    async fn publish_batch(&self, envelopes: Vec<EventEnvelope>) -> Result<(), Error>;
    /// Acknowledges a received envelope by id (see [`IggyTransport::subscribe`]).
    async fn acknowledge(&self, event_id: Uuid) -> Result<(), Error>;
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
    let event_type = headers.get_str(header::EVENT_TYPE).map(str::to_owned);
    let fail = |failure| (failure, event_type.clone());
    let Some(named) = event_type.clone() else {
        return Err(fail(DecodeFailure::InvalidHeader {
            name: header::EVENT_TYPE,
        }));
    };
    let codec = match headers.get_str(header::CODEC) {
        None => Codec::Json,
        Some(text) => text.parse::<Codec>().map_err(|_| {
            fail(DecodeFailure::InvalidHeader {
                name: header::CODEC,
            })
        })?,
    };
    let schema_version = match headers.get_str(header::SCHEMA_VERSION) {
        None => 1,
        Some(text) => text.parse().map_err(|_| {
            fail(DecodeFailure::InvalidHeader {
                name: header::SCHEMA_VERSION,
            })
        })?,
    };
    let payload = match codec {
        Codec::Json => codec.decode_value::<serde_json::Value>(&named, &message.payload),
        Codec::Postcard => codec
            .decode_value::<CompactValue>(&named, &message.payload)
            .map(serde_json::Value::from),
    }
    .map_err(|e| fail(DecodeFailure::Codec(e)))?;
    let metadata = EventMetadata::read(headers, message.id);
    let envelope = EventEnvelope {
        id: crate::metadata::event_id(headers, message.id),
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
            event_type: named,
            schema_version,
        },
    ))
}

type Pending = Arc<Mutex<HashMap<Uuid, RawDelivery>>>;

/// `EventTransport` over Iggy: envelopes are routed to topics by event type
/// (`topology.routes`, else `topology.default_topic`), partitioned by tenant, their
/// fields carried in user headers, their payload encoded with
/// `serialization` (JSON or Postcard).
pub struct IggyTransport {
    connector: Arc<dyn IggyConnector>,
    config: IggyConfig,
    partitions: Mutex<HashMap<TopicName, u32>>,
    pending: Pending,
}

impl fmt::Debug for IggyTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IggyTransport")
            .field("mode", &self.config.mode)
            .field("stream", &self.config.topology.stream_name)
            .field("serialization", &self.config.serialization)
            .finish_non_exhaustive()
    }
}

impl IggyTransport {
    /// Connects in the configured mode.
    pub async fn new(config: IggyConfig) -> Result<Self, Error> {
        let connector = crate::connect(&config).await?;
        Ok(Self::with_connector(connector, config))
    }

    /// Uses an already connected connector.
    pub fn with_connector(connector: Arc<dyn IggyConnector>, config: IggyConfig) -> Self {
        Self {
            connector,
            config,
            partitions: Mutex::new(HashMap::new()),
            pending: Arc::default(),
        }
    }

    /// The connector underneath.
    pub fn connector(&self) -> &Arc<dyn IggyConnector> {
        &self.connector
    }

    /// The stream envelopes go to (`topology.stream_name`).
    pub fn stream_name(&self) -> &rustok_iggy_connector::StreamName {
        &self.config.topology.stream_name
    }

    /// The topic envelopes of `event_type` go to.
    pub fn topic_for(&self, event_type: &str) -> &TopicName {
        self.config.topology.topic_for(event_type)
    }

    /// Partition count of `topic`, creating it on first use.
    pub(crate) async fn partitions(&self, topic: &TopicName) -> Result<u32, Error> {
        if let Some(&n) = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
        {
            return Ok(n);
        }
        let info = self
            .connector
            .ensure_topic(&TopicSpec {
                stream: self.config.topology.stream_name.clone(),
                topic: topic.clone(),
                partitions: self.config.topology.domain_partitions,
                retention: self.config.retention.domain(),
            })
            .await?;
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.clone(), info.partitions);
        Ok(info.partitions)
    }

    pub(crate) fn message(&self, envelope: &EventEnvelope) -> Result<OutgoingMessage, Error> {
        let codec = self.config.serialization;
        let mut headers = Headers::new();
        headers.insert_str(header::EVENT_TYPE, envelope.event_type.as_str())?;
        headers.insert_str(header::SCHEMA_VERSION, envelope.schema_version.to_string())?;
        headers.insert_str(header::CODEC, codec.as_str())?;
        headers.insert_str(header::EVENT_ID, envelope.id.to_string())?;
        headers.insert_str(header::OCCURRED_AT, envelope.occurred_at.to_string())?;
        envelope.metadata().write(&mut headers)?;
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
    ) -> Result<(), Error> {
        let partitions = self.partitions(topic).await?;
        // One request per tenant partition (order kept), keyless envelopes together.
        let mut buckets: Vec<(Option<u32>, Vec<OutgoingMessage>)> = Vec::new();
        for envelope in envelopes {
            let target = envelope
                .tenant_id
                .as_deref()
                .map(|tenant| partition_for(tenant.as_bytes(), partitions));
            let message = self.message(envelope)?;
            match buckets.iter_mut().find(|(t, _)| *t == target) {
                Some((_, messages)) => messages.push(message),
                None => buckets.push((target, vec![message])),
            }
        }
        for (target, messages) in buckets {
            self.connector
                .publish(PublishRequest {
                    stream: self.config.topology.stream_name.clone(),
                    topic: topic.clone(),
                    partitioning: target.map_or(Partitioning::Balanced, Partitioning::Partition),
                    messages,
                })
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
    /// [`EventTransport::acknowledge`] is called with its id; only acknowledged
    /// envelopes are committed (at-least-once, as [`crate::Subscription`]).
    pub async fn subscribe(&self, group: &str, topic: &TopicName) -> Result<EnvelopeStream, Error> {
        let (subscription, _) = self
            .envelope_subscription(
                group,
                topic,
                StartPosition::Earliest,
                SubscriptionOptions::default(),
            )
            .await?;
        Ok(EnvelopeStream {
            subscription,
            pending: Arc::clone(&self.pending),
        })
    }
}

#[async_trait]
impl EventTransport for IggyTransport {
    async fn publish(&self, envelope: EventEnvelope) -> Result<(), Error> {
        let topic = self.topic_for(&envelope.event_type).clone();
        self.publish_group(&topic, std::slice::from_ref(&envelope))
            .await
    }

    async fn publish_batch(&self, envelopes: Vec<EventEnvelope>) -> Result<(), Error> {
        let mut by_topic: Vec<(TopicName, Vec<EventEnvelope>)> = Vec::new();
        for envelope in envelopes {
            let topic = self.topic_for(&envelope.event_type).clone();
            match by_topic.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, list)) => list.push(envelope),
                None => by_topic.push((topic, vec![envelope])),
            }
        }
        for (topic, list) in by_topic {
            self.publish_group(&topic, &list).await?;
        }
        Ok(())
    }

    async fn acknowledge(&self, event_id: Uuid) -> Result<(), Error> {
        let delivery = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&event_id)
            .ok_or(Error::NotPending(event_id))?;
        delivery.ack().await
    }

    fn reliability_level(&self) -> ReliabilityLevel {
        ReliabilityLevel::Streaming
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Envelopes received by [`IggyTransport::subscribe`]: a [`Stream`] of
/// `Result<EventEnvelope, Error>`. Acknowledge each with
/// [`EventTransport::acknowledge`].
pub struct EnvelopeStream {
    subscription: Subscription<EventEnvelope>,
    pending: Pending,
}

impl fmt::Debug for EnvelopeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeStream")
            .field("subscription", &self.subscription)
            .finish()
    }
}

impl Stream for EnvelopeStream {
    type Item = Result<EventEnvelope, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.subscription.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(delivery))) => {
                let (envelope, _, raw) = delivery.into_parts();
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(envelope.id, raw);
                Poll::Ready(Some(Ok(envelope)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
