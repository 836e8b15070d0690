//! The embedded broker's TCP listener under clients that hold on to it: many
//! silent sockets, huge frames before login, a client that stops reading, a storm
//! of failed logins, more connections than allowed, connections that never log in.
//! Each must cost the broker a bounded amount and leave real clients (the official
//! `iggy` 0.11.0 SDK) working.
//!
//! The tests that read the broker's memory or hold many of its descriptors run it
//! as a process of its own (the `load-broker` helper), whose resident memory is
//! read from `/proc/<pid>/status`.
//!
//! File descriptors: the silent-socket test needs about 1,100 in this process; it
//! raises the soft open-file limit up to the hard one, and fails with a message
//! naming the limit if the hard limit is lower (raise it with `ulimit -Hn`).
//!
//! A binary of its own, not a module of the `wire` area binary: it changes this
//! process's open-file limit and holds about a thousand of its descriptors, which
//! the other wire tests running alongside would share.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use iggy::prelude::*;
use iggy_binary_protocol::consensus::{EvictionReason, HEADER_SIZE, Operation};
use rustok_iggy_connector::error_codes::ErrorCode;
use rustok_iggy_connector::{ConnectorConfig, ListenerLimits};
use tests::process::{BrokerOptions, BrokerProcess};
use tests::wire::raw::{RawClient, poll_body, request_header, send_body};
use tests::wire::{PASSWORD, USERNAME, WireBroker, logged_in_client, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const PING: u32 = 1;
const POLL_MESSAGES: u32 = 100;
const SEND_MESSAGES: u32 = 101;
/// The largest frame the listener takes (64 MiB).
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// The largest frame before login.
const MAX_FRAME_BEFORE_LOGIN: usize = 4096;
/// Password checks the listener runs at once.
const LOGIN_SLOTS: u64 = 4;

fn id(name: &str) -> Identifier {
    Identifier::named(name).expect("a valid identifier")
}

// ---- helpers ------------------------------------------------------------------------

/// The SDK does real work: a stream, a topic, a message sent and polled back.
async fn sdk_round_trip(client: &IggyClient, stream: &str) {
    within("create_stream", client.create_stream(stream))
        .await
        .expect("create_stream");
    let options = TopicCreateOptions {
        partitions_count: Some(1),
        ..Default::default()
    };
    within(
        "create_topic",
        client.create_topic(&id(stream), "events", &options),
    )
    .await
    .expect("create_topic");
    let mut messages = vec![
        IggyMessage::builder()
            .payload(bytes::Bytes::from_static(b"still served"))
            .build()
            .unwrap(),
    ];
    within(
        "send_messages",
        client.send_messages(
            &id(stream),
            &id("events"),
            &Partitioning::partition_id(0),
            &mut messages,
        ),
    )
    .await
    .expect("send_messages");
    let polled = within(
        "poll_messages",
        client.poll_messages(
            &id(stream),
            &id("events"),
            Some(0),
            &Consumer::new(Identifier::numeric(1).unwrap()),
            &PollingStrategy::offset(0),
            10,
            false,
        ),
    )
    .await
    .expect("poll_messages");
    assert_eq!(polled.messages.len(), 1);
    assert_eq!(&polled.messages[0].payload[..], b"still served");
}

/// Raises this process's soft open-file limit to at least `needed` (up to the hard
/// limit).
fn ensure_open_files(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|current| current >= needed) {
        return;
    }
    let hard = limit.maximum;
    assert!(
        hard.is_none_or(|hard| hard >= needed),
        "this test needs {needed} open files; the hard limit is {hard:?} (raise it: ulimit -Hn)"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: hard,
        },
    )
    .expect("raise the soft open-file limit");
}

/// A socket to `address` from the loopback source address `source`.
async fn connect_from(source: IpAddr, address: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind the source address");
    within("connect", socket.connect(address))
        .await
        .expect("connect")
}

