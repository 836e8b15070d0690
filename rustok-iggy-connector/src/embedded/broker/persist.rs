//! Atomic persistence of small metadata files: write a temporary file, fsync it,
//! rename it over the old one, fsync the directory. The files are readable and
//! writable by the owner only (mode 0o600): `users.json` holds password hashes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::embedded::StorageError;
use crate::embedded::storage::Disk;

/// Writes `value` as JSON to `path` atomically and durably: a reader (or a restart
/// after a crash or a power loss) sees either the old file or the new one, never a
/// torn or empty one. The temporary file is fsynced before the rename, and the
/// directory after it, whatever the durability policy of the partitions.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StorageError> {
    write_json_on(Disk::plain(), path, value)
}

/// [`write_json`], with the fsyncs made (and counted) by `disk`.
pub(crate) fn write_json_on<T: Serialize>(
    disk: &Disk,
    path: &Path,
    value: &T,
) -> Result<(), StorageError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StorageError::Corrupt {
        path: path.to_owned(),
        position: 0,
        reason: format!("cannot serialize: {e}"),
    })?;
    let tmp = path.with_extension("tmp");
    let mut file = create_private(&tmp).map_err(|e| StorageError::io("create", &tmp, e))?;
    file.write_all(&bytes)
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    disk.sync_all(&file, &tmp)?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| StorageError::io("rename", path, e))?;
    disk.sync_dir(parent(path))
}

/// The directory of `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Opens `path` for writing like `File::create`, creating it with mode 0o600. (A
/// file that already exists keeps its mode; the temporary files are created here,
/// so they are 0o600 too, and renaming one over an older, looser file replaces
/// that file's mode as well.)
fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Reads a JSON file written by [`write_json`]; `None` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StorageError> {
    let Some(bytes) = read_bounded(path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StorageError::Corrupt {
            path: path.to_owned(),
            position: e.column() as u64,
            reason: format!("invalid metadata: {e}"),
        })
}

/// The bytes of the file at `path`, as many as its length says (a device or a
/// file that grows is not read without end); `None` when it does not exist.
pub(crate) fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    use std::io::Read;
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| StorageError::io("stat", path, e))?
        .len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 20));
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| StorageError::io("read", path, e))?;
    Ok(Some(bytes))
}

/// fsyncs a directory so that renames and new files in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    Disk::plain().sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        write_json(&path, &vec![1u32, 2, 3]).unwrap();
        write_json(&path, &vec![4u32]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![4]));
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn files_are_owner_only_and_tighten_older_ones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        write_json(&path, &vec![1u32]).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        // A file written by an older version, readable by everyone.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_json(&path, &vec![2u32]).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![2]));
    }

    #[test]
    fn corrupt_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            read_json::<Vec<u32>>(&path),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
