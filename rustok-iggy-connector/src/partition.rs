//! Partitions: how many a topic may have, and which one a batch goes to (key →
//! partition, the same function the Iggy server and SDK use, and the round-robin of
//! balanced publishing).

use std::sync::atomic::{AtomicU32, Ordering};

use twox_hash::XxHash32;

/// The most partitions a topic may have (the Iggy server's limit).
pub const MAX_PARTITIONS: u32 = 1000;

/// The partition-count rule of a topic, wherever one is created or configured: 1 to
/// [`MAX_PARTITIONS`].
///
/// # Errors
/// [`PartitionCountError`] naming the count.
pub fn check_partition_count(partitions: u32) -> Result<(), PartitionCountError> {
    if (1..=MAX_PARTITIONS).contains(&partitions) {
        Ok(())
    } else {
        Err(PartitionCountError { partitions })
    }
}

/// A partition count outside 1 to [`MAX_PARTITIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a topic needs 1 to {MAX_PARTITIONS} partitions, not {partitions}")]
#[non_exhaustive]
pub struct PartitionCountError {
    /// The count refused.
    pub partitions: u32,
}

/// The name of the original design for [`partition_for`]: the same partition for the
/// same key.
///
/// ```
/// # #![allow(deprecated)]
/// use rustok_iggy_connector::{calculate_partition, partition_for};
///
/// assert_eq!(calculate_partition("tenant-123", 8), partition_for(b"tenant-123", 8));
/// ```
#[deprecated(note = "use `partition_for(key.as_bytes(), partitions)`; see docs/porting.md")]
#[must_use]
pub fn calculate_partition(key: &str, partitions: u32) -> u32 {
    partition_for(key.as_bytes(), partitions)
}

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

/// The cursor of balanced publishing over one topic: each call takes the next
/// partition, in turn. Every connector keeps one per topic.
#[derive(Debug, Default)]
pub struct RoundRobin(AtomicU32);

impl RoundRobin {
    /// A cursor at partition 0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The next partition among `partitions` (0 when there are none).
    pub fn next(&self, partitions: u32) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed) % partitions.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_takes_every_partition_in_turn() {
        let cursor = RoundRobin::new();
        let picks: Vec<u32> = (0..7).map(|_| cursor.next(3)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(cursor.next(0), 0);
    }

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
