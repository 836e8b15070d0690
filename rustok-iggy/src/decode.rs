//! Turning a received message into a typed event.

use std::borrow::Cow;

use rustok_iggy_connector::ReceivedMessage;

use crate::codec_impl::{Codec, CodecError};
use crate::event_impl::IggyEvent;
use crate::metadata::{EventHeaders, header};
use crate::schema::{EventSchema, Fingerprint};
use crate::upcast::Upcasters;

/// Why a received message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeFailure {
    /// The payload does not decode with its codec.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The message names an event type this consumer does not know.
    #[error("unknown event type {event_type:?}; this consumer knows {known}")]
    UnknownEventType {
        /// The type named by the message.
        event_type: String,
        /// The types the consumer knows, comma-separated.
        known: String,
    },
    /// The message was written with a schema version newer than the consumer's.
    #[error(
        "event type {event_type:?} has schema version {version}, newer than the {known} this consumer knows"
    )]
    NewerSchemaVersion {
        /// The event type.
        event_type: String,
        /// The message's version.
        version: u32,
        /// The consumer's version.
        known: u32,
    },
    /// The message was written at the consumer's schema version but with another
    /// schema fingerprint: the producer's type has another shape (fields reordered,
    /// renamed or retyped without a version bump), and decoding its Postcard payload
    /// could yield wrong values. See [`crate::schema`].
    #[error(
        "event type {event_type:?} version {version} was written with schema fingerprint \
         {found}, but this consumer's is {expected}: the shapes differ at the same version"
    )]
    SchemaMismatch {
        /// The event type.
        event_type: String,
        /// The schema version (the message's and the consumer's).
        version: u32,
        /// The consumer's fingerprint.
        expected: Fingerprint,
        /// The message's fingerprint.
        found: Fingerprint,
    },
    /// A header rustok-iggy writes has a value it cannot read.
    #[error("header {name:?} has an invalid value")]
    InvalidHeader {
        /// The header.
        name: &'static str,
    },
    /// The message was written at an older schema version and no upcaster converts
    /// that version: decoding it as the current type could yield wrong values.
    #[error(
        "no upcaster from version {from} to {to} of event type {event_type:?} (register one \
         with Upcasters::register)"
    )]
    MissingUpcaster {
        /// The event type.
        event_type: String,
        /// The message's version.
        from: u32,
        /// The consumer's version.
        to: u32,
    },
    /// The message's user headers do not decode (another client wrote them, or an older
    /// broker stored them): the message has no readable headers.
    #[error("its user headers do not decode")]
    MalformedHeaders(#[source] rustok_iggy_connector::WireError),
}

/// Turns a received message into an `E`, or says why not (and which event type the
/// message named).
pub(crate) type Decoder<E> = std::sync::Arc<
    dyn Fn(&ReceivedMessage) -> Result<(E, DecodedInfo), (DecodeFailure, Option<String>)>
        + Send
        + Sync,
>;

/// What the headers said about a decoded event.
#[derive(Debug)]
pub(crate) struct DecodedInfo {
    /// Borrowed from `E::EVENT_TYPES` for typed events (no allocation per event).
    pub(crate) event_type: Cow<'static, str>,
    pub(crate) schema_version: u32,
    /// The event id (see [`EventHeaders::event_id`]).
    pub(crate) event_id: uuid::Uuid,
}

