//! The dead-letter write is confirmed before the source offset is committed: a crash
//! between the two duplicates the dead letter at worst, and never loses the event.
//! A connector wrapper (a test double) injects the crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;
use rustok_iggy::prelude::*;
use rustok_iggy::{
    HandlerError, RetryPolicy,
    consume::ConsumeOptions,
    dead_letter::DeadLetterConfig,
    testing::{Hooks, Observed},
};
use rustok_iggy_connector::{
    ConnectorError, GroupName, IggyConnector, PublishReceipt, PublishRequest, StreamName, TopicName,
};
use serde::{Deserialize, Serialize};
use tests::{embedded_config, open_embedded, within};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs")]
struct Job {
    n: u64,
}

/// Hooks on a real connector: commits fail ("the process died") once a dead letter
/// was written, and/or dead-letter writes fail. The wrapper's shutdown leaves the
/// real connector, which the test shuts down, running.
#[derive(Debug)]
struct Faulty {
    crash_after_dead_letter: AtomicBool,
    crashed: AtomicBool,
    fail_dead_letters: AtomicBool,
    failed_dead_letters: AtomicU32,
    dead_letter_failed: Notify,
}

#[async_trait]
impl Hooks for Faulty {
    async fn before_publish(&self, request: &PublishRequest) -> Result<(), ConnectorError> {
        if is_dead_letter(&request.topic) && self.fail_dead_letters.load(Ordering::SeqCst) {
            self.failed_dead_letters.fetch_add(1, Ordering::SeqCst);
            self.dead_letter_failed.notify_one();
            return Err(ConnectorError::InvalidRequest(
                "injected: the dead-letter write failed".into(),
            ));
        }
        Ok(())
    }

    fn after_publish(
        &self,
        _stream: &StreamName,
        topic: &TopicName,
        answer: Result<PublishReceipt, ConnectorError>,
    ) -> Result<PublishReceipt, ConnectorError> {
        let receipt = answer?;
        if is_dead_letter(topic) && self.crash_after_dead_letter.load(Ordering::SeqCst) {
            self.crashed.store(true, Ordering::SeqCst);
        }
        Ok(receipt)
    }

    fn before_commit(&self, _: &GroupName, _: u32, _: u64) -> Result<(), ConnectorError> {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(ConnectorError::NotConnected);
        }
        Ok(())
    }

    fn passes_shutdown_on(&self) -> bool {
        false
    }
}

fn is_dead_letter(topic: &TopicName) -> bool {
    topic.as_str().ends_with(".dlq")
}

