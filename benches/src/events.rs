//! The events of the suite: three realistic domain events for the codec bench (a
//! small flat one, a medium one with strings, a `Vec` and an enum, and the medium one
//! wrapped in an envelope with all metadata), their typed twins for `Transport<E>`,
//! and a sized blob for the throughput and latency benches.

use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Small and flat: four integers and a short string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The tenant.
    pub tenant_id: String,
    /// The order.
    pub order_id: u64,
    /// The customer.
    pub customer_id: u64,
    /// Order total.
    pub total_cents: u64,
    /// When (µs since the Unix epoch).
    pub placed_at: u64,
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Stock-keeping unit.
    pub sku: String,
    /// Units.
    pub quantity: u32,
    /// Price of one unit.
    pub unit_price_cents: u64,
}

/// Who carries a shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Carrier {
    /// UPS.
    Ups,
    /// DHL, with its service level.
    Dhl {
        /// Service level.
        service: String,
    },
    /// Anyone else.
    Other(String),
}

/// Medium: strings, a `Vec` of structs, an enum with data and an `Option`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderShipped {
    /// The tenant.
    pub tenant_id: String,
    /// The order.
    pub order_id: u64,
    /// The customer's name.
    pub customer_name: String,
    /// The customer's e-mail address.
    pub customer_email: String,
    /// The delivery address.
    pub address: String,
    /// What was shipped.
    pub lines: Vec<OrderLine>,
    /// Who carries it.
    pub carrier: Carrier,
    /// The carrier's tracking number.
    pub tracking_number: Option<String>,
    /// When (µs since the Unix epoch).
    pub shipped_at: u64,
}

/// The medium event in an envelope carrying every metadata field the platform
/// passes around (ids, type, version, tenancy, causality, trace context, actor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Event id.
    pub id: Uuid,
    /// Event type.
    pub event_type: String,
    /// Schema version.
    pub schema_version: u32,
    /// Tenant.
    pub tenant_id: String,
    /// Correlation id.
    pub correlation_id: Uuid,
    /// Causation id.
    pub causation_id: Uuid,
    /// W3C `traceparent`.
    pub traceparent: String,
    /// W3C `tracestate`.
    pub tracestate: Option<String>,
    /// The user or service that acted.
    pub actor_id: String,
    /// When it happened (µs since the Unix epoch).
    pub occurred_at: u64,
    /// The event.
    pub payload: OrderShipped,
}

/// A small flat event.
#[must_use]
pub fn order_placed(i: u64) -> OrderPlaced {
    OrderPlaced {
        tenant_id: "tenant-0042".into(),
        order_id: 1_000_000 + i,
        customer_id: 77_123 + i % 100,
        total_cents: 12_999 + i % 1000,
        placed_at: 1_767_225_600_000_000 + i,
    }
}

/// A medium event (three order lines).
#[must_use]
pub fn order_shipped(i: u64) -> OrderShipped {
    OrderShipped {
        tenant_id: "tenant-0042".into(),
        order_id: 1_000_000 + i,
        customer_name: "Ada Lovelace".into(),
        customer_email: "ada.lovelace@example.com".into(),
        address: "12 Analytical Engine Street, 10115 Berlin, Germany".into(),
        lines: vec![
            OrderLine {
                sku: "SKU-000123-BLUE-M".into(),
                quantity: 2,
                unit_price_cents: 2_499,
            },
            OrderLine {
                sku: "SKU-004711-RED-L".into(),
                quantity: 1,
                unit_price_cents: 5_999,
            },
            OrderLine {
                sku: "SKU-100200-BLACK".into(),
                quantity: 3,
                unit_price_cents: 899,
            },
        ],
        carrier: Carrier::Dhl {
            service: "express".into(),
        },
        tracking_number: Some("JD014600006281230704".into()),
        shipped_at: 1_767_225_600_000_000 + i,
    }
}

/// The medium event in an envelope with all metadata set.
#[must_use]
pub fn envelope(i: u64) -> Envelope {
    Envelope {
        id: Uuid::from_u128(0x0191_d2a4_7c3e_7a10_8b1e_5f6a_0000_0000 + u128::from(i)),
        event_type: "order.shipped".into(),
        schema_version: 3,
        tenant_id: "tenant-0042".into(),
        correlation_id: Uuid::from_u128(0x0191_d2a4_7c3e_7a10_9c2f_6a7b_8c9d_0e1f),
        causation_id: Uuid::from_u128(0x0191_d2a4_7c3e_7a10_ad3a_7b8c_9d0e_1f20),
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        tracestate: Some("rojo=00f067aa0ba902b7".into()),
        actor_id: "user:ada.lovelace".into(),
        occurred_at: 1_767_225_600_000_000 + i,
        payload: order_shipped(i),
    }
}

/// The medium event as a typed JSON event (`Transport<ShippedJson>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[serde(transparent)]
#[iggy(topic = "shipped-json", codec = "json")]
pub struct ShippedJson(pub OrderShipped);

/// The medium event as a typed Postcard event (`Transport<ShippedPostcard>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[serde(transparent)]
#[iggy(topic = "shipped-postcard", codec = "postcard")]
pub struct ShippedPostcard(pub OrderShipped);

/// An event of a chosen encoded size (Postcard): a sequence number (or, in the
/// latency bench, the send time) and a text body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "blobs", codec = "postcard")]
pub struct Blob {
    /// Sequence number, or nanoseconds since the bench's clock origin.
    pub seq: u64,
    /// Filler.
    pub body: String,
}

impl Blob {
    /// A blob whose Postcard encoding is about `size` bytes (`seq` is a varint of 1
    /// to 10 bytes; the body takes the rest).
    #[must_use]
    pub fn sized(seq: u64, size: usize) -> Self {
        Self {
            seq,
            body: "x".repeat(size.saturating_sub(10)),
        }
    }
}

/// `size` bytes of payload (what the raw benches publish).
#[must_use]
pub fn payload(size: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; size])
}
