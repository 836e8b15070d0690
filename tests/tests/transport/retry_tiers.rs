//! Retry tiers of the handler runner on both connectors: a failing event moves to
//! `<topic>.<group>.retry.<n>` and is handled again after its delay, while its source
//! partition flows on; after the last tier it is a dead letter.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{
    HandlerError, RetryPolicy, SubscriptionOptions,
    connector::{GroupName, TopicName},
    consume::{ConsumeOptions, ConsumeReport},
    dead_letter::DeadLetterConfig,
};
use rustok_iggy_connector::metric_names;
use serde::{Deserialize, Serialize};
use tests::conformance::{Harness, read_all};
use tests::faulty::DeadLetterOutage;
use tests::{metric_value, within};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "tiered", key = tenant)]
struct Charge {
    tenant: String,
    seq: u64,
}

/// (seq, attempt, partition, offset, succeeded) of every handler call, in order.
type Calls = Arc<Mutex<Vec<(u64, u32, u32, u64, bool)>>>;

async fn charges(h: &mut Harness, case: &str) -> Transport<Charge> {
    let connector = Arc::clone(&h.connector);
    charges_on(connector, h, case).await
}

async fn charges_on(
    connector: Arc<dyn rustok_iggy::connector::IggyConnector>,
    h: &mut Harness,
    case: &str,
) -> Transport<Charge> {
    let stream = h.stream(case);
    let transport = Transport::new(
        connector,
        TransportOptions {
            stream,
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .expect("the topic is ready");
    for seq in 0..3 {
        transport
            .publish(&Charge {
                tenant: "t".into(),
                seq,
            })
            .await
            .unwrap();
    }
    transport
}

/// Runs the handler runner with tiers of 10 ms and 20 ms until `done` says the
/// calls so far are enough; event 0 fails its first `failures` attempts.
async fn run_tiers(
    transport: &Transport<Charge>,
    failures: u32,
    done: impl Fn(&[(u64, u32, u32, u64, bool)]) -> bool + Send + Sync + 'static,
) -> (ConsumeReport, Vec<(u64, u32, u32, u64, bool)>) {
    let calls: Calls = Arc::default();
    let changed = Arc::new(Notify::new());
    let stop = {
        let (calls, changed) = (Arc::clone(&calls), Arc::clone(&changed));
        async move {
            loop {
                let notified = changed.notified();
                if done(&calls.lock().unwrap_or_else(PoisonError::into_inner)) {
                    return;
                }
                notified.await;
            }
        }
    };
    let options = ConsumeOptions {
        retry: RetryPolicy::tiers([Duration::from_millis(10), Duration::from_millis(20)]),
        ..ConsumeOptions::default()
    };
    let handler = {
        let (calls, changed) = (Arc::clone(&calls), Arc::clone(&changed));
        move |charge: rustok_iggy::consume::Received<Charge>| {
            let (calls, changed) = (Arc::clone(&calls), Arc::clone(&changed));
            async move {
                let info = charge.info();
                let fails = charge.seq == 0 && info.attempt <= failures;
                calls.lock().unwrap_or_else(PoisonError::into_inner).push((
                    charge.seq,
                    info.attempt,
                    info.partition,
                    info.offset,
                    !fails,
                ));
                changed.notify_one();
                if fails {
                    return Err(HandlerError::retryable("the card processor is down"));
                }
                Ok(())
            }
        }
    };
    let report = within(
        "the runner",
        transport.consume("billing", options, stop, handler),
    )
    .await
    .expect("the runner ends on its stop");
    let calls = calls.lock().unwrap_or_else(PoisonError::into_inner).clone();
    (report, calls)
}

fn tier(transport: &Transport<Charge>, n: u32) -> TopicName {
    TopicName::new(format!("{}.billing.retry.{n}", transport.topic())).unwrap()
}

async fn committed(transport: &Transport<Charge>, topic: &TopicName) -> Option<u64> {
    transport
        .connector()
        .committed_offsets(
            transport.stream(),
            topic,
            &GroupName::new("billing").unwrap(),
        )
        .await
        .expect("committed offsets")[0]
}

/// An event failing twice is handled once more from tier 1, then succeeds from
/// tier 2; the later events of its partition were handled before it, each hop was
/// committed, and nothing is a dead letter.
async fn an_event_failing_twice_succeeds_from_the_second_tier(mut h: Harness) {
    let transport = charges(&mut h, "tiers").await;
    let (report, calls) = run_tiers(&transport, 2, |calls| {
        calls.iter().any(|c| c.0 == 0 && c.4) && calls.iter().filter(|c| c.4).count() >= 3
    })
    .await;
    let zero: Vec<_> = calls.iter().filter(|c| c.0 == 0).collect();
    assert_eq!(
        zero.iter().map(|c| (c.1, c.4)).collect::<Vec<_>>(),
        vec![(1, false), (2, false), (3, true)],
        "attempts of the failing event: {calls:?}"
    );
    assert!(
        zero.iter().all(|c| (c.2, c.3) == (0, 0)),
        "every tier hands the handler the event's original partition and offset: {calls:?}"
    );
    let success_at = calls.iter().position(|c| c.0 == 0 && c.4).unwrap();
    for later in [1, 2] {
        let at = calls.iter().position(|c| c.0 == later && c.4).unwrap();
        assert!(
            at < success_at,
            "event {later} waited for the retried one: {calls:?}"
        );
    }
    assert_eq!(
        calls.iter().filter(|c| c.4).count(),
        3,
        "each event handled once"
    );
    assert_eq!(report.handled, 3);
    assert_eq!(report.dead_lettered, 0);
    for n in [1, 2] {
        let stored = read_all(
            &*h.connector,
            transport.stream(),
            &tier(&transport, n),
            0,
            0,
        )
        .await;
        assert_eq!(stored.len(), 1, "tier {n} got the event once");
    }
    assert_eq!(committed(&transport, transport.topic()).await, Some(2));
    assert_eq!(committed(&transport, &tier(&transport, 1)).await, Some(0));
    assert_eq!(committed(&transport, &tier(&transport, 2)).await, Some(0));
    let letters = transport
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    assert_eq!(letters.depth().await.unwrap(), 0);
    h.finish().await;
}

/// An event failing at every attempt goes through both tiers and ends in the
/// dead-letter topic once, with its original coordinates and all its attempts.
async fn an_event_failing_always_ends_as_one_dead_letter(mut h: Harness) {
    let transport = charges(&mut h, "tiersdlq").await;
    let (report, calls) = run_tiers(&transport, u32::MAX, |calls| {
        calls.iter().filter(|c| c.0 == 0).count() >= 3 && calls.iter().filter(|c| c.4).count() >= 2
    })
    .await;
    assert_eq!(calls.iter().filter(|c| c.0 == 0).count(), 3, "{calls:?}");
    assert_eq!(report.dead_lettered, 1);
    let letters = transport
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap()
        .list(10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].original_topic, "tiered");
    assert_eq!(
        (letters[0].original_partition, letters[0].original_offset),
        (0, 0)
    );
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(letters[0].error, "the card processor is down");
    assert_eq!(committed(&transport, transport.topic()).await, Some(2));
    assert_eq!(committed(&transport, &tier(&transport, 2)).await, Some(0));
    h.finish().await;
}

/// While the tier topic refuses writes, the event that failed is not committed
/// past (its partition waits for the write); once the tier is back, it goes
/// through the tier and everything is handled once and committed.
async fn a_failed_tier_write_commits_nothing(mut h: Harness) {
    let outage = DeadLetterOutage::of_topics_ending(Arc::clone(&h.connector), ".retry.1");
    let transport = charges_on(outage.clone(), &mut h, "tierdown").await;
    outage.hooks().set_down(true);
    let stop = {
        let outage = Arc::clone(&outage);
        async move {
            outage.hooks().wait_for_failure().await;
        }
    };
    let options = ConsumeOptions {
        retry: RetryPolicy::tiers([Duration::from_millis(10)]),
        ..ConsumeOptions::default()
    };
    let handler = |charge: rustok_iggy::consume::Received<Charge>| async move {
        if charge.seq == 0 && charge.info().attempt == 1 {
            return Err(HandlerError::retryable("down"));
        }
        Ok(())
    };
    let report = within(
        "the runner during the outage",
        transport.consume("billing", options.clone(), stop, handler),
    )
    .await
    .unwrap();
    assert!(outage.hooks().failures() >= 1);
    assert_eq!(report.retried, 0, "nothing was moved: {report:?}");
    assert_eq!(
        committed(&transport, transport.topic()).await,
        None,
        "the source is not committed past an event whose tier write failed"
    );
    outage.hooks().set_down(false);
    let (report, calls) = run_tiers(&transport, 1, |calls| {
        calls.iter().filter(|c| c.4).count() >= 3
    })
    .await;
    assert_eq!(report.handled, 3, "{calls:?}");
    assert_eq!(committed(&transport, transport.topic()).await, Some(2));
    h.finish().await;
}

/// Runs the handler runner with tiers of 10 ms and 20 ms until `outage` has refused
/// a write; event 0 fails its first `failures` attempts.
async fn run_until_refused(
    transport: &Transport<Charge>,
    outage: &Arc<rustok_iggy::testing::Observed<DeadLetterOutage>>,
    failures: u32,
) -> ConsumeReport {
    let stop = {
        let outage = Arc::clone(outage);
        async move {
            outage.hooks().wait_for_failure().await;
        }
    };
    let options = ConsumeOptions {
        retry: RetryPolicy::tiers([Duration::from_millis(10), Duration::from_millis(20)]),
        ..ConsumeOptions::default()
    };
    let handler = move |charge: rustok_iggy::consume::Received<Charge>| async move {
        if charge.seq == 0 && charge.info().attempt <= failures {
            return Err(HandlerError::retryable("the card processor is down"));
        }
        Ok(())
    };
    within(
        "the runner during the outage",
        transport.consume("billing", options, stop, handler),
    )
    .await
    .unwrap()
}

/// A failed write from tier 1 to tier 2 commits nothing in tier 1: the event
/// stays there; once tier 2 takes writes again, it goes through tier 2 and is
/// handled exactly once, stored once in tier 2.
async fn a_failed_write_to_the_next_tier_commits_nothing(mut h: Harness) {
    let outage = DeadLetterOutage::of_topics_ending(Arc::clone(&h.connector), ".retry.2");
    let transport = charges_on(outage.clone(), &mut h, "tier2down").await;
    outage.hooks().set_down(true);
    let report = run_until_refused(&transport, &outage, 2).await;
    assert!(outage.hooks().failures() >= 1);
    assert_eq!(
        committed(&transport, &tier(&transport, 1)).await,
        None,
        "tier 1 is not committed past an event whose tier 2 write failed: {report:?}"
    );
    let tier2 = read_all(
        &*h.connector,
        transport.stream(),
        &tier(&transport, 2),
        0,
        0,
    )
    .await;
    assert!(tier2.is_empty(), "the refused write stored nothing");
    outage.hooks().set_down(false);
    let (report, calls) =
        run_tiers(&transport, 2, |calls| calls.iter().any(|c| c.0 == 0 && c.4)).await;
    assert_eq!(
        calls.iter().filter(|c| c.0 == 0 && c.4).count(),
        1,
        "the event is handled once: {calls:?}"
    );
    assert_eq!(report.dead_lettered, 0);
    let tier2 = read_all(
        &*h.connector,
        transport.stream(),
        &tier(&transport, 2),
        0,
        0,
    )
    .await;
    assert_eq!(tier2.len(), 1, "tier 2 got the event once");
    assert_eq!(committed(&transport, &tier(&transport, 1)).await, Some(0));
    assert_eq!(committed(&transport, &tier(&transport, 2)).await, Some(0));
    assert_eq!(committed(&transport, transport.topic()).await, Some(2));
    h.finish().await;
}

/// A failed write from the last tier to the dead-letter topic commits nothing in
/// that tier; once the dead-letter topic takes writes again, the event is one dead
/// letter and the tier is committed past it.
async fn a_failed_dead_letter_write_from_the_last_tier_commits_nothing(mut h: Harness) {
    let outage = DeadLetterOutage::new(Arc::clone(&h.connector));
    let transport = charges_on(outage.clone(), &mut h, "tierdlqdown").await;
    outage.hooks().set_down(true);
    let report = run_until_refused(&transport, &outage, u32::MAX).await;
    assert!(outage.hooks().failures() >= 1);
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    assert_eq!(
        committed(&transport, &tier(&transport, 2)).await,
        None,
        "the last tier is not committed past an event whose dead letter failed"
    );
    outage.hooks().set_down(false);
    let letters = transport
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    assert_eq!(letters.depth().await.unwrap(), 0);
    let stop = {
        let letters = letters.clone();
        async move {
            while letters.depth().await.unwrap() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let options = ConsumeOptions {
        retry: RetryPolicy::tiers([Duration::from_millis(10), Duration::from_millis(20)]),
        ..ConsumeOptions::default()
    };
    let handler = |charge: rustok_iggy::consume::Received<Charge>| async move {
        if charge.seq == 0 {
            return Err(HandlerError::retryable("the card processor is down"));
        }
        Ok(())
    };
    within(
        "the runner after the outage",
        transport.consume("billing", options, stop, handler),
    )
    .await
    .unwrap();
    let list = letters.list(10).await.unwrap();
    assert_eq!(list.len(), 1, "one dead letter: {list:?}");
    assert_eq!(
        (list[0].original_partition, list[0].original_offset),
        (0, 0)
    );
    assert_eq!(committed(&transport, &tier(&transport, 2)).await, Some(0));
    assert_eq!(committed(&transport, transport.topic()).await, Some(2));
    h.finish().await;
}

/// Runs `group`'s handler runner with one 10 ms tier until `done`; `fails(seq,
/// attempt)` says which calls fail. Returns (seq, attempt, succeeded) of every call.
async fn run_group(
    transport: &Transport<Charge>,
    group: &str,
    fails: fn(u64, u32) -> bool,
    done: fn(&[(u64, u32, bool)]) -> bool,
) -> Vec<(u64, u32, bool)> {
    let calls: Arc<Mutex<Vec<(u64, u32, bool)>>> = Arc::default();
    let changed = Arc::new(Notify::new());
    let stop = {
        let (calls, changed) = (Arc::clone(&calls), Arc::clone(&changed));
        async move {
            loop {
                let notified = changed.notified();
                if done(&calls.lock().unwrap_or_else(PoisonError::into_inner)) {
                    return;
                }
                notified.await;
            }
        }
    };
    let options = ConsumeOptions {
        retry: RetryPolicy::tiers([Duration::from_millis(10)]),
        ..ConsumeOptions::default()
    };
    let handler = {
        let (calls, changed) = (Arc::clone(&calls), Arc::clone(&changed));
        move |charge: rustok_iggy::consume::Received<Charge>| {
            let (calls, changed) = (Arc::clone(&calls), Arc::clone(&changed));
            async move {
                let attempt = charge.info().attempt;
                let failed = fails(charge.seq, attempt);
                calls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((charge.seq, attempt, !failed));
                changed.notify_one();
                if failed {
                    return Err(HandlerError::retryable("down"));
                }
                Ok(())
            }
        }
    };
    within(
        "the runner",
        transport.consume(group, options, stop, handler),
    )
    .await
    .expect("the runner ends on its stop");
    calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Two consumer groups with tiers on one topic keep their retries apart: a group
/// handles again only the events it failed itself (never another group's retry),
/// and when both fail the same event, each group's retry is kept and handled.
async fn each_group_retries_only_its_own_failures(mut h: Harness) {
    let transport = charges(&mut h, "tiergroups").await;
    // billing fails event 0 once, then handles it from its tier.
    let billing = run_group(
        &transport,
        "billing",
        |seq, attempt| seq == 0 && attempt == 1,
        |calls| calls.iter().filter(|c| c.2).count() >= 3,
    )
    .await;
    assert_eq!(
        billing
            .iter()
            .filter(|c| c.0 == 0)
            .map(|c| c.1)
            .collect::<Vec<_>>(),
        vec![1, 2],
        "{billing:?}"
    );
    // audit fails event 1 once and event 0 once; it handles each of them twice
    // (its own retry), never a third time from billing's retry.
    let audit = run_group(
        &transport,
        "audit",
        |seq, attempt| seq <= 1 && attempt == 1,
        |calls| calls.iter().filter(|c| c.2).count() >= 3,
    )
    .await;
    for seq in [0, 1] {
        assert_eq!(
            audit
                .iter()
                .filter(|c| c.0 == seq)
                .map(|c| (c.1, c.2))
                .collect::<Vec<_>>(),
            vec![(1, false), (2, true)],
            "audit's calls of event {seq}: {audit:?}"
        );
    }
    // A third group that never fails handles each event once: no other group's
    // retry reaches it. Its stop waits for the retries of the others to have had
    // their chance: it fails event 2 once and stops on its own retry of it, which
    // its tier runner reads after anything written to its tier before.
    let ledger = run_group(
        &transport,
        "ledger",
        |seq, attempt| seq == 2 && attempt == 1,
        |calls| calls.iter().any(|c| c.0 == 2 && c.2),
    )
    .await;
    assert_eq!(
        ledger.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(),
        vec![(0, 1), (1, 1), (2, 1), (2, 2)],
        "ledger handles only its own retry: {ledger:?}"
    );
    h.finish().await;
}

/// An event waiting in a tier for its due time is not an expired delivery: the
/// wait extends the `ack_wait` deadline (shorter than the tier's delay), so the
/// event is handled once from the tier and nothing is counted as expired.
async fn a_tier_wait_longer_than_ack_wait_is_not_an_expiry(mut h: Harness) {
    let transport = charges(&mut h, "tierackwait").await;
    let group = format!("ackwait-{:?}", h.target).to_lowercase();
    let tier = format!("{}.{group}.retry.1", transport.topic());
    let labels = [
        ("messaging_destination_name", tier.as_str()),
        ("messaging_consumer_group_name", group.as_str()),
    ];
    let before = metric_value(metric_names::ACK_EXPIRED, &labels);
    let calls: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
    let changed = Arc::new(Notify::new());
    let stop = {
        let (calls, changed) = (Arc::clone(&calls), Arc::clone(&changed));
        async move {
            loop {
                let notified = changed.notified();
                if calls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .contains(&(0, 2))
                {
                    return;
                }
                notified.await;
            }
        }
    };
    let options = ConsumeOptions {
        retry: RetryPolicy::tiers([Duration::from_millis(600)]),
        subscription: SubscriptionOptions {
            ack_wait: Some(Duration::from_millis(60)),
            ..SubscriptionOptions::default()
        },
        ..ConsumeOptions::default()
    };
    let handler = {
        let (calls, changed) = (Arc::clone(&calls), Arc::clone(&changed));
        move |charge: rustok_iggy::consume::Received<Charge>| {
            let (calls, changed) = (Arc::clone(&calls), Arc::clone(&changed));
            async move {
                let attempt = charge.info().attempt;
                calls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((charge.seq, attempt));
                changed.notify_one();
                if charge.seq == 0 && attempt == 1 {
                    return Err(HandlerError::retryable("down"));
                }
                Ok(())
            }
        }
    };
    within(
        "the runner",
        transport.consume(&group, options, stop, handler),
    )
    .await
    .expect("the runner ends on its stop");
    assert_eq!(
        metric_value(metric_names::ACK_EXPIRED, &labels),
        before,
        "waiting for the due time expired the tier delivery: {:?}",
        calls.lock().unwrap_or_else(PoisonError::into_inner)
    );
    h.finish().await;
}

tests::both_modes!(
    a_failed_tier_write_commits_nothing,
    a_failed_write_to_the_next_tier_commits_nothing,
    a_failed_dead_letter_write_from_the_last_tier_commits_nothing,
    a_tier_wait_longer_than_ack_wait_is_not_an_expiry,
    each_group_retries_only_its_own_failures,
    an_event_failing_twice_succeeds_from_the_second_tier,
    an_event_failing_always_ends_as_one_dead_letter,
);
