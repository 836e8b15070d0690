//! A dead-letter topic deleted under a running subscription or runner, on both
//! connectors (embedded in process, and the remote connector through the embedded
//! listener): the next dead letter creates the topic again with the same spec and is
//! written there, and nothing is committed past the event before its letter is
//! confirmed. The topic is deleted over TCP with the official SDK, as an operator
//! would.

use std::sync::Arc;
use std::time::Duration;

use iggy::prelude::{Client, Identifier, IggyClient, TopicClient};
use rustok_iggy::prelude::*;
use rustok_iggy::{
    HandlerError, RetryPolicy, SubscriptionOptions,
    connector::{GroupName, IggyConnector, TopicName},
    consume::ConsumeOptions,
    dead_letter::{DeadLetter, DeadLetterConfig},
};
use serde::{Deserialize, Serialize};
use tests::conformance::{open_remote, remote_config};
use tests::wire::{PASSWORD, USERNAME};
use tests::{embedded_config, open_embedded, within};
use tokio::sync::{Notify, mpsc};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "refunds", key = tenant)]
struct Refund {
    tenant: String,
    seq: u64,
}

fn refund(seq: u64) -> Refund {
    Refund {
        tenant: "t".into(),
        seq,
    }
}

/// An embedded broker with its listener, the connector a case uses (the broker's
/// own, or a remote connector on its listener) and an SDK client for the operator.
struct Setup {
    connector: Arc<dyn IggyConnector>,
    broker: Arc<rustok_iggy_connector::EmbeddedConnector>,
    operator: IggyClient,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start(remote: bool) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = embedded_config(dir.path());
        config.embedded.tcp_enabled = true;
        config.embedded.tcp_port = 0;
        config.embedded.tcp_address = "127.0.0.1".into();
        let broker = open_embedded(&config).await;
        let address = broker.tcp_address().expect("the listener is on");
        let connector: Arc<dyn IggyConnector> = if remote {
            open_remote(&remote_config(&address.to_string(), USERNAME, PASSWORD)).await
        } else {
            Arc::clone(&broker) as Arc<dyn IggyConnector>
        };
        let operator =
            IggyClient::from_connection_string(&format!("iggy://{USERNAME}:{PASSWORD}@{address}"))
                .expect("a connection string");
        within("connect the operator", operator.connect())
            .await
            .expect("the operator connects");
        Self {
            connector,
            broker,
            operator,
            _dir: dir,
        }
    }

    async fn transport(&self) -> Transport<Refund> {
        Transport::new(
            Arc::clone(&self.connector),
            TransportOptions {
                stream: rustok_iggy::connector::StreamName::new("shop").unwrap(),
                partitions: 1,
                ..TransportOptions::default()
            },
        )
        .await
        .expect("the topic is ready")
    }

    /// Deletes `topic` of `transport`'s stream, as an operator would.
    async fn delete(&self, transport: &Transport<Refund>, topic: &TopicName) {
        let stream = Identifier::named(transport.stream().as_str()).unwrap();
        let topic = Identifier::named(topic.as_str()).unwrap();
        within(
            "delete the topic",
            self.operator.delete_topic(&stream, &topic),
        )
        .await
        .expect("the topic is deleted");
    }

    async fn finish(self) {
        let _ = self.operator.shutdown().await;
        within("shut the connector down", self.connector.shutdown())
            .await
            .expect("clean shutdown");
        within("shut the broker down", self.broker.shutdown())
            .await
            .expect("clean shutdown");
    }
}

fn dead_letter_topic(transport: &Transport<Refund>) -> TopicName {
    TopicName::new(format!("{}.dlq", transport.topic())).unwrap()
}

async fn letters(transport: &Transport<Refund>) -> Vec<DeadLetter> {
    within(
        "list the dead letters",
        transport
            .dead_letters(&DeadLetterConfig::default())
            .await
            .unwrap()
            .list(100),
    )
    .await
    .unwrap()
}

async fn committed(transport: &Transport<Refund>, group: &str) -> Option<u64> {
    within(
        "committed offsets",
        transport.connector().committed_offsets(
            transport.stream(),
            transport.topic(),
            &GroupName::new(group).unwrap(),
        ),
    )
    .await
    .expect("committed offsets")[0]
}

async fn next(subscription: &mut Subscription<Refund>) -> Delivery<Refund> {
    within("a delivery", subscription.next())
        .await
        .expect("stream open")
        .expect("a delivery")
}

/// `term` after the dead-letter topic was deleted creates it again (same partition
/// count) and writes the letter there; the commit then passes the event.
async fn term_recreates_a_deleted_dead_letter_topic(remote: bool) {
    let setup = Setup::start(remote).await;
    let transport = setup.transport().await;
    for seq in 0..3 {
        transport.publish(&refund(seq)).await.unwrap();
    }
    let options = SubscriptionOptions {
        redelivery_backoff: rustok_iggy::consume::Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(10),
        ),
        ..SubscriptionOptions::default()
    };
    let mut subscription = transport
        .subscribe_with("refunds", StartPosition::Earliest, options)
        .await
        .unwrap();
    next(&mut subscription)
        .await
        .term("the first poison")
        .await
        .expect("the dead-letter topic is opened and written");
    setup
        .delete(&transport, &dead_letter_topic(&transport))
        .await;

    let poison = next(&mut subscription).await;
    assert_eq!(poison.seq, 1);
    let poison_id = poison.info().event_id;
    poison
        .term("the second poison")
        .await
        .expect("the letter is written to the topic created again");
    let after = next(&mut subscription).await;
    assert_eq!(after.seq, 2, "the partition flows on");
    after.ack().await.unwrap();
    subscription.commit().await.unwrap();
    assert_eq!(committed(&transport, "refunds").await, Some(2));

    let letters = letters(&transport).await;
    assert_eq!(
        letters.len(),
        1,
        "the deleted topic's letter went with it: {letters:?}"
    );
    assert_eq!(letters[0].event_id, poison_id);
    assert_eq!(letters[0].error, "the second poison");
    let info = within(
        "the dead-letter topic",
        transport
            .connector()
            .topic_info(transport.stream(), &dead_letter_topic(&transport)),
    )
    .await
    .unwrap()
    .expect("the dead-letter topic exists again");
    assert_eq!(info.partitions, transport.partitions());
    subscription.close().await.unwrap();
    setup.finish().await;
}

