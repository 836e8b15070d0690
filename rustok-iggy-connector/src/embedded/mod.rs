//! The embedded broker: storage engine, broker state, and the connector over them.

mod broker;
mod connector;
mod http;
pub(crate) mod storage;
mod wire;

pub use connector::{EmbeddedConnector, VerifySummary};
pub use storage::StorageError;
