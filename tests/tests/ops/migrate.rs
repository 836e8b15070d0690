//! Migrating an embedded data directory into another broker through its Iggy TCP
//! listener (the official SDK on the wire, as against any Iggy server): every event
//! compared (payload, id, headers, origin timestamp, order), consumer-group offsets
//! translated, and a migration interrupted at the worst moment, then resumed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustok_iggy_connector::ops::{MigrateOptions, MigrateReport, migrate};
use rustok_iggy_connector::{
    ConnectorConfig, ConnectorError, GroupConsumer, HeaderValue, Headers, IggyConnector,
    ORIGINAL_TIMESTAMP_HEADER, OutgoingMessage, PublishRequest, ReceivedMessage, Retention,
    StartPosition, StreamName, TopicName, TopicSpec,
};
use tests::conformance::{committed, group, read_all, remote_config};
use tests::wire::{PASSWORD, USERNAME, WireBroker};
use tests::{names, open_embedded, within};
use tokio::sync::Notify;

/// The source topics: (stream, topic, partitions).
const TOPICS: [(&str, &str, u32); 4] = [
    ("shop", "orders", 3),
    ("shop", "empty", 2),
    ("audit", "log", 1),
    ("audit", "trimmed", 1),
];

fn retention() -> Retention {
    Retention {
        max_age: Some(Duration::from_secs(7 * 86_400)),
        max_size_bytes: None,
    }
}

/// Fills a source data directory and returns the committed offsets of group
/// `billing` on shop/orders and of `auditors` on audit/trimmed, and the first
/// offset retention left in audit/trimmed.
async fn fill_source(dir: &Path) -> (Vec<Option<u64>>, u64) {
    let mut config = ConnectorConfig::embedded(dir);
    config.embedded.segment_size_bytes = 4096;
    let source = open_embedded(&config).await;
    for (stream, topic, partitions) in TOPICS {
        let (s, t) = names(stream, topic);
        source
            .ensure_topic(&TopicSpec {
                retention: retention(),
                ..TopicSpec::new(s, t, partitions)
            })
            .await
            .unwrap();
    }
    // shop/orders: 3 partitions, batches of several messages with headers of every
    // kind, ids of our own.
    let (shop, orders) = names("shop", "orders");
    let mut id = 1u128;
    for round in 0..40u64 {
        let partition = (round % 3) as u32;
        let mut request = PublishRequest::new(shop.clone(), orders.clone()).partition(partition);
        for i in 0..(round % 5 + 1) {
            let mut headers = Headers::new();
            headers.insert_str("event_type", "order.placed").unwrap();
            headers.insert("round", HeaderValue::u64(round)).unwrap();
            if i % 2 == 0 {
                headers
                    .insert("blob", HeaderValue::raw(vec![i as u8, 0, 255]))
                    .unwrap();
            }
            let payload = format!("order {round}/{i} ").repeat((i as usize % 3) + 1);
            request = request.message(
                OutgoingMessage::new(payload.into_bytes())
                    .with_id(id * 7919)
                    .with_headers(headers),
            );
            id += 1;
        }
        source.publish(request).await.unwrap();
    }
    // audit/log: single messages without headers (ids minted by the broker).
    let (audit, log) = names("audit", "log");
    for n in 0..25u32 {
        source
            .publish(
                PublishRequest::new(audit.clone(), log.clone())
                    .message(OutgoingMessage::new(format!("log line {n}").into_bytes())),
            )
            .await
            .unwrap();
    }
    // audit/trimmed: its oldest segments deleted by retention, so its offsets do not
    // start at 0 and the destination's will.
    let (_, trimmed) = names("audit", "trimmed");
    for n in 0..60u128 {
        source
            .publish(
                PublishRequest::new(audit.clone(), trimmed.clone())
                    .message(OutgoingMessage::new(vec![b't'; 400]).with_id(1_000_000 + n)),
            )
            .await
            .unwrap();
    }
    source
        .ensure_topic(&TopicSpec {
            retention: Retention {
                max_age: retention().max_age,
                max_size_bytes: Some(8192),
            },
            ..TopicSpec::new(audit.clone(), trimmed.clone(), 1)
        })
        .await
        .unwrap();
    source.enforce_retention().unwrap();
    let first = read_all(&*source, &audit, &trimmed, 0, 0).await[0].offset;
    assert!(first > 0, "retention must have deleted the oldest segments");

    // Group billing on shop/orders: commits 10 on partition 0 (the 11th message),
    // 3 on partition 1, nothing on partition 2. Group idle: created, no commit.
    let billing = group("billing");
    let member = source
        .join_group(&shop, &orders, &billing, StartPosition::Earliest)
        .await
        .unwrap();
    commit(&*member, 0, 10).await;
    commit(&*member, 1, 3).await;
    member.leave().await.unwrap();
    let idle = source
        .join_group(&shop, &orders, &group("idle"), StartPosition::Earliest)
        .await
        .unwrap();
    idle.leave().await.unwrap();
    let auditors = source
        .join_group(
            &audit,
            &trimmed,
            &group("auditors"),
            StartPosition::Earliest,
        )
        .await
        .unwrap();
    commit(&*auditors, 0, first + 5).await;
    auditors.leave().await.unwrap();
    let offsets = committed(&*source, &shop, &orders, &billing).await;
    assert_eq!(offsets, vec![Some(10), Some(3), None]);
    source.shutdown().await.unwrap();
    (offsets, first)
}

