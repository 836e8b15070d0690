//! The embedded broker: broker state over the storage engine (the
//! `rustok-iggy-storage` crate), the TCP listener speaking the Iggy protocol, the HTTP
//! endpoint, and the connector over them.

pub(crate) mod broker;
mod connector;
mod http;
mod wire;

/// The storage engine: the partition log, in a crate of its own.
pub(crate) use rustok_iggy_storage as storage;

pub use connector::{EmbeddedConnector, VerifySummary};
pub use storage::StorageError;
