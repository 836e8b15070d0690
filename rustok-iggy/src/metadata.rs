//! Event metadata carried in Iggy user headers: [`EventMetadata`] (ids, tenant,
//! actor, W3C trace context), the [`header`] names every message carries, and the
//! trace-context helpers. The header names are part of the wire contract: other Iggy
//! clients can read them, and they do not change between releases.

use bytes::{Bytes, BytesMut};
use rustok_iggy_connector::{HeaderError, HeaderValue, HeaderValueRef, Headers};
use uuid::Uuid;

use crate::codec_impl::Codec;
use crate::schema::Fingerprint;

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

/// The headers that say what a received message's payload is: its event type, schema
/// version and codec, as read by [`EventHeaders::read`]. Typed subscriptions and
/// envelope streams read a message through this one type, so both read it the same way
/// (the defaults for a missing header are on [`header::SCHEMA_VERSION`] and
/// [`header::CODEC`]); both write through [`OutgoingHeaders::write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventHeaders<'a> {
    /// The event type; `None` when the message names none. Borrowed from the message.
    pub(crate) event_type: Option<&'a str>,
    /// The schema version of the payload.
    pub(crate) schema_version: u32,
    /// The codec of the payload.
    pub(crate) codec: Codec,
    /// The schema fingerprint header, unparsed (see [`EventHeaders::fingerprint`]).
    fingerprint: Option<HeaderValueRef<'a>>,
    /// The event id header, unparsed (see [`EventHeaders::event_id`]).
    event_id: Option<HeaderValueRef<'a>>,
}

impl<'a> EventHeaders<'a> {
    /// The schema version of a message without a [`header::SCHEMA_VERSION`].
    pub(crate) const DEFAULT_SCHEMA_VERSION: u32 = 1;
    /// The codec of a message without a [`header::CODEC`].
    pub(crate) const DEFAULT_CODEC: Codec = Codec::Json;

    /// Reads the headers of a received message, without allocating. A missing header
    /// takes its default; a present one that does not parse (or is not text) is an
    /// error naming it.
    pub(crate) fn read(headers: &'a Headers) -> Result<Self, InvalidEventHeader> {
        // One pass over the headers; the values are checked only for the names read
        // here.
        let [event_type, schema_version, codec, fingerprint, event_id] = headers.get_many([
            header::EVENT_TYPE,
            header::SCHEMA_VERSION,
            header::CODEC,
            header::SCHEMA_FINGERPRINT,
            header::EVENT_ID,
        ]);
        let text = |value: Option<HeaderValueRef<'a>>, name: &'static str| {
            value
                .map(|value| value.as_str().ok_or(InvalidEventHeader { name }))
                .transpose()
        };
        let schema_version = match text(schema_version, header::SCHEMA_VERSION)? {
            None => Self::DEFAULT_SCHEMA_VERSION,
            Some(text) => text.parse().map_err(|_| InvalidEventHeader {
                name: header::SCHEMA_VERSION,
            })?,
        };
        let codec = match text(codec, header::CODEC)? {
            None => Self::DEFAULT_CODEC,
            Some(text) => text.parse().map_err(|_| InvalidEventHeader {
                name: header::CODEC,
            })?,
        };
        Ok(Self {
            event_type: text(event_type, header::EVENT_TYPE)?,
            schema_version,
            codec,
            fingerprint,
            event_id,
        })
    }

    /// The event id: the [`header::EVENT_ID`] when it is a valid one, else
    /// `message_id` (see [`event_id`]).
    pub(crate) fn event_id(&self, message_id: u128) -> Uuid {
        parse_event_id(self.event_id, message_id)
    }

    /// The [`header::SCHEMA_FINGERPRINT`] of the message: `None` when absent (a
    /// producer that writes none). Parsed only where it is checked (Postcard
    /// payloads), so a message whose payload names its fields is not refused for it.
    pub(crate) fn fingerprint(&self) -> Result<Option<Fingerprint>, InvalidEventHeader> {
        let invalid = InvalidEventHeader {
            name: header::SCHEMA_FINGERPRINT,
        };
        self.fingerprint
            .map(|value| {
                value
                    .as_str()
                    .and_then(|text| text.parse().ok())
                    .ok_or(invalid)
            })
            .transpose()
    }
}

