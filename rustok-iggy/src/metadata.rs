//! Event metadata carried in Iggy user headers.

use rustok_iggy_connector::{HeaderError, Headers};
use uuid::Uuid;

use crate::codec::Codec;

/// Names of the user headers rustok-iggy writes on every message. Other Iggy clients
/// can read them; they are part of the wire contract and do not change between
/// releases.
pub mod header {
    /// The event type (`order_placed`).
    pub const EVENT_TYPE: &str = "event_type";
    /// The schema version of the payload (text, `"2"`). A message without it is read
    /// as version 1, the first version of every event type.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// The codec of the payload (`json` or `postcard`). A message without it is read as
    /// JSON, by typed subscriptions and envelope streams alike, whatever codec the
    /// reading type declares: rustok-iggy always writes it, so such a message comes
    /// from another producer, and JSON is self-describing (a wrong guess fails to
    /// decode instead of decoding wrong values, as Postcard could).
    pub const CODEC: &str = "codec";
    /// The event id (a UUID in text form; also the Iggy message id).
    pub const EVENT_ID: &str = "event_id";
    /// Correlation id.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// Causation id (the id of the event or command that caused this one).
    pub const CAUSATION_ID: &str = "causation_id";
    /// Tenant id.
    pub const TENANT_ID: &str = "tenant_id";
    /// Actor id (the user or service that acted).
    pub const ACTOR_ID: &str = "actor_id";
    /// W3C trace context `traceparent`.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace context `tracestate`.
    pub const TRACESTATE: &str = "tracestate";
    /// When the producer created the event (µs since the Unix epoch, text).
    pub const OCCURRED_AT: &str = "occurred_at";
}

/// The headers that say what a message's payload is: its event type, schema version
/// and codec. Typed transports and envelopes write them and read them back through
/// this one type, so both read a message the same way (the defaults for a missing
/// header are on [`header::SCHEMA_VERSION`] and [`header::CODEC`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventHeaders<'a> {
    /// The event type; `None` when the message names none.
    pub(crate) event_type: Option<&'a str>,
    /// The schema version of the payload.
    pub(crate) schema_version: u32,
    /// The codec of the payload.
    pub(crate) codec: Codec,
}

impl<'a> EventHeaders<'a> {
    /// The schema version of a message without a [`header::SCHEMA_VERSION`].
    pub(crate) const DEFAULT_SCHEMA_VERSION: u32 = 1;
    /// The codec of a message without a [`header::CODEC`].
    pub(crate) const DEFAULT_CODEC: Codec = Codec::Json;

    /// Reads the headers of a received message. A missing header takes its default; a
    /// present one that does not parse (or is not text) is an error naming it.
    pub(crate) fn read(headers: &'a Headers) -> Result<Self, InvalidEventHeader> {
        let schema_version = match text(headers, header::SCHEMA_VERSION)? {
            None => Self::DEFAULT_SCHEMA_VERSION,
            Some(text) => text.parse().map_err(|_| InvalidEventHeader {
                name: header::SCHEMA_VERSION,
            })?,
        };
        let codec = match text(headers, header::CODEC)? {
            None => Self::DEFAULT_CODEC,
            Some(text) => text.parse().map_err(|_| InvalidEventHeader {
                name: header::CODEC,
            })?,
        };
        Ok(Self {
            event_type: text(headers, header::EVENT_TYPE)?,
            schema_version,
            codec,
        })
    }

    /// Writes the headers of an outgoing message: these three, the event id, the set
    /// fields of `metadata`, and `trace` as the `traceparent` when `metadata` has none.
    pub(crate) fn write(
        &self,
        headers: &mut Headers,
        event_id: Uuid,
        metadata: &EventMetadata,
        trace: &str,
    ) -> Result<(), HeaderError> {
        if let Some(event_type) = self.event_type {
            headers.insert_str(header::EVENT_TYPE, event_type)?;
        }
        headers.insert_str(header::SCHEMA_VERSION, self.schema_version.to_string())?;
        headers.insert_str(header::CODEC, self.codec.as_str())?;
        headers.insert_str(header::EVENT_ID, event_id.to_string())?;
        metadata.write(headers)?;
        if metadata.traceparent.is_none() {
            headers.insert_str(header::TRACEPARENT, trace)?;
        }
        Ok(())
    }
}

