//! Arbitrary bytes as a batch record: validate, read the messages, slice windows
//! (the storage crate's record format); and the connector's user-header decoder on
//! the whole input and on every message's user headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustok_iggy_connector::Headers;
use rustok_iggy_storage::record;

fuzz_target!(|data: &[u8]| {
    rustok_iggy_fuzz::batch_decode::run(data);
    let _ = Headers::decode(data);
    if let Ok(messages) = record::messages(data) {
        for message in messages.flatten() {
            let _ = Headers::decode(message.user_headers);
        }
    }
});
