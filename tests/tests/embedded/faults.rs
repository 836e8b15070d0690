//! Write faults under the embedded broker: a read-only data directory and a full
//! disk. The public API answers with a typed error (never a panic), what is on disk
//! stays readable, the rest of the broker keeps serving, and once the fault is gone
//! writing goes on at the next offset (a failed write consumes none).
//!
//! The tests may run as root, where permission bits are not enforced: a read-only
//! directory is then made with `chattr +i` (immutable), and that test is skipped with
//! a printed reason only when neither works. A full disk is a 256 KiB tmpfs when
//! `mount` is allowed (skipped with a printed reason otherwise); the same write paths
//! are always tested through `/dev/full`, where every write fails with ENOSPC.
//! Damage done to a stopped broker's files is in `damage.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustok_iggy_connector::{
    ConnectorError, IggyConnector, OutgoingMessage, PollFrom, PublishRequest, StartPosition,
    StorageError, TopicName, TopicSpec,
};
use tests::faults::{
    connect, group, offsets, partition_dir, populated, publish, publish_range, segment, shutdown,
    snapshot, storage_io, walk,
};
use tests::{create_topic, names, within};

// ---- a read-only data directory ----------------------------------------------------

/// How files are made unwritable on this machine.
#[derive(Debug, Clone, Copy)]
enum ReadOnly {
    /// Permission bits (not running as root).
    Chmod,
    /// `chattr +i`: immutable, even for root.
    Immutable,
}

impl ReadOnly {
    /// Tries permission bits, then `chattr +i`, in a scratch directory.
    fn detect(scratch: &Path) -> Result<Self, String> {
        let probe = scratch.join("probe");
        fs::create_dir(&probe).unwrap();
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o500)).unwrap();
        let denied = fs::write(probe.join("x"), b"").is_err();
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o700)).unwrap();
        if denied {
            return Ok(Self::Chmod);
        }
        let immutable = Command::new("chattr").arg("+i").arg(&probe).status();
        if !immutable.is_ok_and(|s| s.success()) {
            return Err(
                "permission bits are not enforced here (running as root) and \
                        `chattr +i` is not available"
                    .to_owned(),
            );
        }
        let denied = fs::write(probe.join("y"), b"").is_err();
        Command::new("chattr")
            .arg("-i")
            .arg(&probe)
            .status()
            .unwrap();
        if denied {
            Ok(Self::Immutable)
        } else {
            Err(
                "neither permission bits nor `chattr +i` make a directory read-only here"
                    .to_owned(),
            )
        }
    }

    /// Makes the directories under `dir` (and, with `files`, the files too)
    /// unwritable until the guard is dropped.
    fn lock(self, dir: &Path, files: bool) -> Locked {
        let paths: Vec<PathBuf> = walk(dir)
            .into_iter()
            .filter(|p| !p.is_symlink() && (p.is_dir() || files))
            .collect();
        let mut locked = Locked {
            how: self,
            paths: Vec::new(),
        };
        for path in paths {
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            match self {
                Self::Chmod => {
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o555)).unwrap();
                }
                Self::Immutable => {
                    let status = Command::new("chattr")
                        .arg("+i")
                        .arg(&path)
                        .status()
                        .unwrap();
                    assert!(status.success(), "chattr +i {}", path.display());
                }
            }
            locked.paths.push((path, mode));
        }
        locked
    }
}

/// Restores what [`ReadOnly::lock`] changed, also when a test fails half-way (the
/// temporary directory could not be removed otherwise).
struct Locked {
    how: ReadOnly,
    paths: Vec<(PathBuf, u32)>,
}

impl Drop for Locked {
    fn drop(&mut self) {
        for (path, mode) in self.paths.drain(..).rev() {
            match self.how {
                ReadOnly::Chmod => {
                    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode));
                }
                ReadOnly::Immutable => {
                    let _ = Command::new("chattr").arg("-i").arg(&path).status();
                }
            }
        }
    }
}

