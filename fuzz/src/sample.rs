//! Valid records and segments, for seed corpora and tests.

use rustok_iggy_storage::record::{self, RecordBuilder};

/// The partition id of the logs the fuzz targets build.
pub const PARTITION: u32 = 1;

/// The Iggy header kind code of a string.
const STRING_KIND: u8 = 2;

/// A valid segment file of `records` records (1 to 4 messages each, partition
/// [`PARTITION`]) whose first offset is `first_offset`, with the offset after its
/// last message.
#[must_use]
pub fn sample_segment(first_offset: u64, records: usize) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut offset = first_offset;
    for k in 0..records {
        let count = 1 + k % 4;
        let mut builder = RecordBuilder::new();
        for i in 0..count {
            // Every other message carries a user header (opaque to the log): `key`
            // = "v{i}", both strings, in the Iggy encoding `[kind u8][len u32 LE][bytes]`
            // for the key, then for the value.
            let value = format!("v{i}");
            let mut headers = Vec::new();
            if i % 2 == 0 {
                for text in [&b"key"[..], value.as_bytes()] {
                    headers.push(STRING_KIND);
                    headers.extend_from_slice(&(text.len() as u32).to_le_bytes());
                    headers.extend_from_slice(text);
                }
            }
            builder.push(i as u128 + 1, &vec![b'a' + (i as u8); 3 + k], &headers);
        }
        let mut bytes = builder.finish(1);
        record::stamp(&mut bytes, PARTITION, offset, 1000 * (k as u64 + 1));
        offset += count as u64;
        out.extend_from_slice(&bytes);
    }
    (out, offset)
}
