//! The authentication gate and the routing of a request to its handler.
//!
//! Reply rules (`docs/wire-protocol.md` §1.3): the reply echoes the request's operation;
//! result-framed operations (metadata ops, consumer-offset writes, Register) get the
//! `[count = 0]` prefix before their payload; every error goes in the header's
//! `status` with an empty body; a failed login gets an eviction frame.

use std::sync::Arc;

use bytes::BytesMut;
use iggy_binary_protocol::codes::{
    ATTACH_CONSUMER_SESSION_CODE, CHANGE_PASSWORD_CODE, CREATE_CONSUMER_GROUP_CODE,
    CREATE_PARTITIONS_CODE, CREATE_PERSONAL_ACCESS_TOKEN_CODE, CREATE_STREAM_CODE,
    CREATE_TOPIC_CODE, CREATE_USER_CODE, DELETE_CONSUMER_GROUP_CODE, DELETE_CONSUMER_OFFSET_CODE,
    DELETE_PARTITIONS_CODE, DELETE_PERSONAL_ACCESS_TOKEN_CODE, DELETE_SEGMENTS_CODE,
    DELETE_STREAM_CODE, DELETE_TOPIC_CODE, DELETE_USER_CODE, DESCRIBE_OPTIONS_CODE,
    FLUSH_UNSAVED_BUFFER_CODE, GET_CLIENT_CODE, GET_CLIENTS_CODE, GET_CLUSTER_METADATA_CODE,
    GET_CONSUMER_GROUP_CODE, GET_CONSUMER_GROUPS_CODE, GET_CONSUMER_OFFSET_CODE,
    GET_CONSUMER_OFFSET_ROUTING_CODE, GET_ME_CODE, GET_PERSONAL_ACCESS_TOKENS_CODE,
    GET_POLL_ROUTING_CODE, GET_SNAPSHOT_FILE_CODE, GET_STATS_CODE, GET_STREAM_CODE,
    GET_STREAMS_CODE, GET_TOPIC_CODE, GET_TOPICS_CODE, GET_USER_CODE, GET_USERS_CODE,
    JOIN_CONSUMER_GROUP_CODE, LEAVE_CONSUMER_GROUP_CODE, LOGIN_USER_CODE,
    LOGIN_WITH_PERSONAL_ACCESS_TOKEN_CODE, PING_CODE, POLL_MESSAGES_CODE,
    POLL_MESSAGES_ON_PRIMARY_CODE, PURGE_STREAM_CODE, PURGE_TOPIC_CODE, SEND_MESSAGES_CODE,
    STORE_CONSUMER_OFFSET_CODE, SYNC_CONSUMER_GROUP_CODE, UPDATE_PERMISSIONS_CODE,
    UPDATE_STREAM_CODE, UPDATE_TOPIC_CODE, UPDATE_USER_CODE,
};
use iggy_binary_protocol::consensus::{Command, EvictionReason, Operation};
use iggy_binary_protocol::lookup_command;

use super::frame::{self, RESULT_SECTION_OK, RequestHead};
use super::reply::{Handled, Outcome, evict, seal_ok};
use super::session::Session;
use super::shared::Shared;
use super::{
    access, groups, messages, offsets, partitions, routing, snapshot, streams, system, topics,
    users,
};
use crate::embedded::broker::UserInfo;
use crate::error_codes::ErrorCode;

/// Serves one request.
pub(crate) async fn dispatch(
    shared: &Arc<Shared>,
    session: &mut Session,
    head: &RequestHead,
    body: &[u8],
) -> Outcome {
    let Some(operation) = head.operation() else {
        return Outcome::Reply(frame::error_reply(
            head,
            Operation::Reserved,
            ErrorCode::INVALID_COMMAND.0,
        ));
    };
    if head.command != Command::Request as u8 {
        return Outcome::Reply(frame::error_reply(
            head,
            operation,
            ErrorCode::INVALID_COMMAND.0,
        ));
    }
    match operation {
        Operation::Register => users::login(shared, session, head, body).await,
        Operation::Logout => {
            session.unbind();
            let mut out = frame::reply_buffer(0);
            seal_ok(shared, &mut out, head, operation);
            Outcome::Reply(out)
        }
        Operation::NonReplicated => {
            // A session whose user or credentials changed is logged out here, and
            // the request is answered as one without a session.
            let user = session.revalidate();
            let code = head.code;
            if user.is_none() && code != PING_CODE {
                if code == LOGIN_USER_CODE || code == LOGIN_WITH_PERSONAL_ACCESS_TOKEN_CODE {
                    return evict(head, EvictionReason::MalformedLogin);
                }
                return Outcome::Reply(frame::error_reply(
                    head,
                    operation,
                    ErrorCode::UNAUTHENTICATED.0,
                ));
            }
            match lookup_command(code) {
                Some(meta) if !meta.is_replicated() => {
                    run(shared, session, user.as_ref(), head, operation, code, body).await
                }
                _ => Outcome::Reply(frame::error_reply(
                    head,
                    operation,
                    ErrorCode::INVALID_COMMAND.0,
                )),
            }
        }
        op => {
            let code = match op.to_command_code() {
                Some(code) if op.is_client_allowed() => code,
                _ => {
                    return Outcome::Reply(frame::error_reply(
                        head,
                        op,
                        ErrorCode::INVALID_COMMAND.0,
                    ));
                }
            };
            let user = session.revalidate();
            let Some(login) = &session.login else {
                return evict(head, EvictionReason::NoSession);
            };
            if head.session != login.session {
                // A request from before the latest login on this connection.
                return Outcome::Reply(frame::error_reply(head, op, ErrorCode::UNAUTHENTICATED.0));
            }
            run(shared, session, user.as_ref(), head, op, code, body).await
        }
    }
}