/// Waits until the server closes `stream` (reading and dropping what it sends).
async fn closed_by_server(stream: &mut TcpStream) {
    within("the server closes the connection", async {
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

// ---- the tests ----------------------------------------------------------------------

/// 1,000 sockets that connect and never send a byte, against a broker allowed 512
/// open files: the listener keeps at most `max_unauthenticated` of them (each new
/// one replaces the oldest of its address), so it never runs out of descriptors,
/// and an SDK client connecting afterwards logs in and works. (Before, the broker
/// kept every silent socket, ran out of descriptors after about 500, and accepted
/// nothing more.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_do_not_lock_out_a_real_client() {
    const SILENT: usize = 1_000;
    ensure_open_files(SILENT as u64 + 256);
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        env!("CARGO_BIN_EXE_load-broker"),
        dir.path(),
        BrokerOptions {
            config: None,
            open_files: Some(512),
        },
    );
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(
            within("connect", TcpStream::connect(broker.address))
                .await
                .expect("a silent socket connects"),
        );
    }
    let client = logged_in_client(broker.address, USERNAME, PASSWORD).await;
    sdk_round_trip(&client, "after-silence").await;
    let stats = within("get_stats", client.get_stats()).await.unwrap();
    let kept = u64::from(ListenerLimits::default().max_unauthenticated) + 1;
    assert!(
        u64::from(stats.clients_count) <= kept,
        "{} clients connected: the silent sockets were not bounded",
        stats.clients_count
    );
    let _ = client.shutdown().await;
    drop(silent);
    broker.stop();
}

/// 20 connections that announce a 64 MiB frame before login and send all of it:
/// each is refused from its header (a login needs at most 4 KiB), so the broker's
/// peak resident memory stays near idle. (Before, it read every body: about
/// 20 × 64 MiB.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_frames_before_login_are_not_read() {
    const CONNECTIONS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        env!("CARGO_BIN_EXE_load-broker"),
        dir.path(),
        BrokerOptions::default(),
    );
    // Warm up: one SDK client, so that the idle figure includes a served client.
    let client = logged_in_client(broker.address, USERNAME, PASSWORD).await;
    sdk_round_trip(&client, "warm-up").await;
    let idle_kib = broker.status_kib("VmHWM");
    let frame = {
        let mut frame = request_header(
            u32::try_from(MAX_FRAME).unwrap(),
            7,
            0,
            Operation::NonReplicated as u8,
            0,
            PING,
        )
        .to_vec();
        frame.resize(MAX_FRAME, 0x5A);
        Arc::new(frame)
    };
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let frame = Arc::clone(&frame);
        let address = broker.address;
        senders.spawn(async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            // The broker refuses and closes: the write fails part way.
            let _ = stream.write_all(&frame).await;
            let mut header = vec![0u8; HEADER_SIZE];
            match stream.read_exact(&mut header).await {
                Ok(_) => Some(u32::from_le_bytes(header[216..220].try_into().unwrap())),
                Err(_) => None,
            }
        });
    }
    let mut refused = 0;
    within("the 20 senders", async {
        while let Some(status) = senders.join_next().await {
            if status.expect("a sender") == Some(ErrorCode::INVALID_FORMAT.0) {
                refused += 1;
            }
        }
    })
    .await;
    let peak_kib = broker.status_kib("VmHWM");
    let grown = peak_kib.saturating_sub(idle_kib);
    eprintln!(
        "{CONNECTIONS} connections sending 64 MiB before login: broker peak RSS {idle_kib} KiB -> {peak_kib} KiB ({refused} refusals read back)"
    );
    assert!(
        grown < 32 * 1024,
        "the broker's peak resident memory grew by {grown} KiB for frames it should not read"
    );
    // The broker still serves.
    sdk_round_trip(&client, "after-huge-frames").await;
    let _ = client.shutdown().await;
    broker.stop();
}

