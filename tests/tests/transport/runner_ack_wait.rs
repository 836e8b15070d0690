//! The handler runner and `ack_wait`: a handler attempt that runs past the
//! subscription's `ack_wait` is cancelled and counted as a failed attempt (retried
//! per the retry policy, then a dead letter), so a hung handler cannot hold its
//! partition for ever; the expiry is counted in `rustok_iggy_ack_expired_total`. An
//! attempt that finishes within `ack_wait` is not handed out a second time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{HandlerError, RetryPolicy, SubscriptionOptions, consume::ConsumeOptions};
use rustok_iggy_connector::metric_names;
use serde::{Deserialize, Serialize};
use tests::conformance::Harness;
use tests::{metric_value, within};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "hung")]
struct Job {
    seq: u64,
}

async fn a_hung_handler_is_cancelled_at_ack_wait_and_retried(mut h: Harness) {
    let stream = h.stream("hung");
    let transport = Transport::<Job>::new(
        Arc::clone(&h.connector),
        TransportOptions {
            stream: stream.clone(),
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    for seq in 0..2 {
        transport.publish(&Job { seq }).await.unwrap();
    }
    let group = format!("workers-{}", stream.as_str());
    let labels = [
        ("messaging_destination_name", transport.topic().as_str()),
        ("messaging_consumer_group_name", group.as_str()),
    ];
    let expired_before = metric_value(metric_names::ACK_EXPIRED, &labels);

    let calls = Arc::new(AtomicU32::new(0));
    let handled = Arc::new(AtomicU32::new(0));
    let done = Arc::new(Notify::new());
    let handler = {
        let (calls, handled, done) = (Arc::clone(&calls), Arc::clone(&handled), Arc::clone(&done));
        move |job: rustok_iggy::consume::Received<Job>| {
            let (calls, handled, done) =
                (Arc::clone(&calls), Arc::clone(&handled), Arc::clone(&done));
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if job.seq == 0 && job.info().attempt == 1 {
                    // Hangs: only the runner's ack_wait ends this attempt.
                    std::future::pending::<()>().await;
                }
                if handled.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                    done.notify_one();
                }
                Ok::<(), HandlerError>(())
            }
        }
    };
    let options = ConsumeOptions {
        retry: RetryPolicy::fixed(3, Duration::from_millis(1)),
        subscription: SubscriptionOptions {
            ack_wait: Some(Duration::from_millis(200)),
            ..SubscriptionOptions::default()
        },
        ..ConsumeOptions::default()
    };
    let stop = {
        let done = Arc::clone(&done);
        async move { done.notified().await }
    };
    let report = within(
        "the runner past a hung handler",
        transport.consume(&group, options, stop, handler),
    )
    .await
    .expect("the runner ends on its stop");
    assert_eq!(handled.load(Ordering::SeqCst), 2, "{report:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the hung attempt, its retry, and the next event: nothing twice"
    );
    assert!(
        metric_value(metric_names::ACK_EXPIRED, &labels) > expired_before,
        "the expiry is counted"
    );
    h.finish().await;
}

tests::both_modes!(a_hung_handler_is_cancelled_at_ack_wait_and_retried);
