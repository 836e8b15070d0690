//! `Transport<E>`: publish typed events and subscribe to them.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rustok_iggy_connector::{
    GroupName, HeaderValue, IggyConnector, OutgoingMessage, Partitioning, PublishReceipt,
    PublishRequest, Retention, RoundRobin, StartPosition, StreamName, TopicName, TopicSpec,
    partition_for,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::acks::{HeldPartition, held_in};
use crate::coalesce::{Coalescer, Destination};
use crate::config_impl::IggyConfig;
use crate::dead_letter::{DeadLetterConfig, DeadLetterError, DeadLetters, default_topic};
use crate::decode::{Decoder, decode_message};
use crate::error::Error;
use crate::event_impl::IggyEvent;
use crate::metadata::{
    EventMetadata, ID_TEXT_LEN, OutgoingHeaders, fingerprint_text, header, id_texts,
    new_traceparent,
};
use crate::publish::send_with;
use crate::publish_retry::PublishRetry;
use crate::replay::{Replay, ReplayUntil, replay_with};
use crate::subscription::{Events, Subscription, SubscriptionOptions, Terminal};
use crate::upcast::Upcasters;

/// Where a [`Transport`] puts its topic, and how its topics are kept.
///
/// Build it from the configuration with `TransportOptions::from(&config)` (or use
/// [`Transport::from_config`]): `topology.stream_name`, `topology.domain_partitions`,
/// `topology.system_topics` and the `retention` section. `Default` is the options of
/// the default configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// The stream, unless the event names its own (`#[iggy(stream = "...")]`).
    pub stream: StreamName,
    /// Partitions of the topic when it is created.
    pub partitions: u32,
    /// Retention of the topic (unless it is one of `system_topics`).
    pub retention: Retention,
    /// Retention of the topic's dead-letter topic (`<topic>.dlq`), used by the
    /// handler runner and [`Transport::dead_letters`].
    pub dead_letter_retention: Retention,
    /// Topics of system events: created with `system_retention` instead of
    /// `retention`.
    pub system_topics: BTreeSet<TopicName>,
    /// Retention of `system_topics`.
    pub system_retention: Retention,
    /// Retries of a publish that failed on a lost connection or a timeout (same
    /// event ids, same partition). Default [`PublishRetry::default`].
    pub publish_retry: PublishRetry,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self::from(&IggyConfig::default())
    }
}

impl From<&IggyConfig> for TransportOptions {
    fn from(config: &IggyConfig) -> Self {
        Self {
            stream: config.topology.stream_name.clone(),
            partitions: config.topology.domain_partitions,
            retention: config.retention.domain(),
            dead_letter_retention: config.retention.dead_letter(),
            system_topics: config.topology.system_topics.clone(),
            system_retention: config.retention.system(),
            publish_retry: PublishRetry::default(),
        }
    }
}

/// The broker's receipt for one published event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The partition it went to.
    pub partition: u32,
    /// Its offset there (for a duplicate, the offset of the copy stored before).
    pub offset: u64,
    /// Its event id.
    pub event_id: Uuid,
    /// The broker had stored this event id already, within its deduplication
    /// window, so did not store it again: a retry whose first attempt was stored
    /// though its answer was lost, or the same event published twice.
    pub duplicate: bool,
}

impl Receipt {
    /// The receipt of message `index` of a batch the connector acknowledged with
    /// `receipt`.
    pub(crate) fn of(receipt: &PublishReceipt, index: u32, event_id: Uuid) -> Self {
        Self {
            partition: receipt.partition,
            offset: receipt
                .offset_of(index)
                .unwrap_or(receipt.base_offset + u64::from(index)),
            event_id,
            duplicate: receipt.is_duplicate(index),
        }
    }
}

