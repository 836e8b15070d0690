//! A committer for the crash tests: opens the embedded broker in the directory given
//! as the first argument (durability as the second: `every_batch`, `interval` or
//! `never`), fills topic `crash/commits` (2 partitions, 5000 messages each) when it
//! is empty, joins group `g` and commits offsets 0, 1, 2, ... to both partitions in
//! turn, printing `commit <partition> <offset>` before and `committed <partition>
//! <offset>` after each commit returns, until it is killed.

use std::io::Write;

use rustok_iggy_connector::{
    ConnectorConfig, DurabilityPolicy, EmbeddedConnector, GroupName, IggyConnector,
    OutgoingMessage, PublishRequest, StartPosition, StreamName, TopicName, TopicSpec,
};

/// Messages per partition: every committed offset stays below the end of the log.
const MESSAGES: u64 = 5000;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: crash-committer DATA_DIR [every_batch|interval|never]");
    let mut config = ConnectorConfig::embedded(dir);
    config.embedded.durability = match args.next().as_deref() {
        Some("every_batch") => DurabilityPolicy::EveryBatch,
        Some("never") => DurabilityPolicy::Never,
        _ => DurabilityPolicy::Interval,
    };
    let connector = EmbeddedConnector::new();
    connector.connect(&config).await.expect("broker opens");
    let stream = StreamName::new("crash").expect("name");
    let topic = TopicName::new("commits").expect("name");
    let info = connector
        .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 2))
        .await
        .expect("topic");
    for partition in 0..2u32 {
        let mut next = info.next_offsets[partition as usize];
        while next < MESSAGES {
            let mut request =
                PublishRequest::new(stream.clone(), topic.clone()).partition(partition);
            for _ in 0..500 {
                request = request.message(OutgoingMessage::new(&b"m"[..]));
            }
            next = connector
                .publish(request)
                .await
                .expect("publish")
                .base_offset
                + 500;
        }
    }
    let group = GroupName::new("g").expect("name");
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .expect("join");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("stdout");
    out.flush().expect("stdout");
    for n in 0u64.. {
        let (partition, offset) = ((n % 2) as u32, (n / 2) % MESSAGES);
        writeln!(out, "commit {partition} {offset}").expect("stdout");
        out.flush().expect("stdout");
        member.commit(partition, offset).await.expect("commit");
        writeln!(out, "committed {partition} {offset}").expect("stdout");
        out.flush().expect("stdout");
    }
}
