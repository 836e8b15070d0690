//! Run with: cargo run -p examples --example replay
//!
//! Replays a topic from the beginning and from a point in time, under no consumer
//! identity: the consumer group's committed offsets do not move.

use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{
    connect,
    connector::{GroupName, StartPosition},
    replay::ReplayUntil,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "prices", key = sku, codec = "postcard")]
struct PriceChanged {
    sku: String,
    cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = examples::demo_config();
    let connector = connect(&config).await?;
    let prices = Transport::<PriceChanged>::new(
        connector.clone(),
        TransportOptions {
            partitions: 2,
            ..TransportOptions::default()
        },
    )
    .await?;
    let mut receipts = Vec::new();
    for (i, sku) in ["tea", "coffee", "tea", "cocoa", "coffee", "tea"]
        .into_iter()
        .enumerate()
    {
        receipts.push(
            prices
                .publish(&PriceChanged {
                    sku: sku.into(),
                    cents: 100 + i as u64 * 10,
                })
                .await?,
        );
    }

    // A consumer group reads three events and commits them.
    let mut subscription = prices.subscribe("catalog").await?;
    for _ in 0..3 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await?
            .ok_or("ended")??;
        delivery.ack().await?;
    }
    subscription.close().await?;
    let group = GroupName::new("catalog")?;
    let before = connector
        .committed_offsets(prices.stream(), prices.topic(), &group)
        .await?;
    println!("group `catalog` committed offsets per partition: {before:?}");

    println!("replay from the beginning up to the head:");
    let mut replay = prices
        .replay(StartPosition::Earliest, ReplayUntil::Head)
        .await?;
    let mut timestamps = Vec::new();
    while let Some(item) = replay.next().await {
        let item = item?;
        println!(
            "  {} -> {} (partition {} offset {})",
            item.event.sku, item.event.cents, item.info.partition, item.info.offset
        );
        timestamps.push(item.info.timestamp);
    }
    timestamps.sort_unstable();
    let middle = timestamps[timestamps.len() / 2];
    println!("replay from timestamp {middle} µs:");
    let mut replay = prices
        .replay(StartPosition::Timestamp(middle), ReplayUntil::Head)
        .await?;
    while let Some(item) = replay.next().await {
        let item = item?;
        println!(
            "  {} -> {} (stored at {} µs)",
            item.event.sku, item.event.cents, item.info.timestamp
        );
    }
    let after = connector
        .committed_offsets(prices.stream(), prices.topic(), &group)
        .await?;
    println!(
        "group offsets after both replays: {after:?} (unchanged: {})",
        before == after
    );
    connector.shutdown().await?;
    Ok(())
}
