//! What `#[derive(IggyEvent)]` generates, read back through the trait.

use std::borrow::Cow;

use rustok_iggy::{Codec, IggyEvent, PartitionKey, connector::partition_for, event::EventTypeInfo};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant_id, codec = "postcard", version = 2)]
struct OrderPlaced {
    tenant_id: String,
    order_id: u64,
    total_cents: u64,
}

fn order_placed() -> OrderPlaced {
    OrderPlaced {
        tenant_id: "tenant-42".to_owned(),
        order_id: 7,
        total_cents: 1999,
    }
}

#[test]
fn struct_metadata_comes_from_the_attributes() {
    let event = order_placed();
    assert_eq!(OrderPlaced::TOPIC, "orders");
    assert_eq!(OrderPlaced::STREAM, None);
    assert_eq!(OrderPlaced::CODEC, Codec::Postcard);
    assert_eq!(
        OrderPlaced::EVENT_TYPES,
        [EventTypeInfo::new("order_placed", 2)]
    );
    assert_eq!(event.event_type(), "order_placed");
    assert_eq!(event.schema_version(), 2);
    assert_eq!(
        event.partition_key(),
        Some(Cow::Borrowed(&b"tenant-42"[..]))
    );
}

#[test]
fn struct_partition_is_partition_for_of_the_key() {
    let event = order_placed();
    for count in 1..=64 {
        assert_eq!(
            event.partition(count),
            Some(partition_for(event.tenant_id.as_bytes(), count))
        );
    }
    // Events of the same tenant share a partition whatever their other fields.
    let other = OrderPlaced {
        order_id: 8,
        total_cents: 1,
        ..order_placed()
    };
    assert_eq!(other.partition(8), event.partition(8));
}

#[test]
fn struct_round_trips_through_its_codec() {
    let event = order_placed();
    let bytes = event.encode().unwrap();
    assert_eq!(
        bytes,
        Codec::Postcard
            .encode_value("order_placed", &event)
            .unwrap()
    );
    assert_eq!(OrderPlaced::decode(&bytes).unwrap(), event);
}

#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "audit")]
struct Heartbeat {
    sequence: u64,
}

#[test]
fn defaults_are_json_version_one_no_key_and_snake_case() {
    let event = Heartbeat { sequence: 1 };
    assert_eq!(Heartbeat::CODEC, Codec::Json);
    assert_eq!(Heartbeat::STREAM, None);
    assert_eq!(event.event_type(), "heartbeat");
    assert_eq!(event.schema_version(), 1);
    assert_eq!(event.partition_key(), None);
    assert_eq!(event.partition(8), None);
    assert_eq!(event.encode().unwrap(), br#"{"sequence":1}"#);
}

#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "http", stream = "edge", event_type = "http.request_sent")]
struct HTTPRequestSent {
    path: String,
}

#[test]
fn explicit_event_type_and_stream() {
    let event = HTTPRequestSent { path: "/".into() };
    assert_eq!(event.event_type(), "http.request_sent");
    assert_eq!(HTTPRequestSent::STREAM, Some("edge"));
}

#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "http")]
struct HTTPRequestFailed {
    status: u16,
}

#[test]
fn default_event_type_splits_acronyms() {
    assert_eq!(
        HTTPRequestFailed { status: 500 }.event_type(),
        "http_request_failed"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", stream = "shop", key = tenant_id, version = 2)]
enum OrderEvent {
    Placed {
        tenant_id: String,
        total_cents: u64,
    },
    #[iggy(event_type = "order.shipped", version = 5)]
    Shipped {
        tenant_id: String,
        carrier: String,
    },
    #[iggy(key = order_id)]
    Audited {
        order_id: u64,
        note: Option<String>,
    },
    #[iggy(key = 0)]
    Reindexed(Uuid, u32),
}

#[test]
fn enum_variants_are_event_types_of_their_own() {
    assert_eq!(OrderEvent::TOPIC, "orders");
    assert_eq!(OrderEvent::STREAM, Some("shop"));
    assert_eq!(OrderEvent::CODEC, Codec::Json);
    assert_eq!(
        OrderEvent::EVENT_TYPES,
        [
            EventTypeInfo::new("order_event.placed", 2),
            EventTypeInfo::new("order.shipped", 5),
            EventTypeInfo::new("order_event.audited", 2),
            EventTypeInfo::new("order_event.reindexed", 2),
        ]
    );
    let placed = OrderEvent::Placed {
        tenant_id: "t1".into(),
        total_cents: 10,
    };
    let shipped = OrderEvent::Shipped {
        tenant_id: "t1".into(),
        carrier: "post".into(),
    };
    let audited = OrderEvent::Audited {
        order_id: 99,
        note: None,
    };
    let id = Uuid::from_u128(0x1234);
    let reindexed = OrderEvent::Reindexed(id, 3);

    let events = [&placed, &shipped, &audited, &reindexed];
    for (event, info) in events.into_iter().zip(OrderEvent::EVENT_TYPES) {
        assert_eq!(event.event_type(), info.event_type);
        assert_eq!(event.schema_version(), info.version);
    }

    // The enum's key for variants without their own.
    assert_eq!(placed.partition_key().as_deref(), Some(&b"t1"[..]));
    assert_eq!(placed.partition(16), shipped.partition(16));
    // Variant keys: an integer and a UUID.
    assert_eq!(
        audited.partition_key().as_deref(),
        Some(&99_u64.to_le_bytes()[..])
    );
    assert_eq!(
        audited.partition(16),
        Some(partition_for(&99_u64.to_le_bytes(), 16))
    );
    assert_eq!(
        reindexed.partition_key().as_deref(),
        Some(&id.as_bytes()[..])
    );
    assert_eq!(
        reindexed.partition(16),
        Some(partition_for(id.as_bytes(), 16))
    );
}

#[test]
fn enum_round_trips_through_its_codec() {
    let event = OrderEvent::Audited {
        order_id: 1,
        note: Some("checked".into()),
    };
    let bytes = event.encode().unwrap();
    assert_eq!(OrderEvent::decode(&bytes).unwrap(), event);
}

#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "sensors")]
enum SensorEvent {
    #[iggy(key = sensor)]
    Reading {
        sensor: u32,
        value: f64,
    },
    Calibrated,
}

#[test]
fn enum_variants_without_any_key_have_none() {
    assert_eq!(SensorEvent::Calibrated.partition_key(), None);
    assert_eq!(
        SensorEvent::Calibrated.event_type(),
        "sensor_event.calibrated"
    );
    let reading = SensorEvent::Reading {
        sensor: 3,
        value: 1.5,
    };
    assert_eq!(
        reading.partition(4),
        Some(partition_for(&3_u32.to_le_bytes(), 4))
    );
}

/// Integer, UUID, byte-array and custom keys.
#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "ledger", key = account)]
struct Debited {
    account: u64,
    amount: i64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "users", key = user_id)]
struct UserRenamed {
    user_id: Uuid,
    name: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "blobs", key = digest)]
struct BlobStored {
    digest: [u8; 4],
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct TenantId(String);

impl PartitionKey for TenantId {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        self.0.partition_key()
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "tenants", key = tenant)]
struct TenantCreated {
    tenant: TenantId,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "tenants", key = 0)]
