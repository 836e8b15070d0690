//! Schema evolution: upcasters turn events written at an older schema version into the
//! current type.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec::{Codec, CodecError};
use crate::schema::{EventSchema, Fingerprint};

type Upcaster<E> = Arc<dyn Fn(Codec, &str, &[u8]) -> Result<E, CodecError> + Send + Sync>;

/// Upcasters of an event type `E`, keyed by (event type, older schema version).
///
/// Every message carries its event type and schema version in headers. A consumer of
/// `E` at version N reads a message written at an older version `v` through the
/// upcaster registered for `(event_type, v)`: the payload is decoded as the old type
/// (with the message's codec, so it also works with Postcard, which is not
/// self-describing) and converted. Register one per older version (each converting
/// straight to the current type; compose conversions inside if you like). A message
/// older than the current version without an upcaster is a decode error
/// ([`crate::DecodeFailure::MissingUpcaster`]), never decoded as `E` directly; when
/// the old shape reads as the new one (a JSON change that only added defaulted fields),
/// register the identity: `.register("order_placed", 1, |e: OrderPlaced| e)`.
///
/// ```
/// use rustok_iggy::prelude::*;
/// use rustok_iggy::Upcasters;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct OrderPlacedV1 { tenant_id: String, total: u64 }
///
/// #[derive(Serialize, Deserialize, IggyEvent)]
/// #[iggy(topic = "orders", key = tenant_id, codec = "postcard", version = 2)]
/// struct OrderPlaced { tenant_id: String, total_cents: u64, currency: String }
///
/// let upcasters = Upcasters::<OrderPlaced>::new().register(
///     "order_placed",
///     1,
///     |v1: OrderPlacedV1| OrderPlaced { tenant_id: v1.tenant_id, total_cents: v1.total * 100, currency: "EUR".into() },
/// );
/// assert!(upcasters.has("order_placed", 1));
/// ```
pub struct Upcasters<E> {
    by_version: HashMap<(String, u32), (Upcaster<E>, Option<Fingerprint>)>,
}

impl<E> Default for Upcasters<E> {
    fn default() -> Self {
        Self {
            by_version: HashMap::new(),
        }
    }
}

impl<E> fmt::Debug for Upcasters<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_version.keys()).finish()
    }
}

impl<E: 'static> Upcasters<E> {
    /// No upcasters.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the conversion of `event_type` payloads written at `version`, read as
    /// `Old`.
    #[must_use]
    pub fn register<Old: DeserializeOwned + 'static>(
        mut self,
        event_type: &str,
        version: u32,
        convert: impl Fn(Old) -> E + Send + Sync + 'static,
    ) -> Self {
        let upcaster: Upcaster<E> = Arc::new(move |codec, event_type, bytes| {
            codec.decode_value::<Old>(event_type, bytes).map(&convert)
        });
        // Traced once here: a Postcard message of that version whose fingerprint
        // differs from `Old`'s is refused instead of decoded.
        let fingerprint = EventSchema::of_type::<Old>(event_type, version)
            .ok()
            .map(|schema| schema.fingerprint);
        self.by_version
            .insert((event_type.to_owned(), version), (upcaster, fingerprint));
        self
    }

    /// Whether an upcaster for `(event_type, version)` is registered.
    #[must_use]
    pub fn has(&self, event_type: &str, version: u32) -> bool {
        self.by_version
            .contains_key(&(event_type.to_owned(), version))
    }

    /// Decodes with the upcaster of `(event_type, version)`, if there is one.
    pub(crate) fn upcast(
        &self,
        event_type: &str,
        version: u32,
        codec: Codec,
        bytes: &[u8],
    ) -> Option<Result<E, CodecError>> {
        self.by_version
            .get(&(event_type.to_owned(), version))
            .map(|(upcaster, _)| upcaster(codec, event_type, bytes))
    }

    /// The schema fingerprint of the old type registered for `(event_type, version)`,
    /// when it could be traced.
    pub(crate) fn fingerprint(&self, event_type: &str, version: u32) -> Option<Fingerprint> {
        self.by_version
            .get(&(event_type.to_owned(), version))
            .and_then(|(_, fingerprint)| *fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct V1 {
        tenant: String,
        seq: u64,
    }

    #[derive(Debug, PartialEq)]
    struct Current {
        tenant: String,
        seq: u64,
        currency: &'static str,
    }

    fn upcasters() -> Upcasters<Current> {
        Upcasters::new().register("order_placed", 1, |v1: V1| Current {
            tenant: v1.tenant,
            seq: v1.seq,
            currency: "EUR",
        })
    }

    /// Bytes an old producer wrote: they must stay readable. A change here is a
    /// deliberate, versioned act.
    const V1_POSTCARD: [u8; 5] = [0x03, b'o', b'l', b'd', 0x07];
    const V1_JSON: &str = r#"{"tenant":"old","seq":7}"#;

    #[test]
    fn old_encoded_events_stay_readable() {
        let expected = Current {
            tenant: "old".into(),
            seq: 7,
            currency: "EUR",
        };
        let upcasters = upcasters();
        let from_postcard = upcasters.upcast("order_placed", 1, Codec::Postcard, &V1_POSTCARD);
        assert_eq!(from_postcard.map(Result::ok), Some(Some(expected)));
        let from_json = upcasters.upcast("order_placed", 1, Codec::Json, V1_JSON.as_bytes());
        assert_eq!(from_json.map(|r| r.map(|c| c.seq).ok()), Some(Some(7)));
        assert!(
            upcasters
                .upcast("order_placed", 2, Codec::Json, b"{}")
                .is_none()
        );
        assert!(
            upcasters
                .upcast("order_shipped", 1, Codec::Json, b"{}")
                .is_none()
        );
    }

    #[test]
    fn a_payload_that_is_not_the_old_type_is_a_codec_error() {
        let result = upcasters().upcast("order_placed", 1, Codec::Postcard, &[0xFF]);
        assert!(matches!(result, Some(Err(CodecError::Decode { .. }))));
    }
}
