//! The batching publisher behind the typed [`Transport`] and the envelope
//! [`IggyTransport`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use rustok_iggy_connector::partition_for;
use uuid::Uuid;

use super::publisher::{BatchingOptions, BatchingPublisher, PendingReceipt, TopicLanes};
use crate::envelope::{AckId, EventEnvelope, EventTransport, IggyTransport, ReliabilityLevel};
use crate::error::Error;
use crate::event_impl::IggyEvent;
use crate::metadata::EventMetadata;
use crate::transport::{Receipt, Transport, routing};

/// A [`Transport`] whose publishes go through a [`BatchingPublisher`]: many
/// concurrent `publish` calls become few broker requests, each call still getting its
/// own [`Receipt`] or error. Made by [`BatchingTransport::new`]; cheap to clone (clones
/// share the buffer).
pub struct BatchingTransport<E> {
    transport: Transport<E>,
    publisher: BatchingPublisher,
    lanes: Arc<TopicLanes>,
}

impl<E> Clone for BatchingTransport<E> {
    fn clone(&self) -> Self {
        Self {
            transport: self.transport.clone(),
            publisher: self.publisher.clone(),
            lanes: Arc::clone(&self.lanes),
        }
    }
}

impl<E> fmt::Debug for BatchingTransport<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchingTransport")
            .field("transport", &self.transport)
            .field("publisher", &self.publisher)
            .finish()
    }
}

/// The receipt of an event queued by [`BatchingTransport::submit_with`].
#[must_use = "the receipt says whether the event was stored"]
pub struct PendingEvent {
    receipt: PendingReceipt,
    event_id: Uuid,
}

impl PendingEvent {
    /// The event id (known before the broker answers).
    #[must_use]
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }
}

impl fmt::Debug for PendingEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingEvent")
            .field("event_id", &self.event_id)
            .finish_non_exhaustive()
    }
}

impl Future for PendingEvent {
    type Output = Result<Receipt, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let event_id = self.event_id;
        Pin::new(&mut self.receipt).poll(cx).map(|receipt| {
            let receipt = receipt?;
            Ok(Receipt::of(&receipt, 0, event_id))
        })
    }
}

impl<E: IggyEvent> BatchingTransport<E> {
    /// `transport` with its single-event publishes coalesced into batches (see
    /// [`BatchingPublisher`] for the guarantees). Subscribing is unchanged: reach it
    /// through [`BatchingTransport::transport`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use rustok_iggy::prelude::*;
    /// use rustok_iggy::batching::{BatchingOptions, BatchingTransport};
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize, IggyEvent)]
    /// #[iggy(topic = "orders", key = tenant_id)]
    /// struct OrderPlaced { tenant_id: String, total_cents: u64 }
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = rustok_iggy::connector::ConnectorConfig::embedded(dir.path());
    /// let connector = std::sync::Arc::new(rustok_iggy::connector::EmbeddedConnector::new());
    /// rustok_iggy::connector::IggyConnector::connect(&*connector, &config).await?;
    /// let orders = Transport::<OrderPlaced>::new(connector.clone(), TransportOptions::default()).await?;
    ///
    /// let batched = BatchingTransport::new(&orders, BatchingOptions::default())?;
    /// let receipt = batched.publish(&OrderPlaced { tenant_id: "acme".into(), total_cents: 1 }).await?;
    /// assert_eq!(receipt.partition, rustok_iggy::connector::partition_for(b"acme", orders.partitions()));
    /// batched.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn new(transport: &Transport<E>, options: BatchingOptions) -> Result<Self, Error> {
        let publisher = BatchingPublisher::new(Arc::clone(transport.connector()), options)?;
        Ok(Self {
            lanes: publisher.lanes_for(
                transport.stream(),
                transport.topic(),
                transport.partitions(),
            ),
            publisher,
            transport: transport.clone(),
        })
    }

    /// The transport underneath (to subscribe, or to publish without batching).
    pub fn transport(&self) -> &Transport<E> {
        &self.transport
    }

    /// The batching publisher (its buffer, its options).
    pub fn publisher(&self) -> &BatchingPublisher {
        &self.publisher
    }

    /// Publishes one event as part of a batch; returns its own receipt once the
    /// broker acknowledged the batch (embedded: written under the durability policy).
    /// Events with the same key keep their publish order.
    ///
    /// If this returns an error the event may or may not be stored, unless
    /// [`crate::batching::BatchError::is_not_stored`] says it never left the buffer.
    pub async fn publish(&self, event: &E) -> Result<Receipt, Error> {
        self.publish_with(event, &EventMetadata::default()).await
    }

    /// [`BatchingTransport::publish`] with metadata (an event without a key of its own
    /// is partitioned by the tenant id, as [`Transport::publish_with`] does).
    pub async fn publish_with(
        &self,
        event: &E,
        metadata: &EventMetadata,
    ) -> Result<Receipt, Error> {
        self.submit_with(event, metadata).await?.await
    }

    /// Queues one event and returns its pending receipt: events submitted one after
    /// the other keep that order within their partition, without waiting for each
    /// receipt in between. A queued event is sent even if the receipt is dropped.
    pub async fn submit_with(
        &self,
        event: &E,
        metadata: &EventMetadata,
    ) -> Result<PendingEvent, Error> {
        let (message, event_id) =
            self.transport
                .message(event, metadata, &crate::transport::traceparent_value())?;
        let partition = routing(event, metadata, self.transport.partitions());
        let receipt = self
            .publisher
            .submit_to(&self.lanes, partition, message)
            .await?;
        Ok(PendingEvent { receipt, event_id })
    }

    /// Returns once every event submitted before this call was answered.
    pub async fn flush(&self) {
        self.publisher.flush().await;
    }

    /// Refuses new events and returns once every queued event was answered (the
    /// connector stays connected).
    pub async fn shutdown(&self) {
        self.publisher.shutdown().await;
    }
}

