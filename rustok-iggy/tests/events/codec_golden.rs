//! The wire bytes of fixed events, in both codecs, against checked-in golden files.
//!
//! A change of the bytes is a change of the wire format: consumers already deployed
//! would no longer decode what new producers publish. Such a change must be deliberate
//! (and versioned with `#[iggy(version = N)]`), never a side effect of a dependency
//! update. So by default this test only compares. To regenerate the files after a
//! deliberate change, run
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p rustok-iggy --test events codec_golden
//! ```
//!
//! and review the diff of `rustok-iggy/tests/golden/`. JSON files hold the exact bytes;
//! postcard files hold the bytes in hexadecimal, 16 per line.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustok_iggy::{Codec, IggyEvent, codec::CodecError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A small flat event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "health", codec = "postcard")]
struct Ping {
    sequence: u32,
    healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
    unit_price_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PaymentStatus {
    Pending,
    Authorized { authorization: String },
    Failed(u16),
}

/// A medium event: strings, a vector of structs, an enum, options, integers of several
/// widths, a float and a UUID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant_id, codec = "postcard", version = 2)]
struct OrderPlaced {
    order_id: Uuid,
    tenant_id: String,
    lines: Vec<Line>,
    payment: PaymentStatus,
    coupon: Option<String>,
    note: Option<String>,
    total_cents: u64,
    placed_at_micros: i64,
    discount_ratio: f64,
}

/// An enum event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "shipments", key = order_id)]
enum ShipmentEvent {
    Dispatched {
        order_id: u64,
        carrier: String,
    },
    #[iggy(version = 2)]
    Delivered {
        order_id: u64,
        signed_by: Option<String>,
    },
    #[iggy(key = 0)]
    Lost(u64),
}

fn ping() -> Ping {
    Ping {
        sequence: 300,
        healthy: true,
    }
}

fn order_placed() -> OrderPlaced {
    OrderPlaced {
        order_id: Uuid::from_u128(0x0191_2f6e_8c3a_7b4d_9e10_a1b2_c3d4_e5f6),
        tenant_id: "tenant-7".to_owned(),
        lines: vec![
            Line {
                sku: "SKU-1".to_owned(),
                quantity: 2,
                unit_price_cents: 1250,
            },
            Line {
                sku: "Ünïcode-✓".to_owned(),
                quantity: 1,
                unit_price_cents: 99_999,
            },
        ],
        payment: PaymentStatus::Authorized {
            authorization: "auth-42".to_owned(),
        },
        coupon: Some("SPRING".to_owned()),
        note: None,
        total_cents: 102_499,
        placed_at_micros: -1,
        discount_ratio: 0.125,
    }
}

fn dispatched() -> ShipmentEvent {
    ShipmentEvent::Dispatched {
        order_id: 70_000,
        carrier: "post".to_owned(),
    }
}

fn delivered() -> ShipmentEvent {
    ShipmentEvent::Delivered {
        order_id: 70_000,
        signed_by: Some("R. Roe".to_owned()),
    }
}

fn lost() -> ShipmentEvent {
    ShipmentEvent::Lost(u64::MAX)
}

fn golden_path(name: &str, codec: Codec) -> PathBuf {
    let file = match codec {
        Codec::Json => format!("{name}.json"),
        Codec::Postcard => format!("{name}.postcard.hex"),
    };
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file)
}

fn to_file(bytes: &[u8], codec: Codec) -> Vec<u8> {
    match codec {
        Codec::Json => bytes.to_vec(),
        Codec::Postcard => {
            let mut text = String::new();
            for line in bytes.chunks(16) {
                let hex: Vec<String> = line.iter().map(|byte| format!("{byte:02x}")).collect();
                text.push_str(&hex.join(" "));
                text.push('\n');
            }
            text.into_bytes()
        }
    }
}

fn from_file(contents: &[u8], codec: Codec) -> Vec<u8> {
    match codec {
        Codec::Json => contents.to_vec(),
        Codec::Postcard => std::str::from_utf8(contents)
            .expect("hex golden file is UTF-8")
            .split_ascii_whitespace()
            .map(|byte| u8::from_str_radix(byte, 16).expect("hex golden file holds hex bytes"))
            .collect(),
    }
}

