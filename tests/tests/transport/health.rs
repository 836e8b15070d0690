//! Health tells the truth, on both connectors: `Healthy`, `Degraded` and `Unhealthy`
//! each where they belong; `Unhealthy`, not an error, when the server is gone (a
//! real ping with a timeout) or a partition's log is poisoned (embedded, also on
//! `/health`). With `IGGY_TEST_ADDRESS` set, the cases that need no fault run
//! against that server too.

use std::sync::Arc;
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{
    ConsumeOptions, EmbeddedConnector, HandlerError, HealthReport, HealthStatus, HealthThresholds,
    IggyConnector, RetryPolicy, StreamName,
};
use serde::{Deserialize, Serialize};
use tests::conformance::{Harness, open_remote, remote_config};
use tests::wire::{PASSWORD, USERNAME};
use tests::within;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "t", key = account)]
struct Posted {
    account: String,
    seq: u64,
}

fn posted(seq: u64) -> Posted {
    Posted {
        account: "acct".into(),
        seq,
    }
}

async fn transport(connector: Arc<dyn IggyConnector>, stream: StreamName) -> Transport<Posted> {
    Transport::new(
        connector,
        TransportOptions {
            stream,
            partitions: 2,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap()
}

fn check<'a>(report: &'a HealthReport, name: &str) -> &'a rustok_iggy::HealthCheck {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:?}"))
}

async fn healthy_then_degraded_then_unhealthy_by_lag(mut h: Harness) {
    let stream = h.stream("lag");
    let posts = transport(Arc::clone(&h.connector), stream).await;
    let thresholds = HealthThresholds {
        lag_degraded: 2,
        lag_unhealthy: 4,
        ..HealthThresholds::default()
    };
    let report = posts.health("g", &thresholds).await.unwrap();
    assert_eq!(
        report.status,
        HealthStatus::Healthy,
        "{:?}: {report:?}",
        h.target
    );
    for seq in 0..3 {
        posts.publish(&posted(seq)).await.unwrap();
    }
    let report = posts.health("g", &thresholds).await.unwrap();
    assert_eq!(
        report.status,
        HealthStatus::Degraded,
        "{:?}: {report:?}",
        h.target
    );
    assert_eq!(check(&report, "lag").status, HealthStatus::Degraded);
    for seq in 3..5 {
        posts.publish(&posted(seq)).await.unwrap();
    }
    let report = posts.health("g", &thresholds).await.unwrap();
    assert_eq!(
        report.status,
        HealthStatus::Unhealthy,
        "{:?}: {report:?}",
        h.target
    );
    assert_eq!(check(&report, "lag").status, HealthStatus::Unhealthy);
    assert_eq!(check(&report, "connection").status, HealthStatus::Healthy);
    h.finish().await;
}

