//! SIGKILL a consuming process mid-batch, 20 times: every event is handled at least
//! once, none is lost, and a committed offset never passes an event that was not
//! acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustok_iggy::connector::{GroupName, IggyConnector, StreamName, TopicName};
use rustok_iggy::prelude::*;
use rustok_iggy_connector::{ConnectorConfig, EmbeddedConnector};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "jobs", stream = "crash", key = key)]
struct Job {
    key: u64,
    n: u64,
}

const EVENTS: u64 = 600;
const ROUNDS: usize = 20;

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Reads the child's lines: `handled`/`acked` positions.
fn record(line: &str, handled: &mut BTreeSet<(u32, u64)>, acked: &mut BTreeSet<(u32, u64)>) {
    let mut parts = line.split(' ');
    let (Some(kind), Some(p), Some(o)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let position = (p.parse().unwrap(), o.parse().unwrap());
    match kind {
        "handled" => {
            handled.insert(position);
        }
        "acked" => {
            acked.insert(position);
        }
        _ => {}
    }
}

/// Whether every published event (`per_partition`: events per partition) was
/// acknowledged by some consumer.
fn all_acknowledged(acked: &BTreeSet<(u32, u64)>, per_partition: &BTreeMap<u32, u64>) -> bool {
    per_partition
        .iter()
        .all(|(&partition, &count)| (0..count).all(|offset| acked.contains(&(partition, offset))))
}

async fn committed(dir: &std::path::Path) -> Vec<Option<u64>> {
    let connector = EmbeddedConnector::new();
    connector
        .connect(&ConnectorConfig::embedded(dir))
        .await
        .unwrap();
    let offsets = connector
        .committed_offsets(
            &StreamName::new("crash").unwrap(),
            &TopicName::new("jobs").unwrap(),
            &GroupName::new("g").unwrap(),
        )
        .await
        .unwrap_or_else(|_| vec![None; 3]);
    connector.shutdown().await.unwrap();
    offsets
}

#[tokio::test]
async fn killed_consumers_lose_nothing_and_never_commit_past_unacked_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut per_partition: BTreeMap<u32, u64> = BTreeMap::new();
    {
        let connector = Arc::new(EmbeddedConnector::new());
        connector
            .connect(&ConnectorConfig::embedded(dir.path()))
            .await
            .unwrap();
        let jobs = Transport::<Job>::new(
            connector.clone(),
            TransportOptions {
                stream: StreamName::new("crash").unwrap(),
                partitions: 3,
                ..TransportOptions::default()
            },
        )
        .await
        .unwrap();
        let events: Vec<Job> = (0..EVENTS).map(|n| Job { key: n % 11, n }).collect();
        for receipt in jobs.publish_batch(&events).await.unwrap() {
            *per_partition.entry(receipt.partition).or_default() += 1;
        }
        connector.shutdown().await.unwrap();
    }

    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut handled = BTreeSet::new();
    let mut acked = BTreeSet::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-consumer"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the consumer");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready", "round {round}");
        // Kill after a random number of lines (each event prints two), or once every
        // event was acknowledged: on a loaded machine a child may get through all of
        // them before the kill lands, and the next one then has nothing to print.
        let kill_after = 1 + xorshift(&mut seed) % 40;
        let mut seen = 0;
        while seen < kill_after && !all_acknowledged(&acked, &per_partition) {
            let Some(line) = lines.next() else { break };
            record(&line.unwrap(), &mut handled, &mut acked);
            seen += 1;
        }
        child.kill().expect("SIGKILL");
        for line in lines.map_while(Result::ok) {
            record(&line, &mut handled, &mut acked);
        }
        child.wait().unwrap();

        // A committed offset names the last handled event of a partition: every event
        // up to it must have been acknowledged by some consumer.
        for (partition, offset) in committed(dir.path()).await.into_iter().enumerate() {
            if let Some(offset) = offset {
                for o in 0..=offset {
                    assert!(
                        acked.contains(&(partition as u32, o)),
                        "round {round}: partition {partition} committed {offset} but {o} was never acknowledged"
                    );
                }
            }
        }
    }

    // A last consumer runs to the end: every event was handled at least once.
    let output = Command::new(env!("CARGO_BIN_EXE_crash-consumer"))
        .arg(dir.path())
        .arg("drain")
        .output()
        .expect("run the draining consumer");
    assert!(output.status.success());
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        record(line, &mut handled, &mut acked);
    }
    for (&partition, &count) in &per_partition {
        for offset in 0..count {
            assert!(
                acked.contains(&(partition, offset)),
                "event {partition}:{offset} was never handled and acknowledged"
            );
        }
    }
    let committed = committed(dir.path()).await;
    for (&partition, &count) in &per_partition {
        assert_eq!(
            committed[partition as usize],
            Some(count - 1),
            "partition {partition} fully committed"
        );
    }
}
