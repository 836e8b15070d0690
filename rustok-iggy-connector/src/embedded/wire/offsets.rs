//! Consumer offsets (`docs/wire-protocol.md` §5): keyed by (consumer id, partition) for a plain
//! consumer and by (group id, partition) for a consumer group.

use bytes::BytesMut;
use iggy_binary_protocol::WireEncode;
use iggy_binary_protocol::requests::consumer_offsets::DeleteConsumerOffsetRequest;
use iggy_binary_protocol::requests::consumer_offsets::GetConsumerOffsetRequest;
use iggy_binary_protocol::requests::consumer_offsets::StoreConsumerOffsetRequest;
use iggy_binary_protocol::responses::consumer_offsets::ConsumerOffsetResponse;

use super::lookup::{Access, Caller, decode, ident, resolve_topic, target};
use super::reply::Handled;
use super::session::Session;
use super::shared::Shared;
use crate::error_codes::ErrorCode;

/// No stored offset (or no such stream, topic or group) is an empty body.
pub(crate) fn get(shared: &Shared, session: &Session, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetConsumerOffsetRequest = decode(body)?;
    let Some(topic) = shared
        .broker
        .find_topic(ident(&request.stream_id), ident(&request.topic_id))
    else {
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
            if status == ErrorCode::CONSUMER_GROUP_ID_NOT_FOUND
                || status == ErrorCode::CONSUMER_GROUP_NAME_NOT_FOUND =>
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
    let (key, partition_id) =
        target(&caller).ok_or(ErrorCode::CONSUMER_GROUP_PARTITION_NOT_OWNED)?;
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
    let (key, partition_id) =
        target(&caller).ok_or(ErrorCode::CONSUMER_GROUP_PARTITION_NOT_OWNED)?;
    if topic.partition(partition_id)?.delete_offset(key)? {
        Ok(())
    } else {
        Err(ErrorCode::CONSUMER_OFFSET_NOT_FOUND)
    }
}