/// The handler runner dead-letters an event after its retries into the topic
/// created again: the events behind it on its partition flow on only after the
/// letter is confirmed, and everything is committed.
async fn the_runner_recreates_a_deleted_dead_letter_topic(remote: bool) {
    let setup = Setup::start(remote).await;
    let transport = setup.transport().await;
    let (handled_tx, mut handled) = mpsc::unbounded_channel();
    let stop = Arc::new(Notify::new());
    let runner = {
        let transport = transport.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let options = ConsumeOptions {
                retry: RetryPolicy::fixed(2, Duration::from_millis(1)),
                ..ConsumeOptions::default()
            };
            transport
                .consume(
                    "ledger",
                    options,
                    async move { stop.notified().await },
                    move |event: rustok_iggy::consume::Received<Refund>| {
                        let handled = handled_tx.clone();
                        async move {
                            if event.seq == 1 {
                                return Err(HandlerError::retryable("the bank is down"));
                            }
                            handled.send(event.seq).unwrap();
                            Ok(())
                        }
                    },
                )
                .await
        })
    };
    // The runner is running (its dead-letter topic opened) once it handled event 0.
    transport.publish(&refund(0)).await.unwrap();
    assert_eq!(within("event 0", handled.recv()).await, Some(0));
    setup
        .delete(&transport, &dead_letter_topic(&transport))
        .await;

    transport.publish(&refund(1)).await.unwrap();
    transport.publish(&refund(2)).await.unwrap();
    assert_eq!(
        within("the event behind the dead-lettered one", handled.recv()).await,
        Some(2),
        "the partition flows on once the letter is written"
    );
    stop.notify_one();
    let report = within("the runner stops", runner)
        .await
        .unwrap()
        .expect("the runner ends on its stop");
    assert_eq!((report.handled, report.dead_lettered), (2, 1));
    assert_eq!(committed(&transport, "ledger").await, Some(2));
    let letters = letters(&transport).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].original_offset, 1);
    assert_eq!(letters[0].attempts, 2);
    setup.finish().await;
}

/// Deliveries of two partitions terminated at once after the deletion both find
/// the topic gone; both create it again (one of them finds it created) and both
/// letters are written.
async fn concurrent_terms_on_two_partitions_recreate_the_topic(remote: bool) {
    let setup = Setup::start(remote).await;
    let transport = Transport::<Refund>::new(
        Arc::clone(&setup.connector),
        TransportOptions {
            stream: rustok_iggy::connector::StreamName::new("shop").unwrap(),
            partitions: 2,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    // Events of different tenants until each partition holds two.
    let mut per_partition = [0u32; 2];
    let mut seq = 0;
    while per_partition.iter().any(|n| *n < 2) {
        let receipt = transport
            .publish(&Refund {
                tenant: format!("t{seq}"),
                seq,
            })
            .await
            .unwrap();
        per_partition[receipt.partition as usize] += 1;
        seq += 1;
    }
    let mut subscription = transport.subscribe("refunds").await.unwrap();
    let mut by_partition: [Vec<Delivery<Refund>>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..seq {
        let delivery = next(&mut subscription).await;
        by_partition[delivery.info().partition as usize].push(delivery);
    }
    by_partition[0]
        .remove(0)
        .term("opens the topic")
        .await
        .unwrap();
    setup
        .delete(&transport, &dead_letter_topic(&transport))
        .await;

    let (zero, one) = (by_partition[0].remove(0), by_partition[1].remove(0));
    let (zero, one) = tokio::join!(zero.term("partition 0"), one.term("partition 1"));
    zero.expect("partition 0's letter is written");
    one.expect("partition 1's letter is written");
    let mut errors: Vec<_> = letters(&transport)
        .await
        .into_iter()
        .map(|letter| letter.error)
        .collect();
    errors.sort();
    assert_eq!(errors, ["partition 0", "partition 1"]);
    let info = within(
        "the dead-letter topic",
        transport
            .connector()
            .topic_info(transport.stream(), &dead_letter_topic(&transport)),
    )
    .await
    .unwrap()
    .expect("the dead-letter topic exists again");
    assert_eq!(info.partitions, 2);
    drop(by_partition);
    subscription.close().await.unwrap();
    setup.finish().await;
}

macro_rules! both_connectors {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(false).await; } )*
        }
        mod listener {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(true).await; } )*
        }
    };
}

both_connectors!(
    term_recreates_a_deleted_dead_letter_topic,
    the_runner_recreates_a_deleted_dead_letter_topic,
    concurrent_terms_on_two_partitions_recreate_the_topic,
);
