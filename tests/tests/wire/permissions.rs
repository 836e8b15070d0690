//! Iggy's permission model on the embedded broker's TCP listener, through the
//! official `iggy` 0.11.0 SDK: what a user created with restricted permissions may
//! and may not do, permissions changed while a session is open, and the rights of
//! the root user.

use std::collections::BTreeMap;
use std::str::FromStr;

use iggy::prelude::*;
use tests::wire::{WireBroker, user_client, within};

fn id(name: &str) -> Identifier {
    Identifier::named(name).expect("a valid identifier")
}

fn unauthorized<T: std::fmt::Debug>(what: &str, result: Result<T, IggyError>) {
    match result {
        Err(IggyError::Unauthorized) => {}
        other => panic!("{what}: expected Unauthorized, got {other:?}"),
    }
}

/// Polls up to 10 messages of partition 0 of `shop`/`topic` from offset 0, as
/// consumer 1.
async fn poll_from_start(client: &IggyClient, topic: &str) -> Result<PolledMessages, IggyError> {
    let consumer = Consumer::new(Identifier::numeric(1).expect("an id"));
    within(
        "poll",
        client.poll_messages(
            &id("shop"),
            &id(topic),
            Some(0),
            &consumer,
            &PollingStrategy::offset(0),
            10,
            false,
        ),
    )
    .await
}

/// A broker with stream `shop`, topic `orders` (2 partitions) and one message.
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
    let mut messages = vec![IggyMessage::from_str("first").expect("a message")];
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

fn read_only_streams() -> Permissions {
    Permissions {
        global: GlobalPermissions {
            read_streams: true,
            ..Default::default()
        },
        streams: None,
    }
}

