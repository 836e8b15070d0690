//! The lock file of published schemas (`iggy-schemas.lock`) and the check against it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::event_schema::{EventSchema, schemas};
use super::fingerprint::Fingerprint;
use super::shape::{SchemaError, only_appends_variants};
use crate::event_impl::IggyEvent;

/// The environment variable that makes [`check_lock`] record new schemas in the lock
/// file instead of failing (`UPDATE_SCHEMAS=1`).
pub const UPDATE_ENV: &str = "UPDATE_SCHEMAS";

const LOCK_HEADER: &str = "\
# The published schemas of this project's events: one entry per event type and
# version, with the fingerprint of its serde shape (see rustok_iggy::schema).
# Written by rustok_iggy::schema::check_lock with UPDATE_SCHEMAS=1; commit it.
# A fingerprint that changes here in a review is a change of the wire format.
";

/// One event type and version recorded in a [`SchemaLock`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LockedSchema {
    /// The event type.
    pub event_type: String,
    /// The schema version.
    pub version: u32,
    /// The fingerprint its producers write.
    #[serde(with = "fingerprint_text")]
    pub fingerprint: Fingerprint,
    /// Earlier fingerprints of the same version that the recorded shape still reads
    /// (declared compatible and checked to only add enum variants at the end).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "fingerprints_text"
    )]
    pub accepts: Vec<Fingerprint>,
    /// The canonical shape ([`EventSchema::shape`]).
    pub shape: String,
}

impl LockedSchema {
    /// Whether a message written with `fingerprint` matches this entry: its fingerprint
    /// or one it accepts.
    #[must_use]
    pub fn reads(&self, fingerprint: Fingerprint) -> bool {
        self.fingerprint == fingerprint || self.accepts.contains(&fingerprint)
    }
}

/// The contents of a lock file: the recorded schemas, sorted by event type and version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaLock {
    #[serde(default, rename = "schema")]
    schemas: Vec<LockedSchema>,
}

impl SchemaLock {
    /// Reads and parses the lock file at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, LockError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|source| LockError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses the text of a lock file.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        let mut lock: Self = toml::from_str(text)?;
        lock.sort();
        Ok(lock)
    }

    /// The text of the lock file.
    #[must_use]
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!("{LOCK_HEADER}\n{body}")
    }

    /// Writes the lock file (to a temporary file next to it, then renamed over it).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), LockError> {
        let path = path.as_ref();
        let io_error = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        std::fs::write(&temporary, self.to_text()).map_err(io_error)?;
        std::fs::rename(&temporary, path).map_err(io_error)
    }

    /// The recorded schemas.
    #[must_use]
    pub fn schemas(&self) -> &[LockedSchema] {
        &self.schemas
    }

    /// The entry of `event_type` at `version`.
    #[must_use]
    pub fn get(&self, event_type: &str, version: u32) -> Option<&LockedSchema> {
        self.schemas
            .iter()
            .find(|entry| entry.event_type == event_type && entry.version == version)
    }

    fn get_mut(&mut self, event_type: &str, version: u32) -> Option<&mut LockedSchema> {
        self.schemas
            .iter_mut()
            .find(|entry| entry.event_type == event_type && entry.version == version)
    }

    fn sort(&mut self) {
        self.schemas
            .sort_by(|a, b| (&a.event_type, a.version).cmp(&(&b.event_type, b.version)));
    }
}

/// What [`check_lock_with`] does with a schema the lock file does not record yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockMode {
    /// Fail with [`LockMismatch::Unrecorded`]: in CI, the lock file must be committed.
    Check,
    /// Record it and write the lock file. Changed fingerprints of recorded versions
    /// still fail: updating never hides a change without a version bump.
    Update,
}

/// The schemas of one Rust type to check against the lock file: the current version
/// of an [`IggyEvent`] ([`TypeSchemas::current`]) or a type kept for an older version
/// ([`TypeSchemas::old`]).
#[derive(Debug)]
pub struct TypeSchemas {
    schemas: Result<Vec<EventSchema>, SchemaError>,
    old: bool,
}

impl TypeSchemas {
    /// Every event type of `E` at its current version.
    #[must_use]
    pub fn current<E: IggyEvent>() -> Self {
        Self {
            schemas: schemas::<E>().map(<[EventSchema]>::to_vec),
            old: false,
        }
    }

    /// The Rust type `T` that reads `event_type` at an older `version` (the type an
    /// upcaster decodes): its recorded fingerprint must never change.
    #[must_use]
    pub fn old<T: DeserializeOwned>(event_type: &str, version: u32) -> Self {
        Self {
            schemas: EventSchema::of_type::<T>(event_type, version).map(|schema| vec![schema]),
            old: true,
        }
    }
}

