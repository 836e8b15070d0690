//! Run with: cargo run -p examples --example consumer_group
//!
//! Two members of one consumer group split the partitions of a topic; when one
//! leaves, the other takes over its partitions from the last committed offsets.

use std::time::Duration;

use rustok_iggy::connect;
use rustok_iggy::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "shipments", key = warehouse)]
struct ShipmentDispatched {
    warehouse: String,
    parcel: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = examples::demo_config();
    let connector = connect(&config).await?;
    let options = TransportOptions {
        partitions: 4,
        ..TransportOptions::default()
    };
    let shipments = Transport::<ShipmentDispatched>::new(connector.clone(), options).await?;

    let mut alice = shipments.subscribe("dispatch").await?;
    let mut bob = shipments.subscribe("dispatch").await?;
    println!(
        "alice owns partitions {:?}, bob owns {:?}",
        alice.assignment(),
        bob.assignment()
    );

    for parcel in 0..8 {
        let warehouse = ["berlin", "lyon", "porto", "turin"][parcel as usize % 4];
        shipments
            .publish(&ShipmentDispatched {
                warehouse: warehouse.into(),
                parcel,
            })
            .await?;
    }
    let mut handled = 0;
    while handled < 8 {
        let (who, delivery) = tokio::select! {
            Some(d) = alice.next() => ("alice", d?),
            Some(d) = bob.next() => ("bob", d?),
            () = tokio::time::sleep(Duration::from_secs(10)) => return Err("no delivery within 10 s".into()),
        };
        println!(
            "{who:5} handled parcel {} from {} (partition {})",
            delivery.parcel,
            delivery.warehouse,
            delivery.info().partition
        );
        delivery.ack().await?;
        handled += 1;
    }

    alice.close().await?;
    println!("alice left; bob now owns {:?}", bob.assignment());
    for parcel in 8..12 {
        let warehouse = ["berlin", "lyon", "porto", "turin"][parcel as usize % 4];
        shipments
            .publish(&ShipmentDispatched {
                warehouse: warehouse.into(),
                parcel,
            })
            .await?;
    }
    for _ in 0..4 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), bob.next())
            .await?
            .ok_or("ended")??;
        println!(
            "bob   handled parcel {} from {} (partition {})",
            delivery.parcel,
            delivery.warehouse,
            delivery.info().partition
        );
        delivery.ack().await?;
    }
    bob.close().await?;
    connector.shutdown().await?;
    println!("done: 12 parcels, each handled once");
    Ok(())
}