struct TenantDeleted(TenantId);

#[test]
fn keys_of_every_kind() {
    let debited = Debited {
        account: 0x0102_0304,
        amount: -5,
    };
    assert_eq!(
        debited.partition_key().as_deref(),
        Some(&[4_u8, 3, 2, 1, 0, 0, 0, 0][..])
    );

    let user_id = Uuid::from_u128(0x00ff_0000_0000_0000_0000_0000_0000_00ee);
    let renamed = UserRenamed {
        user_id,
        name: "n".into(),
    };
    assert_eq!(
        renamed.partition_key().as_deref(),
        Some(&user_id.as_bytes()[..])
    );

    let stored = BlobStored {
        digest: [9, 8, 7, 6],
    };
    assert_eq!(
        stored.partition_key().as_deref(),
        Some(&[9_u8, 8, 7, 6][..])
    );

    let created = TenantCreated {
        tenant: TenantId("acme".into()),
    };
    let deleted = TenantDeleted(TenantId("acme".into()));
    assert_eq!(created.partition_key().as_deref(), Some(&b"acme"[..]));
    assert_eq!(created.partition(32), deleted.partition(32));
}

/// A generic event: the derive adds the bounds the impl needs.
#[derive(Debug, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "generic", key = key)]
struct Keyed<K, P> {
    key: K,
    payload: P,
}

#[test]
fn generic_events() {
    let event = Keyed {
        key: 5_u32,
        payload: "p".to_owned(),
    };
    assert_eq!(event.event_type(), "keyed");
    assert_eq!(
        event.partition_key().as_deref(),
        Some(&5_u32.to_le_bytes()[..])
    );
    let bytes = event.encode().unwrap();
    assert_eq!(Keyed::<u32, String>::decode(&bytes).unwrap(), event);
}

/// The trait is usable generically, the way the transport uses it.
fn describe<E: IggyEvent>(event: &E, partitions: u32) -> (String, Option<u32>) {
    (
        format!(
            "{}/{} {} v{} ({})",
            E::STREAM.unwrap_or("<configured>"),
            E::TOPIC,
            event.event_type(),
            event.schema_version(),
            E::CODEC
        ),
        event.partition(partitions),
    )
}

#[test]
fn trait_is_usable_generically() {
    let (text, partition) = describe(&order_placed(), 8);
    assert_eq!(text, "<configured>/orders order_placed v2 (postcard)");
    assert_eq!(partition, Some(partition_for(b"tenant-42", 8)));
}
