//! Held partitions: the gauge and the process-wide list that health reads.

use std::sync::{Mutex, PoisonError};

use rustok_iggy_connector::{Metrics, metric_names};

/// A partition a subscription holds: its commit waits at `offset`, nothing after it
/// is delivered, and the event there is delivered again after a backoff, until a
/// decision settles it (or the partition goes to another member).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldPartition {
    /// The partition.
    pub partition: u32,
    /// The offset of the event it is held at.
    pub offset: u64,
    /// Why (the decode failure).
    pub reason: String,
    /// Deliveries of the event so far.
    pub attempts: u32,
}

/// Sets the held-partition gauge of `hold` and its entry in the process-wide list
/// [`held_in`] reads, for the subscription `owner` of `group` on `topic`.
pub(super) fn publish(owner: u64, topic: &str, group: &str, hold: HeldPartition, held: bool) {
    let partition = hold.partition.to_string();
    Metrics::global().set(
        metric_names::PARTITION_HELD,
        &[
            ("messaging_destination_name", topic),
            ("messaging_consumer_group_name", group),
            ("partition", &partition),
        ],
        u64::from(held),
    );
    let mut registry = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    let key = (owner, hold.partition);
    registry.retain(|entry| (entry.owner, entry.hold.partition) != key);
    if held {
        registry.push(HeldEntry {
            owner,
            topic: topic.to_owned(),
            group: group.to_owned(),
            hold,
        });
    }
}

#[derive(Debug)]
struct HeldEntry {
    /// The subscription's bookkeeping, so that two members of a group in one process
    /// keep their own entries.
    owner: u64,
    topic: String,
    group: String,
    hold: HeldPartition,
}

/// Every partition held by a subscription of this process, by topic and group.
static HELD: Mutex<Vec<HeldEntry>> = Mutex::new(Vec::new());

/// The partitions of `topic` that subscriptions of `group` in this process hold now.
pub(crate) fn held_in(topic: &str, group: &str) -> Vec<HeldPartition> {
    let mut held: Vec<HeldPartition> = HELD
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|entry| entry.topic == topic && entry.group == group)
        .map(|entry| entry.hold.clone())
        .collect();
    held.sort_by_key(|h| h.partition);
    held
}
