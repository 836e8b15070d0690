//! Arbitrary bytes as segment files (or valid records damaged as the bytes say),
//! then `PartitionLog::open`, read everything, verify, reopen and append.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rustok_iggy_connector::__fuzz::segment_recovery(data);
});
