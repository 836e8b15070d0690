//! The embedded broker's Iggy TCP listener: the official SDK against it, malformed
//! input on single connections, the permission model and revocation, the partition,
//! rename and option commands, and user headers at `SendMessages`.
//!
//! One test binary for the area (fewer links); one module per concern. Shared
//! helpers are in `tests/support` (`tests::wire`). Two parts run as binaries of
//! their own: the bad-input table (`wire_bad_input_table`), which measures this
//! process's memory, and the listener limits (`wire_limits`), which raise this
//! process's open-file limit and hold about a thousand of its descriptors.

mod bad_input;
mod options;
mod partition_count;
mod partitions;
mod permissions;
mod revocation;
mod routing;
mod sdk;
mod snapshot;
mod updates;
mod user_headers;
