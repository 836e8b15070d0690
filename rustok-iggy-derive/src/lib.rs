//! `#[derive(IggyEvent)]` for rustok-iggy.
