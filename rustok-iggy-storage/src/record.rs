//! The batch record: what the log stores, byte for byte as the Iggy 0.11 wire carries
//! it in a `SendMessages` body and a poll reply.
//!
//! ```text
//! [batch header: 256 bytes][frame][frame]...
//! frame = [frame header: 48 bytes][payload][user headers]
//! ```
//!
//! The batch header holds `partition_id`, `base_offset` and `base_timestamp` (zero as
//! a producer writes them; [`stamp`]ed by the log at append), `origin_timestamp`, the
//! record's length, its message count and the batch checksum. Each frame header holds
//! the frame checksum (XXH3-64 over the rest of the frame), the message id, its offset
//! delta from `base_offset` (0, 1, 2, ... in order), its timestamp delta from
//! `origin_timestamp`, and the lengths of the payload and of the user headers. The
//! batch checksum seals the header fields and every frame checksum.
//!
//! The layout and the checksums are those of the official `iggy_binary_protocol`
//! crate, whose types ([`BatchHeader`], [`WireError`]) this module uses.

use std::borrow::Cow;
use std::fmt;

use iggy_binary_protocol::batch::{
    BATCH_HEADER_SIZE, BATCH_MESSAGE_HEADER_SIZE, BatchIntegrity, BatchIteratorWithOffsets,
    calculate_batch_checksum, decode_batch_slice_with,
};
use twox_hash::XxHash3_64;

pub use iggy_binary_protocol::WireError;
pub use iggy_binary_protocol::batch::BatchHeader;

/// Builds one batch record, message by message, as a producer sends it: with
/// `partition_id`, `base_offset` and `base_timestamp` zero, ready for
/// [`PartitionLog::append`](crate::PartitionLog::append) (which [`stamp`]s them).
///
/// ```
/// use rustok_iggy_storage::record::{self, RecordBuilder};
///
/// let mut builder = RecordBuilder::new();
/// builder.push(7, b"first", &[]);
/// builder.push(8, b"second", &[]);
/// let record = builder.finish(1_000);
/// record::validate(&record, true).expect("a sealed record");
/// let ids: Vec<u128> = record::messages(&record)
///     .expect("a valid layout")
///     .map(|m| m.map(|m| m.id))
///     .collect::<Result<_, _>>()
///     .expect("offsets in range");
/// assert_eq!(ids, [7, 8]);
/// ```
#[derive(Clone)]
pub struct RecordBuilder {
    /// The batch header (zero until [`finish`](Self::finish)), then the frames.
    buf: Vec<u8>,
    count: u32,
}

impl RecordBuilder {
    /// An empty record.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty record with room for `frame_bytes` bytes of frames (see
    /// [`frame_size`](Self::frame_size)) without reallocating.
    #[must_use]
    pub fn with_capacity(frame_bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(BATCH_HEADER_SIZE.saturating_add(frame_bytes));
        buf.resize(BATCH_HEADER_SIZE, 0);
        Self { buf, count: 0 }
    }

    /// The bytes one message takes in a record.
    #[must_use]
    pub fn frame_size(payload_len: usize, user_headers_len: usize) -> usize {
        BATCH_MESSAGE_HEADER_SIZE
            .saturating_add(payload_len)
            .saturating_add(user_headers_len)
    }

    /// Appends a message with the given id, payload and encoded user headers (empty
    /// for none). Its offset delta is its position in the record.
    ///
    /// # Panics
    /// When the payload or the user headers are 4 GiB or more (the frame's 32-bit
    /// length fields; Iggy itself allows 64 MB payloads), or past 2³² messages.
    pub fn push(&mut self, id: u128, payload: &[u8], user_headers: &[u8]) {
        self.push_with(id, payload, |out| out.extend_from_slice(user_headers));
    }

    /// [`push`](Self::push), with the user headers written in place by
    /// `write_user_headers` (it appends them to the buffer it is given).
    ///
    /// # Panics
    /// As [`push`](Self::push).
    pub fn push_with(
        &mut self,
        id: u128,
        payload: &[u8],
        write_user_headers: impl FnOnce(&mut Vec<u8>),
    ) {
        let payload_len = u32::try_from(payload.len()).expect("a payload under 4 GiB");
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; 8]);
        self.buf.extend_from_slice(&id.to_le_bytes());
        self.buf.extend_from_slice(&self.count.to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        // The user headers' length, written once they are.
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.buf.extend_from_slice(&payload_len.to_le_bytes());
        self.buf.extend_from_slice(&0u64.to_le_bytes());
        self.buf.extend_from_slice(payload);
        let headers_start = self.buf.len();
        write_user_headers(&mut self.buf);
        let headers_len =
            u32::try_from(self.buf.len() - headers_start).expect("user headers under 4 GiB");
        self.buf[start + 32..start + 36].copy_from_slice(&headers_len.to_le_bytes());
        let checksum = XxHash3_64::oneshot(&self.buf[start + 8..]);
        self.buf[start..start + 8].copy_from_slice(&checksum.to_le_bytes());
        self.count = self.count.checked_add(1).expect("fewer than 2^32 messages");
    }

    /// How many messages were pushed.
    #[must_use]
    pub fn message_count(&self) -> u32 {
        self.count
    }

    /// Seals the record: every message gets `origin_timestamp` (microseconds since
    /// the Unix epoch) as its creation time. A record without messages is refused by
    /// the log.
    #[must_use]
    pub fn finish(mut self, origin_timestamp: u64) -> Vec<u8> {
        let mut header = BatchHeader::new(0, origin_timestamp, self.buf.len() as u64, self.count);
        header.batch_checksum = calculate_batch_checksum(&header, &self.buf[BATCH_HEADER_SIZE..]);
        header.encode_into(&mut self.buf[..BATCH_HEADER_SIZE]);
        self.buf
    }
}

