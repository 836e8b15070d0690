//! Run with: cargo run -p examples --example event_transport
//!
//! Platform code that passes envelopes instead of generic types: `IggyTransport`
//! implements the object-safe `EventTransport`, routes envelopes to topics by event
//! type and partitions them by tenant.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rustok_iggy::{EventEnvelope, EventTransport, IggyTransport, TopicName};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = examples::demo_config();
    config
        .topology
        .routes
        .insert("order.".into(), TopicName::new("orders")?);
    let transport: Arc<dyn EventTransport> = Arc::new(IggyTransport::new(config).await?);
    println!("reliability level: {:?}", transport.reliability_level());

    let mut placed = EventEnvelope::new(
        "order.placed",
        serde_json::json!({"order": 17, "total": 42.5}),
    )
    .with_tenant("acme");
    placed.correlation_id = Some("checkout-9".into());
    placed.actor_id = Some("user-3".into());
    transport.publish(placed.clone()).await?;
    transport
        .publish_batch(vec![
            EventEnvelope::new("order.shipped", serde_json::json!({"order": 17}))
                .with_tenant("acme"),
            EventEnvelope::new("user.signed_up", serde_json::json!({"user": 3}))
                .with_tenant("acme"),
        ])
        .await?;
    println!(
        "published order.placed, order.shipped (topic orders) and user.signed_up (topic domain)"
    );

    let iggy = transport
        .as_any()
        .downcast_ref::<IggyTransport>()
        .ok_or("not an IggyTransport")?;
    let mut orders = iggy
        .subscribe("projections", &TopicName::new("orders")?)
        .await?;
    for _ in 0..2 {
        let envelope = tokio::time::timeout(Duration::from_secs(10), orders.next())
            .await?
            .ok_or("ended")??;
        println!(
            "received {} {} for tenant {:?}, correlation {:?}: {}",
            envelope.event_type,
            envelope.id,
            envelope.tenant_id,
            envelope.correlation_id,
            envelope.payload
        );
        transport.acknowledge(envelope.ack_id).await?;
    }
    // Commits what was acknowledged, leaves the group, closes the connector.
    transport.shutdown().await?;
    println!("done");
    Ok(())
}
