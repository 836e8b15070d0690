//! Consumer offsets (PROTOCOL.md §5): keyed by (consumer id, partition) for a plain
//! consumer and by (group id, partition) for a consumer group.

use bytes::BytesMut;
use iggy_binary_protocol::requests::consumer_offsets::DeleteConsumerOffsetRequest;
use iggy_binary_protocol::requests::consumer_offsets::GetConsumerOffsetRequest;
use iggy_binary_protocol::requests::consumer_offsets::StoreConsumerOffsetRequest;
use iggy_binary_protocol::responses::consumer_offsets::ConsumerOffsetResponse;
use iggy_binary_protocol::{
    KIND_CONSUMER, KIND_CONSUMER_GROUP, WireConsumer, WireEncode, WireIdentifier,
};
use twox_hash::XxHash32;

use super::dispatch::Handled;
use super::error::Status;
use super::session::Session;
use super::{Shared, decode, group_not_found, group_ref, resolve_topic};
use crate::embedded::broker::{ConsumerKey, Topic};

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
    ) -> Result<Self, Status> {
        Self::resolve_with(topic, consumer, partition, session, Access::Owner)
    }

    pub(crate) fn resolve_with(
        topic: &Topic,
        consumer: &WireConsumer,
        partition: Option<u32>,
        session: &Session,
        access: Access,
    ) -> Result<Self, Status> {
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
                let partition = partition.ok_or(Status::INVALID_IDENTIFIER)?;
                if group.assignment(session.member_id).is_none() {
                    return Err(Status::GROUP_MEMBER_NOT_FOUND);
                }
                if !group.owns(session.member_id, partition) {
                    return Ok(Self::Fenced);
                }
                Ok(Self::Member {
                    group_id: group.id,
                    partition,
                })
            }
            _ => Err(Status::INVALID_FORMAT),
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

fn target(caller: &Caller) -> Option<(ConsumerKey, u32)> {
    match *caller {
        Caller::Consumer { id, partition } => Some((ConsumerKey::Consumer(id), partition)),
        Caller::Member {
            group_id,
            partition,
        } => Some((ConsumerKey::Group(group_id), partition)),
        Caller::Fenced => None,
    }
}

/// No stored offset (or no such stream, topic or group) is an empty body.
pub(crate) fn get(shared: &Shared, session: &Session, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetConsumerOffsetRequest = decode(body)?;
    let Some(topic) = shared.broker.find_topic(
        super::ident(&request.stream_id),
        super::ident(&request.topic_id),
    ) else {
        return Ok(());
    };
    let caller = match Caller::resolve_with(
        &topic,
        &request.consumer,
        request.partition_id,
        session,
        Access::Any,
    ) {
        Ok(caller) => caller,
        Err(status)
            if status == Status::GROUP_ID_NOT_FOUND || status == Status::GROUP_NAME_NOT_FOUND =>
        {
            return Ok(());
        }
        Err(status) => return Err(status),
    };
    let Some((key, partition_id)) = target(&caller) else {
        return Ok(());
    };
    let partition = topic.partition(partition_id)?;
    if let Some(stored) = partition.stored_offset(key) {
        ConsumerOffsetResponse {
            partition_id,
            current_offset: partition.next_offset().saturating_sub(1),
            stored_offset: stored,
        }
        .encode(out);
    }
    Ok(())
}

pub(crate) async fn store(shared: &Shared, session: &Session, body: &[u8]) -> Handled {
    let request: StoreConsumerOffsetRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let caller = Caller::resolve(&topic, &request.consumer, request.partition_id, session)?;
    let (key, partition_id) = target(&caller).ok_or(Status::GROUP_PARTITION_NOT_OWNED)?;
    topic
        .partition(partition_id)?
        .store_offset(key, request.offset)
        .await?;
    Ok(())
}

pub(crate) fn delete(shared: &Shared, session: &Session, body: &[u8]) -> Handled {
    let request: DeleteConsumerOffsetRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let caller = Caller::resolve_with(
        &topic,
        &request.consumer,
        request.partition_id,
        session,
        Access::Any,
    )?;
    let (key, partition_id) = target(&caller).ok_or(Status::GROUP_PARTITION_NOT_OWNED)?;
    if topic.partition(partition_id)?.delete_offset(key)? {
        Ok(())
    } else {
        Err(Status::CONSUMER_OFFSET_NOT_FOUND)
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
