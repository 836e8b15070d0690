//! A shutdown that lands at any moment of a waiting read ends the read with
//! `ShuttingDown`: before the read sends anything, while one of its requests is in
//! flight, or while it waits at the head of the partition. Never a connection error
//! or "this member already left" from the connection the shutdown closed.
//!
//! Each round opens a connector, starts a read that waits (the topic is empty), lets
//! the scheduler run a different number of times, and shuts the connector down: the
//! rounds spread the shutdown over the phases of the read.

use std::future::Future;
use std::sync::Arc;

use rustok_iggy_connector::{
    ConnectorConfig, ConnectorError, EmbeddedConnector, IggyConnector, StartPosition, TopicSpec,
};
use tests::conformance::{group, open_remote, remote_config};
use tests::wire::{PASSWORD, USERNAME, WireBroker};
use tests::{names, within};

/// Rounds per read kind and connector: four sweeps of [`SWEEP`].
const ROUNDS: usize = 4 * SWEEP;
/// Rounds per sweep over the phases of the read.
const SWEEP: usize = 40;

/// How many times the test yields to the scheduler before the shutdown of `round`:
/// from none (the shutdown wins the race to the first request) to a few thousand
/// (the read is waiting at the head, between its polls).
fn yields(round: usize) -> usize {
    let step = round % SWEEP;
    step * step * 4
}

/// Which waiting read a round starts.
#[derive(Debug, Clone, Copy)]
enum Read {
    /// `GroupConsumer::poll` of a group member.
    GroupPoll,
    /// `MessageSubscriber::next_batch` of a partition subscriber.
    Subscriber,
}

/// Runs [`ROUNDS`] rounds of `read` on connectors from `open`, and fails with every
/// round whose read ended otherwise than with `ShuttingDown`.
async fn rounds<F, Fut>(read: Read, open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn IggyConnector>>,
{
    let (stream, topic) = names("shutdown-race", "quiet");
    let mut wrong = Vec::new();
    for round in 0..ROUNDS {
        let connector = open().await;
        within(
            "create the topic",
            connector.ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 1)),
        )
        .await
        .expect("the topic");
        let waiting = match read {
            Read::GroupPoll => {
                let member = within(
                    "join",
                    connector.join_group(
                        &stream,
                        &topic,
                        &group("sleepers"),
                        StartPosition::Earliest,
                    ),
                )
                .await
                .expect("joined");
                tokio::spawn(async move { member.poll(10).await })
            }
            Read::Subscriber => {
                let mut subscriber = within(
                    "subscribe",
                    connector.subscribe(&stream, &topic, 0, StartPosition::Earliest),
                )
                .await
                .expect("subscribed");
                tokio::spawn(async move { subscriber.next_batch(10).await })
            }
        };
        for _ in 0..yields(round) {
            tokio::task::yield_now().await;
        }
        within("shutdown", connector.shutdown())
            .await
            .expect("clean shutdown");
        let ended = within("the waiting read ends", waiting)
            .await
            .expect("the read task ran");
        if !matches!(ended, Err(ConnectorError::ShuttingDown)) {
            wrong.push(format!(
                "round {round} ({} yields): {ended:?}",
                yields(round)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{read:?}: {} of {ROUNDS} reads did not end with ShuttingDown:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A remote connector on a broker's listener, per round.
async fn remote_rounds(read: Read) {
    let broker = WireBroker::start().await;
    let config = remote_config(&broker.address.to_string(), USERNAME, PASSWORD);
    rounds(read, || open_remote(&config)).await;
    broker.shutdown().await;
}

/// An embedded connector in a fresh directory, per round.
async fn embedded_rounds(read: Read) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let round = std::sync::atomic::AtomicUsize::new(0);
    rounds(read, || {
        let n = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = ConnectorConfig::embedded(dir.path().join(n.to_string()));
        async move {
            let connector = EmbeddedConnector::new();
            within("open the embedded broker", connector.connect(&config))
                .await
                .expect("the embedded broker opens");
            Arc::new(connector) as Arc<dyn IggyConnector>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_group_poll_ends_with_shutting_down_wherever_the_shutdown_lands() {
    remote_rounds(Read::GroupPoll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_subscriber_ends_with_shutting_down_wherever_the_shutdown_lands() {
    remote_rounds(Read::Subscriber).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_group_poll_ends_with_shutting_down_wherever_the_shutdown_lands() {
    embedded_rounds(Read::GroupPoll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_subscriber_ends_with_shutting_down_wherever_the_shutdown_lands() {
    embedded_rounds(Read::Subscriber).await;
}
