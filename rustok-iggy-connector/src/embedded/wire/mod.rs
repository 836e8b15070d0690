//! The TCP front end: the embedded broker speaking the Iggy 0.11 binary protocol
//! (`docs/wire-protocol.md`), so that the official `iggy` SDK, `iggy-cli` and any other Iggy
//! client can use it from another process.
//!
//! Modules, each depending only on those listed before it:
//!
//! - [`frame`]: the 256-byte consensus headers, replies, evictions, size limits.
//! - [`error`]: broker errors as Iggy error codes (the table is
//!   [`crate::error_codes`]).
//! - [`login_gate`]: the bounded, fair queue of logins waiting for a password check.
//! - [`shared`]: the state every connection of a listener shares, and admission.
//! - [`reply`]: what a handler returns and the reply pieces several handlers build.
//! - [`session`]: per-connection login and group memberships.
//! - [`lookup`]: identifiers, streams, topics, groups and consumers resolved from a
//!   request.
//! - the handlers, by area: `system`, `streams`, `topics`, `messages`, `groups`,
//!   `offsets`, `partitions`, `users`. They name none of each other.
//! - [`access`]: the permission check of every command, before it runs.
//! - [`dispatch`]: the authentication gate and the routing of a request to its
//!   handler; the only module that names the handlers.
//! - [`server`]: the listener, one task per connection, graceful stop.
//!
//! All wire types come from the official `iggy_binary_protocol` crate.

mod access;
mod dispatch;
mod error;
mod frame;
mod groups;
mod login_gate;
mod lookup;
mod messages;
mod offsets;
mod partitions;
mod reply;
mod routing;
mod server;
mod session;
mod shared;
mod snapshot;
mod streams;
mod system;
mod topics;
mod users;

pub(crate) use self::server::WireServer;
