//! The schema lock file: `check_lock` fails when a type changed without a version
//! bump or an old version changed, records new versions on request, and accepts an
//! enum variant added at the end only when declared compatible.

use rustok_iggy::IggyEvent;
use rustok_iggy::schema::{
    Fingerprint, LockError, LockMismatch, LockMode, SchemaLock, TypeSchemas, check_lock_with,
    schemas,
};
use serde::{Deserialize, Serialize};

mod v1 {
    use super::*;

    #[derive(Serialize, Deserialize, IggyEvent)]
    #[iggy(topic = "orders", event_type = "order", codec = "postcard")]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) status: Status,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) enum Status {
        Open,
        Closed,
    }
}

/// Version 1 with a field retyped and no version bump.
mod changed {
    use super::*;

    #[derive(Serialize, Deserialize, IggyEvent)]
    #[iggy(topic = "orders", event_type = "order", codec = "postcard")]
    pub(super) struct Order {
        pub(super) quantity: i32,
        pub(super) status: v1::Status,
    }
}

/// Version 2: a new optional field; version 1 stays readable as `OrderV1`.
mod v2 {
    use super::*;

    #[derive(Serialize, Deserialize, IggyEvent)]
    #[iggy(
        topic = "orders",
        event_type = "order",
        codec = "postcard",
        version = 2
    )]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) status: v1::Status,
        pub(super) note: Option<String>,
    }

    /// The type an upcaster reads version 1 with: renamed, same shape.
    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) struct OrderV1 {
        pub(super) quantity: u32,
        pub(super) status: v1::Status,
    }

    /// A copy of version 1 that drifted (a field renamed).
    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only the shape is traced")]
    pub(super) struct DriftedV1 {
        pub(super) amount: u32,
        pub(super) status: v1::Status,
    }
}

/// Version 1 with a variant added at the end of `Status`, declared compatible.
mod appended {
    use super::*;

    #[derive(Serialize, Deserialize, IggyEvent)]
    #[iggy(
        topic = "orders",
        event_type = "order",
        codec = "postcard",
        compatible_with = ["35787d1d5f555d5c"]
    )]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) status: Status,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) enum Status {
        Open,
        Closed,
        Cancelled,
    }
}

/// Version 1 with a variant inserted in the middle, wrongly declared compatible.
mod inserted {
    use super::*;

    #[derive(Serialize, Deserialize, IggyEvent)]
    #[iggy(
        topic = "orders",
        event_type = "order",
        codec = "postcard",
        compatible_with = ["35787d1d5f555d5c"]
    )]
    pub(super) struct Order {
        pub(super) quantity: u32,
        pub(super) status: Status,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) enum Status {
        Open,
        Cancelled,
        Closed,
    }
}

fn fingerprint<E: IggyEvent>() -> Fingerprint {
    schemas::<E>().unwrap()[0].fingerprint
}

fn mismatches(error: LockError) -> Vec<LockMismatch> {
    match error {
        LockError::Mismatches { mismatches, .. } => mismatches,
        other => panic!("expected mismatches, got {other:?}"),
    }
}

/// A lock file holding version 1 of `order`.
fn locked_v1() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iggy-schemas.lock");
    check_lock_with(
        &path,
        &[TypeSchemas::current::<v1::Order>()],
        LockMode::Update,
    )
    .unwrap();
    (dir, path)
}

#[test]
fn the_version_1_fingerprint_is_the_one_declared_compatible_below() {
    assert_eq!(fingerprint::<v1::Order>().to_string(), "35787d1d5f555d5c");
}

#[test]
fn a_new_version_is_unrecorded_until_updated_and_then_readable_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iggy-schemas.lock");
    let types = [TypeSchemas::current::<v1::Order>()];
    let found = mismatches(check_lock_with(&path, &types, LockMode::Check).unwrap_err());
    assert_eq!(
        found,
        [LockMismatch::Unrecorded {
            event_type: "order".into(),
            version: 1,
            fingerprint: fingerprint::<v1::Order>(),
        }]
    );
    assert!(
        found[0].to_string().contains("UPDATE_SCHEMAS=1"),
        "{}",
        found[0]
    );
    assert!(!path.exists(), "a check writes nothing");

    let report = check_lock_with(&path, &types, LockMode::Update).unwrap();
    assert_eq!(report.recorded, [("order".to_owned(), 1)]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("event_type = \"order\""), "{text}");
    assert!(
        text.contains("fingerprint = \"35787d1d5f555d5c\""),
        "{text}"
    );
    assert!(
        text.contains("struct { quantity: u32, status: Status }"),
        "{text}"
    );
    assert!(text.contains("enum Status { 0 Open, 1 Closed }"), "{text}");
    let report = check_lock_with(&path, &types, LockMode::Check).unwrap();
    assert_eq!((report.recorded.len(), report.unchanged), (0, 1));
    assert_eq!(
        SchemaLock::read(&path)
            .unwrap()
            .get("order", 1)
            .unwrap()
            .fingerprint,
        fingerprint::<v1::Order>()
    );
}

