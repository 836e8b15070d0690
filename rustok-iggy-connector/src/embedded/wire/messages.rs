//! `SendMessages` and `PollMessages` (`docs/wire-protocol.md` §4).

use bytes::BytesMut;
use iggy_binary_protocol::WireEncode;
use iggy_binary_protocol::batch::{BatchIntegrity, decode_batch_slice_with};
use iggy_binary_protocol::requests::messages::PollMessagesRequest;
use iggy_binary_protocol::responses::messages::PollMessagesResponseHeader;
use iggy_binary_protocol::responses::messages::{
    SendMessagesConfirmationResponse, SendMessagesResponse,
};
use iggy_binary_protocol::validate_user_headers;

use super::lookup::{Caller, consumer_key, decode, resolve_topic, send_parts};
use super::reply::Handled;
use super::session::Session;
use super::shared::Shared;
use crate::batch;
use crate::connector::Partitioning;
use crate::embedded::broker::Partition;
use crate::error_codes::ErrorCode;
use crate::message::MAX_HEADER_FIELD_LENGTH;

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
    let (header, record) = send_parts(body)?;
    let batch_header = batch::validate(record, true).map_err(ErrorCode::from)?;
    if batch_header.message_count == 0 || batch_header.message_count != header.messages_count {
        return Err(ErrorCode::INVALID_MESSAGES_COUNT);
    }
    check_user_headers(record)?;
    let topic = resolve_topic(&shared.broker, &header.stream_id, &header.topic_id)?;
    let partition = Partitioning::from(header.partitioning)
        .resolve(topic.partitions_count(), topic.round_robin());
    // Messages the partition stored already are left out; the confirmation's offset
    // is then that of the first one's stored copy (the batch's own, for a retry).
    let base_offset = shared
        .broker
        .append(&topic, partition, record.to_vec())
        .await?
        .base_offset;
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

/// Refuses a record with a message whose user headers do not decode, so that
/// nothing unreadable is stored: readers decode headers with the same rule
/// (`validate_user_headers` of the official crate).
fn check_user_headers(record: &[u8]) -> Handled {
    let batch = decode_batch_slice_with(record, BatchIntegrity::LayoutOnly)?;
    for message in batch.iter() {
        if validate_user_headers(message.user_headers).is_err() {
            return Err(header_fault(message.user_headers));
        }
    }
    Ok(())
}

/// The code for user-header bytes that do not decode: `InvalidHeaderKey` when the
/// first broken field is a key (or stray bytes where a key would start),
/// `InvalidHeaderValue` when it is a value or a key has none (the codes the Iggy
/// server gave when it parsed headers at `SendMessages`).
fn header_fault(headers: &[u8]) -> ErrorCode {
    // `[kind u8][len u32][bytes]` fields, alternating key and value.
    let field_end = |rest: &[u8]| -> Option<usize> {
        let (&kind, after_kind) = rest.split_first()?;
        let len = u32::from_le_bytes(after_kind.get(..4)?.try_into().ok()?) as usize;
        let valid = kind != 0 && (1..=MAX_HEADER_FIELD_LENGTH).contains(&len);
        (valid && after_kind.len() >= 4 + len).then_some(5 + len)
    };
    let mut rest = headers;
    let mut fields = 0usize;
    while !rest.is_empty() {
        match field_end(rest).and_then(|end| rest.get(end..)) {
            Some(after) => {
                rest = after;
                fields += 1;
            }
            None => break,
        }
    }
    if fields.is_multiple_of(2) && !rest.is_empty() {
        ErrorCode::INVALID_HEADER_KEY
    } else {
        ErrorCode::INVALID_HEADER_VALUE
    }
}

/// Where a poll starts, or `None` when there is nothing to serve.
fn start_offset(
    partition: &Partition,
    kind: u8,
    value: u64,
    count: u32,
    stored: Option<u64>,
) -> Result<Option<u64>, ErrorCode> {
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
        _ => return Err(ErrorCode::INVALID_FORMAT),
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
            &partition,
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
        let Some((sliced, n)) = batch::slice(&record, start, end).map_err(ErrorCode::from)? else {
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
