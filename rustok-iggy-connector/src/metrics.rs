//! Metrics through the [`metrics`] facade, so that an application's own recorder
//! (Prometheus, OpenTelemetry, StatsD, ...) receives them, plus a private Prometheus
//! registry ([`metrics-exporter-prometheus`](metrics_exporter_prometheus)) behind
//! [`Metrics::render`] and the embedded broker's `/metrics`.
//!
//! Names follow the OpenTelemetry messaging semantic conventions where they exist
//! (`messaging.client.sent.messages` → `messaging_client_sent_messages_total`, ...);
//! the others are prefixed `rustok_iggy_`. Durations are recorded in seconds.
//!
//! # Your own recorder
//!
//! Install it with the facade before the first connector, transport or subscription
//! is created (a subscription resolves its counters once, when it starts):
//!
//! ```
//! // Any `metrics::Recorder`: metrics-exporter-prometheus, an OpenTelemetry bridge,
//! // a StatsD exporter. Here the facade's no-op recorder stands in for it.
//! metrics::set_global_recorder(metrics::NoopRecorder).expect("no recorder yet");
//! ```
//!
//! Every counter, gauge and histogram then reaches that recorder too, with the same
//! names and labels; `Metrics::global().render()` and `/metrics` keep working either
//! way.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// What every metric of this crate is registered with.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Metric names and their help texts.
pub mod names {
    /// Messages published (counter).
    pub const SENT_MESSAGES: &str = "messaging_client_sent_messages_total";
    /// Messages delivered to consumers (counter).
    pub const CONSUMED_MESSAGES: &str = "messaging_client_consumed_messages_total";
    /// Duration of publish calls (histogram, seconds).
    pub const OPERATION_DURATION: &str = "messaging_client_operation_duration_seconds";
    /// Duration of handler calls (histogram, seconds).
    pub const PROCESS_DURATION: &str = "messaging_process_duration_seconds";
    /// Payload bytes published (counter).
    pub const SENT_BYTES: &str = "rustok_iggy_sent_bytes_total";
    /// Payload bytes delivered (counter).
    pub const CONSUMED_BYTES: &str = "rustok_iggy_consumed_bytes_total";
    /// Deliveries acknowledged (counter).
    pub const ACKED: &str = "rustok_iggy_acked_total";
    /// Deliveries negatively acknowledged (counter).
    pub const NACKED: &str = "rustok_iggy_nacked_total";
    /// Handler failures retried (counter).
    pub const RETRIED: &str = "rustok_iggy_retried_total";
    /// Events written to a dead-letter topic (counter).
    pub const DEAD_LETTERED: &str = "rustok_iggy_dead_lettered_total";
    /// Publish-to-delivery latency (histogram, seconds).
    pub const END_TO_END_LATENCY: &str = "rustok_iggy_end_to_end_latency_seconds";
    /// Messages a group has not committed yet, per partition (gauge).
    pub const CONSUMER_LAG: &str = "rustok_iggy_consumer_lag";
    /// 1 while a subscription holds a partition (an undecided decode failure, a newer
    /// schema version): its commit waits there (gauge, per partition).
    pub const PARTITION_HELD: &str = "rustok_iggy_partition_held";
    /// Undecodable deliveries skipped on the application's decision (counter).
    pub const SKIPPED: &str = "rustok_iggy_skipped_total";
    /// Failed fetches and commits of a consumer, retried with backoff (counter).
    pub const CONSUMER_ERRORS: &str = "rustok_iggy_consumer_errors_total";
    /// Deliveries neither settled nor extended within their subscription's
    /// `ack_wait`, delivered again (counter).
    pub const ACK_EXPIRED: &str = "rustok_iggy_ack_expired_total";

