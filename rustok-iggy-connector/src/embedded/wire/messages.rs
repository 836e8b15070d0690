//! `SendMessages` and `PollMessages` (PROTOCOL.md §4).

use bytes::BytesMut;
use iggy_binary_protocol::WireEncode;
use iggy_binary_protocol::batch::{BatchIntegrity, decode_batch_slice_with};
use iggy_binary_protocol::requests::messages::PollMessagesRequest;
use iggy_binary_protocol::requests::messages::SendMessagesHeader;
use iggy_binary_protocol::responses::messages::PollMessagesResponseHeader;
use iggy_binary_protocol::responses::messages::{
    SendMessagesConfirmationResponse, SendMessagesResponse,
};

use super::dispatch::Handled;
use super::error::Status;
use super::offsets::{Caller, consumer_key};
use super::session::Session;
use super::{Shared, decode, resolve_topic};
use crate::batch;
use crate::connector::Partitioning;
use crate::embedded::broker::Partition;

/// Most bytes of records one poll reply gathers (at least one record is always
/// served, up to the 64 MiB frame limit).
const MAX_POLL_BYTES: usize = 16 * 1024 * 1024;
/// Polling strategy kinds.
const OFFSET: u8 = 1;
const TIMESTAMP: u8 = 2;
const FIRST: u8 = 3;
const LAST: u8 = 4;
const NEXT: u8 = 5;
/// The empty-poll partition id that tells a group member its assignment changed.
const FENCED_PARTITION: u32 = u32::MAX;

/// Appends the received batch record: validated (layout and both checksum levels),
/// stamped with partition, base offset and broker time, stored as is.
pub(crate) async fn send(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let metadata_len = body
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or(Status::INVALID_FORMAT)? as usize;
    let metadata_end = metadata_len.checked_add(4).ok_or(Status::INVALID_FORMAT)?;
    let metadata = body.get(4..metadata_end).ok_or(Status::INVALID_FORMAT)?;
    let record = body.get(metadata_end..).ok_or(Status::INVALID_FORMAT)?;
    let header: SendMessagesHeader = decode(metadata)?;
    let batch_header = batch::validate(record, true).map_err(Status::from)?;
    if batch_header.message_count == 0 || batch_header.message_count != header.messages_count {
        return Err(Status::INVALID_MESSAGES_COUNT);
    }
    let topic = resolve_topic(&shared.broker, &header.stream_id, &header.topic_id)?;
    let partition = Partitioning::from(header.partitioning)
        .resolve(topic.partitions_count(), topic.round_robin());
    let mut record = record.to_vec();
    let base_offset = shared.broker.append(&topic, partition, &mut record).await?;
    SendMessagesResponse {
        confirmations: vec![SendMessagesConfirmationResponse {
            stream_id: topic.stream_id,
            topic_id: topic.id,
            partition_id: partition,
            base_offset,
        }],
    }
    .encode(out);
    Ok(())
}

/// Where a poll starts, or `None` when there is nothing to serve.
fn start_offset(
    partition: &Partition,
    kind: u8,
    value: u64,
    count: u32,
    stored: Option<u64>,
) -> Result<Option<u64>, Status> {
    let first = partition.first_offset();
    let next = partition.next_offset();
    let start = match kind {
        OFFSET => value,
        TIMESTAMP => match partition.offset_at_timestamp(value) {
            Some(offset) => offset,
            None => return Ok(None),
        },
        FIRST => first,
        LAST => next.saturating_sub(u64::from(count)),
        NEXT => stored.map_or(0, |o| o.saturating_add(1)),
        _ => return Err(Status::INVALID_FORMAT),
    };
    let start = start.max(first);
    Ok((start < next).then_some(start))
}

/// Serves stored records sliced to `[start, start + count)`; the reply always has
/// the 16-byte prefix (an empty poll is the prefix with count 0).
pub(crate) async fn poll(
    shared: &Shared,
    session: &Session,
    body: &[u8],
    out: &mut BytesMut,
) -> Handled {
    let request: PollMessagesRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let caller = Caller::resolve(&topic, &request.consumer, request.partition_id, session)?;
    let partition_id = match caller {
        Caller::Fenced => {
            empty(out, FENCED_PARTITION, 0);
            return Ok(());
        }
        Caller::Consumer { partition, .. } | Caller::Member { partition, .. } => partition,
    };
    let partition = topic.partition(partition_id)?;
    let key = consumer_key(&caller);
    let current_offset = partition.next_offset().saturating_sub(1);
    let count = request.count;
    let stored = key.and_then(|k| partition.stored_offset(k));
    let start = if count == 0 {
        None
    } else {
        start_offset(
            partition,
            request.strategy.kind,
            request.strategy.value,
            count,
            stored,
        )?
    };
    let Some(start) = start else {
        empty(out, partition_id, current_offset);
        return Ok(());
    };
    let end = start.saturating_add(u64::from(count));
    let records = partition.read(start, count, MAX_POLL_BYTES)?;
    let prefix_at = out.len();
    empty(out, partition_id, current_offset);
    let mut served = 0u32;
    let mut last = None;
    for record in records {
        let Some((sliced, n)) = batch::slice(&record, start, end).map_err(Status::from)? else {
            continue;
        };
        last = last_offset(&sliced).or(last);
        out.extend_from_slice(&sliced);
        served = served.saturating_add(n);
    }
    if served > 0 {
        let header = PollMessagesResponseHeader {
            partition_id,
            current_offset,
            messages_count: served,
        };
        let mut prefix = BytesMut::with_capacity(16);
        header.encode(&mut prefix);
        if let Some(slot) = out.get_mut(prefix_at..prefix_at + prefix.len()) {
            slot.copy_from_slice(&prefix);
        }
        if request.auto_commit
            && let (Some(key), Some(last)) = (key, last)
        {
            partition.store_offset(key, last).await?;
        }
    }
    Ok(())
}

/// The offset of the last message of a record.
fn last_offset(record: &[u8]) -> Option<u64> {
    let batch = decode_batch_slice_with(record, BatchIntegrity::LayoutOnly).ok()?;
    let base = batch.header.base_offset;
    batch
        .iter()
        .last()
        .map(|m| base.saturating_add(u64::from(m.header.offset_delta)))
}

fn empty(out: &mut BytesMut, partition_id: u32, current_offset: u64) {
    PollMessagesResponseHeader {
        partition_id,
        current_offset,
        messages_count: 0,
    }
    .encode(out);
}
