//! The cluster routing commands on the embedded broker, in raw frames (the `iggy`
//! 0.11.0 SDK sends them only to a cluster of more than one node): the one node
//! routes every partition to itself, a connection attached to a consumer session
//! polls and commits as that session's group member, and sessions that no
//! connection holds, or that belong to another user, are refused.

use std::str::FromStr;

use iggy::prelude::*;
use iggy_binary_protocol::codes::{
    ATTACH_CONSUMER_SESSION_CODE, GET_CONSUMER_OFFSET_ROUTING_CODE, GET_POLL_ROUTING_CODE,
    JOIN_CONSUMER_GROUP_CODE, POLL_MESSAGES_ON_PRIMARY_CODE,
};
use iggy_binary_protocol::consensus::Operation;
use iggy_binary_protocol::requests::consumer_groups::JoinConsumerGroupRequest;
use iggy_binary_protocol::requests::consumer_offsets::GetConsumerOffsetRequest;
use iggy_binary_protocol::requests::messages::PollMessagesRequest;
use iggy_binary_protocol::requests::system::AttachConsumerSessionRequest;
use iggy_binary_protocol::responses::messages::PollRoutingResponse;
use iggy_binary_protocol::{
    WireConsumer, WireDecode, WireEncode, WireIdentifier, WirePollingStrategy, lookup_command,
};
use rustok_iggy_connector::error_codes::ErrorCode;
use tests::wire::raw::{Frame, RawClient};
use tests::wire::{PASSWORD, USERNAME, WireBroker, user_client, within};

fn id(name: &str) -> Identifier {
    Identifier::named(name).expect("a valid identifier")
}

fn wire(name: &str) -> WireIdentifier {
    WireIdentifier::named(name).expect("a name")
}

/// A broker with `shop`/`orders` (2 partitions), group `workers`, and three
/// messages in partition 0.
async fn shop() -> (WireBroker, IggyClient) {
    let broker = WireBroker::start().await;
    let root = broker.client().await;
    within("create_stream", root.create_stream("shop"))
        .await
        .expect("stream");
    let options = TopicCreateOptions {
        partitions_count: Some(2),
        ..Default::default()
    };
    within(
        "create_topic",
        root.create_topic(&id("shop"), "orders", &options),
    )
    .await
    .expect("topic");
    within(
        "create_consumer_group",
        root.create_consumer_group(&id("shop"), &id("orders"), "workers"),
    )
    .await
    .expect("group");
    let mut messages: Vec<IggyMessage> = ["a", "b", "c"]
        .iter()
        .map(|p| IggyMessage::from_str(p).expect("a message"))
        .collect();
    within(
        "send",
        root.send_messages(
            &id("shop"),
            &id("orders"),
            &Partitioning::partition_id(0),
            &mut messages,
        ),
    )
    .await
    .expect("send");
    (broker, root)
}

/// Sends `code` with the operation the protocol gives it.
async fn call(client: &mut RawClient, code: u32, body: &[u8]) -> Frame {
    let operation = lookup_command(code)
        .and_then(|meta| meta.operation)
        .unwrap_or(Operation::NonReplicated);
    client.call(operation, code, body).await
}

/// A raw client logged in as `username`, with its own VSR client id.
async fn raw(broker: &WireBroker, vsr: u128, username: &str, password: &str) -> RawClient {
    let mut client = RawClient::connect(broker.address).await;
    client.client = vsr;
    let login = client.login(username, password).await;
    assert_eq!(login.status(), 0, "{username} logs in");
    client
}

fn group_poll(auto_commit: bool) -> Vec<u8> {
    PollMessagesRequest {
        consumer: WireConsumer::consumer_group(wire("workers")),
        stream_id: wire("shop"),
        topic_id: wire("orders"),
        partition_id: Some(0),
        strategy: WirePollingStrategy::offset(0),
        count: 10,
        auto_commit,
    }
    .to_bytes()
    .to_vec()
}

/// The message count of a poll reply.
fn polled(frame: &Frame) -> u32 {
    assert_eq!(frame.status(), 0, "the poll is served");
    u32::from_le_bytes(frame.body[12..16].try_into().expect("a poll reply"))
}

fn attach_body(to: &RawClient) -> Vec<u8> {
    AttachConsumerSessionRequest {
        client_id: to.client,
        session: to.session,
        metadata_watermark: 0,
    }
    .to_bytes()
    .to_vec()
}

