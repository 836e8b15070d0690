//! The embedded broker: storage engine, broker state, and the connector over them.

mod backup;
pub(crate) mod broker;
mod connector;
mod http;
pub(crate) mod storage;
mod wire;

pub use backup::{BackupMode, BackupSummary, backup_data_dir, restore_data_dir, verify_data_dir};
pub use connector::{EmbeddedConnector, VerifySummary};
pub use storage::StorageError;
