//! Payload codecs: how an event becomes the bytes of a message and back.

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The serialization of event payloads.
///
/// The codec is part of the wire format: consumers must decode with the codec the
/// producer encoded with (the transport records it in a message header).
///
/// | codec      | bytes                                   | schema evolution                        |
/// |------------|-----------------------------------------|-----------------------------------------|
/// | `Json`     | UTF-8 JSON (`serde_json`), readable     | fields can be added with `#[serde(default)]` |
/// | `Postcard` | compact binary (`postcard` 1.x), by position | none: any change of fields is a new `version`; a change without one is refused by the [schema fingerprint](crate::schema) |
///
/// Postcard is not self-describing: `#[serde(untagged)]`, internally tagged enums
/// (`#[serde(tag = "...")]` without `content`), `#[serde(flatten)]` and
/// `skip_serializing_if` do not work with it. `#[derive(IggyEvent)]` refuses them at
/// compile time when `codec = "postcard"`.
///
/// ```
/// use rustok_iggy::Codec;
///
/// assert_eq!(Codec::default(), Codec::Json);
/// assert_eq!("postcard".parse::<Codec>().unwrap(), Codec::Postcard);
/// assert_eq!(Codec::Postcard.to_string(), "postcard");
/// assert!("xml".parse::<Codec>().unwrap_err().to_string().contains("json, postcard"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Codec {
    /// JSON through `serde_json`. The default.
    #[default]
    Json,
    /// Postcard (a compact, non-self-describing binary format) through `postcard` 1.x.
    Postcard,
}

impl Codec {
    /// Every codec, in the order of [`Codec::as_str`] in error messages.
    pub const ALL: [Codec; 2] = [Codec::Json, Codec::Postcard];

    /// The lower-case name: `"json"` or `"postcard"` (as in configuration, in
    /// `#[iggy(codec = "...")]` and in message headers).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Postcard => "postcard",
        }
    }

    /// Encodes any serializable value; `event_type` names it in errors.
    pub fn encode_value<T: Serialize + ?Sized>(
        self,
        event_type: &str,
        value: &T,
    ) -> Result<Vec<u8>, CodecError> {
        let encoded = match self {
            Self::Json => serde_json::to_vec(value).map_err(box_error),
            // Sized first (a cheap pass that writes nothing): growing the buffer from
            // empty costs more than the encoding itself.
            Self::Postcard => postcard::experimental::serialized_size(value)
                .and_then(|size| postcard::to_extend(value, Vec::with_capacity(size)))
                .map_err(box_error),
        };
        encoded.map_err(|source| CodecError::Encode {
            event_type: event_type.to_owned(),
            codec: self,
            source,
        })
    }

    /// [`Codec::encode_value`], appending the encoding to `out` (several values in one
    /// buffer). On error `out` is as it was.
    pub(crate) fn encode_value_into<T: Serialize + ?Sized>(
        self,
        event_type: &str,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let start = out.len();
        let encoded = match self {
            Self::Json => serde_json::to_writer(&mut *out, value).map_err(box_error),
            // Sized first, as in `encode_value`.
            Self::Postcard => postcard::experimental::serialized_size(value)
                .and_then(|size| {
                    out.reserve(size);
                    postcard::to_io(value, &mut *out).map(drop)
                })
                .map_err(box_error),
        };
        encoded.map_err(|source| {
            out.truncate(start);
            CodecError::Encode {
                event_type: event_type.to_owned(),
                codec: self,
                source,
            }
        })
    }

    /// Decodes any deserializable value; `event_type` names it in errors. The whole of
    /// `bytes` must be used: trailing bytes are an error with both codecs.
    pub fn decode_value<T: DeserializeOwned>(
        self,
        event_type: &str,
        bytes: &[u8],
    ) -> Result<T, CodecError> {
        let decoded = match self {
            Self::Json => serde_json::from_slice(bytes).map_err(box_error),
            Self::Postcard => match postcard::take_from_bytes(bytes) {
                Ok((value, [])) => Ok(value),
                Ok((_, rest)) => Err(Box::new(TrailingBytes { count: rest.len() }).into()),
                Err(error) => Err(box_error(error)),
            },
        };
        decoded.map_err(|source| CodecError::Decode {
            event_type: event_type.to_owned(),
            codec: self,
            source,
        })
    }
}

