//! Message-id deduplication in the embedded broker: a message id the partition already
//! stored within its window is stored once, from the connector and from the official
//! SDK over TCP, across a restart (id 0 is never a duplicate); the window's memory bound
//! and expiry; a purge and deleted segments.

use iggy::prelude::{
    Client, Identifier, IggyMessage, MessageClient, Partitioning as SdkPartitioning,
};
use rustok_iggy_connector::{IggyConnector, OutgoingMessage, PublishRequest, StartPosition};
use tests::wire::WireBroker;
use tests::{create_topic, embedded_config, names, open_embedded, within};

fn message(id: u128) -> OutgoingMessage {
    OutgoingMessage::new(format!("event-{id}").into_bytes()).with_id(id)
}

/// The ids stored in partition 0, in offset order.
async fn stored_ids(connector: &dyn IggyConnector, stream: &str, topic: &str) -> Vec<u128> {
    let (stream, topic) = names(stream, topic);
    connector
        .poll(&stream, &topic, 0, StartPosition::Earliest, 1000)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect()
}

fn batch(stream: &str, topic: &str, ids: &[u128]) -> PublishRequest {
    let (stream, topic) = names(stream, topic);
    ids.iter().fold(
        PublishRequest::new(stream, topic).partition(0),
        |request, id| request.message(message(*id)),
    )
}

#[tokio::test]
async fn a_message_id_stored_already_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("dedup", "orders");
    create_topic(connector.as_ref(), &stream, &topic, 1).await;

    let first = connector
        .publish(batch("dedup", "orders", &[1, 2, 3]))
        .await
        .unwrap();
    assert_eq!(first.base_offset, 0);
    // A retry of part of the batch, with one new message.
    let second = connector
        .publish(batch("dedup", "orders", &[2, 3, 4]))
        .await
        .unwrap();
    assert_eq!(
        stored_ids(connector.as_ref(), "dedup", "orders").await,
        [1, 2, 3, 4]
    );
    assert_eq!(
        second.base_offset, 3,
        "the new message follows the stored ones"
    );
    assert!(second.is_duplicate(0) && second.is_duplicate(1) && !second.is_duplicate(2));
    let offsets: Vec<_> = (0..3).map(|i| second.offset_of(i)).collect();
    assert_eq!(
        offsets,
        [Some(1), Some(2), Some(3)],
        "duplicates name their stored copy"
    );

    // A whole batch sent again is answered with the offsets of its first send.
    let again = connector
        .publish(batch("dedup", "orders", &[1, 2, 3]))
        .await
        .unwrap();
    assert_eq!((again.base_offset, again.duplicates.len()), (0, 3));
    // Twice the same id in one batch: the second is the first's duplicate.
    let twice = connector
        .publish(batch("dedup", "orders", &[5, 5]))
        .await
        .unwrap();
    assert_eq!((twice.offset_of(0), twice.offset_of(1)), (Some(4), Some(4)));
    assert!(twice.is_duplicate(1));
    assert_eq!(
        stored_ids(connector.as_ref(), "dedup", "orders").await,
        [1, 2, 3, 4, 5]
    );
}

#[tokio::test]
async fn the_window_holds_at_most_max_entries_ids_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.deduplication.max_entries = 3;
    let connector = open_embedded(&config).await;
    let (stream, topic) = names("dedup", "bound");
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    connector
        .publish(batch("dedup", "bound", &[1, 2, 3, 4]))
        .await
        .unwrap();
    // 1 was pushed out by 4; 2, 3 and 4 are remembered.
    let receipt = connector
        .publish(batch("dedup", "bound", &[1, 2, 3, 4]))
        .await
        .unwrap();
    assert!(!receipt.is_duplicate(0));
    assert_eq!(receipt.duplicates.len(), 3);
    assert_eq!(
        stored_ids(connector.as_ref(), "dedup", "bound").await,
        [1, 2, 3, 4, 1]
    );
}

