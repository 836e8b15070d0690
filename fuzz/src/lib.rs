//! The checks behind the fuzz targets in `fuzz_targets/`, on the public API of
//! `rustok-iggy-storage` (and, for the connector's own decoders, of
//! `rustok-iggy-connector`). `rustok-iggy-storage/tests/fuzz_inputs.rs` includes
//! these modules to replay the seeds and the regression inputs under `cargo test`.

pub mod batch_decode;
pub mod sample;
pub mod segment_recovery;
