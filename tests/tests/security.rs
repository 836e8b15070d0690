//! Security properties of the embedded broker and its Iggy TCP listener:
//!
//! - the listeners bind loopback by default;
//! - credentials are never logged, even at TRACE, on the broker or the client side;
//! - passwords and tokens are hashed at rest (`users.json`), the root password is
//!   not written at all;
//! - the data directory is created owner-only (0o700) and its metadata files are
//!   0o600;
//! - a failed login does not reveal whether the user exists: same error, same
//!   eviction frame, same time (within a factor of 3) for an unknown user, a wrong
//!   password, the root user and an inactive user.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use iggy::prelude::{
    Client, ConsumerOffsetClient, IggyClient, IggyError, IggyExpiry, PersonalAccessTokenClient,
    StreamClient, TopicClient, UserClient, UserStatus,
};
use iggy_binary_protocol::consensus::Operation;
use rustok_iggy::IggyConfig;
use rustok_iggy_connector::{
    ConnectorConfig, EmbeddedConnector, EmbeddedConnectorConfig, IggyConnector, RemoteConnector,
    Secret,
};
use tests::conformance::remote_config;
use tests::wire::raw::RawClient;
use tests::wire::{WireBroker, within};

/// One test at a time: the timing comparison must not share the CPU (or the
/// listener's 4 Argon2 slots) with the other tests' logins.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- log capture --------------------------------------------------------------------

/// Everything every subscriber-visible span and event of this process wrote.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .try_init()
            .expect("the only global subscriber of this test binary");
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
}

// ---- helpers ------------------------------------------------------------------------

async fn sdk(address: SocketAddr) -> IggyClient {
    tests::wire::anonymous_client(address).await
}

/// An SDK login on a fresh connection.
async fn try_login(address: SocketAddr, username: &str, password: &str) -> Result<(), IggyError> {
    let client = sdk(address).await;
    let result = within("login", client.login_user(username, password))
        .await
        .map(|_| ());
    let _ = client.shutdown().await;
    result
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file and directory under `root`.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

// ---- loopback by default ------------------------------------------------------------

#[tokio::test]
async fn the_listeners_bind_loopback_by_default() {
    let _serial = SERIAL.lock().await;
    let loopback = |address: &str| {
        let ip: IpAddr = address.parse().expect("an IP address");
        assert!(ip.is_loopback(), "{address} is not a loopback address");
    };
    // Every way of getting a configuration.
    let defaults = EmbeddedConnectorConfig::default();
    loopback(&defaults.tcp_address);
    loopback(&defaults.http_address);
    let embedded = ConnectorConfig::embedded("/nonexistent").embedded;
    loopback(&embedded.tcp_address);
    loopback(&embedded.http_address);
    let deserialized: EmbeddedConnectorConfig =
        serde_json::from_str("{}").expect("an empty embedded section");
    loopback(&deserialized.tcp_address);
    loopback(&deserialized.http_address);
    let yaml = IggyConfig::from_section_yaml("mode: embedded\n").expect("a minimal section");
    loopback(&yaml.connector_config().embedded.tcp_address);
    loopback(&yaml.connector_config().embedded.http_address);
    assert!(
        defaults
            .tcp_socket_address()
            .expect("resolvable")
            .ip()
            .is_loopback()
    );

    // A broker started with the listeners on and the addresses left alone.
    let dir = tempfile::tempdir().unwrap();
    let mut config = ConnectorConfig::embedded(dir.path());
    config.embedded.tcp_enabled = true;
    config.embedded.tcp_port = 0;
    config.embedded.http_enabled = true;
    config.embedded.http_port = 0;
    let connector = EmbeddedConnector::new();
    within("start the broker", connector.connect(&config))
        .await
        .expect("the broker starts");
    let tcp = connector.tcp_address().expect("the TCP listener is on");
    let http = connector.http_address().expect("the HTTP endpoint is on");
    assert!(tcp.ip().is_loopback(), "TCP listener on {tcp}");
    assert!(http.ip().is_loopback(), "HTTP endpoint on {http}");
    assert!(TcpStream::connect(tcp).is_ok(), "reachable on loopback");
    // Not reachable on this machine's other addresses (if it has one).
    if let Some(ip) = outward_ip() {
        for port in [tcp.port(), http.port()] {
            let refused =
                TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2));
            assert!(refused.is_err(), "the listener answers on {ip}:{port}");
        }
    } else {
        eprintln!("no non-loopback address on this machine: the outside check was skipped");
    }
    within("shutdown", connector.shutdown()).await.unwrap();
}