#[test]
fn a_change_without_a_version_bump_fails_even_in_update_mode() {
    let (_dir, path) = locked_v1();
    let before = std::fs::read_to_string(&path).unwrap();
    for mode in [LockMode::Check, LockMode::Update] {
        let error =
            check_lock_with(&path, &[TypeSchemas::current::<changed::Order>()], mode).unwrap_err();
        let text = error.to_string();
        let found = mismatches(error);
        match &found[..] {
            [LockMismatch::ChangedWithoutVersionBump(changed)] => {
                assert_eq!((changed.event_type.as_str(), changed.version), ("order", 1));
                assert_eq!(changed.locked, fingerprint::<v1::Order>());
                assert_eq!(changed.current, fingerprint::<changed::Order>());
            }
            other => panic!("expected a change without a version bump, got {other:?}"),
        }
        assert!(text.contains("quantity: i32"), "{text}");
        assert!(text.contains("bump `version`"), "{text}");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

#[test]
fn a_version_bump_with_an_optional_field_is_recorded_and_the_old_type_is_checked() {
    let (_dir, path) = locked_v1();
    let types = [
        TypeSchemas::current::<v2::Order>(),
        TypeSchemas::old::<v2::OrderV1>("order", 1),
    ];
    let report = check_lock_with(&path, &types, LockMode::Update).unwrap();
    assert_eq!(report.recorded, [("order".to_owned(), 2)]);
    assert_eq!(
        report.unchanged, 1,
        "the renamed old type has version 1's shape"
    );
    let lock = SchemaLock::read(&path).unwrap();
    assert_eq!(lock.schemas().len(), 2);

    // The old version's type drifted: its recorded fingerprint no longer matches.
    let drifted = [
        TypeSchemas::current::<v2::Order>(),
        TypeSchemas::old::<v2::DriftedV1>("order", 1),
    ];
    let found = mismatches(check_lock_with(&path, &drifted, LockMode::Update).unwrap_err());
    match &found[..] {
        [LockMismatch::OldVersionChanged(changed)] => {
            assert_eq!(changed.version, 1);
            assert_eq!(changed.locked, fingerprint::<v1::Order>());
        }
        other => panic!("expected an old version changed, got {other:?}"),
    }
}

#[test]
fn a_variant_added_at_the_end_and_declared_compatible_is_recorded_with_the_old_fingerprint() {
    let (_dir, path) = locked_v1();
    let types = [TypeSchemas::current::<appended::Order>()];
    let found = mismatches(check_lock_with(&path, &types, LockMode::Check).unwrap_err());
    assert!(
        matches!(&found[..], [LockMismatch::Unrecorded { version: 1, .. }]),
        "{found:?}"
    );
    check_lock_with(&path, &types, LockMode::Update).unwrap();
    let lock = SchemaLock::read(&path).unwrap();
    let entry = lock.get("order", 1).unwrap();
    assert_eq!(entry.fingerprint, fingerprint::<appended::Order>());
    assert_eq!(entry.accepts, [fingerprint::<v1::Order>()]);
    assert!(entry.reads(fingerprint::<v1::Order>()));
    check_lock_with(&path, &types, LockMode::Check).unwrap();
    // The old shape stays accepted: producers not yet upgraded keep publishing it.
    check_lock_with(
        &path,
        &[TypeSchemas::current::<v1::Order>()],
        LockMode::Check,
    )
    .unwrap();
}

#[test]
fn a_variant_inserted_in_the_middle_is_refused_even_when_declared_compatible() {
    let (_dir, path) = locked_v1();
    let found = mismatches(
        check_lock_with(
            &path,
            &[TypeSchemas::current::<inserted::Order>()],
            LockMode::Update,
        )
        .unwrap_err(),
    );
    assert_eq!(
        found,
        [LockMismatch::NotCompatible {
            event_type: "order".into(),
            version: 1,
            locked: fingerprint::<v1::Order>(),
            current: fingerprint::<inserted::Order>(),
        }]
    );
}

#[test]
fn a_damaged_lock_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iggy-schemas.lock");
    std::fs::write(
        &path,
        "[[schema]]\nevent_type = \"order\"\nversion = 1\nfingerprint = \"xyz\"\nshape = \"\"\n",
    )
    .unwrap();
    let error = check_lock_with(
        &path,
        &[TypeSchemas::current::<v1::Order>()],
        LockMode::Check,
    )
    .unwrap_err();
    assert!(matches!(error, LockError::Parse { .. }), "{error:?}");
    assert!(error.to_string().contains("is not valid"), "{error}");
}

#[test]
fn enum_events_have_one_fingerprint_per_variant_and_appending_keeps_the_others() {
    mod before {
        use super::*;

        #[derive(Serialize, Deserialize, IggyEvent)]
        #[iggy(topic = "shipments", codec = "postcard")]
        pub(super) enum Shipment {
            Dispatched { carrier: String },
            Delivered { at: u64 },
        }
    }
    mod after {
        use super::*;

        #[derive(Serialize, Deserialize, IggyEvent)]
        #[iggy(topic = "shipments", codec = "postcard")]
        pub(super) enum Shipment {
            Dispatched { carrier: String },
            Delivered { at: u64 },
            Lost,
        }
    }
    let before = schemas::<before::Shipment>().unwrap();
    let after = schemas::<after::Shipment>().unwrap();
    assert_eq!(before[0].shape, "variant 0 Dispatched { carrier: str }");
    assert_eq!(before[1].shape, "variant 1 Delivered { at: u64 }");
    assert_ne!(before[0].fingerprint, before[1].fingerprint);
    assert_eq!(before[0], after[0]);
    assert_eq!(before[1], after[1]);
    assert_eq!(after[2].event_type, "shipment.lost");
}
