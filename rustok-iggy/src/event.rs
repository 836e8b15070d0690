//! The [`IggyEvent`] trait: what the transport needs to know about an event type.

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec_impl::{Codec, CodecError};
use crate::connector::partition_for;

/// A type whose values are published to and consumed from an Iggy topic.
///
/// Derive it with `#[derive(IggyEvent)]`:
///
/// ```
/// use rustok_iggy::{Codec, IggyEvent, connector::partition_for};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
/// #[iggy(topic = "orders", key = tenant_id, codec = "postcard", version = 2)]
/// struct OrderPlaced {
///     tenant_id: String,
///     order_id: u64,
///     total_cents: u64,
/// }
///
/// let event = OrderPlaced { tenant_id: "acme".into(), order_id: 1, total_cents: 4200 };
/// assert_eq!(OrderPlaced::TOPIC, "orders");
/// assert_eq!(OrderPlaced::STREAM, None); // the stream configured on the transport
/// assert_eq!(OrderPlaced::CODEC, Codec::Postcard);
/// assert_eq!(event.event_type(), "order_placed");
/// assert_eq!(event.schema_version(), 2);
/// assert_eq!(event.partition(8), Some(partition_for(b"acme", 8)));
///
/// let bytes = event.encode()?;
/// assert_eq!(OrderPlaced::decode(&bytes)?, event);
/// # Ok::<(), rustok_iggy::codec::CodecError>(())
/// ```
///
/// # Attributes of the derive
///
/// On the struct or enum, `#[iggy(...)]` takes:
///
/// - `topic = "..."` (required): the topic the events are published to.
/// - `stream = "..."`: the stream of that topic; without it, the stream configured on
///   the transport.
/// - `key = field`: the field holding the partition key (its type implements
///   [`PartitionKey`](crate::PartitionKey)); `key = 0` for a tuple struct. Without a key,
///   events are spread over the partitions and ordered only within each one.
/// - `codec = "json" | "postcard"`: the payload [`Codec`]; JSON by default.
/// - `version = N`: the schema version, a positive integer; 1 by default.
/// - `event_type = "..."` (structs only): the event type; by default the type name in
///   snake_case (`OrderPlaced` → `order_placed`, `HTTPRequestSent` →
///   `http_request_sent`).
/// - `compatible_with = ["<fingerprint>", ...]` (structs only; on an enum, per
///   variant): the schema fingerprints of earlier shapes of this version that the type
///   still reads (an enum variant added at the end); see [`crate::schema`].
///
/// On an enum, each variant is an event type of its own. `#[iggy(...)]` on a variant
/// takes `event_type` (by default `<enum>.<variant>` in snake_case: `OrderEvent::Shipped`
/// → `order_event.shipped`), `key` (a field of the variant), `version` (by default
/// the enum's) and `compatible_with`. A variant without a `key` of its own uses the enum's `key`, which must
/// then be a field of that variant too; with neither, the variant has no key.
///
/// ```
/// use rustok_iggy::{IggyEvent, event::EventTypeInfo};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, IggyEvent)]
/// #[iggy(topic = "orders", stream = "shop", key = tenant_id)]
/// enum OrderEvent {
///     Placed { tenant_id: String, total_cents: u64 },
///     #[iggy(event_type = "order.shipped", version = 3)]
///     Shipped { tenant_id: String, carrier: String },
///     #[iggy(key = order_id)]
///     Audited { order_id: u64 },
/// }
///
/// assert_eq!(OrderEvent::STREAM, Some("shop"));
/// assert_eq!(
///     OrderEvent::EVENT_TYPES,
///     [
///         EventTypeInfo::new("order_event.placed", 1),
///         EventTypeInfo::new("order.shipped", 3),
///         EventTypeInfo::new("order_event.audited", 1),
///     ]
/// );
/// let audited = OrderEvent::Audited { order_id: 9 };
/// assert_eq!(audited.event_type(), "order_event.audited");
/// assert_eq!(audited.partition_key().as_deref(), Some(&9_u64.to_le_bytes()[..]));
/// ```
///
/// Topic, stream and event type are checked at compile time against the rule of
/// [`validate_name`](crate::connector::validate_name): 1 to 255 bytes of UTF-8, no control
/// characters, no leading or trailing white space. Event types of one enum must differ.
///
/// The generated code reaches this crate as `::rustok_iggy`: depend on it under that
/// name.
///
/// # Implementing it by hand
///
/// Possible, but the derive checks what a hand-written impl must get right itself:
/// `EVENT_TYPES` lists every `(event_type(), schema_version())` pair a value can return,
/// the names follow the rule above, and the key bytes follow [`PartitionKey`]'s rule.
///
/// [`PartitionKey`]: crate::PartitionKey
pub trait IggyEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The topic the events are published to.
    const TOPIC: &'static str;

    /// The stream of [`TOPIC`](Self::TOPIC); `None` for the stream configured on the
    /// transport.
    const STREAM: Option<&'static str>;

    /// The payload codec.
    const CODEC: Codec;

    /// Every event type this type produces with its schema version: one for a struct, one
    /// per variant for an enum, in declaration order.
    const EVENT_TYPES: &'static [EventTypeInfo];

    /// This value's event type (for an enum, its variant's).
    fn event_type(&self) -> &'static str;

    /// This value's schema version (for an enum, its variant's).
    fn schema_version(&self) -> u32;

    /// The partition key bytes, or `None` when the event has no key (it may go to any
    /// partition).
    fn partition_key(&self) -> Option<Cow<'_, [u8]>>;

    /// The partition (0-based) of this event among `partitions_count` partitions:
    /// [`partition_for`] of its key, or `None` without a key.
    fn partition(&self, partitions_count: u32) -> Option<u32> {
        self.partition_key()
            .map(|key| partition_for(&key, partitions_count))
    }

    /// Encodes this event with [`CODEC`](Self::CODEC). An error names its event type
    /// ([`event_type`](Self::event_type)). [`Transport::publish_batch`] encodes the
    /// same way, straight into one buffer for the whole batch, as subscriptions decode
    /// with `CODEC` directly.
    ///
    /// [`Transport::publish_batch`]: crate::Transport::publish_batch
    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        Self::CODEC.encode_value(self.event_type(), self)
    }

    /// Decodes an event encoded with [`CODEC`](Self::CODEC).
    ///
    /// An error names the event type when the type has only one; for an enum of
    /// several event types (the one in the payload is not known yet) it names the Rust
    /// type. When the event type is known, for example from a message header, use
    /// [`Codec::decode_value`] to name it.
    fn decode(bytes: &[u8]) -> Result<Self, CodecError>
    where
        Self: Sized,
    {
        match Self::EVENT_TYPES {
            [only] => Self::CODEC.decode_value(only.event_type, bytes),
            _ => Self::CODEC.decode_value(std::any::type_name::<Self>(), bytes),
        }
    }
}

/// One event type of an [`IggyEvent`] and its schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct EventTypeInfo {
    /// The event type, as [`IggyEvent::event_type`] returns it.
    pub event_type: &'static str,
    /// Its schema version, as [`IggyEvent::schema_version`] returns it.
    pub version: u32,
    /// Fingerprints of earlier shapes of this version that the current type reads
    /// correctly (`#[iggy(compatible_with = [...])]`; see [`crate::schema`]).
    pub compatible_with: &'static [&'static str],
}

impl EventTypeInfo {
    /// An event type and its schema version.
    #[must_use]
    pub const fn new(event_type: &'static str, version: u32) -> Self {
        Self {
            event_type,
            version,
            compatible_with: &[],
        }
    }

    /// The same, declaring that this version also reads payloads written with the
    /// schema fingerprints `fingerprints` (earlier shapes of the same version, for
    /// example before an enum variant was added at the end).
    #[must_use]
    pub const fn compatible_with(self, fingerprints: &'static [&'static str]) -> Self {
        Self {
            compatible_with: fingerprints,
            ..self
        }
    }
}