#[tokio::test]
async fn a_user_created_with_read_permissions_cannot_write() {
    let (broker, root) = shop().await;
    let reader = user_client(
        &root,
        broker.address,
        "reader",
        "reader-secret",
        Some(read_only_streams()),
    )
    .await;

    // Reads are allowed.
    let streams = within("get_streams", reader.get_streams())
        .await
        .expect("read_streams may list streams");
    assert_eq!(streams.len(), 1);
    let polled = poll_from_start(&reader, "orders")
        .await
        .expect("read_streams may poll");
    assert_eq!(polled.messages.len(), 1);

    // Writes are not.
    unauthorized(
        "create_stream",
        within("create_stream", reader.create_stream("other")).await,
    );
    unauthorized(
        "delete_stream",
        within("delete_stream", reader.delete_stream(&id("shop"))).await,
    );
    let mut messages = vec![IggyMessage::from_str("second").expect("a message")];
    unauthorized(
        "send_messages",
        within(
            "send",
            reader.send_messages(
                &id("shop"),
                &id("orders"),
                &Partitioning::partition_id(0),
                &mut messages,
            ),
        )
        .await,
    );
    unauthorized(
        "create_user",
        within(
            "create_user",
            reader.create_user("intruder", "intruder-secret", UserStatus::Active, None),
        )
        .await,
    );
    unauthorized("get_stats", within("get_stats", reader.get_stats()).await);

    // Nothing was changed by the refused commands.
    let streams = within("get_streams", root.get_streams())
        .await
        .expect("root");
    assert_eq!(
        streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["shop"]
    );
    let topic = within("get_topic", root.get_topic(&id("shop"), &id("orders")))
        .await
        .expect("get_topic")
        .expect("the topic");
    assert_eq!(topic.messages_count, 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_user_created_without_permissions_may_only_see_itself() {
    let (broker, root) = shop().await;
    let nobody = user_client(&root, broker.address, "nobody", "nobody-secret", None).await;
    unauthorized(
        "get_streams",
        within("get_streams", nobody.get_streams()).await,
    );
    unauthorized(
        "get_stream",
        within("get_stream", nobody.get_stream(&id("shop"))).await,
    );
    // Not found comes before permission, as on the Iggy server.
    let missing = within("get_stream", nobody.get_stream(&id("missing")))
        .await
        .expect("a missing stream reads as none");
    assert!(missing.is_none());
    let me = within("get_me", nobody.get_me()).await.expect("get_me");
    assert_eq!(me.user_id, Some(1));
    let own = within("get_user", nobody.get_user(&id("nobody")))
        .await
        .expect("a user may read itself")
        .expect("found");
    assert_eq!(own.permissions, None);
    unauthorized(
        "get_user root",
        within(
            "get_user",
            nobody.get_user(&Identifier::numeric(0).unwrap()),
        )
        .await,
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_topic_scoped_grant_reaches_that_topic_only() {
    let (broker, root) = shop().await;
    let options = TopicCreateOptions {
        partitions_count: Some(1),
        ..Default::default()
    };
    within(
        "create_topic",
        root.create_topic(&id("shop"), "refunds", &options),
    )
    .await
    .expect("a second topic");
    let stream = within("get_stream", root.get_stream(&id("shop")))
        .await
        .expect("get_stream")
        .expect("the stream");
    let orders = stream
        .topics
        .iter()
        .find(|t| t.name == "orders")
        .expect("orders")
        .id;
    let topics = BTreeMap::from([(
        orders as usize,
        TopicPermissions {
            poll_messages: true,
            ..Default::default()
        },
    )]);
    let streams = BTreeMap::from([(
        stream.id as usize,
        StreamPermissions {
            topics: Some(topics),
            ..Default::default()
        },
    )]);
    let permissions = Permissions {
        global: GlobalPermissions::default(),
        streams: Some(streams),
    };
    let auditor = user_client(
        &root,
        broker.address,
        "auditor",
        "auditor-secret",
        Some(permissions),
    )
    .await;
    let polled = poll_from_start(&auditor, "orders")
        .await
        .expect("the granted topic");
    assert_eq!(polled.messages.len(), 1);
    unauthorized("poll refunds", poll_from_start(&auditor, "refunds").await);
    unauthorized(
        "get_topic orders",
        within("get_topic", auditor.get_topic(&id("shop"), &id("orders"))).await,
    );
    broker.shutdown().await;
}

/// One command of the permission matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    GetStreams,
    GetStream,
    CreateStream,
    GetTopics,
    GetTopic,
    CreateTopic,
    GetConsumerGroups,
    Send,
    Poll,
    PollOtherTopic,
    StoreOffset,
    GetStats,
    GetClients,
    GetUsers,
    CreateUser,
    /// Last: it empties `orders`.
    PurgeTopic,
}

const PROBES: [Probe; 16] = [
    Probe::GetStreams,
    Probe::GetStream,
    Probe::CreateStream,
    Probe::GetTopics,
    Probe::GetTopic,
    Probe::CreateTopic,
    Probe::GetConsumerGroups,
    Probe::Send,
    Probe::Poll,
    Probe::PollOtherTopic,
    Probe::StoreOffset,
    Probe::GetStats,
    Probe::GetClients,
    Probe::GetUsers,
    Probe::CreateUser,
    Probe::PurgeTopic,
];

/// Runs `probe` as `client` (user `who`): `true` if it ran, `false` if it was
/// refused with `Unauthorized`; any other error fails the test.
async fn allowed(client: &IggyClient, who: &str, probe: Probe) -> bool {
    let shop = id("shop");
    let orders = id("orders");
    let consumer = Consumer::new(Identifier::numeric(7).unwrap());
    let unique = format!("{who}-{probe:?}").to_lowercase();
    let result: Result<(), IggyError> = match probe {
        Probe::GetStreams => client.get_streams().await.map(drop),
        Probe::GetStream => client.get_stream(&shop).await.map(drop),
        Probe::CreateStream => client.create_stream(&unique).await.map(drop),
        Probe::GetTopics => client.get_topics(&shop).await.map(drop),
        Probe::GetTopic => client.get_topic(&shop, &orders).await.map(drop),
        Probe::CreateTopic => client
            .create_topic(&shop, &unique, &TopicCreateOptions::default())
            .await
            .map(drop),
        Probe::GetConsumerGroups => client.get_consumer_groups(&shop, &orders).await.map(drop),
        Probe::Send => {
            let mut messages = vec![IggyMessage::from_str("probe").unwrap()];
            client
                .send_messages(
                    &shop,
                    &orders,
                    &Partitioning::partition_id(0),
                    &mut messages,
                )
                .await
                .map(drop)
        }
        Probe::Poll | Probe::PollOtherTopic => {
            let topic = if probe == Probe::Poll {
                "orders"
            } else {
                "refunds"
            };
            poll_from_start(client, topic).await.map(drop)
        }
        Probe::StoreOffset => {
            client
                .store_consumer_offset(&consumer, &shop, &orders, Some(0), 0)
                .await
        }
        Probe::GetStats => client.get_stats().await.map(drop),
        Probe::GetClients => client.get_clients().await.map(drop),
        Probe::GetUsers => client.get_users().await.map(drop),
        Probe::CreateUser => client
            .create_user(&unique, "probe-secret", UserStatus::Active, None)
            .await
            .map(drop),
        Probe::PurgeTopic => client.purge_topic(&shop, &orders).await,
    };
    match result {
        Ok(()) => true,
        Err(IggyError::Unauthorized) => false,
        Err(e) => panic!("{who}: {probe:?} failed with {e:?} (not a permission refusal)"),
    }
}

fn only(set: impl FnOnce(&mut GlobalPermissions)) -> Permissions {
    let mut global = GlobalPermissions::default();
    set(&mut global);
    Permissions {
        global,
        streams: None,
    }
}

/// Each subject's permissions, and the probes it may run (all others are
/// refused). The expectations are the Iggy server's permission rules, written out
/// by hand: the stronger grants include the weaker ones, a grant never restricts.
#[tokio::test]
async fn each_permission_allows_exactly_what_the_iggy_server_allows() {
    use Probe::*;
    let (broker, root) = shop().await;
    within(
        "create_topic",
        root.create_topic(&id("shop"), "refunds", &TopicCreateOptions::default()),
    )
    .await
    .expect("a second topic");
    let stream = within("get_stream", root.get_stream(&id("shop")))
        .await
        .expect("get_stream")
        .expect("the stream");
    let stream_id = stream.id as usize;
    let orders_id = stream
        .topics
        .iter()
        .find(|t| t.name == "orders")
        .expect("orders")
        .id as usize;

    let stream_scoped = Permissions {
        global: GlobalPermissions::default(),
        streams: Some(BTreeMap::from([(
            stream_id,
            StreamPermissions {
                read_stream: true,
                ..Default::default()
            },
        )])),
    };
    let topic_scoped = Permissions {
        global: GlobalPermissions::default(),
        streams: Some(BTreeMap::from([(
            stream_id,
            StreamPermissions {
                topics: Some(BTreeMap::from([(
                    orders_id,
                    TopicPermissions {
                        manage_topic: true,
                        ..Default::default()
                    },
                )])),
                ..Default::default()
            },
        )])),
    };
    let reads_topics = [
        GetTopics,
        GetTopic,
        GetConsumerGroups,
        Poll,
        PollOtherTopic,
        StoreOffset,
    ];
    let subjects: Vec<(&str, Permissions, Vec<Probe>)> = vec![
        (
            "manage-servers",
            only(|g| g.manage_servers = true),
            vec![GetStats, GetClients],
        ),
        (
            "read-servers",
            only(|g| g.read_servers = true),
            vec![GetStats, GetClients],
        ),
        (
            "manage-users",
            only(|g| g.manage_users = true),
            vec![GetUsers, CreateUser],
        ),
        ("read-users", only(|g| g.read_users = true), vec![GetUsers]),
        (
            "manage-streams",
            only(|g| g.manage_streams = true),
            [
                GetStreams,
                GetStream,
                CreateStream,
                CreateTopic,
                Send,
                PurgeTopic,
            ]
            .into_iter()
            .chain(reads_topics)
            .collect(),
        ),
        (
            "read-streams",
            only(|g| g.read_streams = true),
            [GetStreams, GetStream]
                .into_iter()
                .chain(reads_topics)
                .collect(),
        ),
        (
            "manage-topics",
            only(|g| g.manage_topics = true),
            [CreateTopic, Send, PurgeTopic]
                .into_iter()
                .chain(reads_topics)
                .collect(),
        ),
        (
            "read-topics",
            only(|g| g.read_topics = true),
            reads_topics.to_vec(),
        ),
        (
            "poll-messages",
            only(|g| g.poll_messages = true),
            vec![Poll, PollOtherTopic, StoreOffset],
        ),
        (
            "send-messages",
            only(|g| g.send_messages = true),
            vec![Send],
        ),
        (
            "stream-read",
            stream_scoped,
            [GetStream].into_iter().chain(reads_topics).collect(),
        ),
        (
            "topic-manage",
            topic_scoped,
            vec![
                GetTopic,
                GetConsumerGroups,
                Send,
                Poll,
                StoreOffset,
                PurgeTopic,
            ],
        ),
        ("no-permission", Permissions::default(), vec![]),
    ];

    let mut wrong = Vec::new();
    for (who, permissions, may) in subjects {
        let client = user_client(
            &root,
            broker.address,
            who,
            "matrix-secret",
            Some(permissions),
        )
        .await;
        for probe in PROBES {
            let expected = may.contains(&probe);
            let got = within("probe", allowed(&client, who, probe)).await;
            if got != expected {
                wrong.push(format!(
                    "{who} {probe:?}: allowed={got}, expected {expected}"
                ));
            }
        }
        // A refused probe changed nothing: the streams are those created by
        // allowed probes only.
        let streams = within("get_streams", root.get_streams())
            .await
            .expect("root");
        let created = format!("{who}-createstream");
        assert_eq!(
            streams.iter().any(|s| s.name == created),
            may.contains(&CreateStream),
            "{who}: the stream of CreateStream"
        );
    }
    assert!(
        wrong.is_empty(),
        "permission matrix differs:\n{}",
        wrong.join("\n")
    );
    broker.shutdown().await;
}

/// A grant or revocation of permissions applies to the user's open session from
/// its next request, and only a user manager may change permissions.
#[tokio::test]
async fn updated_permissions_apply_to_an_open_session() {
    let (broker, root) = shop().await;
    let editor = user_client(&root, broker.address, "editor", "editor-secret", None).await;
    unauthorized(
        "create_stream before the grant",
        within("create_stream", editor.create_stream("drafts")).await,
    );
    // The user itself may not grant itself anything.
    unauthorized(
        "update_permissions by the user",
        within(
            "update_permissions",
            editor.update_permissions(&id("editor"), Some(only(|g| g.manage_streams = true))),
        )
        .await,
    );
    within(
        "update_permissions",
        root.update_permissions(&id("editor"), Some(only(|g| g.manage_streams = true))),
    )
    .await
    .expect("root grants manage_streams");
    within("create_stream", editor.create_stream("drafts"))
        .await
        .expect("the same session may create streams now");
    let details = within("get_user", root.get_user(&id("editor")))
        .await
        .expect("get_user")
        .expect("found");
    let stored = details.permissions.expect("stored permissions");
    assert!(stored.global.manage_streams && !stored.global.manage_users);

    within(
        "update_permissions",
        root.update_permissions(&id("editor"), None),
    )
    .await
    .expect("root revokes everything");
    unauthorized(
        "create_stream after the revocation",
        within("create_stream", editor.create_stream("more-drafts")).await,
    );
    unauthorized(
        "get_streams after the revocation",
        within("get_streams", editor.get_streams()).await,
    );

    // Refusals: the root user's permissions are fixed; an unknown user is not found.
    match within(
        "update_permissions root",
        root.update_permissions(&Identifier::numeric(0).unwrap(), None),
    )
    .await
    {
        Err(IggyError::CannotChangePermissions(_)) => {}
        other => panic!("root's permissions: expected CannotChangePermissions, got {other:?}"),
    }
    let missing = within(
        "update_permissions missing",
        root.update_permissions(&id("ghost"), None),
    )
    .await;
    assert!(
        matches!(missing, Err(IggyError::ResourceNotFound(_))),
        "an unknown user: got {missing:?}"
    );
    broker.shutdown().await;
}