fn box_error(error: impl StdError + Send + Sync + 'static) -> Box<dyn StdError + Send + Sync> {
    Box::new(error)
}

/// A postcard payload that holds more bytes than the value.
#[derive(Debug)]
struct TrailingBytes {
    count: usize,
}

impl fmt::Display for TrailingBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} byte(s) left over after the value", self.count)
    }
}

impl StdError for TrailingBytes {}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name (`json`, `postcard`): how a codec serializes, in every format, so that it
/// reads back through [`Codec::try_from`].
impl From<Codec> for &'static str {
    fn from(codec: Codec) -> Self {
        codec.as_str()
    }
}

impl TryFrom<String> for Codec {
    type Error = UnknownCodec;

    fn try_from(name: String) -> Result<Self, UnknownCodec> {
        name.parse()
    }
}

impl FromStr for Codec {
    type Err = UnknownCodec;

    /// Parses `"json"` or `"postcard"` (lower case, as written in configuration).
    fn from_str(name: &str) -> Result<Self, UnknownCodec> {
        Self::ALL
            .into_iter()
            .find(|codec| codec.as_str() == name)
            .ok_or_else(|| UnknownCodec {
                name: name.chars().take(64).collect(),
            })
    }
}

/// A codec name that is not `json` or `postcard`. For `bincode` (the codec of the
/// original design) it says to use `postcard`, the compact binary codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec {name:?}; expected one of: json, postcard{hint}", hint = if name.eq_ignore_ascii_case("bincode") { " (bincode is not supported: use postcard, the compact binary codec)" } else { "" })]
pub struct UnknownCodec {
    name: String,
}

impl UnknownCodec {
    /// The refused name (at most its first 64 characters).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// An event that could not be encoded or decoded.
///
/// `Display` says what failed (`could not decode event "order_placed" from postcard`);
/// the serde error is the [`source`](StdError::source). `Debug` shows the same fields,
/// never the payload bytes.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The event could not be serialized.
    #[error("could not encode event {event_type:?} as {codec}")]
    Encode {
        /// The event type.
        event_type: String,
        /// The codec used.
        codec: Codec,
        /// The serializer's error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The payload is not a valid encoding of the event.
    #[error("could not decode event {event_type:?} from {codec}")]
    Decode {
        /// The event type (or the Rust type name when the event type is not known).
        event_type: String,
        /// The codec used.
        codec: Codec,
        /// The deserializer's error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl CodecError {
    /// The event type the error is about.
    #[must_use]
    pub fn event_type(&self) -> &str {
        match self {
            Self::Encode { event_type, .. } | Self::Decode { event_type, .. } => event_type,
        }
    }

    /// The codec that failed.
    #[must_use]
    pub fn codec(&self) -> Codec {
        match self {
            Self::Encode { codec, .. } | Self::Decode { codec, .. } => *codec,
        }
    }
}

impl fmt::Debug for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, event_type, codec, source) = match self {
            Self::Encode {
                event_type,
                codec,
                source,
            } => ("Encode", event_type, codec, source),
            Self::Decode {
                event_type,
                codec,
                source,
            } => ("Decode", event_type, codec, source),
        };
        f.debug_struct(name)
            .field("event_type", event_type)
            .field("codec", codec)
            .field("source", &format_args!("{source}"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for codec in Codec::ALL {
            assert_eq!(codec.as_str().parse::<Codec>(), Ok(codec));
            assert_eq!(codec.to_string(), codec.as_str());
            let json = serde_json::to_string(&codec).unwrap();
            assert_eq!(json, format!("\"{}\"", codec.as_str()));
            assert_eq!(serde_json::from_str::<Codec>(&json).unwrap(), codec);
        }
        let error = "JSON".parse::<Codec>().unwrap_err();
        assert_eq!(error.name(), "JSON");
        assert_eq!(
            error.to_string(),
            "unknown codec \"JSON\"; expected one of: json, postcard"
        );
        // Deserializing refuses an unknown name with the same message as parsing.
        let error = serde_json::from_str::<Codec>("\"xml\"").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown codec \"xml\"; expected one of: json, postcard"
        );
        let error = serde_json::from_str::<Codec>("\"bincode\"").unwrap_err();
        assert!(error.to_string().contains("use postcard"), "{error}");
        // Not only self-describing formats: the name round-trips through Postcard too.
        for codec in Codec::ALL {
            let bytes = postcard::to_allocvec(&codec).unwrap();
            assert_eq!(postcard::from_bytes::<Codec>(&bytes).unwrap(), codec);
        }
    }

