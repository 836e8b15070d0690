//! Where and how a delivery arrived.

use std::borrow::Cow;

use rustok_iggy_connector::Headers;
use uuid::Uuid;

use crate::metadata::EventMetadata;

/// Where and how a delivery arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryInfo {
    /// The partition.
    pub partition: u32,
    /// The offset in that partition.
    pub offset: u64,
    /// The event id (the Iggy message id).
    pub event_id: Uuid,
    /// The event type the message names (borrowed from the event's definition for a
    /// typed event: no allocation per delivery).
    pub event_type: Cow<'static, str>,
    /// The schema version it was written with.
    pub schema_version: u32,
    /// When the broker appended it (µs since the Unix epoch).
    pub timestamp: u64,
    /// 1 for the first delivery in this process, 2 after one `nack` or one expired
    /// acknowledgement deadline ([`crate::SubscriptionOptions::ack_wait`]), ...
    pub attempt: u32,
    /// Every user header of the message (sharing the received record's buffer).
    pub headers: Headers,
}

impl DeliveryInfo {
    /// Correlation, causation, tenant, actor and trace context, read from
    /// [`DeliveryInfo::headers`] when asked for (nothing is copied per delivery
    /// otherwise).
    #[must_use]
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata::read(&self.headers, self.event_id.as_u128())
    }

    /// The W3C `traceparent` the message carries, borrowed from its headers.
    #[must_use]
    pub fn traceparent(&self) -> Option<&str> {
        self.headers.get_str(crate::metadata::header::TRACEPARENT)
    }
}
