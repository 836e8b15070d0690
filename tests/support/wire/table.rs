//! The bench of the bad-input table of the Iggy TCP listener (the
//! `wire_bad_input_table` test binary): a seeded broker with a logged-in
//! bystander, the check every case ends with, valid request bodies of every
//! command (whose prefixes and variants the cases send), and the process's
//! resident memory.
//!
//! Benches run one at a time ([`Bench::start`] holds a lock until the bench is
//! dropped): some cases measure the resident memory of the process, which other
//! cases' buffers would disturb.

use std::time::{Duration, Instant};

use crate::wire::raw::{Frame, RawClient};
use crate::wire::{PASSWORD, USERNAME, WireBroker, within};
use bytes::BytesMut;
use iggy::prelude::{Client, Identifier, StreamClient, SystemClient, TopicClient};
use iggy_binary_protocol::consensus::Operation;
use iggy_binary_protocol::requests::consumer_groups::{
    CreateConsumerGroupRequest, DeleteConsumerGroupRequest, GetConsumerGroupRequest,
    JoinConsumerGroupRequest, LeaveConsumerGroupRequest, SyncConsumerGroupRequest,
};
use iggy_binary_protocol::requests::consumer_offsets::{
    DeleteConsumerOffsetRequest, GetConsumerOffsetRequest, StoreConsumerOffsetRequest,
};
use iggy_binary_protocol::requests::messages::{
    FlushUnsavedBufferRequest, PollMessagesRequest, RawMessage, SendMessagesEncoder,
};
use iggy_binary_protocol::requests::partitions::{
    CreatePartitionsRequest, DeletePartitionsRequest,
};
use iggy_binary_protocol::requests::personal_access_tokens::CreatePersonalAccessTokenRequest;
use iggy_binary_protocol::requests::segments::DeleteSegmentsRequest;
use iggy_binary_protocol::requests::streams::{
    CreateStreamRequest, DeleteStreamRequest, GetStreamRequest, PurgeStreamRequest,
    UpdateStreamRequest,
};
use iggy_binary_protocol::requests::system::{
    AttachConsumerSessionRequest, DescribeOptionsRequest, GetClientRequest, GetSnapshotRequest,
    OPTIONS_SCOPE_TOPIC,
};
use iggy_binary_protocol::requests::topics::{
    CreateTopicRequest, DeleteTopicRequest, GetTopicRequest, GetTopicsRequest, PurgeTopicRequest,
    UpdateTopicRequest,
};
use iggy_binary_protocol::requests::users::{
    CreateUserRequest, DeleteUserRequest, GetUserRequest, UpdatePermissionsRequest,
    UpdateUserRequest,
};
use iggy_binary_protocol::{
    AckLevel, ClientVersionInfo, IGGY_PROTOCOL_VERSION, WireConsumer, WireEncode,
    WireGlobalPermissions, WireIdentifier, WireName, WireOptions, WirePartitioning,
    WirePermissions, WirePollingStrategy,
};
use rustok_iggy_connector::error_codes::ErrorCode;

/// How long the bystander may wait for any answer, whatever the attacker does.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The listener's frame limit (header and body), as the Iggy server has it.
pub const MAX_FRAME: u32 = 64 * 1024 * 1024;
/// Messages seeded in each partition of `shop/orders`.
pub const SEEDED: u32 = 10;
pub const PARTITIONS: u32 = 2;

pub const PING: u32 = 1;
pub const GET_STREAMS: u32 = 201;
pub const POLL_MESSAGES: u32 = 100;
pub const LOGIN_USER: u32 = 38;
pub const LOGIN_WITH_PAT: u32 = 44;

