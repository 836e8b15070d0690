//! A topic: its partitions, retention and consumer groups.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use super::groups::Group;
use super::partition::Partition;
use crate::connector::{Retention, TopicInfo};
use crate::error::ConnectorError;
use crate::names::{GroupName, StreamName, TopicName};
use crate::partition::RoundRobin;

#[derive(Debug, Default)]
pub(crate) struct Groups {
    pub(crate) by_id: BTreeMap<u32, Group>,
    pub(crate) next_id: u32,
}

impl Groups {
    pub(crate) fn find(&self, group: GroupRef<'_>) -> Option<&Group> {
        match group {
            GroupRef::Id(id) => self.by_id.get(&id),
            GroupRef::Name(name) => self.by_id.values().find(|g| g.name.as_str() == name),
        }
    }

    pub(crate) fn find_mut(&mut self, group: GroupRef<'_>) -> Option<&mut Group> {
        match group {
            GroupRef::Id(id) => self.by_id.get_mut(&id),
            GroupRef::Name(name) => self.by_id.values_mut().find(|g| g.name.as_str() == name),
        }
    }
}

/// A group named by id or by name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GroupRef<'a> {
    Id(u32),
    Name(&'a str),
}

/// A topic of a stream.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) id: u32,
    pub(crate) stream_id: u32,
    /// The names change with `UpdateStream` and `UpdateTopic`: read them through
    /// [`Topic::stream_name`] and [`Topic::name`].
    stream_name: RwLock<StreamName>,
    name: RwLock<TopicName>,
    pub(crate) created_at: u64,
    /// Grows and shrinks at the end with `CreatePartitions` / `DeletePartitions`:
    /// read it through [`Topic::partitions`] and [`Topic::partition`].
    partitions: RwLock<Arc<[Arc<Partition>]>>,
    pub(crate) retention: Mutex<Retention>,
    pub(crate) groups: Mutex<Groups>,
    round_robin: RoundRobin,
}

impl Topic {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u32,
        stream_id: u32,
        stream_name: StreamName,
        name: TopicName,
        created_at: u64,
        partitions: Vec<Arc<Partition>>,
        retention: Retention,
        groups: Groups,
    ) -> Self {
        Self {
            id,
            stream_id,
            stream_name: RwLock::new(stream_name),
            name: RwLock::new(name),
            created_at,
            partitions: RwLock::new(partitions.into()),
            retention: Mutex::new(retention),
            groups: Mutex::new(groups),
            round_robin: RoundRobin::new(),
        }
    }

    /// The name of the topic's stream now.
    pub(crate) fn stream_name(&self) -> StreamName {
        self.stream_name
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The topic's name now.
    pub(crate) fn name(&self) -> TopicName {
        self.name
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Renames the topic (the broker holds its state lock and saves the metadata).
    pub(super) fn set_name(&self, name: TopicName) {
        *self.name.write().unwrap_or_else(PoisonError::into_inner) = name;
    }

    /// Follows a rename of the topic's stream.
    pub(super) fn set_stream_name(&self, name: StreamName) {
        *self
            .stream_name
            .write()
            .unwrap_or_else(PoisonError::into_inner) = name;
    }

    pub(crate) fn partitions_count(&self) -> u32 {
        self.partitions().len() as u32
    }

    /// The partitions now, by id (`0..count`).
    pub(crate) fn partitions(&self) -> Arc<[Arc<Partition>]> {
        Arc::clone(
            &self
                .partitions
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Replaces the partition list (the broker holds its state lock, and keeps
    /// the ids `0..count`).
    pub(super) fn set_partitions(&self, partitions: Vec<Arc<Partition>>) {
        *self
            .partitions
            .write()
            .unwrap_or_else(PoisonError::into_inner) = partitions.into();
    }

    /// The partition with this id, or a typed error naming the valid range.
    pub(crate) fn partition(&self, id: u32) -> Result<Arc<Partition>, ConnectorError> {
        let partitions = self.partitions();
        partitions
            .get(id as usize)
            .cloned()
            .ok_or_else(|| ConnectorError::PartitionNotFound {
                stream: self.stream_name().to_string(),
                topic: self.name().to_string(),
                partition: id,
                partitions: partitions.len() as u32,
            })
    }

    /// The next partition in round-robin order.
    /// The cursor of balanced publishing.
    pub(crate) fn round_robin(&self) -> &RoundRobin {
        &self.round_robin
    }

    pub(crate) fn retention(&self) -> Retention {
        *self
            .retention
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn groups(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Assigns every group's members again over `partitions_count` partitions.
    pub(super) fn rebalance_groups(&self, partitions_count: u32) {
        for group in self.groups().by_id.values_mut() {
            group.resize(partitions_count);
        }
    }

    /// The id of the group named `name`.
    pub(crate) fn group_id(&self, name: &GroupName) -> Option<u32> {
        self.groups()
            .find(GroupRef::Name(name.as_str()))
            .map(|g| g.id)
    }

    pub(crate) fn group_not_found(&self, group: &str) -> ConnectorError {
        ConnectorError::GroupNotFound {
            stream: self.stream_name().to_string(),
            topic: self.name().to_string(),
            group: group.to_owned(),
        }
    }

    /// Sum of the partitions' sizes and message counts.
    pub(crate) fn totals(&self) -> (u64, u64, u32) {
        self.partitions()
            .iter()
            .fold((0, 0, 0), |(size, messages, segments), p| {
                let stats = p.stats();
                (
                    size + stats.size_bytes,
                    messages + stats.messages,
                    segments + stats.segments,
                )
            })
    }

    pub(crate) fn info(&self) -> TopicInfo {
        let partitions = self.partitions();
        TopicInfo {
            stream: self.stream_name(),
            topic: self.name(),
            partitions: partitions.len() as u32,
            retention: self.retention(),
            next_offsets: partitions.iter().map(|p| p.next_offset()).collect(),
        }
    }
}
