//! What a request names, resolved against the broker: identifiers, streams, topics,
//! groups, and the consumer of a poll or a commit.

use std::sync::Arc;

use iggy_binary_protocol::requests::messages::SendMessagesHeader;
use iggy_binary_protocol::{KIND_CONSUMER, KIND_CONSUMER_GROUP, WireConsumer, WireIdentifier};
use twox_hash::XxHash32;

use super::session::Session;
use crate::embedded::broker::{Broker, ConsumerKey, GroupRef, Ident, Topic};
use crate::error_codes::ErrorCode;

/// A wire identifier as a broker identifier.
pub(crate) fn ident(id: &WireIdentifier) -> Ident<'_> {
    match id {
        WireIdentifier::Numeric(n) => Ident::Id(*n),
        WireIdentifier::String(name) => Ident::Name(name.as_str()),
    }
}

/// A wire identifier as a group reference.
pub(crate) fn group_ref(id: &WireIdentifier) -> GroupRef<'_> {
    match id {
        WireIdentifier::Numeric(n) => GroupRef::Id(*n),
        WireIdentifier::String(name) => GroupRef::Name(name.as_str()),
    }
}

/// Resolves a stream and topic, with the not-found code that matches how each
/// was named (by id or by name).
pub(crate) fn resolve_topic(
    broker: &Broker,
    stream: &WireIdentifier,
    topic: &WireIdentifier,
) -> Result<Arc<Topic>, ErrorCode> {
    let stream_ident = ident(stream);
    if broker.stream(stream_ident).is_none() {
        return Err(stream_not_found(stream));
    }
    broker
        .find_topic(stream_ident, ident(topic))
        .ok_or_else(|| topic_not_found(topic))
}

pub(crate) fn stream_not_found(stream: &WireIdentifier) -> ErrorCode {
    match stream {
        WireIdentifier::Numeric(_) => ErrorCode::STREAM_ID_NOT_FOUND,
        WireIdentifier::String(_) => ErrorCode::STREAM_NAME_NOT_FOUND,
    }
}

pub(crate) fn topic_not_found(topic: &WireIdentifier) -> ErrorCode {
    match topic {
        WireIdentifier::Numeric(_) => ErrorCode::TOPIC_ID_NOT_FOUND,
        WireIdentifier::String(_) => ErrorCode::TOPIC_NAME_NOT_FOUND,
    }
}

pub(crate) fn group_not_found(group: &WireIdentifier) -> ErrorCode {
    match group {
        WireIdentifier::Numeric(_) => ErrorCode::CONSUMER_GROUP_ID_NOT_FOUND,
        WireIdentifier::String(_) => ErrorCode::CONSUMER_GROUP_NAME_NOT_FOUND,
    }
}

/// The id of a group of `topic`.
pub(crate) fn group_id(topic: &Topic, group: &WireIdentifier) -> Result<u32, ErrorCode> {
    topic
        .groups()
        .find(group_ref(group))
        .map(|g| g.id)
        .ok_or_else(|| group_not_found(group))
}

/// Decodes a request body with the official decoder.
pub(crate) fn decode<T: iggy_binary_protocol::WireDecode>(body: &[u8]) -> Result<T, ErrorCode> {
    T::decode(body)
        .map(|(value, _)| value)
        .map_err(ErrorCode::from)
}

/// A `SendMessages` body split into its metadata header and the batch record:
/// `[metadata_len u32][SendMessagesHeader][record]`.
pub(crate) fn send_parts(body: &[u8]) -> Result<(SendMessagesHeader, &[u8]), ErrorCode> {
    let metadata_len = body
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or(ErrorCode::INVALID_FORMAT)? as usize;
    let metadata_end = metadata_len
        .checked_add(4)
        .ok_or(ErrorCode::INVALID_FORMAT)?;
    let metadata = body.get(4..metadata_end).ok_or(ErrorCode::INVALID_FORMAT)?;
    let record = body.get(metadata_end..).ok_or(ErrorCode::INVALID_FORMAT)?;
    Ok((decode(metadata)?, record))
}

