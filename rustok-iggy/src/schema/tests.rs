use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::shape::only_appends_variants;
use super::*;

fn of<T: DeserializeOwned>() -> EventSchema {
    EventSchema::of_type::<T>("order", 1).unwrap()
}

mod before {
    use super::*;

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) price: u32,
        pub(super) status: Status,
    }

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) enum Status {
        Open,
        Closed { at: u64 },
    }
}

mod reordered {
    use super::*;

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) struct Order {
        pub(super) price: u32,
        pub(super) quantity: u32,
        pub(super) status: before::Status,
    }
}

mod retyped {
    use super::*;

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) struct Order {
        pub(super) quantity: i32,
        pub(super) price: u32,
        pub(super) status: before::Status,
    }
}

mod appended {
    use super::*;

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) price: u32,
        pub(super) status: Status,
    }

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) enum Status {
        Open,
        Closed { at: u64 },
        Cancelled(String),
    }
}

mod inserted {
    use super::*;

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) price: u32,
        pub(super) status: Status,
    }

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) enum Status {
        Open,
        Cancelled(String),
        Closed { at: u64 },
    }
}

#[test]
fn the_shape_names_fields_in_order_with_their_types_and_nested_enums() {
    let schema = of::<before::Order>();
    assert_eq!(
        schema.shape,
        "struct { quantity: u32, price: u32, status: Status }\n\
         enum Status { 0 Open, 1 Closed { at: u64 } }"
    );
    assert_eq!(schema.fingerprint, Fingerprint::of_shape(&schema.shape));
}

#[test]
fn the_shape_covers_options_sequences_maps_tuples_arrays_and_uuids() {
    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    struct Everything {
        id: uuid::Uuid,
        note: Option<String>,
        lines: Vec<(u8, i64)>,
        tags: BTreeMap<String, bool>,
        digest: [u8; 4],
        unit: (),
    }
    assert_eq!(
        of::<Everything>().shape,
        "struct { id: bytes, note: option<str>, lines: seq<(u8, i64)>, \
         tags: map<str, bool>, digest: [u8; 4], unit: () }"
    );
}

#[test]
fn reordering_two_fields_of_the_same_type_changes_the_fingerprint() {
    assert_ne!(
        of::<before::Order>().fingerprint,
        of::<reordered::Order>().fingerprint
    );
}

#[test]
fn changing_u32_to_i32_changes_the_fingerprint() {
    assert_ne!(
        of::<before::Order>().fingerprint,
        of::<retyped::Order>().fingerprint
    );
}

#[test]
fn a_variant_added_at_the_end_only_appends_one_in_the_middle_does_not() {
    let old = of::<before::Order>();
    let at_end = of::<appended::Order>();
    let in_middle = of::<inserted::Order>();
    assert_ne!(old.fingerprint, at_end.fingerprint);
    assert_ne!(old.fingerprint, in_middle.fingerprint);
    assert!(only_appends_variants(&old.shape, &at_end.shape));
    assert!(!only_appends_variants(&old.shape, &in_middle.shape));
    assert!(!only_appends_variants(
        &old.shape,
        &of::<reordered::Order>().shape
    ));
    assert!(!only_appends_variants(
        &old.shape,
        &of::<retyped::Order>().shape
    ));
    // And never the other way round: removing a variant breaks old payloads.
    assert!(!only_appends_variants(&at_end.shape, &old.shape));
}

#[test]
fn fingerprints_are_stable_across_releases() {
    // XXH3-64 of a fixed text: a change here breaks every lock file and every
    // consumer of already-published messages.
    let fingerprint = Fingerprint::of_shape("struct Order { quantity: u32 }");
    assert_eq!(fingerprint.to_string().len(), 16);
    assert_eq!(fingerprint.to_string(), "fc5f281d3706e881");
    assert_eq!(
        fingerprint.to_string().parse::<Fingerprint>(),
        Ok(fingerprint)
    );
}

#[test]
fn fingerprint_text_is_sixteen_lower_case_hex_digits() {
    for bad in [
        "",
        "0123",
        "0123456789ABCDEF",
        "0123456789abcdeg",
        "+123456789abcdef",
    ] {
        let error = bad.parse::<Fingerprint>().unwrap_err();
        assert!(error.to_string().contains("16 lower-case"), "{error}");
    }
    assert_eq!(
        "00000000000000ff"
            .parse::<Fingerprint>()
            .map(Fingerprint::as_u64),
        Ok(255)
    );
}

#[test]
fn a_type_whose_deserialize_validates_is_a_typed_error() {
    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    struct Counted {
        count: std::num::NonZeroU32,
    }
    let error = EventSchema::of_type::<Counted>("counted", 1).unwrap_err();
    assert!(
        matches!(error, SchemaError::Untraceable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("Counted"), "{error}");
}

#[test]
fn every_variant_of_enums_nested_in_enums_and_containers_is_traced() {
    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    enum Inner {
        X,
        Y(u8),
        Z { deep: Option<Leaf> },
    }
    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    enum Leaf {
        L1,
        L2(i16),
    }
    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    enum Outer {
        A(Inner),
        B,
        C(Vec<Inner>),
    }
    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    struct Root {
        items: Option<Vec<Outer>>,
        last: Leaf,
    }
    assert_eq!(
        of::<Root>().shape,
        "struct { items: option<seq<Outer>>, last: Leaf }\n\
         enum Inner { 0 X, 1 Y(u8), 2 Z { deep: option<Leaf> } }\n\
         enum Leaf { 0 L1, 1 L2(i16) }\n\
         enum Outer { 0 A(Inner), 1 B, 2 C(seq<Inner>) }"
    );
}

#[test]
fn a_recursive_type_is_a_typed_error_not_a_hang() {
    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    struct Tree {
        children: Vec<Tree>,
    }
    let error = EventSchema::of_type::<Tree>("tree", 1).unwrap_err();
    assert!(error.to_string().contains("contains itself"), "{error}");
}