/// A client that asks for 32 poll replies of 16 MiB and never reads: the broker
/// holds at most about one reply for it, and closes the connection once the reply
/// has made no progress for `write_timeout`, releasing it. (Before, the connection
/// and its pending reply stayed for ever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected() {
    const MESSAGE: usize = 250 * 1024;
    const MESSAGES: u32 = 64;
    const POLLS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ConnectorConfig::embedded(dir.path());
    config.embedded.tcp_limits.write_timeout_ms = 1_000;
    let broker = BrokerProcess::start(
        env!("CARGO_BIN_EXE_load-broker"),
        dir.path(),
        BrokerOptions {
            config: Some(config),
            open_files: None,
        },
    );
    let admin = logged_in_client(broker.address, USERNAME, PASSWORD).await;
    within("create_stream", admin.create_stream("shop"))
        .await
        .unwrap();
    let options = TopicCreateOptions {
        partitions_count: Some(1),
        ..Default::default()
    };
    within(
        "create_topic",
        admin.create_topic(&id("shop"), "big", &options),
    )
    .await
    .unwrap();
    let mut slow = RawClient::connect(broker.address).await;
    assert_eq!(slow.login(USERNAME, PASSWORD).await.status(), 0);
    for chunk in 0..MESSAGES / 8 {
        let payloads: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i ^ chunk as u8; MESSAGE]).collect();
        let reply = slow
            .call(
                Operation::SendMessages,
                SEND_MESSAGES,
                &send_body("shop", "big", 0, &payloads),
            )
            .await;
        assert_eq!(reply.status(), 0);
    }
    // One reply read in full, so that the allocator has seen one of this size.
    let poll = poll_body(5, "shop", "big", 0, 0, MESSAGES);
    let reply = slow
        .call(Operation::NonReplicated, POLL_MESSAGES, &poll)
        .await;
    let reply_kib = u64::from(reply.size()) / 1024;
    drop(reply);
    let me = within("get_me", admin.get_me()).await.unwrap().client_id;
    let clients = within("get_clients", admin.get_clients()).await.unwrap();
    assert_eq!(
        clients.len(),
        2,
        "the admin and the slow client: {clients:?}"
    );
    let before_kib = broker.status_kib("VmRSS");
    for _ in 0..POLLS {
        slow.send(Operation::NonReplicated, POLL_MESSAGES, &poll)
            .await;
    }
    // The broker drops the connection that stopped reading; sample its memory
    // meanwhile.
    let mut peak_kib = before_kib;
    within("the broker drops the client that stopped reading", async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            peak_kib = peak_kib.max(broker.status_kib("VmRSS"));
            let clients = admin.get_clients().await.expect("get_clients");
            if clients.iter().all(|c| c.client_id == me) {
                return;
            }
        }
    })
    .await;
    let grown = peak_kib.saturating_sub(before_kib);
    eprintln!(
        "a client not reading {POLLS} replies of {reply_kib} KiB: broker RSS grew by {grown} KiB at most before it was dropped"
    );
    // A broker that buffered every reply would grow by all of them (POLLS of them). The
    // bound leaves room for what the allocator keeps: a freed reply buffer can stay
    // cached in each of the broker's threads' arenas (seen as 4 replies' worth under
    // a loaded test run).
    assert!(
        grown < 8 * reply_kib,
        "the broker held more than a few replies ({reply_kib} KiB each) for a client that does not read: {grown} KiB"
    );
    // What the client finds: at most what fit in the socket buffers, then the end.
    closed_by_server(&mut slow.stream).await;
    sdk_round_trip(&admin, "after-the-slow-client").await;
    let _ = admin.shutdown().await;
    broker.stop();
}