/// The headers of an outgoing message, written by [`OutgoingHeaders::write`] for
/// typed events and envelopes alike. Values are [`HeaderValue`]s so that a caller can
/// share them: a typed event's type is static, and the event ids and the
/// `traceparent` of one publish call share one buffer each.
#[derive(Debug)]
pub(crate) struct OutgoingHeaders<'a> {
    /// The event type.
    pub(crate) event_type: HeaderValue,
    /// The schema version of the payload (versions below 16 cost no allocation).
    pub(crate) schema_version: u32,
    /// The codec of the payload.
    pub(crate) codec: Codec,
    /// The schema fingerprint of the payload's type as header text (see
    /// [`fingerprint_text`]), where it has one.
    pub(crate) fingerprint: Option<HeaderValue>,
    /// The event id in text form (see [`id_texts`]).
    pub(crate) event_id: Bytes,
    /// The metadata; its set fields are written too.
    pub(crate) metadata: &'a EventMetadata,
    /// The `traceparent` written when `metadata` has none (one per publish call).
    pub(crate) trace: &'a HeaderValue,
}

impl OutgoingHeaders<'_> {
    /// How many headers [`OutgoingHeaders::write`] writes at most besides the metadata.
    const OWN: usize = 6;

    /// The headers of the message, with room for `extra` more. Every name is static
    /// and the values shared: the headers cost one allocation (their list, which
    /// clones share), plus one for a schema version of 16 or more.
    pub(crate) fn write(self, extra: usize) -> Result<Headers, HeaderError> {
        let mut headers = Headers::with_capacity(Self::OWN + self.metadata.len() + extra);
        headers.insert_static(header::EVENT_TYPE, self.event_type)?;
        headers.insert_static(
            header::SCHEMA_VERSION,
            schema_version_text(self.schema_version),
        )?;
        headers.insert_static(header::CODEC, HeaderValue::from_static(self.codec.as_str()))?;
        if let Some(fingerprint) = self.fingerprint {
            headers.insert_static(header::SCHEMA_FINGERPRINT, fingerprint)?;
        }
        headers.insert_static(header::EVENT_ID, shared_text(self.event_id))?;
        self.metadata.write(&mut headers)?;
        if self.metadata.traceparent.is_none() {
            headers.insert_static(header::TRACEPARENT, self.trace.clone())?;
        }
        Ok(headers)
    }
}

/// The [`header::SCHEMA_FINGERPRINT`] value of `fingerprint`: made once per event
/// type, its clones share it.
pub(crate) fn fingerprint_text(fingerprint: Fingerprint) -> HeaderValue {
    HeaderValue::string(fingerprint.to_string())
}

/// Length of a UUID in text form (`8-4-4-4-12` hex digits).
pub(crate) const ID_TEXT_LEN: usize = uuid::fmt::Hyphenated::LENGTH;

/// The text forms of `ids`, one after the other in one buffer (one allocation per
/// publish call, sliced per event: `ID_TEXT_LEN` bytes each).
pub(crate) fn id_texts(ids: &[Uuid]) -> Bytes {
    let mut out = BytesMut::with_capacity(ids.len() * ID_TEXT_LEN);
    let mut text = [0u8; ID_TEXT_LEN];
    for id in ids {
        out.extend_from_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
    }
    out.freeze()
}

/// A text header value from bytes known to be UTF-8 (made by [`id_texts`]).
fn shared_text(bytes: Bytes) -> HeaderValue {
    HeaderValue::shared_str(bytes).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The schema version as header text; versions below 16 are static.
fn schema_version_text(version: u32) -> HeaderValue {
    const SMALL: [&str; 16] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    ];
    match SMALL.get(version as usize) {
        Some(text) => HeaderValue::from_static(text),
        None => HeaderValue::string(version.to_string()),
    }
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
    parse_event_id(headers.get(header::EVENT_ID), message_id)
}

