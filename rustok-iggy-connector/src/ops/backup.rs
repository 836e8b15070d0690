//! Backup, restore and offline verification of an embedded data directory.
//!
//! A backup is itself a data directory (plus a `backup.json` manifest): open it
//! with a broker to read it, or put it in place with [`restore_data_dir`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::batch::now_micros;
use crate::embedded::broker::layout::{self, METADATA_FILE, PartitionLocation};
use crate::embedded::broker::persist;
use crate::embedded::broker::{self, OFFSETS_FILE};
use crate::embedded::storage::{self, CopyStats};
use crate::embedded::{EmbeddedConnector, VerifySummary};
use crate::error::ConnectorError;

const MANIFEST_FILE: &str = "backup.json";
const LOCK_FILE: &str = ".lock";
const USERS_FILE: &str = "users.json";

/// How a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackupMode {
    /// By the running broker ([`EmbeddedConnector::backup`]): one point in time
    /// for every partition, metadata and consumer offset.
    #[default]
    Snapshot,
    /// From a data directory no broker held ([`backup_data_dir`]): exactly its
    /// contents.
    Offline,
    /// From the files of a data directory a broker in another process was using
    /// ([`backup_data_dir`]): each partition is a prefix of its log as it was when
    /// it was read, what a crash at that moment would have left (a half-written
    /// record at its end is cut); partitions are read one after the other, so they
    /// are not from one point in time. Consumer offsets are never past the copied
    /// messages.
    Live,
}

/// What a backup wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupSummary {
    /// How it was taken.
    pub mode: BackupMode,
    /// Partitions copied.
    pub partitions: u32,
    /// Segment files copied.
    pub segments: u32,
    /// Bytes of segment data copied.
    pub bytes: u64,
    /// Messages in the backup.
    pub messages: u64,
    /// Per `stream/topic`, the next offset of each partition in the backup: every
    /// message below it is in the backup (for a snapshot, every message acknowledged
    /// before [`EmbeddedConnector::backup`] was called is below it).
    pub next_offsets: BTreeMap<String, Vec<u64>>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    format: u32,
    mode: BackupMode,
    created_at_micros: u64,
    source: &'a Path,
    next_offsets: &'a BTreeMap<String, Vec<u64>>,
}

impl EmbeddedConnector {
    /// Writes a consistent copy of the running broker's data directory to `dest` (a
    /// new directory; its parent must exist), while the broker keeps serving.
    ///
    /// The snapshot point is one instant for every partition: metadata changes and
    /// appends wait only while the length of each log is noted and its files are
    /// opened again (no data is copied then); the copy itself runs on a blocking
    /// thread afterwards, while publishing goes on. Everything acknowledged before
    /// this call is in the backup, with the metadata, users and consumer offsets of
    /// that instant. Retention deleting old segments meanwhile does not disturb the
    /// copy.
    ///
    /// The backup is written under a temporary name next to `dest` and renamed to
    /// `dest` once complete and fsynced, so `dest` either is a whole backup or does
    /// not exist. It is a data directory: open it with a broker, or
    /// [`restore_data_dir`] it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use rustok_iggy_connector::ops::verify_data_dir;
    /// use rustok_iggy_connector::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let connector = EmbeddedConnector::new();
    /// connector.connect(&ConnectorConfig::embedded(dir.path().join("data"))).await?;
    /// let (stream, topic) = (StreamName::new("shop")?, TopicName::new("orders")?);
    /// connector.ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 1)).await?;
    /// connector
    ///     .publish(PublishRequest::new(stream, topic).message(OutgoingMessage::new(&b"x"[..])))
    ///     .await?;
    ///
    /// let summary = connector.backup(dir.path().join("backup")).await?;
    /// assert_eq!(summary.next_offsets["shop/orders"], vec![1]);
    /// assert!(verify_data_dir(dir.path().join("backup"))?.is_clean());
    /// connector.shutdown().await?;
    /// # Ok::<(), ConnectorError>(()) }).unwrap();
    /// ```
    pub async fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupSummary, ConnectorError> {
        let dest = dest.as_ref().to_owned();
        let staging = staging_for(&dest)?;
        let broker = self.broker()?;
        let snapshot = broker.snapshot()?;
        let source = broker.data_dir().to_owned();
        tokio::task::spawn_blocking(move || {
            let mut summary = BackupSummary::default();
            for partition in &snapshot.partitions {
                summary
                    .next_offsets
                    .entry(format!("{}/{}", partition.stream, partition.topic))
                    .or_default()
                    .push(partition.next_offset());
            }
            let stats = snapshot.write_to(&staging)?;
            summary.partitions = snapshot.partitions.len() as u32;
            add(&mut summary, stats);
            finish(&staging, &dest, &source, &summary)?;
            Ok(summary)
        })
        .await
        .map_err(|e| ConnectorError::InvalidRequest(format!("the backup task failed: {e}")))?
    }
}

fn add(summary: &mut BackupSummary, stats: CopyStats) {
    summary.segments += stats.segments;
    summary.bytes += stats.bytes;
    summary.messages += stats.messages;
}

