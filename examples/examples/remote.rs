//! Run with: cargo run -p examples --example remote -- 127.0.0.1:8090
//!
//! The quickstart's typed code on a remote Iggy server: only the configuration
//! changes (`mode: remote` and the server's address). The credentials come from
//! `IGGY_USERNAME` / `IGGY_PASSWORD` (default `iggy`/`iggy`).
//!
//! Without an address, the example first starts an embedded broker with its Iggy TCP
//! listener on an ephemeral port of 127.0.0.1 and connects to that, through the
//! official `iggy` SDK, so it runs with no set-up.

use std::time::Duration;

use rustok_iggy::connector::{ConnectorConfig, EmbeddedConnector, IggyConnector, Secret};
use rustok_iggy::prelude::*;
use rustok_iggy::{IggyConfig, connect, connector::ConnectorMode};
use serde::{Deserialize, Serialize};

/// A domain event: orders of one tenant stay in order (they share a partition).
#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant_id, codec = "postcard", version = 1)]
struct OrderPlaced {
    tenant_id: String,
    order_id: u64,
    total_cents: u64,
}

/// An embedded broker listening on an ephemeral port, and that port's address.
async fn local_server() -> Result<(EmbeddedConnector, String), Box<dyn std::error::Error>> {
    let mut config = ConnectorConfig::default();
    config.embedded.persistent = false;
    config.embedded.tcp_enabled = true;
    config.embedded.tcp_address = "127.0.0.1".into();
    config.embedded.tcp_port = 0;
    let server = EmbeddedConnector::new();
    server.connect(&config).await?;
    let address = server
        .tcp_address()
        .ok_or("the embedded broker's listener did not start")?;
    Ok((server, address.to_string()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (local, address) = match std::env::args().nth(1) {
        Some(address) => (None, address),
        None => {
            let (server, address) = local_server().await?;
            println!("no address given: started an embedded Iggy server on {address}");
            (Some(server), address)
        }
    };

    // The one difference from the quickstart: the configuration.
    let mut config = IggyConfig {
        mode: ConnectorMode::Remote,
        ..IggyConfig::default()
    };
    config.remote.addresses = vec![address.clone()];
    config.remote.username = std::env::var("IGGY_USERNAME").unwrap_or_else(|_| "iggy".into());
    config.remote.password =
        Secret::new(std::env::var("IGGY_PASSWORD").unwrap_or_else(|_| "iggy".into()));

    let connector = connect(&config).await?;
    let orders =
        Transport::<OrderPlaced>::new(connector.clone(), TransportOptions::default()).await?;
    println!(
        "connected to {address}, topic {}/{} with {} partitions",
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
    if let Some(server) = local {
        server.shutdown().await?;
    }
    println!("done: 5 events published, consumed and acknowledged over the Iggy protocol");
    Ok(())
}