/// Publishes and consumes events of type `E` on `E`'s topic.
///
/// Cheap to clone; clones share the connector.
pub struct Transport<E> {
    connector: Arc<dyn IggyConnector>,
    stream: StreamName,
    topic: TopicName,
    partitions: u32,
    dead_letter_retention: Retention,
    upcasters: Arc<Upcasters<E>>,
    retry: PublishRetry,
    /// Picks the partition of events without a key before the first attempt, so
    /// that a retry goes where the first attempt went.
    balanced: Arc<RoundRobin>,
    /// Shares requests among concurrent single-event publishes.
    coalescer: Arc<Coalescer>,
    /// The schema fingerprint header of each of `E`'s event types that has one,
    /// made on the first publish and shared by every message after it.
    fingerprints: Arc<OnceLock<Vec<(&'static str, HeaderValue)>>>,
}

impl<E> Clone for Transport<E> {
    fn clone(&self) -> Self {
        Self {
            connector: Arc::clone(&self.connector),
            stream: self.stream.clone(),
            topic: self.topic.clone(),
            partitions: self.partitions,
            dead_letter_retention: self.dead_letter_retention,
            upcasters: Arc::clone(&self.upcasters),
            retry: self.retry,
            balanced: Arc::clone(&self.balanced),
            coalescer: Arc::clone(&self.coalescer),
            fingerprints: Arc::clone(&self.fingerprints),
        }
    }
}

impl<E> fmt::Debug for Transport<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("stream", &self.stream)
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .field("mode", &self.connector.mode())
            .finish()
    }
}

/// Key of an event with its metadata: the event's own key, else the tenant, else an
/// event id the metadata names (so that an event published again with its id goes
/// where its first publish went, and the broker's deduplication sees it).
pub(crate) fn routing<E: IggyEvent>(
    event: &E,
    metadata: &EventMetadata,
    partitions: u32,
) -> Option<u32> {
    match event.partition_key() {
        Some(key) => Some(partition_for(&key, partitions)),
        None => match (metadata.tenant_id.as_deref(), metadata.event_id) {
            (Some(tenant), _) => Some(partition_for(tenant.as_bytes(), partitions)),
            (None, Some(id)) => Some(partition_for(id.as_bytes(), partitions)),
            (None, None) => None,
        },
    }
}

/// A fresh `traceparent` as a header value, shared by the messages of one call.
pub(crate) fn traceparent_value() -> HeaderValue {
    HeaderValue::string(new_traceparent())
}

/// The payloads of `events`, encoded with `E::CODEC` one after the other into one
/// buffer, and where each ends: one allocation per publish call instead of one per
/// event, and the payloads are slices of it (a publish's retry copy of them costs a
/// reference count each).
fn payloads<E: IggyEvent>(events: &[E]) -> Result<(Bytes, Vec<usize>), Error> {
    let mut buffer = Vec::new();
    let mut ends = Vec::with_capacity(events.len());
    for event in events {
        E::CODEC.encode_value_into(event.event_type(), event, &mut buffer)?;
        ends.push(buffer.len());
    }
    Ok((Bytes::from(buffer), ends))
}

impl<E: IggyEvent> Transport<E> {
    /// A transport for `E` over a connected `connector`; creates `E`'s stream and topic
    /// when missing (an existing topic with another partition count is an error) and
    /// sets the topic's retention (`options.system_retention` for a topic of
    /// `options.system_topics`, else `options.retention`).
    pub async fn new(
        connector: Arc<dyn IggyConnector>,
        options: TransportOptions,
    ) -> Result<Self, Error> {
        let stream = match E::STREAM {
            Some(stream) => StreamName::new(stream)?,
            None => options.stream,
        };
        let topic = TopicName::new(E::TOPIC)?;
        let retention = if options.system_topics.contains(&topic) {
            options.system_retention
        } else {
            options.retention
        };
        let info = connector
            .ensure_topic(&TopicSpec {
                stream: stream.clone(),
                topic: topic.clone(),
                partitions: options.partitions,
                retention,
            })
            .await?;
        let balanced = Arc::new(RoundRobin::new());
        let coalescer = Arc::new(Coalescer::new(Destination {
            connector: Arc::clone(&connector),
            stream: stream.clone(),
            topic: topic.clone(),
            partitions: info.partitions,
            balanced: Arc::clone(&balanced),
            retry: options.publish_retry,
        }));
        Ok(Self {
            connector,
            stream,
            topic,
            coalescer,
            partitions: info.partitions,
            dead_letter_retention: options.dead_letter_retention,
            upcasters: Arc::new(Upcasters::new()),
            retry: options.publish_retry,
            balanced,
            fingerprints: Arc::default(),
        })
    }

