//! Consumer offsets of the embedded broker: a commit is one append to a journal
//! (no file rewritten), concurrent `every_batch` commits share one fsync and each
//! returns only after it, the journal is compacted in the background, and after
//! SIGKILL the stored offsets are exactly the last acknowledged commits (or the one
//! in flight, written but not yet acknowledged).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustok_iggy_connector::{
    DurabilityPolicy, EmbeddedConnector, GroupName, IggyConnector, OutgoingMessage, PublishRequest,
    StartPosition, StreamName, TopicName,
};
use tests::{create_topic, embedded_config, names, open_embedded, partition_metric, within};

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test]
async fn stored_offsets_after_sigkill_are_the_last_acknowledged_commits() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for (round, durability) in ["interval", "every_batch", "never", "interval"]
        .into_iter()
        .cycle()
        .take(12)
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-committer"))
            .arg(dir.path())
            .arg(durability)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the committer");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let kill_after = 20 + xorshift(&mut seed) % 3000;
        // Per partition: the last acknowledged commit, and one written but not yet
        // acknowledged.
        let mut acked: BTreeMap<u32, u64> = BTreeMap::new();
        let mut in_flight: BTreeMap<u32, u64> = BTreeMap::new();
        let mut record = |line: &str| {
            let mut parts = line.split(' ');
            let (Some(kind), Some(p), Some(o)) = (parts.next(), parts.next(), parts.next()) else {
                return;
            };
            let (p, o): (u32, u64) = (p.parse().unwrap(), o.parse().unwrap());
            match kind {
                "commit" => {
                    in_flight.insert(p, o);
                }
                "committed" => {
                    acked.insert(p, o);
                    in_flight.remove(&p);
                }
                _ => {}
            }
        };
        let mut seen = 0u64;
        for line in lines.by_ref() {
            let line = line.unwrap();
            record(&line);
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        child.kill().expect("SIGKILL");
        for line in lines.map_while(Result::ok) {
            record(&line);
        }
        child.wait().unwrap();

        let connector = open_embedded(&embedded_config(dir.path())).await;
        let stored = connector
            .committed_offsets(
                &StreamName::new("crash").unwrap(),
                &TopicName::new("commits").unwrap(),
                &GroupName::new("g").unwrap(),
            )
            .await
            .unwrap();
        for partition in 0..2u32 {
            let got = stored[partition as usize];
            let last = acked.get(&partition).copied();
            let pending = in_flight.get(&partition).copied();
            assert!(
                got == last || (pending.is_some() && got == pending),
                "round {round} ({durability}), partition {partition}: stored {got:?}, \
                 last acknowledged {last:?}, in flight {pending:?}"
            );
        }
        connector.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_every_batch_commits_share_one_fsync_and_each_waits_for_it() {
    const DELAY: Duration = Duration::from_millis(300);
    const COMMITS: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.durability = DurabilityPolicy::EveryBatch;
    config.embedded.http_enabled = true;
    config.embedded.http_port = 0;
    let (stream, topic) = names("s", "t");
    let group = GroupName::new("g").unwrap();
    let connector = open_embedded(&config).await;
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    let mut request = PublishRequest::new(stream.clone(), topic.clone()).partition(0);
    for _ in 0..COMMITS {
        request = request.message(OutgoingMessage::new(&b"m"[..]));
    }
    connector.publish(request).await.unwrap();
    drop(
        connector
            .join_group(&stream, &topic, &group, StartPosition::Earliest)
            .await
            .unwrap(),
    );
    connector.shutdown().await.unwrap();
    config.embedded.fault_fsync_delay = DELAY;
    let connector = open_embedded(&config).await;
    let address = connector.http_address().unwrap();
    let counter = |name: &'static str| partition_metric(address, name, ("s", "t", 0));
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let before = counter("rustok_iggy_partition_offset_fsyncs_total").await;

    let started = Instant::now();
    let commits = (0..COMMITS).map(|offset| {
        let member = &member;
        async move {
            member.commit(0, offset).await.unwrap();
            started.elapsed()
        }
    });
    let latencies = within("commits", futures::future::join_all(commits)).await;
    let after = counter("rustok_iggy_partition_offset_fsyncs_total").await;
    assert!(
        latencies.iter().all(|&l| l >= DELAY),
        "each commit returns after an fsync: {latencies:?}"
    );
    let (Some(before), Some(after)) = (before, after) else {
        panic!("/metrics counts the fsyncs of the offsets journal");
    };
    assert!(
        after - before <= 3.0,
        "{COMMITS} concurrent commits made {} fsyncs",
        after - before
    );
    let stored = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert!(stored[0].is_some_and(|o| o < COMMITS));
    drop(member);
    connector.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_offsets_journal_is_compacted_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded_config(dir.path());
    let (stream, topic) = names("s", "t");
    let group = GroupName::new("g").unwrap();
    let connector = open_embedded(&config).await;
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    let mut request = PublishRequest::new(stream.clone(), topic.clone()).partition(0);
    for _ in 0..100 {
        request = request.message(OutgoingMessage::new(&b"m"[..]));
    }
    connector.publish(request).await.unwrap();
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let partition = dir.path().join("streams/0/topics/0/partitions/0");
    let offsets_file = partition.join("offsets.json");
    let before = std::fs::read(&offsets_file).ok();
    for n in 0..40_000u64 {
        member.commit(0, n % 100).await.unwrap();
    }
    within("flush", connector.flush()).await.unwrap();
    let journals: Vec<(String, u64)> = std::fs::read_dir(&partition)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        journals.len(),
        1,
        "the older journals are removed: {journals:?}"
    );
    assert!(
        journals[0].1 < 20_000 * 24,
        "the journal holds only what came after the last compaction: {journals:?}"
    );
    assert_ne!(
        std::fs::read(&offsets_file).ok(),
        before,
        "offsets.json was rewritten"
    );
    drop(member);
    connector.shutdown().await.unwrap();
    drop(connector);
    let connector: std::sync::Arc<EmbeddedConnector> = open_embedded(&config).await;
    let stored = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(stored, vec![Some(39_999 % 100)]);
    connector.shutdown().await.unwrap();
}