#[tokio::test]
async fn a_read_only_data_directory_serves_reads_and_refuses_writes_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let how = match ReadOnly::detect(dir.path()) {
        Ok(how) => how,
        Err(reason) => {
            eprintln!("skipped: a read-only data directory cannot be made here: {reason}");
            return;
        }
    };
    let data = dir.path().join("data");
    let (stream, topic) = names("s", "t");
    let group = group();
    // Partition 0: segments 0, 4 and 8 (2 records); partition 1: 3 records.
    let connector = populated(&data, 10, 3).await;
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    member.commit(0, 4).await.unwrap();
    drop(member);
    shutdown(&connector).await;

    // Directories read-only, files still writable: the broker opens and reads.
    let locked = how.lock(&data, false);
    let connector = connect(&data)
        .await
        .expect("opens on a read-only directory");
    assert_eq!(offsets(&connector, 0).await, (0..10).collect::<Vec<_>>());
    assert_eq!(offsets(&connector, 1).await, vec![0, 1, 2]);
    // The active segment has room for 2 more records; the third needs a new segment
    // file, which cannot be created.
    publish_range(&connector, 0, 10..12).await;
    for _ in 0..2 {
        let err = publish(&connector, 0, 12).await.unwrap_err();
        let (op, path, _) =
            storage_io(&err).unwrap_or_else(|| panic!("a storage I/O error, got {err:?}"));
        assert_eq!(
            (op, path),
            ("open", segment(&data, 0, 12, "log").as_path()),
            "{err}"
        );
    }
    // The other partition keeps taking messages while its segment has room.
    publish_range(&connector, 1, 3..4).await;
    // A commit is an append to the offsets journal, an existing file: it works.
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    member.commit(0, 8).await.unwrap();
    let offsets_now = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(offsets_now, vec![Some(8), None]);
    // Topology changes need new files: typed errors, nothing half done.
    let other = TopicName::new("other").unwrap();
    let err = connector
        .ensure_topic(&TopicSpec::new(stream.clone(), other.clone(), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::Storage(_) | ConnectorError::Io { .. }),
        "{err:?}"
    );
    assert_eq!(connector.topic_info(&stream, &other).await.unwrap(), None);
    assert_eq!(offsets(&connector, 0).await, (0..12).collect::<Vec<_>>());

    // Writable again: the failed publishes consumed no offset.
    drop(locked);
    publish_range(&connector, 0, 12..13).await;
    member.commit(0, 9).await.unwrap();
    drop(member);
    shutdown(&connector).await;

    // Everything read-only: the broker cannot take the data directory's lock.
    let locked = how.lock(&data, true);
    let before = snapshot(&data);
    let err = connect(&data).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Io { .. } | ConnectorError::Storage(_)),
        "a typed I/O error, got {err:?}"
    );
    assert!(
        err.to_string().contains(&data.display().to_string()),
        "{err}"
    );
    drop(locked);
    assert_eq!(snapshot(&data), before, "a refused open changes nothing");
    let connector = connect(&data).await.unwrap();
    assert_eq!(offsets(&connector, 0).await, (0..13).collect::<Vec<_>>());
    assert_eq!(offsets(&connector, 1).await, vec![0, 1, 2, 3]);
    let committed = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(committed, vec![Some(9), None]);
    shutdown(&connector).await;
}

// ---- a full disk -------------------------------------------------------------------

