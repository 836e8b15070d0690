//! `rustok_iggy::connector::partition_for` agrees with the official `iggy` 0.11 SDK, so events with
//! the same key land in the same partition whichever client publishes them.
//!
//! The SDK resolves `Partitioning::messages_key` on the client (`resolve_partitioning`
//! in `iggy_common` 0.11.0, `traits/binary_impls/messages.rs`) as
//! `calculate_32(&partitioning.value) % partitions_count`. That function is private and
//! needs a connected client, so this test builds the SDK's `Partitioning` (to get the
//! exact key bytes the SDK hashes) and applies the SDK's own public `calculate_32` and
//! the same modulo.

use iggy::prelude::Partitioning;
use rustok_iggy::{IggyEvent, PartitionKey, connector::partition_for};
use serde::{Deserialize, Serialize};

/// The partition the SDK computes for `key` among `count` partitions.
fn sdk_partition(key: &[u8], count: u32) -> u32 {
    let partitioning = Partitioning::messages_key(key).expect("the SDK accepts 1 to 255 bytes");
    assert_eq!(partitioning.value, key);
    iggy_common::calculate_32(&partitioning.value) % count
}

/// xorshift64: deterministic, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// 10,000 keys: every length 0 to 64, text (ASCII and multi-byte UTF-8) and raw bytes.
fn keys() -> Vec<Vec<u8>> {
    const TEXT: &[&str] = &["a", "Z", "7", "-", "_", ".", "é", "ж", "✓", "🦀", " "];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..10_000)
        .map(|i| {
            let len = (i % 65) as usize;
            if rng.next().is_multiple_of(2) {
                let mut key = String::new();
                while key.len() < len {
                    key.push_str(TEXT[rng.below(TEXT.len() as u64) as usize]);
                }
                key.into_bytes()
            } else {
                (0..len).map(|_| rng.next() as u8).collect()
            }
        })
        .collect()
}

#[test]
fn ten_thousand_keys_agree_with_the_sdk() {
    let keys = keys();
    assert_eq!(keys.len(), 10_000);
    let mut rng = XorShift(42);
    let mut compared = 0_u32;
    for key in &keys {
        let count = 1 + rng.below(64) as u32;
        if key.is_empty() {
            // The SDK refuses an empty messages key; the hash it would use still agrees.
            assert!(Partitioning::messages_key(key).is_err());
            assert_eq!(
                partition_for(key, count),
                iggy_common::calculate_32(key) % count
            );
            continue;
        }
        assert_eq!(
            partition_for(key, count),
            sdk_partition(key, count),
            "key {key:02x?}, {count} partitions"
        );
        compared += 1;
    }
    assert!(compared > 9_800, "{compared}");
}

#[test]
fn every_partition_count_from_1_to_64_agrees() {
    for key in keys().iter().step_by(37).filter(|key| !key.is_empty()) {
        for count in 1..=64 {
            assert_eq!(partition_for(key, count), sdk_partition(key, count));
        }
    }
}

#[test]
fn large_partition_counts_agree() {
    for key in keys().iter().filter(|key| !key.is_empty()).take(500) {
        for count in [1_000, 65_536, u32::MAX] {
            assert_eq!(partition_for(key, count), sdk_partition(key, count));
        }
    }
}

#[test]
fn keys_spread_over_partitions() {
    // Not a statistical test: every partition of 16 is hit by 10,000 keys.
    let mut hits = [0_u32; 16];
    for key in keys() {
        hits[partition_for(&key, 16) as usize] += 1;
    }
    assert!(hits.iter().all(|&hit| hit > 0), "{hits:?}");
}

#[test]
fn the_sdk_limits_messages_keys_to_255_bytes() {
    // The transport must send keys outside 1..=255 bytes as an explicit partition id
    // (computed with `partition_for`), not as a messages key.
    assert!(Partitioning::messages_key(&[]).is_err());
    assert!(Partitioning::messages_key(&[7; 255]).is_ok());
    assert!(Partitioning::messages_key(&[7; 256]).is_err());
    let long = [7_u8; 300];
    assert_eq!(
        partition_for(&long, 12),
        iggy_common::calculate_32(&long) % 12
    );
}

#[test]
fn integer_and_string_keys_are_the_sdk_key_bytes() {
    let mut rng = XorShift(7);
    for _ in 0..1_000 {
        let value = rng.next();
        let low = value as u32;
        let wide = (u128::from(value) << 64) | u128::from(rng.next());
        assert_eq!(
            value.partition_key(),
            Partitioning::messages_key_u64(value).value.as_slice()
        );
        assert_eq!(
            low.partition_key(),
            Partitioning::messages_key_u32(low).value.as_slice()
        );
        assert_eq!(
            wide.partition_key(),
            Partitioning::messages_key_u128(wide).value.as_slice()
        );
        // Signed integers: the two's complement bytes of the same width.
        assert_eq!(
            (value as i64).partition_key(),
            Partitioning::messages_key_u64(value).value.as_slice()
        );
    }
    for text in ["tenant-1", "заказы", "🦀"] {
        assert_eq!(
            text.partition_key(),
            Partitioning::messages_key_str(text)
                .unwrap()
                .value
                .as_slice()
        );
        assert_eq!(
            text.to_owned().partition_key(),
            Partitioning::messages_key_str(text)
                .unwrap()
                .value
                .as_slice()
        );
    }
}

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "ledger", key = account)]
struct Debited {
    account: u64,
    amount_cents: i64,
}

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant_id)]
struct OrderPlaced {
    tenant_id: String,
}

#[test]
fn derived_events_land_where_the_sdk_puts_their_key() {
    let mut rng = XorShift(99);
    for _ in 0..1_000 {
        let account = rng.next();
        let count = 1 + rng.below(64) as u32;
        let event = Debited {
            account,
            amount_cents: -1,
        };
        let sdk = Partitioning::messages_key_u64(account);
        assert_eq!(
            event.partition(count),
            Some(iggy_common::calculate_32(&sdk.value) % count)
        );

        let tenant = format!("tenant-{account:x}");
        let event = OrderPlaced {
            tenant_id: tenant.clone(),
        };
        assert_eq!(
            event.partition(count),
            Some(sdk_partition(tenant.as_bytes(), count))
        );
    }
}