/// Checks `types` against the lock file at `path`; with the environment variable
/// `UPDATE_SCHEMAS=1` ([`UPDATE_ENV`]), records new versions in it (see
/// [`check_lock_with`]). Call it from a test of your own:
///
/// ```
/// use rustok_iggy::prelude::*;
/// use rustok_iggy::schema::{LockMode, TypeSchemas, check_lock_with};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, IggyEvent)]
/// #[iggy(topic = "orders", codec = "postcard")]
/// struct OrderPlaced { order_id: u64 }
///
/// let dir = tempfile::tempdir()?;
/// let lock = dir.path().join("iggy-schemas.lock");
/// let types = [TypeSchemas::current::<OrderPlaced>()];
/// // In a real project: `check_lock("iggy-schemas.lock", &types)` in a test, and
/// // `UPDATE_SCHEMAS=1 cargo test` once to record a new version.
/// assert!(check_lock_with(&lock, &types, LockMode::Check).is_err());
/// check_lock_with(&lock, &types, LockMode::Update)?;
/// check_lock_with(&lock, &types, LockMode::Check)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_lock(path: impl AsRef<Path>, types: &[TypeSchemas]) -> Result<LockReport, LockError> {
    let update = std::env::var(UPDATE_ENV).is_ok_and(|value| value == "1");
    let mode = if update {
        LockMode::Update
    } else {
        LockMode::Check
    };
    check_lock_with(path, types, mode)
}

/// Checks `types` against the lock file at `path`.
///
/// For each event type and version:
/// - not in the lock: [`LockMismatch::Unrecorded`], or with [`LockMode::Update`]
///   recorded;
/// - in the lock with the same fingerprint: fine;
/// - in the lock with another fingerprint: [`LockMismatch::ChangedWithoutVersionBump`]
///   (a current version) or [`LockMismatch::OldVersionChanged`] (an old one), whatever
///   the mode, unless the type declares the recorded fingerprint in
///   `#[iggy(compatible_with = [...])]` and the change only adds enum variants at the
///   end: then it is recorded (the old fingerprint kept as accepted) in update mode, and
///   [`LockMismatch::Unrecorded`] otherwise. A declaration that does not hold is
///   [`LockMismatch::NotCompatible`].
///
/// Entries of the lock that `types` do not mention are kept. A missing lock file is an
/// empty one.
pub fn check_lock_with(
    path: impl AsRef<Path>,
    types: &[TypeSchemas],
    mode: LockMode,
) -> Result<LockReport, LockError> {
    let path = path.as_ref();
    let mut lock = match SchemaLock::read(path) {
        Ok(lock) => lock,
        Err(LockError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            SchemaLock::default()
        }
        Err(error) => return Err(error),
    };
    let mut report = LockReport::default();
    let mut mismatches = Vec::new();
    for entry in types {
        let schemas = entry.schemas.as_ref().map_err(Clone::clone)?;
        for schema in schemas {
            check_one(
                &mut lock,
                schema,
                entry.old,
                mode,
                &mut report,
                &mut mismatches,
            );
        }
    }
    if !mismatches.is_empty() {
        return Err(LockError::Mismatches {
            path: path.to_owned(),
            mismatches,
        });
    }
    if !report.recorded.is_empty() {
        lock.sort();
        lock.write(path)?;
    }
    Ok(report)
}

fn check_one(
    lock: &mut SchemaLock,
    schema: &EventSchema,
    old: bool,
    mode: LockMode,
    report: &mut LockReport,
    mismatches: &mut Vec<LockMismatch>,
) {
    let event_type = schema.event_type.clone();
    let version = schema.version;
    let Some(locked) = lock.get_mut(&event_type, version) else {
        match mode {
            LockMode::Update => {
                lock.schemas.push(LockedSchema {
                    event_type: event_type.clone(),
                    version,
                    fingerprint: schema.fingerprint,
                    accepts: Vec::new(),
                    shape: schema.shape.clone(),
                });
                report.recorded.push((event_type, version));
            }
            LockMode::Check => mismatches.push(LockMismatch::Unrecorded {
                event_type,
                version,
                fingerprint: schema.fingerprint,
            }),
        }
        return;
    };
    if locked.reads(schema.fingerprint) {
        report.unchanged += 1;
        return;
    }
    if schema.compatible_with.contains(&locked.fingerprint) {
        if !only_appends_variants(&locked.shape, &schema.shape) {
            mismatches.push(LockMismatch::NotCompatible {
                event_type,
                version,
                locked: locked.fingerprint,
                current: schema.fingerprint,
            });
            return;
        }
        match mode {
            LockMode::Update => {
                let previous = std::mem::replace(&mut locked.fingerprint, schema.fingerprint);
                locked.accepts.push(previous);
                locked.shape.clone_from(&schema.shape);
                report.recorded.push((event_type, version));
            }
            LockMode::Check => mismatches.push(LockMismatch::Unrecorded {
                event_type,
                version,
                fingerprint: schema.fingerprint,
            }),
        }
        return;
    }
    let changed = Changed {
        event_type,
        version,
        locked: locked.fingerprint,
        current: schema.fingerprint,
        locked_shape: locked.shape.clone(),
        current_shape: schema.shape.clone(),
    };
    mismatches.push(if old {
        LockMismatch::OldVersionChanged(changed)
    } else {
        LockMismatch::ChangedWithoutVersionBump(changed)
    });
}

