//! Copies of a partition log: a snapshot taken under the log's lock (the broker's
//! own backup), a copy of the files of a log another process may be appending to,
//! and a read-only walk of a log directory (offline `verify`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::disk::Disk;
use super::index::{self, Index};
use super::recovery::damage_of;
use super::report::{DamageKind, SegmentDamage, VerifyReport};
use super::scan::scan;
use super::segment::{self, Segment};
use super::{LogConfig, PartitionLog, StorageError};
use crate::Durability;

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

impl PartitionLog {
    /// Freezes the log as it is now: cheap (no data is read), taken while the caller
    /// holds the log (so no append runs); the copy is written later by
    /// [`LogSnapshot::write_to`] without any lock.
    pub fn snapshot(&self) -> Result<LogSnapshot, StorageError> {
        let mut segments = Vec::with_capacity(self.closed.len() + 1);
        for segment in self.closed.iter() {
            segments.push(snapshot_segment(segment, false)?);
        }
        segments.push(snapshot_segment(&self.active, true)?);
        Ok(LogSnapshot {
            segments,
            next_offset: self.next_offset,
        })
    }
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
fn copy_whole(from: &File, to: &Path) -> Result<(), StorageError> {
    let len = from
        .metadata()
        .map_err(|e| StorageError::io("stat", to, e))?
        .len();
    copy_prefix(from, to, len)
}

/// The base offsets of the segment data files in `dir`, ascending.
fn segment_bases(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut bases = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(bases),
        Err(e) => return Err(StorageError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        if let Some(base) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_data_file_name)
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Copies the log files of `src` (a partition another process may be appending to)
/// into `dest`, then opens the copy once, which cuts a record caught half-written
/// and rebuilds indexes that do not match (the recovery rule). The copy is a prefix
/// of the log: what a crash at the moment each segment was read would have left.
/// Segments deleted by retention while this runs are skipped (they were the oldest).
pub fn copy_live(src: &Path, dest: &Path, partition_id: u32) -> Result<CopyStats, StorageError> {
    std::fs::create_dir_all(dest).map_err(|e| StorageError::io("create directory", dest, e))?;
    for base in segment_bases(src)? {
        let from = segment::data_path(src, base);
        let data = match File::open(&from) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io("open", &from, e)),
        };
        let to = segment::data_path(dest, base);
        copy_whole(&data, &to)?;
        for (from_index, to_index) in [
            (
                index::offset_index_path(&from),
                index::offset_index_path(&to),
            ),
            (index::time_index_path(&from), index::time_index_path(&to)),
        ] {
            match File::open(&from_index) {
                Ok(file) => copy_whole(&file, &to_index)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("open", &from_index, e)),
            }
        }
    }
    Disk::plain().sync_dir(dest)?;
    let log = PartitionLog::open(
        dest,
        LogConfig {
            partition_id,
            segment_size_bytes: u64::MAX,
            durability: Durability::EveryBatch,
        },
    )?;
    let stats = log.stats();
    let next_offset = log.next_offset();
    drop(log);
    Ok(CopyStats {
        segments: stats.segments,
        bytes: stats.size_bytes,
        messages: stats.messages,
        next_offset,
    })
}

/// Walks every record of every segment in `dir` (the log of partition
/// `partition_id`) without changing anything: layout, both checksum levels,
/// partition and offset continuity, and segments that overlap.
pub fn verify_dir(dir: &Path, partition_id: u32) -> Result<VerifyReport, StorageError> {
    let mut report = VerifyReport::default();
    let mut previous_end: Option<u64> = None;
    let bases = segment_bases(dir)?;
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let path = segment::data_path(dir, base);
        let file = File::open(&path).map_err(|e| StorageError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io("stat", &path, e))?
            .len();
        let scan = scan(&file, &path, base, len, partition_id)?;
        report.segments += 1;
        report.records += scan.index.len() as u64;
        report.messages += scan.messages;
        if let Some(end) = previous_end
            && end > base
        {
            report.damage.push(SegmentDamage {
                path: path.clone(),
                base_offset: base,
                position: 0,
                end: 0,
                lost_from: 0,
                lost_to: 0,
                kind: DamageKind::OffsetMismatch {
                    expected: end,
                    found: base,
                },
                copy: None,
            });
        }
        let lost_end = next_base.unwrap_or(scan.end_offset);
        report
            .damage
            .extend(damage_of(&path, base, &scan, len, lost_end));
        previous_end = Some(scan.end_offset);
    }
    Ok(report)
}
