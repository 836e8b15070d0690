//! The embedded broker: storage engine, broker state, and the connector over them.

mod storage;

pub use storage::StorageError;
