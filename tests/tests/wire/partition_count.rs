//! Adding and removing partitions on the embedded broker's TCP listener, through the
//! official `iggy` 0.11.0 SDK: partitions come and go at the end of the topic, the
//! new count survives a restart, a removed partition takes its messages and offsets
//! with it, group members are assigned again, and bad counts, bad ids and missing
//! permissions are refused with the Iggy server's errors.

use std::str::FromStr;

use iggy::prelude::*;
use rustok_iggy_connector::error_codes::ErrorCode;
use tests::wire::{WireBroker, user_client, within};

fn id(name: &str) -> Identifier {
    Identifier::named(name).expect("a valid identifier")
}

/// The error code of `result`, which must be an error.
fn code<T: std::fmt::Debug>(result: Result<T, IggyError>) -> ErrorCode {
    ErrorCode(result.expect_err("refused").as_code())
}

/// A broker with stream `shop` and topic `orders` of 2 partitions.
async fn shop() -> (WireBroker, IggyClient) {
    let broker = WireBroker::start().await;
    let root = broker.client().await;
    create_shop(&root).await;
    (broker, root)
}

async fn create_shop(root: &IggyClient) {
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
}

/// The ids of the topic's partitions, as `GetTopic` lists them.
async fn partition_ids(client: &IggyClient) -> Vec<u32> {
    let topic = within("get_topic", client.get_topic(&id("shop"), &id("orders")))
        .await
        .expect("get_topic")
        .expect("the topic");
    assert_eq!(topic.partitions_count as usize, topic.partitions.len());
    topic.partitions.iter().map(|p| p.id).collect()
}

async fn send(client: &IggyClient, partition: u32, payload: &str) -> Result<(), IggyError> {
    let mut messages = vec![IggyMessage::from_str(payload).expect("a message")];
    within(
        "send",
        client.send_messages(
            &id("shop"),
            &id("orders"),
            &Partitioning::partition_id(partition),
            &mut messages,
        ),
    )
    .await
    .map(|_| ())
}