/// The address this machine would use towards the outside (no packet is sent).
fn outward_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?; // TEST-NET-1: never routed
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

// ---- credentials never logged -------------------------------------------------------

const ROOT_SECRET: &str = "Root-Pass-5d1c-7a1e";
const WRONG_SECRET: &str = "Wrong-Pass-9e2b-44f0";
const USER_SECRET: &str = "User-Pass-3a7f-bb21";
const NEW_SECRET: &str = "New-Pass-6c0d-1f93";
const BOGUS_TOKEN: &str = "Bogus-Token-0af3c9d2e81b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_never_logged() {
    let _serial = SERIAL.lock().await;
    let _ = logs();
    let broker = WireBroker::start_with(|c| {
        c.embedded.root_password = Secret::new(ROOT_SECRET);
    })
    .await;
    let address = broker.address;

    // Root: a wrong and a right password.
    assert!(try_login(address, "iggy", WRONG_SECRET).await.is_err());
    let admin = sdk(address).await;
    within("login root", admin.login_user("iggy", ROOT_SECRET))
        .await
        .expect("root logs in");
    // A created user: wrong and right password, a password change.
    within(
        "create_user",
        admin.create_user("alice", USER_SECRET, UserStatus::Active, None),
    )
    .await
    .expect("create alice");
    assert!(try_login(address, "alice", WRONG_SECRET).await.is_err());
    try_login(address, "alice", USER_SECRET)
        .await
        .expect("alice logs in");
    let alice = sdk(address).await;
    within("login alice", alice.login_user("alice", USER_SECRET))
        .await
        .unwrap();
    within(
        "change_password",
        alice.change_password(
            &iggy::prelude::Identifier::named("alice").unwrap(),
            USER_SECRET,
            NEW_SECRET,
        ),
    )
    .await
    .expect("change the password");
    // A personal access token: used, and a bogus one.
    let token = within(
        "create_personal_access_token",
        admin.create_personal_access_token("ci-token", IggyExpiry::NeverExpire),
    )
    .await
    .expect("a token")
    .token;
    let by_token = sdk(address).await;
    within(
        "login with the token",
        by_token.login_with_personal_access_token(&token),
    )
    .await
    .expect("the token logs in");
    let bogus = sdk(address).await;
    assert!(
        within(
            "login with a bogus token",
            bogus.login_with_personal_access_token(BOGUS_TOKEN),
        )
        .await
        .is_err()
    );
    // The SDK's connection string, and the remote connector (client side).
    let from_string =
        IggyClient::from_connection_string(&format!("iggy://iggy:{ROOT_SECRET}@{address}"))
            .expect("a connection string");
    within("connect", from_string.connect()).await.unwrap();
    within("get_streams", from_string.get_streams())
        .await
        .expect("logged in through the connection string");
    let mut wrong = remote_config(&address.to_string(), "iggy", WRONG_SECRET);
    wrong.remote.reconnection_retries = 1;
    let remote = RemoteConnector::new();
    assert!(
        within("remote, wrong password", remote.connect(&wrong))
            .await
            .is_err()
    );
    let right = remote_config(&address.to_string(), "iggy", ROOT_SECRET);
    let remote = RemoteConnector::new();
    within("remote, right password", remote.connect(&right))
        .await
        .expect("the remote connector logs in");
    within("remote shutdown", remote.shutdown()).await.unwrap();
    // Configurations printed with `{:?}`, as an application might log them.
    let printed = format!("{right:?} {:?} {:?}", broker.connector, remote);
    for secret in [ROOT_SECRET, WRONG_SECRET] {
        assert!(!printed.contains(secret), "Debug output shows {secret:?}");
    }
    broker.shutdown().await;

    let logs = captured();
    assert!(
        logs.contains("login refused"),
        "the capture works (the broker's refusals are in it)"
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "debug-level lines are captured"
    );
    for secret in [
        ROOT_SECRET,
        WRONG_SECRET,
        USER_SECRET,
        NEW_SECRET,
        BOGUS_TOKEN,
        &token,
    ] {
        assert!(
            !logs.contains(secret),
            "a credential was logged: {secret:?} in\n{}",
            logs.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    eprintln!(
        "{} log lines captured at TRACE, no credential among them",
        logs.lines().count()
    );
}

// ---- hashed at rest, owner-only files -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_tokens_are_hashed_at_rest() {
    let _serial = SERIAL.lock().await;
    let broker = WireBroker::start_with(|c| {
        c.embedded.root_password = Secret::new(ROOT_SECRET);
    })
    .await;
    let admin = sdk(broker.address).await;
    within("login", admin.login_user("iggy", ROOT_SECRET))
        .await
        .unwrap();
    within(
        "create_user",
        admin.create_user("bob", USER_SECRET, UserStatus::Active, None),
    )
    .await
    .unwrap();
    let token = within(
        "create_personal_access_token",
        admin.create_personal_access_token("deploy", IggyExpiry::NeverExpire),
    )
    .await
    .unwrap()
    .token;
    let users_json = std::fs::read_to_string(broker.data_dir().join("users.json"))
        .expect("users.json exists after a user was created");
    assert!(
        !users_json.contains(USER_SECRET),
        "plaintext password at rest"
    );
    assert!(!users_json.contains(&token), "plaintext token at rest");
    assert!(!users_json.contains(ROOT_SECRET), "root password at rest");
    let users: serde_json::Value = serde_json::from_str(&users_json).unwrap();
    let hash = users["users"][0]["password_hash"].as_str().expect("a hash");
    assert!(
        hash.starts_with("$argon2id$"),
        "an Argon2id PHC string: {hash}"
    );
    let token_hash = users["tokens"][0]["token_hash"]
        .as_str()
        .expect("a token hash");
    assert!(
        token_hash.len() == 64 && token_hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "a SHA-256 digest: {token_hash}"
    );
    // No file of the data directory holds any of the secrets.
    broker
        .shutdown_keeping_files(|root| {
            for path in walk(root).into_iter().filter(|p| p.is_file()) {
                let bytes = std::fs::read(&path).unwrap();
                for secret in [ROOT_SECRET, USER_SECRET, token.as_str()] {
                    assert!(
                        !contains(&bytes, secret),
                        "{} holds a secret in plaintext",
                        path.display()
                    );
                }
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_metadata_files_are_owner_only() {
    let _serial = SERIAL.lock().await;
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("deep").join("iggy-data");
    let broker = WireBroker::start_with(|c| {
        c.embedded.data_dir = data_dir.clone();
    })
    .await;
    assert_eq!(broker.connector.data_dir().unwrap(), data_dir);
    let admin = broker.client().await;
    within("create_stream", admin.create_stream("vault"))
        .await
        .unwrap();
    let topic = iggy::prelude::TopicCreateOptions {
        partitions_count: Some(1),
        ..Default::default()
    };
    let named = |n: &str| iggy::prelude::Identifier::named(n).unwrap();
    within(
        "create_topic",
        admin.create_topic(&named("vault"), "keys", &topic),
    )
    .await
    .unwrap();
    within(
        "store_consumer_offset",
        admin.store_consumer_offset(
            &iggy::prelude::Consumer::new(iggy::prelude::Identifier::numeric(1).unwrap()),
            &named("vault"),
            &named("keys"),
            Some(0),
            0,
        ),
    )
    .await
    .ok();
    within(
        "create_user",
        admin.create_user("carol", USER_SECRET, UserStatus::Active, None),
    )
    .await
    .unwrap();

    // Every directory the broker created is 0o700.
    for dir in [parent.path().join("deep"), data_dir.clone()] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    // The metadata files are 0o600.
    for file in ["users.json", "metadata.json"] {
        let path = data_dir.join(file);
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    let mut report = Vec::new();
    for path in walk(&data_dir) {
        let m = mode(&path);
        if path.extension().is_some_and(|e| e == "json") {
            assert_eq!(m & 0o077, 0, "{} is readable by others", path.display());
        }
        report.push(format!(
            "{:o} {}",
            m,
            path.strip_prefix(&data_dir).unwrap().display()
        ));
    }
    eprintln!("data directory 0o700; entries:\n  {}", report.join("\n  "));
    broker.shutdown().await;
}

/// Lets a test look at the data directory after a clean shutdown.
trait ShutdownKeepingFiles {
    async fn shutdown_keeping_files(self, look: impl FnOnce(&Path));
}

impl ShutdownKeepingFiles for WireBroker {
    async fn shutdown_keeping_files(self, look: impl FnOnce(&Path)) {
        let root = self.data_dir().to_owned();
        within("shutdown", self.connector.shutdown())
            .await
            .expect("clean shutdown");
        look(&root);
        drop(self);
    }
}

// ---- failed logins reveal nothing ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_do_not_reveal_whether_a_user_exists() {
    let _serial = SERIAL.lock().await;
    // The comparisons below fail 24 logins on one connection: more than the
    // listener allows by default before it closes a connection.
    let broker = WireBroker::start_with(|c| c.embedded.tcp_limits.max_failed_logins = 100).await;
    let address = broker.address;
    let admin = broker.client().await;
    within(
        "create_user",
        admin.create_user("dave", USER_SECRET, UserStatus::Active, None),
    )
    .await
    .unwrap();
    within(
        "create_user",
        admin.create_user("erin", USER_SECRET, UserStatus::Inactive, None),
    )
    .await
    .unwrap();

    // The same SDK error for each way of failing.
    let attempts = [
        ("an unknown user", "nobody", USER_SECRET),
        ("a wrong password", "dave", WRONG_SECRET),
        ("a wrong root password", "iggy", WRONG_SECRET),
        ("an inactive user", "erin", USER_SECRET),
    ];
    let mut errors = Vec::new();
    for (what, username, password) in attempts {
        let error = try_login(address, username, password)
            .await
            .expect_err(what);
        errors.push((what, error.as_code(), error.to_string()));
    }
    for pair in errors.windows(2) {
        assert_eq!(
            (pair[0].1, &pair[0].2),
            (pair[1].1, &pair[1].2),
            "{} and {} fail differently",
            pair[0].0,
            pair[1].0
        );
    }
    // The same eviction frame, byte for byte.
    let mut raw = RawClient::connect(address).await;
    let mut frames = Vec::new();
    for (_, username, password) in attempts {
        let frame = raw.login(username, password).await;
        assert!(frame.is_eviction());
        frames.push(frame.header);
    }
    assert!(
        frames.windows(2).all(|w| w[0] == w[1]),
        "identical evictions"
    );
    // The same time, within a factor of 3 (the fastest of 5 tries each): an
    // unknown user or a wrong root password costs an Argon2 verification too.
    let mut fastest = Vec::new();
    for (what, username, password) in attempts {
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let frame = raw
                .call(
                    Operation::Register,
                    40,
                    &RawClient::login_body(username, password),
                )
                .await;
            best = best.min(started.elapsed());
            assert!(frame.is_eviction());
        }
        fastest.push((what, best));
    }
    eprintln!("fastest failed login: {fastest:?}");
    let slowest = fastest.iter().map(|(_, d)| *d).max().unwrap();
    for (what, best) in &fastest {
        assert!(
            *best * 3 >= slowest,
            "{what} fails in {best:?}, the slowest failure takes {slowest:?}: timing tells them apart"
        );
    }
    // The remote connector says the same for an unknown user and a wrong password.
    let mut messages = Vec::new();
    for (username, password) in [("nobody", USER_SECRET), ("dave", WRONG_SECRET)] {
        let mut config = remote_config(&address.to_string(), username, password);
        config.remote.reconnection_retries = 1;
        let remote = RemoteConnector::new();
        let error = within("remote connect", remote.connect(&config))
            .await
            .expect_err("refused");
        messages.push(error.to_string().replace(username, "USER"));
    }
    assert_eq!(messages[0], messages[1], "the remote connector's errors");
    // Personal access tokens: unknown and deleted ones fail alike.
    let token = within(
        "create_personal_access_token",
        admin.create_personal_access_token("short-lived", IggyExpiry::NeverExpire),
    )
    .await
    .unwrap()
    .token;
    within(
        "delete_personal_access_token",
        admin.delete_personal_access_token("short-lived"),
    )
    .await
    .unwrap();
    let mut token_errors = Vec::new();
    for candidate in [token.as_str(), BOGUS_TOKEN] {
        let client = sdk(address).await;
        let error = within(
            "token login",
            client.login_with_personal_access_token(candidate),
        )
        .await
        .expect_err("refused");
        token_errors.push((error.as_code(), error.to_string()));
    }
    assert_eq!(
        token_errors[0], token_errors[1],
        "deleted and unknown tokens"
    );
    broker.shutdown().await;
}