/// 64 connections from another address failing logins as fast as they can (each
/// closed after 3 failures reconnects): an SDK login waits for at most a few of
/// their password checks, not for all of those queued before it. (Before, the
/// login queue was one FIFO for everyone: the good login waited behind every
/// storming connection, about 60 checks.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_bad_logins_does_not_starve_a_good_one() {
    const STORM: usize = 64;
    let broker = WireBroker::start().await;
    let storm_source = IpAddr::from([127, 0, 0, 2]);
    let refusals = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut storm = tokio::task::JoinSet::new();
    for i in 0..STORM {
        let (refusals, stop, address) = (Arc::clone(&refusals), Arc::clone(&stop), broker.address);
        storm.spawn(async move {
            let body = RawClient::login_body(&format!("nobody-{i}"), "guess");
            while !stop.load(Ordering::Relaxed) {
                let mut raw = RawClient::from_stream(connect_from(storm_source, address).await);
                while !stop.load(Ordering::Relaxed) {
                    raw.send(Operation::Register, 40, &body).await;
                    match raw.read().await {
                        Some(frame) if frame.is_eviction() => {
                            refusals.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => break, // closed: reconnect
                    }
                }
            }
        });
    }
    // The storm is running: the queue is full of its logins.
    within("the storm starts", async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while refusals.load(Ordering::Relaxed) < 2 * STORM as u64 {
            tick.tick().await;
        }
    })
    .await;
    let client = tests::wire::anonymous_client(broker.address).await;
    let before = refusals.load(Ordering::Relaxed);
    within("the good login", client.login_user(USERNAME, PASSWORD))
        .await
        .expect("the good login succeeds during the storm");
    let waited_for = refusals.load(Ordering::Relaxed) - before;
    eprintln!(
        "a good login during a storm of {STORM} connections waited for {waited_for} of its failed checks"
    );
    // The checks running when it arrived, then about one per turn of the storming
    // address, with the replies in flight on either side.
    assert!(
        waited_for <= 3 * LOGIN_SLOTS,
        "the good login waited for {waited_for} failed logins of the storm"
    );
    sdk_round_trip(&client, "during-the-storm").await;
    stop.store(true, Ordering::Relaxed);
    within("the storm stops", async {
        while storm.join_next().await.is_some() {}
    })
    .await;
    let _ = client.shutdown().await;
    broker.shutdown().await;
}

/// A connection is closed after its third failed login (the third eviction is
/// still sent); a new connection may log in (no lock-out of the user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_closed_after_three_failed_logins() {
    let broker = WireBroker::start().await;
    let mut raw = RawClient::connect(broker.address).await;
    for attempt in 1..=3 {
        let frame = raw.login(USERNAME, "wrong").await;
        assert!(frame.is_eviction(), "attempt {attempt}: {frame:?}");
        assert_eq!(
            frame.eviction_reason(),
            EvictionReason::InvalidCredentials as u8
        );
    }
    raw.send(
        Operation::Register,
        40,
        &RawClient::login_body(USERNAME, PASSWORD),
    )
    .await;
    assert!(
        raw.read().await.is_none(),
        "a fourth login on the same connection is not answered"
    );
    // Two failures, then a success: the count starts again.
    let mut raw = RawClient::connect(broker.address).await;
    for _ in 0..2 {
        assert!(raw.login(USERNAME, "wrong").await.is_eviction());
    }
    assert_eq!(raw.login(USERNAME, PASSWORD).await.status(), 0);
    for _ in 0..2 {
        assert!(raw.login(USERNAME, "wrong").await.is_eviction());
    }
    assert_eq!(raw.login(USERNAME, PASSWORD).await.status(), 0);
    let client = broker.client().await;
    sdk_round_trip(&client, "no-lock-out").await;
    broker.shutdown().await;
}

/// With `max_connections` 4 and 4 clients logged in, a fifth connection is closed
/// at once (there is no connection that has not logged in to make room); once one
/// leaves, a new client gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused() {
    let broker = WireBroker::start_with(|config| {
        config.embedded.tcp_limits.max_connections = 4;
        config.embedded.tcp_limits.max_unauthenticated = 2;
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut raw = RawClient::connect(broker.address).await;
        assert_eq!(raw.login(USERNAME, PASSWORD).await.status(), 0);
        clients.push(raw);
    }
    let mut fifth = RawClient::connect(broker.address).await;
    closed_by_server(&mut fifth.stream).await;
    // Logged-in clients are served meanwhile.
    for raw in &mut clients {
        assert_eq!(
            raw.call(Operation::NonReplicated, PING, &[]).await.status(),
            0
        );
    }
    // One leaves: a new one gets in.
    drop(clients.pop());
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let client = within("a client gets in again", async {
        loop {
            tick.tick().await;
            let mut raw = RawClient::connect(broker.address).await;
            raw.send(
                Operation::Register,
                40,
                &RawClient::login_body(USERNAME, PASSWORD),
            )
            .await;
            if let Some(frame) = raw.read().await {
                assert_eq!(frame.status(), 0);
                return raw;
            }
            // Refused: the leaving connection was not yet gone.
        }
    })
    .await;
    drop(client);
    broker.shutdown().await;
}

