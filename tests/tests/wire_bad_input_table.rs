//! The bad-input table of the Iggy TCP listener: every family of malformed input,
//! and what the broker does with it.
//!
//! Each test sends one family of bad input from an attacking connection while a
//! *bystander* connection, logged in before the attack, waits. Every test ends with
//! [`Bench::check`]: the broker still accepts connections and logins, the bystander
//! still gets answers within [`ANSWER_TIMEOUT`], and the seeded data is intact.
//!
//! | family                    | test                                              |
//! |---------------------------|---------------------------------------------------|
//! | wrong size field          | `wrong_size_fields`                               |
//! | frame over the maximum    | `frames_over_the_maximum`                         |
//! | unknown command code      | `unknown_command_codes_and_operations`            |
//! | truncated body            | `truncated_bodies_of_every_command`               |
//! | invalid UTF-8 name        | `invalid_utf8_names_and_identifiers`              |
//! | out-of-range ids          | `out_of_range_ids`                                |
//! | commands before login     | `every_command_before_login`, `forged_sessions`   |
//! | wrong password            | `wrong_passwords_and_tokens`,                     |
//! |                           | `a_storm_of_failed_logins_is_bounded`             |
//! | disconnect mid-frame      | `disconnects_mid_frame`                           |
//! | slow client (pings)       | `a_slow_client_flooding_pings_is_throttled`       |
//! | slow client (polls)       | `a_slow_client_polling_without_reading_is_bounded`|
//!
//! Each test prints `bad inputs tried: N`; the README sums them.
//!
//! The tests run one at a time ([`SERIAL`]): two of them measure the resident memory
//! of this process, which other tests' buffers would disturb.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use iggy::prelude::{Client, Identifier, StreamClient, SystemClient, TopicClient, UserClient};
use iggy_binary_protocol::consensus::{Command, EvictionReason, HEADER_SIZE, Operation};
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
use iggy_binary_protocol::requests::personal_access_tokens::CreatePersonalAccessTokenRequest;
use iggy_binary_protocol::requests::segments::DeleteSegmentsRequest;
use iggy_binary_protocol::requests::streams::{
    CreateStreamRequest, DeleteStreamRequest, GetStreamRequest, PurgeStreamRequest,
};
use iggy_binary_protocol::requests::system::GetClientRequest;
use iggy_binary_protocol::requests::topics::{
    CreateTopicRequest, DeleteTopicRequest, GetTopicRequest, GetTopicsRequest, PurgeTopicRequest,
};
use iggy_binary_protocol::requests::users::{
    CreateUserRequest, DeleteUserRequest, GetUserRequest, UpdatePermissionsRequest,
};
use iggy_binary_protocol::{
    AckLevel, COMMAND_TABLE, ClientVersionInfo, IGGY_PROTOCOL_VERSION, WireConsumer, WireEncode,
    WireGlobalPermissions, WireIdentifier, WireName, WireOptions, WirePartitioning,
    WirePermissions, WirePollingStrategy,
};
use rustok_iggy_connector::error_codes::ErrorCode;
use tests::wire::raw::{Frame, RawClient, request_header};
use tests::wire::{PASSWORD, USERNAME, WireBroker, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the bystander may wait for any answer, whatever the attacker does.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The listener's frame limit (header and body), as the Iggy server has it.
const MAX_FRAME: u32 = 64 * 1024 * 1024;
/// Messages seeded in each partition of `shop/orders`.
const SEEDED: u32 = 10;
const PARTITIONS: u32 = 2;

const PING: u32 = 1;
const GET_STREAMS: u32 = 201;
const POLL_MESSAGES: u32 = 100;
const LOGIN_USER: u32 = 38;
const LOGIN_WITH_PAT: u32 = 44;

const OK: u32 = 0;
const INVALID_COMMAND: u32 = ErrorCode::INVALID_COMMAND.0;
const INVALID_FORMAT: u32 = ErrorCode::INVALID_FORMAT.0;
const UNAUTHENTICATED: u32 = ErrorCode::UNAUTHENTICATED.0;
const RESOURCE_NOT_FOUND: u32 = ErrorCode::RESOURCE_NOT_FOUND.0;
const STREAM_ID_NOT_FOUND: u32 = ErrorCode::STREAM_ID_NOT_FOUND.0;
const STREAM_NAME_NOT_FOUND: u32 = ErrorCode::STREAM_NAME_NOT_FOUND.0;
const TOPIC_ID_NOT_FOUND: u32 = ErrorCode::TOPIC_ID_NOT_FOUND.0;
const TOO_MANY_PARTITIONS: u32 = ErrorCode::TOO_MANY_PARTITIONS.0;
const PARTITION_NOT_FOUND: u32 = ErrorCode::PARTITION_NOT_FOUND.0;
const CONSUMER_OFFSET_NOT_FOUND: u32 = ErrorCode::CONSUMER_OFFSET_NOT_FOUND.0;
const GROUP_ID_NOT_FOUND: u32 = ErrorCode::CONSUMER_GROUP_ID_NOT_FOUND.0;
const GROUP_MEMBER_NOT_FOUND: u32 = ErrorCode::CONSUMER_GROUP_MEMBER_NOT_FOUND.0;

/// One test at a time (see the module documentation).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- the bench ----------------------------------------------------------------------

/// A broker with `shop/orders` (2 partitions × [`SEEDED`] messages) and group
/// `workers`, a logged-in bystander, and a count of bad inputs tried.
struct Bench {
    broker: WireBroker,
    bystander: RawClient,
    tried: usize,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Bench {
    async fn start() -> Self {
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

    async fn attacker(&self) -> RawClient {
        logged_in(&self.broker).await
    }

    async fn anonymous(&self) -> RawClient {
        RawClient::connect(self.broker.address).await
    }

    fn tried(&mut self, n: usize) {
        self.tried += n;
    }

    /// The broker is up, the bystander is answered within [`ANSWER_TIMEOUT`], the
    /// seeded data is intact, and a fresh SDK client can log in and read.
    async fn check(&mut self, case: &str) {
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

    async fn shutdown(self) {
        self.broker.shutdown().await;
    }
}

async fn logged_in(broker: &WireBroker) -> RawClient {
    let mut raw = RawClient::connect(broker.address).await;
    let reply = raw.login(USERNAME, PASSWORD).await;
    assert!(reply.is_reply() && reply.status() == OK, "{reply:?}");
    raw
}

/// A request and its answer within [`ANSWER_TIMEOUT`].
async fn answered(raw: &mut RawClient, operation: Operation, code: u32, body: &[u8]) -> Frame {
    tokio::time::timeout(ANSWER_TIMEOUT, raw.call(operation, code, body))
        .await
        .unwrap_or_else(|_| panic!("no answer within {ANSWER_TIMEOUT:?} (code {code})"))
}

/// The next frame within [`ANSWER_TIMEOUT`]; `None` when the server closed.
async fn next_frame(raw: &mut RawClient) -> Option<Frame> {
    tokio::time::timeout(ANSWER_TIMEOUT, raw.read())
        .await
        .unwrap_or_else(|_| panic!("no frame within {ANSWER_TIMEOUT:?}"))
}

/// The connection still answers a ping.
async fn still_usable(raw: &mut RawClient, what: &str) {
    let pong = answered(raw, Operation::NonReplicated, PING, &[]).await;
    assert_eq!(pong.status(), OK, "{what}: the connection is still usable");
}

// ---- request bodies -----------------------------------------------------------------

fn named(name: &str) -> Identifier {
    Identifier::named(name).unwrap()
}

fn wid(name: &str) -> WireIdentifier {
    WireIdentifier::named(name).unwrap()
}

fn consumer(id: u32) -> WireConsumer {
    WireConsumer::consumer(WireIdentifier::numeric(id))
}

fn group_consumer(group: WireIdentifier) -> WireConsumer {
    WireConsumer::consumer_group(group)
}

fn send_body(stream: &str, topic: &str, partition: u32, payloads: &[Vec<u8>]) -> Vec<u8> {
    send_body_to(wid(stream), wid(topic), partition, payloads)
}

fn send_body_to(
    stream: WireIdentifier,
    topic: WireIdentifier,
    partition: u32,
    payloads: &[Vec<u8>],
) -> Vec<u8> {
    let messages: Vec<RawMessage<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| RawMessage {
            id: i as u128 + 1,
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

fn poll_body(
    consumer: WireConsumer,
    stream: &str,
    topic: &str,
    partition: Option<u32>,
    offset: u64,
    count: u32,
) -> Vec<u8> {
    poll_body_to(consumer, wid(stream), wid(topic), partition, offset, count)
}

fn poll_body_to(
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
fn poll_count(reply: &Frame) -> u32 {
    u32::from_le_bytes(reply.body[12..16].try_into().unwrap())
}

/// `partition_id` of a poll reply.
fn poll_partition(reply: &Frame) -> u32 {
    u32::from_le_bytes(reply.body[..4].try_into().unwrap())
}

/// `[ClientVersionInfo][ulen][username][plen][password][context_len = 0]`, with
/// arbitrary bytes for the name and the password.
fn login_body_bytes(username: &[u8], password: &[u8]) -> Vec<u8> {
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
fn token_login_body(token: &[u8]) -> Vec<u8> {
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
fn valid_bodies() -> Vec<(&'static str, Operation, u32, Vec<u8>)> {
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
    ]
}

// ---- memory -------------------------------------------------------------------------

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

// ---- the table ----------------------------------------------------------------------

/// Size fields below the header size, a size field that disagrees with what is
/// sent, and garbage where a header should be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_size_fields() {
    let mut bench = Bench::start().await;
    // Smaller than the header: an INVALID_FORMAT reply, then the close.
    for size in [0u32, 1, 100, 255] {
        let mut raw = bench.attacker().await;
        raw.write(&request_header(
            size,
            raw.client,
            1,
            Operation::NonReplicated as u8,
            raw.session,
            PING,
        ))
        .await;
        let reply = next_frame(&mut raw).await.expect("an error reply");
        assert_eq!(reply.status(), INVALID_FORMAT, "size {size}");
        assert_eq!(reply.size() as usize, HEADER_SIZE, "errors have no body");
        raw.closed().await;
        bench.tried(1);
    }
    // A size field shorter than the body: the surplus bytes are read as the next
    // header, whose size field (zeros of the real header) is refused.
    let mut raw = bench.attacker().await;
    let mut frame = request_header(
        260,
        raw.client,
        1,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    )
    .to_vec();
    frame.extend_from_slice(&[0u8; 8]); // 4 bytes more than announced
    frame.extend_from_slice(&request_header(
        256,
        raw.client,
        2,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    ));
    raw.write(&frame).await;
    let first = next_frame(&mut raw).await.expect("the first ping's reply");
    assert_eq!(first.status(), OK, "the announced frame is served");
    let second = next_frame(&mut raw).await.expect("an error reply");
    assert_eq!(second.status(), INVALID_FORMAT, "the misaligned header");
    raw.closed().await;
    bench.tried(1);
    // A size field longer than the body, then a whole frame: the frame is eaten as
    // body bytes, and the connection waits for the rest (served when it arrives).
    let mut raw = bench.attacker().await;
    let mut frame = request_header(
        256 + 256,
        raw.client,
        1,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    )
    .to_vec();
    frame.extend_from_slice(&request_header(
        256,
        raw.client,
        2,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    ));
    raw.write(&frame).await;
    let reply = next_frame(&mut raw).await.expect("one reply");
    assert_eq!(reply.status(), OK, "one ping with a 256-byte body");
    still_usable(&mut raw, "after a body-swallowing size").await;
    bench.tried(1);
    // Random garbage headers (a fixed xorshift sequence): each gets a reply or a
    // close, never a hang of the listener.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..32 {
        let mut raw = bench.anonymous().await;
        let mut header = [0u8; HEADER_SIZE];
        for chunk in header.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        raw.write(&header).await;
        raw.stream.shutdown().await.expect("shutdown write");
        raw.closed().await;
        bench.tried(1);
    }
    bench.check("wrong size field").await;
    bench.shutdown().await;
}

/// Sizes past the 64 MiB limit are refused from the header alone (nothing of the
/// body is read or allocated); a frame of exactly the limit is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_the_maximum() {
    let mut bench = Bench::start().await;
    let before = status_kib("VmRSS");
    for size in [
        MAX_FRAME + 1,
        MAX_FRAME + 4096,
        u32::MAX / 2,
        u32::MAX - 1,
        u32::MAX,
    ] {
        let mut raw = bench.attacker().await;
        raw.write(&request_header(
            size,
            raw.client,
            1,
            Operation::SendMessages as u8,
            raw.session,
            0,
        ))
        .await;
        let reply = next_frame(&mut raw).await.expect("an error reply");
        assert_eq!(reply.status(), INVALID_FORMAT, "size {size}");
        raw.closed().await;
        bench.tried(1);
    }
    let grown = status_kib("VmRSS").saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "refused frames allocate nothing: RSS grew by {grown} KiB"
    );
    // Many connections announcing the largest allowed frame and sending 1 byte of
    // it: the body buffer grows with what arrives, not with what is announced.
    let before = status_kib("VmRSS");
    let mut pending = Vec::new();
    for _ in 0..64 {
        let mut raw = bench.attacker().await;
        raw.write(&request_header(
            MAX_FRAME,
            raw.client,
            1,
            Operation::NonReplicated as u8,
            raw.session,
            PING,
        ))
        .await;
        raw.write(&[0]).await;
        pending.push(raw);
        bench.tried(1);
    }
    // The bystander is served while 64 frames of 64 MiB are announced.
    bench.check("frame over the maximum (64 pending)").await;
    let grown = status_kib("VmRSS").saturating_sub(before);
    assert!(
        grown < 128 * 1024,
        "64 announced 64 MiB frames must not reserve 4 GiB: RSS grew by {grown} KiB"
    );
    drop(pending);
    // Exactly the limit: a ping with a body of 64 MiB - 256 bytes is answered.
    let mut raw = bench.attacker().await;
    let mut frame = request_header(
        MAX_FRAME,
        raw.client,
        1,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    )
    .to_vec();
    frame.resize(MAX_FRAME as usize, 0xA5);
    raw.write(&frame).await;
    drop(frame);
    let reply = next_frame(&mut raw).await.expect("a reply");
    assert_eq!(reply.status(), OK, "a frame of exactly the limit is served");
    still_usable(&mut raw, "after a maximal frame").await;
    bench.check("frame over the maximum").await;
    bench.shutdown().await;
}

/// Every command code outside the table, codes of replicated commands sent as
/// reads, every operation byte a client may not use, and a non-request command
/// byte: `InvalidCommand`, and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_command_codes_and_operations() {
    let mut bench = Bench::start().await;
    let mut raw = bench.attacker().await;
    let known: Vec<u32> = COMMAND_TABLE.iter().map(|c| c.code).collect();
    let mut codes: Vec<u32> = (0..=1024).filter(|c| !known.contains(c)).collect();
    codes.extend([
        2048,
        9_999,
        65_535,
        65_536,
        i32::MAX as u32,
        u32::MAX - 1,
        u32::MAX,
    ]);
    for &code in &codes {
        let reply = answered(&mut raw, Operation::NonReplicated, code, &[1, 2, 3]).await;
        assert_eq!(
            (reply.status(), reply.operation()),
            (INVALID_COMMAND, Operation::NonReplicated as u8),
            "code {code}"
        );
    }
    bench.tried(codes.len());
    // Replicated commands sent on the read path.
    let replicated: Vec<u32> = COMMAND_TABLE
        .iter()
        .filter(|c| c.is_replicated())
        .map(|c| c.code)
        .collect();
    for &code in &replicated {
        let reply = answered(&mut raw, Operation::NonReplicated, code, &[]).await;
        assert_eq!(
            reply.status(),
            INVALID_COMMAND,
            "replicated code {code} as a read"
        );
    }
    bench.tried(replicated.len());
    // Operation bytes: undefined ones and the replica-internal ones.
    let mut operations = 0;
    for byte in 0..=u8::MAX {
        let defined = Operation::is_known_code(byte);
        let internal = matches!(byte, 0 | 64..=68);
        if defined && !internal {
            continue;
        }
        let frame = request_header(
            256,
            raw.client,
            1_000 + u64::from(byte),
            byte,
            raw.session,
            0,
        );
        raw.write(&frame).await;
        let reply = next_frame(&mut raw).await.expect("a reply");
        assert_eq!(reply.status(), INVALID_COMMAND, "operation byte {byte}");
        operations += 1;
    }
    bench.tried(operations);
    // Command bytes other than Request (Reply, Eviction, Prepare, ...).
    for command in [
        0u8,
        1,
        2,
        3,
        4,
        6,
        7,
        Command::Reply as u8,
        Command::Eviction as u8,
        200,
        255,
    ] {
        let mut frame = request_header(
            256,
            raw.client,
            5_000,
            Operation::NonReplicated as u8,
            raw.session,
            PING,
        );
        frame[60] = command;
        raw.write(&frame).await;
        let reply = next_frame(&mut raw).await.expect("a reply");
        assert_eq!(reply.status(), INVALID_COMMAND, "command byte {command}");
        bench.tried(1);
    }
    still_usable(&mut raw, "after unknown commands").await;
    bench.check("unknown command code").await;
    bench.shutdown().await;
}

/// Every strict prefix of a valid body of every command that takes one: an error
/// reply (never a panic, a hang or a partial effect), and the connection stays
/// usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_bodies_of_every_command() {
    let mut bench = Bench::start().await;
    let mut raw = bench.attacker().await;
    let mut prefixes = 0;
    for (name, operation, code, body) in valid_bodies() {
        for len in 0..body.len() {
            let reply = answered(&mut raw, operation, code, &body[..len]).await;
            assert!(reply.is_reply(), "{name}[..{len}]: {reply:?}");
            assert_ne!(
                reply.status(),
                OK,
                "{name}: the truncated body [..{len}] of {} bytes was accepted",
                body.len()
            );
            assert_eq!(reply.size() as usize, HEADER_SIZE, "{name}[..{len}]");
            prefixes += 1;
        }
    }
    bench.tried(prefixes);
    still_usable(&mut raw, "after truncated bodies").await;
    // Nothing was created or removed by the prefixes.
    let admin = bench.broker.client().await;
    let streams = within("get_streams", admin.get_streams()).await.unwrap();
    assert_eq!(
        streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["shop"]
    );
    let topic = within(
        "get_topic",
        admin.get_topic(&named("shop"), &named("orders")),
    )
    .await
    .unwrap()
    .expect("the topic is still there");
    assert_eq!(topic.messages_count, u64::from(SEEDED * PARTITIONS));
    // A body announced by the header that never fully arrives: the connection
    // closes when the peer gives up, and nothing else notices.
    let mut raw = bench.attacker().await;
    raw.write(&request_header(
        256 + 1000,
        raw.client,
        1,
        Operation::SendMessages as u8,
        raw.session,
        0,
    ))
    .await;
    raw.write(&send_body("shop", "orders", 0, &[vec![7; 900]])[..10])
        .await;
    bench.check("truncated body (pending)").await;
    raw.stream.shutdown().await.expect("shutdown write");
    raw.closed().await;
    bench.tried(1);
    bench.check("truncated body").await;
    bench.shutdown().await;
}

/// Names and string identifiers that are not UTF-8 (invalid bytes, overlong
/// encodings, surrogates, cut multi-byte sequences) in every command that carries
/// one: `InvalidFormat` (or a malformed-login eviction), and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_names_and_identifiers() {
    let mut bench = Bench::start().await;
    let mut raw = bench.attacker().await;
    let bad_names: [&[u8]; 6] = [
        &[0xFF, 0xFE],
        &[0xC0, 0xAF],             // overlong '/'
        &[0xED, 0xA0, 0x80],       // a UTF-16 surrogate
        &[b'a', b'b', 0xE2, 0x82], // a cut 3-byte sequence
        &[0xF8, 0x88, 0x80, 0x80, 0x80],
        &[b'o', b'k', 0x80],
    ];
    let mut tried = 0;
    for bad in bad_names {
        let name_field = |bad: &[u8]| {
            let mut v = vec![u8::try_from(bad.len()).unwrap()];
            v.extend_from_slice(bad);
            v
        };
        let ident_field = |bad: &[u8]| {
            let mut v = vec![2u8, u8::try_from(bad.len()).unwrap()];
            v.extend_from_slice(bad);
            v
        };
        let shop = wid("shop").to_bytes().to_vec();
        let orders = wid("orders").to_bytes().to_vec();
        let mut cases: Vec<(&str, Operation, u32, Vec<u8>)> = Vec::new();
        // CreateStream: [name][options].
        cases.push((
            "CreateStream",
            Operation::CreateStream,
            202,
            name_field(bad),
        ));
        // CreateTopic: [stream][partitions][name][options].
        let mut topic = shop.clone();
        topic.extend_from_slice(&1u32.to_le_bytes());
        topic.extend(name_field(bad));
        cases.push(("CreateTopic", Operation::CreateTopic, 302, topic));
        // CreateConsumerGroup: [stream][topic][name].
        let mut group = shop.clone();
        group.extend_from_slice(&orders);
        group.extend(name_field(bad));
        cases.push((
            "CreateConsumerGroup",
            Operation::CreateConsumerGroup,
            602,
            group,
        ));
        // CreateUser: [username][password...]: a bad name with a good password.
        let mut user = name_field(bad);
        user.extend_from_slice(
            &CreateUserRequest {
                username: WireName::new("xyz").unwrap(),
                password: "secret-password".into(),
                status: 1,
                permissions: None,
                options: WireOptions::empty(),
            }
            .to_bytes()[4..],
        );
        cases.push(("CreateUser", Operation::CreateUser, 33, user));
        // CreatePersonalAccessToken: [name][expiry].
        let mut token = name_field(bad);
        token.extend_from_slice(&0u64.to_le_bytes());
        cases.push((
            "CreatePersonalAccessToken",
            Operation::CreatePersonalAccessToken,
            42,
            token,
        ));
        // String identifiers in reads and writes.
        cases.push(("GetStream", Operation::NonReplicated, 200, ident_field(bad)));
        let mut get_topic = shop.clone();
        get_topic.extend(ident_field(bad));
        cases.push(("GetTopic", Operation::NonReplicated, 300, get_topic));
        cases.push((
            "DeleteStream",
            Operation::DeleteStream,
            203,
            ident_field(bad),
        ));
        cases.push(("GetUser", Operation::NonReplicated, 31, ident_field(bad)));
        // SendMessages whose stream identifier is swapped for the bad bytes.
        let good = send_body("shop", "orders", 0, &[b"x".to_vec()]);
        let metadata_len = u32::from_le_bytes(good[..4].try_into().unwrap()) as usize;
        let mut metadata = ident_field(bad);
        metadata.extend_from_slice(&good[4 + shop.len()..4 + metadata_len]);
        let mut send = u32::try_from(metadata.len())
            .unwrap()
            .to_le_bytes()
            .to_vec();
        send.extend(metadata);
        send.extend_from_slice(&good[4 + metadata_len..]);
        cases.push(("SendMessages", Operation::SendMessages, 101, send));
        // PollMessages whose topic identifier is bad: [consumer][stream][topic]...
        let good = poll_body(consumer(1), "shop", "orders", Some(0), 0, 1);
        let consumer_len = consumer(1).to_bytes().len();
        let mut poll = good[..consumer_len + shop.len()].to_vec();
        poll.extend(ident_field(bad));
        poll.extend_from_slice(&good[consumer_len + shop.len() + orders.len()..]);
        cases.push((
            "PollMessages",
            Operation::NonReplicated,
            POLL_MESSAGES,
            poll,
        ));
        for (name, operation, code, body) in cases {
            let reply = answered(&mut raw, operation, code, &body).await;
            assert_eq!(
                reply.status(),
                INVALID_FORMAT,
                "{name} with {bad:02x?}: {reply:?}"
            );
            tried += 1;
        }
        // Login with a bad user name or a bad password: a malformed login.
        let mut anonymous = bench.anonymous().await;
        for body in [
            login_body_bytes(bad, PASSWORD.as_bytes()),
            login_body_bytes(USERNAME.as_bytes(), bad),
        ] {
            let reply = answered(&mut anonymous, Operation::Register, 40, &body).await;
            assert!(reply.is_eviction(), "{reply:?}");
            assert_eq!(
                reply.eviction_reason(),
                EvictionReason::MalformedLogin as u8,
                "login with {bad:02x?}"
            );
            tried += 1;
        }
    }
    bench.tried(tried);
    still_usable(&mut raw, "after invalid UTF-8").await;
    let admin = bench.broker.client().await;
    let streams = within("get_streams", admin.get_streams()).await.unwrap();
    assert_eq!(streams.len(), 1, "no stream with a garbled name");
    let users = within("get_users", admin.get_users()).await.unwrap();
    assert_eq!(users.len(), 1, "no user with a garbled name");
    bench.check("invalid UTF-8 name").await;
    bench.shutdown().await;
}

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

/// Every command of the protocol before login: reads are `Unauthenticated`,
/// writes evict with `NoSession`, legacy logins are malformed; nothing happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_before_login() {
    let mut bench = Bench::start().await;
    let mut raw = bench.anonymous().await;
    let bodies = valid_bodies();
    let body_for = |code: u32| {
        bodies
            .iter()
            .find(|(_, _, c, _)| *c == code)
            .map(|(_, _, _, b)| b.clone())
            .unwrap_or_default()
    };
    let mut tried = 0;
    for meta in COMMAND_TABLE {
        let body = body_for(meta.code);
        // As a non-replicated request.
        let reply = answered(&mut raw, Operation::NonReplicated, meta.code, &body).await;
        match meta.code {
            PING => assert_eq!(reply.status(), OK, "ping"),
            LOGIN_USER | LOGIN_WITH_PAT => {
                assert!(reply.is_eviction(), "{}: {reply:?}", meta.name);
                assert_eq!(
                    reply.eviction_reason(),
                    EvictionReason::MalformedLogin as u8
                );
            }
            _ => assert_eq!(
                (reply.is_reply(), reply.status()),
                (true, UNAUTHENTICATED),
                "{} before login",
                meta.name
            ),
        }
        tried += 1;
        // And with its own operation, with a valid body.
        if let Some(operation) = meta.operation {
            let reply = answered(&mut raw, operation, meta.code, &body).await;
            assert!(reply.is_eviction(), "{}: {reply:?}", meta.name);
            assert_eq!(
                reply.eviction_reason(),
                EvictionReason::NoSession as u8,
                "{} before login",
                meta.name
            );
            tried += 1;
        }
    }
    bench.tried(tried);
    // Nothing happened: same streams, topics, groups, users, messages, offsets.
    let admin = bench.broker.client().await;
    let streams = within("get_streams", admin.get_streams()).await.unwrap();
    assert_eq!(streams.len(), 1);
    let topic = within(
        "get_topic",
        admin.get_topic(&named("shop"), &named("orders")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(topic.messages_count, u64::from(SEEDED * PARTITIONS));
    let users = within("get_users", admin.get_users()).await.unwrap();
    assert_eq!(users.len(), 1);
    // The connection may still log in.
    let reply = raw.login(USERNAME, PASSWORD).await;
    assert_eq!(reply.status(), OK, "login after the sweep");
    bench.check("commands before login").await;
    bench.shutdown().await;
}

/// A session number is bound to the connection that logged in: another connection
/// presenting it is not authenticated, and a connection that logged in again
/// cannot use its previous session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_sessions() {
    let mut bench = Bench::start().await;
    let victim = bench.attacker().await;
    let create = CreateStreamRequest {
        name: WireName::new("forged").unwrap(),
        options: WireOptions::empty(),
    }
    .to_bytes();
    // Another, anonymous connection presenting the victim's session and client id.
    let mut thief = bench.anonymous().await;
    thief.session = victim.session;
    thief.client = victim.client;
    let reply = answered(&mut thief, Operation::CreateStream, 202, &create).await;
    assert!(reply.is_eviction(), "{reply:?}");
    assert_eq!(reply.eviction_reason(), EvictionReason::NoSession as u8);
    let reply = answered(&mut thief, Operation::NonReplicated, GET_STREAMS, &[]).await;
    assert_eq!(reply.status(), UNAUTHENTICATED);
    // Guessed session numbers.
    for guess in [0u64, 1, 2, 3, u64::MAX] {
        thief.session = guess;
        let reply = answered(&mut thief, Operation::CreateStream, 202, &create).await;
        assert!(reply.is_eviction(), "session {guess}");
    }
    // A logged-in connection replaying its previous session after a new login.
    let mut relogged = bench.attacker().await;
    let old = relogged.session;
    let reply = relogged.login(USERNAME, PASSWORD).await;
    assert_eq!(reply.status(), OK);
    assert_ne!(relogged.session, old);
    relogged.session = old;
    let reply = answered(&mut relogged, Operation::CreateStream, 202, &create).await;
    assert_eq!(reply.status(), UNAUTHENTICATED, "a stale session");
    bench.tried(2 + 5 + 1);
    let admin = bench.broker.client().await;
    let streams = within("get_streams", admin.get_streams()).await.unwrap();
    assert!(
        streams.iter().all(|s| s.name != "forged"),
        "no forged request took effect"
    );
    drop(victim);
    bench.check("forged sessions").await;
    bench.shutdown().await;
}

/// Wrong passwords (root and a created user), unknown users, empty, maximal and
/// binary passwords, invalid tokens: the same eviction each time, no lock-out of
/// the real user. Each attempt uses a connection of its own (the listener closes a
/// connection after its third failed login).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_tokens() {
    let mut bench = Bench::start().await;
    let admin = bench.broker.client().await;
    within(
        "create_user",
        admin.create_user(
            "alice",
            "correct-horse",
            iggy::prelude::UserStatus::Active,
            None,
        ),
    )
    .await
    .expect("create alice");
    let long = vec![b'p'; 255];
    let attempts: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"iggy".to_vec(), b"wrong".to_vec()),
        (b"iggy".to_vec(), b"IGGY".to_vec()),
        (b"iggy".to_vec(), b"iggy ".to_vec()),
        (b"iggy".to_vec(), b"".to_vec()),
        (b"iggy".to_vec(), long.clone()),
        (b"iggy".to_vec(), b"ig\0gy".to_vec()),
        (b"IGGY".to_vec(), b"iggy".to_vec()),
        (b"alice".to_vec(), b"wrong-horse".to_vec()),
        (b"alice".to_vec(), b"".to_vec()),
        (b"alice".to_vec(), long),
        (b"nobody".to_vec(), b"wrong".to_vec()),
        (b"nobody".to_vec(), b"iggy".to_vec()),
        (vec![b'u'; 255], b"iggy".to_vec()),
    ];
    let mut evictions = Vec::new();
    for (username, password) in &attempts {
        let mut raw = bench.anonymous().await;
        let reply = answered(
            &mut raw,
            Operation::Register,
            40,
            &login_body_bytes(username, password),
        )
        .await;
        assert!(reply.is_eviction(), "{reply:?}");
        assert_eq!(
            reply.eviction_reason(),
            EvictionReason::InvalidCredentials as u8,
            "{:?}",
            String::from_utf8_lossy(username)
        );
        evictions.push(reply.header);
    }
    assert!(
        evictions.windows(2).all(|w| w[0] == w[1]),
        "every failed login gets the very same eviction frame"
    );
    bench.tried(attempts.len());
    // Invalid personal access tokens.
    for token in [&b"guess"[..], &[b'0'; 64], &[0xFF; 10], &[b'a'; 255]] {
        let mut raw = bench.anonymous().await;
        let reply = answered(&mut raw, Operation::Register, 45, &token_login_body(token)).await;
        assert!(reply.is_eviction(), "{reply:?}");
        assert!(
            [
                EvictionReason::InvalidToken as u8,
                EvictionReason::MalformedLogin as u8
            ]
            .contains(&reply.eviction_reason()),
            "token {token:02x?}: {reply:?}"
        );
        bench.tried(1);
    }
    // Requests after a failed login are still unauthenticated.
    let mut raw = bench.anonymous().await;
    let reply = answered(
        &mut raw,
        Operation::Register,
        40,
        &login_body_bytes(b"alice", b"wrong-horse"),
    )
    .await;
    assert!(reply.is_eviction());
    let reply = answered(&mut raw, Operation::NonReplicated, GET_STREAMS, &[]).await;
    assert_eq!(reply.status(), UNAUTHENTICATED);
    // No lock-out: both users log in on that connection afterwards.
    let reply = raw.login(USERNAME, PASSWORD).await;
    assert_eq!(reply.status(), OK, "root after the failures");
    let reply = raw.login("alice", "correct-horse").await;
    assert_eq!(reply.status(), OK, "alice after the failures");
    bench.check("wrong password").await;
    bench.shutdown().await;
}

