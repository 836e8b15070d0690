//! Run with: cargo run -p examples --example metrics
//!
//! Publishes and consumes a little, then scrapes the embedded broker's HTTP endpoint
//! (`/metrics`, Prometheus text) and prints the health report of the group.

use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{IggyConfig, connector::EmbeddedConnector, health::HealthThresholds};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "clicks", key = page)]
struct Clicked {
    page: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = IggyConfig::default();
    config.embedded.persistent = false;
    config.embedded.tcp_enabled = false;
    config.embedded.http_port = 0;
    let embedded = std::sync::Arc::new(EmbeddedConnector::new());
    rustok_iggy::connector::IggyConnector::connect(embedded.as_ref(), &config.connector_config())
        .await?;
    let http = embedded.http_address().ok_or("the HTTP endpoint is off")?;
    let clicks = Transport::<Clicked>::new(
        embedded.clone(),
        TransportOptions {
            partitions: 2,
            ..TransportOptions::default()
        },
    )
    .await?;
    for page in ["/", "/pricing", "/", "/docs", "/"] {
        clicks.publish(&Clicked { page: page.into() }).await?;
    }
    let mut subscription = clicks.subscribe("analytics").await?;
    for _ in 0..3 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await?
            .ok_or("ended")??;
        delivery.ack().await?;
    }

    let health = clicks
        .health(
            "analytics",
            &HealthThresholds {
                lag_degraded: 1,
                ..HealthThresholds::default()
            },
        )
        .await?;
    println!(
        "health of group `analytics`: {:?} (lag per partition {:?})",
        health.status, health.lag
    );
    for check in &health.checks {
        println!("  {:12} {:?}: {}", check.name, check.status, check.detail);
    }

    // A plain HTTP/1.1 GET, as Prometheus would send it.
    let mut stream = tokio::net::TcpStream::connect(http).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    println!("GET http://{http}/metrics:");
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("_bucket"))
    {
        println!("  {line}");
    }
    subscription.close().await?;
    rustok_iggy::connector::IggyConnector::shutdown(embedded.as_ref()).await?;
    Ok(())
}
