//! Renaming streams and topics on the embedded broker's TCP listener, through the
//! official `iggy` 0.11.0 SDK: the new name reaches the same data and consumer
//! offsets, the old name is gone, and the refusals are the Iggy server's.

use std::str::FromStr;

use iggy::prelude::*;
use rustok_iggy_connector::error_codes::ErrorCode;
use tests::wire::{WireBroker, anonymous_client, user_client, within};

fn id(name: &str) -> Identifier {
    Identifier::named(name).expect("a valid identifier")
}

/// The error code of `result`, which must be an error.
fn code<T: std::fmt::Debug>(result: Result<T, IggyError>) -> ErrorCode {
    ErrorCode(result.expect_err("refused").as_code())
}

/// A broker with streams `shop` (topics `orders` and `refunds`) and `archive`,
/// 3 messages in `shop/orders`, and consumer 5's offset 1 stored there.
async fn shop() -> (WireBroker, IggyClient) {
    let broker = WireBroker::start().await;
    let root = broker.client().await;
    for stream in ["shop", "archive"] {
        within("create_stream", root.create_stream(stream))
            .await
            .expect("stream");
    }
    for topic in ["orders", "refunds"] {
        within(
            "create_topic",
            root.create_topic(&id("shop"), topic, &TopicCreateOptions::default()),
        )
        .await
        .expect("topic");
    }
    let mut messages: Vec<IggyMessage> = ["a", "b", "c"]
        .into_iter()
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
    within(
        "store_consumer_offset",
        root.store_consumer_offset(&consumer(), &id("shop"), &id("orders"), Some(0), 1),
    )
    .await
    .expect("store offset");
    (broker, root)
}

fn consumer() -> Consumer {
    Consumer::new(Identifier::numeric(5).unwrap())
}

/// Messages of `stream/topic` partition 0 from offset 0, and consumer 5's offset.
async fn contents(client: &IggyClient, stream: &str, topic: &str) -> (Vec<String>, Option<u64>) {
    let polled = within(
        "poll",
        client.poll_messages(
            &id(stream),
            &id(topic),
            Some(0),
            &consumer(),
            &PollingStrategy::offset(0),
            10,
            false,
        ),
    )
    .await
    .expect("poll");
    let offset = within(
        "get_consumer_offset",
        client.get_consumer_offset(&consumer(), &id(stream), &id(topic), Some(0)),
    )
    .await
    .expect("get_consumer_offset")
    .map(|o| o.stored_offset);
    let payloads = polled
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    (payloads, offset)
}

fn reader() -> Option<Permissions> {
    Some(Permissions {
        global: GlobalPermissions {
            read_streams: true,
            ..Default::default()
        },
        streams: None,
    })
}

#[tokio::test]
async fn update_stream_renames_a_stream_with_its_topics() {
    let (broker, root) = shop().await;
    let before = contents(&root, "shop", "orders").await;
    within(
        "update_stream",
        root.update_stream(&id("shop"), "store", &StreamUpdateOptions::default()),
    )
    .await
    .expect("rename");
    let stream = within("get_stream", root.get_stream(&id("store")))
        .await
        .expect("get_stream")
        .expect("the renamed stream");
    assert_eq!(stream.topics_count, 2);
    assert!(
        within("get_stream", root.get_stream(&id("shop")))
            .await
            .expect("get_stream")
            .is_none(),
        "the old name is gone"
    );
    assert_eq!(contents(&root, "store", "orders").await, before);
    // Appends go on under the new name.
    let mut messages = vec![IggyMessage::from_str("d").unwrap()];
    within(
        "send",
        root.send_messages(
            &id("store"),
            &id("orders"),
            &Partitioning::partition_id(0),
            &mut messages,
        ),
    )
    .await
    .expect("send to the renamed stream");
    assert_eq!(contents(&root, "store", "orders").await.0.len(), 4);
    // Its own name again: nothing changes.
    within(
        "update_stream",
        root.update_stream(&id("store"), "store", &StreamUpdateOptions::default()),
    )
    .await
    .expect("the same name");
    broker.shutdown().await;
}

