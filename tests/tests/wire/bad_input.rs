//! Malformed input on the Iggy TCP listener: each bad connection gets an error
//! reply, an eviction or a clean close of that connection only, and the broker
//! keeps serving everyone else.

use bytes::BytesMut;
use iggy::prelude::*;
use iggy_binary_protocol::consensus::{EvictionReason, HEADER_SIZE, Operation};
use iggy_binary_protocol::requests::consumer_groups::JoinConsumerGroupRequest;
use iggy_binary_protocol::requests::messages::{RawMessage, SendMessagesEncoder};
use iggy_binary_protocol::{WireEncode, WireIdentifier, WirePartitioning};
use rustok_iggy_connector::error_codes::ErrorCode;
use tests::wire::raw::{RawClient, request_header};
use tests::wire::{WireBroker, within};
use tokio::io::AsyncWriteExt;

const PING: u32 = 1;
const GET_STREAMS: u32 = 201;
const GET_STREAM: u32 = 200;
const CREATE_STREAM: u32 = 202;
const SEND_MESSAGES: u32 = 101;
const INVALID_COMMAND: u32 = ErrorCode::INVALID_COMMAND.0;
const INVALID_FORMAT: u32 = ErrorCode::INVALID_FORMAT.0;
const UNAUTHENTICATED: u32 = ErrorCode::UNAUTHENTICATED.0;

/// After whatever happened, a normal SDK client still works.
async fn sdk_still_works(broker: &WireBroker) {
    let client = broker.client().await;
    within("ping", client.ping()).await.expect("ping");
    within("get_streams", client.get_streams())
        .await
        .expect("get_streams");
}

async fn logged_in(broker: &WireBroker) -> RawClient {
    let mut raw = RawClient::connect(broker.address).await;
    let reply = raw.login("iggy", "iggy").await;
    assert!(reply.is_reply() && reply.status() == 0, "{reply:?}");
    assert!(raw.session > 0, "the session number is > 0");
    assert_eq!(reply.operation(), Operation::Register as u8);
    raw
}