/// The metadata header of a `SendMessages` body.
pub(crate) fn send_metadata(body: &[u8]) -> Result<SendMessagesHeader, ErrorCode> {
    send_parts(body).map(|(header, _)| header)
}

/// Who reads or commits, resolved against the topic's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A plain consumer.
    Consumer { id: u32, partition: u32 },
    /// A consumer group, on a partition the caller may use.
    Member { group_id: u32, partition: u32 },
    /// A member of the group asking for a partition it does not own (the group
    /// was rebalanced since it last synced).
    Fenced,
}

/// How strictly group membership is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Polls and commits: the caller must be a member owning the partition.
    Owner,
    /// Reading or deleting a group's offset: any logged-in client.
    Any,
}

/// The numeric id of a plain consumer: its number, or xxHash32 of its name (what
/// the Iggy server does).
fn consumer_id(id: &WireIdentifier) -> u32 {
    match id {
        WireIdentifier::Numeric(n) => *n,
        WireIdentifier::String(name) => XxHash32::oneshot(0, name.as_str().as_bytes()),
    }
}

impl Caller {
    /// Resolves the consumer of a poll or a commit (ownership is checked).
    pub(crate) fn resolve(
        topic: &Topic,
        consumer: &WireConsumer,
        partition: Option<u32>,
        session: &Session,
    ) -> Result<Self, ErrorCode> {
        Self::resolve_with(topic, consumer, partition, session, Access::Owner)
    }

    pub(crate) fn resolve_with(
        topic: &Topic,
        consumer: &WireConsumer,
        partition: Option<u32>,
        session: &Session,
        access: Access,
    ) -> Result<Self, ErrorCode> {
        match consumer.kind {
            KIND_CONSUMER => Ok(Self::Consumer {
                id: consumer_id(&consumer.id),
                partition: partition.unwrap_or(0),
            }),
            KIND_CONSUMER_GROUP => {
                let groups = topic.groups();
                let group = groups
                    .find(group_ref(&consumer.id))
                    .ok_or_else(|| group_not_found(&consumer.id))?;
                if access == Access::Any {
                    return Ok(Self::Member {
                        group_id: group.id,
                        partition: partition.unwrap_or(0),
                    });
                }
                let partition = partition.ok_or(ErrorCode::INVALID_IDENTIFIER)?;
                if group.assignment(session.group_member()).is_none() {
                    return Err(ErrorCode::CONSUMER_GROUP_MEMBER_NOT_FOUND);
                }
                if !group.owns(session.group_member(), partition) {
                    return Ok(Self::Fenced);
                }
                Ok(Self::Member {
                    group_id: group.id,
                    partition,
                })
            }
            _ => Err(ErrorCode::INVALID_FORMAT),
        }
    }
}

/// The key offsets are stored under.
pub(crate) fn consumer_key(caller: &Caller) -> Option<ConsumerKey> {
    match *caller {
        Caller::Consumer { id, .. } => Some(ConsumerKey::Consumer(id)),
        Caller::Member { group_id, .. } => Some(ConsumerKey::Group(group_id)),
        Caller::Fenced => None,
    }
}

pub(crate) fn target(caller: &Caller) -> Option<(ConsumerKey, u32)> {
    match *caller {
        Caller::Consumer { id, partition } => Some((ConsumerKey::Consumer(id), partition)),
        Caller::Member {
            group_id,
            partition,
        } => Some((ConsumerKey::Group(group_id), partition)),
        Caller::Fenced => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_consumers_get_the_iggy_hash() {
        assert_eq!(consumer_id(&WireIdentifier::numeric(7)), 7);
        let named = WireIdentifier::named("cli").unwrap();
        assert_eq!(consumer_id(&named), XxHash32::oneshot(0, b"cli"));
    }
}