/// Connections that never log in are closed: one silent from the start after
/// `first_frame_timeout`, one that pinged once after `unauthenticated_idle_timeout`,
/// one that logged out likewise; a logged-in connection idle for longer is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_do_not_log_in_time_out() {
    let broker = WireBroker::start_with(|config| {
        config.embedded.tcp_limits.first_frame_timeout_ms = 200;
        config.embedded.tcp_limits.unauthenticated_idle_timeout_ms = 300;
    })
    .await;
    let mut logged_in = RawClient::connect(broker.address).await;
    assert_eq!(logged_in.login(USERNAME, PASSWORD).await.status(), 0);
    let mut silent = RawClient::connect(broker.address).await;
    let mut pinged = RawClient::connect(broker.address).await;
    assert_eq!(
        pinged
            .call(Operation::NonReplicated, PING, &[])
            .await
            .status(),
        0
    );
    let mut logged_out = RawClient::connect(broker.address).await;
    assert_eq!(logged_out.login(USERNAME, PASSWORD).await.status(), 0);
    assert_eq!(
        logged_out.call(Operation::Logout, 39, &[]).await.status(),
        0
    );
    // Half a header does not count as a frame.
    let mut partial = RawClient::connect(broker.address).await;
    partial
        .write(&request_header(256, 1, 0, Operation::NonReplicated as u8, 0, PING)[..100])
        .await;
    closed_by_server(&mut silent.stream).await;
    closed_by_server(&mut pinged.stream).await;
    closed_by_server(&mut logged_out.stream).await;
    closed_by_server(&mut partial.stream).await;
    let pong = logged_in.call(Operation::NonReplicated, PING, &[]).await;
    assert_eq!(pong.status(), 0, "the logged-in connection is kept");
    broker.shutdown().await;
}

/// Before login a frame may be as large as a login can be (4 KiB) and no larger:
/// a larger one is answered `InvalidFormat` from its header and the connection is
/// closed. After login the 64 MiB limit applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_before_login_are_limited_to_what_a_login_needs() {
    let broker = WireBroker::start().await;
    let ping_of = |size: usize| {
        let mut frame = request_header(
            u32::try_from(size).unwrap(),
            7,
            0,
            Operation::NonReplicated as u8,
            0,
            PING,
        )
        .to_vec();
        frame.resize(size, 0);
        frame
    };
    let mut raw = RawClient::connect(broker.address).await;
    raw.write(&ping_of(MAX_FRAME_BEFORE_LOGIN)).await;
    let reply = raw.read().await.expect("a reply");
    assert_eq!(reply.status(), 0, "a ping of exactly 4 KiB before login");
    // One byte more: refused without its body being sent at all.
    raw.write(&ping_of(MAX_FRAME_BEFORE_LOGIN + 1)[..HEADER_SIZE])
        .await;
    let reply = raw.read().await.expect("an error reply");
    assert_eq!(ErrorCode(reply.status()), ErrorCode::INVALID_FORMAT);
    closed_by_server(&mut raw.stream).await;
    // Logged in, a larger ping is served.
    let mut raw = RawClient::connect(broker.address).await;
    assert_eq!(raw.login(USERNAME, PASSWORD).await.status(), 0);
    let mut frame = ping_of(64 * 1024);
    frame[184..192].copy_from_slice(&raw.session.to_le_bytes());
    raw.write(&frame).await;
    assert_eq!(raw.read().await.expect("a reply").status(), 0);
    broker.shutdown().await;
}