/// The text of header `name`, `None` when absent, an error when it is not text.
fn text<'h>(
    headers: &'h Headers,
    name: &'static str,
) -> Result<Option<&'h str>, InvalidEventHeader> {
    headers
        .get(name)
        .map(|value| value.as_str().ok_or(InvalidEventHeader { name }))
        .transpose()
}

/// A header of [`EventHeaders`] is present with a value that does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidEventHeader {
    /// The header.
    pub(crate) name: &'static str,
}

/// A fresh W3C `traceparent` (version 00, random trace and span ids, sampled).
#[must_use]
pub fn new_traceparent() -> String {
    let trace = Uuid::new_v4().as_u128();
    let span = (Uuid::new_v4().as_u128() as u64) | 1;
    format!("00-{trace:032x}-{span:016x}-01")
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
#[must_use]
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (Some(version), Some(trace), Some(span)) = (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    (version.len() == 2 && trace.len() == 32 && span.len() == 16).then_some(trace)
}

/// Metadata published with an event, all optional.
///
/// Every field travels as a user header (see [`header`]); values are limited to 255
/// bytes by the Iggy wire format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventMetadata {
    /// The event id; a random UUIDv4 when not set. Consumers deduplicate by it.
    pub event_id: Option<Uuid>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
    /// Tenant id.
    pub tenant_id: Option<String>,
    /// Actor id.
    pub actor_id: Option<String>,
    /// W3C `traceparent`; when not set, publishing starts a new trace so that every
    /// message carries one (consumers' `handle` spans record it).
    pub traceparent: Option<String>,
    /// W3C `tracestate`.
    pub tracestate: Option<String>,
}

impl EventMetadata {
    /// No metadata.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the event id.
    #[must_use]
    pub fn event_id(mut self, id: Uuid) -> Self {
        self.event_id = Some(id);
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Sets the tenant id.
    #[must_use]
    pub fn tenant_id(mut self, id: impl Into<String>) -> Self {
        self.tenant_id = Some(id.into());
        self
    }

    /// Sets the actor id.
    #[must_use]
    pub fn actor_id(mut self, id: impl Into<String>) -> Self {
        self.actor_id = Some(id.into());
        self
    }

    /// Sets the W3C `traceparent`.
    #[must_use]
    pub fn traceparent(mut self, value: impl Into<String>) -> Self {
        self.traceparent = Some(value.into());
        self
    }

    /// Writes the set fields into `headers`.
    pub(crate) fn write(&self, headers: &mut Headers) -> Result<(), HeaderError> {
        let fields = [
            (header::CORRELATION_ID, &self.correlation_id),
            (header::CAUSATION_ID, &self.causation_id),
            (header::TENANT_ID, &self.tenant_id),
            (header::ACTOR_ID, &self.actor_id),
            (header::TRACEPARENT, &self.traceparent),
            (header::TRACESTATE, &self.tracestate),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                headers.insert_str(name, value.as_str())?;
            }
        }
        Ok(())
    }

    /// Reads the fields back from received headers (`event_id` from the message id).
    pub(crate) fn read(headers: &Headers, id: u128) -> Self {
        let text = |name: &str| headers.get_str(name).map(str::to_owned);
        Self {
            event_id: Some(Uuid::from_u128(id)),
            correlation_id: text(header::CORRELATION_ID),
            causation_id: text(header::CAUSATION_ID),
            tenant_id: text(header::TENANT_ID),
            actor_id: text(header::ACTOR_ID),
            traceparent: text(header::TRACEPARENT),
            tracestate: text(header::TRACESTATE),
        }
    }
}
