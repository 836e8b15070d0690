//! Operations on data directories and brokers: backup, restore and offline
//! verification of an embedded data directory, and migration of one to a remote Iggy
//! server. The `rustok-iggy-server` binary runs them as subcommands.
//!
//! They live in the connector, not in the server crate, because they work on the
//! embedded broker's internals: the partition logs and their live copies, the
//! metadata and consumer-offset files, the broker's lock on its data directory. The
//! server crate only parses the command line and prints what they report.
//!
//! Backup, restore and verify need the `embedded` feature; migrate needs `embedded`
//! and `remote`.

mod backup;
#[cfg(feature = "remote")]
mod migrate;
#[cfg(feature = "remote")]
mod progress;
#[cfg(feature = "remote")]
mod source;

pub use backup::{BackupMode, BackupSummary, backup_data_dir, restore_data_dir, verify_data_dir};
#[cfg(feature = "remote")]
pub use migrate::{MigrateOptions, MigrateProgress, MigrateReport, default_progress_file, migrate};
