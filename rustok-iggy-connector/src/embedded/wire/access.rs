//! Who may run a command: the permission rules of the user a session acts as,
//! applied to the stream and topic the request names, before the command runs
//! (`docs/wire-protocol.md`, "Permissions").
//!
//! As on the Iggy server:
//! - the root user may do everything;
//! - a request that does not decode, or names a stream or topic that does not
//!   exist, is let through to its handler, which answers with the decoding or
//!   not-found error (not found comes before permission);
//! - a refusal is `Unauthorized`, and the command has no effect.

use iggy_binary_protocol::WireDecode;
use iggy_binary_protocol::WireIdentifier;
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
    JOIN_CONSUMER_GROUP_CODE, LEAVE_CONSUMER_GROUP_CODE, PING_CODE, POLL_MESSAGES_CODE,
    POLL_MESSAGES_ON_PRIMARY_CODE, PURGE_STREAM_CODE, PURGE_TOPIC_CODE, SEND_MESSAGES_CODE,
    STORE_CONSUMER_OFFSET_CODE, SYNC_CONSUMER_GROUP_CODE, UPDATE_PERMISSIONS_CODE,
    UPDATE_STREAM_CODE, UPDATE_TOPIC_CODE, UPDATE_USER_CODE,
};
use iggy_binary_protocol::requests::consumer_groups::{
    CreateConsumerGroupRequest, DeleteConsumerGroupRequest, GetConsumerGroupRequest,
    GetConsumerGroupsRequest, JoinConsumerGroupRequest, LeaveConsumerGroupRequest,
};
use iggy_binary_protocol::requests::consumer_offsets::{
    DeleteConsumerOffsetRequest, GetConsumerOffsetRequest, StoreConsumerOffsetRequest,
};
use iggy_binary_protocol::requests::messages::{FlushUnsavedBufferRequest, PollMessagesRequest};
use iggy_binary_protocol::requests::partitions::{
    CreatePartitionsRequest, DeletePartitionsRequest,
};
use iggy_binary_protocol::requests::segments::DeleteSegmentsRequest;
use iggy_binary_protocol::requests::streams::{
    DeleteStreamRequest, GetStreamRequest, PurgeStreamRequest, UpdateStreamRequest,
};
use iggy_binary_protocol::requests::topics::{
    CreateTopicRequest, DeleteTopicRequest, GetTopicRequest, GetTopicsRequest, PurgeTopicRequest,
    UpdateTopicRequest,
};
use iggy_binary_protocol::requests::users::{ChangePasswordRequest, GetUserRequest};

use super::lookup::{ident, send_metadata};
use super::shared::Shared;
use crate::embedded::broker::{Permissions, ROOT_USER_ID, UserInfo, UserRef, rules};
use crate::error_codes::ErrorCode;

