//! Support code of the examples crate (nothing shared yet).
