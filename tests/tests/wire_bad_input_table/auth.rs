//! Authentication: every command before login, forged and stale sessions, wrong
//! passwords and tokens, and a storm of failed logins.

use std::time::Duration;

use iggy::prelude::{StreamClient, TopicClient, UserClient};
use iggy_binary_protocol::consensus::{EvictionReason, Operation};
use iggy_binary_protocol::requests::streams::CreateStreamRequest;
use iggy_binary_protocol::{COMMAND_TABLE, WireEncode, WireName, WireOptions};
use tests::wire::raw::RawClient;
use tests::wire::table::*;
use tests::wire::{PASSWORD, USERNAME, within};

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
