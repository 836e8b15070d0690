//! Operations on the embedded broker: backup, restore and verification of a data
//! directory, migration into another broker over TCP, and the HTTP endpoint
//! (`/metrics`, `/health`, its connection cap and timeouts).
//!
//! One test binary for the area (fewer links); one module per concern. Shared
//! helpers are in `tests/support`.

mod backup;
mod http_limits;
mod migrate;
mod observability;
