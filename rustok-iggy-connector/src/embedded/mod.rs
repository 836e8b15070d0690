//! The embedded broker: broker state over the storage engine (the
//! `rustok-iggy-storage` crate), the TCP listener speaking the Iggy protocol, the HTTP
//! endpoint, and the connector over them.

mod backup;
pub(crate) mod broker;
mod connector;
mod http;
mod wire;

/// The storage engine: the partition log, in a crate of its own.
pub(crate) use rustok_iggy_storage as storage;

pub use backup::{BackupMode, BackupSummary, backup_data_dir, restore_data_dir, verify_data_dir};
pub use connector::{EmbeddedConnector, VerifySummary};
pub use storage::StorageError;