/// The temporary directory a backup (or a restore) to `dest` is written in.
fn staging_for(dest: &Path) -> Result<PathBuf, ConnectorError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(ConnectorError::InvalidRequest(format!(
            "{} exists; a backup or restore goes to a new directory",
            dest.display()
        )));
    }
    let name = dest.file_name().ok_or_else(|| {
        ConnectorError::InvalidRequest(format!("{} names no directory", dest.display()))
    })?;
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(ConnectorError::InvalidRequest(format!(
            "{} does not exist",
            parent.display()
        )));
    }
    let mut staging_name = std::ffi::OsString::from(".");
    staging_name.push(name);
    staging_name.push(".partial");
    let staging = parent.join(staging_name);
    // Left by an interrupted run.
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .map_err(|e| ConnectorError::io(format!("remove {}", staging.display()), e))?;
    }
    // Readable by the owner only, as a data directory is.
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| ConnectorError::io(format!("create {}", staging.display()), e))?;
    }
    Ok(staging)
}

/// Writes the manifest, fsyncs and renames `staging` to `dest`.
fn finish(
    staging: &Path,
    dest: &Path,
    source: &Path,
    summary: &BackupSummary,
) -> Result<(), ConnectorError> {
    let manifest = Manifest {
        format: 1,
        mode: summary.mode,
        created_at_micros: now_micros(),
        source,
        next_offsets: &summary.next_offsets,
    };
    persist::write_json(&staging.join(MANIFEST_FILE), &manifest)?;
    persist::sync_dir(staging)?;
    fs::rename(staging, dest).map_err(|e| {
        ConnectorError::io(
            format!("rename {} to {}", staging.display(), dest.display()),
            e,
        )
    })?;
    persist::sync_dir(dest.parent().unwrap_or(Path::new(".")))?;
    Ok(())
}

/// The data directory's lock: `Ok(Some(file))` held, `Ok(None)` when another
/// process's broker holds it. A directory without a lock file had no broker.
fn try_lock(root: &Path) -> Result<Option<Option<fs::File>>, ConnectorError> {
    let path = root.join(LOCK_FILE);
    let file = match fs::File::options().write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(None)),
        Err(e) => return Err(ConnectorError::io(format!("open {}", path.display()), e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(Some(file))),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => {
            Err(ConnectorError::io(format!("lock {}", path.display()), e))
        }
    }
}

fn layout_of(root: &Path) -> Result<Vec<PartitionLocation>, ConnectorError> {
    layout::layout(root)?.ok_or_else(|| {
        ConnectorError::config(
            "data_dir",
            format!(
                "{} is not an embedded data directory (no {METADATA_FILE})",
                root.display()
            ),
        )
    })
}

/// Backs up the data directory `data_dir` to `dest` (a new directory) by copying
/// its files, without opening a broker on it; for the command line
/// (`rustok-iggy-server backup`). In-process, prefer [`EmbeddedConnector::backup`].
///
/// - No broker holds `data_dir`: it is locked for the copy, which is exact
///   ([`BackupMode::Offline`]).
/// - A broker in another process holds it: each partition is copied as a prefix
///   of its log ([`BackupMode::Live`]: crash-consistent per partition; see there).
///
/// Either way the copy is opened once (its last record is cut if it was caught
/// half-written, indexes that do not match are rebuilt) and written under a
/// temporary name renamed to `dest` when complete.
pub fn backup_data_dir(
    data_dir: impl AsRef<Path>,
    dest: impl AsRef<Path>,
) -> Result<BackupSummary, ConnectorError> {
    let root = data_dir.as_ref();
    let dest = dest.as_ref();
    let layout = layout_of(root)?;
    let lock = try_lock(root)?;
    let staging = staging_for(dest)?;
    let mut summary = BackupSummary {
        mode: if lock.is_some() {
            BackupMode::Offline
        } else {
            BackupMode::Live
        },
        ..BackupSummary::default()
    };
    // The metadata first: partitions it names are copied; a topic created later is
    // not (its files are ignored).
    fs::create_dir_all(&staging)
        .map_err(|e| ConnectorError::io(format!("create {}", staging.display()), e))?;
    copy_small(&root.join(METADATA_FILE), &staging.join(METADATA_FILE))?;
    copy_small(&root.join(USERS_FILE), &staging.join(USERS_FILE))?;
    for location in &layout {
        let (from, to) = (
            root.join(&location.relative),
            staging.join(&location.relative),
        );
        // Offsets before data, so that no stored offset is past the copied messages.
        // The copy gets them compacted into one `offsets.json` (no journal).
        let offsets = broker::load_offsets(&from)?;
        let stats = storage::copy_live(&from, &to, location.partition)?;
        if let Some(offsets) = offsets {
            persist::write_json(
                &to.join(OFFSETS_FILE),
                &offsets.offsets_only(Some(&location.groups)),
            )?;
        }
        summary.partitions += 1;
        summary
            .next_offsets
            .entry(format!("{}/{}", location.stream, location.topic))
            .or_default()
            .push(stats.next_offset);
        add(&mut summary, stats);
    }
    finish(&staging, dest, root, &summary)?;
    drop(lock);
    Ok(summary)
}

