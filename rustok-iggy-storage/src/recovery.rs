//! Opening a log: finding its segments, repairing damage, rebuilding indexes; and
//! `verify`, the same walk over every segment without repairing anything.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use iggy_binary_protocol::batch::{BATCH_HEADER_SIZE, BatchHeader, decode_batch_slice};

use super::index::Index;
use super::report::{RecoveryReport, SegmentDamage, VerifyReport};
use super::scan::scan;
use super::segment::{self, Segment};
use super::{LogConfig, PartitionLog, StorageError};

/// The largest last record of a closed segment that is checked in one read when
/// deciding to trust the segment's index files; a larger one makes recovery walk the
/// segment in chunks instead.
const MAX_TRUSTED_RECORD_SIZE: usize = 64 * 1024 * 1024;

impl PartitionLog {
    /// Opens the log in `dir`, creating the directory and a first segment if
    /// missing, and recovers it (see the module documentation for the rule): torn or
    /// damaged records are cut off, everything before them is kept, and missing or
    /// stale indexes are rebuilt. What was done is in
    /// [`recovery_report`](Self::recovery_report).
    ///
    /// # Errors
    /// [`StorageError::Io`] when the directory or a file cannot be read or repaired;
    /// [`StorageError::Corrupt`] when two segments claim the same offsets.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create directory", dir, e))?;
        let bases = list_segments(dir)?;
        let mut report = RecoveryReport {
            segments: u32::try_from(bases.len()).unwrap_or(u32::MAX),
            ..RecoveryReport::default()
        };
        let mut closed = VecDeque::with_capacity(bases.len());
        let mut next_offset = 0u64;
        let count = bases.len();
        for (i, base_offset) in bases.into_iter().enumerate() {
            let is_last = i + 1 == count;
            let segment = recover_segment(dir, base_offset, is_last, &config, &mut report)?;
            if let Some(previous) = closed.back().map(|s: &Segment| s.end_offset)
                && previous > base_offset
            {
                return Err(StorageError::Corrupt {
                    path: segment.path,
                    position: 0,
                    reason: format!(
                        "the segment starts at offset {base_offset} but the one before it \
                         ends at offset {previous}"
                    ),
                });
            }
            next_offset = next_offset.max(base_offset).max(segment.end_offset);
            closed.push_back(segment);
        }
        let active = match closed.pop_back() {
            Some(active) => active,
            None => {
                let active = Segment::create(dir, 0)?;
                segment::sync_dir(dir)?;
                active
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            config,
            closed,
            active,
            next_offset,
            unsynced_since: None,
            poisoned: false,
            recovery: report,
        })
    }

    /// Walks every record of every segment, checking layout, both checksum levels,
    /// partition and offset continuity, and reports the first damage of each
    /// segment. Repairs nothing; damage in a closed segment whose index was
    /// consistent at open is only found this way (recovery trusts such segments).
    ///
    /// # Errors
    /// [`StorageError::Io`] when a file cannot be read.
    pub fn verify(&self) -> Result<VerifyReport, StorageError> {
        let mut report = VerifyReport::default();
        for segment in self.segments() {
            let scan = scan(
                &segment.file,
                &segment.path,
                segment.base_offset,
                segment.size,
                self.config.partition_id,
            )?;
            report.segments = report.segments.saturating_add(1);
            report.records = report
                .records
                .saturating_add(u64::try_from(scan.index.len()).unwrap_or(u64::MAX));
            report.messages = report
                .messages
                .saturating_add(scan.end_offset.saturating_sub(segment.base_offset));
            if let Some(kind) = scan.damage {
                report.damage.push(SegmentDamage {
                    path: segment.path.clone(),
                    base_offset: segment.base_offset,
                    position: scan.valid_len,
                    kind,
                });
            }
        }
        Ok(report)
    }
}

