//! Postcard schema safety on the typed transport: every message carries its schema
//! fingerprint, and a consumer whose type has another shape at the same version
//! refuses it as a decode failure naming both fingerprints, instead of decoding
//! wrong values. Every case runs on both connectors (embedded, and the remote
//! connector against the embedded broker's listener or an external server).

use std::sync::Arc;

use futures::StreamExt;
use rustok_iggy::prelude::*;
use rustok_iggy::schema::{Fingerprint, schemas};
use rustok_iggy::{
    Error,
    batching::{BatchingOptions, BatchingTransport},
    connector::{IggyConnector, StreamName},
    consume::DecodeFailure,
    metadata::header,
    upcast::Upcasters,
};
use rustok_iggy_connector::{Headers, OutgoingMessage, PublishRequest, error_chain};
use serde::{Deserialize, Serialize};
use tests::conformance::Harness;
use tests::within;

/// What producers publish: `order` at version 1.
mod v1 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
    #[iggy(topic = "orders", event_type = "order", codec = "postcard")]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) price: u32,
        pub(super) status: Status,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(super) enum Status {
        Open,
        Closed { at: u64 },
    }
}

/// The same version with two fields of one type swapped: the bytes decode.
mod reordered {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
    #[iggy(topic = "orders", event_type = "order", codec = "postcard")]
    pub(super) struct Order {
        pub(super) price: u32,
        pub(super) quantity: u32,
        pub(super) status: v1::Status,
    }
}

/// The same version with `quantity` turned from u32 into i32.
mod retyped {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
    #[iggy(topic = "orders", event_type = "order", codec = "postcard")]
    pub(super) struct Order {
        pub(super) quantity: i32,
        pub(super) price: u32,
        pub(super) status: v1::Status,
    }
}

/// A variant added at the end of a nested enum, declared compatible with version 1's
/// fingerprint: old payloads decode unchanged.
mod appended {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
    #[iggy(
        topic = "orders",
        event_type = "order",
        codec = "postcard",
        compatible_with = ["43013867af725795"]
    )]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) price: u32,
        pub(super) status: Status,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(super) enum Status {
        Open,
        Closed { at: u64 },
        Cancelled,
    }
}

/// A variant inserted in the middle of the nested enum: `Closed` moves to index 2, so
/// an old `Closed` would decode as `Cancelled`.
mod inserted {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
    #[iggy(topic = "orders", event_type = "order", codec = "postcard")]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) price: u32,
        pub(super) status: Status,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(super) enum Status {
        Open,
        Cancelled { at: u64 },
        Closed { at: u64 },
    }
}

/// Version 2 adds an optional field; version 1 is read through an upcaster.
mod v2 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
    #[iggy(
        topic = "orders",
        event_type = "order",
        codec = "postcard",
        version = 2
    )]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) price: u32,
        pub(super) status: v1::Status,
        pub(super) note: Option<String>,
    }
}

fn order() -> v1::Order {
    v1::Order {
        quantity: 3,
        price: 700,
        status: v1::Status::Closed { at: 9 },
    }
}

fn fingerprint<E: IggyEvent>() -> Fingerprint {
    schemas::<E>().unwrap()[0].fingerprint
}