pub const OK: u32 = 0;
pub const INVALID_COMMAND: u32 = ErrorCode::INVALID_COMMAND.0;
pub const INVALID_FORMAT: u32 = ErrorCode::INVALID_FORMAT.0;
pub const UNAUTHENTICATED: u32 = ErrorCode::UNAUTHENTICATED.0;
pub const RESOURCE_NOT_FOUND: u32 = ErrorCode::RESOURCE_NOT_FOUND.0;
pub const STREAM_ID_NOT_FOUND: u32 = ErrorCode::STREAM_ID_NOT_FOUND.0;
pub const STREAM_NAME_NOT_FOUND: u32 = ErrorCode::STREAM_NAME_NOT_FOUND.0;
pub const TOPIC_ID_NOT_FOUND: u32 = ErrorCode::TOPIC_ID_NOT_FOUND.0;
pub const TOO_MANY_PARTITIONS: u32 = ErrorCode::TOO_MANY_PARTITIONS.0;
pub const PARTITION_NOT_FOUND: u32 = ErrorCode::PARTITION_NOT_FOUND.0;
pub const CONSUMER_OFFSET_NOT_FOUND: u32 = ErrorCode::CONSUMER_OFFSET_NOT_FOUND.0;
pub const GROUP_ID_NOT_FOUND: u32 = ErrorCode::CONSUMER_GROUP_ID_NOT_FOUND.0;
pub const GROUP_MEMBER_NOT_FOUND: u32 = ErrorCode::CONSUMER_GROUP_MEMBER_NOT_FOUND.0;

/// One test at a time (see the module documentation).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- the bench ----------------------------------------------------------------------

