//! A snapshot of a partition log taken under the log's lock (the broker's own
//! backup), written out later without it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::disk::Disk;
use crate::error::StorageError;
use crate::index::{self, Index};
use crate::segment::{self, Segment};

/// Bytes copied at a time.
const COPY_CHUNK: usize = 1 << 20;

/// Where a segment's index comes from in a snapshot.
#[derive(Debug)]
enum IndexSource {
    /// The entries of the active segment (some may not be in its files yet).
    Entries(Index),
    /// The files of a closed segment (written and fsynced when it was closed),
    /// opened while the lock was held so that retention cannot take them away.
    Files { offsets: File, times: File },
    /// No usable index: recovery rebuilds it when the copy is opened.
    None,
}

#[derive(Debug)]
struct SegmentSnapshot {
    base_offset: u64,
    /// The data file, opened again while the lock was held (a deleted file stays
    /// readable through it).
    data: File,
    /// Bytes of whole records at the snapshot point.
    size: u64,
    messages: u64,
    index: IndexSource,
}

/// A partition log frozen at one point: every segment up to its length then.
#[derive(Debug)]
pub struct LogSnapshot {
    segments: Vec<SegmentSnapshot>,
    next_offset: u64,
}

/// What writing a snapshot or a copy produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Segments written.
    pub segments: u32,
    /// Bytes of data files written.
    pub bytes: u64,
    /// Messages in them.
    pub messages: u64,
    /// The offset after the last message (the next offset of the copy).
    pub next_offset: u64,
}

fn snapshot_segment(segment: &Segment, active: bool) -> Result<SegmentSnapshot, StorageError> {
    let data = segment
        .file
        .try_clone()
        .map_err(|e| StorageError::io("duplicate", &segment.path, e))?;
    let index = if active {
        IndexSource::Entries(segment.index.clone())
    } else {
        let open = |path: PathBuf| File::open(path).ok();
        match (
            open(index::offset_index_path(&segment.path)),
            open(index::time_index_path(&segment.path)),
        ) {
            (Some(offsets), Some(times)) => IndexSource::Files { offsets, times },
            _ => IndexSource::None,
        }
    };
    Ok(SegmentSnapshot {
        base_offset: segment.base_offset,
        data,
        size: segment.size,
        messages: segment.messages(),
        index,
    })
}

impl LogSnapshot {
    /// Freezes the `closed` segments then the `active` one, as they are now (see
    /// [`PartitionLog::snapshot`](super::PartitionLog::snapshot)).
    pub(super) fn take<'a>(
        closed: impl ExactSizeIterator<Item = &'a Segment>,
        active: &Segment,
        next_offset: u64,
    ) -> Result<Self, StorageError> {
        let mut segments = Vec::with_capacity(closed.len() + 1);
        for segment in closed {
            segments.push(snapshot_segment(segment, false)?);
        }
        segments.push(snapshot_segment(active, true)?);
        Ok(Self {
            segments,
            next_offset,
        })
    }

    /// The next offset of the log at the snapshot point.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Writes the segments into `dir` (created; must hold no segment yet): each data
    /// file up to its length at the snapshot point, its index files, everything
    /// fsynced.
    pub fn write_to(&self, dir: &Path) -> Result<CopyStats, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create directory", dir, e))?;
        let mut stats = CopyStats {
            next_offset: self.next_offset,
            ..CopyStats::default()
        };
        for segment in &self.segments {
            let path = segment::data_path(dir, segment.base_offset);
            copy_prefix(&segment.data, &path, segment.size)?;
            match &segment.index {
                IndexSource::Entries(entries) => {
                    entries.write_files(&path, 0, Some(Disk::plain()))?;
                }
                IndexSource::Files { offsets, times } => {
                    copy_whole(offsets, &index::offset_index_path(&path))?;
                    copy_whole(times, &index::time_index_path(&path))?;
                }
                IndexSource::None => {}
            }
            stats.segments += 1;
            stats.bytes += segment.size;
            stats.messages += segment.messages;
        }
        Disk::plain().sync_dir(dir)?;
        Ok(stats)
    }
}

/// Copies the first `len` bytes of `from` into a new file `to`, fsynced.
fn copy_prefix(from: &File, to: &Path, len: u64) -> Result<(), StorageError> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| StorageError::io("create", to, e))?;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from(len - at).map_or(COPY_CHUNK, |left| left.min(COPY_CHUNK));
        let chunk = buf.get_mut(..want).unwrap_or_default();
        from.read_exact_at(chunk, at)
            .map_err(|e| StorageError::io("read", to, e))?;
        out.write_all(chunk)
            .map_err(|e| StorageError::io("write", to, e))?;
        at += want as u64;
    }
    out.sync_all().map_err(|e| StorageError::io("fsync", to, e))
}

/// Copies all of `from` (read from its start) into a new file `to`, fsynced.
pub(crate) fn copy_whole(from: &File, to: &Path) -> Result<(), StorageError> {
    let len = from
        .metadata()
        .map_err(|e| StorageError::io("stat", to, e))?
        .len();
    copy_prefix(from, to, len)
}