async fn commit(member: &dyn GroupConsumer, partition: u32, offset: u64) {
    member.commit(partition, offset).await.unwrap();
}

fn options(source: &Path, destination: &WireBroker, progress: &Path) -> MigrateOptions {
    let mut to = remote_config(&destination.address.to_string(), USERNAME, PASSWORD).remote;
    to.pool_size = 2;
    MigrateOptions::new(source, to, progress)
}

/// Every message of every source topic, by (stream, topic, partition).
async fn contents(
    connector: &dyn IggyConnector,
) -> BTreeMap<(String, String, u32), Vec<ReceivedMessage>> {
    let mut out = BTreeMap::new();
    for (stream, topic, partitions) in TOPICS {
        let (s, t) = names(stream, topic);
        for p in 0..partitions {
            out.insert(
                (stream.to_owned(), topic.to_owned(), p),
                read_all(connector, &s, &t, p, 0).await,
            );
        }
    }
    out
}

/// Reads the source directory back (after the migration, which needed it free).
async fn source_contents(dir: &Path) -> BTreeMap<(String, String, u32), Vec<ReceivedMessage>> {
    let source = open_embedded(&ConnectorConfig::embedded(dir)).await;
    let out = contents(&*source).await;
    source.shutdown().await.unwrap();
    out
}

