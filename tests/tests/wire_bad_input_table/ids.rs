//! Ids that do not exist, and maximal offsets and counts: in sends, polls, offsets,
//! groups, streams, topics, users and clients.

use iggy::prelude::TopicClient;
use iggy_binary_protocol::consensus::{HEADER_SIZE, Operation};
use iggy_binary_protocol::requests::consumer_groups::{
    DeleteConsumerGroupRequest, GetConsumerGroupRequest, JoinConsumerGroupRequest,
    LeaveConsumerGroupRequest,
};
use iggy_binary_protocol::requests::consumer_offsets::{
    DeleteConsumerOffsetRequest, GetConsumerOffsetRequest, StoreConsumerOffsetRequest,
};
use iggy_binary_protocol::requests::messages::PollMessagesRequest;
use iggy_binary_protocol::requests::streams::{
    DeleteStreamRequest, GetStreamRequest, PurgeStreamRequest,
};
use iggy_binary_protocol::requests::system::GetClientRequest;
use iggy_binary_protocol::requests::topics::{
    CreateTopicRequest, DeleteTopicRequest, GetTopicRequest, GetTopicsRequest, PurgeTopicRequest,
};
use iggy_binary_protocol::requests::users::{DeleteUserRequest, GetUserRequest};
use iggy_binary_protocol::{
    AckLevel, WireEncode, WireIdentifier, WireName, WireOptions, WirePollingStrategy,
};
use tests::wire::table::*;
use tests::wire::within;

