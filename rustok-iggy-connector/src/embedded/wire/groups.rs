//! Consumer groups (`docs/wire-protocol.md` §5). A member is a connection; the broker assigns
//! partitions round-robin and bumps the generation on every join and leave.

use bytes::BytesMut;
use iggy_binary_protocol::requests::consumer_groups::CreateConsumerGroupRequest;
use iggy_binary_protocol::requests::consumer_groups::DeleteConsumerGroupRequest;
use iggy_binary_protocol::requests::consumer_groups::GetConsumerGroupRequest;
use iggy_binary_protocol::requests::consumer_groups::GetConsumerGroupsRequest;
use iggy_binary_protocol::requests::consumer_groups::JoinConsumerGroupRequest;
use iggy_binary_protocol::requests::consumer_groups::LeaveConsumerGroupRequest;
use iggy_binary_protocol::requests::consumer_groups::SyncConsumerGroupRequest;
use iggy_binary_protocol::responses::consumer_groups::ConsumerGroupResponse;
use iggy_binary_protocol::responses::consumer_groups::SyncConsumerGroupResponse;
use iggy_binary_protocol::responses::consumer_groups::{
    ConsumerGroupDetailsResponse, ConsumerGroupMemberResponse,
};
use iggy_binary_protocol::{WireEncode, WireName};

use super::lookup::{decode, group_id, group_ref, ident, resolve_topic};
use super::reply::Handled;
use super::session::Session;
use super::shared::Shared;
use crate::embedded::broker::{Group, Topic};
use crate::error_codes::ErrorCode;
use crate::names::GroupName;

fn summary(topic: &Topic, group: &Group) -> Result<ConsumerGroupResponse, ErrorCode> {
    Ok(ConsumerGroupResponse {
        id: group.id,
        partitions_count: topic.partitions_count(),
        members_count: u32::try_from(group.member_count()).unwrap_or(u32::MAX),
        name: WireName::new(group.name.as_str()).map_err(|_| ErrorCode::ERROR)?,
    })
}

fn details(topic: &Topic, group: &Group) -> Result<ConsumerGroupDetailsResponse, ErrorCode> {
    Ok(ConsumerGroupDetailsResponse {
        group: summary(topic, group)?,
        members: group
            .members()
            .map(|(id, partitions)| ConsumerGroupMemberResponse {
                id: u32::try_from(id).unwrap_or(u32::MAX),
                partitions_count: u32::try_from(partitions.len()).unwrap_or(u32::MAX),
                partitions: partitions.to_vec(),
            })
            .collect(),
    })
}

/// A missing stream, topic or group is an empty body (the SDK reads it as `None`).
pub(crate) fn get(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetConsumerGroupRequest = decode(body)?;
    let Some(topic) = shared
        .broker
        .find_topic(ident(&request.stream_id), ident(&request.topic_id))
    else {
        return Ok(());
    };
    let groups = topic.groups();
    if let Some(group) = groups.find(group_ref(&request.group_id)) {
        details(&topic, group)?.encode(out);
    }
    Ok(())
}

pub(crate) fn list(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetConsumerGroupsRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let groups = topic.groups();
    for group in groups.by_id.values() {
        summary(&topic, group)?.encode(out);
    }
    Ok(())
}

pub(crate) fn create(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: CreateConsumerGroupRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let name = GroupName::new(request.name.as_str())
        .map_err(|_| ErrorCode::INVALID_CONSUMER_GROUP_NAME)?;
    let id = shared.broker.create_group(&topic, name)?;
    let groups = topic.groups();
    let group = groups
        .find(crate::embedded::broker::GroupRef::Id(id))
        .ok_or(ErrorCode::CONSUMER_GROUP_ID_NOT_FOUND)?;
    details(&topic, group)?.encode(out);
    Ok(())
}

pub(crate) fn delete(shared: &Shared, body: &[u8]) -> Handled {
    let request: DeleteConsumerGroupRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let id = group_id(&topic, &request.group_id)?;
    shared
        .broker
        .delete_group(&topic, crate::embedded::broker::GroupRef::Id(id))?;
    Ok(())
}

pub(crate) fn join(shared: &Shared, session: &mut Session, body: &[u8]) -> Handled {
    let request: JoinConsumerGroupRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let id = group_id(&topic, &request.group_id)?;
    shared.broker.join_group(
        &topic,
        crate::embedded::broker::GroupRef::Id(id),
        session.member_id,
    )?;
    session.joined(topic, id);
    Ok(())
}

pub(crate) fn leave(shared: &Shared, session: &mut Session, body: &[u8]) -> Handled {
    let request: LeaveConsumerGroupRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    let id = group_id(&topic, &request.group_id)?;
    let was_member = shared.broker.leave_group(
        &topic,
        crate::embedded::broker::GroupRef::Id(id),
        session.member_id,
    )?;
    session.left(&topic, id);
    if was_member {
        Ok(())
    } else {
        Err(ErrorCode::CONSUMER_GROUP_MEMBER_NOT_FOUND)
    }
}

/// The caller's assignment; an empty body when it is not a member (the SDK then
/// rejoins). A member without partitions gets an empty list, not an empty body.
pub(crate) fn sync(shared: &Shared, session: &Session, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: SyncConsumerGroupRequest = decode(body)?;
    let Some(topic) = shared
        .broker
        .find_topic(ident(&request.stream_id), ident(&request.topic_id))
    else {
        return Ok(());
    };
    let groups = topic.groups();
    if let Some(assignment) = groups
        .find(group_ref(&request.group_id))
        .and_then(|g| g.assignment(session.member_id))
    {
        SyncConsumerGroupResponse {
            generation: assignment.generation,
            partitions: assignment.partitions,
        }
        .encode(out);
    }
    Ok(())
}
