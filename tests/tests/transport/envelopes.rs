//! `EventTransport` with envelopes, on the embedded connector.

use std::sync::Arc;

use futures::StreamExt;
use rustok_iggy::{
    Codec, Error, EventEnvelope, EventTransport, IggyConfig, IggyConnector, IggyTransport,
    ReliabilityLevel, TopicName,
};
use tests::{embedded_config, open_embedded, within};

fn config(codec: Codec) -> IggyConfig {
    let mut config = IggyConfig {
        serialization: codec,
        ..IggyConfig::default()
    };
    config.topology.domain_partitions = 3;
    config
        .topology
        .routes
        .insert("order.".into(), TopicName::new("orders").unwrap());
    config
}

async fn roundtrip(codec: Codec) {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let transport: Arc<dyn EventTransport> = Arc::new(IggyTransport::with_connector(
        connector.clone(),
        config(codec),
    ));
    assert_eq!(transport.reliability_level(), ReliabilityLevel::Streaming);

    let mut sent = Vec::new();
    for i in 0..6u64 {
        let mut envelope = EventEnvelope::new(
            "order.placed",
            serde_json::json!({"order": i, "lines": [{"sku": "A-1", "qty": 2}], "note": null, "ratio": 0.5, "delta": -3}),
        )
        .with_tenant(if i % 2 == 0 { "acme" } else { "globex" });
        envelope.correlation_id = Some(format!("corr-{i}"));
        envelope.causation_id = Some("cmd-1".into());
        envelope.actor_id = Some("user-9".into());
        envelope.traceparent =
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        envelope.schema_version = 3;
        sent.push(envelope);
    }
    transport.publish(sent[0].clone()).await.unwrap();
    transport.publish_batch(sent[1..].to_vec()).await.unwrap();
    // A type without a route goes to the default topic.
    transport
        .publish(EventEnvelope::new(
            "user.created",
            serde_json::json!({"id": 1}),
        ))
        .await
        .unwrap();

    let iggy = transport
        .as_any()
        .downcast_ref::<IggyTransport>()
        .expect("downcast");
    let mut stream = iggy
        .subscribe("projections", &TopicName::new("orders").unwrap())
        .await
        .unwrap();
    let mut received = Vec::new();
    for _ in 0..6 {
        let received_envelope = within("envelope", stream.next()).await.unwrap().unwrap();
        transport
            .acknowledge(received_envelope.ack_id)
            .await
            .unwrap();
        received.push(received_envelope);
    }
    for tenant in ["acme", "globex"] {
        let want: Vec<_> = sent
            .iter()
            .filter(|e| e.tenant_id.as_deref() == Some(tenant))
            .cloned()
            .collect();
        let got: Vec<_> = received
            .iter()
            .filter(|e| e.tenant_id.as_deref() == Some(tenant))
            .map(|e| e.envelope.clone())
            .collect();
        assert_eq!(
            got, want,
            "{tenant}: every field survives, in order ({codec})"
        );
    }
    let again = transport.acknowledge(received[0].ack_id).await.unwrap_err();
    assert!(matches!(again, Error::NotPending(ack) if ack == received[0].ack_id));

    let mut other = iggy
        .subscribe("projections", &TopicName::new("domain").unwrap())
        .await
        .unwrap();
    let user = within("default topic", other.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.event_type, "user.created");
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn envelopes_roundtrip_with_json() {
    roundtrip(Codec::Json).await;
}

#[tokio::test]
async fn envelopes_roundtrip_with_postcard() {
    roundtrip(Codec::Postcard).await;
}

#[tokio::test]
async fn the_handler_runner_serves_envelopes_too() {
    use rustok_iggy::{ConsumeOptions, DeadLetterConfig, HandlerError, RetryPolicy};
    use std::sync::atomic::{AtomicU32, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let transport = IggyTransport::with_connector(connector.clone(), config(Codec::Postcard));
    for i in 0..3 {
        transport
            .publish(
                EventEnvelope::new("order.placed", serde_json::json!({ "n": i }))
                    .with_tenant("acme"),
            )
            .await
            .unwrap();
    }
    let orders = TopicName::new("orders").unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::clone(&done);
    let options = ConsumeOptions {
        retry: RetryPolicy::fixed(2, std::time::Duration::from_millis(1)),
        ..ConsumeOptions::default()
    };
    let report = {
        let attempts = Arc::clone(&attempts);
        within(
            "envelope runner",
            transport.consume(
                "projector",
                &orders,
                options,
                async move { stop.notified().await },
                move |envelope| {
                    let (attempts, done) = (Arc::clone(&attempts), Arc::clone(&done));
                    async move {
                        let n = envelope.payload["n"].as_u64().unwrap();
                        if n == 2 {
                            done.notify_one();
                        }
                        if n == 1 {
                            attempts.fetch_add(1, Ordering::SeqCst);
                            return Err(HandlerError::retryable("projection store unavailable"));
                        }
                        Ok(())
                    }
                },
            ),
        )
        .await
        .unwrap()
    };
    assert_eq!(
        (report.handled, report.retried, report.dead_lettered),
        (2, 1, 1)
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let dead = rustok_iggy::DeadLetters::open(
        connector.clone(),
        transport.stream_name().clone(),
        orders.clone(),
        3,
        &DeadLetterConfig::default(),
    )
    .await
    .unwrap()
    .list(10)
    .await
    .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_type.as_deref(), Some("order.placed"));
    assert_eq!(dead[0].error, "projection store unavailable");
    connector.shutdown().await.unwrap();
}
