//! The publish of an envelope runs in a `publish` span with the messaging attributes.
//!
//! Alone in its binary: a span callsite first reached by a test thread without a
//! subscriber could be cached as uninteresting while this test installs its own.

use std::sync::{Arc, Mutex};

use rustok_iggy::{
    EventEnvelope, EventTransport, IggyConfig, IggyConnector, IggyTransport, StreamName, TopicName,
};

/// A writer that keeps what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The publish of an envelope runs in a `publish` span with the messaging attributes.
#[test]
fn an_envelope_publish_has_a_span() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let envelope = EventEnvelope::new("x.y", serde_json::json!({}));
    let id = envelope.id;
    {
        let _default = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let connector = tests::open_embedded(&tests::embedded_config(dir.path())).await;
            let transport = IggyTransport::with_connector(connector.clone(), {
                let mut config = IggyConfig::default();
                config.topology.stream_name = StreamName::new("spans").unwrap();
                config.topology.domain_partitions = 1;
                config.topology.default_topic = TopicName::new("spanned").unwrap();
                config
            });
            transport.publish(envelope).await.unwrap();
            connector.shutdown().await.unwrap();
        });
    }
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("publish{") && l.contains(&id.to_string()))
        .unwrap_or_else(|| panic!("no publish span with the envelope's id in:\n{text}"));
    assert!(
        line.contains("messaging.destination.name=spanned"),
        "{line}"
    );
    assert!(
        line.contains("traceparent=") && line.contains("00-"),
        "{line}"
    );
}
