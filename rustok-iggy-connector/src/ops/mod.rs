//! Operations on brokers and data directories: moving an embedded data directory to
//! a remote Iggy server.

#[cfg(feature = "remote")]
mod migrate;
#[cfg(feature = "remote")]
mod progress;
#[cfg(feature = "remote")]
mod source;

#[cfg(feature = "remote")]
pub use migrate::{MigrateOptions, MigrateProgress, MigrateReport, default_progress_file, migrate};