#[tokio::test]
async fn the_only_node_routes_every_partition_to_itself() {
    let (broker, _root) = shop().await;
    let mut coordinator = raw(&broker, 7, USERNAME, PASSWORD).await;

    let poll = call(&mut coordinator, GET_POLL_ROUTING_CODE, &group_poll(true)).await;
    assert_eq!(poll.status(), 0);
    let (route, _) = PollRoutingResponse::decode(&poll.body).expect("a poll route");
    assert_eq!(route.consumer_session.client_id, 7);
    assert_eq!(route.consumer_session.session, coordinator.session);
    assert_eq!(route.primary.tcp_port, broker.address.port());
    assert_eq!(route.primary.ip, broker.address.ip().to_string());

    let offset_request = GetConsumerOffsetRequest {
        consumer: WireConsumer::consumer_group(wire("workers")),
        stream_id: wire("shop"),
        topic_id: wire("orders"),
        partition_id: Some(1),
    }
    .to_bytes();
    let offset = call(
        &mut coordinator,
        GET_CONSUMER_OFFSET_ROUTING_CODE,
        &offset_request,
    )
    .await;
    assert_eq!(offset.status(), 0);
    let (offset_route, _) = PollRoutingResponse::decode(&offset.body).expect("an offset route");
    assert_eq!(offset_route, route);

    // What does not exist has no route.
    let mut missing = PollMessagesRequest::decode(&group_poll(true))
        .expect("a poll")
        .0;
    missing.partition_id = Some(9);
    let frame = call(&mut coordinator, GET_POLL_ROUTING_CODE, &missing.to_bytes()).await;
    assert_eq!(ErrorCode(frame.status()), ErrorCode::PARTITION_NOT_FOUND);
    missing.topic_id = wire("nope");
    let frame = call(&mut coordinator, GET_POLL_ROUTING_CODE, &missing.to_bytes()).await;
    assert_eq!(ErrorCode(frame.status()), ErrorCode::TOPIC_NAME_NOT_FOUND);
    let frame = call(&mut coordinator, GET_CONSUMER_OFFSET_ROUTING_CODE, &[1, 2]).await;
    assert_eq!(ErrorCode(frame.status()), ErrorCode::INVALID_FORMAT);
    broker.shutdown().await;
}

#[tokio::test]
async fn an_attached_connection_polls_as_the_consumer_session_it_attached_to() {
    let (broker, root) = shop().await;
    let mut coordinator = raw(&broker, 7, USERNAME, PASSWORD).await;
    let join = JoinConsumerGroupRequest {
        stream_id: wire("shop"),
        topic_id: wire("orders"),
        group_id: wire("workers"),
    }
    .to_bytes();
    let joined = call(&mut coordinator, JOIN_CONSUMER_GROUP_CODE, &join).await;
    assert_eq!(joined.status(), 0, "the coordinator joins the group");

    // A connection that is no member may not poll as the group.
    let mut data = raw(&broker, 8, USERNAME, PASSWORD).await;
    let frame = call(&mut data, POLL_MESSAGES_ON_PRIMARY_CODE, &group_poll(true)).await;
    assert_eq!(
        ErrorCode(frame.status()),
        ErrorCode::CONSUMER_GROUP_MEMBER_NOT_FOUND
    );

    // Attached, it polls (with auto-commit) as the coordinator's member.
    let attached = call(
        &mut data,
        ATTACH_CONSUMER_SESSION_CODE,
        &attach_body(&coordinator),
    )
    .await;
    assert_eq!(attached.status(), 0);
    let frame = call(&mut data, POLL_MESSAGES_ON_PRIMARY_CODE, &group_poll(true)).await;
    assert_eq!(polled(&frame), 3);
    let stored = within(
        "get_consumer_offset",
        root.get_consumer_offset(
            &Consumer::group(id("workers")),
            &id("shop"),
            &id("orders"),
            Some(0),
        ),
    )
    .await
    .expect("get_consumer_offset")
    .expect("the auto-commit stored the group's offset");
    assert_eq!(stored.stored_offset, 2);

    // The member is gone with the coordinator's connection: so is the attachment's
    // right to poll as it.
    drop(coordinator);
    within("the coordinator to leave the group", async {
        loop {
            let frame = call(&mut data, POLL_MESSAGES_ON_PRIMARY_CODE, &group_poll(false)).await;
            if ErrorCode(frame.status()) == ErrorCode::CONSUMER_GROUP_MEMBER_NOT_FOUND {
                break;
            }
            assert_eq!(frame.status(), 0, "served until the member leaves");
            tokio::task::yield_now().await;
        }
    })
    .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn attaching_needs_a_live_session_of_the_same_user() {
    let (broker, root) = shop().await;
    let coordinator = raw(&broker, 7, USERNAME, PASSWORD).await;
    let mut data = raw(&broker, 8, USERNAME, PASSWORD).await;

    let mut unknown = RawClient::connect(broker.address).await;
    unknown.client = 7;
    unknown.session = coordinator.session + 1000;
    let frame = call(
        &mut data,
        ATTACH_CONSUMER_SESSION_CODE,
        &attach_body(&unknown),
    )
    .await;
    assert_eq!(ErrorCode(frame.status()), ErrorCode::TRANSIENT_NOT_ACCEPTED);

    let frame = call(&mut data, ATTACH_CONSUMER_SESSION_CODE, &[0; 31]).await;
    assert_eq!(ErrorCode(frame.status()), ErrorCode::INVALID_FORMAT);

    let mut reader = Permissions::default();
    reader.global.poll_messages = true;
    drop(user_client(&root, broker.address, "reader", "secret-1", Some(reader)).await);
    let mut other = raw(&broker, 9, "reader", "secret-1").await;
    let frame = call(
        &mut other,
        ATTACH_CONSUMER_SESSION_CODE,
        &attach_body(&coordinator),
    )
    .await;
    assert_eq!(ErrorCode(frame.status()), ErrorCode::UNAUTHORIZED);
    broker.shutdown().await;
}