/// The destination holds the same events as the source, in the same order per
/// partition, with the same topology, and the groups' offsets point at the same
/// events.
async fn assert_migrated(source_dir: &Path, destination: &WireBroker, trimmed_first: u64) {
    let source = source_contents(source_dir).await;
    let dest = contents(&destination.connector).await;
    assert_eq!(
        source.keys().collect::<Vec<_>>(),
        dest.keys().collect::<Vec<_>>()
    );
    let mut total = 0;
    for (key, from) in &source {
        let to = &dest[key];
        assert_eq!(from.len(), to.len(), "{key:?}: message count");
        for (i, (a, b)) in from.iter().zip(to).enumerate() {
            assert_eq!(
                b.offset, i as u64,
                "{key:?}: destination offsets start at 0"
            );
            assert_eq!(a.id, b.id, "{key:?} #{i}: id");
            assert_eq!(a.payload, b.payload, "{key:?} #{i}: payload");
            let mut copied = b.headers.clone();
            assert_eq!(
                copied
                    .remove(ORIGINAL_TIMESTAMP_HEADER)
                    .and_then(|v| v.as_u64()),
                Some(a.timestamp),
                "{key:?} #{i}: the source's append time travels in a header"
            );
            assert_eq!(a.headers, copied, "{key:?} #{i}: headers");
            assert_eq!(b.stored_at(), a.timestamp, "{key:?} #{i}: first stored");
            assert_eq!(
                a.origin_timestamp, b.origin_timestamp,
                "{key:?} #{i}: origin timestamp"
            );
        }
        total += from.len();
    }
    assert_eq!(total, 40 / 5 * 15 + 25 + (60 - trimmed_first as usize));
    for (stream, topic, partitions) in TOPICS {
        let (s, t) = names(stream, topic);
        let info = destination
            .connector
            .topic_info(&s, &t)
            .await
            .unwrap()
            .expect("the topic exists at the destination");
        assert_eq!(info.partitions, partitions);
        assert_eq!(info.retention.max_age, retention().max_age);
    }
    let (shop, orders) = names("shop", "orders");
    assert_eq!(
        committed(&destination.connector, &shop, &orders, &group("billing")).await,
        vec![Some(10), Some(3), None]
    );
    assert_eq!(
        committed(&destination.connector, &shop, &orders, &group("idle")).await,
        vec![None, None, None]
    );
    // audit/trimmed starts at `trimmed_first` at the source and at 0 at the
    // destination: the group's commit (first + 5) becomes 5, the same event.
    let (audit, trimmed) = names("audit", "trimmed");
    assert_eq!(
        committed(&destination.connector, &audit, &trimmed, &group("auditors")).await,
        vec![Some(5)]
    );
    let at_source = &source[&("audit".to_owned(), "trimmed".to_owned(), 0)][5];
    let at_dest = &dest[&("audit".to_owned(), "trimmed".to_owned(), 0)][5];
    assert_eq!(at_source.offset, trimmed_first + 5);
    assert_eq!(at_source.id, at_dest.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_topic_and_group_offset_reaches_the_destination() {
    let source = tempfile::tempdir().unwrap();
    let (_, trimmed_first) = fill_source(source.path()).await;
    let destination = WireBroker::start().await;
    let work = tempfile::tempdir().unwrap();
    let progress = work.path().join("progress.json");
    let calls = AtomicUsize::new(0);
    let report: MigrateReport = within(
        "migrate",
        migrate(&options(source.path(), &destination, &progress), &|_| {
            calls.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.streams, report.topics, report.partitions),
        (2, 4, 7)
    );
    assert_eq!(report.groups, 3);
    assert_eq!(report.messages_copied, report.messages_total);
    assert_eq!(report.messages_reconciled, 0);
    assert!(!report.resumed);
    assert!(calls.load(Ordering::Relaxed) > 0);
    assert_migrated(source.path(), &destination, trimmed_first).await;

    // Running it again finds everything done and sends nothing.
    let again = within(
        "migrate again",
        migrate(&options(source.path(), &destination, &progress), &|_| {}),
    )
    .await
    .unwrap();
    assert!(again.resumed);
    assert_eq!(again.messages_copied, 0);
    assert_migrated(source.path(), &destination, trimmed_first).await;
    destination.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_migration_resumes_without_losing_or_repeating_events() {
    let source = tempfile::tempdir().unwrap();
    let (_, trimmed_first) = fill_source(source.path()).await;
    let destination = WireBroker::start().await;
    let work = tempfile::tempdir().unwrap();
    let progress = work.path().join("progress.json");
    let snapshot = work.path().join("progress.snapshot.json");
    let mut small = options(source.path(), &destination, &progress);
    small.batch_messages = 4;

    // First run: after the 3rd batch the progress file is saved aside; after the
    // 8th the run is cancelled (dropped mid-flight). Then the saved progress is put
    // back, as if the run had died right after sending batches it never recorded.
    let batches = AtomicUsize::new(0);
    let stop = Notify::new();
    let observer = |_: &rustok_iggy_connector::ops::MigrateProgress| {
        let n = batches.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 3 {
            std::fs::copy(&progress, &snapshot).unwrap();
        }
        if n == 8 {
            stop.notify_one();
        }
    };
    tokio::select! {
        result = migrate(&small, &observer) => panic!("the run should have been interrupted: {result:?}"),
        () = stop.notified() => {}
    }
    std::fs::rename(&snapshot, &progress).unwrap();

    let resumed = within("resume", migrate(&small, &|_| {})).await.unwrap();
    assert!(resumed.resumed);
    assert!(
        resumed.messages_reconciled > 0,
        "the batches sent after the saved progress are found, not sent again: {resumed:?}"
    );
    assert_migrated(source.path(), &destination, trimmed_first).await;
    destination.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_topic_that_holds_messages_is_refused() {
    let source = tempfile::tempdir().unwrap();
    fill_source(source.path()).await;
    let destination = WireBroker::start().await;
    let (shop, orders) = names("shop", "orders");
    destination
        .connector
        .ensure_topic(&TopicSpec::new(shop.clone(), orders.clone(), 3))
        .await
        .unwrap();
    destination
        .connector
        .publish(
            PublishRequest::new(shop, orders)
                .partition(1)
                .message(OutgoingMessage::new(&b"already here"[..])),
        )
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let err = within(
        "migrate",
        migrate(
            &options(source.path(), &destination, &work.path().join("p.json")),
            &|_| {},
        ),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::TopologyMismatch { topic, .. } if topic == "orders"),
        "{err}"
    );
    assert!(err.to_string().contains("already holds messages"), "{err}");
    destination.shutdown().await;
}

#[tokio::test]
async fn a_directory_in_use_or_not_a_data_directory_is_refused() {
    let source = tempfile::tempdir().unwrap();
    let running = open_embedded(&ConnectorConfig::embedded(source.path())).await;
    let (s, t): (StreamName, TopicName) = names("shop", "orders");
    running
        .ensure_topic(&TopicSpec::new(s, t, 1))
        .await
        .unwrap();
    let to = remote_config("127.0.0.1:1", USERNAME, PASSWORD).remote;
    let work = tempfile::tempdir().unwrap();
    let err = migrate(
        &MigrateOptions::new(source.path(), to.clone(), work.path().join("p.json")),
        &|_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectorError::DataDirInUse { .. }), "{err}");
    running.shutdown().await.unwrap();
    let empty = tempfile::tempdir().unwrap();
    let err = migrate(
        &MigrateOptions::new(empty.path(), to, work.path().join("p.json")),
        &|_| {},
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("not an embedded data directory"),
        "{err}"
    );
}

/// Publishes `count` messages to every partition of shop/orders (3 partitions).
async fn publish_orders(connector: &dyn IggyConnector, first_id: u128, count: u128) {
    let (shop, orders) = names("shop", "orders");
    for n in 0..count {
        for partition in 0..3 {
            let id = first_id + n * 3 + partition as u128;
            connector
                .publish(
                    PublishRequest::new(shop.clone(), orders.clone())
                        .partition(partition)
                        .message(
                            OutgoingMessage::new(format!("event {id}").into_bytes()).with_id(id),
                        ),
                )
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_from_a_backup_catches_up_from_the_live_directory() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = open_embedded(&ConnectorConfig::embedded(source_dir.path())).await;
    let (shop, orders) = names("shop", "orders");
    source
        .ensure_topic(&TopicSpec::new(shop.clone(), orders.clone(), 3))
        .await
        .unwrap();
    publish_orders(&*source, 1, 20).await;
    let member = source
        .join_group(&shop, &orders, &group("billing"), StartPosition::Earliest)
        .await
        .unwrap();
    commit(&*member, 0, 9).await;
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup");
    source.backup(&backup).await.unwrap();

    // Bulk copy from the backup while the application keeps running on the source.
    let destination = WireBroker::start().await;
    let progress = work.path().join("progress.json");
    let bulk = within(
        "migrate the backup",
        migrate(&options(&backup, &destination, &progress), &|_| {}),
    )
    .await
    .unwrap();
    assert_eq!(bulk.messages_copied, 60);
    publish_orders(&*source, 1_000, 5).await;
    commit(&*member, 0, 22).await;
    member.leave().await.unwrap();
    source.shutdown().await.unwrap();

    // The cut-over: only what came after the backup is copied.
    let tail = within(
        "migrate the tail",
        migrate(
            &options(source_dir.path(), &destination, &progress),
            &|_| {},
        ),
    )
    .await
    .unwrap();
    assert!(tail.resumed);
    assert_eq!((tail.messages_copied, tail.messages_total), (15, 75));
    let reopened = open_embedded(&ConnectorConfig::embedded(source_dir.path())).await;
    for p in 0..3 {
        let ids = |list: Vec<ReceivedMessage>| list.iter().map(|m| m.id).collect::<Vec<_>>();
        let from = ids(read_all(&*reopened, &shop, &orders, p, 0).await);
        let to = ids(read_all(&destination.connector, &shop, &orders, p, 0).await);
        assert_eq!(from.len(), 25);
        assert_eq!(from, to, "partition {p}");
    }
    reopened.shutdown().await.unwrap();
    assert_eq!(
        committed(&destination.connector, &shop, &orders, &group("billing")).await,
        vec![Some(22), None, None]
    );

    // The same progress file with a source it was not recorded from is refused.
    let other = tempfile::tempdir().unwrap();
    let unrelated = open_embedded(&ConnectorConfig::embedded(other.path())).await;
    unrelated
        .ensure_topic(&TopicSpec::new(shop.clone(), orders.clone(), 3))
        .await
        .unwrap();
    publish_orders(&*unrelated, 50_000, 30).await;
    unrelated.shutdown().await.unwrap();
    let err = within(
        "migrate another source",
        migrate(&options(other.path(), &destination, &progress), &|_| {}),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("belongs to another source"),
        "{err}"
    );
    destination.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_consumer_offsets_and_original_times_reach_the_destination() {
    use iggy::prelude::{
        Client, Consumer, ConsumerOffsetClient, Identifier, IggyMessage, MessageClient,
        Partitioning, StreamClient, TopicClient, TopicCreateOptions,
    };
    use std::str::FromStr;

    let id = |name: &str| Identifier::named(name).unwrap();
    let consumer = |n: u32| Consumer::new(Identifier::numeric(n).unwrap());
    // The source: a broker written through the official SDK, as a CLI user would
    // (`message poll --consumer 7 --auto-commit` stores a standalone offset).
    let source = WireBroker::start().await;
    let sdk = source.client().await;
    sdk.create_stream("shop").await.unwrap();
    let two = TopicCreateOptions {
        partitions_count: Some(2),
        ..Default::default()
    };
    sdk.create_topic(&id("shop"), "orders", &two).await.unwrap();
    for (partition, count) in [(0u32, 5u32), (1, 3)] {
        for n in 0..count {
            let mut batch = vec![IggyMessage::from_str(&format!("{partition}/{n}")).unwrap()];
            sdk.send_messages(
                &id("shop"),
                &id("orders"),
                &Partitioning::partition_id(partition),
                &mut batch,
            )
            .await
            .unwrap();
        }
    }
    for (who, partition, offset) in [(7u32, 0u32, 2u64), (7, 1, 0), (9, 0, 4)] {
        sdk.store_consumer_offset(
            &consumer(who),
            &id("shop"),
            &id("orders"),
            Some(partition),
            offset,
        )
        .await
        .unwrap();
    }
    let (shop, orders) = names("shop", "orders");
    let mut times = Vec::new();
    for partition in 0..2 {
        times.push(read_all(&source.connector, &shop, &orders, partition, 0).await);
    }
    sdk.shutdown().await.unwrap();
    let data = source.into_data_dir().await;

    let destination = WireBroker::start().await;
    let work = tempfile::tempdir().unwrap();
    let progress = work.path().join("progress.json");
    within(
        "migrate",
        migrate(&options(data.path(), &destination, &progress), &|_| {}),
    )
    .await
    .unwrap();

    let dest = destination.client().await;
    for (who, partition, offset) in [(7u32, 0u32, 2u64), (7, 1, 0), (9, 0, 4)] {
        let stored = dest
            .get_consumer_offset(&consumer(who), &id("shop"), &id("orders"), Some(partition))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("consumer {who} has an offset on partition {partition}"));
        assert_eq!(
            stored.stored_offset, offset,
            "consumer {who}, partition {partition}"
        );
    }
    let none = dest
        .get_consumer_offset(&consumer(8), &id("shop"), &id("orders"), Some(0))
        .await
        .unwrap();
    assert!(none.is_none(), "no offset is made up: {none:?}");
    for (partition, source_messages) in (0u32..).zip(&times) {
        let copied = read_all(&destination.connector, &shop, &orders, partition, 0).await;
        assert_eq!(copied.len(), source_messages.len());
        for (a, b) in source_messages.iter().zip(&copied) {
            assert_eq!(a.payload, b.payload);
            assert_eq!(b.stored_at(), a.timestamp, "the original time is kept");
            assert!(
                b.timestamp >= a.timestamp,
                "the destination stamps its own time"
            );
        }
    }
    destination.shutdown().await;
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, rustok_iggy::IggyEvent)]
#[iggy(stream = "history", topic = "moves", event_type = "moved")]
struct Moved {
    seq: u64,
}

/// Replay by time after a move: `Transport::replay` from a time on the destination
/// returns exactly the events stored at or after that time on the source (their
/// original times, not the migration's), and shows those times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_time_after_a_migration_uses_the_original_times() {
    use futures::StreamExt;
    use rustok_iggy::replay::ReplayUntil;
    use rustok_iggy::{Transport, TransportOptions};

    async fn replayed(transport: &Transport<Moved>, from: StartPosition) -> Vec<(u64, u64)> {
        within(
            "replay",
            transport
                .replay(from, ReplayUntil::Head)
                .await
                .unwrap()
                .collect::<Vec<_>>(),
        )
        .await
        .into_iter()
        .map(|r| {
            let r = r.unwrap();
            (r.event.seq, r.info.timestamp)
        })
        .collect()
    }
    let transport_options = || TransportOptions {
        partitions: 1,
        ..TransportOptions::default()
    };

    let source = tempfile::tempdir().unwrap();
    let connector = open_embedded(&tests::embedded_config(source.path())).await;
    let transport = Transport::<Moved>::new(connector.clone(), transport_options())
        .await
        .unwrap();
    for seq in 0..10 {
        transport.publish(&Moved { seq }).await.unwrap();
    }
    let original = replayed(&transport, StartPosition::Earliest).await;
    assert_eq!(original.len(), 10);
    let from = original[5].1;
    let expected: Vec<(u64, u64)> = original
        .iter()
        .copied()
        .filter(|&(_, t)| t >= from)
        .collect();
    assert!(expected.len() < 10, "the window leaves some events out");
    connector.shutdown().await.unwrap();

    let destination = WireBroker::start().await;
    let work = tempfile::tempdir().unwrap();
    let progress = work.path().join("progress.json");
    within(
        "migrate",
        migrate(&options(source.path(), &destination, &progress), &|_| {}),
    )
    .await
    .unwrap();
    // Read back from the destination as a user of the moved system would: over TCP.
    let remote = tests::conformance::open_remote(&remote_config(
        &destination.address.to_string(),
        USERNAME,
        PASSWORD,
    ))
    .await;
    let moved = Transport::<Moved>::new(remote, transport_options())
        .await
        .unwrap();
    assert_eq!(replayed(&moved, StartPosition::Earliest).await, original);
    assert_eq!(
        replayed(&moved, StartPosition::Timestamp(from)).await,
        expected
    );
    destination.shutdown().await;
}