/// Decodes `message` as an `E`, checking the event type and schema version its
/// headers name against what `E` knows: a newer version is refused, an older one is
/// read through its upcaster (and refused without one). On failure, returns the reason
/// and the event type the message named.
pub(crate) fn decode_message<E: IggyEvent>(
    message: &ReceivedMessage,
    upcasters: &Upcasters<E>,
    schemas: Option<&'static [EventSchema]>,
) -> Result<(E, DecodedInfo), (DecodeFailure, Option<String>)> {
    if let Some(malformed) = &message.malformed_headers {
        return Err((
            DecodeFailure::MalformedHeaders(malformed.error.clone()),
            None,
        ));
    }
    let read = EventHeaders::read(&message.headers).map_err(|invalid| {
        let named = message.headers.get_str(header::EVENT_TYPE);
        (
            DecodeFailure::InvalidHeader { name: invalid.name },
            named.map(str::to_owned),
        )
    })?;
    // Borrowed from the message: owned only when a failure is reported.
    let named_type = read.event_type;
    let fail = |failure: DecodeFailure| (failure, named_type.map(str::to_owned));
    let codec = read.codec;
    let known = match named_type {
        Some(event_type) => E::EVENT_TYPES
            .iter()
            .find(|info| info.event_type == event_type)
            .ok_or_else(|| {
                fail(DecodeFailure::UnknownEventType {
                    event_type: event_type.to_owned(),
                    known: E::EVENT_TYPES
                        .iter()
                        .map(|info| info.event_type)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            })?,
        None => match E::EVENT_TYPES {
            [only] => only,
            _ => {
                return Err(fail(DecodeFailure::InvalidHeader {
                    name: header::EVENT_TYPE,
                }));
            }
        },
    };
    let schema_version = read.schema_version;
    if schema_version > known.version {
        return Err(fail(DecodeFailure::NewerSchemaVersion {
            event_type: known.event_type.to_owned(),
            version: schema_version,
            known: known.version,
        }));
    }
    let decoded = if schema_version < known.version {
        // An older version is read only through its upcaster: decoding it as the
        // current type could succeed with wrong values (Postcard is not
        // self-describing).
        if let Some(expected) = upcasters.fingerprint(known.event_type, schema_version) {
            let check = |found: Fingerprint| found == expected;
            fingerprint_matches(
                &read,
                codec,
                known.event_type,
                schema_version,
                expected,
                check,
            )
            .map_err(fail)?;
        }
        upcasters
            .upcast(known.event_type, schema_version, codec, &message.payload)
            .ok_or_else(|| {
                fail(DecodeFailure::MissingUpcaster {
                    event_type: known.event_type.to_owned(),
                    from: schema_version,
                    to: known.version,
                })
            })?
    } else {
        check_fingerprint(schemas, &read, codec, known.event_type, schema_version).map_err(fail)?;
        codec.decode_value::<E>(known.event_type, &message.payload)
    };
    let event = decoded.map_err(|e| fail(DecodeFailure::Codec(e)))?;
    Ok((
        event,
        DecodedInfo {
            event_type: Cow::Borrowed(known.event_type),
            schema_version,
            event_id: read.event_id(message.id),
        },
    ))
}

/// Refuses a Postcard payload whose schema fingerprint header differs from `E`'s for
/// `event_type` at `version` (and from the ones it declares compatible): Postcard is
/// not self-describing, so another shape would decode into wrong values. A type that
/// cannot be traced is decoded as before.
fn check_fingerprint(
    schemas: Option<&'static [EventSchema]>,
    read: &EventHeaders<'_>,
    codec: Codec,
    event_type: &str,
    version: u32,
) -> Result<(), DecodeFailure> {
    let schema = schemas.and_then(|schemas| {
        schemas
            .iter()
            .find(|schema| schema.event_type == event_type)
    });
    match schema {
        Some(schema) => fingerprint_matches(
            read,
            codec,
            event_type,
            version,
            schema.fingerprint,
            |found| schema.reads(found),
        ),
        None => Ok(()),
    }
}

/// The one fingerprint rule: a Postcard message with a fingerprint header that
/// `reads` refuses is a [`DecodeFailure::SchemaMismatch`]. JSON payloads name their
/// fields and are not checked; a message without the header (an older producer) is
/// decoded as before.
fn fingerprint_matches(
    read: &EventHeaders<'_>,
    codec: Codec,
    event_type: &str,
    version: u32,
    expected: Fingerprint,
    reads: impl Fn(Fingerprint) -> bool,
) -> Result<(), DecodeFailure> {
    if codec != Codec::Postcard {
        return Ok(());
    }
    let found = read
        .fingerprint()
        .map_err(|invalid| DecodeFailure::InvalidHeader { name: invalid.name })?;
    let Some(found) = found else {
        return Ok(());
    };
    if reads(found) {
        Ok(())
    } else {
        Err(DecodeFailure::SchemaMismatch {
            event_type: event_type.to_owned(),
            version,
            expected,
            found,
        })
    }
}
