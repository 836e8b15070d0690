//! Consumer groups: membership, round-robin partition assignment, generations.

use tokio::sync::watch;

use crate::connector::Assignment;
use crate::names::GroupName;

#[derive(Debug)]
struct Member {
    id: u64,
    partitions: Vec<u32>,
}

/// A consumer group of a topic. Membership lives in memory (members are live
/// connections or in-process consumers); the group itself and its offsets are
/// persisted by the broker.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: u32,
    pub(crate) name: GroupName,
    generation: u64,
    members: Vec<Member>,
    changed: watch::Sender<u64>,
}

impl Group {
    pub(crate) fn new(id: u32, name: GroupName) -> Self {
        let (changed, _) = watch::channel(0);
        Self {
            id,
            name,
            generation: 0,
            members: Vec::new(),
            changed,
        }
    }

    /// Adds `member` (no-op when present) and rebalances.
    pub(crate) fn join(&mut self, member: u64, partitions_count: u32) {
        if !self.members.iter().any(|m| m.id == member) {
            self.members.push(Member {
                id: member,
                partitions: Vec::new(),
            });
            self.rebalance(partitions_count);
        }
    }

    /// Removes `member` and rebalances; returns whether it was a member.
    pub(crate) fn leave(&mut self, member: u64, partitions_count: u32) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.id != member);
        let left = self.members.len() != before;
        if left {
            self.rebalance(partitions_count);
        }
        left
    }

    /// Follows a change of the topic's partition count (`CreatePartitions` /
    /// `DeletePartitions`): every member is assigned again over the new count, a
    /// new generation begins and every member waiting on the group wakes. A group
    /// without members keeps its generation.
    pub(crate) fn resize(&mut self, partitions_count: u32) {
        if !self.members.is_empty() {
            self.rebalance(partitions_count);
        }
    }

    /// Eager round-robin: partition `i` goes to the `i % n`-th member in join order.
    /// Bumps the generation and wakes every member waiting on the group.
    fn rebalance(&mut self, partitions_count: u32) {
        for member in &mut self.members {
            member.partitions.clear();
        }
        let n = self.members.len();
        if n > 0 {
            for partition in 0..partitions_count {
                self.members[partition as usize % n]
                    .partitions
                    .push(partition);
            }
        }
        self.generation += 1;
        self.changed.send_replace(self.generation);
    }

    /// The member's assignment, or `None` when it is not a member.
    pub(crate) fn assignment(&self, member: u64) -> Option<Assignment> {
        self.members
            .iter()
            .find(|m| m.id == member)
            .map(|m| Assignment {
                generation: self.generation,
                partitions: m.partitions.clone(),
            })
    }

    /// Whether `member` owns `partition` now.
    pub(crate) fn owns(&self, member: u64, partition: u32) -> bool {
        self.members
            .iter()
            .any(|m| m.id == member && m.partitions.contains(&partition))
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// (member id, partitions) in join order.
    pub(crate) fn members(&self) -> impl Iterator<Item = (u64, &[u32])> {
        self.members.iter().map(|m| (m.id, m.partitions.as_slice()))
    }

    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Changes whenever the group is rebalanced.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Group {
        Group::new(0, GroupName::new("g").unwrap())
    }

    #[test]
    fn members_split_partitions_round_robin() {
        let mut g = group();
        g.join(10, 4);
        assert_eq!(g.assignment(10).unwrap().partitions, vec![0, 1, 2, 3]);
        g.join(20, 4);
        assert_eq!(g.assignment(10).unwrap().partitions, vec![0, 2]);
        assert_eq!(g.assignment(20).unwrap().partitions, vec![1, 3]);
        assert_eq!(g.generation(), 2);
        assert!(g.owns(20, 3) && !g.owns(10, 3));
    }

    #[test]
    fn leaving_gives_everything_to_the_rest() {
        let mut g = group();
        g.join(1, 3);
        g.join(2, 3);
        let rx = g.watch();
        assert!(g.leave(1, 3));
        assert!(!g.leave(1, 3));
        assert_eq!(g.assignment(2).unwrap().partitions, vec![0, 1, 2]);
        assert_eq!(g.assignment(1), None);
        assert_eq!(*rx.borrow(), 3);
    }

    #[test]
    fn a_resize_gives_new_partitions_and_takes_removed_ones() {
        let mut g = group();
        g.join(1, 2);
        g.join(2, 2);
        g.resize(5);
        assert_eq!(g.assignment(1).unwrap().partitions, vec![0, 2, 4]);
        assert_eq!(g.assignment(2).unwrap().partitions, vec![1, 3]);
        assert_eq!(g.generation(), 3);
        g.resize(1);
        assert_eq!(g.assignment(1).unwrap().partitions, vec![0]);
        assert_eq!(g.assignment(2).unwrap().partitions, Vec::<u32>::new());
        let mut empty = group();
        empty.resize(4);
        assert_eq!(empty.generation(), 0);
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle() {
        let mut g = group();
        for m in 0..3 {
            g.join(m, 2);
        }
        assert_eq!(g.assignment(2).unwrap().partitions, Vec::<u32>::new());
        assert_eq!(g.member_count(), 3);
    }
}