/// Runs a command for `user` (`None` only for a ping before login): checks the
/// user's permissions, then runs its handler.
async fn run(
    shared: &Arc<Shared>,
    session: &mut Session,
    user: Option<&UserInfo>,
    head: &RequestHead,
    operation: Operation,
    code: u32,
    body: &[u8],
) -> Outcome {
    let mut out = frame::reply_buffer(256);
    if operation.is_result_framed() {
        out.extend_from_slice(&RESULT_SECTION_OK);
    }
    let result = match user.map(|user| access::authorize(shared, user, code, body)) {
        Some(Err(status)) => Err(status),
        _ => route(shared, session, code, body, &mut out).await,
    };
    match result {
        Ok(()) => {
            seal_ok(shared, &mut out, head, operation);
            Outcome::Reply(out)
        }
        Err(status) => {
            tracing::debug!(
                code,
                status = status.0,
                client = session.client_id,
                "request refused"
            );
            Outcome::Reply(frame::error_reply(head, operation, status.0))
        }
    }
}

async fn route(
    shared: &Arc<Shared>,
    session: &mut Session,
    code: u32,
    body: &[u8],
    out: &mut BytesMut,
) -> Handled {
    match code {
        PING_CODE => Ok(()),
        GET_STATS_CODE => system::stats(shared, out),
        GET_CLUSTER_METADATA_CODE => system::cluster_metadata(shared, out),
        DESCRIBE_OPTIONS_CODE => system::describe_options(body, out),
        GET_SNAPSHOT_FILE_CODE => snapshot::snapshot(shared, body, out).await,
        GET_ME_CODE => system::me(shared, session, out),
        GET_CLIENTS_CODE => system::clients(shared, out),
        GET_CLIENT_CODE => system::client(shared, body, out),

        GET_STREAM_CODE => streams::get(shared, body, out),
        GET_STREAMS_CODE => streams::list(shared, out),
        CREATE_STREAM_CODE => streams::create(shared, body, out),
        DELETE_STREAM_CODE => streams::delete(shared, body),
        PURGE_STREAM_CODE => streams::purge(shared, body),
        UPDATE_STREAM_CODE => streams::update(shared, body),

        GET_TOPIC_CODE => topics::get(shared, body, out),
        GET_TOPICS_CODE => topics::list(shared, body, out),
        CREATE_TOPIC_CODE => topics::create(shared, body, out),
        DELETE_TOPIC_CODE => topics::delete(shared, body),
        PURGE_TOPIC_CODE => topics::purge(shared, body),
        UPDATE_TOPIC_CODE => topics::update(shared, body),

        CREATE_PARTITIONS_CODE => partitions::create(shared, body),
        DELETE_PARTITIONS_CODE => partitions::delete(shared, body),
        DELETE_SEGMENTS_CODE => partitions::delete_segments(shared, body),
        FLUSH_UNSAVED_BUFFER_CODE => partitions::flush(shared, body).await,

        SEND_MESSAGES_CODE => messages::send(shared, body, out).await,
        // This node is the primary of every partition: a poll on it is a poll.
        POLL_MESSAGES_CODE | POLL_MESSAGES_ON_PRIMARY_CODE => {
            messages::poll(shared, session, body, out).await
        }
        GET_POLL_ROUTING_CODE => routing::poll_route(shared, session, body, out),
        GET_CONSUMER_OFFSET_ROUTING_CODE => routing::offset_route(shared, session, body, out),
        ATTACH_CONSUMER_SESSION_CODE => routing::attach(shared, session, body),

        GET_CONSUMER_OFFSET_CODE => offsets::get(shared, session, body, out),
        STORE_CONSUMER_OFFSET_CODE => offsets::store(shared, session, body).await,
        DELETE_CONSUMER_OFFSET_CODE => offsets::delete(shared, session, body),

        GET_CONSUMER_GROUP_CODE => groups::get(shared, body, out),
        GET_CONSUMER_GROUPS_CODE => groups::list(shared, body, out),
        CREATE_CONSUMER_GROUP_CODE => groups::create(shared, body, out),
        DELETE_CONSUMER_GROUP_CODE => groups::delete(shared, body),
        JOIN_CONSUMER_GROUP_CODE => groups::join(shared, session, body),
        LEAVE_CONSUMER_GROUP_CODE => groups::leave(shared, session, body),
        SYNC_CONSUMER_GROUP_CODE => groups::sync(shared, session, body, out),

        GET_USER_CODE => users::get(shared, body, out),
        GET_USERS_CODE => users::list(shared, out),
        CREATE_USER_CODE => users::create(shared, body, out).await,
        DELETE_USER_CODE => users::delete(shared, body),
        CHANGE_PASSWORD_CODE => users::change_password(shared, session, body).await,
        UPDATE_USER_CODE => users::update(shared, body),
        UPDATE_PERMISSIONS_CODE => users::update_permissions(shared, body),
        GET_PERSONAL_ACCESS_TOKENS_CODE => users::tokens(shared, session, out),
        CREATE_PERSONAL_ACCESS_TOKEN_CODE => users::create_token(shared, session, body, out).await,
        DELETE_PERSONAL_ACCESS_TOKEN_CODE => users::delete_token(shared, session, body),

        // Every command code of the protocol is routed above; a code the protocol
        // knows but this table does not would be refused here.
        _ => Err(ErrorCode::FEATURE_UNAVAILABLE),
    }
}