/// What [`check_lock`] did when it succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockReport {
    /// Event types and versions it recorded (update mode).
    pub recorded: Vec<(String, u32)>,
    /// How many matched the lock.
    pub unchanged: usize,
}

/// A recorded event type and version whose shape changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Changed {
    /// The event type.
    pub event_type: String,
    /// The version.
    pub version: u32,
    /// The fingerprint in the lock.
    pub locked: Fingerprint,
    /// The fingerprint of the type now.
    pub current: Fingerprint,
    /// The shape in the lock.
    pub locked_shape: String,
    /// The shape of the type now.
    pub current_shape: String,
}

/// One way the types differ from the lock file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockMismatch {
    /// The shape of a current version changed, and its version did not: messages
    /// already published would decode into wrong values (or fail).
    #[error(
        "event type {:?} version {} changed without a version bump: the lock has \
         fingerprint {}, the type now has {}; bump `version` and register an upcaster for \
         the old one (or revert)\n  locked:  {}\n  current: {}",
        .0.event_type, .0.version, .0.locked, .0.current,
        indent(&.0.locked_shape), indent(&.0.current_shape)
    )]
    ChangedWithoutVersionBump(Changed),
    /// The type kept for an older version changed: it no longer reads what that
    /// version's producers wrote.
    #[error(
        "old version {} of event type {:?} changed: the lock has fingerprint {}, its type \
         now has {}; restore the old type\n  locked:  {}\n  current: {}",
        .0.version, .0.event_type, .0.locked, .0.current,
        indent(&.0.locked_shape), indent(&.0.current_shape)
    )]
    OldVersionChanged(Changed),
    /// The lock file does not record this version (or this compatible change) yet.
    #[error(
        "event type {event_type:?} version {version} (fingerprint {fingerprint}) is not in \
         the lock file; run the test once with UPDATE_SCHEMAS=1 and commit the lock file"
    )]
    Unrecorded {
        /// The event type.
        event_type: String,
        /// The version.
        version: u32,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// The type declares the recorded fingerprint compatible, but the change is more
    /// than enum variants added at the end.
    #[error(
        "event type {event_type:?} version {version} declares fingerprint {locked} \
         compatible, but its shape ({current}) does more than add enum variants at the \
         end; bump `version` instead"
    )]
    NotCompatible {
        /// The event type.
        event_type: String,
        /// The version.
        version: u32,
        /// The fingerprint in the lock.
        locked: Fingerprint,
        /// The fingerprint of the type now.
        current: Fingerprint,
    },
}

fn indent(shape: &str) -> String {
    shape.replace('\n', "\n           ")
}

/// Why [`check_lock`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The types differ from the lock file.
    #[error("{} schema(s) differ from the lock file {}:{}", mismatches.len(), path.display(), list(mismatches))]
    Mismatches {
        /// The lock file.
        path: PathBuf,
        /// Each difference.
        mismatches: Vec<LockMismatch>,
    },
    /// The lock file could not be read or written.
    #[error("cannot access the lock file {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The lock file is not valid.
    #[error("the lock file {} is not valid", path.display())]
    Parse {
        /// The lock file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A type's shape could not be traced.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

impl LockError {
    /// The differences, for [`LockError::Mismatches`].
    #[must_use]
    pub fn mismatches(&self) -> &[LockMismatch] {
        match self {
            Self::Mismatches { mismatches, .. } => mismatches,
            _ => &[],
        }
    }
}

fn list(mismatches: &[LockMismatch]) -> String {
    mismatches.iter().fold(String::new(), |mut out, mismatch| {
        use fmt::Write as _;
        let _ = write!(out, "\n- {mismatch}");
        out
    })
}

mod fingerprint_text {
    use super::{Deserialize, Deserializer, Fingerprint, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

mod fingerprints_text {
    use super::{Deserialize, Deserializer, Fingerprint, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        values: &[Fingerprint],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let texts: Vec<String> = values.iter().map(ToString::to_string).collect();
        texts.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Fingerprint>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| text.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}
