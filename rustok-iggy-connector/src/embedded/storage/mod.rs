//! The partition log: segments of Iggy batch records with offset and time indexes.

mod error;

pub use error::StorageError;