#[tokio::test]
async fn an_id_is_stored_again_once_it_expired() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.deduplication.expiry_ms = 50;
    let connector = open_embedded(&config).await;
    let (stream, topic) = names("dedup", "expiry");
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    connector
        .publish(batch("dedup", "expiry", &[9]))
        .await
        .unwrap();
    // Within the window it is a duplicate of offset 0; once the window passed it is
    // stored again. Every send in between is refused, so nothing else is stored.
    let stored_again = within("the id expires", async {
        loop {
            let receipt = connector
                .publish(batch("dedup", "expiry", &[9]))
                .await
                .unwrap();
            if !receipt.is_duplicate(0) {
                return receipt.base_offset;
            }
            assert_eq!(receipt.offset_of(0), Some(0));
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(stored_again, 1);
    assert_eq!(
        stored_ids(connector.as_ref(), "dedup", "expiry").await,
        [9, 9]
    );

    // Off: everything is stored.
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.deduplication.enabled = false;
    let connector = open_embedded(&config).await;
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    for _ in 0..2 {
        connector
            .publish(batch("dedup", "expiry", &[9]))
            .await
            .unwrap();
    }
    assert_eq!(
        stored_ids(connector.as_ref(), "dedup", "expiry").await,
        [9, 9]
    );
}

#[tokio::test]
async fn id_zero_is_never_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("dedup", "zeros");
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    for _ in 0..3 {
        connector
            .publish(batch("dedup", "zeros", &[0, 0]))
            .await
            .unwrap();
    }
    let ids = stored_ids(connector.as_ref(), "dedup", "zeros").await;
    assert_eq!(
        ids.len(),
        6,
        "every id-0 message is stored, with an id of its own"
    );
    assert!(ids.iter().all(|id| *id != 0));
}

#[tokio::test]
async fn the_window_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(dir.path());
    let (stream, topic) = names("dedup", "restart");
    {
        let connector = open_embedded(&config).await;
        create_topic(connector.as_ref(), &stream, &topic, 1).await;
        connector
            .publish(batch("dedup", "restart", &[7, 8]))
            .await
            .unwrap();
        connector.shutdown().await.unwrap();
    }
    let connector = open_embedded(&config).await;
    connector
        .publish(batch("dedup", "restart", &[8, 9]))
        .await
        .unwrap();
    assert_eq!(
        stored_ids(connector.as_ref(), "dedup", "restart").await,
        [7, 8, 9]
    );
}

