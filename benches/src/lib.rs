//! Support code of the benches crate (nothing shared yet).
