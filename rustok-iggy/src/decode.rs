//! Turning a received message into a typed event.

use rustok_iggy_connector::ReceivedMessage;

use crate::error::DecodeFailure;
use crate::event::IggyEvent;
use crate::metadata::{EventHeaders, header};
use crate::upcast::Upcasters;

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
    pub(crate) event_type: String,
    pub(crate) schema_version: u32,
}

/// Decodes `message` as an `E`, checking the event type and schema version its
/// headers name against what `E` knows: a newer version is refused, an older one is
/// read through its upcaster (and refused without one). On failure, returns the reason
/// and the event type the message named.
pub(crate) fn decode_message<E: IggyEvent>(
    message: &ReceivedMessage,
    upcasters: &Upcasters<E>,
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
    let named_type = read.event_type.map(str::to_owned);
    let fail = |failure: DecodeFailure| (failure, named_type.clone());
    let codec = read.codec;
    let known = match &named_type {
        Some(event_type) => E::EVENT_TYPES
            .iter()
            .find(|info| info.event_type == event_type)
            .ok_or_else(|| {
                fail(DecodeFailure::UnknownEventType {
                    event_type: event_type.clone(),
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
        codec.decode_value::<E>(known.event_type, &message.payload)
    };
    let event = decoded.map_err(|e| fail(DecodeFailure::Codec(e)))?;
    Ok((
        event,
        DecodedInfo {
            event_type: known.event_type.to_owned(),
            schema_version,
        },
    ))
}