#[tokio::test]
async fn update_stream_refusals() {
    let (broker, root) = shop().await;
    assert_eq!(
        code(
            within(
                "update_stream",
                root.update_stream(&id("shop"), "archive", &StreamUpdateOptions::default()),
            )
            .await
        ),
        ErrorCode::STREAM_NAME_ALREADY_EXISTS
    );
    assert_eq!(
        code(
            within(
                "update_stream",
                root.update_stream(&id("missing"), "other", &StreamUpdateOptions::default()),
            )
            .await
        ),
        ErrorCode::STREAM_NAME_NOT_FOUND
    );
    let mut options = StreamUpdateOptions::default();
    options.raw.insert("replication".into(), "3".into());
    assert_eq!(
        code(
            within(
                "update_stream",
                root.update_stream(&id("shop"), "other", &options),
            )
            .await
        ),
        ErrorCode::UNSUPPORTED_OPTION_KEY
    );
    let reader = user_client(&root, broker.address, "reader", "reader-secret", reader()).await;
    assert_eq!(
        code(
            within(
                "update_stream",
                reader.update_stream(&id("shop"), "mine", &StreamUpdateOptions::default()),
            )
            .await
        ),
        ErrorCode::UNAUTHORIZED
    );
    // Nothing was renamed.
    let names: Vec<String> = within("get_streams", root.get_streams())
        .await
        .expect("get_streams")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["shop", "archive"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn update_topic_renames_a_topic_and_keeps_its_data_and_offsets() {
    let (broker, root) = shop().await;
    let before = contents(&root, "shop", "orders").await;
    assert_eq!(before.1, Some(1));
    within(
        "update_topic",
        root.update_topic(
            &id("shop"),
            &id("orders"),
            "sales",
            &TopicUpdateOptions::default(),
        ),
    )
    .await
    .expect("rename");
    assert_eq!(contents(&root, "shop", "sales").await, before);
    assert!(
        within("get_topic", root.get_topic(&id("shop"), &id("orders")))
            .await
            .expect("get_topic")
            .is_none(),
        "the old name is gone"
    );
    let topic = within("get_topic", root.get_topic(&id("shop"), &id("sales")))
        .await
        .expect("get_topic")
        .expect("the renamed topic");
    assert_eq!(topic.name, "sales");
    assert_eq!(topic.messages_count, 3);

    // Refusals: another topic's name, a missing topic, a reader.
    assert_eq!(
        code(
            within(
                "update_topic",
                root.update_topic(
                    &id("shop"),
                    &id("sales"),
                    "refunds",
                    &TopicUpdateOptions::default(),
                ),
            )
            .await
        ),
        ErrorCode::TOPIC_NAME_ALREADY_EXISTS
    );
    assert_eq!(
        code(
            within(
                "update_topic",
                root.update_topic(
                    &id("shop"),
                    &id("orders"),
                    "again",
                    &TopicUpdateOptions::default(),
                ),
            )
            .await
        ),
        ErrorCode::TOPIC_NAME_NOT_FOUND
    );
    let reader = user_client(&root, broker.address, "reader", "reader-secret", reader()).await;
    assert_eq!(
        code(
            within(
                "update_topic",
                reader.update_topic(
                    &id("shop"),
                    &id("sales"),
                    "mine",
                    &TopicUpdateOptions::default(),
                ),
            )
            .await
        ),
        ErrorCode::UNAUTHORIZED
    );
    let names: Vec<String> = within("get_topics", root.get_topics(&id("shop")))
        .await
        .expect("get_topics")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["sales", "refunds"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn renamed_streams_and_topics_keep_their_names_after_a_restart() {
    let broker = WireBroker::start().await;
    let root = broker.client().await;
    within("create_stream", root.create_stream("shop"))
        .await
        .expect("stream");
    within(
        "create_topic",
        root.create_topic(&id("shop"), "orders", &TopicCreateOptions::default()),
    )
    .await
    .expect("topic");
    within(
        "update_stream",
        root.update_stream(&id("shop"), "store", &StreamUpdateOptions::default()),
    )
    .await
    .expect("stream renamed");
    within(
        "update_topic",
        root.update_topic(
            &id("store"),
            &id("orders"),
            "sales",
            &TopicUpdateOptions::default(),
        ),
    )
    .await
    .expect("topic renamed");
    drop(root);

    let broker = broker.restart().await;
    let root = broker.client().await;
    let stream = within("get_stream", root.get_stream(&id("store")))
        .await
        .expect("get_stream")
        .expect("the renamed stream after a restart");
    assert_eq!(stream.name, "store");
    let topics: Vec<String> = stream.topics.iter().map(|t| t.name.clone()).collect();
    assert_eq!(topics, vec!["sales".to_owned()]);
    assert!(
        within("get_stream", root.get_stream(&id("shop")))
            .await
            .expect("get_stream")
            .is_none(),
        "the old stream name is gone"
    );
    assert!(
        within("get_topic", root.get_topic(&id("store"), &id("orders")))
            .await
            .expect("get_topic")
            .is_none(),
        "the old topic name is gone"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn update_user_renames_a_user_who_then_logs_in_by_the_new_name_only() {
    let broker = WireBroker::start().await;
    let root = broker.client().await;
    let clerk = user_client(&root, broker.address, "clerk", "clerk-secret", reader()).await;
    drop(clerk);
    within(
        "update_user",
        root.update_user(
            &id("clerk"),
            Some("cashier"),
            None,
            &UserUpdateOptions::default(),
        ),
    )
    .await
    .expect("rename");
    let user = within("get_user", root.get_user(&id("cashier")))
        .await
        .expect("get_user")
        .expect("the renamed user");
    assert_eq!(user.username, "cashier");
    assert!(
        user.permissions
            .as_ref()
            .is_some_and(|p| p.global.read_streams && !p.global.manage_users),
        "permissions are kept: {:?}",
        user.permissions
    );
    assert!(
        within("get_user", root.get_user(&id("clerk")))
            .await
            .expect("get_user")
            .is_none(),
        "the old name is gone"
    );
    let renamed = anonymous_client(broker.address).await;
    within("login", renamed.login_user("cashier", "clerk-secret"))
        .await
        .expect("the new name logs in with the same password");
    let old = anonymous_client(broker.address).await;
    assert!(
        within("login", old.login_user("clerk", "clerk-secret"))
            .await
            .is_err(),
        "the old name no longer logs in"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn update_user_refusals() {
    let broker = WireBroker::start().await;
    let root = broker.client().await;
    let clerk = user_client(&root, broker.address, "clerk", "clerk-secret", reader()).await;
    drop(clerk);
    let other = user_client(&root, broker.address, "other", "other-secret", reader()).await;
    assert_eq!(
        code(
            within(
                "update_user",
                root.update_user(
                    &id("clerk"),
                    Some("other"),
                    None,
                    &UserUpdateOptions::default()
                ),
            )
            .await
        ),
        ErrorCode::USER_ALREADY_EXISTS
    );
    assert_eq!(
        code(
            within(
                "update_user",
                root.update_user(
                    &Identifier::numeric(4242).unwrap(),
                    Some("ghost"),
                    None,
                    &UserUpdateOptions::default()
                ),
            )
            .await
        ),
        ErrorCode::RESOURCE_NOT_FOUND
    );
    // Users have no option keys: any key is refused and nothing changes.
    let mut options = UserUpdateOptions::default();
    options.raw.insert("quota".into(), "10".into());
    assert_eq!(
        code(
            within(
                "update_user",
                root.update_user(&id("clerk"), Some("renamed"), None, &options),
            )
            .await
        ),
        ErrorCode::UNSUPPORTED_OPTION_KEY
    );
    // Without `manage_users`: refused, for another user and for oneself.
    for target in ["clerk", "other"] {
        assert_eq!(
            code(
                within(
                    "update_user",
                    other.update_user(
                        &id(target),
                        Some("boss"),
                        None,
                        &UserUpdateOptions::default()
                    ),
                )
                .await
            ),
            ErrorCode::UNAUTHORIZED
        );
    }
    let mut names: Vec<String> = within("get_users", root.get_users())
        .await
        .expect("get_users")
        .into_iter()
        .map(|u| u.username)
        .collect();
    names.sort();
    assert_eq!(names, ["clerk", "iggy", "other"], "nothing was renamed");
    broker.shutdown().await;
}

#[tokio::test]
async fn update_topic_changes_retention_and_keeps_it_after_a_restart() {
    let (broker, root) = shop().await;
    let options = TopicUpdateOptions {
        message_expiry: Some(IggyExpiry::ExpireDuration(IggyDuration::from(
            3_600_000_000,
        ))),
        max_topic_size: Some(MaxTopicSize::Custom(IggyByteSize::from(50_000_000))),
        ..Default::default()
    };
    within(
        "update_topic",
        root.update_topic(&id("shop"), &id("orders"), "orders", &options),
    )
    .await
    .expect("retention changed");
    let check = |topic: TopicDetails| {
        assert_eq!(
            topic.message_expiry,
            IggyExpiry::ExpireDuration(IggyDuration::from(3_600_000_000))
        );
        assert_eq!(
            topic.max_topic_size,
            MaxTopicSize::Custom(IggyByteSize::from(50_000_000))
        );
        assert_eq!(topic.messages_count, 3, "the data is kept");
    };
    check(
        within("get_topic", root.get_topic(&id("shop"), &id("orders")))
            .await
            .expect("get_topic")
            .expect("the topic"),
    );
    // The other topic is untouched.
    let refunds = within("get_topic", root.get_topic(&id("shop"), &id("refunds")))
        .await
        .expect("get_topic")
        .expect("the other topic");
    assert_ne!(
        refunds.max_topic_size,
        MaxTopicSize::Custom(IggyByteSize::from(50_000_000))
    );
    drop(root);
    let broker = broker.restart().await;
    let root = broker.client().await;
    check(
        within("get_topic", root.get_topic(&id("shop"), &id("orders")))
            .await
            .expect("get_topic")
            .expect("the topic after a restart"),
    );
    broker.shutdown().await;
}
