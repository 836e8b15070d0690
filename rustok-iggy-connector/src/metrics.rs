//! A small process-wide metrics registry rendered in the Prometheus text format.
//!
//! Names follow the OpenTelemetry messaging semantic conventions where they exist
//! (`messaging.client.sent.messages` → `messaging_client_sent_messages_total`, ...);
//! the others are prefixed `rustok_iggy_`. Recording is a read-locked map lookup and
//! an atomic add.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

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
            _ => "",
        }
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_nanos: AtomicU64,
}

#[derive(Debug, Default)]
struct Family<T> {
    series: RwLock<BTreeMap<Labels, Arc<T>>>,
}

impl<T: Default> Family<T> {
    fn get(&self, labels: &[(&'static str, &str)]) -> Arc<T> {
        let key: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        if let Some(found) = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Arc::clone(found);
        }
        Arc::clone(
            self.series
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default(),
        )
    }
}

/// A counter resolved once (name and labels), to add to without a lookup.
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `by`.
    pub fn add(&self, by: u64) {
        self.0.fetch_add(by, Ordering::Relaxed);
    }
}

/// A histogram resolved once (name and labels), to record into without a lookup.
#[derive(Debug, Clone)]
pub struct HistogramHandle(Arc<Histogram>);

impl HistogramHandle {
    /// Records a duration.
    pub fn observe(&self, duration: std::time::Duration) {
        record(&self.0, duration);
    }
}

fn record(histogram: &Histogram, duration: std::time::Duration) {
    let seconds = duration.as_secs_f64();
    if let Some(bucket) = BUCKETS.iter().position(|&upper| seconds <= upper) {
        histogram.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }
    histogram.count.fetch_add(1, Ordering::Relaxed);
    histogram.sum_nanos.fetch_add(
        u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: RwLock<BTreeMap<&'static str, Arc<Family<AtomicU64>>>>,
    gauges: RwLock<BTreeMap<&'static str, Arc<Family<AtomicU64>>>>,
    histograms: RwLock<BTreeMap<&'static str, Arc<Family<Histogram>>>>,
}

fn family<T: Default>(
    map: &RwLock<BTreeMap<&'static str, Arc<Family<T>>>>,
    name: &'static str,
) -> Arc<Family<T>> {
    if let Some(found) = map.read().unwrap_or_else(PoisonError::into_inner).get(name) {
        return Arc::clone(found);
    }
    Arc::clone(
        map.write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name)
            .or_default(),
    )
}

impl Metrics {
    /// The process-wide registry.
    pub fn global() -> &'static Metrics {
        static GLOBAL: OnceLock<Metrics> = OnceLock::new();
        GLOBAL.get_or_init(Metrics::default)
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        family(&self.counters, name)
            .get(labels)
            .fetch_add(by, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        family(&self.gauges, name)
            .get(labels)
            .store(value, Ordering::Relaxed);
    }

    /// Records a duration in a histogram.
    pub fn observe(
        &self,
        name: &'static str,
        labels: &[(&'static str, &str)],
        duration: std::time::Duration,
    ) {
        record(&family(&self.histograms, name).get(labels), duration);
    }

    /// The counter `name` with `labels`, for hot paths that add to it often.
    pub fn counter_handle(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        Counter(family(&self.counters, name).get(labels))
    }

    /// The histogram `name` with `labels`, for hot paths that record often.
    pub fn histogram_handle(
        &self,
        name: &'static str,
        labels: &[(&'static str, &str)],
    ) -> HistogramHandle {
        HistogramHandle(family(&self.histograms, name).get(labels))
    }

    /// The value of a counter (0 when never recorded).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        family(&self.counters, name)
            .get(labels)
            .load(Ordering::Relaxed)
    }

    /// The value of a gauge (0 when never set).
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        family(&self.gauges, name)
            .get(labels)
            .load(Ordering::Relaxed)
    }

    /// Everything recorded, in the Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        render_values(&mut out, &self.counters, "counter");
        render_values(&mut out, &self.gauges, "gauge");
        for (name, family) in self
            .histograms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            header(&mut out, name, "histogram");
            for (labels, h) in family
                .series
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
            {
                let mut cumulative = 0;
                for (upper, bucket) in BUCKETS.iter().zip(&h.buckets) {
                    cumulative += bucket.load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {cumulative}",
                        render_labels(labels, Some(&upper.to_string()))
                    );
                }
                let count = h.count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {count}",
                    render_labels(labels, Some("+Inf"))
                );
                let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                let _ = writeln!(out, "{name}_sum{} {sum}", render_labels(labels, None));
                let _ = writeln!(out, "{name}_count{} {count}", render_labels(labels, None));
            }
        }
        out
    }
}

/// Renders every series of counter or gauge families.
fn render_values(
    out: &mut String,
    families: &RwLock<BTreeMap<&'static str, Arc<Family<AtomicU64>>>>,
    kind: &str,
) {
    for (name, family) in families
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        header(out, name, kind);
        for (labels, value) in family
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "{name}{} {}",
                render_labels(labels, None),
                value.load(Ordering::Relaxed)
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str) {
    let help = names::help(name);
    if !help.is_empty() {
        let _ = writeln!(out, "# HELP {name} {help}");
    }
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

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

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert!(
            text.contains("# TYPE messaging_client_sent_messages_total counter"),
            "{text}"
        );
        assert!(
            text.contains(
                "messaging_client_sent_messages_total{messaging_destination_name=\"orders\"} 5"
            ),
            "{text}"
        );
        assert!(
            text.contains("rustok_iggy_consumer_lag{partition=\"0\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("messaging_client_operation_duration_seconds_bucket{le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("messaging_client_operation_duration_seconds_bucket{le=\"0.00025\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("messaging_client_operation_duration_seconds_count 1"),
            "{text}"
        );
        assert_eq!(
            metrics.counter(
                names::SENT_MESSAGES,
                &[("messaging_destination_name", "orders")]
            ),
            5
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            render_labels(&[("t", "a\"b\\c\nd".into())], None),
            "{t=\"a\\\"b\\\\c\\nd\"}"
        );
    }
}
