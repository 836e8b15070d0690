//! Partition commands: deleting a partition's oldest segments and flushing it to
//! disk.

use iggy_binary_protocol::requests::messages::FlushUnsavedBufferRequest;
use iggy_binary_protocol::requests::segments::DeleteSegmentsRequest;

use super::lookup::{decode, resolve_topic};
use super::reply::Handled;
use super::shared::Shared;
use crate::error_codes::ErrorCode;

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
