//! Atomic persistence of small metadata files: write a temporary file, fsync it,
//! rename it over the old one, fsync the directory.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::embedded::StorageError;

/// Writes `value` as JSON to `path` atomically: a reader (or a restart after a crash)
/// sees either the old file or the new one, never a torn one. With `sync` the new
/// contents are also forced to stable storage before this returns.
pub(crate) fn write_json<T: Serialize>(
    path: &Path,
    value: &T,
    sync: bool,
) -> Result<(), StorageError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StorageError::Corrupt {
        path: path.to_owned(),
        position: 0,
        reason: format!("cannot serialize: {e}"),
    })?;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| StorageError::io("create", &tmp, e))?;
    file.write_all(&bytes)
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    if sync {
        file.sync_all()
            .map_err(|e| StorageError::io("fsync", &tmp, e))?;
    }
    drop(file);
    fs::rename(&tmp, path).map_err(|e| StorageError::io("rename", path, e))?;
    if sync {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Reads a JSON file written by [`write_json`]; `None` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StorageError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StorageError::Corrupt {
            path: path.to_owned(),
            position: e.column() as u64,
            reason: format!("invalid metadata: {e}"),
        })
}

/// fsyncs a directory so that renames and new files in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        write_json(&path, &vec![1u32, 2, 3], true).unwrap();
        write_json(&path, &vec![4u32], false).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![4]));
        assert!(!path.with_extension("tmp").exists());
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