/// A tmpfs of `size` mounted at `at`, unmounted on drop; `Err` with the reason when
/// `mount` is not allowed here.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        fs::create_dir_all(at).unwrap();
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if output.status.success() {
            Ok(Self(at.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn is_enospc(err: &ConnectorError) -> bool {
    storage_io(err).is_some_and(|(_, _, e)| e.raw_os_error() == Some(28))
}

/// ENOSPC, or a partition poisoned by an earlier ENOSPC (a failed index write or
/// fsync in the background poisons it like a failed fsync).
fn is_enospc_or_poisoned_by_it(err: &ConnectorError) -> bool {
    match err {
        ConnectorError::Storage(StorageError::Poisoned { cause, .. }) => matches!(
            &**cause,
            StorageError::Io { source, .. } if source.raw_os_error() == Some(28)
        ),
        _ => is_enospc(err),
    }
}

#[tokio::test]
async fn a_full_file_system_refuses_writes_and_keeps_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("small");
    let _tmpfs = match Tmpfs::mount(&mount_point, "256k") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            eprintln!(
                "skipped the tmpfs case (the /dev/full cases cover ENOSPC): mount failed: {reason}"
            );
            return;
        }
    };
    let data = mount_point.join("data");
    let (stream, topic) = names("s", "t");
    let group = group();
    let connector = populated(&data, 0, 0).await;
    // Room to free later, once the disk is full.
    fs::write(mount_point.join("ballast"), vec![0u8; 112 * 1024]).unwrap();

    let mut acked = 0u64;
    let full = loop {
        assert!(acked < 1000, "a 256 KiB file system never filled up");
        match publish(&connector, 0, acked).await {
            Ok(receipt) => {
                assert_eq!(receipt.base_offset, acked);
                acked += 1;
            }
            Err(err) => break err,
        }
    };
    assert!(
        is_enospc_or_poisoned_by_it(&full),
        "a typed ENOSPC, got {full:?}"
    );
    assert!(
        acked > 4,
        "some messages fit before the disk filled ({acked})"
    );
    assert_eq!(offsets(&connector, 0).await, (0..acked).collect::<Vec<_>>());
    let err = publish(&connector, 0, acked).await.unwrap_err();
    assert!(is_enospc_or_poisoned_by_it(&err), "still full: {err:?}");

    // Space freed: writing goes on at the next offset (after a reopen when a
    // background write or fsync failed and poisoned the partition).
    fs::remove_file(mount_point.join("ballast")).unwrap();
    // A background seal or fsync that ran while the disk was full may have poisoned
    // the partition after the last refused write: a flush says so either way.
    let poisoned = matches!(full, ConnectorError::Storage(StorageError::Poisoned { .. }))
        || matches!(err, ConnectorError::Storage(StorageError::Poisoned { .. }))
        || within("flush", connector.flush()).await.is_err();
    let connector = if poisoned {
        let _ = connector.shutdown().await;
        connect(&data).await.unwrap()
    } else {
        connector
    };
    publish_range(&connector, 0, acked..acked + 1).await;
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    member.commit(0, acked).await.unwrap();
    drop(member);
    shutdown(&connector).await;

    let connector = connect(&data).await.unwrap();
    assert_eq!(
        offsets(&connector, 0).await,
        (0..=acked).collect::<Vec<_>>()
    );
    let committed = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(committed[0], Some(acked));
    shutdown(&connector).await;
}

#[tokio::test]
async fn appends_wait_for_the_seal_of_the_segment_the_last_roll_closed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let connector = populated(&data, 0, 0).await;
    for n in 0..40 {
        publish_range(&connector, 0, n..n + 1).await;
        // Every segment closed before this append is sealed: at most the one its
        // roll closed awaits its seal, so seals never pile up and take the space
        // freed after a full disk.
        let unsealed: Vec<PathBuf> = fs::read_dir(partition_dir(&data, 0))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .filter(|p| !p.with_extension("seal").exists())
            .collect();
        assert!(
            unsealed.len() <= 2,
            "after offset {n}, unsealed: {unsealed:?}"
        );
    }
    shutdown(&connector).await;
}

#[tokio::test]
async fn a_write_error_in_a_segment_stops_only_that_partition() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let connector = populated(&data, 4, 2).await;
    // The next record of partition 0 starts segment 4: make its file the full disk.
    std::os::unix::fs::symlink("/dev/full", segment(&data, 0, 4, "log")).unwrap();

    let err = publish(&connector, 0, 4).await.unwrap_err();
    assert!(is_enospc(&err), "a typed ENOSPC, got {err:?}");
    // The failed write could not be cut off again (a device has no length), so the
    // partition refuses writes until the broker is reopened.
    let err = publish(&connector, 0, 4).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Storage(StorageError::Poisoned { .. })),
        "{err:?}"
    );
    assert!(!err.to_string().is_empty());
    assert_eq!(offsets(&connector, 0).await, vec![0, 1, 2, 3]);
    // Everything else works.
    publish_range(&connector, 1, 2..5).await;
    let (stream, topic) = names("s", "t");
    let group = group();
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let polled = within("group poll", member.poll(100)).await.unwrap();
    assert_eq!(polled.len(), 4 + 5);
    member.commit(0, 3).await.unwrap();
    member.commit(1, 4).await.unwrap();
    drop(member);
    // The final fsync of the device fails too: a typed error, not a panic.
    if let Err(err) = within("shutdown", connector.shutdown()).await {
        assert!(matches!(err, ConnectorError::Storage(_)), "{err:?}");
    }

    // The disk is replaced: the partition continues where the acknowledged data ends.
    fs::remove_file(segment(&data, 0, 4, "log")).unwrap();
    let connector = connect(&data).await.unwrap();
    assert_eq!(offsets(&connector, 0).await, vec![0, 1, 2, 3]);
    publish_range(&connector, 0, 4..6).await;
    assert_eq!(offsets(&connector, 1).await, (0..5).collect::<Vec<_>>());
    let committed = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(committed, vec![Some(3), Some(4)]);
    shutdown(&connector).await;
}

