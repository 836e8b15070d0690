//! Schema fingerprints: the serde shape of an event type, hashed, carried in a header
//! and checked by consumers and by a lock file.
//!
//! Postcard is not self-describing: bytes written by `struct A { x: u32, y: u32 }`
//! decode as `struct A { y: u32, x: u32 }` or as `struct A { x: i32, y: u32 }` with
//! wrong values and no error. The schema fingerprint closes that hole:
//!
//! - [`schemas`] traces an [`IggyEvent`](crate::IggyEvent) type's serde shape once (a tracing
//!   deserializer drives its `Deserialize` impl): field names, their order and
//!   their types, recursively, enum variants with their indices. The shape is rendered
//!   as canonical text ([`EventSchema::shape`]) and hashed (XXH3-64) into a
//!   [`Fingerprint`]. The result is cached per type for the life of the process.
//! - Every message published through a [`Transport`](crate::Transport) carries its
//!   fingerprint in the [`header::SCHEMA_FINGERPRINT`](crate::metadata::header::SCHEMA_FINGERPRINT)
//!   header.
//! - A consumer of a Postcard event refuses a message of the same event type and
//!   version whose fingerprint differs from its own (and from the ones the type
//!   declares compatible) with [`DecodeFailure::SchemaMismatch`](crate::consume::DecodeFailure),
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

mod event_schema;
mod fingerprint;
mod lock;
mod shape;
mod trace;

pub(crate) use event_schema::schema_for;
pub use event_schema::{EventSchema, schemas};
pub use fingerprint::{Fingerprint, InvalidFingerprint};
pub use lock::{
    Changed, LockError, LockMismatch, LockMode, LockReport, LockedSchema, SchemaLock, TypeSchemas,
    UPDATE_ENV, check_lock, check_lock_with,
};
pub use shape::SchemaError;

#[cfg(test)]
mod tests;