/// A broker with `shop/orders` (2 partitions × [`SEEDED`] messages) and group
/// `workers`, a logged-in bystander, and a count of bad inputs tried.
pub struct Bench {
    pub broker: WireBroker,
    pub bystander: RawClient,
    tried: usize,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Bench {
    pub async fn start() -> Self {
        let serial = SERIAL.lock().await;
        let broker = WireBroker::start().await;
        let admin = broker.client().await;
        within("create_stream", admin.create_stream("shop"))
            .await
            .expect("stream");
        let options = iggy::prelude::TopicCreateOptions {
            partitions_count: Some(PARTITIONS),
            ..Default::default()
        };
        within(
            "create_topic",
            admin.create_topic(&named("shop"), "orders", &options),
        )
        .await
        .expect("topic");
        let mut seeder = logged_in(&broker).await;
        for partition in 0..PARTITIONS {
            let payloads: Vec<Vec<u8>> = (0..SEEDED)
                .map(|n| format!("order {partition}/{n}").into_bytes())
                .collect();
            let body = send_body("shop", "orders", partition, &payloads);
            let reply = seeder.call(Operation::SendMessages, 101, &body).await;
            assert_eq!(reply.status(), OK, "seed partition {partition}");
        }
        let group = CreateConsumerGroupRequest {
            stream_id: wid("shop"),
            topic_id: wid("orders"),
            name: WireName::new("workers").unwrap(),
        };
        let reply = seeder
            .call(Operation::CreateConsumerGroup, 602, &group.to_bytes())
            .await;
        assert_eq!(reply.status(), OK, "create the group");
        let bystander = logged_in(&broker).await;
        Self {
            broker,
            bystander,
            tried: 0,
            _serial: serial,
        }
    }

    pub async fn attacker(&self) -> RawClient {
        logged_in(&self.broker).await
    }

    pub async fn anonymous(&self) -> RawClient {
        RawClient::connect(self.broker.address).await
    }

    pub fn tried(&mut self, n: usize) {
        self.tried += n;
    }

    /// The broker is up, the bystander is answered within [`ANSWER_TIMEOUT`], the
    /// seeded data is intact, and a fresh SDK client can log in and read.
    pub async fn check(&mut self, case: &str) {
        let started = Instant::now();
        let pong = answered(&mut self.bystander, Operation::NonReplicated, PING, &[]).await;
        assert_eq!(pong.status(), OK, "{case}: the bystander's ping");
        for partition in 0..PARTITIONS {
            let reply = answered(
                &mut self.bystander,
                Operation::NonReplicated,
                POLL_MESSAGES,
                &poll_body(consumer(7), "shop", "orders", Some(partition), 0, 100),
            )
            .await;
            assert_eq!(reply.status(), OK, "{case}: the bystander's poll");
            assert_eq!(
                poll_count(&reply),
                SEEDED,
                "{case}: partition {partition} still holds the seeded messages"
            );
        }
        let bystander_latency = started.elapsed();
        let sdk = tokio::time::timeout(ANSWER_TIMEOUT, async {
            let client = self.broker.client().await;
            client.ping().await.expect("ping");
            let streams = client.get_streams().await.expect("get_streams");
            client.shutdown().await.expect("shutdown");
            streams
        })
        .await
        .unwrap_or_else(|_| {
            panic!("{case}: a new SDK client is not served within {ANSWER_TIMEOUT:?}")
        });
        assert!(
            sdk.iter().any(|s| s.name == "shop"),
            "{case}: the stream list still decodes in the SDK and holds shop"
        );
        eprintln!(
            "[{case}] bad inputs tried: {}; bystander answered in {bystander_latency:?}",
            self.tried
        );
    }

    pub async fn shutdown(self) {
        self.broker.shutdown().await;
    }
}

pub async fn logged_in(broker: &WireBroker) -> RawClient {
    let mut raw = RawClient::connect(broker.address).await;
    let reply = raw.login(USERNAME, PASSWORD).await;
    assert!(reply.is_reply() && reply.status() == OK, "{reply:?}");
    raw
}

/// A request and its answer within [`ANSWER_TIMEOUT`].
pub async fn answered(raw: &mut RawClient, operation: Operation, code: u32, body: &[u8]) -> Frame {
    tokio::time::timeout(ANSWER_TIMEOUT, raw.call(operation, code, body))
        .await
        .unwrap_or_else(|_| panic!("no answer within {ANSWER_TIMEOUT:?} (code {code})"))
}

/// The next frame within [`ANSWER_TIMEOUT`]; `None` when the server closed.
pub async fn next_frame(raw: &mut RawClient) -> Option<Frame> {
    tokio::time::timeout(ANSWER_TIMEOUT, raw.read())
        .await
        .unwrap_or_else(|_| panic!("no frame within {ANSWER_TIMEOUT:?}"))
}

/// The connection still answers a ping.
pub async fn still_usable(raw: &mut RawClient, what: &str) {
    let pong = answered(raw, Operation::NonReplicated, PING, &[]).await;
    assert_eq!(pong.status(), OK, "{what}: the connection is still usable");
}

// ---- request bodies -----------------------------------------------------------------

pub fn named(name: &str) -> Identifier {
    Identifier::named(name).unwrap()
}

pub fn wid(name: &str) -> WireIdentifier {
    WireIdentifier::named(name).unwrap()
}

pub fn consumer(id: u32) -> WireConsumer {
    WireConsumer::consumer(WireIdentifier::numeric(id))
}

pub fn group_consumer(group: WireIdentifier) -> WireConsumer {
    WireConsumer::consumer_group(group)
}

pub fn send_body(stream: &str, topic: &str, partition: u32, payloads: &[Vec<u8>]) -> Vec<u8> {
    send_body_to(wid(stream), wid(topic), partition, payloads)
}

pub fn send_body_to(
    stream: WireIdentifier,
    topic: WireIdentifier,
    partition: u32,
    payloads: &[Vec<u8>],
) -> Vec<u8> {
    send_body_with_ids(stream, topic, partition, 1, payloads)
}

/// A `SendMessages` body whose messages have the ids `first_id..`: batches that must
/// all be stored need ids of their own (the broker drops a repeated id as a duplicate).
pub fn send_body_with_ids(
    stream: WireIdentifier,
    topic: WireIdentifier,
    partition: u32,
    first_id: u128,
    payloads: &[Vec<u8>],
) -> Vec<u8> {
    let messages: Vec<RawMessage<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| RawMessage {
            id: first_id + i as u128,
            origin_timestamp: 1_000 + i as u64,
            headers: None,
            payload,
        })
        .collect();
    let mut buf = BytesMut::new();
    SendMessagesEncoder::encode(
        &mut buf,
        &stream,
        &topic,
        &WirePartitioning::PartitionId(partition),
        &messages,
    )
    .unwrap();
    buf.to_vec()
}

