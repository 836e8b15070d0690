//! What the durability tests trace with `strace`: opens the embedded broker in the
//! directory given as the first argument with durability `never`, creates a stream
//! with a topic of 2 partitions, publishes, commits a group offset on each
//! partition, creates a second topic, and shuts down cleanly. Prints `done`.

use rustok_iggy_connector::{
    ConnectorConfig, DurabilityPolicy, EmbeddedConnector, GroupName, IggyConnector,
    OutgoingMessage, PublishRequest, StartPosition, StreamName, TopicName, TopicSpec,
};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: durability-probe DATA_DIR");
    let mut config = ConnectorConfig::embedded(dir);
    config.embedded.durability = DurabilityPolicy::Never;
    let connector = EmbeddedConnector::new();
    connector.connect(&config).await.expect("broker opens");
    let stream = StreamName::new("probe").expect("name");
    let topic = TopicName::new("events").expect("name");
    connector
        .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 2))
        .await
        .expect("topic");
    for partition in 0..2 {
        connector
            .publish(
                PublishRequest::new(stream.clone(), topic.clone())
                    .partition(partition)
                    .message(OutgoingMessage::new(&b"probe"[..])),
            )
            .await
            .expect("publish");
    }
    let member = connector
        .join_group(
            &stream,
            &topic,
            &GroupName::new("g").expect("name"),
            StartPosition::Earliest,
        )
        .await
        .expect("join");
    member.commit(0, 0).await.expect("commit");
    member.commit(1, 0).await.expect("commit");
    drop(member);
    let other = TopicName::new("more").expect("name");
    connector
        .ensure_topic(&TopicSpec::new(stream.clone(), other, 1))
        .await
        .expect("second topic");
    connector.shutdown().await.expect("shutdown");
    println!("done");
}
