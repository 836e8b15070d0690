//! Encoding messages into Iggy 0.11 batch records and reading them back.
//!
//! A batch record is the one layout the `SendMessages` body, the embedded broker's
//! segment files and the poll reply share (PROTOCOL.md §4): a 256-byte batch header,
//! then message frames `[48-byte frame header][payload][user headers]`, every frame
//! sealed with XXH3-64 and the batch sealed over the frame checksums.

use bytes::Bytes;
use iggy_binary_protocol::batch::{
    BATCH_HEADER_SIZE, BATCH_MESSAGE_HEADER_SIZE, BatchHeader, BatchIntegrity, BatchRef,
    calculate_batch_checksum, decode_batch_slice_with,
};
use twox_hash::XxHash3_64;

use crate::WireError;
use crate::message::{OutgoingMessage, ReceivedMessage};

/// Largest payload of one message (the Iggy limit).
pub const MAX_PAYLOAD_SIZE: usize = 64 * 1000 * 1000;

/// Microseconds since the Unix epoch, now.
#[must_use]
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Encodes `messages` into one batch record with `partition_id`, `base_offset` and
/// `base_timestamp` zero, ready for [`stamp`]. Ids of 0 are replaced by random
/// UUIDv4 values. Every message gets `origin_timestamp` as its creation time.
///
/// # Panics
/// Never for inputs within the documented limits; sizes are checked by the caller
/// ([`crate::ConnectorError::Publish`] for oversized payloads).
#[must_use]
pub(crate) fn encode_batch(messages: &[OutgoingMessage], origin_timestamp: u64) -> Vec<u8> {
    let blob_len: usize = messages
        .iter()
        .map(|m| BATCH_MESSAGE_HEADER_SIZE + m.payload.len() + m.headers.encoded_len())
        .sum();
    let mut out = Vec::with_capacity(BATCH_HEADER_SIZE + blob_len);
    out.resize(BATCH_HEADER_SIZE, 0);
    for (index, message) in messages.iter().enumerate() {
        let id = if message.id == 0 {
            uuid::Uuid::new_v4().as_u128()
        } else {
            message.id
        };
        let start = out.len();
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(index as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(message.headers.encoded_len() as u32).to_le_bytes());
        out.extend_from_slice(&(message.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&message.payload);
        message.headers.encode_into(&mut out);
        let checksum = XxHash3_64::oneshot(&out[start + 8..]);
        out[start..start + 8].copy_from_slice(&checksum.to_le_bytes());
    }
    let mut header = BatchHeader::new(0, origin_timestamp, out.len() as u64, messages.len() as u32);
    header.batch_checksum = calculate_batch_checksum(&header, &out[BATCH_HEADER_SIZE..]);
    header.encode_into(&mut out[..BATCH_HEADER_SIZE]);
    out
}

/// Stamps the three broker-owned fields of a batch record and re-seals its checksum.
///
/// `record` must be a whole record whose layout was validated.
pub(crate) fn stamp(record: &mut [u8], partition_id: u32, base_offset: u64, base_timestamp: u64) {
    let Ok(mut header) = BatchHeader::decode(record) else {
        return;
    };
    header.partition_id = u64::from(partition_id);
    header.base_offset = base_offset;
    header.base_timestamp = base_timestamp;
    header.batch_checksum = calculate_batch_checksum(&header, &record[BATCH_HEADER_SIZE..]);
    header.encode_into(&mut record[..BATCH_HEADER_SIZE]);
}

/// Validates a batch record received from a client: layout always, checksums when
/// `verify` is set. Returns its header.
pub(crate) fn validate(record: &[u8], verify: bool) -> Result<BatchHeader, WireError> {
    let integrity = if verify {
        BatchIntegrity::Verify
    } else {
        BatchIntegrity::LayoutOnly
    };
    let batch = decode_batch_slice_with(record, integrity)?;
    if batch.header.total_size() != record.len() {
        return Err(WireError::Validation(std::borrow::Cow::Borrowed(
            "bytes after the end of the batch record",
        )));
    }
    Ok(batch.header)
}

/// Checks that the message offset deltas of a whole (not sliced) record are 0, 1,
/// 2, ... in order: what every Iggy client sends, and what a stored record must hold,
/// since a message's offset is the record's base offset plus its delta (otherwise
/// its messages would claim the offsets of other records, and reads by offset would
/// return the wrong ones).
pub(crate) fn check_offset_deltas(record: &[u8]) -> Result<(), WireError> {
    let batch = decode_batch_slice_with(record, BatchIntegrity::LayoutOnly)?;
    let in_sequence = batch
        .iter()
        .zip(0u32..)
        .all(|(view, index)| view.header.offset_delta == index);
    if in_sequence {
        Ok(())
    } else {
        Err(WireError::Validation(std::borrow::Cow::Borrowed(
            "message offset deltas must be 0, 1, 2, ... in order",
        )))
    }
}

/// Decodes the messages of a stored (or polled) record whose offsets fall in
/// `[from, to)`, appending them to `out`. Payloads are slices of `record` (no copy).
/// A message whose user headers do not decode is kept with
/// [`ReceivedMessage::malformed_headers`] set: one bad message never fails the read.
pub(crate) fn decode_messages(
    record: Bytes,
    from: u64,
    to: u64,
    out: &mut Vec<ReceivedMessage>,
) -> Result<(), WireError> {
    let batch: BatchRef<'_> = decode_batch_slice_with(&record, BatchIntegrity::LayoutOnly)?;
    let header = batch.header;
    for framed in batch.iter_with_offsets() {
        let view = framed.message;
        let offset = header
            .base_offset
            .checked_add(u64::from(view.header.offset_delta))
            .ok_or(WireError::Validation(std::borrow::Cow::Borrowed(
                "a message offset is past the largest offset",
            )))?;
        if offset < from {
            continue;
        }
        if offset >= to {
            break;
        }
        let payload_start = BATCH_HEADER_SIZE + framed.start + BATCH_MESSAGE_HEADER_SIZE;
        let payload_end = payload_start + view.payload.len();
        // Headers that do not decode spoil that one message, not the read.
        let (headers, malformed_headers) = ReceivedMessage::read_headers(view.user_headers);
        out.push(ReceivedMessage {
            partition: u32::try_from(header.partition_id).unwrap_or(u32::MAX),
            offset,
            id: view.header.id,
            timestamp: header.base_timestamp,
            origin_timestamp: header
                .origin_timestamp
                .saturating_add(u64::from(view.header.timestamp_delta)),
            payload: record.slice(payload_start..payload_end),
            headers,
            malformed_headers,
        });
    }
    Ok(())
}

/// Copies of the frames of `record` whose offsets fall in `[from, to)`, as a new record
/// that keeps the base offset and timestamps (PROTOCOL.md §4.3). Returns `None` when no
/// frame falls in the window.
pub(crate) fn slice(
    record: &[u8],
    from: u64,
    to: u64,
) -> Result<Option<(Vec<u8>, u32)>, WireError> {
    let batch = decode_batch_slice_with(record, BatchIntegrity::LayoutOnly)?;
    let header = batch.header;
    let last = header
        .base_offset
        .saturating_add(u64::from(header.message_count));
    if from <= header.base_offset && to >= last {
        return Ok(Some((record.to_vec(), header.message_count)));
    }
    let blob = batch.blob();
    let mut out = vec![0u8; BATCH_HEADER_SIZE];
    let mut count = 0u32;
    for framed in batch.iter_with_offsets() {
        let offset = header
            .base_offset
            .checked_add(u64::from(framed.message.header.offset_delta))
            .ok_or(WireError::Validation(std::borrow::Cow::Borrowed(
                "a message offset is past the largest offset",
            )))?;
        if offset < from {
            continue;
        }
        if offset >= to {
            break;
        }
        out.extend_from_slice(&blob[framed.start..framed.end]);
        count += 1;
    }
    if count == 0 {
        return Ok(None);
    }
    let mut sliced = header;
    sliced.batch_length = out.len() as u64;
    sliced.message_count = count;
    sliced.batch_checksum = calculate_batch_checksum(&sliced, &out[BATCH_HEADER_SIZE..]);
    sliced.encode_into(&mut out[..BATCH_HEADER_SIZE]);
    Ok(Some((out, count)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Headers;
    use iggy_binary_protocol::batch::decode_batch_slice;

    fn messages(n: usize) -> Vec<OutgoingMessage> {
        (0..n)
            .map(|i| {
                let mut headers = Headers::new();
                headers.insert_str("i", i.to_string()).unwrap();
                OutgoingMessage::new(format!("payload-{i}").into_bytes())
                    .with_id(i as u128 + 1)
                    .with_headers(headers)
            })
            .collect()
    }

    #[test]
    fn encoded_batches_pass_the_official_decoder() {
        let mut record = encode_batch(&messages(3), 1_000);
        decode_batch_slice(&record).unwrap();
        stamp(&mut record, 2, 40, 5_000);
        let batch = decode_batch_slice(&record).unwrap();
        assert_eq!(batch.header.base_offset, 40);
        assert_eq!(batch.header.partition_id, 2);

        let mut out = Vec::new();
        decode_messages(record.clone().into(), 0, u64::MAX, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].offset, 41);
        assert_eq!(out[1].id, 2);
        assert_eq!(&out[1].payload[..], b"payload-1");
        assert_eq!(out[1].headers.get_str("i"), Some("1"));
        assert_eq!(out[1].timestamp, 5_000);
    }

    #[test]
    fn a_message_with_malformed_headers_spoils_only_itself() {
        let mut record = encode_batch(&messages(3), 1_000);
        stamp(&mut record, 0, 0, 5);
        let second = {
            let batch = decode_batch_slice(&record).unwrap();
            let framed = batch.iter_with_offsets().nth(1).unwrap();
            BATCH_HEADER_SIZE
                + framed.start
                + BATCH_MESSAGE_HEADER_SIZE
                + framed.message.payload.len()
        };
        // The first header key kind of message 1 becomes the reserved kind 0.
        record[second] = 0;
        let mut out = Vec::new();
        decode_messages(record.into(), 0, u64::MAX, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].headers.get_str("i"), Some("0"));
        assert!(out[0].malformed_headers.is_none());
        assert!(out[1].headers.is_empty());
        let malformed = out[1].malformed_headers.as_ref().unwrap();
        assert!(
            malformed.error.to_string().contains("kind is 0"),
            "{}",
            malformed.error
        );
        assert_eq!(&out[1].payload[..], b"payload-1");
        assert_eq!(out[2].headers.get_str("i"), Some("2"));
    }

    #[test]
    fn zero_ids_are_minted() {
        let record = encode_batch(&[OutgoingMessage::new(&b"x"[..])], 1);
        let mut out = Vec::new();
        decode_messages(record.clone().into(), 0, u64::MAX, &mut out).unwrap();
        assert_ne!(out[0].id, 0);
    }

    #[test]
    fn slicing_keeps_base_fields_and_a_valid_seal() {
        let mut record = encode_batch(&messages(5), 1_000);
        stamp(&mut record, 0, 10, 99);
        let (sliced, count) = slice(&record, 12, 14).unwrap().unwrap();
        assert_eq!(count, 2);
        let batch = decode_batch_slice(&sliced).unwrap();
        assert_eq!(batch.header.base_offset, 10);
        let mut out = Vec::new();
        decode_messages(sliced.into(), 0, u64::MAX, &mut out).unwrap();
        assert_eq!(
            out.iter().map(|m| m.offset).collect::<Vec<_>>(),
            vec![12, 13]
        );
        assert!(slice(&record, 20, 30).unwrap().is_none());
    }
}
