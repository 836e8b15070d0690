//! Typed subscriptions and envelope streams read a message's event headers the same
//! way: a message from another producer without a `codec` header is JSON on both
//! paths, whatever codec the typed event declares, and one without a
//! `schema_version` header is version 1 on both.

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy::{IggyConnector, IggyTransport, StreamName, TopicName};
use rustok_iggy_connector::{Headers, OutgoingMessage, PublishRequest};
use serde::{Deserialize, Serialize};
use tests::{embedded_config, open_embedded, within};

/// Declares Postcard: a reader defaulting to the type's own codec would read the
/// JSON payload below as Postcard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(
    topic = "foreign",
    stream = "headers",
    codec = "postcard",
    event_type = "parcel"
)]
struct Parcel {
    to: String,
    grams: u64,
}

#[tokio::test]
async fn typed_and_envelope_readers_agree_on_a_message_without_codec_header() {
    let dir = tempfile::tempdir().unwrap();
    let connector = open_embedded(&embedded_config(dir.path())).await;
    let typed = Transport::<Parcel>::new(
        connector.clone(),
        TransportOptions {
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap();

    // What another Iggy client writes: an event type and a JSON payload, no codec
    // and no schema version.
    let sent = Parcel {
        to: "Tallinn".into(),
        grams: 1250,
    };
    let mut headers = Headers::new();
    headers.insert_str("event_type", "parcel").unwrap();
    connector
        .publish(
            PublishRequest::new(
                StreamName::new("headers").unwrap(),
                TopicName::new("foreign").unwrap(),
            )
            .partition(0)
            .message(
                OutgoingMessage::new(serde_json::to_vec(&sent).unwrap()).with_headers(headers),
            ),
        )
        .await
        .unwrap();

    let mut subscription = typed.subscribe("typed-reader").await.unwrap();
    let delivery = within("typed delivery", subscription.next())
        .await
        .expect("subscription open")
        .expect("the typed reader decodes the message as JSON");
    assert_eq!(*delivery, sent);
    assert_eq!(delivery.info().schema_version, 1);
    delivery.ack().await.unwrap();

    let mut config = IggyConfig::default();
    config.topology.stream_name = StreamName::new("headers").unwrap();
    config.topology.domain_partitions = 1;
    let envelopes = IggyTransport::with_connector(connector.clone(), config);
    let mut stream = envelopes
        .subscribe("envelope-reader", &TopicName::new("foreign").unwrap())
        .await
        .unwrap();
    let received = within("envelope", stream.next())
        .await
        .expect("stream open")
        .expect("the envelope reader decodes the message as JSON");
    assert_eq!(received.envelope.event_type, "parcel");
    assert_eq!(received.envelope.schema_version, 1);
    assert_eq!(
        received.envelope.payload,
        serde_json::to_value(&sent).unwrap()
    );
}