pub fn poll_body(
    consumer: WireConsumer,
    stream: &str,
    topic: &str,
    partition: Option<u32>,
    offset: u64,
    count: u32,
) -> Vec<u8> {
    poll_body_to(consumer, wid(stream), wid(topic), partition, offset, count)
}

pub fn poll_body_to(
    consumer: WireConsumer,
    stream: WireIdentifier,
    topic: WireIdentifier,
    partition: Option<u32>,
    offset: u64,
    count: u32,
) -> Vec<u8> {
    PollMessagesRequest {
        consumer,
        stream_id: stream,
        topic_id: topic,
        partition_id: partition,
        strategy: WirePollingStrategy::offset(offset),
        count,
        auto_commit: false,
    }
    .to_bytes()
    .to_vec()
}

/// `messages_count` of a poll reply.
pub fn poll_count(reply: &Frame) -> u32 {
    u32::from_le_bytes(reply.body[12..16].try_into().unwrap())
}

/// `partition_id` of a poll reply.
pub fn poll_partition(reply: &Frame) -> u32 {
    u32::from_le_bytes(reply.body[..4].try_into().unwrap())
}

/// `[ClientVersionInfo][ulen][username][plen][password][context_len = 0]`, with
/// arbitrary bytes for the name and the password.
pub fn login_body_bytes(username: &[u8], password: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ClientVersionInfo {
        protocol_version: IGGY_PROTOCOL_VERSION,
        sdk_name: WireName::new("table-test").unwrap(),
        sdk_version: WireName::new("0.0.0").unwrap(),
    }
    .encode(&mut buf);
    let mut body = buf.to_vec();
    body.push(u8::try_from(username.len()).unwrap());
    body.extend_from_slice(username);
    body.push(u8::try_from(password.len()).unwrap());
    body.extend_from_slice(password);
    body.extend_from_slice(&0u32.to_le_bytes());
    body
}

/// `[ClientVersionInfo][token_len][token][context_len = 0]`.
pub fn token_login_body(token: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ClientVersionInfo {
        protocol_version: IGGY_PROTOCOL_VERSION,
        sdk_name: WireName::new("table-test").unwrap(),
        sdk_version: WireName::new("0.0.0").unwrap(),
    }
    .encode(&mut buf);
    let mut body = buf.to_vec();
    body.push(u8::try_from(token.len()).unwrap());
    body.extend_from_slice(token);
    body.extend_from_slice(&0u32.to_le_bytes());
    body
}

