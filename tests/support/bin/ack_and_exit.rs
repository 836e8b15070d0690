//! A consumer for the exit tests: takes one job of group `billing` from topic
//! `exit/jobs`, prints `got <n>`, acknowledges it and ends the process right after,
//! the way a simple program does.
//!
//! `ack-and-exit (embedded DATA_DIR | remote ADDRESS) (ack | commit) (current | multi)`
//!
//! - `ack`: `ack().await`, then returns from `main` (no `close`, no connector
//!   shutdown);
//! - `commit`: `ack_and_commit().await`, then `std::process::exit(0)` (no destructor
//!   runs at all);
//! - `current` / `multi`: the Tokio runtime flavor.

use std::io::Write;
use std::sync::Arc;

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy_connector::{ConnectorConfig, EmbeddedConnector, IggyConnector, RemoteConnector};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", stream = "exit", key = key)]
struct Job {
    key: u64,
    n: u64,
}

const USAGE: &str =
    "usage: ack-and-exit (embedded DATA_DIR | remote ADDRESS) (ack | commit) (current | multi)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, target, settle, flavor] = &args[..] else {
        panic!("{USAGE}");
    };
    let runtime = match flavor.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread(),
        "multi" => tokio::runtime::Builder::new_multi_thread(),
        _ => panic!("{USAGE}"),
    }
    .enable_all()
    .build()
    .expect("a runtime");
    runtime.block_on(run(mode, target, settle));
}

async fn run(mode: &str, target: &str, settle: &str) {
    let connector: Arc<dyn IggyConnector> = match mode {
        "embedded" => {
            let connector = EmbeddedConnector::new();
            connector
                .connect(&ConnectorConfig::embedded(target))
                .await
                .expect("broker opens");
            Arc::new(connector)
        }
        "remote" => {
            let config = ConnectorConfig {
                mode: rustok_iggy::connector::ConnectorMode::Remote,
                remote: rustok_iggy_connector::RemoteConnectorConfig {
                    addresses: vec![target.to_owned()],
                    username: "iggy".into(),
                    password: rustok_iggy_connector::Secret::new("iggy"),
                    ..rustok_iggy_connector::RemoteConnectorConfig::default()
                },
                ..ConnectorConfig::default()
            };
            let connector = RemoteConnector::new();
            connector.connect(&config).await.expect("connects");
            Arc::new(connector)
        }
        _ => panic!("{USAGE}"),
    };
    let jobs = Transport::<Job>::new(
        connector,
        TransportOptions {
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .expect("topic");
    let mut subscription = jobs.subscribe("billing").await.expect("subscribe");
    let delivery = subscription
        .next()
        .await
        .expect("a job")
        .expect("decodable");
    let mut out = std::io::stdout().lock();
    writeln!(out, "got {}", delivery.n).expect("stdout");
    out.flush().expect("stdout");
    match settle {
        "ack" => delivery.ack().await.expect("ack"),
        "commit" => {
            delivery.ack_and_commit().await.expect("ack and commit");
            std::process::exit(0);
        }
        _ => panic!("{USAGE}"),
    }
}