/// Whether `user` may run command `code` with this `body`.
pub(crate) fn authorize(
    shared: &Shared,
    user: &UserInfo,
    code: u32,
    body: &[u8],
) -> Result<(), ErrorCode> {
    if user.id == ROOT_USER_ID {
        return Ok(());
    }
    let p = rules(user.permissions.as_ref());
    let gate = Gate { shared, body, p };
    let allowed = match code {
        // Open to every session: liveness, the session itself, its own tokens,
        // the node roster, the option catalog, the caller's own group assignment
        // and the attachment of its own user's consumer session.
        PING_CODE
        | GET_ME_CODE
        | GET_PERSONAL_ACCESS_TOKENS_CODE
        | CREATE_PERSONAL_ACCESS_TOKEN_CODE
        | DELETE_PERSONAL_ACCESS_TOKEN_CODE
        | GET_CLUSTER_METADATA_CODE
        | DESCRIBE_OPTIONS_CODE
        | SYNC_CONSUMER_GROUP_CODE
        | ATTACH_CONSUMER_SESSION_CODE => true,

        GET_STATS_CODE | GET_CLIENTS_CODE | GET_CLIENT_CODE | GET_SNAPSHOT_FILE_CODE => {
            p.read_servers().is_ok()
        }

        GET_USERS_CODE => p.read_users().is_ok(),
        // A user may read itself.
        GET_USER_CODE => {
            gate.unless_self::<GetUserRequest>(user, |r| &r.user_id, Permissions::read_users)
        }
        CREATE_USER_CODE | DELETE_USER_CODE | UPDATE_USER_CODE | UPDATE_PERMISSIONS_CODE => {
            p.manage_users().is_ok()
        }
        // A user may change its own password.
        CHANGE_PASSWORD_CODE => gate.unless_self::<ChangePasswordRequest>(
            user,
            |r| &r.user_id,
            Permissions::manage_users,
        ),

        GET_STREAMS_CODE => p.get_streams().is_ok(),
        CREATE_STREAM_CODE => p.create_stream().is_ok(),
        GET_STREAM_CODE => {
            gate.stream::<GetStreamRequest>(|r| &r.stream_id, Permissions::get_stream)
        }
        UPDATE_STREAM_CODE => {
            gate.stream::<UpdateStreamRequest>(|r| &r.stream_id, Permissions::manage_stream)
        }
        DELETE_STREAM_CODE => {
            gate.stream::<DeleteStreamRequest>(|r| &r.stream_id, Permissions::manage_stream)
        }
        PURGE_STREAM_CODE => {
            gate.stream::<PurgeStreamRequest>(|r| &r.stream_id, Permissions::manage_stream)
        }

        GET_TOPICS_CODE => {
            gate.stream::<GetTopicsRequest>(|r| &r.stream_id, Permissions::get_topics)
        }
        CREATE_TOPIC_CODE => {
            gate.stream::<CreateTopicRequest>(|r| &r.stream_id, Permissions::create_topic)
        }
        GET_TOPIC_CODE => {
            gate.topic::<GetTopicRequest>(|r| (&r.stream_id, &r.topic_id), Permissions::get_topic)
        }
        UPDATE_TOPIC_CODE => gate.topic::<UpdateTopicRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::manage_topic,
        ),
        DELETE_TOPIC_CODE => gate.topic::<DeleteTopicRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::manage_topic,
        ),
        PURGE_TOPIC_CODE => gate
            .topic::<PurgeTopicRequest>(|r| (&r.stream_id, &r.topic_id), Permissions::manage_topic),
        CREATE_PARTITIONS_CODE => gate.topic::<CreatePartitionsRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::manage_topic,
        ),
        DELETE_PARTITIONS_CODE => gate.topic::<DeletePartitionsRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::manage_topic,
        ),
        DELETE_SEGMENTS_CODE => gate.topic::<DeleteSegmentsRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::manage_topic,
        ),

        // Consumer groups: the right to read the topic.
        GET_CONSUMER_GROUP_CODE => gate.topic::<GetConsumerGroupRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::get_topic,
        ),
        GET_CONSUMER_GROUPS_CODE => gate.topic::<GetConsumerGroupsRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::get_topic,
        ),
        CREATE_CONSUMER_GROUP_CODE => gate.topic::<CreateConsumerGroupRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::get_topic,
        ),
        DELETE_CONSUMER_GROUP_CODE => gate.topic::<DeleteConsumerGroupRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::get_topic,
        ),
        JOIN_CONSUMER_GROUP_CODE => gate.topic::<JoinConsumerGroupRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::get_topic,
        ),
        LEAVE_CONSUMER_GROUP_CODE => gate.topic::<LeaveConsumerGroupRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::get_topic,
        ),

        // Messages and consumer offsets.
        SEND_MESSAGES_CODE => match send_metadata(body) {
            Ok(header) => gate.scoped_topic(
                &header.stream_id,
                &header.topic_id,
                Permissions::send_messages,
            ),
            Err(_) => true,
        },
        // Flushing what one may send (the Iggy server's rule when it flushed).
        FLUSH_UNSAVED_BUFFER_CODE => gate.topic::<FlushUnsavedBufferRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::send_messages,
        ),
        POLL_MESSAGES_CODE | POLL_MESSAGES_ON_PRIMARY_CODE | GET_POLL_ROUTING_CODE => {
            gate.topic::<PollMessagesRequest>(
                |r| (&r.stream_id, &r.topic_id),
                Permissions::poll_messages,
            )
        }
        GET_CONSUMER_OFFSET_CODE | GET_CONSUMER_OFFSET_ROUTING_CODE => gate
            .topic::<GetConsumerOffsetRequest>(
                |r| (&r.stream_id, &r.topic_id),
                Permissions::poll_messages,
            ),
        STORE_CONSUMER_OFFSET_CODE => gate.topic::<StoreConsumerOffsetRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::poll_messages,
        ),
        DELETE_CONSUMER_OFFSET_CODE => gate.topic::<DeleteConsumerOffsetRequest>(
            |r| (&r.stream_id, &r.topic_id),
            Permissions::poll_messages,
        ),

        // Unknown codes: the handler answers `InvalidCommand`.
        _ => true,
    };
    if allowed {
        Ok(())
    } else {
        tracing::debug!(
            code,
            user_id = user.id,
            "request refused: missing permission"
        );
        Err(ErrorCode::UNAUTHORIZED)
    }
}

