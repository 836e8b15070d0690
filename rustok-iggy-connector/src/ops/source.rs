//! Reading the source data directory's messages as they were produced, and cutting
//! them into batches the protocol accepts.

use bytes::Bytes;
use iggy_binary_protocol::batch::{
    BATCH_HEADER_SIZE, BATCH_MESSAGE_HEADER_SIZE, BatchIntegrity, MAX_TIMESTAMP_DELTA_MICROS,
    decode_batch_slice_with,
};

use crate::embedded::broker::Partition;
use crate::error::ConnectorError;
use crate::message::{HeaderValue, Headers, ORIGINAL_TIMESTAMP_HEADER};
use crate::remote::copy::CopiedMessage;

/// A message read from the source log.
#[derive(Debug, Clone)]
pub(super) struct SourceMessage {
    pub(super) offset: u64,
    pub(super) copy: CopiedMessage,
}

/// Splits `messages` into batches of at most `max_bytes` (at least one message each)
/// whose origin timestamps span at most the protocol's 32-bit microsecond delta.
pub(super) fn chunks(messages: &[SourceMessage], max_bytes: usize) -> Vec<&[SourceMessage]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < messages.len() {
        let mut end = start;
        let mut bytes = 0usize;
        let (mut low, mut high) = (u64::MAX, 0u64);
        while let Some(m) = messages.get(end) {
            let size = m.copy.payload.len() + m.copy.user_headers.len();
            let ts = m.copy.origin_timestamp;
            let (l, h) = (low.min(ts), high.max(ts));
            let fits = end == start
                || (bytes.saturating_add(size) <= max_bytes && h - l <= MAX_TIMESTAMP_DELTA_MICROS);
            if !fits {
                break;
            }
            (low, high) = (l, h);
            bytes = bytes.saturating_add(size);
            end += 1;
        }
        out.push(&messages[start..end]);
        start = end;
    }
    out
}

/// The next messages of `partition` from `from`: what the producer set (id, origin
/// timestamp, payload, raw user headers), with their source offsets.
pub(super) fn read_source(
    partition: &Partition,
    from: u64,
    max: u32,
    max_bytes: usize,
) -> Result<Vec<SourceMessage>, ConnectorError> {
    let mut out = Vec::new();
    for record in partition.read(from, max, max_bytes)? {
        let record = Bytes::from(record);
        let batch = decode_batch_slice_with(&record, BatchIntegrity::LayoutOnly)?;
        let header = batch.header;
        for framed in batch.iter_with_offsets() {
            let view = framed.message;
            let offset = header
                .base_offset
                .saturating_add(u64::from(view.header.offset_delta));
            if offset < from {
                continue;
            }
            let payload_start = BATCH_HEADER_SIZE + framed.start + BATCH_MESSAGE_HEADER_SIZE;
            let payload_end = payload_start + view.payload.len();
            let headers_end = payload_end + view.user_headers.len();
            out.push(SourceMessage {
                offset,
                copy: CopiedMessage {
                    id: view.header.id,
                    origin_timestamp: header
                        .origin_timestamp
                        .saturating_add(u64::from(view.header.timestamp_delta)),
                    payload: record.slice(payload_start..payload_end),
                    user_headers: with_original_timestamp(
                        record.slice(payload_end..headers_end),
                        header.base_timestamp,
                    ),
                },
            });
        }
    }
    out.truncate(max as usize);
    Ok(out)
}

/// `user_headers` (TLV) with [`ORIGINAL_TIMESTAMP_HEADER`] set to `stored_at`,
/// unless they hold it already (a message migrated before keeps its first time).
/// Headers that do not decode are left as they are.
fn with_original_timestamp(user_headers: Bytes, stored_at: u64) -> Bytes {
    match Headers::decode(&user_headers) {
        Ok(headers) if headers.get(ORIGINAL_TIMESTAMP_HEADER).is_none() => {
            let mut added = Headers::with_capacity(1);
            if added
                .insert_static(ORIGINAL_TIMESTAMP_HEADER, HeaderValue::u64(stored_at))
                .is_err()
            {
                return user_headers;
            }
            let mut out = Vec::with_capacity(user_headers.len() + added.encoded_len());
            out.extend_from_slice(&user_headers);
            added.encode_into(&mut out);
            Bytes::from(out)
        }
        _ => user_headers,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::ops) fn message(offset: u64, ts: u64, size: usize) -> SourceMessage {
        SourceMessage {
            offset,
            copy: CopiedMessage {
                id: u128::from(offset) + 1,
                origin_timestamp: ts,
                payload: Bytes::from(vec![0u8; size]),
                user_headers: Bytes::new(),
            },
        }
    }

    #[test]
    fn chunks_respect_bytes_and_the_timestamp_spread() {
        let messages = vec![
            message(0, 10, 40),
            message(1, 20, 40),
            message(2, 30, 40),
            message(3, 30 + MAX_TIMESTAMP_DELTA_MICROS, 1),
            message(4, 5, 500),
        ];
        let lens: Vec<usize> = chunks(&messages, 100).iter().map(|c| c.len()).collect();
        // Two of 40 bytes fit in 100, a third would not. The fourth is exactly the
        // largest spread ahead of the third: it fits. The fifth would pass 100 bytes
        // and goes alone (a batch always takes at least one message).
        assert_eq!(lens, vec![2, 2, 1]);
    }
}
