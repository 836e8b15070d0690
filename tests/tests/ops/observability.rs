//! The embedded broker's HTTP endpoint, scraped with a real HTTP client after a run.

use std::sync::Arc;

use futures::StreamExt;
use rustok_iggy::connector::{EmbeddedConnector, IggyConnector};
use rustok_iggy::prelude::*;
use serde::{Deserialize, Serialize};
use tests::{embedded_config, within};

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "observed", key = id)]
struct Observed {
    id: u64,
}

#[tokio::test]
async fn metrics_health_and_ping_after_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.http_enabled = true;
    config.embedded.http_port = 0;
    let connector = Arc::new(EmbeddedConnector::new());
    connector.connect(&config).await.unwrap();
    let base = format!(
        "http://{}",
        connector.http_address().expect("the endpoint is on")
    );

    let transport = Transport::<Observed>::new(connector.clone(), TransportOptions::default())
        .await
        .unwrap();
    for id in 0..7 {
        transport.publish(&Observed { id }).await.unwrap();
    }
    let mut subscription = transport.subscribe("scraper").await.unwrap();
    for _ in 0..7 {
        let delivery = within("delivery", subscription.next())
            .await
            .unwrap()
            .unwrap();
        delivery.ack().await.unwrap();
    }

    let client = reqwest::Client::new();
    let ping = within("GET /ping", client.get(format!("{base}/ping")).send())
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.unwrap(), "pong\n");

    let metrics = within("GET /metrics", client.get(format!("{base}/metrics")).send())
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    // The registry is process-wide: other tests of this binary may add to it, so the
    // counters are at least what this test did.
    let value = |prefix: &str| -> u64 {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert!(
        value("messaging_client_sent_messages_total{messaging_destination_name=\"observed\"}") >= 7
    );
    assert!(
        value(
            "messaging_client_consumed_messages_total{messaging_destination_name=\"observed\",messaging_consumer_group_name=\"scraper\"}"
        ) >= 7
    );
    assert!(
        value(
            "rustok_iggy_acked_total{messaging_destination_name=\"observed\",messaging_consumer_group_name=\"scraper\"}"
        ) >= 7
    );
    assert!(
        text.contains("# TYPE messaging_client_operation_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("rustok_iggy_end_to_end_latency_seconds_count"),
        "{text}"
    );
    let stored: u64 = (0..8)
        .map(|p| value(&format!("rustok_iggy_partition_messages{{stream=\"rustok\",topic=\"observed\",partition=\"{p}\"}}")))
        .sum();
    assert_eq!(stored, 7);

    let health = within("GET /health", client.get(format!("{base}/health")).send())
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["topics"], 1);

    let missing = within("GET /nope", client.get(format!("{base}/nope")).send())
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let post = within("POST /ping", client.post(format!("{base}/ping")).send())
        .await
        .unwrap();
    assert_eq!(post.status(), 405);

    subscription.close().await.unwrap();
    connector.shutdown().await.unwrap();
    assert!(
        within("after shutdown", client.get(format!("{base}/ping")).send())
            .await
            .is_err(),
        "the endpoint stops with the broker"
    );
}
