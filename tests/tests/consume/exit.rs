//! An acknowledged event does not come back after a normal exit: a child process
//! takes one event, acknowledges it and ends; the next run gets the next event.
//!
//! - embedded, returning from `main` right after `ack()` (no `close`, no shutdown),
//!   on both Tokio runtime flavors: dropping the subscription stores the commit;
//! - embedded and remote (through the embedded broker's listener), exiting at once
//!   after `ack_and_commit()`: the commit was stored before it returned.

use std::process::Command;
use std::sync::Arc;

use rustok_iggy::connector::IggyConnector;
use rustok_iggy::prelude::*;
use rustok_iggy_connector::{ConnectorConfig, EmbeddedConnector};
use serde::{Deserialize, Serialize};
use tests::conformance::{open_remote, remote_config};
use tests::wire::{PASSWORD, USERNAME, WireBroker};

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", stream = "exit", key = key)]
struct Job {
    key: u64,
    n: u64,
}

async fn publish(connector: Arc<dyn IggyConnector>, range: std::ops::Range<u64>) {
    let jobs = Transport::<Job>::new(
        connector,
        TransportOptions {
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();
    for n in range {
        jobs.publish(&Job { key: 0, n }).await.unwrap();
    }
}

async fn publish_embedded(dir: &std::path::Path, range: std::ops::Range<u64>) {
    let connector = Arc::new(EmbeddedConnector::new());
    connector
        .connect(&ConnectorConfig::embedded(dir))
        .await
        .unwrap();
    publish(connector.clone(), range).await;
    connector.shutdown().await.unwrap();
}

/// Runs the child once; returns the job it got.
fn run_child(args: &[&str]) -> u64 {
    let output = Command::new(env!("CARGO_BIN_EXE_ack-and-exit"))
        .args(args)
        .output()
        .expect("the child runs");
    assert!(
        output.status.success(),
        "the child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("got "))
        .unwrap_or_else(|| panic!("no job in the child's output: {stdout}"))
        .parse()
        .unwrap()
}

async fn embedded(settle: &str, flavor: &str) {
    let dir = tempfile::tempdir().unwrap();
    publish_embedded(dir.path(), 0..3).await;
    let path = dir.path().to_str().unwrap();
    let got: Vec<u64> = (0..3)
        .map(|_| run_child(&["embedded", path, settle, flavor]))
        .collect();
    assert_eq!(
        got,
        vec![0, 1, 2],
        "{settle} on {flavor}: each run gets the next job, none comes back"
    );
}

#[tokio::test]
async fn returning_from_main_after_ack_does_not_redeliver() {
    embedded("ack", "current").await;
}

#[tokio::test]
async fn returning_from_main_after_ack_does_not_redeliver_on_a_multi_thread_runtime() {
    embedded("ack", "multi").await;
}

#[tokio::test]
async fn exiting_at_once_after_ack_and_commit_does_not_redeliver() {
    embedded("commit", "current").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exiting_at_once_after_ack_and_commit_does_not_redeliver_remote() {
    let broker = WireBroker::start().await;
    let address = broker.address.to_string();
    let producer = open_remote(&remote_config(&address, USERNAME, PASSWORD)).await;
    publish(Arc::clone(&producer), 0..3).await;
    producer.shutdown().await.unwrap();
    let got: Vec<u64> = (0..3)
        .map(|_| run_child(&["remote", &address, "commit", "multi"]))
        .collect();
    assert_eq!(
        got,
        vec![0, 1, 2],
        "each run gets the next job, none comes back"
    );
    broker.shutdown().await;
}
