//! Revocation on the embedded broker's TCP listener, through the official `iggy`
//! 0.11.0 SDK: a live session loses its rights on its next request, and leaves its
//! consumer groups at once, when its user is deleted or deactivated, when the user's
//! password changes (the session that made the change keeps going), or when the
//! token it logged in with is deleted. Tokens of the root user do not survive a
//! restart with another root password.
//!
//! The broker answers a revoked session's request as one without a session
//! (`Unauthenticated`, or a `NoSession` eviction for a write); the SDK then signs
//! in again with the credentials it remembers, so what its caller sees is that
//! login being refused (`InvalidCredentials`, `InvalidPersonalAccessToken`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use iggy::prelude::*;
use iggy_binary_protocol::consensus::{EvictionReason, Operation};
use iggy_binary_protocol::requests::streams::CreateStreamRequest;
use iggy_binary_protocol::{WireEncode, WireName, WireOptions};
use rustok_iggy_connector::error_codes::ErrorCode;
use rustok_iggy_connector::{ConnectorConfig, EmbeddedConnector, IggyConnector, Secret};
use tests::wire::raw::RawClient;
use tests::wire::{WireBroker, anonymous_client, logged_in_client, within};

const ALICE: &str = "alice";
const GET_STREAMS: u32 = 201;
const ALICE_PASSWORD: &str = "wonderland";

fn id(name: &str) -> Identifier {
    Identifier::named(name).expect("a valid identifier")
}

/// The error code of `result`, which must be an error.
fn code<T: std::fmt::Debug>(result: Result<T, IggyError>) -> ErrorCode {
    ErrorCode(result.expect_err("refused").as_code())
}

/// A broker with stream `shop`, topic `orders` (2 partitions), group `workers`, and
/// user alice; returns it with a root client.
async fn bench() -> (WireBroker, IggyClient) {
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
    within(
        "create_user",
        root.create_user(
            ALICE,
            ALICE_PASSWORD,
            UserStatus::Active,
            Some(every_permission()),
        ),
    )
    .await
    .expect("alice");
    (broker, root)
}

/// Every global permission: these tests are about revocation, not permissions.
fn every_permission() -> Permissions {
    Permissions {
        global: GlobalPermissions {
            manage_servers: true,
            read_servers: true,
            manage_users: true,
            read_users: true,
            manage_streams: true,
            read_streams: true,
            manage_topics: true,
            read_topics: true,
            poll_messages: true,
            send_messages: true,
        },
        streams: None,
    }
}

/// Joins `workers` with `client`.
async fn join(client: &IggyClient) {
    within(
        "join_consumer_group",
        client.join_consumer_group(&id("shop"), &id("orders"), &id("workers")),
    )
    .await
    .expect("join");
}

async fn members(root: &IggyClient) -> u32 {
    within(
        "get_consumer_group",
        root.get_consumer_group(&id("shop"), &id("orders"), &id("workers")),
    )
    .await
    .expect("get_consumer_group")
    .expect("the group")
    .members_count
}

/// Waits (bounded) until `condition` holds, checking every 10 ms.
async fn until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            if condition().await {
                return;
            }
        }
    })
    .await;
}

/// `client` was revoked: its next request fails with `expected` (the SDK's login
/// again with what it remembers is refused), a write fails, and nothing it asks for
/// happens.
async fn assert_revoked(what: &str, client: &IggyClient, root: &IggyClient, expected: ErrorCode) {
    assert_eq!(
        code(within("get_streams", client.get_streams()).await),
        expected,
        "{what}: a read"
    );
    // What the SDK says for the write depends on the state its failed login left
    // it in; what matters is that it fails and nothing is created.
    within("create_stream", client.create_stream(what))
        .await
        .expect_err("a write of a revoked session");
    let streams = within("get_streams", root.get_streams()).await.unwrap();
    assert!(
        streams.iter().all(|s| s.name != what),
        "{what}: the revoked session's write took effect"
    );
}