async fn transport<E: IggyEvent>(
    connector: Arc<dyn IggyConnector>,
    stream: &StreamName,
) -> Transport<E> {
    Transport::<E>::new(
        connector,
        TransportOptions {
            stream: stream.clone(),
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await
    .unwrap()
}

/// Publishes one v1 order, then reads it as `E` and returns the first item.
async fn read_v1_as<E: IggyEvent + std::fmt::Debug>(
    h: &mut Harness,
    case: &str,
    upcasters: Option<Upcasters<E>>,
) -> Result<E, Box<rustok_iggy::DecodeError>> {
    let stream = h.stream(case);
    let connector = Arc::clone(&h.connector);
    let producer = transport::<v1::Order>(connector.clone(), &stream).await;
    producer.publish(&order()).await.unwrap();
    let mut consumer = transport::<E>(connector, &stream).await;
    if let Some(upcasters) = upcasters {
        consumer = consumer.with_upcasters(upcasters);
    }
    let mut subscription = consumer.subscribe("readers").await.unwrap();
    let item = within("first item", subscription.next()).await.unwrap();
    let result = match item {
        Ok(delivery) => {
            let (event, _, raw) = delivery.into_parts();
            raw.ack().await.unwrap();
            Ok(event)
        }
        Err(Error::Decode(error)) => Err(error),
        Err(other) => panic!("expected a delivery or a decode error, got {other:?}"),
    };
    subscription.close().await.unwrap();
    result
}

fn assert_mismatch(error: &rustok_iggy::DecodeError, expected: Fingerprint) {
    match &error.failure {
        DecodeFailure::SchemaMismatch {
            event_type,
            version,
            expected: consumer,
            found,
        } => {
            assert_eq!((event_type.as_str(), *version), ("order", 1));
            assert_eq!(*consumer, expected);
            assert_eq!(*found, fingerprint::<v1::Order>());
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    // The fingerprints are in the reason, the decode error's source.
    let text = error_chain(error).to_string();
    assert!(text.contains(&expected.to_string()), "{text}");
    assert!(
        text.contains(&fingerprint::<v1::Order>().to_string()),
        "{text}"
    );
}

async fn every_published_message_carries_its_fingerprint(mut h: Harness) {
    let stream = h.stream("fingerprints");
    let producer = transport::<v1::Order>(Arc::clone(&h.connector), &stream).await;
    producer.publish(&order()).await.unwrap();
    producer.publish_batch(&[order(), order()]).await.unwrap();
    let batched = BatchingTransport::new(&producer, BatchingOptions::default()).unwrap();
    batched.publish(&order()).await.unwrap();
    batched.shutdown().await;
    let mut subscription = producer.subscribe("readers").await.unwrap();
    for n in 0..4 {
        let delivery = within("delivery", subscription.next())
            .await
            .unwrap()
            .unwrap();
        let (event, _, raw) = delivery.into_parts();
        assert_eq!(event, order());
        let written = raw
            .message()
            .unwrap()
            .headers
            .get_str(header::SCHEMA_FINGERPRINT)
            .map(str::to_owned);
        assert_eq!(
            written,
            Some(fingerprint::<v1::Order>().to_string()),
            "{:?}: message {n} (3 is the batching publisher's)",
            h.target
        );
        raw.ack().await.unwrap();
    }
    subscription.close().await.unwrap();
    h.finish().await;
}

async fn reordered_fields_are_refused_instead_of_swapped(mut h: Harness) {
    // Without the check the bytes decode, with quantity and price swapped.
    let bytes = order().encode().unwrap();
    let garbage = reordered::Order::decode(&bytes).unwrap();
    assert_eq!((garbage.price, garbage.quantity), (3, 700));

    let error = read_v1_as::<reordered::Order>(&mut h, "reordered", None)
        .await
        .unwrap_err();
    assert_mismatch(&error, fingerprint::<reordered::Order>());
    h.finish().await;
}

async fn a_field_turned_from_u32_into_i32_is_refused(mut h: Harness) {
    let error = read_v1_as::<retyped::Order>(&mut h, "retyped", None)
        .await
        .unwrap_err();
    assert_mismatch(&error, fingerprint::<retyped::Order>());
    h.finish().await;
}

async fn a_variant_added_at_the_end_and_declared_compatible_reads_old_messages(mut h: Harness) {
    assert_ne!(fingerprint::<appended::Order>(), fingerprint::<v1::Order>());
    let event = read_v1_as::<appended::Order>(&mut h, "appended", None)
        .await
        .unwrap();
    assert_eq!(event.status, appended::Status::Closed { at: 9 });
    assert_eq!((event.quantity, event.price), (3, 700));
    h.finish().await;
}

async fn a_variant_inserted_in_the_middle_is_refused(mut h: Harness) {
    // Without the check, the old `Closed` decodes as the new `Cancelled`.
    let bytes = order().encode().unwrap();
    let garbage = inserted::Order::decode(&bytes).unwrap();
    assert_eq!(garbage.status, inserted::Status::Cancelled { at: 9 });

    let error = read_v1_as::<inserted::Order>(&mut h, "inserted", None)
        .await
        .unwrap_err();
    assert_mismatch(&error, fingerprint::<inserted::Order>());
    h.finish().await;
}

async fn a_new_optional_field_with_a_version_bump_reads_old_events_through_the_upcaster(
    mut h: Harness,
) {
    let upcasters =
        Upcasters::<v2::Order>::new().register("order", 1, |old: v1::Order| v2::Order {
            quantity: old.quantity,
            price: old.price,
            status: old.status,
            note: None,
        });
    let event = read_v1_as::<v2::Order>(&mut h, "upcast", Some(upcasters))
        .await
        .unwrap();
    assert_eq!(
        event,
        v2::Order {
            quantity: 3,
            price: 700,
            status: v1::Status::Closed { at: 9 },
            note: None,
        }
    );
    h.finish().await;
}

async fn an_upcaster_whose_old_type_has_another_shape_is_refused(mut h: Harness) {
    // The upcaster reads version 1 as the reordered type: refused, not swapped.
    let upcasters =
        Upcasters::<v2::Order>::new().register("order", 1, |old: reordered::Order| v2::Order {
            quantity: old.quantity,
            price: old.price,
            status: old.status,
            note: None,
        });
    let error = read_v1_as::<v2::Order>(&mut h, "upcastshape", Some(upcasters))
        .await
        .unwrap_err();
    assert_mismatch(&error, fingerprint::<reordered::Order>());
    h.finish().await;
}

async fn messages_without_a_fingerprint_are_decoded_as_before(mut h: Harness) {
    // An older producer: the headers of the time, no fingerprint.
    let stream = h.stream("unprinted");
    let connector = Arc::clone(&h.connector);
    let consumer = transport::<reordered::Order>(connector.clone(), &stream).await;
    let old = reordered::Order {
        price: 700,
        quantity: 3,
        status: v1::Status::Open,
    };
    let mut headers = Headers::new();
    headers.insert_str(header::EVENT_TYPE, "order").unwrap();
    headers.insert_str(header::SCHEMA_VERSION, "1").unwrap();
    headers.insert_str(header::CODEC, "postcard").unwrap();
    let mut message = OutgoingMessage::new(old.encode().unwrap());
    message.headers = headers;
    connector
        .publish(
            PublishRequest::new(consumer.stream().clone(), consumer.topic().clone())
                .partition(0)
                .message(message),
        )
        .await
        .unwrap();
    let mut subscription = consumer.subscribe("readers").await.unwrap();
    let delivery = within("delivery", subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*delivery, old);
    delivery.ack().await.unwrap();
    subscription.close().await.unwrap();
    h.finish().await;
}

async fn json_payloads_name_their_fields_and_are_not_refused(mut h: Harness) {
    mod json {
        use super::*;

        #[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
        #[iggy(topic = "audit", event_type = "audited")]
        pub(super) struct Written {
            pub(super) what: String,
            pub(super) count: u32,
        }

        #[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
        #[iggy(topic = "audit", event_type = "audited")]
        pub(super) struct Read {
            pub(super) count: u32,
            pub(super) what: String,
        }
    }
    let stream = h.stream("json");
    let producer = transport::<json::Written>(Arc::clone(&h.connector), &stream).await;
    producer
        .publish(&json::Written {
            what: "login".into(),
            count: 2,
        })
        .await
        .unwrap();
    let consumer = transport::<json::Read>(Arc::clone(&h.connector), &stream).await;
    let mut subscription = consumer.subscribe("readers").await.unwrap();
    let delivery = within("delivery", subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((delivery.count, delivery.what.as_str()), (2, "login"));
    delivery.ack().await.unwrap();
    subscription.close().await.unwrap();
    h.finish().await;
}

tests::both_modes!(
    every_published_message_carries_its_fingerprint,
    reordered_fields_are_refused_instead_of_swapped,
    a_field_turned_from_u32_into_i32_is_refused,
    a_variant_added_at_the_end_and_declared_compatible_reads_old_messages,
    a_variant_inserted_in_the_middle_is_refused,
    a_new_optional_field_with_a_version_bump_reads_old_events_through_the_upcaster,
    an_upcaster_whose_old_type_has_another_shape_is_refused,
    messages_without_a_fingerprint_are_decoded_as_before,
    json_payloads_name_their_fields_and_are_not_refused,
);