/// The stored offsets without those of groups the copied metadata does not know
/// (created after it was read): a group created later with the same id must not
/// inherit them.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, ConnectorError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConnectorError::io(format!("read {}", path.display()), e)),
    }
}

/// Copies a small file (owner-only, fsynced) if it exists.
fn copy_small(from: &Path, to: &Path) -> Result<(), ConnectorError> {
    if let Some(bytes) = read_optional(from)? {
        layout::write_file(to, &bytes)?;
    }
    Ok(())
}

/// Checks every record of every partition of the data directory `data_dir` (both
/// checksum levels, partition and offset continuity) and that its metadata and
/// offset files parse, without changing anything; for the command line
/// (`rustok-iggy-server verify`) and backups. A directory a running broker holds is
/// refused ([`ConnectorError::DataDirInUse`]): use [`EmbeddedConnector::verify`] in
/// that process.
///
/// A record cut off at the end of a partition's last segment is reported too: a
/// crash cut the last write, and the broker cuts the record when it next opens the
/// directory.
pub fn verify_data_dir(data_dir: impl AsRef<Path>) -> Result<VerifySummary, ConnectorError> {
    let root = data_dir.as_ref();
    let layout = layout_of(root)?;
    let Some(_lock) = try_lock(root)? else {
        return Err(ConnectorError::DataDirInUse {
            path: root.to_owned(),
        });
    };
    let mut summary = VerifySummary::default();
    if let Err(e) = persist::read_json::<serde_json::Value>(&root.join(USERS_FILE)) {
        summary.damage.push(format!("{USERS_FILE}: {e}"));
    }
    for location in &layout {
        let dir = root.join(&location.relative);
        let name = format!(
            "{}/{} partition {}",
            location.stream, location.topic, location.partition
        );
        summary.partitions += 1;
        if !dir.is_dir() {
            summary.damage.push(format!(
                "{name}: its directory {} is missing",
                dir.display()
            ));
            continue;
        }
        let report = storage::verify_dir(&dir, location.partition)?;
        summary.segments += report.segments;
        summary.records += report.records;
        summary.messages += report.messages;
        for damage in report.damage {
            summary.damage.push(format!(
                "{name}: {} at byte {}: {}",
                damage.path.display(),
                damage.position,
                damage.kind
            ));
        }
        if let Err(e) = broker::load_offsets(&dir) {
            summary.damage.push(format!("{name}: {e}"));
        }
    }
    Ok(summary)
}

/// Puts the backup `backup` in place as the data directory `data_dir` (which must
/// not exist): verifies every record of the backup first (a damaged backup is
/// refused, with the damage), then copies it under a temporary name renamed to
/// `data_dir` when complete and fsynced. Start the broker on `data_dir` afterwards.
pub fn restore_data_dir(
    backup: impl AsRef<Path>,
    data_dir: impl AsRef<Path>,
) -> Result<VerifySummary, ConnectorError> {
    let (backup, target) = (backup.as_ref(), data_dir.as_ref());
    let summary = verify_data_dir(backup)?;
    if !summary.is_clean() {
        return Err(ConnectorError::InvalidRequest(format!(
            "the backup {} is damaged, not restored: {}",
            backup.display(),
            summary.damage.join("; ")
        )));
    }
    let staging = staging_for(target)?;
    copy_tree(backup, &staging)?;
    fs::rename(&staging, target).map_err(|e| {
        ConnectorError::io(
            format!("rename {} to {}", staging.display(), target.display()),
            e,
        )
    })?;
    persist::sync_dir(target.parent().unwrap_or(Path::new(".")))?;
    Ok(summary)
}

/// Copies the directory tree `from` into `to` (created), every file and directory
/// fsynced; the lock file is not copied.
fn copy_tree(from: &Path, to: &Path) -> Result<(), ConnectorError> {
    fs::create_dir_all(to)
        .map_err(|e| ConnectorError::io(format!("create {}", to.display()), e))?;
    let entries = fs::read_dir(from)
        .map_err(|e| ConnectorError::io(format!("list {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ConnectorError::io(format!("list {}", from.display()), e))?;
        let name = entry.file_name();
        if name == LOCK_FILE {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| ConnectorError::io(format!("stat {}", entry.path().display()), e))?;
        let target = to.join(&name);
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)
                .map_err(|e| ConnectorError::io(format!("copy {}", entry.path().display()), e))?;
            fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(|e| ConnectorError::io(format!("fsync {}", target.display()), e))?;
        }
    }
    persist::sync_dir(to)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let err = staging_for(dir.path()).unwrap_err();
        assert!(err.to_string().contains("exists"), "{err}");
        let staging = staging_for(&dir.path().join("b")).unwrap();
        assert_eq!(staging, dir.path().join(".b.partial"));
        assert!(staging.is_dir());
        // A leftover of an interrupted run is replaced.
        fs::write(staging.join("junk"), b"x").unwrap();
        let again = staging_for(&dir.path().join("b")).unwrap();
        assert!(!again.join("junk").exists());
    }
}
