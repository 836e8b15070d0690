//! Topic commands.

use std::time::Duration;

use bytes::BytesMut;
use iggy_binary_protocol::requests::topics::CreateTopicRequest;
use iggy_binary_protocol::requests::topics::DeleteTopicRequest;
use iggy_binary_protocol::requests::topics::GetTopicRequest;
use iggy_binary_protocol::requests::topics::GetTopicsRequest;
use iggy_binary_protocol::requests::topics::PurgeTopicRequest;
use iggy_binary_protocol::requests::topics::UpdateTopicRequest;
use iggy_binary_protocol::responses::topics::GetTopicsResponse;
use iggy_binary_protocol::responses::topics::{GetTopicResponse, PartitionResponse};
use iggy_binary_protocol::{WireEncode, WireOptions};

use super::lookup::{decode, ident, resolve_topic, stream_not_found};
use super::reply::{Handled, topic_header};
use super::shared::Shared;
use crate::connector::Retention;
use crate::embedded::broker::{MAX_PARTITIONS, Topic};
use crate::error_codes::ErrorCode;
use crate::names::TopicName;

/// Value kinds of the option TLV (`HeaderKind::as_code` of `iggy_common`).
const KIND_STRING: u8 = 2;
const KIND_UINT32: u8 = 11;
const KIND_UINT64: u8 = 12;

fn topic_details(topic: &Topic) -> Result<GetTopicResponse, ErrorCode> {
    Ok(GetTopicResponse {
        topic: topic_header(topic)?,
        partitions: topic
            .partitions()
            .iter()
            .map(|p| {
                let stats = p.stats();
                PartitionResponse {
                    id: p.id,
                    created_at: topic.created_at,
                    segments_count: stats.segments,
                    current_offset: p.next_offset().saturating_sub(1),
                    size_bytes: stats.size_bytes,
                    messages_count: stats.messages,
                }
            })
            .collect(),
    })
}

/// A missing stream or topic is an empty body (the SDK reads it as `None`).
pub(crate) fn get(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetTopicRequest = decode(body)?;
    if let Some(topic) = shared
        .broker
        .find_topic(ident(&request.stream_id), ident(&request.topic_id))
    {
        topic_details(&topic)?.encode(out);
    }
    Ok(())
}

pub(crate) fn list(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetTopicsRequest = decode(body)?;
    let info = shared
        .broker
        .stream(ident(&request.stream_id))
        .ok_or_else(|| stream_not_found(&request.stream_id))?;
    GetTopicsResponse {
        topics: info
            .topics
            .iter()
            .map(|t| topic_header(t))
            .collect::<Result<_, _>>()?,
    }
    .encode(out);
    Ok(())
}

pub(crate) fn create(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: CreateTopicRequest = decode(body)?;
    let stream = ident(&request.stream_id);
    if shared.broker.stream(stream).is_none() {
        return Err(stream_not_found(&request.stream_id));
    }
    if request.partitions_count > MAX_PARTITIONS {
        return Err(ErrorCode::TOO_MANY_PARTITIONS);
    }
    let name = TopicName::new(request.name.as_str()).map_err(|_| ErrorCode::INVALID_TOPIC_NAME)?;
    let retention = retention(&request.options)?;
    let topic = shared
        .broker
        .create_topic(stream, name, request.partitions_count, retention)?;
    topic_details(&topic)?.encode(out);
    Ok(())
}

/// Updates a topic: renames it (the name of another topic of the stream is
/// `TopicNameAlreadyExists`) and sets its retention (`message_expiry`,
/// `max_topic_size`; absent keys keep their value). Options are checked before
/// anything changes.
pub(crate) fn update(shared: &Shared, body: &[u8]) -> Handled {
    let request: UpdateTopicRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let retention = apply_retention(topic.retention(), &request.options)?;
    if request.name.as_str() != topic.name().as_str() {
        let name =
            TopicName::new(request.name.as_str()).map_err(|_| ErrorCode::INVALID_TOPIC_NAME)?;
        shared.broker.rename_topic(&topic, name)?;
    }
    if retention != topic.retention() {
        shared.broker.set_retention(&topic, retention)?;
    }
    Ok(())
}

/// Reads the retention options of a `CreateTopic`. Every other well-formed option
/// (compression, durability, segment size, `consumer_offset_durability`, ...) is
/// accepted and ignored, as SDK 0.11.0 sends several of them.
fn retention(options: &WireOptions) -> Result<Retention, ErrorCode> {
    apply_retention(Retention::default(), options)
}

/// `retention` with the limits `options` sets.
fn apply_retention(
    mut retention: Retention,
    options: &WireOptions,
) -> Result<Retention, ErrorCode> {
    for entry in options.iter() {
        match entry.key {
            b"message_expiry" => {
                retention.max_age =
                    limit(entry.value_kind.0, entry.value)?.map(Duration::from_micros);
            }
            b"max_topic_size" => retention.max_size_bytes = limit(entry.value_kind.0, entry.value)?,
            _ => {}
        }
    }
    Ok(retention)
}

/// A numeric limit where 0 (server default) and `u64::MAX` (never, unlimited) mean
/// no limit.
fn limit(kind: u8, value: &[u8]) -> Result<Option<u64>, ErrorCode> {
    let number = match kind {
        KIND_UINT64 => <[u8; 8]>::try_from(value).ok().map(u64::from_le_bytes),
        KIND_UINT32 => <[u8; 4]>::try_from(value)
            .ok()
            .map(|b| u64::from(u32::from_le_bytes(b))),
        KIND_STRING => {
            let text = std::str::from_utf8(value)
                .map_err(|_| ErrorCode::INVALID_FORMAT)?
                .trim();
            match text {
                "none" | "unlimited" | "never_expire" | "server_default" => Some(0),
                _ => text.parse().ok(),
            }
        }
        _ => None,
    };
    match number.ok_or(ErrorCode::INVALID_FORMAT)? {
        0 | u64::MAX => Ok(None),
        n => Ok(Some(n)),
    }
}

pub(crate) fn delete(shared: &Shared, body: &[u8]) -> Handled {
    let request: DeleteTopicRequest = decode(body)?;
    resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    Ok(shared
        .broker
        .delete_topic(ident(&request.stream_id), ident(&request.topic_id))?)
}

/// Deletes every message of the topic (offsets are not reused).
pub(crate) fn purge(shared: &Shared, body: &[u8]) -> Handled {
    let request: PurgeTopicRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    for partition in topic.partitions().iter() {
        partition.purge()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_numbers_and_the_never_values() {
        assert_eq!(limit(KIND_UINT64, &5u64.to_le_bytes()), Ok(Some(5)));
        assert_eq!(limit(KIND_UINT64, &u64::MAX.to_le_bytes()), Ok(None));
        assert_eq!(limit(KIND_UINT64, &0u64.to_le_bytes()), Ok(None));
        assert_eq!(limit(KIND_UINT32, &7u32.to_le_bytes()), Ok(Some(7)));
        assert_eq!(limit(KIND_STRING, b"unlimited"), Ok(None));
        assert_eq!(limit(KIND_STRING, b"9"), Ok(Some(9)));
        assert_eq!(
            limit(KIND_STRING, b"7 fortnights"),
            Err(ErrorCode::INVALID_FORMAT)
        );
        assert_eq!(limit(KIND_UINT64, &[1, 2]), Err(ErrorCode::INVALID_FORMAT));
    }
}
