//! Tools over a log directory another process may own: a copy of the files of a live
//! log, and a read-only walk (offline `verify`).

use std::fs::File;
use std::path::Path;

use crate::disk::Disk;
use crate::durability::Durability;
use crate::error::StorageError;
use crate::index;
use crate::log::{CopyStats, LogConfig, PartitionLog, copy_whole, damage_of};
use crate::report::{DamageKind, SegmentDamage, VerifyReport};
use crate::scan::scan;
use crate::segment;

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