/// Encodes `event` with `codec`, compares with (or, under `UPDATE_GOLDEN=1`, writes) the
/// golden file, decodes the golden bytes back to `event`, and returns them.
fn check<E: IggyEvent + PartialEq + Debug>(name: &str, event: &E, codec: Codec) -> Vec<u8> {
    let encoded = codec.encode_value(event.event_type(), event).unwrap();
    let path = golden_path(name, codec);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value == "1") {
        // Write then rename: tests running in parallel never read half a file.
        static WRITES: AtomicUsize = AtomicUsize::new(0);
        let unique = WRITES.fetch_add(1, Ordering::Relaxed);
        let temporary = path.with_extension(format!("tmp-{}-{unique}", std::process::id()));
        std::fs::write(&temporary, to_file(&encoded, codec)).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
    }
    let contents = std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error}; create it with UPDATE_GOLDEN=1 (see the top of this file)",
            path.display()
        )
    });
    let golden = from_file(&contents, codec);
    assert_eq!(
        encoded,
        golden,
        "the {codec} bytes of {name} changed (left: now, right: {}); a wire-format change must be deliberate",
        path.display()
    );
    let decoded: E = codec.decode_value(event.event_type(), &golden).unwrap();
    assert_eq!(
        &decoded,
        event,
        "{} decodes to a different value",
        path.display()
    );
    golden
}

#[test]
fn small_flat_event() {
    check("ping", &ping(), Codec::Json);
    check("ping", &ping(), Codec::Postcard);
}

#[test]
fn medium_event() {
    check("order_placed", &order_placed(), Codec::Json);
    check("order_placed", &order_placed(), Codec::Postcard);
}

#[test]
fn enum_event() {
    for (name, event) in [
        ("shipment_dispatched", dispatched()),
        ("shipment_delivered", delivered()),
        ("shipment_lost", lost()),
    ] {
        check(name, &event, Codec::Json);
        check(name, &event, Codec::Postcard);
    }
}

#[test]
fn the_declared_codec_is_the_one_used() {
    assert_eq!(
        order_placed().encode().unwrap(),
        Codec::Postcard
            .encode_value("order_placed", &order_placed())
            .unwrap()
    );
    assert_eq!(
        dispatched().encode().unwrap(),
        Codec::Json
            .encode_value(dispatched().event_type(), &dispatched())
            .unwrap()
    );
}

#[test]
fn truncated_payload_is_a_decode_error_naming_the_event_type() {
    let golden = check("order_placed", &order_placed(), Codec::Postcard);
    for cut in [0, 1, golden.len() / 2, golden.len() - 1] {
        let error = OrderPlaced::decode(&golden[..cut]).unwrap_err();
        let CodecError::Decode {
            event_type, codec, ..
        } = &error
        else {
            panic!("expected a decode error, got {error:?}");
        };
        assert_eq!(event_type, "order_placed");
        assert_eq!(*codec, Codec::Postcard);
        assert_eq!(
            error.to_string(),
            "could not decode event \"order_placed\" from postcard"
        );
        assert!(std::error::Error::source(&error).is_some());
    }
}

#[test]
fn corrupted_payload_is_a_decode_error() {
    // The last byte of `ping` is `healthy`; 2 is not a bool.
    let mut golden = check("ping", &ping(), Codec::Postcard);
    let last = golden.len() - 1;
    golden[last] = 2;
    let error = Ping::decode(&golden).unwrap_err();
    assert!(matches!(error, CodecError::Decode { .. }), "{error:?}");
    assert_eq!(error.event_type(), "ping");

    let error = Codec::Json
        .decode_value::<Ping>("ping", br#"{"sequence":"three hundred","healthy":true}"#)
        .unwrap_err();
    assert!(
        matches!(
            error,
            CodecError::Decode {
                codec: Codec::Json,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.event_type(), "ping");
    // Debug shows what failed, not the payload.
    assert!(!format!("{error:?}").contains("healthy"));
}

#[test]
fn enum_decode_errors_name_the_type_or_the_given_event_type() {
    let golden = check("shipment_delivered", &delivered(), Codec::Postcard);
    // An unknown variant: decoding the enum itself (the event type is not known yet)
    // names the Rust type.
    let error = ShipmentEvent::decode(br#"{"Returned":{"order_id":1}}"#).unwrap_err();
    assert!(
        matches!(
            error,
            CodecError::Decode {
                codec: Codec::Json,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.event_type().ends_with("ShipmentEvent"), "{error}");
    // The same through the codec, for the Postcard bytes with an unknown variant index.
    let mut corrupted = golden.clone();
    corrupted[0] = 9;
    let error = Codec::Postcard
        .decode_value::<ShipmentEvent>(std::any::type_name::<ShipmentEvent>(), &corrupted)
        .unwrap_err();
    assert!(matches!(error, CodecError::Decode { .. }), "{error:?}");
    assert!(error.event_type().ends_with("ShipmentEvent"), "{error}");

    // With the event type known (from a message header), the error names it.
    let error = Codec::Postcard
        .decode_value::<ShipmentEvent>("shipment_event.delivered", &golden[..2])
        .unwrap_err();
    assert_eq!(error.event_type(), "shipment_event.delivered");
}

#[test]
fn trailing_bytes_are_refused() {
    let mut golden = check("ping", &ping(), Codec::Postcard);
    golden.push(0);
    let error = Ping::decode(&golden).unwrap_err();
    assert!(matches!(error, CodecError::Decode { .. }), "{error:?}");
}