#[tokio::test]
async fn a_full_disk_while_committing_keeps_the_previous_offset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let connector = populated(&data, 3, 0).await;
    let (stream, topic) = names("s", "t");
    let group = group();
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    member.commit(0, 0).await.unwrap();
    drop(member);
    shutdown(&connector).await;
    // Commits are appended to the partition's offsets journal: make it the full
    // disk.
    let journals: Vec<PathBuf> = fs::read_dir(partition_dir(&data, 0))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    fs::remove_file(&journals[0]).unwrap();
    std::os::unix::fs::symlink("/dev/full", &journals[0]).unwrap();

    let connector = connect(&data).await.unwrap();
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let err = member.commit(0, 2).await.unwrap_err();
    assert!(is_enospc(&err), "a typed ENOSPC, got {err:?}");
    let committed = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(committed[0], Some(0), "the failed commit is not visible");
    // A device cannot be cut back: the journal refuses commits until reopened.
    let err = member.commit(0, 1).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Storage(StorageError::Poisoned { .. })),
        "{err:?}"
    );
    drop(member);
    assert!(within("shutdown", connector.shutdown()).await.is_err());

    fs::remove_file(&journals[0]).unwrap();
    let connector = connect(&data).await.unwrap();
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    assert_eq!(
        connector
            .committed_offsets(&stream, &topic, &group)
            .await
            .unwrap()[0],
        Some(0)
    );
    member.commit(0, 1).await.unwrap();
    drop(member);
    shutdown(&connector).await;

    let connector = connect(&data).await.unwrap();
    let committed = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(committed[0], Some(1));
    shutdown(&connector).await;
}

#[tokio::test]
async fn a_full_disk_while_creating_a_topic_or_group_leaves_nothing_half_made() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let connector = populated(&data, 2, 0).await;
    let (stream, topic) = names("s", "t");
    let other = TopicName::new("other").unwrap();
    let group = group();
    // Metadata is written to `metadata.tmp`, then renamed over `metadata.json`.
    let tmp = data.join("metadata.tmp");
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();

    let err = connector
        .ensure_topic(&TopicSpec::new(stream.clone(), other.clone(), 1))
        .await
        .unwrap_err();
    assert!(is_enospc(&err), "a typed ENOSPC, got {err:?}");
    // Not created: a publish to it would be acknowledged and then lost on restart.
    assert_eq!(connector.topic_info(&stream, &other).await.unwrap(), None);
    let err = connector
        .publish(
            PublishRequest::new(stream.clone(), other.clone())
                .message(OutgoingMessage::new(&b"x"[..])),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::TopicNotFound { .. }),
        "{err:?}"
    );
    let err = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .expect_err("joining a new group needs a metadata write");
    assert!(is_enospc(&err), "{err:?}");
    let err = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::GroupNotFound { .. }),
        "{err:?}"
    );
    // The existing topic is untouched.
    publish_range(&connector, 0, 2..3).await;

    fs::remove_file(&tmp).unwrap();
    create_topic(connector.as_ref(), &stream, &other, 1).await;
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    member.commit(0, 1).await.unwrap();
    drop(member);
    let receipt = connector
        .publish(
            PublishRequest::new(stream.clone(), other.clone())
                .message(OutgoingMessage::new(&b"x"[..])),
        )
        .await
        .unwrap();
    assert_eq!(receipt.base_offset, 0);
    shutdown(&connector).await;

    let connector = connect(&data).await.unwrap();
    let read = connector
        .poll(&stream, &other, 0, PollFrom::First, 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(offsets(&connector, 0).await, vec![0, 1, 2]);
    let committed = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(committed[0], Some(1));
    shutdown(&connector).await;
}
