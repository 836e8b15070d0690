//! The embedded broker's Iggy TCP listener: the official SDK against it, and
//! malformed input on single connections.
//!
//! One test binary for the area (fewer links); one module per concern. Shared
//! helpers are in `tests/support` (`tests::wire`). The bad-input table, which
//! measures this process's memory and so runs alone, is the `wire_bad_input_table`
//! binary.

mod bad_input;
mod sdk;
