//! The official `iggy` 0.11.0 SDK against the embedded broker's TCP listener: login,
//! the low-level calls `iggy-cli` makes, the high-level producer (direct and
//! background, balanced and key partitioning) and a consumer group with auto-commit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use iggy::prelude::*;
use rustok_iggy_connector::partition_for;
use tests::wire::{PASSWORD, USERNAME, WireBroker, within};

fn message(id: u128, payload: &str) -> IggyMessage {
    IggyMessage::builder()
        .id(id)
        .payload(payload.to_owned().into())
        .build()
        .expect("a valid message")
}

fn id(name: &str) -> Identifier {
    Identifier::named(name).expect("a valid identifier")
}

/// Per partition, the number of stored messages, as the SDK reads it.
async fn messages_per_partition(client: &IggyClient, stream: &str, topic: &str) -> Vec<u64> {
    let details = within("get_topic", client.get_topic(&id(stream), &id(topic)))
        .await
        .expect("get_topic")
        .expect("the topic exists");
    details
        .partitions
        .iter()
        .map(|p| p.messages_count)
        .collect()
}

#[tokio::test]
async fn connects_logs_in_and_answers_the_system_calls() {
    let broker = WireBroker::start().await;
    let client = broker.client().await;

    within("ping", client.ping()).await.expect("ping");
    let me = within("get_me", client.get_me()).await.expect("get_me");
    assert_eq!(me.user_id, Some(0), "logged in as root: {me:?}");

    let stats = within("get_stats", client.get_stats())
        .await
        .expect("get_stats");
    assert_eq!(stats.streams_count, 0);
    assert!(stats.clients_count >= 1, "{stats:?}");

    let cluster = within("get_cluster_metadata", client.get_cluster_metadata())
        .await
        .expect("get_cluster_metadata");
    assert_eq!(cluster.nodes.len(), 1, "exactly one node: {cluster:?}");
    assert_eq!(cluster.nodes[0].endpoints.tcp, broker.address.port());

    // Logging in again on a connected client (Logout, then a new Register).
    within("login again", client.login_user(USERNAME, PASSWORD))
        .await
        .expect("login again");
    within("ping", client.ping())
        .await
        .expect("ping after re-login");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_is_invalid_credentials() {
    let broker = WireBroker::start().await;
    let wrong = format!("iggy://{USERNAME}:not-the-password@{}", broker.address);
    let client = IggyClient::from_connection_string(&wrong).expect("connection string");
    let err = within("connect with a wrong password", client.connect())
        .await
        .expect_err("the login must fail");
    assert!(matches!(err, IggyError::InvalidCredentials), "{err:?}");

    // An unknown user gets the same answer.
    let anonymous = broker.anonymous_client().await;
    let err = within(
        "login as nobody",
        anonymous.login_user("nobody", "whatever"),
    )
    .await
    .expect_err("the login must fail");
    assert!(matches!(err, IggyError::InvalidCredentials), "{err:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn an_unauthenticated_client_may_only_ping() {
    let broker = WireBroker::start().await;
    let client = broker.anonymous_client().await;
    within("ping", client.ping())
        .await
        .expect("ping needs no login");
    let err = within("get_stats", client.get_stats())
        .await
        .expect_err("stats need a login");
    assert!(matches!(err, IggyError::Unauthenticated), "{err:?}");
    let err = within("get_streams", client.get_streams())
        .await
        .expect_err("streams need a login");
    assert!(matches!(err, IggyError::Unauthenticated), "{err:?}");
    broker.login(&client).await;
    assert!(
        within("get_streams", client.get_streams())
            .await
            .expect("streams")
            .is_empty()
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn the_calls_the_cli_makes_work() {
    let broker = WireBroker::start().await;
    let client = broker.client().await;
    let (stream, topic) = (id("shop"), id("orders"));

    assert!(
        within("get_stream", client.get_stream(&stream))
            .await
            .unwrap()
            .is_none()
    );
    within("create_stream", client.create_stream("shop"))
        .await
        .expect("create_stream");
    let err = within("create_stream again", client.create_stream("shop"))
        .await
        .expect_err("duplicate stream");
    assert!(
        matches!(err, IggyError::StreamNameAlreadyExists(_)),
        "{err:?}"
    );
    let streams = within("get_streams", client.get_streams()).await.unwrap();
    assert_eq!(
        streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["shop"]
    );

    let options = TopicCreateOptions {
        partitions_count: Some(3),
        ..TopicCreateOptions::default()
    };
    let created = within(
        "create_topic",
        client.create_topic(&stream, "orders", &options),
    )
    .await
    .expect("create_topic");
    assert_eq!(created.partitions_count, 3);
    let topics = within("get_topics", client.get_topics(&stream))
        .await
        .unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name, "orders");
    assert!(
        within("missing topic", client.get_topic(&stream, &id("nope")))
            .await
            .unwrap()
            .is_none()
    );

    let mut batch: Vec<IggyMessage> = (0..10).map(|i| message(i + 1, &format!("m{i}"))).collect();
    within(
        "send_messages",
        client.send_messages(&stream, &topic, &Partitioning::partition_id(1), &mut batch),
    )
    .await
    .expect("send_messages");
    let consumer = Consumer::new(Identifier::numeric(7).unwrap());
    let poll = |strategy: PollingStrategy, count: u32, auto_commit: bool| {
        let (client, stream, topic, consumer) =
            (&client, stream.clone(), topic.clone(), consumer.clone());
        async move {
            within(
                "poll_messages",
                client.poll_messages(
                    &stream,
                    &topic,
                    Some(1),
                    &consumer,
                    &strategy,
                    count,
                    auto_commit,
                ),
            )
            .await
            .expect("poll_messages")
        }
    };
    let offsets = |polled: &PolledMessages| {
        polled
            .messages
            .iter()
            .map(|m| m.header.offset)
            .collect::<Vec<_>>()
    };

    let first = poll(PollingStrategy::first(), 3, false).await;
    assert_eq!(offsets(&first), [0, 1, 2]);
    assert_eq!(first.current_offset, 9);
    assert_eq!(first.messages[0].payload.as_ref(), b"m0");
    assert_eq!(first.messages[0].header.id, 1);
    assert_eq!(
        offsets(&poll(PollingStrategy::offset(5), 2, false).await),
        [5, 6]
    );
    assert_eq!(
        offsets(&poll(PollingStrategy::last(), 3, false).await),
        [7, 8, 9]
    );
    let stamped = first.messages[0].header.timestamp;
    assert_eq!(
        offsets(&poll(PollingStrategy::timestamp(stamped.into()), 100, false).await).len(),
        10
    );
    let future = IggyTimestamp::from(stamped + 3_600_000_000);
    assert!(
        poll(PollingStrategy::timestamp(future), 10, false)
            .await
            .messages
            .is_empty()
    );
    assert!(
        poll(PollingStrategy::offset(10), 10, false)
            .await
            .messages
            .is_empty()
    );

    // Next starts at the stored offset + 1; auto-commit stores the last one served.
    assert_eq!(
        offsets(&poll(PollingStrategy::next(), 4, true).await),
        [0, 1, 2, 3]
    );
    assert_eq!(
        offsets(&poll(PollingStrategy::next(), 4, true).await),
        [4, 5, 6, 7]
    );
    let stored = within(
        "get_consumer_offset",
        client.get_consumer_offset(&consumer, &stream, &topic, Some(1)),
    )
    .await
    .unwrap()
    .expect("an offset is stored");
    assert_eq!((stored.stored_offset, stored.current_offset), (7, 9));
    within(
        "store_consumer_offset",
        client.store_consumer_offset(&consumer, &stream, &topic, Some(1), 1),
    )
    .await
    .expect("store_consumer_offset");
    assert_eq!(
        offsets(&poll(PollingStrategy::next(), 2, false).await),
        [2, 3]
    );
    within(
        "delete_consumer_offset",
        client.delete_consumer_offset(&consumer, &stream, &topic, Some(1)),
    )
    .await
    .expect("delete_consumer_offset");
    assert!(
        within(
            "no offset",
            client.get_consumer_offset(&consumer, &stream, &topic, Some(1))
        )
        .await
        .unwrap()
        .is_none()
    );

    let err = within(
        "poll a missing partition",
        client.poll_messages(
            &stream,
            &topic,
            Some(9),
            &consumer,
            &PollingStrategy::first(),
            1,
            false,
        ),
    )
    .await
    .expect_err("partition 9 does not exist");
    assert!(matches!(err, IggyError::PartitionNotFound(..)), "{err:?}");

    let stats = within("get_stats", client.get_stats()).await.unwrap();
    assert_eq!(
        (
            stats.streams_count,
            stats.topics_count,
            stats.partitions_count
        ),
        (1, 1, 3)
    );
    assert_eq!(stats.messages_count, 10);

    within("purge_topic", client.purge_topic(&stream, &topic))
        .await
        .expect("purge_topic");
    assert_eq!(
        messages_per_partition(&client, "shop", "orders").await,
        [0, 0, 0]
    );
    within("delete_topic", client.delete_topic(&stream, &topic))
        .await
        .expect("delete_topic");
    within("delete_stream", client.delete_stream(&stream))
        .await
        .expect("delete_stream");
    assert!(
        within("get_streams", client.get_streams())
            .await
            .unwrap()
            .is_empty()
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn the_direct_producer_partitions_balanced_and_by_key() {
    let broker = WireBroker::start().await;
    let client = broker.client().await;

    let balanced = client
        .producer("shop", "balanced")
        .expect("a producer")
        .direct(DirectConfig::builder().batch_length(5).build())
        .create_stream_if_not_exists()
        .create_topic_if_not_exists(3, IggyExpiry::NeverExpire, MaxTopicSize::Unlimited)
        .partitioning(Partitioning::balanced())
        .build();
    within("producer init", balanced.init())
        .await
        .expect("init");
    for round in 0..6u128 {
        let batch = (0..5).map(|i| message(round * 5 + i + 1, "x")).collect();
        within("send", balanced.send(batch)).await.expect("send");
    }
    within("producer shutdown", balanced.shutdown()).await;
    let counts = messages_per_partition(&client, "shop", "balanced").await;
    assert_eq!(counts.iter().sum::<u64>(), 30);
    assert!(
        counts.iter().all(|&c| c == 10),
        "round-robin over 3 partitions: {counts:?}"
    );

    let keyed = client
        .producer("shop", "keyed")
        .expect("a producer")
        .direct(DirectConfig::builder().build())
        .create_topic_if_not_exists(4, IggyExpiry::NeverExpire, MaxTopicSize::Unlimited)
        .partitioning(Partitioning::messages_key_str("tenant-7").expect("a key"))
        .build();
    within("producer init", keyed.init()).await.expect("init");
    let batch = (0..20).map(|i| message(i + 1, "k")).collect();
    within("send", keyed.send(batch)).await.expect("send");
    within("producer shutdown", keyed.shutdown()).await;
    let counts = messages_per_partition(&client, "shop", "keyed").await;
    let expected = partition_for(b"tenant-7", 4) as usize;
    assert_eq!(
        counts[expected], 20,
        "all keyed messages in partition {expected}: {counts:?}"
    );
    assert_eq!(counts.iter().sum::<u64>(), 20);

    // The same key through rustok's own connector lands in the same partition.
    let receipt = rustok_iggy_connector::IggyConnector::publish(
        &broker.connector,
        rustok_iggy_connector::PublishRequest::new(
            rustok_iggy_connector::StreamName::new("shop").unwrap(),
            rustok_iggy_connector::TopicName::new("keyed").unwrap(),
        )
        .key(&b"tenant-7"[..])
        .message(rustok_iggy_connector::OutgoingMessage::new(
            &b"in-process"[..],
        )),
    )
    .await
    .expect("in-process publish");
    assert_eq!(receipt.partition as usize, expected);
    broker.shutdown().await;
}

#[tokio::test]
async fn the_background_producer_flushes_everything() {
    let broker = WireBroker::start().await;
    let client = broker.client().await;
    let producer = client
        .producer("shop", "background")
        .expect("a producer")
        .background(
            BackgroundConfig::builder()
                .linger_time(IggyDuration::new(Duration::from_millis(5)))
                .batch_length(50)
                .build(),
        )
        .create_stream_if_not_exists()
        .create_topic_if_not_exists(2, IggyExpiry::NeverExpire, MaxTopicSize::Unlimited)
        .partitioning(Partitioning::balanced())
        .build();
    within("producer init", producer.init())
        .await
        .expect("init");
    for i in 0..200u128 {
        within("send", producer.send(vec![message(i + 1, "bg")]))
            .await
            .expect("send");
    }
    within("producer shutdown (flush)", producer.shutdown()).await;
    let counts = messages_per_partition(&client, "shop", "background").await;
    assert_eq!(counts.iter().sum::<u64>(), 200, "{counts:?}");

    // Every id arrived exactly once.
    let consumer = Consumer::new(Identifier::numeric(1).unwrap());
    let mut ids = BTreeSet::new();
    for partition in 0..2 {
        let polled = within(
            "poll",
            client.poll_messages(
                &id("shop"),
                &id("background"),
                Some(partition),
                &consumer,
                &PollingStrategy::first(),
                1000,
                false,
            ),
        )
        .await
        .unwrap();
        for m in polled.messages {
            assert!(ids.insert(m.header.id), "id {} twice", m.header.id);
        }
    }
    assert_eq!(ids, (1..=200).collect());
    broker.shutdown().await;
}

/// What a consumer task saw.
#[derive(Debug)]
struct Seen {
    consumer: &'static str,
    partition: u32,
    id: u128,
}

fn spawn_consumer(
    name: &'static str,
    mut consumer: IggyConsumer,
    seen: tokio::sync::mpsc::UnboundedSender<Seen>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop => break,
                next = consumer.next() => match next {
                    Some(Ok(received)) => {
                        let _ = seen.send(Seen {
                            consumer: name,
                            partition: received.partition_id,
                            id: received.message.header.id,
                        });
                    }
                    Some(Err(e)) => panic!("{name}: {e}"),
                    None => break,
                },
            }
        }
        consumer
            .shutdown()
            .await
            .expect("consumer shutdown (final commit, leave)");
    })
}

async fn group_consumer(broker: &WireBroker) -> (IggyClient, IggyConsumer) {
    let client = broker.client().await;
    let mut consumer = client
        .consumer_group("workers", "shop", "events")
        .expect("a consumer builder")
        .auto_commit(AutoCommit::When(AutoCommitWhen::ConsumingEachMessage))
        .create_consumer_group_if_not_exists()
        .auto_join_consumer_group()
        .polling_strategy(PollingStrategy::next())
        .poll_interval(IggyDuration::new(Duration::from_millis(5)))
        .batch_length(10)
        .build();
    within("consumer init", consumer.init())
        .await
        .expect("consumer init");
    (client, consumer)
}

/// Sends `ids` in batches of 5, so that balanced partitioning spreads them evenly
/// over the 4 partitions (25 per partition per 100 ids).
async fn produce(producer: &IggyProducer, ids: std::ops::Range<u128>) {
    let ids: Vec<u128> = ids.collect();
    for chunk in ids.chunks(5) {
        let batch = chunk.iter().map(|&i| message(i, "e")).collect();
        within("send", producer.send(batch)).await.expect("send");
    }
}

/// Collects until `done` holds, bounded by the step timeout.
async fn collect_until(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>,
    log: &mut Vec<Seen>,
    done: impl Fn(&[Seen]) -> bool,
) {
    within("consumers to deliver", async {
        while !done(log) {
            log.push(rx.recv().await.expect("consumer tasks alive"));
        }
    })
    .await;
}

#[tokio::test]
async fn a_consumer_group_shares_partitions_and_survives_a_member_leaving() {
    let broker = WireBroker::start().await;
    let admin = broker.client().await;
    let producer = admin
        .producer("shop", "events")
        .expect("a producer")
        .direct(DirectConfig::builder().build())
        .create_stream_if_not_exists()
        .create_topic_if_not_exists(4, IggyExpiry::NeverExpire, MaxTopicSize::Unlimited)
        .partitioning(Partitioning::balanced())
        .build();
    within("producer init", producer.init())
        .await
        .expect("init");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut log = Vec::new();
    let distinct = |log: &[Seen]| log.iter().map(|s| s.id).collect::<BTreeSet<_>>();

    // Phase 1: one member owns all four partitions.
    produce(&producer, 1..101).await;
    let (_client_a, consumer_a) = group_consumer(&broker).await;
    let (stop_a, stop_a_rx) = tokio::sync::oneshot::channel();
    let task_a = spawn_consumer("a", consumer_a, tx.clone(), stop_a_rx);
    collect_until(&mut rx, &mut log, |log| distinct(log).len() >= 100).await;

    // Phase 2: a second member joins; each ends up with two partitions.
    let (_client_b, consumer_b) = group_consumer(&broker).await;
    let (stop_b, stop_b_rx) = tokio::sync::oneshot::channel();
    let task_b = spawn_consumer("b", consumer_b, tx.clone(), stop_b_rx);
    let group = within(
        "get_consumer_group",
        admin.get_consumer_group(&id("shop"), &id("events"), &id("workers")),
    )
    .await
    .unwrap()
    .expect("the group exists");
    assert_eq!(group.members_count, 2);
    assert!(
        group.members.iter().all(|m| m.partitions_count == 2),
        "{group:?}"
    );
    produce(&producer, 101..201).await;
    collect_until(&mut rx, &mut log, |log| {
        let phase2: Vec<_> = log.iter().filter(|s| s.id > 100).collect();
        let ids: BTreeSet<_> = phase2.iter().map(|s| s.id).collect();
        ids.len() >= 100
            && phase2.iter().any(|s| s.consumer == "a")
            && phase2.iter().any(|s| s.consumer == "b")
    })
    .await;

    // Phase 3: the first member leaves; the second takes over every partition.
    stop_a.send(()).expect("consumer a running");
    within("consumer a to stop", task_a)
        .await
        .expect("consumer a task");
    produce(&producer, 201..301).await;
    collect_until(&mut rx, &mut log, |log| distinct(log).len() >= 300).await;
    stop_b.send(()).expect("consumer b running");
    within("consumer b to stop", task_b)
        .await
        .expect("consumer b task");
    within("producer shutdown", producer.shutdown()).await;

    let all = distinct(&log);
    assert_eq!(all, (1..=300).collect::<BTreeSet<_>>(), "nothing lost");
    let phase3_partitions: BTreeSet<_> = log
        .iter()
        .filter(|s| s.id > 200 && s.consumer == "b")
        .map(|s| s.partition)
        .collect();
    assert_eq!(
        phase3_partitions.len(),
        4,
        "b consumed every partition after a left"
    );
    let mut deliveries = BTreeMap::<u128, usize>::new();
    for s in &log {
        *deliveries.entry(s.id).or_default() += 1;
    }
    let duplicates: usize = deliveries.values().map(|n| n - 1).sum();
    // At-least-once: only messages in flight across a rebalance may come twice, at
    // most one poll batch (10) per partition (4) per rebalance (2).
    assert!(duplicates <= 80, "{duplicates} duplicate deliveries");

    // The group's commits cover everything that was consumed.
    let committed = rustok_iggy_connector::IggyConnector::committed_offsets(
        &broker.connector,
        &rustok_iggy_connector::StreamName::new("shop").unwrap(),
        &rustok_iggy_connector::TopicName::new("events").unwrap(),
        &rustok_iggy_connector::GroupName::new("workers").unwrap(),
    )
    .await
    .expect("committed offsets");
    assert_eq!(
        committed,
        vec![Some(74); 4],
        "every partition committed to its end"
    );
    broker.shutdown().await;
}