#[tokio::test]
async fn the_official_sdk_sending_an_id_twice_stores_it_once() {
    let broker = WireBroker::start().await;
    let client = broker.client().await;
    let (stream, topic) = names("dedup", "sdk");
    create_topic(&broker.connector, &stream, &topic, 1).await;
    let (s, t) = (
        Identifier::named("dedup").unwrap(),
        Identifier::named("sdk").unwrap(),
    );
    for _ in 0..2 {
        let mut messages: Vec<IggyMessage> = [41u128, 42]
            .iter()
            .map(|id| {
                IggyMessage::builder()
                    .id(*id)
                    .payload(format!("m{id}").into_bytes().into())
                    .build()
                    .unwrap()
            })
            .collect();
        within(
            "send_messages",
            client.send_messages(&s, &t, &SdkPartitioning::partition_id(0), &mut messages),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        stored_ids(&broker.connector, "dedup", "sdk").await,
        [41, 42]
    );
    client.disconnect().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn concurrent_sends_of_one_id_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("dedup", "race");
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    let sends: Vec<_> = (0..16)
        .map(|_| {
            let connector = connector.clone();
            tokio::spawn(async move { connector.publish(batch("dedup", "race", &[77])).await })
        })
        .collect();
    let mut stored = 0;
    for send in sends {
        let receipt = send.await.unwrap().unwrap();
        assert_eq!(receipt.offset_of(0), Some(0));
        stored += usize::from(!receipt.is_duplicate(0));
    }
    assert_eq!(stored, 1, "one send stored it, the others were duplicates");
    assert_eq!(stored_ids(connector.as_ref(), "dedup", "race").await, [77]);
}

#[tokio::test]
async fn a_purged_partition_forgets_its_ids() {
    let broker = WireBroker::start().await;
    let (stream, topic) = names("dedup", "purge");
    create_topic(&broker.connector, &stream, &topic, 1).await;
    broker
        .connector
        .publish(batch("dedup", "purge", &[5]))
        .await
        .unwrap();
    let client = broker.client().await;
    use iggy::prelude::TopicClient;
    within(
        "purge_topic",
        client.purge_topic(
            &Identifier::named("dedup").unwrap(),
            &Identifier::named("purge").unwrap(),
        ),
    )
    .await
    .unwrap();
    let receipt = broker
        .connector
        .publish(batch("dedup", "purge", &[5]))
        .await
        .unwrap();
    assert!(
        !receipt.is_duplicate(0),
        "the purged message is gone, so is its id"
    );
    assert_eq!(stored_ids(&broker.connector, "dedup", "purge").await, [5]);
    client.disconnect().await.unwrap();
    broker.shutdown().await;
}

// ---- the official SDK over TCP -------------------------------------------------------

/// Sends one batch of messages with `ids` (0: let the broker assign one) to partition
/// 0 of `dedup`/`topic` through the official SDK.
async fn sdk_send(client: &iggy::prelude::IggyClient, topic: &str, ids: &[u128]) {
    let mut messages: Vec<IggyMessage> = ids
        .iter()
        .map(|id| {
            IggyMessage::builder()
                .id(*id)
                .payload(format!("m{id}").into_bytes().into())
                .build()
                .unwrap()
        })
        .collect();
    within(
        "send_messages",
        client.send_messages(
            &Identifier::named("dedup").unwrap(),
            &Identifier::named(topic).unwrap(),
            &SdkPartitioning::partition_id(0),
            &mut messages,
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_official_sdk_sending_id_zero_twice_stores_both_with_assigned_ids() {
    let broker = WireBroker::start().await;
    let client = broker.client().await;
    let (stream, topic) = names("dedup", "sdk-zero");
    create_topic(&broker.connector, &stream, &topic, 1).await;
    sdk_send(&client, "sdk-zero", &[0]).await;
    sdk_send(&client, "sdk-zero", &[0]).await;
    let ids = stored_ids(&broker.connector, "dedup", "sdk-zero").await;
    assert_eq!(ids.len(), 2, "id 0 is never a duplicate: {ids:?}");
    assert!(
        ids[0] != 0 && ids[1] != 0 && ids[0] != ids[1],
        "each got an id of its own: {ids:?}"
    );
    client.disconnect().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn the_official_sdk_resending_after_a_broker_restart_stores_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.tcp_enabled = true;
    config.embedded.tcp_port = 0;
    config.embedded.tcp_address = "127.0.0.1".into();
    let (stream, topic) = names("dedup", "sdk-restart");
    let client_of = |connector: &rustok_iggy_connector::EmbeddedConnector| {
        let address = connector.tcp_address().expect("the listener is on");
        iggy::prelude::IggyClient::from_connection_string(&format!(
            "iggy://{}:{}@{address}",
            tests::wire::USERNAME,
            tests::wire::PASSWORD
        ))
        .unwrap()
    };
    {
        let connector = open_embedded(&config).await;
        create_topic(connector.as_ref(), &stream, &topic, 1).await;
        let client = client_of(&connector);
        within("connect", client.connect()).await.unwrap();
        sdk_send(&client, "sdk-restart", &[61, 62]).await;
        client.disconnect().await.unwrap();
        connector.shutdown().await.unwrap();
    }
    let connector = open_embedded(&config).await;
    let client = client_of(&connector);
    within("connect", client.connect()).await.unwrap();
    // The same batch again, as a producer retrying after the broker came back.
    sdk_send(&client, "sdk-restart", &[61, 62]).await;
    sdk_send(&client, "sdk-restart", &[62, 63]).await;
    assert_eq!(
        stored_ids(connector.as_ref(), "dedup", "sdk-restart").await,
        [61, 62, 63]
    );
    client.disconnect().await.unwrap();
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_official_sdk_past_max_entries_stores_the_oldest_id_again() {
    let broker = WireBroker::start_with(|c| c.embedded.deduplication.max_entries = 2).await;
    let client = broker.client().await;
    let (stream, topic) = names("dedup", "sdk-bound");
    create_topic(&broker.connector, &stream, &topic, 1).await;
    sdk_send(&client, "sdk-bound", &[1]).await;
    sdk_send(&client, "sdk-bound", &[2]).await;
    sdk_send(&client, "sdk-bound", &[3]).await;
    // The window holds 2 and 3: 1 was pushed out (the memory bound), so it is
    // stored again; 3 is still a duplicate.
    sdk_send(&client, "sdk-bound", &[3]).await;
    sdk_send(&client, "sdk-bound", &[1]).await;
    assert_eq!(
        stored_ids(&broker.connector, "dedup", "sdk-bound").await,
        [1, 2, 3, 1]
    );
    client.disconnect().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn deleted_segments_keep_their_ids_in_the_window_until_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.tcp_enabled = true;
    config.embedded.tcp_port = 0;
    config.embedded.tcp_address = "127.0.0.1".into();
    config.embedded.segment_size_bytes = 4096;
    let (stream, topic) = names("dedup", "segments");
    let big = |id: u128| {
        OutgoingMessage::new(format!("{id:04}{}", "x".repeat(2996)).into_bytes()).with_id(id)
    };
    let send = |connector: std::sync::Arc<rustok_iggy_connector::EmbeddedConnector>, id: u128| {
        let (stream, topic) = names("dedup", "segments");
        async move {
            connector
                .publish(
                    PublishRequest::new(stream, topic)
                        .partition(0)
                        .message(big(id)),
                )
                .await
                .unwrap()
        }
    };
    {
        let connector = open_embedded(&config).await;
        create_topic(connector.as_ref(), &stream, &topic, 1).await;
        for id in 1..=6 {
            send(connector.clone(), id).await;
        }
        let address = connector.tcp_address().unwrap();
        let client = iggy::prelude::IggyClient::from_connection_string(&format!(
            "iggy://{}:{}@{address}",
            tests::wire::USERNAME,
            tests::wire::PASSWORD
        ))
        .unwrap();
        within("connect", client.connect()).await.unwrap();
        use iggy::prelude::SegmentClient;
        within(
            "delete_segments",
            client.delete_segments(
                &Identifier::named("dedup").unwrap(),
                &Identifier::named("segments").unwrap(),
                0,
                1,
            ),
        )
        .await
        .unwrap();
        let left = stored_ids(connector.as_ref(), "dedup", "segments").await;
        assert_ne!(
            left.first(),
            Some(&1),
            "the first segment is gone: {left:?}"
        );
        // While the broker runs, the window still has the deleted message's id: a
        // resend within the window is a duplicate, naming the deleted offset.
        let receipt = send(connector.clone(), 1).await;
        assert!(receipt.is_duplicate(0));
        assert_eq!(receipt.offset_of(0), Some(0));
        assert_eq!(
            stored_ids(connector.as_ref(), "dedup", "segments").await,
            left
        );
        client.disconnect().await.unwrap();
        connector.shutdown().await.unwrap();
    }
    // The window is rebuilt from the log that is left: the deleted id is forgotten,
    // the ids still stored are remembered.
    let connector = open_embedded(&config).await;
    let before = stored_ids(connector.as_ref(), "dedup", "segments").await;
    assert!(send(connector.clone(), 6).await.is_duplicate(0));
    assert!(!send(connector.clone(), 1).await.is_duplicate(0));
    let after = stored_ids(connector.as_ref(), "dedup", "segments").await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after.last(), Some(&1));
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_id_stored_twice_in_the_log_is_remembered_at_its_last_copy_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    let (stream, topic) = names("dedup", "twice");
    // A log written before deduplication was turned on holds id 9 twice (an id
    // stored again after it expired looks the same).
    config.embedded.deduplication.enabled = false;
    {
        let connector = open_embedded(&config).await;
        create_topic(connector.as_ref(), &stream, &topic, 1).await;
        connector
            .publish(batch("dedup", "twice", &[9, 1, 2, 9]))
            .await
            .unwrap();
        connector.shutdown().await.unwrap();
    }
    config.embedded.deduplication.enabled = true;
    config.embedded.deduplication.max_entries = 4;
    let connector = open_embedded(&config).await;
    // The window holds the last four messages' ids, 9 as of offset 3: two new ids push
    // out 1 (the oldest), not 9.
    for id in [3, 4] {
        connector
            .publish(batch("dedup", "twice", &[id]))
            .await
            .unwrap();
    }
    let receipt = connector
        .publish(batch("dedup", "twice", &[9]))
        .await
        .unwrap();
    assert!(receipt.is_duplicate(0), "9 is among the last 4 ids stored");
    assert_eq!(receipt.offset_of(0), Some(3), "its last copy");
    assert_eq!(
        stored_ids(connector.as_ref(), "dedup", "twice").await,
        [9, 1, 2, 9, 3, 4]
    );
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_window_is_rebuilt_over_a_tail_larger_than_one_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(dir.path());
    let (stream, topic) = names("dedup", "large");
    // 12 MiB of messages: the rebuild reads the tail a bounded number of bytes at a
    // time, and still remembers every id of it.
    let large = |id: u128| {
        let (stream, topic) = names("dedup", "large");
        PublishRequest::new(stream, topic)
            .partition(0)
            .message(OutgoingMessage::new(vec![b'x'; 1 << 20]).with_id(id))
    };
    {
        let connector = open_embedded(&config).await;
        create_topic(connector.as_ref(), &stream, &topic, 1).await;
        for id in 1..=12 {
            connector.publish(large(id)).await.unwrap();
        }
        connector.shutdown().await.unwrap();
    }
    let connector = open_embedded(&config).await;
    for id in [1, 6, 12] {
        let receipt = connector.publish(large(id)).await.unwrap();
        assert!(receipt.is_duplicate(0), "id {id} is remembered");
        assert_eq!(receipt.offset_of(0), Some(id as u64 - 1));
    }
    // Nothing was stored again: a new id follows the twelve.
    let fresh = connector.publish(large(13)).await.unwrap();
    assert_eq!((fresh.is_duplicate(0), fresh.base_offset), (false, 12));
    connector.shutdown().await.unwrap();
}
