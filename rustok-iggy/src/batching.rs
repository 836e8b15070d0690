//! The batching publisher: single publishes coalesced into batches.
//!
//! Every call still gets its own receipt (its partition and offset) or its own error.
//! Messages are queued per partition ("lane"); each lane has one task that sends at
//! most one batch at a time, so the messages of a partition reach the broker in the
//! order they were submitted, while different partitions are sent in parallel.

mod publisher;
mod typed;

pub use publisher::{Backpressure, BatchError, BatchingOptions, BatchingPublisher, PendingReceipt};
pub use typed::{BatchingEventTransport, BatchingTransport, PendingEvent};