impl Default for RecordBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RecordBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBuilder")
            .field("messages", &self.count)
            .field("bytes", &self.buf.len())
            .finish()
    }
}

/// Stamps the three broker-owned fields of a batch record and re-seals its checksum.
///
/// `record` must be a whole record whose layout was validated ([`validate`]); a
/// record whose header does not decode is left as it is.
pub fn stamp(record: &mut [u8], partition_id: u32, base_offset: u64, base_timestamp: u64) {
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
/// `verify` is set, and nothing after its end. Returns its header.
///
/// # Errors
/// The first layout or checksum fault found.
pub fn validate(record: &[u8], verify: bool) -> Result<BatchHeader, WireError> {
    let integrity = if verify {
        BatchIntegrity::Verify
    } else {
        BatchIntegrity::LayoutOnly
    };
    let batch = decode_batch_slice_with(record, integrity)?;
    if batch.header.total_size() != record.len() {
        return Err(WireError::Validation(Cow::Borrowed(
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
///
/// # Errors
/// A layout fault, or [`WireError::Validation`] for deltas out of sequence.
pub fn check_offset_deltas(record: &[u8]) -> Result<(), WireError> {
    let batch = decode_batch_slice_with(record, BatchIntegrity::LayoutOnly)?;
    let in_sequence = batch
        .iter()
        .zip(0u32..)
        .all(|(view, index)| view.header.offset_delta == index);
    if in_sequence {
        Ok(())
    } else {
        Err(WireError::Validation(Cow::Borrowed(
            "message offset deltas must be 0, 1, 2, ... in order",
        )))
    }
}

/// Copies of the frames of `record` whose offsets fall in `[from, to)`, as a new record
/// that keeps the base offset and timestamps, with its message count. Returns `None`
/// when no frame falls in the window.
///
/// # Errors
/// A layout fault, or a message offset past `u64::MAX`.
pub fn slice(record: &[u8], from: u64, to: u64) -> Result<Option<(Vec<u8>, u32)>, WireError> {
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
            .ok_or(WireError::Validation(Cow::Borrowed(
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

/// The messages of a stored (or polled) record, in order. The layout is checked
/// (not the checksums: see [`validate`]).
///
/// # Errors
/// A layout fault.
pub fn messages(record: &[u8]) -> Result<Messages<'_>, WireError> {
    let batch = decode_batch_slice_with(record, BatchIntegrity::LayoutOnly)?;
    Ok(Messages {
        header: batch.header,
        blob: batch.blob(),
        frames: batch.iter_with_offsets(),
        failed: false,
    })
}

/// The messages of a record: see [`messages`]. An item is an error when a message's
/// offset would pass `u64::MAX`; the iteration ends after it.
pub struct Messages<'a> {
    header: BatchHeader,
    blob: &'a [u8],
    frames: BatchIteratorWithOffsets<'a>,
    failed: bool,
}

impl Messages<'_> {
    /// The record's batch header.
    #[must_use]
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<MessageRef<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let framed = self.frames.next()?;
        let view = framed.message;
        let Some(offset) = self
            .header
            .base_offset
            .checked_add(u64::from(view.header.offset_delta))
        else {
            self.failed = true;
            return Some(Err(WireError::Validation(Cow::Borrowed(
                "a message offset is past the largest offset",
            ))));
        };
        Some(Ok(MessageRef {
            offset,
            id: view.header.id,
            timestamp: self.header.base_timestamp,
            origin_timestamp: self
                .header
                .origin_timestamp
                .saturating_add(u64::from(view.header.timestamp_delta)),
            payload: view.payload,
            user_headers: view.user_headers,
            frame: &self.blob[framed.start..framed.end],
        }))
    }
}

impl fmt::Debug for Messages<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messages")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// One message of a record, borrowing its bytes.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct MessageRef<'a> {
    /// Its offset: the record's base offset plus the message's offset delta.
    pub offset: u64,
    /// Its id (the producer's, e.g. a UUID).
    pub id: u128,
    /// The record's `base_timestamp`: when the log stored it (microseconds since the
    /// Unix epoch).
    pub timestamp: u64,
    /// When the producer created it: the record's `origin_timestamp` plus the
    /// message's timestamp delta.
    pub origin_timestamp: u64,
    /// The payload.
    pub payload: &'a [u8],
    /// The encoded user headers (empty for none).
    pub user_headers: &'a [u8],
    /// The whole frame, as stored: frame header, payload, user headers.
    pub frame: &'a [u8],
}

impl fmt::Debug for MessageRef<'_> {
    /// Lengths only: payloads are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageRef")
            .field("offset", &self.offset)
            .field("id", &self.id)
            .field("timestamp", &self.timestamp)
            .field("origin_timestamp", &self.origin_timestamp)
            .field("payload_len", &self.payload.len())
            .field("user_headers_len", &self.user_headers.len())
            .finish()
    }
}
