//! The layout of a data directory: its file names, the directory of each stream,
//! topic and partition, and the metadata file that lists them. A leaf of the broker:
//! the broker writes it, and a data directory is read through it without opening a
//! broker (backup, verify).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::persist;
use crate::error::ConnectorError;
use crate::names::{GroupName, StreamName, TopicName};

/// The metadata file of a data directory: its streams, topics and groups.
pub(crate) const METADATA_FILE: &str = "metadata.json";

/// The contents of [`METADATA_FILE`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MetadataFile {
    pub(crate) format: u32,
    pub(crate) next_stream_id: u32,
    pub(crate) streams: Vec<StreamMeta>,
}

/// A stream of [`MetadataFile`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StreamMeta {
    pub(crate) id: u32,
    pub(crate) name: StreamName,
    pub(crate) created_at: u64,
    pub(crate) next_topic_id: u32,
    pub(crate) topics: Vec<TopicMeta>,
}

/// A topic of [`StreamMeta`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TopicMeta {
    pub(crate) id: u32,
    pub(crate) name: TopicName,
    pub(crate) created_at: u64,
    pub(crate) partitions: u32,
    #[serde(default)]
    pub(crate) max_age_micros: Option<u64>,
    #[serde(default)]
    pub(crate) max_size_bytes: Option<u64>,
    pub(crate) next_group_id: u32,
    pub(crate) groups: Vec<GroupMeta>,
}

/// A consumer group of [`TopicMeta`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GroupMeta {
    pub(crate) id: u32,
    pub(crate) name: GroupName,
}

/// The directory of stream `stream` in the data directory `root`.
pub(crate) fn stream_dir(root: &Path, stream: u32) -> PathBuf {
    root.join("streams").join(stream.to_string())
}

/// The directory of a topic.
pub(crate) fn topic_dir(root: &Path, stream: u32, topic: u32) -> PathBuf {
    stream_dir(root, stream)
        .join("topics")
        .join(topic.to_string())
}

/// The directory of a partition: its log segments and stored offsets.
pub(crate) fn partition_dir(root: &Path, stream: u32, topic: u32, partition: u32) -> PathBuf {
    topic_dir(root, stream, topic)
        .join("partitions")
        .join(partition.to_string())
}

/// Writes `bytes` to a new file readable by the owner only (as the broker's own
/// metadata files are), fsynced.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ConnectorError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ConnectorError::io(format!("create {}", path.display()), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ConnectorError::io(format!("write {}", path.display()), e))
}

/// One partition of a data directory, as its metadata names it.
#[derive(Debug, Clone)]
pub(crate) struct PartitionLocation {
    pub(crate) stream: StreamName,
    pub(crate) topic: TopicName,
    pub(crate) partition: u32,
    /// Its directory, relative to the data directory.
    pub(crate) relative: PathBuf,
    /// The ids of the topic's consumer groups.
    pub(crate) groups: Vec<u32>,
}

/// The partitions of the data directory `root`, from its `metadata.json`, without
/// opening a broker; `None` when there is no metadata file (not a data directory).
pub(crate) fn layout(root: &Path) -> Result<Option<Vec<PartitionLocation>>, ConnectorError> {
    let Some(meta) = persist::read_json::<MetadataFile>(&root.join(METADATA_FILE))? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for stream in &meta.streams {
        for topic in &stream.topics {
            for partition in 0..topic.partitions {
                out.push(PartitionLocation {
                    stream: stream.name.clone(),
                    topic: topic.name.clone(),
                    partition,
                    relative: partition_dir(Path::new(""), stream.id, topic.id, partition),
                    groups: topic.groups.iter().map(|g| g.id).collect(),
                });
            }
        }
    }
    Ok(Some(out))
}