    #[test]
    fn values_round_trip_and_errors_name_the_event_type() {
        for codec in Codec::ALL {
            let bytes = codec.encode_value("pair", &(7_u64, "seven")).unwrap();
            let pair: (u64, String) = codec.decode_value("pair", &bytes).unwrap();
            assert_eq!(pair, (7, "seven".to_owned()));

            let error = codec
                .decode_value::<(u64, String)>("pair", &bytes[..1])
                .unwrap_err();
            assert!(matches!(error, CodecError::Decode { .. }), "{error:?}");
            assert_eq!(error.event_type(), "pair");
            assert_eq!(error.codec(), codec);
            assert_eq!(
                error.to_string(),
                format!("could not decode event \"pair\" from {codec}")
            );
            assert!(StdError::source(&error).is_some());
        }
    }

    #[test]
    fn values_encoded_into_one_buffer_are_their_own_encodings_one_after_the_other() {
        for codec in Codec::ALL {
            let mut out = b"head".to_vec();
            codec
                .encode_value_into("a", &(7_u64, "seven"), &mut out)
                .unwrap();
            let first = out.len();
            codec
                .encode_value_into("b", &[1_u8, 2, 3], &mut out)
                .unwrap();
            assert_eq!(&out[..4], b"head");
            assert_eq!(
                out[4..first],
                codec.encode_value("a", &(7_u64, "seven")).unwrap()
            );
            assert_eq!(
                out[first..],
                codec.encode_value("b", &[1_u8, 2, 3]).unwrap()
            );
        }
        let mut map = std::collections::BTreeMap::new();
        map.insert((1, 2), 3);
        let mut out = b"head".to_vec();
        let error = Codec::Json
            .encode_value_into("map", &map, &mut out)
            .unwrap_err();
        assert_eq!(error.event_type(), "map");
        assert_eq!(out, b"head", "a failed encoding leaves nothing behind");
    }

    #[test]
    fn postcard_refuses_trailing_bytes() {
        let mut bytes = Codec::Postcard.encode_value("n", &1_u32).unwrap();
        bytes.push(0);
        let error = Codec::Postcard
            .decode_value::<u32>("n", &bytes)
            .unwrap_err();
        let source = StdError::source(&error).unwrap().to_string();
        assert_eq!(source, "1 byte(s) left over after the value");
    }

    #[test]
    fn debug_never_shows_payload_bytes() {
        let payload = b"\x01secret-payload";
        let error = Codec::Json.decode_value::<u64>("n", payload).unwrap_err();
        let debug = format!("{error:?}");
        assert!(
            debug.starts_with("Decode { event_type: \"n\", codec: Json"),
            "{debug}"
        );
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn encode_errors_are_typed() {
        // JSON maps need string keys.
        let map = std::collections::BTreeMap::from([((1, 2), 3)]);
        let error = Codec::Json.encode_value("map", &map).unwrap_err();
        assert!(
            matches!(
                error,
                CodecError::Encode {
                    codec: Codec::Json,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "could not encode event \"map\" as json");
    }
}