    pub(crate) fn help(name: &str) -> &'static str {
        match name {
            SENT_MESSAGES => "Messages published.",
            CONSUMED_MESSAGES => "Messages delivered to consumers.",
            OPERATION_DURATION => "Duration of publish operations.",
            PROCESS_DURATION => "Duration of handler calls.",
            SENT_BYTES => "Payload bytes published.",
            CONSUMED_BYTES => "Payload bytes delivered to consumers.",
            ACKED => "Deliveries acknowledged.",
            NACKED => "Deliveries negatively acknowledged.",
            RETRIED => "Handler failures retried.",
            DEAD_LETTERED => "Events written to a dead-letter topic.",
            END_TO_END_LATENCY => "Time from the broker storing a message to its delivery.",
            CONSUMER_LAG => "Messages of a partition not yet committed by a consumer group.",
            PARTITION_HELD => "1 while a subscription holds the partition at an undecided event.",
            SKIPPED => "Undecodable deliveries skipped on the application's decision.",
            CONSUMER_ERRORS => "Failed fetches and commits of a consumer, retried with backoff.",
            ACK_EXPIRED => "Deliveries not settled within ack_wait, delivered again.",
            _ => "",
        }
    }
}

/// Every metric name of [`names`] with its kind.
const ALL: [(&str, Kind); 16] = [
    (names::SENT_MESSAGES, Kind::Counter),
    (names::CONSUMED_MESSAGES, Kind::Counter),
    (names::OPERATION_DURATION, Kind::Histogram),
    (names::PROCESS_DURATION, Kind::Histogram),
    (names::SENT_BYTES, Kind::Counter),
    (names::CONSUMED_BYTES, Kind::Counter),
    (names::ACKED, Kind::Counter),
    (names::NACKED, Kind::Counter),
    (names::RETRIED, Kind::Counter),
    (names::DEAD_LETTERED, Kind::Counter),
    (names::END_TO_END_LATENCY, Kind::Histogram),
    (names::CONSUMER_LAG, Kind::Gauge),
    (names::PARTITION_HELD, Kind::Gauge),
    (names::SKIPPED, Kind::Counter),
    (names::CONSUMER_ERRORS, Kind::Counter),
    (names::ACK_EXPIRED, Kind::Counter),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Gives the help texts of [`names`] to `recorder`.
fn describe(recorder: &dyn Recorder) {
    for (name, kind) in ALL {
        let key = KeyName::from_const_str(name);
        let help = SharedString::const_str(names::help(name));
        match kind {
            Kind::Counter => recorder.describe_counter(key, None, help),
            Kind::Gauge => recorder.describe_gauge(key, None, help),
            Kind::Histogram => recorder.describe_histogram(key, None, help),
        }
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
}

/// A counter resolved once (name and labels), to add to without a lookup.
#[derive(Debug, Clone)]
pub struct Counter {
    registry: metrics::Counter,
    facade: metrics::Counter,
}

impl Counter {
    /// Adds `by`.
    pub fn add(&self, by: u64) {
        self.registry.increment(by);
        self.facade.increment(by);
    }
}

/// A histogram resolved once (name and labels), to record into without a lookup.
#[derive(Debug, Clone)]
pub struct HistogramHandle {
    registry: metrics::Histogram,
    facade: metrics::Histogram,
}

impl HistogramHandle {
    /// Records a duration (in seconds).
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        self.registry.record(seconds);
        self.facade.record(seconds);
    }
}

/// The registry: what is recorded goes to the [`metrics`] facade's recorder (when an
/// application installed one) and to a Prometheus registry of its own, rendered by
/// [`render`](Self::render).
pub struct Metrics {
    registry: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    /// A registry of its own (tests use one to be alone); still reports to the
    /// facade.
    fn default() -> Self {
        let registry = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        describe(&registry);
        let handle = registry.handle();
        Self { registry, handle }
    }
}

impl Metrics {
    /// The process-wide registry.
    pub fn global() -> &'static Metrics {
        static GLOBAL: OnceLock<Metrics> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            metrics::with_recorder(describe);
            Metrics::default()
        })
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        self.counter_handle(name, labels).add(by);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        let key = key(name, labels);
        let value = value as f64;
        self.registry.register_gauge(&key, &METADATA).set(value);
        metrics::with_recorder(|r| r.register_gauge(&key, &METADATA).set(value));
    }

    /// Records a duration (in seconds) in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], duration: Duration) {
        self.histogram_handle(name, labels).observe(duration);
    }

    /// The counter `name` with `labels`, for hot paths that add to it often. It
    /// reports to the facade's recorder of the moment it is made.
    pub fn counter_handle(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        let key = key(name, labels);
        Counter {
            registry: self.registry.register_counter(&key, &METADATA),
            facade: metrics::with_recorder(|r| r.register_counter(&key, &METADATA)),
        }
    }

    /// The histogram `name` with `labels`, for hot paths that record often. It
    /// reports to the facade's recorder of the moment it is made.
    pub fn histogram_handle(
        &self,
        name: &'static str,
        labels: &[(&'static str, &str)],
    ) -> HistogramHandle {
        let key = key(name, labels);
        HistogramHandle {
            registry: self.registry.register_histogram(&key, &METADATA),
            facade: metrics::with_recorder(|r| r.register_histogram(&key, &METADATA)),
        }
    }

    /// Everything recorded in this registry, in the Prometheus text exposition format
    /// (0.0.4).
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

#[cfg(feature = "embedded")]
/// `{a="1",b="2"}` with values escaped; `le` appended for histogram buckets.
pub(crate) fn render_labels(labels: &[(&'static str, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(feature = "embedded")]
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let metrics = Metrics::default();
        metrics.add(
            names::SENT_MESSAGES,
            &[("messaging_destination_name", "orders")],
            3,
        );
        metrics.add(
            names::SENT_MESSAGES,
            &[("messaging_destination_name", "orders")],
            2,
        );
        metrics.set(names::CONSUMER_LAG, &[("partition", "0")], 7);
        metrics.observe(names::OPERATION_DURATION, &[], Duration::from_micros(300));
        let text = metrics.render();
        for expected in [
            "# HELP messaging_client_sent_messages_total Messages published.",
            "# TYPE messaging_client_sent_messages_total counter",
            "messaging_client_sent_messages_total{messaging_destination_name=\"orders\"} 5",
            "rustok_iggy_consumer_lag{partition=\"0\"} 7",
            "# TYPE messaging_client_operation_duration_seconds histogram",
            "messaging_client_operation_duration_seconds_bucket{le=\"0.0005\"} 1",
            "messaging_client_operation_duration_seconds_bucket{le=\"0.00025\"} 0",
            "messaging_client_operation_duration_seconds_bucket{le=\"+Inf\"} 1",
            "messaging_client_operation_duration_seconds_count 1",
        ] {
            assert!(
                text.lines().any(|line| line == expected),
                "no {expected:?} in\n{text}"
            );
        }
    }

    #[test]
    fn an_applications_own_recorder_receives_every_kind() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let metrics = Metrics::default();
            let labels = [("messaging_destination_name", "orders")];
            metrics.add(names::SENT_MESSAGES, &labels, 3);
            metrics.counter_handle(names::SENT_MESSAGES, &labels).add(2);
            metrics.set(names::CONSUMER_LAG, &[("partition", "1")], 9);
            metrics
                .histogram_handle(names::END_TO_END_LATENCY, &labels)
                .observe(Duration::from_millis(4));
        });
        let seen: Vec<(String, Vec<String>, DebugValue)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels = key.labels().map(|l| format!("{}={}", l.key(), l.value()));
                (key.name().to_owned(), labels.collect(), value)
            })
            .collect();
        let find = |name: &str| {
            seen.iter()
                .find(|(n, _, _)| n == name)
                .unwrap_or_else(|| panic!("{name} not recorded: {seen:?}"))
        };
        let (_, labels, value) = find(names::SENT_MESSAGES);
        assert_eq!(labels, &["messaging_destination_name=orders"]);
        assert_eq!(value, &DebugValue::Counter(5));
        let (_, _, value) = find(names::CONSUMER_LAG);
        assert_eq!(value, &DebugValue::Gauge(9.0.into()));
        let (_, _, value) = find(names::END_TO_END_LATENCY);
        assert_eq!(value, &DebugValue::Histogram(vec![0.004.into()]));
    }

    #[cfg(feature = "embedded")]
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            render_labels(&[("t", "a\"b\\c\nd".into())], None),
            "{t=\"a\\\"b\\\\c\\nd\"}"
        );
    }
}