impl IggyTransport {
    /// This transport with [`EventTransport::publish`] coalesced into batches: the
    /// platform sends one envelope at a time, the broker gets few requests. Each call
    /// still returns its own outcome; envelopes of one tenant keep their order.
    pub fn with_batching(self, options: BatchingOptions) -> Result<BatchingEventTransport, Error> {
        Ok(BatchingEventTransport {
            publisher: BatchingPublisher::new(Arc::clone(self.connector()), options)?,
            inner: self,
        })
    }
}

/// An [`IggyTransport`] whose publishes go through a [`BatchingPublisher`]; made by
/// [`IggyTransport::with_batching`]. Subscribing and acknowledging are the inner
/// transport's.
pub struct BatchingEventTransport {
    inner: IggyTransport,
    publisher: BatchingPublisher,
}

impl fmt::Debug for BatchingEventTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchingEventTransport")
            .field("inner", &self.inner)
            .field("publisher", &self.publisher)
            .finish()
    }
}

impl BatchingEventTransport {
    /// The transport underneath (to subscribe).
    pub fn transport(&self) -> &IggyTransport {
        &self.inner
    }

    /// The batching publisher.
    pub fn publisher(&self) -> &BatchingPublisher {
        &self.publisher
    }

    /// Returns once every envelope submitted before this call was answered.
    pub async fn flush(&self) {
        self.publisher.flush().await;
    }

    /// Refuses new envelopes and returns once every queued one was answered.
    pub async fn shutdown(&self) {
        self.publisher.shutdown().await;
    }

    async fn submit(&self, envelope: &EventEnvelope) -> Result<PendingReceipt, Error> {
        let topic = self.inner.topic_for(&envelope.event_type).clone();
        let partitions = self.inner.partitions(&topic).await?;
        let partition = envelope
            .tenant_id
            .as_deref()
            .map(|tenant| partition_for(tenant.as_bytes(), partitions));
        let message = self.inner.message(envelope)?;
        let lanes = self
            .publisher
            .lanes_for(self.inner.stream_name(), &topic, partitions);
        Ok(self.publisher.submit_to(&lanes, partition, message).await?)
    }
}

#[async_trait]
impl EventTransport for BatchingEventTransport {
    /// Returns once the broker acknowledged the batch this envelope was part of.
    async fn publish(&self, envelope: EventEnvelope) -> Result<(), Error> {
        self.submit(&envelope).await?.await?;
        Ok(())
    }

    /// Queues every envelope in order (so each tenant's keep their order), then
    /// waits for all of them; the first failure is returned once all were answered.
    async fn publish_batch(&self, envelopes: Vec<EventEnvelope>) -> Result<(), Error> {
        let mut pending = Vec::with_capacity(envelopes.len());
        for envelope in &envelopes {
            pending.push(self.submit(envelope).await?);
        }
        let mut first_error = None;
        for receipt in pending {
            if let Err(error) = receipt.await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    async fn acknowledge(&self, ack: AckId) -> Result<(), Error> {
        self.inner.acknowledge(ack).await
    }

    async fn nack(&self, ack: AckId, delay: Duration) -> Result<(), Error> {
        self.inner.nack(ack, delay).await
    }

    /// Answers every queued envelope (refusing new ones), then shuts the inner
    /// transport down.
    async fn shutdown(&self) -> Result<(), Error> {
        self.publisher.shutdown().await;
        self.inner.shutdown().await
    }

    fn reliability_level(&self) -> ReliabilityLevel {
        ReliabilityLevel::Streaming
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
