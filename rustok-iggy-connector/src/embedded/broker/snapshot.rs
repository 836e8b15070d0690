//! A consistent copy of the broker's data while it runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Broker;
use super::layout::{METADATA_FILE, partition_dir, write_file};
use super::offsets::OFFSETS_FILE;
use super::topic::Topic;
use super::users::USERS_FILE;
use crate::embedded::storage::{CopyStats, LogSnapshot};
use crate::error::ConnectorError;
use crate::names::{StreamName, TopicName};

/// One partition of a snapshot.
#[derive(Debug)]
pub(crate) struct PartitionSnapshot {
    pub(crate) stream: StreamName,
    pub(crate) topic: TopicName,
    /// The partition's directory, relative to the data directory.
    relative: PathBuf,
    log: LogSnapshot,
    offsets: Vec<u8>,
}

impl PartitionSnapshot {
    /// The next offset of the partition at the snapshot point.
    pub(crate) fn next_offset(&self) -> u64 {
        self.log.next_offset()
    }
}

/// The whole broker at one point in time: metadata, users, and every partition's
/// log and stored offsets.
#[derive(Debug)]
pub(crate) struct BrokerSnapshot {
    metadata: Vec<u8>,
    users: Option<Vec<u8>>,
    pub(crate) partitions: Vec<PartitionSnapshot>,
}

impl Broker {
    /// Freezes the broker's state at one point: the metadata, every partition's log
    /// length and stored offsets, all taken while metadata changes and every append
    /// wait (for as long as it takes to note lengths and open files again: no data
    /// is copied under the locks). [`BrokerSnapshot::write_to`] copies it later.
    pub(crate) fn snapshot(&self) -> Result<BrokerSnapshot, ConnectorError> {
        self.ensure_open()?;
        let state = self.read_state();
        let metadata = serde_json::to_vec_pretty(&Self::metadata(&state)).map_err(|e| {
            ConnectorError::InvalidRequest(format!("cannot serialize the metadata: {e}"))
        })?;
        let users_path = self.root.join(USERS_FILE);
        let users = match fs::read(&users_path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(ConnectorError::io(
                    format!("read {}", users_path.display()),
                    e,
                ));
            }
        };
        let topics: Vec<Arc<Topic>> = state
            .streams
            .values()
            .flat_map(|s| s.topics.values().cloned())
            .collect();
        // Every partition's log held at once: one point in time for all of them.
        let lists: Vec<_> = topics.iter().map(|t| (t, t.partitions())).collect();
        let held: Vec<_> = lists
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, p, p.log_read())))
            .collect();
        let mut partitions = Vec::with_capacity(held.len());
        for (topic, partition, log) in &held {
            partitions.push(PartitionSnapshot {
                stream: topic.stream_name(),
                topic: topic.name(),
                relative: partition_dir(Path::new(""), topic.stream_id, topic.id, partition.id),
                log: log.snapshot()?,
                offsets: partition.offsets_json()?,
            });
        }
        drop(held);
        drop(state);
        Ok(BrokerSnapshot {
            metadata,
            users,
            partitions,
        })
    }
}

impl BrokerSnapshot {
    /// Writes the snapshot as a data directory in `dir` (which must be empty or
    /// missing), fsynced; returns the totals.
    pub(crate) fn write_to(&self, dir: &Path) -> Result<CopyStats, ConnectorError> {
        fs::create_dir_all(dir)
            .map_err(|e| ConnectorError::io(format!("create {}", dir.display()), e))?;
        let mut total = CopyStats::default();
        for partition in &self.partitions {
            let target = dir.join(&partition.relative);
            let stats = partition.log.write_to(&target)?;
            write_file(&target.join(OFFSETS_FILE), &partition.offsets)?;
            total.segments += stats.segments;
            total.bytes += stats.bytes;
            total.messages += stats.messages;
        }
        if let Some(users) = &self.users {
            write_file(&dir.join(USERS_FILE), users)?;
        }
        // The metadata last: a directory without it is not a data directory.
        write_file(&dir.join(METADATA_FILE), &self.metadata)?;
        Ok(total)
    }
}