fn parse_event_id(header: Option<HeaderValueRef<'_>>, message_id: u128) -> Uuid {
    header
        .and_then(HeaderValueRef::as_str)
        .and_then(|text| Uuid::parse_str(text).ok())
        .unwrap_or_else(|| Uuid::from_u128(message_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `EventHeaders::read` and `EventHeaders::fingerprint` as they were before the
    /// one-pass read: one `Headers::get` per name, in this order.
    #[allow(clippy::type_complexity)]
    fn read_before(
        headers: &Headers,
    ) -> Result<
        (
            Option<&str>,
            u32,
            Codec,
            Result<Option<Fingerprint>, InvalidEventHeader>,
        ),
        InvalidEventHeader,
    > {
        let text = |name: &'static str| {
            headers
                .get(name)
                .map(|value| value.as_str().ok_or(InvalidEventHeader { name }))
                .transpose()
        };
        let schema_version = match text(header::SCHEMA_VERSION)? {
            None => 1,
            Some(text) => text.parse().map_err(|_| InvalidEventHeader {
                name: header::SCHEMA_VERSION,
            })?,
        };
        let codec = match text(header::CODEC)? {
            None => Codec::Json,
            Some(text) => text.parse().map_err(|_| InvalidEventHeader {
                name: header::CODEC,
            })?,
        };
        let event_type = text(header::EVENT_TYPE)?;
        let fingerprint = text(header::SCHEMA_FINGERPRINT).and_then(|text| {
            text.map(|text| {
                text.parse().map_err(|_| InvalidEventHeader {
                    name: header::SCHEMA_FINGERPRINT,
                })
            })
            .transpose()
        });
        Ok((event_type, schema_version, codec, fingerprint))
    }

    fn tlv(out: &mut Vec<u8>, key: &[u8], kind: u8, value: &[u8]) {
        out.push(2);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.push(kind);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }

    /// (kind, bytes) values tried for each name: text that reads, text that does not,
    /// the right text in a value that is not text, bytes that are not UTF-8.
    fn values(name: &str) -> Vec<(u8, Vec<u8>)> {
        let texts: &[&str] = match name {
            header::EVENT_TYPE => &["order_placed", "other"],
            header::SCHEMA_VERSION => &["2", "1", "x", "-1", "4294967296", " 2"],
            header::CODEC => &["json", "postcard", "JSON", "cbor"],
            _ => &[
                "0123456789abcdef",
                "fedcba9876543210",
                "0123456789ABCDEF",
                "0123",
            ],
        };
        let mut values: Vec<(u8, Vec<u8>)> =
            texts.iter().map(|t| (2, t.as_bytes().to_vec())).collect();
        values.push((1, texts[0].as_bytes().to_vec()));
        values.push((12, 2u64.to_le_bytes().to_vec()));
        values.push((2, vec![0xff, 0xfe]));
        values
    }

    #[test]
    fn the_one_pass_read_answers_as_one_get_per_name_did() {
        let names = [
            header::EVENT_TYPE,
            header::SCHEMA_VERSION,
            header::CODEC,
            header::SCHEMA_FINGERPRINT,
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        let mut compared = 0;
        for round in 0..20_000 {
            // Each name absent, once or twice (a repeated name), among other headers,
            // in a random order; some blocks also carry a key that is not UTF-8 (read
            // as a list, not in place).
            let mut entries: Vec<(Vec<u8>, u8, Vec<u8>)> = Vec::new();
            for name in names {
                let values = values(name);
                for _ in 0..random(3) {
                    let (kind, value) = values[random(values.len())].clone();
                    entries.push((name.as_bytes().to_vec(), kind, value));
                }
            }
            entries.push((b"tenant_id".to_vec(), 2, b"acme".to_vec()));
            if round % 4 == 0 {
                entries.push((b"k\xff".to_vec(), 2, b"v".to_vec()));
            }
            for i in (1..entries.len()).rev() {
                entries.swap(i, random(i + 1));
            }
            let mut bytes = Vec::new();
            for (key, kind, value) in &entries {
                tlv(&mut bytes, key, *kind, value);
            }
            let headers = Headers::decode(&bytes).unwrap();
            let now = EventHeaders::read(&headers).map(|read| {
                (
                    read.event_type,
                    read.schema_version,
                    read.codec,
                    read.fingerprint(),
                )
            });
            assert_eq!(now, read_before(&headers), "{headers:?}");
            compared += 1;
        }
        assert_eq!(compared, 20_000);
    }
}
