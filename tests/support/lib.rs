//! Shared helpers of the integration tests.

pub mod conformance;
pub mod faults;
pub mod faulty;
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

/// The value of the metric `name` with exactly `labels` in the process-wide registry,
/// read from its Prometheus rendering (0 when never recorded).
pub fn metric_value(name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    rustok_iggy_connector::Metrics::global()
        .render()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let mut found: Vec<String> = rest
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            found.sort();
            (found == wanted).then(|| value.parse().expect("a metric value is a number"))
        })
        .unwrap_or(0.0)
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

/// The samples of the metric family `name` on the `/metrics` page of the HTTP
/// endpoint at `address`: the label set (`{...}`, empty when none) and the value of
/// each line.
pub async fn scrape(address: std::net::SocketAddr, name: &str) -> Vec<(String, f64)> {
    let url = format!("http://{address}/metrics");
    let text = within("GET /metrics", async {
        reqwest::get(url)
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the /metrics body")
    })
    .await;
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = rest.rsplit_once(' ')?;
            (labels.is_empty() || labels.starts_with('{'))
                .then(|| (labels.to_owned(), value.parse().expect("a metric value")))
        })
        .collect()
}

/// The value of `name` for partition `partition` of `stream/topic` on `/metrics`,
/// if there.
pub async fn partition_metric(
    address: std::net::SocketAddr,
    name: &str,
    (stream, topic, partition): (&str, &str, u32),
) -> Option<f64> {
    let labels = format!("{{stream=\"{stream}\",topic=\"{topic}\",partition=\"{partition}\"}}");
    scrape(address, name)
        .await
        .into_iter()
        .find_map(|(l, v)| (l == labels).then_some(v))
}
