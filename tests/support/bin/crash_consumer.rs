//! A consumer for the crash tests: opens the embedded broker in the directory given
//! as the first argument, consumes group `g` of topic `crash/jobs` through the typed
//! transport and prints `handled <partition> <offset>` before and `acked <partition>
//! <offset>` after acknowledging each event, until it is killed (or, with a second
//! argument `drain`, until the topic is exhausted).

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy::{SubscriptionOptions, connector::IggyConnector};
use rustok_iggy_connector::{ConnectorConfig, EmbeddedConnector};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", stream = "crash", key = key)]
struct Job {
    key: u64,
    n: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: crash-consumer DATA_DIR [drain]");
    let drain = std::env::args().nth(2).is_some_and(|a| a == "drain");
    let connector = std::sync::Arc::new(EmbeddedConnector::new());
    connector
        .connect(&ConnectorConfig::embedded(dir))
        .await
        .expect("broker opens");
    let jobs = Transport::<Job>::new(
        connector.clone(),
        TransportOptions {
            partitions: 3,
            ..TransportOptions::default()
        },
    )
    .await
    .expect("topic");
    let options = SubscriptionOptions {
        batch_size: 7,
        max_in_flight: 5,
        ..SubscriptionOptions::default()
    };
    let mut subscription = jobs
        .subscribe_with("g", StartPosition::Earliest, options)
        .await
        .expect("subscribe");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("stdout");
    out.flush().expect("stdout");
    loop {
        let next = if drain {
            match tokio::time::timeout(Duration::from_millis(500), subscription.next()).await {
                Ok(next) => next,
                Err(_) => break,
            }
        } else {
            subscription.next().await
        };
        let Some(delivery) = next else { break };
        let delivery = delivery.expect("decodable");
        let (p, o) = (delivery.info().partition, delivery.info().offset);
        writeln!(out, "handled {p} {o}").expect("stdout");
        out.flush().expect("stdout");
        delivery.ack().await.expect("ack");
        writeln!(out, "acked {p} {o}").expect("stdout");
        out.flush().expect("stdout");
    }
    subscription.close().await.expect("close");
    connector.shutdown().await.expect("shutdown");
    writeln!(out, "drained").expect("stdout");
}
