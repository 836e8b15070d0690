//! An embedded broker with its Iggy TCP listener on `127.0.0.1:0` in a temporary
//! directory, and bounded waits for tests that talk to it.

use std::net::SocketAddr;

use iggy::prelude::{Client, IggyClient, Permissions, UserClient, UserStatus};
use rustok_iggy_connector::{ConnectorConfig, EmbeddedConnector, IggyConnector};

pub use crate::within;

pub mod table;

/// Root credentials of the test brokers.
pub const USERNAME: &str = "iggy";
/// Root password of the test brokers.
pub const PASSWORD: &str = "iggy";

/// A running embedded broker with its TCP listener.
pub struct WireBroker {
    /// The connector that owns the broker.
    pub connector: EmbeddedConnector,
    /// The listener's bound address.
    pub address: SocketAddr,
    dir: tempfile::TempDir,
}

impl WireBroker {
    /// Starts a broker on an ephemeral port with root `iggy`/`iggy`.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker after `configure` adjusted its configuration.
    pub async fn start_with(configure: impl FnOnce(&mut ConnectorConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = ConnectorConfig::embedded(dir.path());
        config.embedded.tcp_enabled = true;
        config.embedded.tcp_port = 0;
        config.embedded.tcp_address = "127.0.0.1".into();
        configure(&mut config);
        let connector = EmbeddedConnector::new();
        within("start the broker", connector.connect(&config))
            .await
            .expect("the embedded broker starts");
        let address = connector.tcp_address().expect("the listener is on");
        Self {
            connector,
            address,
            dir,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `iggy://USER:PASSWORD@ADDRESS` with extra `options` (`a=b&c=d`).
    pub fn connection_string(&self, options: &str) -> String {
        let base = format!("iggy://{USERNAME}:{PASSWORD}@{}", self.address);
        if options.is_empty() {
            base
        } else {
            format!("{base}?{options}")
        }
    }

    /// An SDK client, connected and logged in as root (auto-login).
    pub async fn client(&self) -> IggyClient {
        let client = IggyClient::from_connection_string(&self.connection_string(""))
            .expect("a valid connection string");
        within("connect", client.connect()).await.expect("connect");
        client
    }

    /// An SDK client connected without logging in (auto-login off).
    pub async fn anonymous_client(&self) -> IggyClient {
        anonymous_client(self.address).await
    }

    /// Logs `client` in as root.
    pub async fn login(&self, client: &IggyClient) {
        within("login", client.login_user(USERNAME, PASSWORD))
            .await
            .expect("login as root");
    }

    /// Shuts the broker down and opens a new one on the same data directory, with
    /// the listener on a new ephemeral port and the default configuration.
    pub async fn restart(self) -> Self {
        within("shut the broker down", self.connector.shutdown())
            .await
            .expect("clean shutdown");
        let dir = self.dir;
        let mut config = ConnectorConfig::embedded(dir.path());
        config.embedded.tcp_enabled = true;
        config.embedded.tcp_port = 0;
        config.embedded.tcp_address = "127.0.0.1".into();
        let connector = EmbeddedConnector::new();
        within("restart the broker", connector.connect(&config))
            .await
            .expect("the embedded broker opens again");
        let address = connector.tcp_address().expect("the listener is on");
        Self {
            connector,
            address,
            dir,
        }
    }

    /// Shuts the broker down and hands over its data directory (removed when the
    /// returned value is dropped).
    pub async fn into_data_dir(self) -> tempfile::TempDir {
        within("shut the broker down", self.connector.shutdown())
            .await
            .expect("clean shutdown");
        self.dir
    }

    /// Shuts the broker down.
    pub async fn shutdown(self) {
        within("shut the broker down", self.connector.shutdown())
            .await
            .expect("clean shutdown");
    }
}

/// An SDK client connected to the listener at `address` without logging in
/// (auto-login off).
pub async fn anonymous_client(address: SocketAddr) -> IggyClient {
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(address.to_string())
        .build()
        .expect("a client");
    within("connect", client.connect()).await.expect("connect");
    client
}

/// An SDK client connected to `address` and logged in as `username`.
pub async fn logged_in_client(address: SocketAddr, username: &str, password: &str) -> IggyClient {
    let client = anonymous_client(address).await;
    within("login", client.login_user(username, password))
        .await
        .unwrap_or_else(|e| panic!("{username} logs in: {e}"));
    client
}

/// Creates user `username` (active, with `permissions`) as `admin`, and returns a
/// client logged in as that user on `address`.
pub async fn user_client(
    admin: &IggyClient,
    address: SocketAddr,
    username: &str,
    password: &str,
    permissions: Option<Permissions>,
) -> IggyClient {
    within(
        "create_user",
        admin.create_user(username, password, UserStatus::Active, permissions),
    )
    .await
    .unwrap_or_else(|e| panic!("create user {username}: {e}"));
    logged_in_client(address, username, password).await
}

/// A hand-driven connection speaking raw frames, for tests of malformed input and
/// exact reply semantics.
pub mod raw {
    use bytes::BytesMut;
    use iggy_binary_protocol::consensus::{Command, HEADER_SIZE, Operation};
    use iggy_binary_protocol::requests::messages::{
        PollMessagesRequest, RawMessage, SendMessagesEncoder,
    };
    use iggy_binary_protocol::requests::users::LoginRegisterRequest;
    use iggy_binary_protocol::{
        ClientVersionInfo, IGGY_PROTOCOL_VERSION, WireConsumer, WireEncode, WireIdentifier,
        WireName, WirePartitioning, WirePollingStrategy,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::within;

    /// A frame the server sent.
    #[derive(Debug, Clone)]
    pub struct Frame {
        /// The 256-byte header.
        pub header: Vec<u8>,
        /// The body.
        pub body: Vec<u8>,
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    impl Frame {
        /// The header's command byte (8 reply, 13 eviction).
        pub fn command(&self) -> u8 {
            self.header[60]
        }
        /// Whether this is a reply.
        pub fn is_reply(&self) -> bool {
            self.command() == Command::Reply as u8
        }
        /// Whether this is an eviction.
        pub fn is_eviction(&self) -> bool {
            self.command() == Command::Eviction as u8
        }
        /// The reply status (an Iggy error code; 0 = ok).
        pub fn status(&self) -> u32 {
            u32_at(&self.header, 216)
        }
        /// The operation byte the reply echoes.
        pub fn operation(&self) -> u8 {
            self.header[208]
        }
        /// The eviction reason byte.
        pub fn eviction_reason(&self) -> u8 {
            self.header[255]
        }
        /// The frame size field.
        pub fn size(&self) -> u32 {
            u32_at(&self.header, 48)
        }
        /// The `u64` at `at` in the header.
        pub fn header_u64(&self, at: usize) -> u64 {
            u64::from_le_bytes(self.header[at..at + 8].try_into().unwrap())
        }
    }

    /// A request header with the given fields (the SDK's layout).
    pub fn request_header(
        size: u32,
        client: u128,
        request: u64,
        operation: u8,
        session: u64,
        code: u32,
    ) -> [u8; HEADER_SIZE] {
        let mut h = [0u8; HEADER_SIZE];
        h[48..52].copy_from_slice(&size.to_le_bytes());
        h[60] = Command::Request as u8;
        h[128..144].copy_from_slice(&client.to_le_bytes());
        h[168..176].copy_from_slice(&request.to_le_bytes());
        h[176] = operation;
        h[184..192].copy_from_slice(&session.to_le_bytes());
        if operation == Operation::NonReplicated as u8 {
            h[196..200].copy_from_slice(&code.to_le_bytes());
        }
        h
    }

    /// A `SendMessages` body: `payloads` as messages with ids 1, 2, ... to
    /// `stream`/`topic`, partition `partition`.
    pub fn send_body(stream: &str, topic: &str, partition: u32, payloads: &[Vec<u8>]) -> Vec<u8> {
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
            &WireIdentifier::named(stream).expect("a stream name"),
            &WireIdentifier::named(topic).expect("a topic name"),
            &WirePartitioning::PartitionId(partition),
            &messages,
        )
        .expect("an encodable batch");
        buf.to_vec()
    }

    /// A `PollMessages` body: `count` messages from `offset` of partition
    /// `partition` of `stream`/`topic`, for consumer `consumer`, no auto-commit.
    pub fn poll_body(
        consumer: u32,
        stream: &str,
        topic: &str,
        partition: u32,
        offset: u64,
        count: u32,
    ) -> Vec<u8> {
        PollMessagesRequest {
            consumer: WireConsumer::consumer(WireIdentifier::numeric(consumer)),
            stream_id: WireIdentifier::named(stream).expect("a stream name"),
            topic_id: WireIdentifier::named(topic).expect("a topic name"),
            partition_id: Some(partition),
            strategy: WirePollingStrategy::offset(offset),
            count,
            auto_commit: false,
        }
        .to_bytes()
        .to_vec()
    }

    /// A raw connection.
    pub struct RawClient {
        /// The socket.
        pub stream: TcpStream,
        /// The VSR client id sent in headers.
        pub client: u128,
        /// The session from the last login (0 before).
        pub session: u64,
        request: u64,
    }

    impl RawClient {
        /// Connects.
        pub async fn connect(address: std::net::SocketAddr) -> Self {
            let stream = within("raw connect", TcpStream::connect(address))
                .await
                .expect("raw connect");
            Self {
                stream,
                client: 0x5eed_u128 << 64 | 42,
                session: 0,
                request: 0,
            }
        }

        /// A raw client on an already connected socket (for example one bound to
        /// another source address).
        pub fn from_stream(stream: TcpStream) -> Self {
            Self {
                stream,
                client: 0x5eed_u128 << 64 | 42,
                session: 0,
                request: 0,
            }
        }

        /// Writes raw bytes.
        pub async fn write(&mut self, bytes: &[u8]) {
            within("raw write", self.stream.write_all(bytes))
                .await
                .expect("raw write");
        }

        /// Sends one well-formed request frame.
        pub async fn send(&mut self, operation: Operation, code: u32, body: &[u8]) {
            if !matches!(operation, Operation::NonReplicated | Operation::Register) {
                self.request += 1;
            }
            let request = if operation == Operation::Register {
                0
            } else {
                self.request
            };
            let session = if operation == Operation::Register {
                0
            } else {
                self.session
            };
            let size = u32::try_from(HEADER_SIZE + body.len()).unwrap();
            let mut frame =
                request_header(size, self.client, request, operation as u8, session, code).to_vec();
            frame.extend_from_slice(body);
            self.write(&frame).await;
        }

        /// Reads one frame; `None` when the server closed the connection.
        pub async fn read(&mut self) -> Option<Frame> {
            within("raw read", async {
                let mut header = vec![0u8; HEADER_SIZE];
                if self.stream.read_exact(&mut header).await.is_err() {
                    return None;
                }
                let size = u32_at(&header, 48) as usize;
                let mut body = vec![0u8; size.checked_sub(HEADER_SIZE).expect("size >= 256")];
                self.stream.read_exact(&mut body).await.ok()?;
                Some(Frame { header, body })
            })
            .await
        }

        /// Sends a request and reads its answer.
        pub async fn call(&mut self, operation: Operation, code: u32, body: &[u8]) -> Frame {
            self.send(operation, code, body).await;
            self.read().await.expect("the server answers")
        }

        /// Waits until the server closes the connection (reading and dropping
        /// whatever it still sends).
        pub async fn closed(&mut self) {
            within("the server to close the connection", async {
                let mut sink = [0u8; 4096];
                while let Ok(n) = self.stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }

        /// A Register body for user/password.
        pub fn login_body(username: &str, password: &str) -> Vec<u8> {
            let request = LoginRegisterRequest {
                version_info: ClientVersionInfo {
                    protocol_version: IGGY_PROTOCOL_VERSION,
                    sdk_name: WireName::new("raw-test").unwrap(),
                    sdk_version: WireName::new("0.0.0").unwrap(),
                },
                username: WireName::new(username).unwrap(),
                password: password.to_owned().into(),
                client_context: None,
            };
            let mut buf = BytesMut::new();
            request.encode(&mut buf);
            buf.to_vec()
        }

        /// Logs in; returns the reply (a reply or an eviction).
        pub async fn login(&mut self, username: &str, password: &str) -> Frame {
            let frame = self
                .call(
                    Operation::Register,
                    40,
                    &Self::login_body(username, password),
                )
                .await;
            if frame.is_reply() && frame.status() == 0 {
                // [count u32 = 0][user_id u32][session u64]...
                self.session = u64::from_le_bytes(frame.body[8..16].try_into().unwrap());
            }
            frame
        }
    }
}
