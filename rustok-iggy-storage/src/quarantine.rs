//! Copies of damaged byte ranges, kept aside for inspection: the partition's
//! `quarantine/` directory, one file per range, named
//! `{base_offset:020}.log.{start}-{end}` after the segment and the byte range.
//!
//! Best effort: a copy that cannot be made is logged and skipped (the damaged
//! bytes stay in the segment file anyway, which is never cut around them). A range
//! is copied once; its first [`MAX_COPY`] bytes at most.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Name of the directory, inside the partition's directory.
pub(super) const DIR: &str = "quarantine";
/// The most bytes of one range that are copied.
pub(super) const MAX_COPY: u64 = 16 * 1024 * 1024;

/// Where the range `start..end` of `segment` (a data file) is copied.
pub(super) fn copy_path(segment: &Path, start: u64, end: u64) -> Option<PathBuf> {
    let dir = segment.parent()?.join(DIR);
    let name = segment.file_name()?.to_str()?;
    Some(dir.join(format!("{name}.{start}-{end}")))
}

/// Copies `start..end` of `file` (the data file `segment`) aside, unless done
/// before; returns the copy's path.
pub(super) fn save_range(segment: &Path, file: &File, start: u64, end: u64) -> Option<PathBuf> {
    let target = copy_path(segment, start, end)?;
    let wanted = end.saturating_sub(start).min(MAX_COPY);
    if fs::metadata(&target).is_ok_and(|m| m.len() == wanted) {
        return Some(target);
    }
    let copied = (|| -> std::io::Result<()> {
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut out = File::create(&target)?;
        let mut buf = vec![0u8; usize::try_from(wanted.min(1 << 20)).unwrap_or(1 << 20)];
        let mut at = 0u64;
        while at < wanted {
            let n = usize::try_from((wanted - at).min(buf.len() as u64)).unwrap_or(buf.len());
            let chunk = buf.get_mut(..n).unwrap_or_default();
            file.read_exact_at(chunk, start + at)?;
            out.write_all(chunk)?;
            at += n as u64;
        }
        Ok(())
    })();
    match copied {
        Ok(()) => Some(target),
        Err(e) => {
            tracing::warn!(path = %target.display(), error = %e, "could not copy a damaged range aside");
            None
        }
    }
}
