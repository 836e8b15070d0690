//! Several producers on one partition, consumers reading meanwhile.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustok_iggy_connector::{IggyConnector, OutgoingMessage, PublishRequest, StartPosition};
use tests::{create_topic, embedded_config, names, open_embedded, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_get_unique_contiguous_offsets_and_readers_see_no_gap() {
    const PRODUCERS: u64 = 4;
    const BATCHES: u64 = 50;
    const PER_BATCH: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let (stream, topic) = names("s", "busy");
    create_topic(connector.as_ref(), &stream, &topic, 1).await;

    let mut reader = connector
        .subscribe(&stream, &topic, 0, StartPosition::Earliest)
        .await
        .unwrap();
    let total = PRODUCERS * BATCHES * PER_BATCH;
    let read = tokio::spawn(async move {
        let mut offsets = Vec::new();
        while (offsets.len() as u64) < total {
            for m in reader.next_batch(1000).await.unwrap() {
                offsets.push(m.offset);
            }
        }
        offsets
    });

    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let connector = Arc::clone(&connector);
        let (stream, topic) = (stream.clone(), topic.clone());
        producers.push(tokio::spawn(async move {
            let mut ranges = Vec::new();
            for batch in 0..BATCHES {
                let mut request = PublishRequest::new(stream.clone(), topic.clone()).partition(0);
                for i in 0..PER_BATCH {
                    request = request.message(OutgoingMessage::new(
                        format!("{producer}-{batch}-{i}").into_bytes(),
                    ));
                }
                let receipt = connector.publish(request).await.unwrap();
                ranges.push(receipt.base_offset..receipt.base_offset + u64::from(receipt.count));
            }
            ranges
        }));
    }
    let mut all = BTreeSet::new();
    for producer in producers {
        for range in producer.await.unwrap() {
            for offset in range {
                assert!(all.insert(offset), "offset {offset} handed out twice");
            }
        }
    }
    assert_eq!(all.len() as u64, total);
    assert_eq!(all.last().copied(), Some(total - 1), "contiguous from 0");

    let offsets = within("the reader", read).await.unwrap();
    assert_eq!(
        offsets,
        (0..total).collect::<Vec<_>>(),
        "no gap, no duplicate, in order"
    );
    connector.shutdown().await.unwrap();
}
