//! Run with: cargo run -p examples --example quickstart
//!
//! Derive an event, publish a few, consume them as a `Stream` in a consumer group,
//! acknowledge each. Runs on the embedded broker (data in a temporary directory), no
//! set-up needed.

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Embedded mode keeps its data in `embedded.data_dir` (default ./data/iggy);
    // `persistent: false` uses a temporary directory removed at shutdown.
    let mut config = IggyConfig::default();
    config.embedded.persistent = false;
    // The broker's TCP listener (Iggy protocol) and HTTP endpoint take free ports here;
    // the defaults are 8090 and 3000 on 127.0.0.1.
    config.embedded.tcp_port = 0;
    config.embedded.http_port = 0;

    let connector = connect(&config).await?;
    let orders =
        Transport::<OrderPlaced>::new(connector.clone(), TransportOptions::default()).await?;
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
