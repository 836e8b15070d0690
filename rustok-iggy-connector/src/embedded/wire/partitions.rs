//! Partition commands: adding and removing partitions, deleting a partition's
//! oldest segments and flushing it to disk.

use iggy_binary_protocol::requests::messages::FlushUnsavedBufferRequest;
use iggy_binary_protocol::requests::partitions::{
    CreatePartitionsRequest, DeletePartitionsRequest,
};
use iggy_binary_protocol::requests::segments::DeleteSegmentsRequest;

use super::lookup::{decode, resolve_topic};
use super::reply::Handled;
use super::shared::Shared;
use crate::embedded::broker::MAX_PARTITIONS;
use crate::error_codes::ErrorCode;

/// The count rule of both requests, checked before the topic is looked up as the
/// Iggy server does: adding or removing 0, or more than 1,000 at once, is
/// `TooManyPartitions`.
fn check_change_count(count: u32) -> Result<(), ErrorCode> {
    if count == 0 || count > MAX_PARTITIONS {
        return Err(ErrorCode::TOO_MANY_PARTITIONS);
    }
    Ok(())
}

/// Adds `partitions_count` partitions at the end of the topic and rebalances its
/// consumer groups. A topic of this broker holds at most 1,000 partitions: adding
/// past that is `TooManyPartitions` (the Iggy server's own bound is far higher).
pub(crate) fn create(shared: &Shared, body: &[u8]) -> Handled {
    let request: CreatePartitionsRequest = decode(body)?;
    check_change_count(request.partitions_count)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    if topic.partitions_count() + request.partitions_count > MAX_PARTITIONS {
        return Err(ErrorCode::TOO_MANY_PARTITIONS);
    }
    shared
        .broker
        .add_partitions(&topic, request.partitions_count)
        .map_err(ErrorCode::from)
}

/// Removes the last `partitions_count` partitions of the topic, with their
/// messages and stored offsets, and rebalances its consumer groups. More than the
/// topic has is `InvalidPartitionsCount`, as on the server; so is removing every
/// partition, which the server allows but a topic of this broker cannot be.
pub(crate) fn delete(shared: &Shared, body: &[u8]) -> Handled {
    let request: DeletePartitionsRequest = decode(body)?;
    check_change_count(request.partitions_count)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    if request.partitions_count >= topic.partitions_count() {
        return Err(ErrorCode::INVALID_PARTITIONS_COUNT);
    }
    shared
        .broker
        .remove_partitions(&topic, request.partitions_count)
        .map_err(ErrorCode::from)
}

/// Deletes the `segments_count` oldest closed segments of a partition, as the Iggy
/// server does: the active segment is never deleted (asking for more segments than
/// are closed deletes the closed ones, and with none closed it is a no-op), and
/// offsets are kept (polling below the new first offset starts at it).
pub(crate) fn delete_segments(shared: &Shared, body: &[u8]) -> Handled {
    let request: DeleteSegmentsRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let partition = topic.partition(request.partition_id)?;
    partition.delete_segments(request.segments_count)?;
    Ok(())
}

/// Flushes a partition. Every append is written to its segment file before it is
/// acknowledged (there is no buffer of unsaved messages in the broker), so without
/// `fsync` this only checks the partition; with `fsync` it asks the sync threads to
/// fsync what the partition appended and committed so far (segment, index and
/// offsets journal), whatever the configured durability, and answers once that is
/// done.
pub(crate) async fn flush(shared: &Shared, body: &[u8]) -> Handled {
    let request: FlushUnsavedBufferRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let partition = topic.partition(request.partition_id)?;
    if request.fsync {
        partition.flush().await.map_err(ErrorCode::from)?;
    }
    Ok(())
}