/// Runs the consumer until the handler saw `n = 2`, with handler failures for `n = 1`.
async fn run_once(
    connector: Arc<dyn IggyConnector>,
) -> Result<rustok_iggy::consume::ConsumeReport, rustok_iggy::Error> {
    let jobs = Transport::<Job>::new(
        connector,
        TransportOptions {
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    let done = Arc::new(Notify::new());
    let stop = Arc::clone(&done);
    let options = ConsumeOptions {
        retry: RetryPolicy::none(),
        ..ConsumeOptions::default()
    };
    within(
        "runner",
        jobs.consume(
            "workers",
            options,
            async move { stop.notified().await },
            move |job| {
                let done = Arc::clone(&done);
                async move {
                    if job.n == 2 {
                        done.notify_one();
                    }
                    if job.n == 1 {
                        Err(HandlerError::permanent("job 1 always fails"))
                    } else {
                        Ok(())
                    }
                }
            },
        ),
    )
    .await
}

fn faulty(inner: Arc<dyn IggyConnector>) -> Arc<Observed<Faulty>> {
    Observed::new(
        inner,
        Faulty {
            crash_after_dead_letter: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            fail_dead_letters: AtomicBool::new(false),
            failed_dead_letters: AtomicU32::new(0),
            dead_letter_failed: Notify::new(),
        },
    )
}

#[tokio::test]
async fn a_crash_between_the_dead_letter_and_the_commit_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let real = open_embedded(&embedded_config(dir.path())).await;
    let real: Arc<dyn IggyConnector> = real;
    let jobs = Transport::<Job>::new(
        Arc::clone(&real),
        TransportOptions {
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    for n in 0..3 {
        jobs.publish(&Job { n }).await.unwrap();
    }

    // Run 1: the dead letter of job 1 is written, then the process "dies" (no commit
    // goes through any more).
    let crashing = faulty(Arc::clone(&real));
    crashing
        .hooks()
        .crash_after_dead_letter
        .store(true, Ordering::SeqCst);
    let crashed = run_once(crashing).await;
    assert!(
        crashed.is_err(),
        "the final commit of the dead process fails: {crashed:?}"
    );
    let committed = real
        .committed_offsets(
            jobs.stream(),
            jobs.topic(),
            &GroupName::new("workers").unwrap(),
        )
        .await
        .unwrap();
    // Commits run in the background, so job 0's may or may not have landed before
    // the crash; job 1's never did (its acknowledgement came after the dead letter).
    assert!(
        matches!(committed[..], [None] | [Some(0)]),
        "committed {committed:?}"
    );

    // Run 2, after the restart: job 1 comes again and is dead-lettered again.
    let report = run_once(Arc::clone(&real)).await.unwrap();
    assert_eq!(report.dead_lettered, 1);
    let committed = real
        .committed_offsets(
            jobs.stream(),
            jobs.topic(),
            &GroupName::new("workers").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(committed, vec![Some(2)]);
    let letters = jobs
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap()
        .list(10)
        .await
        .unwrap();
    // The second dead-letter write carries the same message id: the dead-letter
    // topic's deduplication window stores it once.
    assert_eq!(letters.len(), 1, "stored once, not lost");
    assert!(letters.iter().all(|l| l.original_offset == 1));
    real.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_dead_letter_write_leaves_the_source_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let real: Arc<dyn IggyConnector> = open_embedded(&embedded_config(dir.path())).await;
    let jobs = Transport::<Job>::new(
        Arc::clone(&real),
        TransportOptions {
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    for n in 0..3 {
        jobs.publish(&Job { n }).await.unwrap();
    }
    let broken = faulty(Arc::clone(&real));
    broken
        .hooks()
        .fail_dead_letters
        .store(true, Ordering::SeqCst);
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let report = {
        let connector: Arc<dyn IggyConnector> = Arc::clone(&broken) as Arc<dyn IggyConnector>;
        let jobs = Transport::<Job>::new(
            connector,
            TransportOptions {
                partitions: 1,
                ..TransportOptions::default()
            },
        )
        .await
        .unwrap();
        let broken = Arc::clone(&broken);
        // Stop once the dead-letter write has failed twice (it is retried meanwhile).
        let stop = async move {
            while broken.hooks().failed_dead_letters.load(Ordering::SeqCst) < 2 {
                broken.hooks().dead_letter_failed.notified().await;
            }
        };
        let options = ConsumeOptions {
            retry: RetryPolicy::fixed(1, std::time::Duration::from_millis(1)),
            ..ConsumeOptions::default()
        };
        let handled = Arc::clone(&handled);
        within(
            "runner with a failing dead-letter topic",
            jobs.consume("workers", options, stop, move |job| {
                let handled = Arc::clone(&handled);
                async move {
                    handled.lock().unwrap().push(job.n);
                    if job.n == 1 {
                        Err(HandlerError::permanent("job 1 always fails"))
                    } else {
                        Ok(())
                    }
                }
            }),
        )
        .await
        .unwrap()
    };
    assert_eq!(report.dead_lettered, 0);
    assert_eq!(
        *handled.lock().unwrap(),
        vec![0, 1],
        "the partition waited: job 2 was not handled before job 1 was settled"
    );
    let committed = real
        .committed_offsets(
            jobs.stream(),
            jobs.topic(),
            &GroupName::new("workers").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(committed, vec![Some(0)], "the commit stops before job 1");
    // Once dead letters can be written, job 1 ends up there and everything commits.
    let report = run_once(Arc::clone(&real)).await.unwrap();
    assert_eq!(report.dead_lettered, 1);
    let committed = real
        .committed_offsets(
            jobs.stream(),
            jobs.topic(),
            &GroupName::new("workers").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(committed, vec![Some(2)]);
    real.shutdown().await.unwrap();
}
