//! The consumer-session and routing commands of an Iggy cluster, answered as the
//! only node: this node is the primary of every partition.
//!
//! A clustered SDK asks the node it is logged in to where a partition's primary is
//! (`GetPollRouting`, `GetConsumerOffsetRouting`), connects there, attaches the
//! connection to its consumer session (`AttachConsumerSession`) and polls with
//! auto-commit there (`PollMessagesOnPrimary`) or writes offsets there. On one
//! node the route is this node, the attached connection acts as the consumer
//! session's group member, and a poll on the primary is a poll. The `iggy` 0.11.0
//! SDK sends none of these to a server whose cluster metadata lists one node.

use bytes::BytesMut;
use iggy_binary_protocol::WireEncode;
use iggy_binary_protocol::requests::consumer_offsets::GetConsumerOffsetRequest;
use iggy_binary_protocol::requests::messages::PollMessagesRequest;
use iggy_binary_protocol::requests::system::AttachConsumerSessionRequest;
use iggy_binary_protocol::responses::messages::PollRoutingResponse;

use super::lookup::{decode, resolve_topic};
use super::reply::Handled;
use super::session::Session;
use super::shared::Shared;
use super::system::this_node;
use crate::error_codes::ErrorCode;

/// The route of a poll: this node, for the caller's own consumer session.
pub(crate) fn poll_route(
    shared: &Shared,
    session: &Session,
    body: &[u8],
    out: &mut BytesMut,
) -> Handled {
    let request: PollMessagesRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    if let Some(partition) = request.partition_id {
        topic.partition(partition)?;
    }
    route(shared, session, out)
}

/// The route of an offset read or write: this node, for the caller's own
/// consumer session.
pub(crate) fn offset_route(
    shared: &Shared,
    session: &Session,
    body: &[u8],
    out: &mut BytesMut,
) -> Handled {
    let request: GetConsumerOffsetRequest = decode(body)?;
    let topic = resolve_topic(&shared.broker, &request.stream_id, &request.topic_id)?;
    if let Some(partition) = request.partition_id {
        topic.partition(partition)?;
    }
    route(shared, session, out)
}

fn route(shared: &Shared, session: &Session, out: &mut BytesMut) -> Handled {
    let login = session.login.as_ref().ok_or(ErrorCode::UNAUTHENTICATED)?;
    PollRoutingResponse {
        consumer_session: AttachConsumerSessionRequest {
            client_id: login.vsr_client,
            session: login.session,
            metadata_watermark: 0,
        },
        primary: this_node(shared),
    }
    .encode(out);
    Ok(())
}

/// Attaches this connection to a consumer session of the same user, held by a
/// live connection: from now on its group polls and commits act as that
/// session's member (until its next login or logout). A session no connection
/// holds (ended, or never given) is `TransientNotAccepted`, on which the SDK asks
/// for a route again; another user's session is `Unauthorized`.
pub(crate) fn attach(shared: &Shared, session: &mut Session, body: &[u8]) -> Handled {
    let request: AttachConsumerSessionRequest = decode(body)?;
    let user = session.user_id().ok_or(ErrorCode::UNAUTHENTICATED)?;
    let (owner, member_id) = shared
        .consumer_session(request.client_id, request.session)
        .ok_or(ErrorCode::TRANSIENT_NOT_ACCEPTED)?;
    if owner != user {
        return Err(ErrorCode::UNAUTHORIZED);
    }
    session.attach(member_id);
    Ok(())
}
