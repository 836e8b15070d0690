//! The rules a consumer-group member follows in both connectors: where a new group
//! starts ("store start − 1"), where a member resumes after the group's commit, and
//! the cursors a member reads its partitions with, in turn.

use std::collections::HashMap;

/// The offset a new group stores on a partition so that its first read there is
/// `first_to_read`: a committed offset names the last message handled, so it is the
/// one before. `None` when the first read is offset 0, which a partition without a
/// committed offset starts at anyway.
pub(crate) fn start_to_store(first_to_read: u64) -> Option<u64> {
    first_to_read.checked_sub(1)
}

/// Where a member reads first on a partition: after the group's committed offset, or
/// at the beginning without one.
pub(crate) fn first_after(committed: Option<u64>) -> u64 {
    committed.map_or(0, |offset| offset.saturating_add(1))
}

/// Where a member's reads stand within one assignment: the next offset of each
/// owned partition, and which partition a poll reads first (it moves by one each
/// poll, so that a busy partition cannot starve the others).
///
/// `K` names the assignment the cursors were set for (the group generation, and for
/// a remote member also its membership epoch): when it changes, [`reset`](Self::reset)
/// restarts every owned partition after the group's commit, so un-committed
/// deliveries are delivered again.
#[derive(Debug)]
pub(crate) struct Cursors<K> {
    #[cfg_attr(
        not(feature = "embedded"),
        allow(dead_code, reason = "only the embedded member resets its cursors")
    )]
    key: Option<K>,
    next: HashMap<u32, u64>,
    turn: usize,
}

impl<K> Default for Cursors<K> {
    fn default() -> Self {
        Self {
            key: None,
            next: HashMap::new(),
            turn: 0,
        }
    }
}

impl<K: PartialEq> Cursors<K> {
    /// Whether the cursors were set for the assignment `key`.
    #[cfg_attr(
        not(feature = "embedded"),
        allow(dead_code, reason = "only the embedded member resets its cursors")
    )]
    pub(crate) fn is_for(&self, key: &K) -> bool {
        self.key.as_ref() == Some(key)
    }

    /// Sets the cursors for the assignment `key`: each owned partition, with the
    /// group's committed offset there, restarts after it.
    #[cfg_attr(
        not(feature = "embedded"),
        allow(dead_code, reason = "only the embedded member resets its cursors")
    )]
    pub(crate) fn reset(
        &mut self,
        key: K,
        committed: impl IntoIterator<Item = (u32, Option<u64>)>,
    ) {
        self.key = Some(key);
        self.next = committed
            .into_iter()
            .map(|(partition, offset)| (partition, first_after(offset)))
            .collect();
    }

    /// The owned partitions in the order this poll reads them, each with the next
    /// offset to read.
    pub(crate) fn round(&self, owned: &[u32]) -> Vec<(u32, u64)> {
        let n = owned.len();
        (0..n)
            .filter_map(|i| owned.get((self.turn + i) % n))
            .map(|&partition| {
                (
                    partition,
                    self.next.get(&partition).copied().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Moves the cursor of `partition` to `offset` (a seek).
    pub(crate) fn seek(&mut self, partition: u32, offset: u64) {
        self.next.insert(partition, offset);
    }

    /// Whether `partition` has a cursor (it was set and not forgotten since).
    #[cfg(feature = "remote")]
    pub(crate) fn has(&self, partition: u32) -> bool {
        self.next.contains_key(&partition)
    }

    /// Drops the cursor of `partition`: it has to be set again (after the group's
    /// commit) before the partition is read.
    #[cfg(feature = "remote")]
    pub(crate) fn forget(&mut self, partition: u32) {
        self.next.remove(&partition);
    }

    /// Ends a poll: the next one starts at the following partition, and every
    /// partition read moves to the offset after its last message. A poll that is
    /// cancelled before it ends moves nothing.
    pub(crate) fn finish_round(&mut self, advanced: impl IntoIterator<Item = (u32, u64)>) {
        self.turn = self.turn.wrapping_add(1);
        self.next.extend(advanced);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_stores_the_offset_before_its_start() {
        assert_eq!(start_to_store(0), None);
        assert_eq!(start_to_store(10), Some(9));
        assert_eq!(first_after(None), 0);
        assert_eq!(first_after(Some(9)), 10);
        assert_eq!(first_after(Some(u64::MAX)), u64::MAX);
    }

    #[test]
    fn cursors_take_the_partitions_in_turn_and_restart_after_the_commit() {
        let mut cursors = Cursors::default();
        assert!(!cursors.is_for(&1));
        cursors.reset(1, [(0, None), (1, Some(4)), (2, Some(9))]);
        assert!(cursors.is_for(&1));
        let owned = [0, 1, 2];
        assert_eq!(cursors.round(&owned), [(0, 0), (1, 5), (2, 10)]);
        cursors.finish_round([(1, 7)]);
        assert_eq!(cursors.round(&owned), [(1, 7), (2, 10), (0, 0)]);
        cursors.finish_round([]);
        assert_eq!(cursors.round(&owned)[0].0, 2);
        // A new assignment forgets what was read and not committed.
        cursors.reset(2, [(1, Some(4))]);
        assert_eq!(cursors.round(&[1]), [(1, 5)]);
        assert!(cursors.round(&[]).is_empty());
    }

    #[cfg(feature = "remote")]
    #[test]
    fn a_forgotten_cursor_is_set_again_before_its_partition_is_read() {
        let mut cursors: Cursors<()> = Cursors::default();
        cursors.seek(0, 5);
        cursors.seek(1, 7);
        assert!(cursors.has(0) && cursors.has(1));
        cursors.forget(1);
        assert!(cursors.has(0) && !cursors.has(1));
        assert_eq!(cursors.round(&[0]), [(0, 5)]);
    }
}