/// The payloads of `partition` from offset 0.
async fn payloads(client: &IggyClient, partition: u32) -> Vec<String> {
    let polled = within(
        "poll",
        client.poll_messages(
            &id("shop"),
            &id("orders"),
            Some(partition),
            &Consumer::new(Identifier::numeric(1).expect("an id")),
            &PollingStrategy::offset(0),
            100,
            false,
        ),
    )
    .await
    .expect("poll");
    polled
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

fn consumer_7() -> Consumer {
    Consumer::new(Identifier::numeric(7).expect("an id"))
}

#[tokio::test]
async fn partitions_are_added_and_removed_at_the_end_and_the_count_survives_a_restart() {
    let (broker, root) = shop().await;
    send(&root, 1, "kept").await.expect("send to partition 1");

    within(
        "create_partitions",
        root.create_partitions(&id("shop"), &id("orders"), 3),
    )
    .await
    .expect("three partitions added");
    assert_eq!(partition_ids(&root).await, vec![0, 1, 2, 3, 4]);
    send(&root, 4, "in the new partition")
        .await
        .expect("a new partition takes messages");
    drop(root);

    let broker = broker.restart().await;
    let root = broker.client().await;
    assert_eq!(partition_ids(&root).await, vec![0, 1, 2, 3, 4]);
    assert_eq!(payloads(&root, 4).await, vec!["in the new partition"]);
    assert_eq!(payloads(&root, 1).await, vec!["kept"]);

    within(
        "delete_partitions",
        root.delete_partitions(&id("shop"), &id("orders"), 3),
    )
    .await
    .expect("the last three partitions removed");
    assert_eq!(partition_ids(&root).await, vec![0, 1]);
    assert_eq!(
        code(send(&root, 4, "gone").await),
        ErrorCode::PARTITION_NOT_FOUND
    );
    drop(root);

    let broker = broker.restart().await;
    let root = broker.client().await;
    assert_eq!(partition_ids(&root).await, vec![0, 1]);
    assert_eq!(payloads(&root, 1).await, vec!["kept"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_removed_partition_takes_its_messages_and_offsets_with_it() {
    let (broker, root) = shop().await;
    within(
        "create_partitions",
        root.create_partitions(&id("shop"), &id("orders"), 1),
    )
    .await
    .expect("partition 2 added");
    send(&root, 2, "old").await.expect("send");
    within(
        "store_consumer_offset",
        root.store_consumer_offset(&consumer_7(), &id("shop"), &id("orders"), Some(2), 0),
    )
    .await
    .expect("offset stored");

    within(
        "delete_partitions",
        root.delete_partitions(&id("shop"), &id("orders"), 1),
    )
    .await
    .expect("partition 2 removed");
    within(
        "create_partitions",
        root.create_partitions(&id("shop"), &id("orders"), 1),
    )
    .await
    .expect("partition 2 added again");

    assert_eq!(payloads(&root, 2).await, Vec::<String>::new());
    let offset = within(
        "get_consumer_offset",
        root.get_consumer_offset(&consumer_7(), &id("shop"), &id("orders"), Some(2)),
    )
    .await
    .expect("get_consumer_offset");
    assert!(
        offset.is_none(),
        "the offset of the removed partition is gone: {offset:?}"
    );
    broker.shutdown().await;
}

/// The partitions of the group's members, in join order.
async fn assignment(client: &IggyClient) -> Vec<Vec<u32>> {
    let group = within(
        "get_consumer_group",
        client.get_consumer_group(&id("shop"), &id("orders"), &id("workers")),
    )
    .await
    .expect("get_consumer_group")
    .expect("the group");
    let mut members: Vec<_> = group.members.into_iter().collect();
    members.sort_by_key(|m| m.id);
    members
        .into_iter()
        .map(|m| {
            let mut partitions = m.partitions;
            partitions.sort_unstable();
            partitions
        })
        .collect()
}

#[tokio::test]
async fn group_members_get_added_partitions_and_lose_removed_ones() {
    let (broker, root) = shop().await;
    within(
        "create_consumer_group",
        root.create_consumer_group(&id("shop"), &id("orders"), "workers"),
    )
    .await
    .expect("group");
    let first = broker.client().await;
    let second = broker.client().await;
    for member in [&first, &second] {
        within(
            "join_consumer_group",
            member.join_consumer_group(&id("shop"), &id("orders"), &id("workers")),
        )
        .await
        .expect("join");
    }
    assert_eq!(assignment(&root).await, vec![vec![0], vec![1]]);

    within(
        "create_partitions",
        root.create_partitions(&id("shop"), &id("orders"), 3),
    )
    .await
    .expect("three partitions added");
    assert_eq!(assignment(&root).await, vec![vec![0, 2, 4], vec![1, 3]]);

    within(
        "delete_partitions",
        root.delete_partitions(&id("shop"), &id("orders"), 4),
    )
    .await
    .expect("four partitions removed");
    assert_eq!(assignment(&root).await, vec![vec![0], vec![]]);
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_counts_bad_ids_and_missing_permissions_are_refused() {
    let (broker, root) = shop().await;
    let (shop_id, orders) = (id("shop"), id("orders"));
    let create = |count| root.create_partitions(&shop_id, &orders, count);
    assert_eq!(code(create(0).await), ErrorCode::TOO_MANY_PARTITIONS);
    assert_eq!(code(create(1001).await), ErrorCode::TOO_MANY_PARTITIONS);
    assert_eq!(
        code(create(999).await),
        ErrorCode::TOO_MANY_PARTITIONS,
        "a topic of this broker holds at most 1,000 partitions"
    );
    let delete = |count| root.delete_partitions(&shop_id, &orders, count);
    assert_eq!(code(delete(0).await), ErrorCode::TOO_MANY_PARTITIONS);
    assert_eq!(code(delete(3).await), ErrorCode::INVALID_PARTITIONS_COUNT);
    assert_eq!(
        code(delete(2).await),
        ErrorCode::INVALID_PARTITIONS_COUNT,
        "the last partition is kept"
    );

    let stream_7 = Identifier::numeric(7).expect("an id");
    assert_eq!(
        code(root.create_partitions(&stream_7, &id("orders"), 1).await),
        ErrorCode::STREAM_ID_NOT_FOUND
    );
    assert_eq!(
        code(root.delete_partitions(&id("shop"), &id("nope"), 1).await),
        ErrorCode::TOPIC_NAME_NOT_FOUND
    );

    // Reading topics is not managing them.
    let mut read_only = Permissions::default();
    read_only.global.read_topics = true;
    read_only.global.read_streams = true;
    let reader = user_client(&root, broker.address, "reader", "secret-1", Some(read_only)).await;
    assert_eq!(
        code(
            reader
                .create_partitions(&id("shop"), &id("orders"), 1)
                .await
        ),
        ErrorCode::UNAUTHORIZED
    );
    assert_eq!(
        code(
            reader
                .delete_partitions(&id("shop"), &id("orders"), 1)
                .await
        ),
        ErrorCode::UNAUTHORIZED
    );
    // Managing topics is what both need.
    let mut manager = Permissions::default();
    manager.global.manage_topics = true;
    let manager = user_client(&root, broker.address, "manager", "secret-2", Some(manager)).await;
    within(
        "create_partitions",
        manager.create_partitions(&id("shop"), &id("orders"), 1),
    )
    .await
    .expect("manage_topics may add partitions");
    within(
        "delete_partitions",
        manager.delete_partitions(&id("shop"), &id("orders"), 1),
    )
    .await
    .expect("manage_topics may remove partitions");

    // Nothing refused changed the topic.
    assert_eq!(partition_ids(&root).await, vec![0, 1]);
    broker.shutdown().await;
}
