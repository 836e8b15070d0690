//! Arbitrary bytes as a batch record: validate, decode the messages, slice windows,
//! and decode user headers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rustok_iggy_connector::__fuzz::batch_decode(data);
});