    /// A transport for `E` as `config` says: [`Transport::new`] with
    /// `TransportOptions::from(config)`. `connector` is what
    /// [`crate::connect`]`(config)` returned (shared by every transport of the
    /// process).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use rustok_iggy::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, IggyEvent)]
    /// #[iggy(topic = "orders", key = tenant)]
    /// struct OrderPlaced { tenant: String }
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = IggyConfig::from_section_yaml(&format!(
    ///     "topology: {{ stream_name: shop, domain_partitions: 3 }}\n\
    ///      embedded: {{ data_dir: {:?}, tcp_enabled: false, http_enabled: false }}\n\
    ///      retention: {{ domain_max_age_days: 7 }}",
    ///     dir.path()
    /// ))?;
    /// let connector = rustok_iggy::connect(&config).await?;
    /// let orders = Transport::<OrderPlaced>::from_config(connector.clone(), &config).await?;
    /// assert_eq!((orders.stream().as_str(), orders.partitions()), ("shop", 3));
    /// connector.shutdown().await?;
    /// # Ok::<(), rustok_iggy::Error>(()) }).unwrap();
    /// ```
    pub async fn from_config(
        connector: Arc<dyn IggyConnector>,
        config: &IggyConfig,
    ) -> Result<Self, Error> {
        Self::new(connector, TransportOptions::from(config)).await
    }

    /// Reads events written at older schema versions through `upcasters` (see
    /// [`Upcasters`]).
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: Upcasters<E>) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    pub(crate) fn upcasters(&self) -> &Arc<Upcasters<E>> {
        &self.upcasters
    }

    /// The stream.
    pub fn stream(&self) -> &StreamName {
        &self.stream
    }

    /// The topic.
    pub fn topic(&self) -> &TopicName {
        &self.topic
    }

    /// Number of partitions of the topic.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The connector underneath.
    pub fn connector(&self) -> &Arc<dyn IggyConnector> {
        &self.connector
    }

    /// Retention of the dead-letter topic (from
    /// [`TransportOptions::dead_letter_retention`]).
    pub fn dead_letter_retention(&self) -> Retention {
        self.dead_letter_retention
    }

    /// Builds the message for `event`: payload, id, and the headers every consumer
    /// relies on. `trace` is the `traceparent` used when `metadata` has none (one per
    /// publish call: a batch is one operation). The creation time travels as the
    /// Iggy message's origin timestamp.
    pub(crate) fn message(
        &self,
        event: &E,
        metadata: &EventMetadata,
        trace: &HeaderValue,
    ) -> Result<(OutgoingMessage, Uuid), Error> {
        let id = metadata.event_id.unwrap_or_else(Uuid::new_v4);
        let text = id_texts(&[id]);
        let payload = Bytes::from(event.encode()?);
        let message = self.message_with_id(event, payload, metadata, trace, id, text)?;
        Ok((message, id))
    }

    /// [`Transport::message`] with the payload encoded, the event id chosen and its
    /// text (`id_text`, a slice of one buffer per publish call) made by the caller. Header names, the
    /// event type, the codec and small schema versions are static, the schema
    /// fingerprint's text is made once per transport: the headers cost one allocation
    /// (their list) beyond the payload.
    fn message_with_id(
        &self,
        event: &E,
        payload: Bytes,
        metadata: &EventMetadata,
        trace: &HeaderValue,
        id: Uuid,
        id_text: Bytes,
    ) -> Result<OutgoingMessage, Error> {
        let headers = OutgoingHeaders {
            event_type: HeaderValue::from_static(event.event_type()),
            schema_version: event.schema_version(),
            codec: E::CODEC,
            fingerprint: self.fingerprint(event.event_type()),
            event_id: id_text,
            metadata,
            trace,
        }
        .write(0)?;
        Ok(OutgoingMessage {
            id: id.as_u128(),
            payload,
            headers,
        })
    }

    /// The schema fingerprint header of `event_type` (one of `E`'s), if `E` could be
    /// traced: a clone of the value made once for the transport.
    fn fingerprint(&self, event_type: &str) -> Option<HeaderValue> {
        self.fingerprints
            .get_or_init(|| {
                E::EVENT_TYPES
                    .iter()
                    .filter_map(|info| {
                        let schema = crate::schema::schema_for::<E>(info.event_type)?;
                        Some((info.event_type, fingerprint_text(schema.fingerprint)))
                    })
                    .collect()
            })
            .iter()
            .find(|(known, _)| *known == event_type)
            .map(|(_, text)| text.clone())
    }

    /// Publishes through the connector, again after a transient failure (the same
    /// request: same ids, same partition), and records the publish metrics.
    async fn send(&self, request: PublishRequest) -> Result<PublishReceipt, Error> {
        send_with(self.connector.as_ref(), request, self.retry).await
    }

    /// Publishes one event. Returns when the broker has accepted it (embedded: written
    /// under the configured durability policy). Events with the same key keep their
    /// publish order for every consumer.
    ///
    /// A publish that fails on a lost connection or a timeout is sent again
    /// ([`TransportOptions::publish_retry`]) with the same event id to the same
    /// partition; with the broker's deduplication on (the embedded broker's
    /// default) the event is then stored once, and [`Receipt::duplicate`] tells a
    /// retry the broker had stored already. If this returns an error the event may
    /// or may not be stored: publishing it again with the same event id
    /// ([`EventMetadata::event_id`]) within the deduplication window stores it once.
    /// When the failed request carried other events too, the error is
    /// [`crate::batching::BatchError::Publish`].
    ///
    /// Concurrent calls share requests: while a request for the event's partition is
    /// in flight, events published by other tasks wait and go together in the next
    /// one (no linger: an event published when nothing is in flight is sent at once).
    /// A shared request is retried as a whole, with the same ids.
    pub async fn publish(&self, event: &E) -> Result<Receipt, Error> {
        self.publish_with(event, &EventMetadata::default()).await
    }

    /// Publishes one event with metadata (correlation, causation, tenant, actor, trace
    /// context). An event without a key of its own is partitioned by the tenant id,
    /// else by the event id when the metadata names one (publishing an event again
    /// with its event id then reaches the partition that may hold it already).
    pub async fn publish_with(
        &self,
        event: &E,
        metadata: &EventMetadata,
    ) -> Result<Receipt, Error> {
        let (message, event_id) = self.message(event, metadata, &traceparent_value())?;
        let target = routing(event, metadata, self.partitions);
        let span = tracing::debug_span!(
            "publish",
            messaging.system = "iggy",
            messaging.operation.type = "send",
            messaging.destination.name = %self.topic,
            messaging.message.id = %event_id,
            event_type = event.event_type(),
            traceparent = message.headers.get_str(header::TRACEPARENT).unwrap_or_default(),
        );
        let placed = self
            .coalescer
            .publish(target, message)
            .instrument(span)
            .await?;
        Ok(Receipt {
            partition: placed.partition,
            offset: placed.offset,
            event_id,
            duplicate: placed.duplicate,
        })
    }

    /// Publishes events in one call per partition; receipts come back in input order.
    /// Events with the same key keep their relative order; events without a key go
    /// together to one partition (round-robin across calls).
    ///
    /// Not atomic across partitions: on error, the batches of some partitions may be
    /// stored already. Each batch is retried as [`Transport::publish`] is.
    pub async fn publish_batch(&self, events: &[E]) -> Result<Vec<Receipt>, Error> {
        let metadata = EventMetadata::default();
        let trace = traceparent_value();
        let mut buckets: Vec<(Option<u32>, Vec<usize>, Vec<OutgoingMessage>)> = Vec::new();
        let ids: Vec<Uuid> = events.iter().map(|_| Uuid::new_v4()).collect();
        let texts = id_texts(&ids);
        let (payloads, ends) = payloads(events)?;
        for (index, event) in events.iter().enumerate() {
            let id = ids[index];
            let text = texts.slice(index * ID_TEXT_LEN..(index + 1) * ID_TEXT_LEN);
            let start = index.checked_sub(1).map_or(0, |before| ends[before]);
            let payload = payloads.slice(start..ends[index]);
            let message = self.message_with_id(event, payload, &metadata, &trace, id, text)?;
            let target = routing(event, &metadata, self.partitions);
            match buckets.iter_mut().find(|(t, _, _)| *t == target) {
                Some((_, indexes, messages)) => {
                    indexes.push(index);
                    messages.push(message);
                }
                None => buckets.push((target, vec![index], vec![message])),
            }
        }
        let mut receipts = vec![None; events.len()];
        for (target, indexes, messages) in buckets {
            let partition = target.unwrap_or_else(|| self.balanced.next(self.partitions));
            let partitioning = Partitioning::Partition(partition);
            let receipt = self
                .send(PublishRequest {
                    stream: self.stream.clone(),
                    topic: self.topic.clone(),
                    partitioning,
                    messages,
                })
                .await?;
            for (position, index) in (0u32..).zip(indexes) {
                receipts[index] = Some(Receipt::of(&receipt, position, ids[index]));
            }
        }
        Ok(receipts.into_iter().flatten().collect())
    }

    /// Joins consumer group `group` (created from the earliest event when new) and
    /// returns its [`Subscription`]. Subscribers of the same group, in this process or
    /// others, split the partitions.
    pub async fn subscribe(&self, group: &str) -> Result<Subscription<E>, Error> {
        self.subscribe_with(
            group,
            StartPosition::Earliest,
            SubscriptionOptions::default(),
        )
        .await
    }

    /// [`Transport::subscribe`] with a start position (used only when the group is
    /// created; an existing group resumes after its commits) and options.
    pub async fn subscribe_with(
        &self,
        group: &str,
        start: StartPosition,
        options: SubscriptionOptions,
    ) -> Result<Subscription<E>, Error> {
        let group = GroupName::new(group)?;
        let consumer = self
            .connector
            .join_group(&self.stream, &self.topic, &group, start)
            .await?;
        let subscription = Subscription::new(
            self.topic.to_string(),
            Arc::from(consumer),
            options,
            Arc::clone(&self.upcasters),
        );
        subscription.set_terminal(self.terminal());
        Ok(subscription)
    }

    /// The dead letters of this transport's topic: the dead-letter topic (named by
    /// `config`, `<topic>.dlq` by default) is created when missing, with
    /// `config.retention` or else [`TransportOptions::dead_letter_retention`].
    /// Fails with [`DeadLetterError::Connector`] when the topic cannot be opened.
    pub async fn dead_letters(
        &self,
        config: &DeadLetterConfig,
    ) -> Result<DeadLetters, DeadLetterError> {
        DeadLetters::configured(
            Arc::clone(&self.connector),
            self.stream.clone(),
            self.topic.clone(),
            self.partitions,
            config,
            self.dead_letter_retention,
        )
        .await
    }

    /// What [`crate::Delivery::term`] of a subscription of this transport writes to:
    /// its default dead-letter topic, opened on first use.
    fn terminal(&self) -> Terminal {
        let connector = Arc::clone(&self.connector);
        let stream = self.stream.clone();
        let source = self.topic.clone();
        let partitions = self.partitions;
        let retention = self.dead_letter_retention;
        Terminal {
            open: Box::new(move || {
                let (connector, stream, source) =
                    (Arc::clone(&connector), stream.clone(), source.clone());
                Box::pin(async move {
                    let topic = default_topic(&source);
                    DeadLetters::open_with(connector, stream, source, topic, partitions, retention)
                        .await
                })
            }),
            opened: tokio::sync::OnceCell::new(),
        }
    }

    /// Replays the topic from `from` until `until`, under its own consumer identity:
    /// no group's committed offset is read or moved. Upcasters of this transport apply.
    ///
    /// A finite replay ([`ReplayUntil::Head`], [`ReplayUntil::Timestamp`]) is bounded
    /// by each partition's head when the call is made and always ends: at once (empty)
    /// when it starts at or past the head, or at a time after the last event, so a
    /// replay from [`StartPosition::Latest`] until [`ReplayUntil::Head`] yields nothing.
    /// [`ReplayUntil::Follow`] never ends; from [`StartPosition::Latest`] it tails the
    /// topic (only the events stored after the call). Events are read, never acknowledged: a
    /// replay has no delivery guarantee to keep beyond "what was stored and retained".
    pub async fn replay(
        &self,
        from: StartPosition,
        until: ReplayUntil,
    ) -> Result<Replay<E>, Error> {
        let upcasters = Arc::clone(self.upcasters());
        // The event's schemas are looked up once, not per message.
        let schemas = crate::schema::schemas::<E>().ok();
        let decoder: Decoder<E> =
            Arc::new(move |message| decode_message(message, &upcasters, schemas));
        replay_with(
            self.connector(),
            self.stream(),
            self.topic(),
            decoder,
            from,
            until,
        )
        .await
    }

    /// The partitions of this transport's topic that subscriptions of `group` in this
    /// process hold now (see [`Subscription::held_partitions`]), the handler runner's
    /// included.
    pub fn held_partitions(&self, group: &str) -> Vec<HeldPartition> {
        held_in(self.topic().as_str(), group)
    }

    /// The plain events of consumer group `group`, each acknowledged when the next
    /// one is asked for (see [`Events`]).
    pub async fn events(&self, group: &str) -> Result<Events<E>, Error> {
        Ok(Events::new(self.subscribe(group).await?))
    }
}
