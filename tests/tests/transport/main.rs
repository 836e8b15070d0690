//! The typed layer of `rustok-iggy`: the transport and its subscriptions on both
//! connectors, envelopes, batching, the handler runner and its dead-letter topic,
//! a consumer killed mid-batch, and configuration loading.
//!
//! One test binary for the area (fewer links); one module per concern. Shared
//! helpers are in `tests/support`.

mod batching;
mod both_modes;
mod config;
mod config_effect;
mod consumer_crash;
mod dead_letter;
mod dead_letter_crash;
mod dead_letter_lifecycle;
mod dedup;
mod envelope_parity;
mod envelope_spans;
mod envelopes;
mod error_chains;
mod event_headers;
mod health;
mod replay;
mod schema;
mod test_kit;
mod typed;