/// Many connections failing a login at the same moment (no login is needed to
/// try). Each Argon2 verification works in 19 MiB: the listener runs at most 4 at
/// once and reuses their working memory, so the process grows by about 4 × 19 MiB
/// once and then stays flat. (Before: 128 concurrent failed logins took the process
/// from 27 MB to 2.7 GB, and even 4 at a time it grew by ~19 MiB per attempt.)
/// Logged-in clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_failed_logins_is_bounded() {
    const ATTEMPTS: usize = 16;
    let mut bench = Bench::start().await;
    let rss_before = status_kib("VmRSS");
    let mut storm = tokio::task::JoinSet::new();
    for i in 0..ATTEMPTS {
        let address = bench.broker.address;
        storm.spawn(async move {
            let mut raw = RawClient::connect(address).await;
            let body = login_body_bytes(format!("nobody-{i}").as_bytes(), b"guess");
            raw.send(Operation::Register, 40, &body).await;
            // Each attempt waits behind the others (a few seconds in a debug build).
            tokio::time::timeout(Duration::from_secs(120), raw.read())
                .await
                .expect("a failed login is answered")
                .expect("an eviction")
        });
    }
    // The bystander is served during the storm (it needs no hashing).
    let pong = answered(&mut bench.bystander, Operation::NonReplicated, PING, &[]).await;
    assert_eq!(pong.status(), OK, "the bystander during the storm");
    let mut peak = status_kib("VmRSS");
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut evictions = 0;
    within("the storm of failed logins", async {
        loop {
            tokio::select! {
                joined = storm.join_next() => match joined {
                    Some(frame) => {
                        let frame = frame.expect("the attempt ran");
                        assert_eq!(
                            frame.eviction_reason(),
                            EvictionReason::InvalidCredentials as u8
                        );
                        evictions += 1;
                    }
                    None => break,
                },
                _ = tick.tick() => peak = peak.max(status_kib("VmRSS")),
            }
        }
    })
    .await;
    assert_eq!(evictions, ATTEMPTS);
    let grown = peak.saturating_sub(rss_before);
    eprintln!("{ATTEMPTS} concurrent failed logins: RSS grew by {grown} KiB at most");
    assert!(
        grown < 160 * 1024,
        "{ATTEMPTS} concurrent failed logins grew RSS by {grown} KiB (unbounded Argon2: ~19 MiB each)"
    );
    bench.tried(ATTEMPTS);
    bench.check("storm of failed logins").await;
    bench.shutdown().await;
}

