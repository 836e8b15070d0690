//! Typed events: what `#[derive(IggyEvent)]` generates, that it compiles with the
//! prelude shadowed, and the wire bytes of both codecs against golden files.
//!
//! One test binary (fewer links), one module per concern. The compile-fail UI tests
//! of the derive are the `derive_ui` binary (trybuild builds each case apart).

mod codec_golden;
mod derive_event;
mod derive_hygiene;
mod schema_lock;