/// A valid body for each command that takes one, with the operation it is sent
/// with (`NonReplicated` for reads). None of them, sent whole, is destructive for
/// the seeded data except where noted by the callers.
pub fn valid_bodies() -> Vec<(&'static str, Operation, u32, Vec<u8>)> {
    let ids3 = |g: &str| (wid("shop"), wid("orders"), wid(g));
    let nr = Operation::NonReplicated;
    vec![
        (
            "GetStream",
            nr,
            200,
            GetStreamRequest {
                stream_id: wid("shop"),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "GetTopic",
            nr,
            300,
            GetTopicRequest {
                stream_id: wid("shop"),
                topic_id: wid("orders"),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "GetTopics",
            nr,
            301,
            GetTopicsRequest {
                stream_id: wid("shop"),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "PollMessages",
            nr,
            POLL_MESSAGES,
            poll_body(consumer(1), "shop", "orders", Some(0), 0, 10),
        ),
        (
            "GetConsumerOffset",
            nr,
            120,
            GetConsumerOffsetRequest {
                consumer: consumer(1),
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                partition_id: Some(0),
            }
            .to_bytes()
            .to_vec(),
        ),
        ("GetConsumerGroup", nr, 600, {
            let (s, t, g) = ids3("workers");
            GetConsumerGroupRequest {
                stream_id: s,
                topic_id: t,
                group_id: g,
            }
            .to_bytes()
            .to_vec()
        }),
        ("SyncConsumerGroup", nr, 606, {
            let (s, t, g) = ids3("workers");
            SyncConsumerGroupRequest {
                stream_id: s,
                topic_id: t,
                group_id: g,
            }
            .to_bytes()
            .to_vec()
        }),
        (
            "GetUser",
            nr,
            31,
            GetUserRequest {
                user_id: wid("iggy"),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "GetClient",
            nr,
            21,
            GetClientRequest { client_id: 1 }.to_bytes().to_vec(),
        ),
        (
            "CreateStream",
            Operation::CreateStream,
            202,
            CreateStreamRequest {
                name: WireName::new("created-by-table").unwrap(),
                options: WireOptions::empty(),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "CreateTopic",
            Operation::CreateTopic,
            302,
            CreateTopicRequest {
                stream_id: wid("shop"),
                partitions_count: 1,
                name: WireName::new("created-by-table").unwrap(),
                options: WireOptions::empty(),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "CreateConsumerGroup",
            Operation::CreateConsumerGroup,
            602,
            {
                CreateConsumerGroupRequest {
                    stream_id: wid("shop"),
                    topic_id: wid("orders"),
                    name: WireName::new("created-by-table").unwrap(),
                }
                .to_bytes()
                .to_vec()
            },
        ),
        (
            "SendMessages",
            Operation::SendMessages,
            101,
            send_body("shop", "orders", 0, &[b"table".to_vec(), b"row".to_vec()]),
        ),
        (
            "StoreConsumerOffset",
            Operation::StoreConsumerOffset,
            121,
            StoreConsumerOffsetRequest {
                consumer: consumer(1),
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                partition_id: Some(0),
                offset: 3,
                ack: AckLevel::Quorum,
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "DeleteConsumerOffset",
            Operation::DeleteConsumerOffset,
            122,
            DeleteConsumerOffsetRequest {
                consumer: consumer(1),
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                partition_id: Some(0),
                ack: AckLevel::Quorum,
            }
            .to_bytes()
            .to_vec(),
        ),
        ("JoinConsumerGroup", Operation::JoinConsumerGroup, 604, {
            let (s, t, g) = ids3("workers");
            JoinConsumerGroupRequest {
                stream_id: s,
                topic_id: t,
                group_id: g,
            }
            .to_bytes()
            .to_vec()
        }),
        ("LeaveConsumerGroup", Operation::LeaveConsumerGroup, 605, {
            let (s, t, g) = ids3("workers");
            LeaveConsumerGroupRequest {
                stream_id: s,
                topic_id: t,
                group_id: g,
            }
            .to_bytes()
            .to_vec()
        }),
        (
            "DeleteConsumerGroup",
            Operation::DeleteConsumerGroup,
            603,
            {
                let (s, t, g) = ids3("workers");
                DeleteConsumerGroupRequest {
                    stream_id: s,
                    topic_id: t,
                    group_id: g,
                }
                .to_bytes()
                .to_vec()
            },
        ),
        (
            "CreateUser",
            Operation::CreateUser,
            33,
            CreateUserRequest {
                username: WireName::new("table-user").unwrap(),
                password: "table-password".into(),
                status: 1,
                permissions: None,
                options: WireOptions::empty(),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "DeleteUser",
            Operation::DeleteUser,
            34,
            DeleteUserRequest {
                user_id: wid("table-user"),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "CreatePersonalAccessToken",
            Operation::CreatePersonalAccessToken,
            42,
            CreatePersonalAccessTokenRequest {
                name: WireName::new("table-token").unwrap(),
                expiry: 0,
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "DeleteStream",
            Operation::DeleteStream,
            203,
            DeleteStreamRequest {
                stream_id: wid("shop"),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "PurgeStream",
            Operation::PurgeStream,
            205,
            PurgeStreamRequest {
                stream_id: wid("shop"),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "DeleteTopic",
            Operation::DeleteTopic,
            303,
            DeleteTopicRequest {
                stream_id: wid("shop"),
                topic_id: wid("orders"),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "PurgeTopic",
            Operation::PurgeTopic,
            305,
            PurgeTopicRequest {
                stream_id: wid("shop"),
                topic_id: wid("orders"),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "DeleteSegments",
            Operation::DeleteSegments,
            503,
            DeleteSegmentsRequest {
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                partition_id: 0,
                segments_count: 1,
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "FlushUnsavedBuffer",
            nr,
            102,
            FlushUnsavedBufferRequest {
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                partition_id: 0,
                fsync: true,
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "CreatePartitions",
            Operation::CreatePartitions,
            402,
            CreatePartitionsRequest {
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                partitions_count: 1,
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "DeletePartitions",
            Operation::DeletePartitions,
            403,
            DeletePartitionsRequest {
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                partitions_count: 1,
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "GetSnapshotFile",
            nr,
            11,
            GetSnapshotRequest {
                compression: 1,
                snapshot_types: vec![4],
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "AttachConsumerSession",
            nr,
            14,
            AttachConsumerSessionRequest {
                client_id: 1,
                session: 1,
                metadata_watermark: 0,
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "GetPollRouting",
            nr,
            103,
            poll_body(consumer(1), "shop", "orders", Some(0), 0, 10),
        ),
        (
            "PollMessagesOnPrimary",
            nr,
            104,
            poll_body(consumer(1), "shop", "orders", Some(0), 0, 10),
        ),
        (
            "GetConsumerOffsetRouting",
            nr,
            123,
            GetConsumerOffsetRequest {
                consumer: WireConsumer::consumer(WireIdentifier::numeric(1)),
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                partition_id: Some(0),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "UpdatePermissions",
            Operation::UpdatePermissions,
            36,
            UpdatePermissionsRequest {
                user_id: wid("nobody"),
                permissions: Some(WirePermissions {
                    global: WireGlobalPermissions {
                        manage_servers: false,
                        read_servers: false,
                        manage_users: false,
                        read_users: false,
                        manage_streams: false,
                        read_streams: true,
                        manage_topics: false,
                        read_topics: false,
                        poll_messages: false,
                        send_messages: false,
                    },
                    streams: Vec::new(),
                }),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "UpdateStream",
            Operation::UpdateStream,
            204,
            UpdateStreamRequest {
                stream_id: wid("shop"),
                name: WireName::new("shop").unwrap(),
                options: WireOptions::empty(),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "UpdateTopic",
            Operation::UpdateTopic,
            304,
            UpdateTopicRequest {
                stream_id: wid("shop"),
                topic_id: wid("orders"),
                name: WireName::new("orders").unwrap(),
                options: WireOptions::empty(),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "UpdateUser",
            Operation::UpdateUser,
            35,
            UpdateUserRequest {
                user_id: wid("nobody"),
                username: Some(WireName::new("nobody").unwrap()),
                status: Some(1),
                options: WireOptions::empty(),
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "DescribeOptions",
            nr,
            13,
            DescribeOptionsRequest {
                scope: OPTIONS_SCOPE_TOPIC,
            }
            .to_bytes()
            .to_vec(),
        ),
    ]
}

// ---- memory -------------------------------------------------------------------------

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}
