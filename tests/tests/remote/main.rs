//! The remote connector (the official `iggy` SDK): the conformance suite run on both
//! connectors, a server restart under a running producer and consumer, load over
//! TCP, and partition agreement with the SDK.
//!
//! One test binary for the area (fewer links); one module per concern. Shared
//! helpers are in `tests/support` (`tests::conformance`, `tests::wire`).

mod conformance;
mod dedup;
mod faults;
mod load;
mod membership;
mod partition_agreement;
mod shutdown;
mod shutdown_race;
