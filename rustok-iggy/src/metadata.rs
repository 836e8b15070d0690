//! Event metadata carried in Iggy user headers.

use rustok_iggy_connector::{HeaderError, HeaderValue, Headers};
use uuid::Uuid;

/// Names of the user headers rustok-iggy writes on every message. Other Iggy clients
/// can read them; they are part of the wire contract and do not change between
/// releases.
pub mod header {
    /// The event type (`order_placed`).
    pub const EVENT_TYPE: &str = "event_type";
    /// The schema version of the payload (text, `"2"`).
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// The codec of the payload (`json` or `postcard`).
    pub const CODEC: &str = "codec";
    /// The schema fingerprint of the payload's type and version (16 hexadecimal
    /// digits; see [`crate::schema`]).
    pub const SCHEMA_FINGERPRINT: &str = "schema_fingerprint";
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

    /// How many fields are set (the headers [`EventMetadata::write`] adds).
    pub(crate) fn len(&self) -> usize {
        [
            &self.correlation_id,
            &self.causation_id,
            &self.tenant_id,
            &self.actor_id,
            &self.traceparent,
            &self.tracestate,
        ]
        .iter()
        .filter(|field| field.is_some())
        .count()
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
                headers.insert_static(name, HeaderValue::string(value.as_str()))?;
            }
        }
        Ok(())
    }

    /// Reads the fields back from received headers (`event_id` from the message id).
    pub(crate) fn read(headers: &Headers, id: u128) -> Self {
        let text = |name: &str| headers.get_str(name).map(str::to_owned);
        Self {
            event_id: Some(event_id(headers, id)),
            correlation_id: text(header::CORRELATION_ID),
            causation_id: text(header::CAUSATION_ID),
            tenant_id: text(header::TENANT_ID),
            actor_id: text(header::ACTOR_ID),
            traceparent: text(header::TRACEPARENT),
            tracestate: text(header::TRACESTATE),
        }
    }
}

/// The event id of a stored message: its `event_id` header when it has a valid one
/// (a re-driven dead letter is a new message, with a message id of its own, of the
/// same event), else its Iggy message id (what `Transport` sets the header to).
pub(crate) fn event_id(headers: &Headers, message_id: u128) -> Uuid {
    headers
        .get_str(header::EVENT_ID)
        .and_then(|text| Uuid::parse_str(text).ok())
        .unwrap_or_else(|| Uuid::from_u128(message_id))
}
