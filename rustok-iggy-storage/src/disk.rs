//! The one way the storage forces data to stable storage: [`Disk`], which counts
//! every fsync and carries the fault-injection seam (a delay before each one).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::StorageError;

/// How the storage fsyncs: shared by every log and journal of a broker.
///
/// Fault injection: with a `fault_delay`, every fsync first sleeps that long on the
/// thread that makes it, as a slow disk would (drills, tests and benchmarks; zero
/// in production).
#[derive(Debug, Default)]
pub struct Disk {
    fault_delay: Duration,
    fsyncs: AtomicU64,
}

impl Disk {
    /// A disk without fault injection, for files written outside a broker's
    /// storage (users, backups, progress files). Its count is not reported.
    pub fn plain() -> &'static Self {
        static PLAIN: Disk = Disk {
            fault_delay: Duration::ZERO,
            fsyncs: AtomicU64::new(0),
        };
        &PLAIN
    }

    /// A disk whose fsyncs first sleep `fault_delay` (zero: no delay).
    pub fn new(fault_delay: Duration) -> Self {
        Self {
            fault_delay,
            fsyncs: AtomicU64::new(0),
        }
    }

    /// fsyncs (and fdatasyncs) made so far, directories included.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    fn before(&self) {
        if !self.fault_delay.is_zero() {
            std::thread::sleep(self.fault_delay);
        }
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// fdatasync: the file's data and the metadata needed to read it back.
    pub fn sync_data(&self, file: &File, path: &Path) -> Result<(), StorageError> {
        self.before();
        file.sync_data()
            .map_err(|e| StorageError::io("fsync", path, e))
    }

    /// fsync: data and all metadata.
    pub fn sync_all(&self, file: &File, path: &Path) -> Result<(), StorageError> {
        self.before();
        file.sync_all()
            .map_err(|e| StorageError::io("fsync", path, e))
    }

    /// fsyncs a directory, so that names created, renamed or removed in it survive
    /// a crash.
    pub fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        let handle = File::open(dir).map_err(|e| StorageError::io("fsync directory", dir, e))?;
        self.before();
        handle
            .sync_all()
            .map_err(|e| StorageError::io("fsync directory", dir, e))
    }

    /// Creates `dir` and its missing parents, fsyncing the parent of every
    /// directory created (so that the new names survive a crash).
    pub fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(path) = at {
            if path.as_os_str().is_empty() || path.is_dir() {
                break;
            }
            missing.push(path);
            at = path.parent();
        }
        for path in missing.into_iter().rev() {
            match std::fs::create_dir(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StorageError::io("create directory", path, e)),
            }
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            self.sync_dir(parent)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creating_directories_fsyncs_each_new_parent() {
        let root = tempfile::tempdir().unwrap();
        let disk = Disk::default();
        let dir = root.path().join("a/b/c");
        disk.create_dir_all(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(disk.fsyncs(), 3, "the parents of a, b and c");
        disk.create_dir_all(&dir).unwrap();
        assert_eq!(disk.fsyncs(), 3, "nothing new, nothing fsynced");
    }
}
