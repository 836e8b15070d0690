//! Run with: cargo run -p examples --example quickstart
//!
//! Load the configuration, derive an event, publish a few, consume them as a
//! `Stream` in a consumer group, acknowledge each. Runs on the embedded broker (data
//! in a temporary directory), no set-up needed.

use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{IggyConfig, connect};
use serde::{Deserialize, Serialize};

/// A domain event: orders of one tenant stay in order (they share a partition).
#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant_id, codec = "postcard", version = 1)]
struct OrderPlaced {
    tenant_id: String,
    order_id: u64,
    total_cents: u64,
}

/// The `events.iggy` section of the application's configuration (usually read from
/// its YAML file). Every field has a default; see the README's Configuration section.
const CONFIG: &str = r#"
events:
  transport: iggy
  iggy:
    mode: embedded
    topology:
      stream_name: shop
      domain_partitions: 4
    embedded:
      persistent: false   # a temporary data directory, removed at shutdown
      tcp_port: 0         # the Iggy protocol listener on a free port (default 8090)
      http_port: 0        # /ping /health /metrics on a free port (default 3000)
    retention:
      domain_max_age_days: 30
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = IggyConfig::from_yaml(CONFIG)?;
    let connector = connect(&config).await?;
    // Stream, partitions and retention come from the configuration.
    let orders = Transport::<OrderPlaced>::from_config(connector.clone(), &config).await?;
    println!(
        "embedded broker ready, topic {}/{} with {} partitions",
        orders.stream(),
        orders.topic(),
        orders.partitions()
    );

    for (tenant, order_id) in [
        ("acme", 1),
        ("globex", 2),
        ("acme", 3),
        ("initech", 4),
        ("acme", 5),
    ] {
        let event = OrderPlaced {
            tenant_id: tenant.into(),
            order_id,
            total_cents: order_id * 1_000,
        };
        let receipt = orders.publish(&event).await?;
        println!(
            "published order {order_id} of {tenant} -> partition {} offset {}",
            receipt.partition, receipt.offset
        );
    }

    let mut subscription = orders.subscribe("billing").await?;
    for _ in 0..5 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await?
            .ok_or("the subscription ended")??;
        println!(
            "consumed order {} of {} (partition {} offset {}, type {} v{})",
            delivery.order_id,
            delivery.tenant_id,
            delivery.info().partition,
            delivery.info().offset,
            delivery.info().event_type,
            delivery.info().schema_version
        );
        delivery.ack().await?;
    }
    subscription.close().await?;
    connector.shutdown().await?;
    println!("done: 5 events published, consumed and acknowledged");
    Ok(())
}
