//! Conversions between the connector's types and the official SDK's.

use std::time::Duration;

use bytes::Bytes;
use iggy::prelude::{
    IggyByteSize, IggyDuration, IggyExpiry, IggyMessage, IggyMessageHeader, MaxTopicSize,
    PollingStrategy, TopicDetails,
};

use crate::connector::{Retention, StartPosition, TopicInfo};
use crate::message::{OutgoingMessage, ReceivedMessage};
use crate::names::{StreamName, TopicName};

/// The SDK messages of a batch. The event id is the Iggy message id (0 lets the SDK
/// mint a UUIDv4, as the embedded broker does); the headers travel as Iggy user
/// headers in their TLV form, byte for byte.
pub(super) fn to_iggy_messages(
    messages: &[OutgoingMessage],
    origin_timestamp: u64,
) -> Vec<IggyMessage> {
    messages
        .iter()
        .map(|message| {
            let user_headers = (!message.headers.is_empty()).then(|| {
                let mut out = Vec::with_capacity(message.headers.encoded_len());
                message.headers.encode_into(&mut out);
                Bytes::from(out)
            });
            IggyMessage {
                header: IggyMessageHeader {
                    checksum: 0,
                    id: message.id,
                    offset: 0,
                    timestamp: 0,
                    origin_timestamp,
                    user_headers_length: user_headers.as_ref().map_or(0, |h| h.len() as u32),
                    payload_length: message.payload.len() as u32,
                    reserved: 0,
                },
                payload: message.payload.clone(),
                user_headers,
            }
        })
        .collect()
}

/// A polled SDK message of `partition` as a [`ReceivedMessage`].
pub(super) fn from_iggy_message(partition: u32, message: IggyMessage) -> ReceivedMessage {
    // Headers that do not decode spoil that one message, not the poll.
    let (headers, malformed_headers) = match &message.user_headers {
        Some(bytes) => ReceivedMessage::read_shared_headers(bytes, bytes),
        None => (crate::Headers::new(), None),
    };
    ReceivedMessage {
        partition,
        offset: message.header.offset,
        id: message.header.id,
        timestamp: message.header.timestamp,
        origin_timestamp: message.header.origin_timestamp,
        payload: message.payload,
        headers,
        malformed_headers,
    }
}

/// The messages at or after `from` (a server may hand back whole batches), in
/// offset order, at most `max`.
pub(super) fn received(
    partition: u32,
    messages: Vec<IggyMessage>,
    from: Option<u64>,
    max: u32,
) -> Vec<ReceivedMessage> {
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        if from.is_some_and(|from| message.header.offset < from) {
            continue;
        }
        out.push(from_iggy_message(partition, message));
    }
    out.sort_by_key(|m| m.offset);
    out.dedup_by_key(|m| m.offset);
    out.truncate(max as usize);
    out
}

/// The SDK polling strategy of a read start.
///
/// `Latest` has no strategy of its own: callers resolve it to an offset first.
pub(super) fn strategy(from: StartPosition) -> PollingStrategy {
    match from {
        StartPosition::Earliest => PollingStrategy::first(),
        StartPosition::Offset(offset) => PollingStrategy::offset(offset),
        StartPosition::Timestamp(micros) => PollingStrategy::timestamp(micros.into()),
        StartPosition::Latest => PollingStrategy::last(),
    }
}

/// The Iggy message expiry of a retention (`None` = never expire).
pub(super) fn message_expiry(retention: &Retention) -> IggyExpiry {
    match retention.max_age {
        Some(age) => IggyExpiry::ExpireDuration(IggyDuration::new(age)),
        None => IggyExpiry::NeverExpire,
    }
}

/// The Iggy topic size cap of a retention (`None` = unlimited).
pub(super) fn max_topic_size(retention: &Retention) -> MaxTopicSize {
    match retention.max_size_bytes {
        Some(bytes) => MaxTopicSize::Custom(IggyByteSize::from(bytes)),
        None => MaxTopicSize::Unlimited,
    }
}