/// Peers that vanish in the middle of a frame (after 1 to 255 header bytes, or in
/// the body of a send), with a FIN or a reset: only their connection ends, no
/// partial message is stored, and group memberships are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_mid_frame() {
    let mut bench = Bench::start().await;
    let send = send_body("shop", "orders", 0, &[vec![9; 4000], vec![8; 4000]]);
    let full_len = u32::try_from(HEADER_SIZE + send.len()).unwrap();
    let mut tried = 0;
    for reset in [false, true] {
        // Inside the header.
        for cut in [1usize, 47, 48, 51, 52, 60, 128, 176, 196, 255] {
            let mut raw = bench.attacker().await;
            let header = request_header(
                full_len,
                raw.client,
                1,
                Operation::SendMessages as u8,
                raw.session,
                0,
            );
            raw.write(&header[..cut]).await;
            hang_up(raw, reset).await;
            tried += 1;
        }
        // Inside the body of a send.
        for cut in [0usize, 1, 4, 40, 300, send.len() / 2, send.len() - 1] {
            let mut raw = bench.attacker().await;
            let mut frame = request_header(
                full_len,
                raw.client,
                1,
                Operation::SendMessages as u8,
                raw.session,
                0,
            )
            .to_vec();
            frame.extend_from_slice(&send[..cut]);
            raw.write(&frame).await;
            hang_up(raw, reset).await;
            tried += 1;
        }
    }
    // A group member that vanishes mid-frame leaves the group.
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
    let admin = bench.broker.client().await;
    let members = || async {
        within(
            "get_consumer_group",
            iggy::prelude::ConsumerGroupClient::get_consumer_group(
                &admin,
                &named("shop"),
                &named("orders"),
                &named("workers"),
            ),
        )
        .await
        .unwrap()
        .expect("the group")
        .members_count
    };
    assert_eq!(members().await, 1);
    let header = request_header(
        full_len,
        member.client,
        9,
        Operation::SendMessages as u8,
        member.session,
        0,
    );
    member.write(&header[..100]).await;
    hang_up(member, true).await;
    // The membership is released when the server notices the reset.
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    while members().await != 0 {
        assert!(Instant::now() < deadline, "the membership was not released");
        tokio::task::yield_now().await;
    }
    tried += 1;
    // Clients that vanish while the server writes big replies to them.
    for _ in 0..8 {
        let mut raw = bench.attacker().await;
        let poll = poll_body(consumer(3), "shop", "orders", Some(0), 0, 100);
        for _ in 0..50 {
            raw.send(Operation::NonReplicated, POLL_MESSAGES, &poll)
                .await;
        }
        hang_up(raw, true).await;
        tried += 1;
    }
    bench.tried(tried);
    // Nothing partial was stored.
    let topic = within(
        "get_topic",
        admin.get_topic(&named("shop"), &named("orders")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(topic.messages_count, u64::from(SEEDED * PARTITIONS));
    bench.check("disconnect mid-frame").await;
    bench.shutdown().await;
}

/// Closes the connection: a FIN (and waits for the server to close its side), or
/// a reset (`SO_LINGER` 0).
async fn hang_up(mut raw: RawClient, reset: bool) {
    if reset {
        raw.stream.set_zero_linger().expect("SO_LINGER 0");
        drop(raw);
    } else {
        raw.stream.shutdown().await.expect("shutdown write");
        raw.closed().await;
    }
}

/// A client that writes pings and never reads a reply. The server answers in
/// lockstep, so once the socket buffers are full it stops reading from that
/// client: the client's writes stall, the server buffers at most one reply, and
/// everyone else is served on time. When the client reads at last, every reply
/// is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_flooding_pings_is_throttled() {
    const FLOOD: usize = 256 * 1024 * 1024;
    const STALLED: Duration = Duration::from_secs(1);
    let mut bench = Bench::start().await;
    let mut slow = bench.attacker().await;
    let ping = request_header(
        256,
        slow.client,
        1,
        Operation::NonReplicated as u8,
        slow.session,
        PING,
    );
    let chunk: Vec<u8> = ping.iter().copied().cycle().take(256 * 256).collect();
    let rss_before = status_kib("VmRSS");
    let mut written = 0usize;
    let started = Instant::now();
    while written < FLOOD {
        let at = written % chunk.len();
        match tokio::time::timeout(STALLED, slow.stream.write(&chunk[at..])).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => panic!("the slow client's socket failed: {e}"),
            Err(_) => break, // no room for {STALLED}: TCP back-pressure reached
        }
    }
    assert!(
        written < FLOOD,
        "the server swallowed {FLOOD} bytes of pings without their replies being read"
    );
    eprintln!(
        "slow client stalled after {written} bytes ({} pings) in {:?}",
        written / 256,
        started.elapsed()
    );
    bench.tried(1);
    // Everyone else is served while the slow client is stuck.
    bench.check("slow client (pings), stalled").await;
    let grown = status_kib("VmRSS").saturating_sub(rss_before);
    assert!(
        grown < 64 * 1024,
        "the broker buffered replies for the slow client: RSS grew by {grown} KiB"
    );
    // The client reads at last: one reply per complete ping, all OK.
    let complete = written / 256;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut received = 0usize;
    let mut statuses_ok = true;
    let mut header_bytes = Vec::with_capacity(256);
    within("read every pending reply", async {
        while received < complete {
            let n = slow.stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed after {received} replies");
            for &b in &buf[..n] {
                header_bytes.push(b);
                if header_bytes.len() == 256 {
                    statuses_ok &= header_bytes[216..220] == [0, 0, 0, 0];
                    header_bytes.clear();
                    received += 1;
                }
            }
        }
    })
    .await;
    assert!(statuses_ok, "every ping was answered OK");
    drop(slow);
    bench.check("slow client (pings)").await;
    bench.shutdown().await;
}