async fn dead_letters_degrade(mut h: Harness) {
    let stream = h.stream("dlq");
    let posts = transport(Arc::clone(&h.connector), stream).await;
    posts.publish(&posted(0)).await.unwrap();
    let stop = Arc::new(tokio::sync::Notify::new());
    let runner = {
        let (posts, stop) = (posts.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            posts
                .consume(
                    "g",
                    ConsumeOptions {
                        retry: RetryPolicy::fixed(1, Duration::from_millis(1)),
                        ..ConsumeOptions::default()
                    },
                    async move { stop.notified().await },
                    |_| async { Err(HandlerError::permanent("refused")) },
                )
                .await
        })
    };
    let report = within("a dead letter shows", async {
        loop {
            let report = posts
                .health("g", &HealthThresholds::default())
                .await
                .unwrap();
            if check(&report, "dead_letters").status == HealthStatus::Degraded {
                return report;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    stop.notify_one();
    within("the runner stops", runner).await.unwrap().unwrap();
    assert_eq!(
        report.status,
        HealthStatus::Degraded,
        "{:?}: {report:?}",
        h.target
    );
    h.finish().await;
}

async fn a_missing_topic_is_unhealthy(mut h: Harness) {
    let stream = h.stream("missing");
    let posts = transport(Arc::clone(&h.connector), stream.clone()).await;
    // Another event type on the same stream whose topic was never created.
    #[derive(Debug, Serialize, Deserialize, IggyEvent)]
    #[iggy(topic = "never-created")]
    struct Other {
        n: u64,
    }
    let iggy = rustok_iggy::IggyTransport::with_connector(Arc::clone(&h.connector), {
        let mut config = IggyConfig::default();
        config.topology.stream_name = stream;
        config
    });
    let report = iggy
        .health(
            "g",
            &rustok_iggy::TopicName::new(Other::TOPIC).unwrap(),
            &HealthThresholds::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        report.status,
        HealthStatus::Unhealthy,
        "{:?}: {report:?}",
        h.target
    );
    assert_eq!(check(&report, "topology").status, HealthStatus::Unhealthy);
    let report = posts
        .health("g", &HealthThresholds::default())
        .await
        .unwrap();
    assert_eq!(
        report.status,
        HealthStatus::Healthy,
        "{:?}: {report:?}",
        h.target
    );
    h.finish().await;
}

tests::both_modes!(
    healthy_then_degraded_then_unhealthy_by_lag,
    dead_letters_degrade,
    a_missing_topic_is_unhealthy,
);

/// The server goes away: the remote connector still has its session, but health
/// pings it and reports `Unhealthy` (not an error, and without hanging); once the
/// server is back (same address, same data) and the SDK reconnected, `Healthy` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_gone_is_unhealthy_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker_config = |port: u16| {
        let mut config = tests::embedded_config(dir.path());
        config.embedded.tcp_enabled = true;
        config.embedded.tcp_address = "127.0.0.1".into();
        config.embedded.tcp_port = port;
        config
    };
    let broker = EmbeddedConnector::new();
    broker.connect(&broker_config(0)).await.unwrap();
    let address = broker.tcp_address().unwrap();
    let mut config = remote_config(&address.to_string(), USERNAME, PASSWORD);
    config.remote.reconnection_retries = 1_000;
    config.remote.reconnection_interval_ms = 50;
    let connector = open_remote(&config).await;
    let posts = transport(Arc::clone(&connector), StreamName::new("gone").unwrap()).await;
    posts.publish(&posted(0)).await.unwrap();
    let thresholds = HealthThresholds {
        ping_timeout: Duration::from_secs(1),
        ..HealthThresholds::default()
    };
    let report = posts.health("g", &thresholds).await.unwrap();
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    broker.shutdown().await.unwrap();
    assert!(
        connector.is_connected(),
        "the session object is still there"
    );
    let report = within(
        "health with the server gone",
        posts.health("g", &thresholds),
    )
    .await
    .expect("a report, not an error");
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert_eq!(check(&report, "connection").status, HealthStatus::Unhealthy);
    assert_eq!(
        report.checks.len(),
        1,
        "nothing else is asked of a dead server: {report:?}"
    );

    let restarted = EmbeddedConnector::new();
    restarted
        .connect(&broker_config(address.port()))
        .await
        .unwrap();
    let report = within("healthy again after the reconnect", async {
        loop {
            let report = posts.health("g", &thresholds).await.unwrap();
            if report.status == HealthStatus::Healthy {
                return report;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(report.lag.len(), 2, "{report:?}");
    connector.shutdown().await.unwrap();
    restarted.shutdown().await.unwrap();
}

/// A shut-down embedded connector is `Unhealthy`.
#[tokio::test]
async fn a_closed_embedded_broker_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let connector = tests::open_embedded(&tests::embedded_config(dir.path())).await;
    let posts = transport(connector.clone(), StreamName::new("closed").unwrap()).await;
    connector.shutdown().await.unwrap();
    let report = posts
        .health("g", &HealthThresholds::default())
        .await
        .unwrap();
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert_eq!(check(&report, "connection").status, HealthStatus::Unhealthy);
}

/// A partition whose log is poisoned (a failed write that could not be cut off
/// again: here its next segment is `/dev/full`) refuses writes until the broker is
/// reopened: health and `/health` say so and name it.
#[tokio::test]
async fn a_poisoned_partition_is_unhealthy_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = tests::faults::config(&data);
    config.embedded.http_enabled = true;
    config.embedded.http_port = 0;
    let connector = Arc::new(EmbeddedConnector::new());
    connector.connect(&config).await.unwrap();
    let (stream, topic) = tests::names("s", "t");
    tests::create_topic(connector.as_ref(), &stream, &topic, 2).await;
    tests::faults::publish_range(&connector, 0, 0..4).await;
    let posts = transport(connector.clone(), stream.clone()).await;
    let report = posts
        .health("g", &HealthThresholds::default())
        .await
        .unwrap();
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    // The next record of partition 0 starts segment 4: make its file the full disk.
    std::os::unix::fs::symlink("/dev/full", tests::faults::segment(&data, 0, 4, "log")).unwrap();
    assert!(tests::faults::publish(&connector, 0, 4).await.is_err());
    let err = tests::faults::publish(&connector, 0, 4).await.unwrap_err();
    assert!(
        err.to_string().contains("poisoned") || format!("{err:?}").contains("Poisoned"),
        "{err:?}"
    );

    let report = posts
        .health("g", &HealthThresholds::default())
        .await
        .unwrap();
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    let text = format!("{report:?}");
    assert!(
        text.contains("s/t partition 0"),
        "names the partition: {text}"
    );
    assert!(!text.contains("s/t partition 1"), "only that one: {text}");

    let base = format!("http://{}", connector.http_address().unwrap());
    let response = within(
        "GET /health",
        reqwest::Client::new().get(format!("{base}/health")).send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unhealthy", "{body}");
    let body = body.to_string();
    assert!(
        body.contains("\"partition\":0") && body.contains("\"topic\":\"t\""),
        "{body}"
    );
    // The final fsync of the device fails: a typed error, not a panic.
    let _ = connector.shutdown().await;
}
