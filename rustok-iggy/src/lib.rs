//! Typed event streaming for Rust on Apache Iggy.
#![warn(missing_docs, unreachable_pub)]

pub use rustok_iggy_connector as connector;
