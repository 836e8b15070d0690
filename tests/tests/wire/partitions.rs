//! Partition commands on the embedded broker's TCP listener, through the official
//! `iggy` 0.11.0 SDK: deleting a partition's oldest segments and flushing a
//! partition, with their refusals.

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

/// A broker with 4 KiB segments and stream `shop`, topic `orders` (2 partitions).
async fn shop() -> (WireBroker, IggyClient) {
    let broker = WireBroker::start_with(|c| c.embedded.segment_size_bytes = 4096).await;
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
    (broker, root)
}

/// Sends `count` messages of 3000 bytes to partition 0, one batch each: about two
/// per 4 KiB segment.
async fn fill(root: &IggyClient, count: usize) {
    for i in 0..count {
        let payload = format!("{i:04}{}", "x".repeat(2996));
        let mut messages = vec![IggyMessage::from_str(&payload).expect("a message")];
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
    }
}

/// Segments and messages of partition `partition`.
async fn partition(root: &IggyClient, partition: u32) -> (u32, u64) {
    let topic = within("get_topic", root.get_topic(&id("shop"), &id("orders")))
        .await
        .expect("get_topic")
        .expect("the topic");
    let p = topic
        .partitions
        .iter()
        .find(|p| p.id == partition)
        .expect("the partition");
    (p.segments_count, p.messages_count)
}

async fn first_offset(root: &IggyClient) -> u64 {
    let polled = within(
        "poll",
        root.poll_messages(
            &id("shop"),
            &id("orders"),
            Some(0),
            &Consumer::new(Identifier::numeric(1).unwrap()),
            &PollingStrategy::offset(0),
            1,
            false,
        ),
    )
    .await
    .expect("poll");
    polled.messages.first().expect("a message").header.offset
}

#[tokio::test]
async fn delete_segments_removes_the_oldest_closed_segments_and_keeps_offsets() {
    let (broker, root) = shop().await;
    fill(&root, 10).await;
    let (segments, messages) = partition(&root, 0).await;
    assert_eq!(messages, 10);
    assert!(segments >= 4, "4 KiB segments: {segments}");

    within(
        "delete_segments",
        root.delete_segments(&id("shop"), &id("orders"), 0, 2),
    )
    .await
    .expect("delete 2 segments");
    let (after, left) = partition(&root, 0).await;
    assert_eq!(after, segments - 2);
    assert!(left < messages, "messages of the deleted segments are gone");
    // Offsets are kept: the first message left has the offset it had.
    assert_eq!(first_offset(&root).await, messages - left);

    // More than are closed: only the closed ones go, the active segment stays.
    within(
        "delete_segments",
        root.delete_segments(&id("shop"), &id("orders"), 0, 1000),
    )
    .await
    .expect("delete every closed segment");
    let (only_active, in_active) = partition(&root, 0).await;
    assert_eq!(only_active, 1);
    assert!(in_active >= 1, "the active segment keeps its messages");
    assert_eq!(first_offset(&root).await, messages - in_active);
    // With nothing closed it is a no-op, and appends go on at the next offset.
    within(
        "delete_segments",
        root.delete_segments(&id("shop"), &id("orders"), 0, 1),
    )
    .await
    .expect("a no-op");
    assert_eq!(partition(&root, 0).await, (1, in_active));
    fill(&root, 1).await;
    let topic = within("get_topic", root.get_topic(&id("shop"), &id("orders")))
        .await
        .expect("get_topic")
        .expect("the topic");
    assert_eq!(topic.partitions[0].current_offset, messages);
    broker.shutdown().await;
}

#[tokio::test]
async fn delete_segments_refuses_a_missing_partition_and_a_reader() {
    let (broker, root) = shop().await;
    fill(&root, 6).await;
    let before = partition(&root, 0).await;
    assert_eq!(
        code(
            within(
                "delete_segments",
                root.delete_segments(&id("shop"), &id("orders"), 7, 1),
            )
            .await
        ),
        ErrorCode::PARTITION_NOT_FOUND
    );
    assert_eq!(
        code(
            within(
                "delete_segments",
                root.delete_segments(&id("shop"), &id("missing"), 0, 1),
            )
            .await
        ),
        ErrorCode::TOPIC_NAME_NOT_FOUND
    );
    let reader = user_client(
        &root,
        broker.address,
        "reader",
        "reader-secret",
        Some(Permissions {
            global: GlobalPermissions {
                read_topics: true,
                ..Default::default()
            },
            streams: None,
        }),
    )
    .await;
    assert_eq!(
        code(
            within(
                "delete_segments",
                reader.delete_segments(&id("shop"), &id("orders"), 0, 1),
            )
            .await
        ),
        ErrorCode::UNAUTHORIZED
    );
    assert_eq!(partition(&root, 0).await, before, "nothing was deleted");
    broker.shutdown().await;
}

#[tokio::test]
async fn flush_unsaved_buffer_syncs_a_partition_for_a_sender() {
    let (broker, root) = shop().await;
    fill(&root, 3).await;
    for fsync in [false, true] {
        within(
            "flush",
            root.flush_unsaved_buffer(&id("shop"), &id("orders"), 0, fsync),
        )
        .await
        .unwrap_or_else(|e| panic!("flush with fsync={fsync}: {e}"));
    }
    assert_eq!(partition(&root, 0).await.1, 3);
    assert_eq!(
        code(
            within(
                "flush",
                root.flush_unsaved_buffer(&id("shop"), &id("orders"), 2, true),
            )
            .await
        ),
        ErrorCode::PARTITION_NOT_FOUND
    );
    let only = |global: GlobalPermissions| Permissions {
        global,
        streams: None,
    };
    let sender = user_client(
        &root,
        broker.address,
        "sender",
        "sender-secret",
        Some(only(GlobalPermissions {
            send_messages: true,
            ..Default::default()
        })),
    )
    .await;
    within(
        "flush",
        sender.flush_unsaved_buffer(&id("shop"), &id("orders"), 1, true),
    )
    .await
    .expect("one who may send may flush");
    let poller = user_client(
        &root,
        broker.address,
        "poller",
        "poller-secret",
        Some(only(GlobalPermissions {
            poll_messages: true,
            ..Default::default()
        })),
    )
    .await;
    assert_eq!(
        code(
            within(
                "flush",
                poller.flush_unsaved_buffer(&id("shop"), &id("orders"), 0, true),
            )
            .await
        ),
        ErrorCode::UNAUTHORIZED
    );
    broker.shutdown().await;
}
