//! What a handler returns, and the reply pieces more than one handler builds.
//!
//! Reply rules (`docs/wire-protocol.md` §1.3): the reply echoes the request's operation;
//! result-framed operations (metadata ops, consumer-offset writes, Register) get the
//! `[count = 0]` prefix before their payload; every error goes in the header's
//! `status` with an empty body; a failed login gets an eviction frame.

use bytes::BytesMut;
use iggy_binary_protocol::consensus::{EvictionReason, HEADER_SIZE, Operation};
use iggy_binary_protocol::responses::streams::TopicHeader;
use iggy_binary_protocol::{WireName, WireOptions};

use super::frame::{self, Eviction, ReplyMeta, RequestHead};
use super::shared::Shared;
use crate::embedded::broker::Topic;
use crate::error_codes::ErrorCode;

/// What to send back.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A reply frame.
    Reply(BytesMut),
    /// An eviction frame (the connection stays open).
    Evict(Box<[u8; HEADER_SIZE]>),
    /// No answer: close the connection.
    Close,
}

/// What a handler returns: the payload was appended to the buffer, or an error code.
pub(crate) type Handled = Result<(), ErrorCode>;

pub(crate) fn evict(head: &RequestHead, reason: EvictionReason) -> Outcome {
    Outcome::Evict(Box::new(frame::eviction(
        head.client,
        Eviction::Reason(reason),
    )))
}

/// Seals a successful reply whose body is already in `out`.
pub(crate) fn seal_ok(
    shared: &Shared,
    out: &mut BytesMut,
    head: &RequestHead,
    operation: Operation,
) {
    let commit = if operation == Operation::NonReplicated {
        0
    } else {
        shared.next_commit()
    };
    frame::seal_reply(
        out,
        head,
        ReplyMeta {
            operation,
            status: 0,
            commit,
        },
    );
}

/// The name the listener reports for itself.
pub(crate) const SERVER_NAME: &str = "rustok-iggy";

/// The version string the listener reports.
pub(crate) fn server_version() -> String {
    format!("{SERVER_NAME} {}", env!("CARGO_PKG_VERSION"))
}

/// `CompressionAlgorithm::None`: the broker stores payloads as sent. (0 would make
/// the SDK fail.)
const COMPRESSION_NONE: u8 = 1;

/// The summary of a topic, as stream and topic replies carry it.
pub(crate) fn topic_header(topic: &Topic) -> Result<TopicHeader, ErrorCode> {
    let (size, messages, _) = topic.totals();
    let retention = topic.retention();
    Ok(TopicHeader {
        id: topic.id,
        created_at: topic.created_at,
        partitions_count: topic.partitions_count(),
        // 0 reads as "never expires" in the SDK.
        message_expiry: retention
            .max_age
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        compression_algorithm: COMPRESSION_NONE,
        // u64::MAX reads as "unlimited".
        max_topic_size: retention.max_size_bytes.unwrap_or(u64::MAX),
        size_bytes: size,
        messages_count: messages,
        name: WireName::new(topic.name().as_str()).map_err(|_| ErrorCode::ERROR)?,
        options: WireOptions::empty(),
        derived_options: WireOptions::empty(),
    })
}
