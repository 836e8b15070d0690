//! Shared helpers of the integration tests.

pub mod conformance;
pub mod faults;
pub mod process;
pub mod wire;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustok_iggy_connector::{
    ConnectorConfig, EmbeddedConnector, IggyConnector, StreamName, TopicName, TopicSpec,
};

/// How long any single awaited step of a test may take before the test fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Awaits `future`, failing the test (with `what`) if it takes longer than
/// [`STEP_TIMEOUT`]: a broken broker fails a test instead of hanging it.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP_TIMEOUT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {STEP_TIMEOUT:?}: {what}"),
    }
}

/// An embedded configuration in `dir` (no TCP listener unless the test turns it on).
pub fn embedded_config(dir: &Path) -> ConnectorConfig {
    ConnectorConfig::embedded(dir)
}

/// A connected embedded connector on `config`.
pub async fn open_embedded(config: &ConnectorConfig) -> Arc<EmbeddedConnector> {
    let connector = Arc::new(EmbeddedConnector::new());
    connector
        .connect(config)
        .await
        .expect("the embedded broker opens");
    connector
}

/// Stream and topic names.
pub fn names(stream: &str, topic: &str) -> (StreamName, TopicName) {
    (
        StreamName::new(stream).expect("valid stream name"),
        TopicName::new(topic).expect("valid topic name"),
    )
}

/// Creates `stream`/`topic` with `partitions` partitions.
pub async fn create_topic(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
    partitions: u32,
) {
    connector
        .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), partitions))
        .await
        .expect("topic created");
}
