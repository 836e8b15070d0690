//! Encoding the connector's messages into Iggy 0.11 batch records and reading them
//! back. The record format itself (layout, checksums, stamping, slicing) is the storage
//! crate's [`record`] module; this one maps [`OutgoingMessage`] and
//! [`ReceivedMessage`] onto it.

#[cfg(feature = "embedded")]
use bytes::Bytes;
#[cfg(feature = "embedded")]
pub(crate) use rustok_iggy_storage::record::{self, slice, validate};

#[cfg(feature = "embedded")]
use crate::WireError;
#[cfg(feature = "embedded")]
use crate::message::{OutgoingMessage, ReceivedMessage};

/// Microseconds since the Unix epoch, now.
#[must_use]
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Encodes `messages` into one batch record with `partition_id`, `base_offset` and
/// `base_timestamp` zero, ready for the log's append. Ids of 0 are replaced by random
/// UUIDv4 values. Every message gets `origin_timestamp` as its creation time.
///
/// # Panics
/// Never for inputs within the documented limits; sizes are checked by the caller
/// ([`crate::ConnectorError::Publish`] for oversized payloads).
#[cfg(feature = "embedded")]
#[must_use]
pub(crate) fn encode_batch(messages: &[OutgoingMessage], origin_timestamp: u64) -> Vec<u8> {
    let frame_bytes: usize = messages
        .iter()
        .map(|m| record::RecordBuilder::frame_size(m.payload.len(), m.headers.encoded_len()))
        .sum();
    let mut builder = record::RecordBuilder::with_capacity(frame_bytes);
    for message in messages {
        let id = if message.id == 0 {
            uuid::Uuid::new_v4().as_u128()
        } else {
            message.id
        };
        builder.push_with(id, &message.payload, |out| message.headers.encode_into(out));
    }
    builder.finish(origin_timestamp)
}

/// Decodes the messages of a stored (or polled) record whose offsets fall in
/// `[from, to)`, appending them to `out`. Payloads are slices of `record` (no copy).
/// A message whose user headers do not decode is kept with
/// [`ReceivedMessage::malformed_headers`] set: one bad message never fails the read.
#[cfg(feature = "embedded")]
pub(crate) fn decode_messages(
    record: Bytes,
    from: u64,
    to: u64,
    out: &mut Vec<ReceivedMessage>,
) -> Result<(), WireError> {
    let messages = record::messages(&record)?;
    let partition = u32::try_from(messages.header().partition_id).unwrap_or(u32::MAX);
    for message in messages {
        let message = message?;
        if message.offset < from {
            continue;
        }
        if message.offset >= to {
            break;
        }
        // Headers that do not decode spoil that one message, not the read.
        let (headers, malformed_headers) =
            ReceivedMessage::read_shared_headers(&record, message.user_headers);
        out.push(ReceivedMessage {
            partition,
            offset: message.offset,
            id: message.id,
            timestamp: message.timestamp,
            origin_timestamp: message.origin_timestamp,
            payload: record.slice_ref(message.payload),
            headers,
            malformed_headers,
        });
    }
    Ok(())
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use super::*;
    use crate::message::Headers;
    use iggy_binary_protocol::batch::{
        BATCH_HEADER_SIZE, BATCH_MESSAGE_HEADER_SIZE, decode_batch_slice,
    };
    use rustok_iggy_storage::record::stamp;

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
