//! The traced schemas of an event type ([`EventSchema`]), cached per type.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use serde::de::DeserializeOwned;

use super::fingerprint::Fingerprint;
use super::shape::{self, SchemaError};
use crate::event_impl::IggyEvent;

/// The traced schema of one event type at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventSchema {
    /// The event type.
    pub event_type: String,
    /// Its schema version.
    pub version: u32,
    /// The canonical shape: the event's own line first (`struct { ... }`, or for a
    /// variant of an enum, `variant <index> <Name> ...`; the event type's own Rust name
    /// is left out, so a renamed copy kept for an old version keeps its fingerprint),
    /// then every container it reaches, one line each, sorted by (serde) name.
    pub shape: String,
    /// The hash of [`shape`](Self::shape).
    pub fingerprint: Fingerprint,
    /// Fingerprints of earlier shapes of the same version that this one reads
    /// correctly, as declared with `#[iggy(compatible_with = [...])]`.
    pub compatible_with: Vec<Fingerprint>,
}

impl EventSchema {
    /// Whether a message written with `fingerprint` is read correctly by this schema:
    /// its own fingerprint, or one declared compatible.
    #[must_use]
    pub fn reads(&self, fingerprint: Fingerprint) -> bool {
        self.fingerprint == fingerprint || self.compatible_with.contains(&fingerprint)
    }

    /// The schema of an older version's Rust type (kept to decode old messages, for
    /// example in an upcaster), named by its event type and version. The type is traced
    /// as a whole: for a struct, the same shape its [`IggyEvent`] derive had.
    pub fn of_type<T: DeserializeOwned>(
        event_type: &str,
        version: u32,
    ) -> Result<Self, SchemaError> {
        let traced = shape::trace::<T>(std::any::type_name::<T>())?;
        let shape = traced.whole();
        Ok(Self {
            event_type: event_type.to_owned(),
            version,
            fingerprint: Fingerprint::of_shape(&shape),
            shape,
            compatible_with: Vec::new(),
        })
    }
}

type Cached = Result<Vec<EventSchema>, SchemaError>;

/// The schemas of `E`'s event types, in the order of [`IggyEvent::EVENT_TYPES`]:
/// traced on the first call for each type, then cached for the life of the process.
///
/// For an enum whose serde form is an enum of the same variants (the default), each
/// variant's schema is its index, name and fields plus what they reach, so adding a
/// variant at the end leaves the other variants' fingerprints unchanged. Otherwise
/// every event type of `E` has the shape of the whole type.
pub fn schemas<E: IggyEvent>() -> Result<&'static [EventSchema], SchemaError> {
    static CACHE: OnceLock<RwLock<HashMap<TypeId, &'static Cached>>> = OnceLock::new();
    let cache = CACHE.get_or_init(RwLock::default);
    let id = TypeId::of::<E>();
    let cached = cache
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&id)
        .copied();
    let cached = match cached {
        Some(cached) => cached,
        None => {
            // Traced outside the lock (tracing runs user `Deserialize` code); a race
            // traces twice and keeps the first.
            let traced = trace_event::<E>();
            *cache
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(id)
                .or_insert_with(|| Box::leak(Box::new(traced)))
        }
    };
    cached.as_deref().map_err(Clone::clone)
}

/// The schema of `event_type` of `E`, if `E` could be traced.
pub(crate) fn schema_for<E: IggyEvent>(event_type: &str) -> Option<&'static EventSchema> {
    schemas::<E>()
        .ok()?
        .iter()
        .find(|schema| schema.event_type == event_type)
}

fn trace_event<E: IggyEvent>() -> Cached {
    let traced = shape::trace::<E>(std::any::type_name::<E>())?;
    let per_variant = traced.variants_count() == Some(E::EVENT_TYPES.len());
    E::EVENT_TYPES
        .iter()
        .enumerate()
        .map(|(index, info)| {
            let shape = if per_variant {
                traced.variant(index)
            } else {
                traced.whole()
            };
            let compatible_with = info
                .compatible_with
                .iter()
                .map(|text| text.parse::<Fingerprint>())
                .collect::<Result<_, _>>()
                .map_err(|source| SchemaError::InvalidCompatible {
                    event_type: info.event_type.to_owned(),
                    source,
                })?;
            Ok(EventSchema {
                event_type: info.event_type.to_owned(),
                version: info.version,
                fingerprint: Fingerprint::of_shape(&shape),
                shape,
                compatible_with,
            })
        })
        .collect()
}