#[tokio::test]
async fn garbage_gets_an_error_and_a_close_and_others_keep_working() {
    let broker = WireBroker::start().await;
    let mut bystander = logged_in(&broker).await;

    let mut raw = RawClient::connect(broker.address).await;
    raw.write(&[0xAB; 1000]).await;
    let reply = raw.read().await.expect("an error reply before the close");
    assert!(reply.is_reply());
    assert_eq!(reply.status(), INVALID_FORMAT);
    assert_eq!(
        reply.size() as usize,
        HEADER_SIZE,
        "errors have an empty body"
    );
    raw.closed().await;

    let pong = bystander.call(Operation::NonReplicated, PING, &[]).await;
    assert_eq!(pong.status(), 0, "another connection is unaffected");
    sdk_still_works(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_huge_or_tiny_size_field_closes_the_connection() {
    let broker = WireBroker::start().await;
    for size in [u32::MAX, 64 * 1024 * 1024 + 1, 100, 0] {
        let mut raw = RawClient::connect(broker.address).await;
        raw.write(&request_header(
            size,
            7,
            0,
            Operation::NonReplicated as u8,
            0,
            PING,
        ))
        .await;
        let reply = raw.read().await.expect("an error reply");
        assert_eq!(reply.status(), INVALID_FORMAT, "size {size}");
        raw.closed().await;
    }
    sdk_still_works(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_truncated_frame_closes_only_that_connection() {
    let broker = WireBroker::start().await;
    // Half a header.
    let mut raw = RawClient::connect(broker.address).await;
    raw.write(&request_header(256, 7, 0, 2, 0, PING)[..100])
        .await;
    raw.stream.shutdown().await.expect("shutdown write");
    raw.closed().await;
    // A whole header announcing 1000 body bytes, then only 10.
    let mut raw = RawClient::connect(broker.address).await;
    raw.write(&request_header(256 + 1000, 7, 0, 2, 0, PING))
        .await;
    raw.write(&[1; 10]).await;
    raw.stream.shutdown().await.expect("shutdown write");
    raw.closed().await;
    sdk_still_works(&broker).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn unknown_codes_and_operations_are_invalid_commands() {
    let broker = WireBroker::start().await;
    let mut raw = logged_in(&broker).await;
    let reply = raw.call(Operation::NonReplicated, 9999, &[]).await;
    assert_eq!(
        (reply.status(), reply.operation()),
        (INVALID_COMMAND, Operation::NonReplicated as u8)
    );

    // An operation byte no Iggy version defines.
    let mut frame = request_header(256, raw.client, 1, 99, raw.session, 0).to_vec();
    frame.truncate(HEADER_SIZE);
    raw.write(&frame).await;
    assert_eq!(raw.read().await.expect("a reply").status(), INVALID_COMMAND);

    // A non-replicated read sent with a replicated code.
    let reply = raw.call(Operation::NonReplicated, CREATE_STREAM, &[]).await;
    assert_eq!(reply.status(), INVALID_COMMAND);

    // The connection is still usable.
    assert_eq!(
        raw.call(Operation::NonReplicated, PING, &[]).await.status(),
        0
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_and_invalid_utf8_get_error_replies() {
    let broker = WireBroker::start().await;
    let mut raw = logged_in(&broker).await;
    // GetStream with no identifier at all.
    let reply = raw.call(Operation::NonReplicated, GET_STREAM, &[]).await;
    assert_eq!(reply.status(), INVALID_FORMAT);
    // CreateStream whose name is not UTF-8: [len = 2][0xFF 0xFE].
    let reply = raw
        .call(Operation::CreateStream, CREATE_STREAM, &[2, 0xFF, 0xFE])
        .await;
    assert_eq!(reply.status(), INVALID_FORMAT);
    assert_eq!(reply.operation(), Operation::CreateStream as u8);
    assert_eq!(reply.size() as usize, HEADER_SIZE);
    // A name longer than its bytes.
    let reply = raw
        .call(Operation::CreateStream, CREATE_STREAM, &[200, b'a'])
        .await;
    assert_eq!(reply.status(), INVALID_FORMAT);
    // A control character is refused by the broker's naming rule.
    let reply = raw
        .call(Operation::CreateStream, CREATE_STREAM, &[2, b'a', 0x07])
        .await;
    assert_eq!(reply.status(), ErrorCode::INVALID_STREAM_NAME.0);
    // A valid one works, with a result section before the payload.
    let reply = raw
        .call(
            Operation::CreateStream,
            CREATE_STREAM,
            &[4, b's', b'h', b'o', b'p'],
        )
        .await;
    assert_eq!(reply.status(), 0);
    assert_eq!(&reply.body[..4], &[0, 0, 0, 0], "result section: count 0");
    assert!(
        reply.header_u64(184) > 0,
        "commit is stamped on replicated replies"
    );
    // Reads carry no result section: GetStreams is a bare StreamResponse list.
    let reply = raw.call(Operation::NonReplicated, GET_STREAMS, &[]).await;
    assert_eq!(reply.status(), 0);
    assert_eq!(&reply.body[..4], &0u32.to_le_bytes(), "stream id 0 first");
    // A missing stream is an empty OK body, not an error.
    let reply = raw
        .call(Operation::NonReplicated, GET_STREAM, &[1, 4, 9, 0, 0, 0])
        .await;
    assert_eq!((reply.status(), reply.body.len()), (0, 0));
    broker.shutdown().await;
}

fn send_body(messages: &[RawMessage<'_>]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    SendMessagesEncoder::encode(
        &mut buf,
        &WireIdentifier::named("shop").unwrap(),
        &WireIdentifier::named("orders").unwrap(),
        &WirePartitioning::PartitionId(0),
        messages,
    )
    .unwrap();
    buf.to_vec()
}

#[tokio::test]
async fn corrupt_batches_are_refused_with_checksum_errors() {
    let broker = WireBroker::start().await;
    let admin = broker.client().await;
    within("create_stream", admin.create_stream("shop"))
        .await
        .unwrap();
    let options = TopicCreateOptions {
        partitions_count: Some(1),
        ..TopicCreateOptions::default()
    };
    within(
        "create_topic",
        admin.create_topic(&Identifier::named("shop").unwrap(), "orders", &options),
    )
    .await
    .unwrap();
    let mut raw = logged_in(&broker).await;
    let message = RawMessage {
        id: 1,
        origin_timestamp: 1_000,
        headers: None,
        payload: b"hello",
    };
    let body = send_body(&[message]);
    let metadata_len = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
    let batch_start = 4 + metadata_len;

    // A flipped payload byte breaks the message checksum.
    let mut bad_payload = body.clone();
    *bad_payload.last_mut().unwrap() ^= 0xFF;
    let reply = raw
        .call(Operation::SendMessages, SEND_MESSAGES, &bad_payload)
        .await;
    assert_eq!(reply.status(), ErrorCode::INVALID_MESSAGE_CHECKSUM.0);
    // A flipped batch checksum byte breaks the batch checksum.
    let mut bad_batch = body.clone();
    bad_batch[batch_start + 40] ^= 0xFF;
    let reply = raw
        .call(Operation::SendMessages, SEND_MESSAGES, &bad_batch)
        .await;
    assert_eq!(reply.status(), ErrorCode::INVALID_BATCH_CHECKSUM.0);
    // A truncated batch.
    let reply = raw
        .call(
            Operation::SendMessages,
            SEND_MESSAGES,
            &body[..body.len() - 3],
        )
        .await;
    assert_eq!(reply.status(), INVALID_FORMAT);
    // A metadata length past the end.
    let mut bad_len = body.clone();
    bad_len[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let reply = raw
        .call(Operation::SendMessages, SEND_MESSAGES, &bad_len)
        .await;
    assert_eq!(reply.status(), INVALID_FORMAT);

    // Nothing was stored; the intact batch is, with a confirmation.
    let reply = raw
        .call(Operation::SendMessages, SEND_MESSAGES, &body)
        .await;
    assert_eq!(reply.status(), 0);
    assert_eq!(reply.operation(), Operation::SendMessages as u8);
    assert_eq!(
        &reply.body[..4],
        &1u32.to_le_bytes(),
        "one confirmation, no result section"
    );
    let base_offset = u64::from_le_bytes(reply.body[16..24].try_into().unwrap());
    assert_eq!(base_offset, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn before_login_only_ping_is_allowed() {
    let broker = WireBroker::start().await;
    let mut raw = RawClient::connect(broker.address).await;
    assert_eq!(
        raw.call(Operation::NonReplicated, PING, &[]).await.status(),
        0
    );
    let reply = raw.call(Operation::NonReplicated, GET_STREAMS, &[]).await;
    assert_eq!(reply.status(), UNAUTHENTICATED);
    let reply = raw
        .call(Operation::CreateStream, CREATE_STREAM, &[1, b'x'])
        .await;
    assert!(reply.is_eviction());
    assert_eq!(reply.eviction_reason(), EvictionReason::NoSession as u8);
    // Legacy login codes are malformed logins.
    let reply = raw.call(Operation::NonReplicated, 38, &[]).await;
    assert_eq!(
        reply.eviction_reason(),
        EvictionReason::MalformedLogin as u8
    );
    // Bad credentials: an eviction, and the connection may try again.
    let reply = raw.login("iggy", "wrong").await;
    assert!(reply.is_eviction());
    assert_eq!(
        reply.eviction_reason(),
        EvictionReason::InvalidCredentials as u8
    );
    let reply = raw.login("nobody", "wrong").await;
    assert_eq!(
        reply.eviction_reason(),
        EvictionReason::InvalidCredentials as u8
    );
    // A login body that does not decode.
    let reply = raw.call(Operation::Register, 40, &[1, 2, 3]).await;
    assert_eq!(
        reply.eviction_reason(),
        EvictionReason::MalformedLogin as u8
    );
    // A protocol version from the future.
    let mut future = RawClient::login_body("iggy", "iggy");
    future[..4].copy_from_slice(&(9u32 << 20).to_le_bytes());
    let reply = raw.call(Operation::Register, 40, &future).await;
    assert_eq!(
        reply.eviction_reason(),
        EvictionReason::IncompatibleProtocol as u8
    );
    let reply = raw.login("iggy", "iggy").await;
    assert_eq!(reply.status(), 0);
    assert_eq!(
        &reply.body[..4],
        &[0, 0, 0, 0],
        "Register replies have a result section"
    );
    assert_eq!(
        raw.call(Operation::NonReplicated, GET_STREAMS, &[])
            .await
            .status(),
        0
    );
    // Logout: empty body; afterwards reads are refused again.
    let reply = raw.call(Operation::Logout, 39, &[]).await;
    assert_eq!((reply.status(), reply.body.len()), (0, 0));
    assert_eq!(
        raw.call(Operation::NonReplicated, GET_STREAMS, &[])
            .await
            .status(),
        UNAUTHENTICATED
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_disconnect_releases_the_group_membership() {
    let broker = WireBroker::start().await;
    let admin = broker.client().await;
    let (stream, topic) = (
        Identifier::named("shop").unwrap(),
        Identifier::named("orders").unwrap(),
    );
    within("create_stream", admin.create_stream("shop"))
        .await
        .unwrap();
    let options = TopicCreateOptions {
        partitions_count: Some(2),
        ..TopicCreateOptions::default()
    };
    within(
        "create_topic",
        admin.create_topic(&stream, "orders", &options),
    )
    .await
    .unwrap();
    within(
        "create_consumer_group",
        admin.create_consumer_group(&stream, &topic, "workers"),
    )
    .await
    .unwrap();

    let mut raw = logged_in(&broker).await;
    let mut join = BytesMut::new();
    JoinConsumerGroupRequest {
        stream_id: WireIdentifier::named("shop").unwrap(),
        topic_id: WireIdentifier::named("orders").unwrap(),
        group_id: WireIdentifier::named("workers").unwrap(),
    }
    .encode(&mut join);
    let reply = raw.call(Operation::JoinConsumerGroup, 604, &join).await;
    assert_eq!(
        (reply.status(), reply.body.as_slice()),
        (0, &[0u8, 0, 0, 0][..])
    );
    async fn members(admin: &IggyClient) -> u32 {
        let name = |n: &str| Identifier::named(n).unwrap();
        within(
            "get_consumer_group",
            admin.get_consumer_group(&name("shop"), &name("orders"), &name("workers")),
        )
        .await
        .unwrap()
        .expect("the group exists")
        .members_count
    }
    assert_eq!(members(&admin).await, 1);

    raw.stream.shutdown().await.expect("shutdown write");
    // The server releases the membership before it closes its side.
    raw.closed().await;
    assert_eq!(members(&admin).await, 0);
    broker.shutdown().await;
}
