//! A publisher for the crash tests: opens the embedded broker in the directory given as
//! the first argument, publishes batches in a loop, and prints `ack <partition> <offset>
//! <count>` for every acknowledged batch, until it is killed.

use std::io::Write;

use rustok_iggy_connector::{
    ConnectorConfig, EmbeddedConnector, IggyConnector, OutgoingMessage, PublishRequest, StreamName,
    TopicName, TopicSpec,
};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: crash-publisher DATA_DIR");
    let config = ConnectorConfig::embedded(dir);
    let connector = EmbeddedConnector::new();
    connector.connect(&config).await.expect("broker opens");
    let stream = StreamName::new("crash").expect("name");
    let topic = TopicName::new("events").expect("name");
    connector
        .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 2))
        .await
        .expect("topic");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("stdout");
    out.flush().expect("stdout");
    for round in 0u64.. {
        let mut request =
            PublishRequest::new(stream.clone(), topic.clone()).partition((round % 2) as u32);
        let count = 1 + round % 7;
        for i in 0..count {
            let payload = format!(
                "round-{round}-message-{i}-{}",
                "x".repeat((i * 13 % 200) as usize)
            );
            request = request.message(OutgoingMessage::new(payload.into_bytes()));
        }
        let receipt = connector.publish(request).await.expect("publish");
        writeln!(
            out,
            "ack {} {} {}",
            receipt.partition, receipt.base_offset, receipt.count
        )
        .expect("stdout");
        out.flush().expect("stdout");
    }
}
