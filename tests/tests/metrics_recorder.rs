//! An application that installs its own `metrics` recorder receives the SDK's
//! metrics (the OpenTelemetry messaging names, with their labels), while the
//! embedded `/metrics` registry keeps counting too.

use std::sync::Arc;

use futures::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rustok_iggy::connector::{EmbeddedConnector, IggyConnector};
use rustok_iggy::prelude::*;
use rustok_iggy_connector::{Metrics, metric_names};
use serde::{Deserialize, Serialize};
use tests::{embedded_config, within};

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "recorded", key = id)]
struct Recorded {
    id: u64,
}

/// A metric the recorder saw: name, labels, value.
type Seen = (String, Vec<(String, String)>, DebugValue);

#[tokio::test]
async fn the_applications_recorder_receives_publish_and_consume_metrics() {
    // What an application does at the start of main, before any connector.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the first recorder of this process");

    let dir = tempfile::tempdir().unwrap();
    let connector = Arc::new(EmbeddedConnector::new());
    connector
        .connect(&embedded_config(dir.path()))
        .await
        .unwrap();
    let transport = Transport::<Recorded>::new(connector.clone(), TransportOptions::default())
        .await
        .unwrap();
    for id in 0..5 {
        transport.publish(&Recorded { id }).await.unwrap();
    }
    let mut subscription = transport.subscribe("recording").await.unwrap();
    for _ in 0..5 {
        let delivery = within("delivery", subscription.next())
            .await
            .unwrap()
            .unwrap();
        delivery.ack().await.unwrap();
    }
    subscription.close().await.unwrap();
    connector.shutdown().await.unwrap();

    let seen: Vec<Seen> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    let counter = |name: &str, labels: &[(&str, &str)]| -> u64 {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        seen.iter()
            .find_map(|(n, l, value)| match value {
                DebugValue::Counter(v) if n == name && *l == labels => Some(*v),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name} {labels:?} not recorded: {seen:?}"))
    };
    let topic = ("messaging_destination_name", "recorded");
    let group = ("messaging_consumer_group_name", "recording");
    assert_eq!(counter(metric_names::SENT_MESSAGES, &[topic]), 5);
    assert_eq!(counter(metric_names::CONSUMED_MESSAGES, &[topic, group]), 5);
    assert_eq!(counter(metric_names::ACKED, &[topic, group]), 5);
    assert!(
        seen.iter()
            .any(|(n, _, v)| n == metric_names::OPERATION_DURATION
                && matches!(v, DebugValue::Histogram(h) if !h.is_empty())),
        "publish durations reach the recorder: {seen:?}"
    );

    // The built-in registry still has them, under the same names.
    let text = Metrics::global().render();
    assert!(
        text.lines().any(|line| line
            == "messaging_client_sent_messages_total{messaging_destination_name=\"recorded\"} 5"),
        "{text}"
    );
}
