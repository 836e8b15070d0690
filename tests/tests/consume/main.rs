//! The consume path under the commit rule: per-batch acknowledgements, held
//! partitions and explicit decode decisions, records that do not decode, a consumer
//! that exits mid-batch, a remote broker restarting under a consumer, and a chaos
//! run of all of them at once on both connectors.
//!
//! One test binary for the area (fewer links); one module per concern. Shared
//! helpers are in `tests/support`.

mod chaos;
mod commit_rule;
mod deleted_topics;
mod exit;
mod malformed_records;
mod remote_restart;
mod settle;
mod tier_chaos;