/// The session still works.
async fn assert_works(what: &str, client: &IggyClient) {
    let streams = within("get_streams", client.get_streams())
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(streams.iter().any(|s| s.name == "shop"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_ends_its_sessions() {
    let (broker, root) = bench().await;
    let alice = logged_in_client(broker.address, ALICE, ALICE_PASSWORD).await;
    join(&alice).await;
    assert_eq!(members(&root).await, 1);
    within("delete_user", root.delete_user(&id(ALICE)))
        .await
        .expect("delete alice");
    // The group is left at once, before alice sends anything.
    until("alice leaves the group", || async {
        members(&root).await == 0
    })
    .await;
    assert_revoked(
        "deleted-user",
        &alice,
        &root,
        ErrorCode::INVALID_CREDENTIALS,
    )
    .await;

    // What the broker itself answers a revoked session, on a raw connection (the
    // SDK hides it behind its login again): a new user of the same name and
    // password does not inherit the session either.
    within(
        "create_user",
        root.create_user(
            "bob",
            "builder",
            UserStatus::Active,
            Some(every_permission()),
        ),
    )
    .await
    .unwrap();
    let mut raw = RawClient::connect(broker.address).await;
    assert_eq!(raw.login("bob", "builder").await.status(), 0);
    let reply = raw.call(Operation::NonReplicated, GET_STREAMS, &[]).await;
    assert_eq!(reply.status(), 0, "bob reads before the deletion");
    within("delete_user", root.delete_user(&id("bob")))
        .await
        .expect("delete bob");
    within(
        "create_user",
        root.create_user(
            "bob",
            "builder",
            UserStatus::Active,
            Some(every_permission()),
        ),
    )
    .await
    .unwrap();
    let reply = raw.call(Operation::NonReplicated, GET_STREAMS, &[]).await;
    assert_eq!(
        ErrorCode(reply.status()),
        ErrorCode::UNAUTHENTICATED,
        "a read of a deleted user's session"
    );
    let create = CreateStreamRequest {
        name: WireName::new("by-bob").unwrap(),
        options: WireOptions::empty(),
    }
    .to_bytes();
    let reply = raw.call(Operation::CreateStream, 202, &create).await;
    assert!(reply.is_eviction(), "{reply:?}");
    assert_eq!(reply.eviction_reason(), EvictionReason::NoSession as u8);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_a_user_ends_its_sessions() {
    let (broker, root) = bench().await;
    let alice = logged_in_client(broker.address, ALICE, ALICE_PASSWORD).await;
    join(&alice).await;
    within(
        "update_user",
        root.update_user(
            &id(ALICE),
            None,
            Some(UserStatus::Inactive),
            &UserUpdateOptions::default(),
        ),
    )
    .await
    .expect("deactivate alice");
    until("alice leaves the group", || async {
        members(&root).await == 0
    })
    .await;
    assert_revoked(
        "inactive-user",
        &alice,
        &root,
        ErrorCode::INVALID_CREDENTIALS,
    )
    .await;
    // Reactivated, her credentials work again.
    within(
        "update_user",
        root.update_user(
            &id(ALICE),
            None,
            Some(UserStatus::Active),
            &UserUpdateOptions::default(),
        ),
    )
    .await
    .expect("reactivate alice");
    let again = logged_in_client(broker.address, ALICE, ALICE_PASSWORD).await;
    assert_works("a login after reactivation", &again).await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_password_ends_the_other_sessions_and_tokens() {
    let (broker, root) = bench().await;
    // Alice changes her own password on one connection: that one keeps going, her
    // other session and her token end.
    let changer = logged_in_client(broker.address, ALICE, ALICE_PASSWORD).await;
    let other = logged_in_client(broker.address, ALICE, ALICE_PASSWORD).await;
    join(&other).await;
    let token = within(
        "create_personal_access_token",
        changer.create_personal_access_token("alice-ci", IggyExpiry::NeverExpire),
    )
    .await
    .expect("a token")
    .token;
    let by_token = anonymous_client(broker.address).await;
    within(
        "token login",
        by_token.login_with_personal_access_token(&token),
    )
    .await
    .expect("token login");
    within(
        "change_password",
        changer.change_password(&id(ALICE), ALICE_PASSWORD, "looking-glass"),
    )
    .await
    .expect("change the password");
    until("the other session leaves the group", || async {
        members(&root).await == 0
    })
    .await;
    assert_works("the session that changed the password", &changer).await;
    assert_revoked(
        "other-session",
        &other,
        &root,
        ErrorCode::INVALID_CREDENTIALS,
    )
    .await;
    assert_revoked(
        "token-session",
        &by_token,
        &root,
        ErrorCode::INVALID_PERSONAL_ACCESS_TOKEN,
    )
    .await;
    let fresh = anonymous_client(broker.address).await;
    assert_eq!(
        code(
            within(
                "token login",
                fresh.login_with_personal_access_token(&token)
            )
            .await
        ),
        ErrorCode::INVALID_PERSONAL_ACCESS_TOKEN,
        "the token went with the old password"
    );
    // An administrator changes it: every session of alice ends, root's stay.
    within(
        "change_password",
        root.change_password(&id(ALICE), "looking-glass", "through-the-glass"),
    )
    .await
    .expect("root changes alice's password");
    assert_revoked(
        "changed-by-root",
        &changer,
        &root,
        ErrorCode::INVALID_CREDENTIALS,
    )
    .await;
    assert_works("root", &root).await;
    let fresh = anonymous_client(broker.address).await;
    assert_eq!(
        code(within("old password", fresh.login_user(ALICE, "looking-glass")).await),
        ErrorCode::INVALID_CREDENTIALS
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_token_ends_the_sessions_that_used_it() {
    let (broker, root) = bench().await;
    let alice = logged_in_client(broker.address, ALICE, ALICE_PASSWORD).await;
    let mut tokens = Vec::new();
    for name in ["deploy", "backup"] {
        tokens.push(
            within(
                "create_personal_access_token",
                alice.create_personal_access_token(name, IggyExpiry::NeverExpire),
            )
            .await
            .expect("a token")
            .token,
        );
    }
    let deploy = anonymous_client(broker.address).await;
    within(
        "token login",
        deploy.login_with_personal_access_token(&tokens[0]),
    )
    .await
    .expect("deploy login");
    join(&deploy).await;
    let backup = anonymous_client(broker.address).await;
    within(
        "token login",
        backup.login_with_personal_access_token(&tokens[1]),
    )
    .await
    .expect("backup login");
    within(
        "delete_personal_access_token",
        alice.delete_personal_access_token("deploy"),
    )
    .await
    .expect("delete the token");
    until("the token session leaves the group", || async {
        members(&root).await == 0
    })
    .await;
    assert_revoked(
        "deleted-token",
        &deploy,
        &root,
        ErrorCode::INVALID_PERSONAL_ACCESS_TOKEN,
    )
    .await;
    assert_works("a session of another token", &backup).await;
    assert_works("the password session", &alice).await;
    broker.shutdown().await;
}

/// An embedded broker on `dir` with the root password `password`.
async fn open(dir: &Path, password: &str) -> (EmbeddedConnector, SocketAddr) {
    let mut config = ConnectorConfig::embedded(dir);
    config.embedded.tcp_enabled = true;
    config.embedded.tcp_address = "127.0.0.1".into();
    config.embedded.tcp_port = 0;
    config.embedded.root_password = Secret::new(password);
    let connector = EmbeddedConnector::new();
    within("open the broker", connector.connect(&config))
        .await
        .expect("the broker opens");
    let address = connector.tcp_address().expect("the listener");
    (connector, address)
}

async fn token_login(address: SocketAddr, token: &str) -> Result<IdentityInfo, IggyError> {
    let client = anonymous_client(address).await;
    let result = within(
        "token login",
        client.login_with_personal_access_token(token),
    )
    .await;
    let _ = client.shutdown().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_tokens_do_not_survive_a_new_root_password() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, address) = open(dir.path(), "first-secret").await;
    let root = logged_in_client(address, "iggy", "first-secret").await;
    let token = within(
        "create_personal_access_token",
        root.create_personal_access_token("ci-token", IggyExpiry::NeverExpire),
    )
    .await
    .expect("a root token")
    .token;
    let _ = root.shutdown().await;
    within("shutdown", broker.shutdown()).await.unwrap();

    // A restart with the same password keeps the token.
    let (broker, address) = open(dir.path(), "first-secret").await;
    token_login(address, &token)
        .await
        .expect("the same root password: the token works");
    within("shutdown", broker.shutdown()).await.unwrap();

    // A restart with a new password: the token is refused, and gone from the list.
    let (broker, address) = open(dir.path(), "second-secret").await;
    assert_eq!(
        code(token_login(address, &token).await),
        ErrorCode::INVALID_PERSONAL_ACCESS_TOKEN
    );
    let root = logged_in_client(address, "iggy", "second-secret").await;
    let listed = within(
        "get_personal_access_tokens",
        root.get_personal_access_tokens(),
    )
    .await
    .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    let _ = root.shutdown().await;
    within("shutdown", broker.shutdown()).await.unwrap();
}