/// The retention a topic has on the server (server defaults read as "no limit").
pub(super) fn retention_of(details: &TopicDetails) -> Retention {
    Retention {
        max_age: match details.message_expiry {
            IggyExpiry::ExpireDuration(age) => Some(Duration::from_micros(age.as_micros())),
            IggyExpiry::NeverExpire | IggyExpiry::ServerDefault => None,
        },
        max_size_bytes: match details.max_topic_size {
            MaxTopicSize::Custom(size) => Some(size.as_bytes_u64()),
            MaxTopicSize::Unlimited | MaxTopicSize::ServerDefault => None,
        },
    }
}

/// Whether two retentions are the same at the server's precision (microseconds).
pub(super) fn same_retention(a: &Retention, b: &Retention) -> bool {
    let micros = |d: Option<Duration>| d.map(|d| d.as_micros());
    micros(a.max_age) == micros(b.max_age) && a.max_size_bytes == b.max_size_bytes
}

/// The [`TopicInfo`] of a topic as the server describes it.
pub(super) fn topic_info(
    stream: &StreamName,
    topic: &TopicName,
    details: &TopicDetails,
) -> TopicInfo {
    let mut partitions: Vec<_> = details.partitions.iter().collect();
    partitions.sort_by_key(|p| p.id);
    TopicInfo {
        stream: stream.clone(),
        topic: topic.clone(),
        partitions: details.partitions_count,
        retention: retention_of(details),
        next_offsets: partitions
            .iter()
            .map(|p| {
                // `current_offset` is the last offset; 0 is ambiguous between an
                // empty partition and one holding offset 0.
                if p.messages_count == 0 && p.current_offset == 0 {
                    0
                } else {
                    p.current_offset + 1
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{HeaderValue, Headers};

    #[test]
    fn messages_keep_id_payload_and_headers() {
        let mut headers = Headers::new();
        headers.insert_str("event_type", "order.placed").unwrap();
        headers.insert("attempt", HeaderValue::u64(2)).unwrap();
        let outgoing = OutgoingMessage::new(&b"payload"[..])
            .with_id(42)
            .with_headers(headers.clone());
        let mut sdk = to_iggy_messages(std::slice::from_ref(&outgoing), 1_000);
        assert_eq!(sdk.len(), 1);
        let mut message = sdk.remove(0);
        assert_eq!(message.header.id, 42);
        assert_eq!(message.header.origin_timestamp, 1_000);
        assert_eq!(
            message.header.user_headers_length as usize,
            headers.encoded_len()
        );
        message.header.offset = 7;
        message.header.timestamp = 2_000;
        let received = from_iggy_message(3, message);
        assert_eq!(received.partition, 3);
        assert_eq!(received.offset, 7);
        assert_eq!(received.id, 42);
        assert_eq!(received.timestamp, 2_000);
        assert_eq!(&received.payload[..], b"payload");
        assert_eq!(received.headers, headers);
        assert_eq!(
            received
                .headers
                .get("attempt")
                .and_then(crate::HeaderValueRef::as_u64),
            Some(2)
        );
    }

    #[test]
    fn messages_without_headers_send_none() {
        let sdk = to_iggy_messages(&[OutgoingMessage::new(&b"x"[..])], 1);
        assert!(sdk[0].user_headers.is_none());
        assert_eq!(sdk[0].header.id, 0);
    }

    #[test]
    fn received_skips_earlier_offsets_and_caps() {
        let sdk = (0..5u64)
            .map(|offset| {
                let mut m = to_iggy_messages(&[OutgoingMessage::new(&b"x"[..])], 1).remove(0);
                m.header.offset = offset;
                m
            })
            .collect();
        let out = received(0, sdk, Some(2), 2);
        assert_eq!(out.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn retention_round_trips() {
        let retention = Retention {
            max_age: Some(Duration::from_secs(7 * 86_400)),
            max_size_bytes: Some(10_000_000_000),
        };
        assert!(matches!(
            message_expiry(&retention),
            IggyExpiry::ExpireDuration(_)
        ));
        assert_eq!(u64::from(max_topic_size(&retention)), 10_000_000_000);
        let none = Retention::default();
        assert!(matches!(message_expiry(&none), IggyExpiry::NeverExpire));
        assert!(matches!(max_topic_size(&none), MaxTopicSize::Unlimited));
        assert!(same_retention(
            &Retention {
                max_age: Some(Duration::from_nanos(1_000_500)),
                max_size_bytes: None
            },
            &Retention {
                max_age: Some(Duration::from_micros(1_000)),
                max_size_bytes: None
            }
        ));
    }
}
