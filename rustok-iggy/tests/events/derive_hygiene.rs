//! The generated code names everything by absolute path: it compiles and behaves the
//! same when the user shadows the prelude (`Result`, `Ok`, `Option`, `Some`, ...), the
//! crates it uses and the primitive type names.
#![allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    reason = "the shadowing items exist only to be in scope"
)]

// Prelude names, and the crates and traits the expansion uses, shadowed by things that
// would break unqualified generated code.
struct Result;
struct Option;
struct Vec;
struct String;
struct Box;
struct Cow;
const Ok: () = ();
const Err: () = ();
const Some: () = ();
const None: () = ();
trait Send {}
trait Sync {}
trait Serialize {}
trait IggyEvent {}
trait PartitionKey {}
trait EventTypeInfo {}
trait Codec {}
mod core {}
mod std {}
mod rustok_iggy {}

#[derive(::serde::Serialize, ::serde::Deserialize, ::rustok_iggy::IggyEvent)]
#[iggy(topic = "orders", stream = "shop", key = tenant_id, codec = "postcard", version = 3)]
struct OrderPlaced {
    tenant_id: ::std::string::String,
    total_cents: ::core::primitive::u64,
}

#[derive(::serde::Serialize, ::serde::Deserialize, ::rustok_iggy::IggyEvent)]
#[iggy(topic = "orders", key = tenant_id)]
enum OrderEvent {
    Placed {
        tenant_id: ::std::string::String,
    },
    #[iggy(key = order_id, version = 2)]
    Audited {
        order_id: ::core::primitive::u64,
    },
    #[iggy(key = 0)]
    Reindexed(::core::primitive::u32),
}

#[derive(::serde::Serialize, ::serde::Deserialize, ::rustok_iggy::IggyEvent)]
#[iggy(topic = "generic", key = key)]
struct Keyed<K> {
    key: K,
}

/// Primitive type names shadowed too. serde's own derive does not survive that, so the
/// serde impls here are written by hand (with full paths).
mod primitives {
    struct u8;
    struct u32;
    struct u64;
    struct str;

    #[derive(::rustok_iggy::IggyEvent)]
    #[iggy(topic = "primitives", key = id)]
    pub(super) struct Counted {
        pub(super) id: ::core::primitive::u64,
    }

    impl ::serde::Serialize for Counted {
        fn serialize<S: ::serde::Serializer>(
            &self,
            serializer: S,
        ) -> ::core::result::Result<S::Ok, S::Error> {
            serializer.serialize_u64(self.id)
        }
    }

    impl<'de> ::serde::Deserialize<'de> for Counted {
        fn deserialize<D: ::serde::Deserializer<'de>>(
            deserializer: D,
        ) -> ::core::result::Result<Self, D::Error> {
            <::core::primitive::u64 as ::serde::Deserialize<'de>>::deserialize(deserializer)
                .map(|id| Self { id })
        }
    }
}

#[test]
fn derives_under_shadowed_primitives() {
    use ::rustok_iggy::IggyEvent as _;

    let counted = primitives::Counted { id: 258 };
    assert_eq!(counted.event_type(), "counted");
    assert_eq!(counted.schema_version(), 1);
    assert_eq!(
        counted.partition_key().as_deref(),
        ::core::option::Option::Some(&258_u64.to_le_bytes()[..])
    );
    assert_eq!(counted.encode().unwrap(), b"258");
}

#[test]
fn derives_under_shadowed_names() {
    use ::rustok_iggy::IggyEvent as _;

    let placed = OrderPlaced {
        tenant_id: "acme".into(),
        total_cents: 1,
    };
    assert_eq!(<OrderPlaced as ::rustok_iggy::IggyEvent>::TOPIC, "orders");
    assert_eq!(
        <OrderPlaced as ::rustok_iggy::IggyEvent>::STREAM,
        ::core::option::Option::Some("shop")
    );
    assert_eq!(placed.event_type(), "order_placed");
    assert_eq!(placed.schema_version(), 3);
    assert_eq!(
        placed.partition(8),
        ::core::option::Option::Some(::rustok_iggy::connector::partition_for(b"acme", 8))
    );
    let bytes = placed.encode().unwrap();
    let decoded = <OrderPlaced as ::rustok_iggy::IggyEvent>::decode(&bytes).unwrap();
    assert_eq!(decoded.tenant_id, "acme");

    let audited = OrderEvent::Audited { order_id: 1 };
    assert_eq!(audited.event_type(), "order_event.audited");
    assert_eq!(audited.schema_version(), 2);
    assert_eq!(
        audited.partition_key().as_deref(),
        ::core::option::Option::Some(&1_u64.to_le_bytes()[..])
    );
    let placed = OrderEvent::Placed {
        tenant_id: "acme".into(),
    };
    assert_eq!(
        placed.partition_key().as_deref(),
        ::core::option::Option::Some(&b"acme"[..])
    );
    assert_eq!(
        OrderEvent::Reindexed(4).event_type(),
        "order_event.reindexed"
    );
    assert_eq!(
        OrderEvent::Reindexed(4).partition_key().as_deref(),
        ::core::option::Option::Some(&4_u32.to_le_bytes()[..])
    );

    let keyed = Keyed { key: 9_u64 };
    assert_eq!(
        keyed.partition_key().as_deref(),
        ::core::option::Option::Some(&9_u64.to_le_bytes()[..])
    );
}
