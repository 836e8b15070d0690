//! Schema fingerprints: the serde shape of an event type, hashed, carried in a header
//! and checked by consumers and by a lock file.
//!
//! Postcard is not self-describing: bytes written by `struct A { x: u32, y: u32 }`
//! decode as `struct A { y: u32, x: u32 }` or as `struct A { x: i32, y: u32 }` with
//! wrong values and no error. The schema fingerprint closes that hole:
//!
//! - [`schemas`] traces an [`IggyEvent`] type's serde shape once (a tracing
//!   deserializer drives its `Deserialize` impl): field names, their order and
//!   their types, recursively, enum variants with their indices. The shape is rendered
//!   as canonical text ([`EventSchema::shape`]) and hashed (XXH3-64) into a
//!   [`Fingerprint`]. The result is cached per type for the life of the process.
//! - Every message published through a [`Transport`](crate::Transport) carries its
//!   fingerprint in the [`header::SCHEMA_FINGERPRINT`](crate::header::SCHEMA_FINGERPRINT)
//!   header.
//! - A consumer of a Postcard event refuses a message of the same event type and
//!   version whose fingerprint differs from its own (and from the ones the type
//!   declares compatible) with [`DecodeFailure::SchemaMismatch`](crate::DecodeFailure),
//!   instead of decoding garbage. A message without the header (an older producer) is
//!   decoded as before.
//! - [`check_lock`] compares the fingerprints with a committed lock file
//!   (`iggy-schemas.lock`) in a test: a type changed without a version bump, or an old
//!   version changed, fails the test.
//!
//! ```
//! use rustok_iggy::prelude::*;
//! use rustok_iggy::schema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, IggyEvent)]
//! #[iggy(topic = "orders", codec = "postcard")]
//! struct OrderPlaced { order_id: u64, total_cents: u32 }
//!
//! let [placed] = schema::schemas::<OrderPlaced>()? else { unreachable!() };
//! assert_eq!(placed.event_type, "order_placed");
//! assert_eq!(placed.shape, "struct { order_id: u64, total_cents: u32 }");
//! assert_eq!(placed.fingerprint.to_string().len(), 16);
//! # Ok::<(), rustok_iggy::schema::SchemaError>(())
//! ```

mod lock;
mod shape;
mod trace;

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{OnceLock, RwLock};

use serde::de::DeserializeOwned;

use crate::event::IggyEvent;

pub use lock::{
    Changed, LockError, LockMismatch, LockMode, LockReport, LockedSchema, SchemaLock, TypeSchemas,
    check_lock, check_lock_with,
};

/// The environment variable that makes [`check_lock`] record new schemas in the lock
/// file instead of failing (`UPDATE_SCHEMAS=1`).
pub const UPDATE_ENV: &str = "UPDATE_SCHEMAS";

/// The hash of an event type's canonical shape: XXH3-64 of the text of
/// [`EventSchema::shape`], written as 16 lower-case hexadecimal digits. Stable across
/// releases, platforms and processes (it is part of the wire contract).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(u64);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Fingerprint {
    /// The fingerprint of a canonical shape text.
    #[must_use]
    pub fn of_shape(shape: &str) -> Self {
        Self(twox_hash::XxHash3_64::oneshot(shape.as_bytes()))
    }

    /// The 64-bit value.
    #[must_use]
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Fingerprint {
    type Err = InvalidFingerprint;

    /// Parses 16 lower-case hexadecimal digits.
    fn from_str(text: &str) -> Result<Self, InvalidFingerprint> {
        let valid = text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(InvalidFingerprint {
                text: text.chars().take(64).collect(),
            });
        }
        u64::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| InvalidFingerprint { text: text.into() })
    }
}

/// A text that is not a fingerprint (16 lower-case hexadecimal digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a schema fingerprint (16 lower-case hexadecimal digits)")]
pub struct InvalidFingerprint {
    text: String,
}

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

/// The shape of a type could not be traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The type's `Deserialize` impl could not be traced (a custom impl
    /// that validates its input, or a recursive type). Its messages are published
    /// without a fingerprint and are not checked.
    #[error("cannot trace the serde shape of {type_name}: {reason}")]
    Untraceable {
        /// The Rust type.
        type_name: String,
        /// What the tracer said.
        reason: String,
    },
    /// `#[iggy(compatible_with = [...])]` holds a text that is not a fingerprint.
    #[error("event type {event_type:?} declares an invalid compatible fingerprint")]
    InvalidCompatible {
        /// The event type.
        event_type: String,
        /// Why.
        #[source]
        source: InvalidFingerprint,
    },
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

#[cfg(test)]
mod tests;