type Rule = fn(&Permissions) -> crate::embedded::broker::Access;
type StreamRule = fn(&Permissions, u32) -> crate::embedded::broker::Access;
type TopicRule = fn(&Permissions, u32, u32) -> crate::embedded::broker::Access;

/// A request being authorized.
struct Gate<'a> {
    shared: &'a Shared,
    body: &'a [u8],
    p: &'a Permissions,
}

impl Gate<'_> {
    fn decoded<T: WireDecode>(&self) -> Option<T> {
        T::decode(self.body).ok().map(|(value, _)| value)
    }

    /// A stream-scoped rule; an undecodable request or a missing stream passes.
    fn stream<T: WireDecode>(&self, ids: fn(&T) -> &WireIdentifier, rule: StreamRule) -> bool {
        let Some(request) = self.decoded::<T>() else {
            return true;
        };
        match self.shared.broker.stream(ident(ids(&request))) {
            Some(stream) => rule(self.p, stream.id).is_ok(),
            None => true,
        }
    }

    /// A topic-scoped rule; an undecodable request or a missing stream or topic
    /// passes.
    fn topic<T: WireDecode>(
        &self,
        ids: fn(&T) -> (&WireIdentifier, &WireIdentifier),
        rule: TopicRule,
    ) -> bool {
        let Some(request) = self.decoded::<T>() else {
            return true;
        };
        let (stream, topic) = ids(&request);
        self.scoped_topic(stream, topic, rule)
    }

    fn scoped_topic(
        &self,
        stream: &WireIdentifier,
        topic: &WireIdentifier,
        rule: TopicRule,
    ) -> bool {
        match self.shared.broker.find_topic(ident(stream), ident(topic)) {
            Some(topic) => rule(self.p, topic.stream_id, topic.id).is_ok(),
            None => true,
        }
    }

    /// `rule`, unless the request names the caller itself (or no existing user).
    fn unless_self<T: WireDecode>(
        &self,
        caller: &UserInfo,
        target: fn(&T) -> &WireIdentifier,
        rule: Rule,
    ) -> bool {
        let Some(request) = self.decoded::<T>() else {
            return true;
        };
        let target = match target(&request) {
            WireIdentifier::Numeric(n) => UserRef::Id(*n),
            WireIdentifier::String(name) => UserRef::Name(name.as_str()),
        };
        match self.shared.users.user(target) {
            Some(target) if target.id != caller.id => rule(self.p).is_ok(),
            _ => true,
        }
    }
}