/// The base offsets of the data files in `dir`, ascending. Other files are ignored.
fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))?;
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(base) = name.to_str().and_then(segment::parse_data_file_name) else {
            continue;
        };
        let is_file = entry
            .file_type()
            .map_err(|e| StorageError::io("stat", entry.path(), e))?
            .is_file();
        if is_file {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Loads one segment: a closed one from its index files when they agree with the
/// data file, otherwise (and always for the last one) by walking the data file,
/// truncating it at the first damage and rewriting stale index files.
fn recover_segment(
    dir: &Path,
    base_offset: u64,
    is_last: bool,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Segment, StorageError> {
    let path = segment::data_path(dir, base_offset);
    let file = segment::open_data_file(&path, false)?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io("stat", &path, e))?
        .len();
    if !is_last
        && let Some((index, end_offset)) =
            trusted_index(&file, &path, base_offset, len, config.partition_id)
    {
        return Ok(Segment::loaded(
            base_offset,
            path,
            file,
            len,
            end_offset,
            index,
        ));
    }

    let scan = scan(&file, &path, base_offset, len, config.partition_id)?;
    if let Some(kind) = scan.damage {
        tracing::warn!(
            path = %path.display(),
            position = scan.valid_len,
            damage = %kind,
            "truncating a damaged segment"
        );
        file.set_len(scan.valid_len)
            .map_err(|e| StorageError::io("truncate", &path, e))?;
        file.sync_data()
            .map_err(|e| StorageError::io("fsync", &path, e))?;
        report.truncated_bytes = report
            .truncated_bytes
            .saturating_add(len.saturating_sub(scan.valid_len));
        report.dropped_records = report
            .dropped_records
            .saturating_add(scan.records_after_damage);
        report.damage.push(SegmentDamage {
            path: path.clone(),
            base_offset,
            position: scan.valid_len,
            kind,
        });
    }
    if Index::read_files(&path, scan.valid_len).as_ref() != Some(&scan.index) {
        scan.index.write_files(&path, 0, true)?;
        report.indexes_rebuilt = report.indexes_rebuilt.saturating_add(1);
    }
    Ok(Segment::loaded(
        base_offset,
        path,
        file,
        scan.valid_len,
        scan.end_offset,
        scan.index,
    ))
}

/// The index of a closed segment and its end offset, if its index files are
/// well-formed and agree with the data file: the last indexed record is a batch
/// header of this partition with the indexed base offset, it ends exactly at the end
/// of the file, and it passes both checksum levels.
fn trusted_index(
    file: &File,
    path: &Path,
    base_offset: u64,
    len: u64,
    partition_id: u32,
) -> Option<(Index, u64)> {
    let index = Index::read_files(path, len)?;
    let Some(last) = index.last() else {
        return (len == 0).then_some((index, base_offset));
    };
    let position = u64::from(last.position);
    let record_base = base_offset.checked_add(u64::from(last.relative_offset))?;
    let mut header = [0u8; BATCH_HEADER_SIZE];
    file.read_exact_at(&mut header, position).ok()?;
    let header = BatchHeader::decode(&header).ok()?;
    let consistent = header.base_offset == record_base
        && header.partition_id == u64::from(partition_id)
        && header.message_count > 0
        && position.checked_add(header.batch_length) == Some(len);
    if !consistent {
        return None;
    }
    // The end offset comes from `message_count`: trust it only once the batch
    // checksum, which seals it, is verified (a flipped count would otherwise make the
    // segment overlap the next one and the whole log refuse to open). A record too
    // large to read at once is walked instead.
    let record_len = usize::try_from(header.batch_length)
        .ok()
        .filter(|&n| n <= MAX_TRUSTED_RECORD_SIZE)?;
    let mut record = vec![0u8; record_len];
    file.read_exact_at(&mut record, position).ok()?;
    decode_batch_slice(&record).ok()?;
    let end_offset = record_base.checked_add(u64::from(header.message_count))?;
    Some((index, end_offset))
}
