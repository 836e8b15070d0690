//! Key → partition, the same function the Iggy server and SDK use.

use twox_hash::XxHash32;

/// The partition (0-based) that messages with partition key `key` belong to, among
/// `partitions_count` partitions.
///
/// This is exactly what the official `iggy` 0.11 SDK computes for
/// `Partitioning::messages_key`: xxHash32 of the key bytes with seed 0, modulo the
/// partition count. It is stable across releases and platforms, so events published by
/// rustok-iggy and by any other Iggy client with the same key land in the same
/// partition.
///
/// Returns 0 when `partitions_count` is 0 (there is nothing to choose from; the broker
/// refuses topics without partitions).
#[must_use]
pub fn partition_for(key: &[u8], partitions_count: u32) -> u32 {
    if partitions_count == 0 {
        return 0;
    }
    XxHash32::oneshot(0, key) % partitions_count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_and_in_range() {
        for count in 1..20 {
            for key in [&b"tenant-1"[..], b"", b"\xff\x00"] {
                let p = partition_for(key, count);
                assert!(p < count);
                assert_eq!(p, partition_for(key, count));
            }
        }
    }

    #[test]
    fn known_values() {
        // xxHash32("", seed 0) = 0x02CC5D05, a published test vector.
        assert_eq!(partition_for(b"", 1_000_000_007), 0x02CC_5D05);
        assert_eq!(partition_for(b"", 1000), 0x02CC_5D05 % 1000);
        assert_eq!(partition_for(b"anything", 1), 0);
        assert_eq!(partition_for(b"anything", 0), 0);
    }
}