/// Streams, topics, partitions, groups, users and clients that do not exist, by
/// number (including `u32::MAX`) and by name; partition `u32::MAX` in send and
/// poll; offsets and counts at their maximum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_ids() {
    let mut bench = Bench::start().await;
    let mut raw = bench.attacker().await;
    let nr = Operation::NonReplicated;
    let n = WireIdentifier::numeric;
    let payload = vec![b"lost".to_vec()];
    let mut cases: Vec<(String, Operation, u32, Vec<u8>, u32)> = Vec::new();
    for missing in [9_999u32, u32::MAX] {
        let m = n(missing);
        cases.extend([
            // Sends: missing stream, topic, partition.
            (
                format!("send to stream {missing}"),
                Operation::SendMessages,
                101,
                send_body_to(m.clone(), wid("orders"), 0, &payload),
                STREAM_ID_NOT_FOUND,
            ),
            (
                format!("send to topic {missing}"),
                Operation::SendMessages,
                101,
                send_body_to(wid("shop"), m.clone(), 0, &payload),
                TOPIC_ID_NOT_FOUND,
            ),
            (
                format!("send to partition {missing}"),
                Operation::SendMessages,
                101,
                send_body("shop", "orders", missing, &payload),
                PARTITION_NOT_FOUND,
            ),
            // Polls: missing stream, topic, partition, group.
            (
                format!("poll stream {missing}"),
                nr,
                POLL_MESSAGES,
                poll_body_to(consumer(1), m.clone(), wid("orders"), Some(0), 0, 10),
                STREAM_ID_NOT_FOUND,
            ),
            (
                format!("poll topic {missing}"),
                nr,
                POLL_MESSAGES,
                poll_body_to(consumer(1), wid("shop"), m.clone(), Some(0), 0, 10),
                TOPIC_ID_NOT_FOUND,
            ),
            (
                format!("poll partition {missing}"),
                nr,
                POLL_MESSAGES,
                poll_body(consumer(1), "shop", "orders", Some(missing), 0, 10),
                PARTITION_NOT_FOUND,
            ),
            (
                format!("poll group {missing}"),
                nr,
                POLL_MESSAGES,
                poll_body(group_consumer(m.clone()), "shop", "orders", Some(0), 0, 10),
                GROUP_ID_NOT_FOUND,
            ),
            // Offsets.
            (
                format!("store offset on partition {missing}"),
                Operation::StoreConsumerOffset,
                121,
                StoreConsumerOffsetRequest {
                    consumer: consumer(1),
                    stream_id: wid("shop"),
                    topic_id: wid("orders"),
                    partition_id: Some(missing),
                    offset: 1,
                    ack: AckLevel::Quorum,
                }
                .to_bytes()
                .to_vec(),
                PARTITION_NOT_FOUND,
            ),
            (
                format!("get offset on partition {missing}"),
                nr,
                120,
                GetConsumerOffsetRequest {
                    consumer: consumer(1),
                    stream_id: wid("shop"),
                    topic_id: wid("orders"),
                    partition_id: Some(missing),
                }
                .to_bytes()
                .to_vec(),
                PARTITION_NOT_FOUND,
            ),
            (
                format!("delete offset on partition {missing}"),
                Operation::DeleteConsumerOffset,
                122,
                DeleteConsumerOffsetRequest {
                    consumer: consumer(1),
                    stream_id: wid("shop"),
                    topic_id: wid("orders"),
                    partition_id: Some(missing),
                    ack: AckLevel::Quorum,
                }
                .to_bytes()
                .to_vec(),
                PARTITION_NOT_FOUND,
            ),
            // Groups.
            (
                format!("join group {missing}"),
                Operation::JoinConsumerGroup,
                604,
                JoinConsumerGroupRequest {
                    stream_id: wid("shop"),
                    topic_id: wid("orders"),
                    group_id: m.clone(),
                }
                .to_bytes()
                .to_vec(),
                GROUP_ID_NOT_FOUND,
            ),
            (
                format!("join group in stream {missing}"),
                Operation::JoinConsumerGroup,
                604,
                JoinConsumerGroupRequest {
                    stream_id: m.clone(),
                    topic_id: wid("orders"),
                    group_id: wid("workers"),
                }
                .to_bytes()
                .to_vec(),
                STREAM_ID_NOT_FOUND,
            ),
            (
                format!("delete group {missing}"),
                Operation::DeleteConsumerGroup,
                603,
                DeleteConsumerGroupRequest {
                    stream_id: wid("shop"),
                    topic_id: wid("orders"),
                    group_id: m.clone(),
                }
                .to_bytes()
                .to_vec(),
                GROUP_ID_NOT_FOUND,
            ),
            // Streams, topics, users.
            (
                format!("delete stream {missing}"),
                Operation::DeleteStream,
                203,
                DeleteStreamRequest {
                    stream_id: m.clone(),
                }
                .to_bytes()
                .to_vec(),
                STREAM_ID_NOT_FOUND,
            ),
            (
                format!("purge stream {missing}"),
                Operation::PurgeStream,
                205,
                PurgeStreamRequest {
                    stream_id: m.clone(),
                }
                .to_bytes()
                .to_vec(),
                STREAM_ID_NOT_FOUND,
            ),
            (
                format!("delete topic {missing}"),
                Operation::DeleteTopic,
                303,
                DeleteTopicRequest {
                    stream_id: wid("shop"),
                    topic_id: m.clone(),
                }
                .to_bytes()
                .to_vec(),
                TOPIC_ID_NOT_FOUND,
            ),
            (
                format!("purge topic {missing}"),
                Operation::PurgeTopic,
                305,
                PurgeTopicRequest {
                    stream_id: wid("shop"),
                    topic_id: m.clone(),
                }
                .to_bytes()
                .to_vec(),
                TOPIC_ID_NOT_FOUND,
            ),
            (
                format!("create topic in stream {missing}"),
                Operation::CreateTopic,
                302,
                CreateTopicRequest {
                    stream_id: m.clone(),
                    partitions_count: 1,
                    name: WireName::new("t").unwrap(),
                    options: WireOptions::empty(),
                }
                .to_bytes()
                .to_vec(),
                STREAM_ID_NOT_FOUND,
            ),
            (
                format!("topics of stream {missing}"),
                nr,
                301,
                GetTopicsRequest {
                    stream_id: m.clone(),
                }
                .to_bytes()
                .to_vec(),
                STREAM_ID_NOT_FOUND,
            ),
            (
                format!("delete user {missing}"),
                Operation::DeleteUser,
                34,
                DeleteUserRequest { user_id: m.clone() }.to_bytes().to_vec(),
                RESOURCE_NOT_FOUND,
            ),
        ]);
    }
    cases.extend([
        (
            "send to partition = partitions count".to_owned(),
            Operation::SendMessages,
            101,
            send_body("shop", "orders", PARTITIONS, &payload),
            PARTITION_NOT_FOUND,
        ),
        (
            "poll partition = partitions count".to_owned(),
            nr,
            POLL_MESSAGES,
            poll_body(consumer(1), "shop", "orders", Some(PARTITIONS), 0, 10),
            PARTITION_NOT_FOUND,
        ),
        (
            "send to stream by a missing name".to_owned(),
            Operation::SendMessages,
            101,
            send_body("nope", "orders", 0, &payload),
            STREAM_NAME_NOT_FOUND,
        ),
        (
            "create a topic of u32::MAX partitions".to_owned(),
            Operation::CreateTopic,
            302,
            CreateTopicRequest {
                stream_id: wid("shop"),
                partitions_count: u32::MAX,
                name: WireName::new("huge").unwrap(),
                options: WireOptions::empty(),
            }
            .to_bytes()
            .to_vec(),
            TOO_MANY_PARTITIONS,
        ),
        (
            "poll a group this connection is not a member of".to_owned(),
            nr,
            POLL_MESSAGES,
            poll_body(
                group_consumer(wid("workers")),
                "shop",
                "orders",
                Some(0),
                0,
                10,
            ),
            GROUP_MEMBER_NOT_FOUND,
        ),
        (
            "leave a group this connection is not a member of".to_owned(),
            Operation::LeaveConsumerGroup,
            605,
            LeaveConsumerGroupRequest {
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                group_id: wid("workers"),
            }
            .to_bytes()
            .to_vec(),
            GROUP_MEMBER_NOT_FOUND,
        ),
        (
            "delete an offset never stored".to_owned(),
            Operation::DeleteConsumerOffset,
            122,
            DeleteConsumerOffsetRequest {
                consumer: consumer(424_242),
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                partition_id: Some(0),
                ack: AckLevel::Quorum,
            }
            .to_bytes()
            .to_vec(),
            CONSUMER_OFFSET_NOT_FOUND,
        ),
    ]);
    for (what, operation, code, body, expected) in &cases {
        let reply = answered(&mut raw, *operation, *code, body).await;
        assert_eq!(reply.status(), *expected, "{what}: {reply:?}");
        assert_eq!(reply.size() as usize, HEADER_SIZE, "{what}");
    }
    bench.tried(cases.len());
    // Reads of missing things are empty OK bodies (the SDK reads them as None).
    let mut empty_reads = 0;
    for missing in [9_999u32, u32::MAX] {
        let m = n(missing);
        for (what, code, body) in [
            (
                "stream",
                200,
                GetStreamRequest {
                    stream_id: m.clone(),
                }
                .to_bytes(),
            ),
            (
                "topic",
                300,
                GetTopicRequest {
                    stream_id: wid("shop"),
                    topic_id: m.clone(),
                }
                .to_bytes(),
            ),
            (
                "group",
                600,
                GetConsumerGroupRequest {
                    stream_id: wid("shop"),
                    topic_id: wid("orders"),
                    group_id: m.clone(),
                }
                .to_bytes(),
            ),
            ("user", 31, GetUserRequest { user_id: m.clone() }.to_bytes()),
            (
                "client",
                21,
                GetClientRequest { client_id: missing }.to_bytes(),
            ),
        ] {
            let reply = answered(&mut raw, nr, code, &body).await;
            assert_eq!(
                (reply.status(), reply.body.len()),
                (OK, 0),
                "get {what} {missing}"
            );
            empty_reads += 1;
        }
    }
    bench.tried(empty_reads);
    // Offsets and counts at their maximum: empty polls, not overflows.
    for (offset, count) in [(u64::MAX, 10), (u64::MAX, u32::MAX), (0, u32::MAX)] {
        let reply = answered(
            &mut raw,
            nr,
            POLL_MESSAGES,
            &poll_body(consumer(1), "shop", "orders", Some(0), offset, count),
        )
        .await;
        assert_eq!(reply.status(), OK, "poll from {offset} x {count}");
        let expected = if offset == 0 { SEEDED } else { 0 };
        assert_eq!(poll_count(&reply), expected, "poll from {offset} x {count}");
        bench.tried(1);
    }
    // A stored offset of u64::MAX: readable, and a `next` poll after it is empty.
    let store = StoreConsumerOffsetRequest {
        consumer: consumer(77),
        stream_id: wid("shop"),
        topic_id: wid("orders"),
        partition_id: Some(1),
        offset: u64::MAX,
        ack: AckLevel::Quorum,
    };
    let reply = answered(
        &mut raw,
        Operation::StoreConsumerOffset,
        121,
        &store.to_bytes(),
    )
    .await;
    assert_eq!(reply.status(), OK);
    let next = PollMessagesRequest {
        consumer: consumer(77),
        stream_id: wid("shop"),
        topic_id: wid("orders"),
        partition_id: Some(1),
        strategy: WirePollingStrategy::next(),
        count: 10,
        auto_commit: true,
    };
    let reply = answered(&mut raw, nr, POLL_MESSAGES, &next.to_bytes()).await;
    assert_eq!(
        (reply.status(), poll_count(&reply)),
        (OK, 0),
        "next after u64::MAX"
    );
    bench.tried(2);
    // A group member asking for partition u32::MAX is told to resync (the SDK's
    // sentinel), and keeps its membership.
    let mut member = bench.attacker().await;
    let join = JoinConsumerGroupRequest {
        stream_id: wid("shop"),
        topic_id: wid("orders"),
        group_id: wid("workers"),
    };
    let reply = answered(
        &mut member,
        Operation::JoinConsumerGroup,
        604,
        &join.to_bytes(),
    )
    .await;
    assert_eq!(reply.status(), OK);
    let reply = answered(
        &mut member,
        nr,
        POLL_MESSAGES,
        &poll_body(
            group_consumer(wid("workers")),
            "shop",
            "orders",
            Some(u32::MAX),
            0,
            10,
        ),
    )
    .await;
    assert_eq!(
        (reply.status(), poll_partition(&reply), poll_count(&reply)),
        (OK, u32::MAX, 0),
        "a member polling partition u32::MAX"
    );
    let reply = answered(
        &mut member,
        Operation::StoreConsumerOffset,
        121,
        &StoreConsumerOffsetRequest {
            consumer: group_consumer(wid("workers")),
            stream_id: wid("shop"),
            topic_id: wid("orders"),
            partition_id: Some(u32::MAX),
            offset: 0,
            ack: AckLevel::Quorum,
        }
        .to_bytes(),
    )
    .await;
    assert_ne!(
        reply.status(),
        OK,
        "a member committing on partition u32::MAX"
    );
    bench.tried(2);
    // Nothing of the above was stored.
    let admin = bench.broker.client().await;
    let topic = within(
        "get_topic",
        admin.get_topic(&named("shop"), &named("orders")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(topic.messages_count, u64::from(SEEDED * PARTITIONS));
    assert_eq!(topic.partitions_count, PARTITIONS);
    let topics = within("get_topics", admin.get_topics(&named("shop")))
        .await
        .unwrap();
    assert_eq!(topics.len(), 1, "no topic was created");
    bench.check("out-of-range ids").await;
    bench.shutdown().await;
}
