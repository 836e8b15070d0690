//! Segment files from the fuzzer (raw bytes, or valid records damaged as the input
//! says), then `PartitionLog::open`, read everything, verify, reopen and append.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustok_iggy_fuzz::segment_recovery::{SegmentInput, run};

fuzz_target!(|input: SegmentInput| run(input));