/// A client that asks for many 16 MiB poll replies and never reads them: the
/// broker holds at most about one reply for it (memory stays flat over a two-second
/// window in which an unbounded server would have built 512 MiB), other clients,
/// including readers of the same partition, are served on time, and the replies are
/// all correct when the client finally reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_polling_without_reading_is_bounded() {
    // 64 × 250 KiB: just under the 16 MiB a poll reply gathers at most.
    const MESSAGE: usize = 250 * 1024;
    const MESSAGES: u32 = 64;
    const POLLS: usize = 32;
    let mut bench = Bench::start().await;
    let admin = bench.broker.client().await;
    let options = iggy::prelude::TopicCreateOptions {
        partitions_count: Some(1),
        ..Default::default()
    };
    within(
        "create_topic",
        admin.create_topic(&named("shop"), "big", &options),
    )
    .await
    .unwrap();
    let mut seeder = bench.attacker().await;
    for chunk in 0..MESSAGES / 8 {
        let payloads: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i ^ chunk as u8; MESSAGE]).collect();
        let reply = answered(
            &mut seeder,
            Operation::SendMessages,
            101,
            &send_body("shop", "big", 0, &payloads),
        )
        .await;
        assert_eq!(reply.status(), OK);
    }
    let poll = poll_body(consumer(5), "shop", "big", Some(0), 0, MESSAGES);
    // One poll read in full first, so that the allocator has seen a reply this size.
    let mut slow = bench.attacker().await;
    let reply = answered(&mut slow, Operation::NonReplicated, POLL_MESSAGES, &poll).await;
    assert_eq!(poll_count(&reply), MESSAGES);
    let reply_size = reply.size() as usize;
    drop(reply);
    let rss_before = status_kib("VmRSS");
    for _ in 0..POLLS {
        slow.send(Operation::NonReplicated, POLL_MESSAGES, &poll)
            .await;
    }
    bench.tried(1);
    // Other clients, on the same partition too, are served while it does not read.
    bench.check("slow client (polls), not reading").await;
    let mut reader = bench.attacker().await;
    let reply = answered(
        &mut reader,
        Operation::NonReplicated,
        POLL_MESSAGES,
        &poll_body(consumer(6), "shop", "big", Some(0), 60, 1),
    )
    .await;
    assert_eq!(poll_count(&reply), 1, "the partition is not locked");
    // Memory over a two-second window.
    let mut peak = status_kib("VmRSS");
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for _ in 0..40 {
        tick.tick().await;
        peak = peak.max(status_kib("VmRSS"));
    }
    let grown = peak.saturating_sub(rss_before);
    eprintln!(
        "slow poller: {POLLS} replies of {reply_size} bytes pending; RSS grew by {grown} KiB at most"
    );
    assert!(
        grown < 128 * 1024,
        "the broker buffers replies for a client that does not read: RSS grew by {grown} KiB"
    );
    // Every reply is complete and correct when the client reads.
    for i in 0..POLLS {
        let reply = next_frame(&mut slow).await.expect("a reply");
        assert_eq!(
            (reply.status(), poll_count(&reply), reply.size() as usize),
            (OK, MESSAGES, reply_size),
            "reply {i}"
        );
    }
    bench.check("slow client (polls)").await;
    bench.shutdown().await;
}
