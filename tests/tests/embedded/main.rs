//! The embedded connector and its broker, in process: storage across restarts,
//! crashes, damage and write faults, durability and the offsets journal, a slow disk,
//! retention, consumer groups, concurrency and
//! typed errors.
//!
//! One test binary for the area (fewer links); one module per concern. Shared
//! helpers are in `tests/support` (`tests::faults` for the storage faults).

mod concurrency;
mod crash;
mod damage;
mod damage_ranges;
mod dedup;
mod durability;
mod errors;
mod faults;
mod groups;
mod offsets;
mod recovery;
mod restart;
mod retention;
mod slow_disk;
