//! Opening a log: finding its segments, repairing damage, rebuilding indexes; and
//! `verify`, the same walk over every segment without repairing anything.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::verify::{VerifyPlan, VerifySegment, damage_of};
use super::{LogConfig, PartitionLog, SyncStats};
use crate::disk::Disk;
use crate::error::StorageError;
use crate::index::{self, Index};
use crate::quarantine;
use crate::report::{RecoveryReport, SegmentDamage, VerifyReport};
use crate::scan::scan;
use crate::seal::{self, Seal};
use crate::segment::{self, Hole, Segment};

impl PartitionLog {
    /// Opens the log in `dir` with a plain [`Disk`] and no known durable offset:
    /// [`open_with`](Self::open_with).
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, StorageError> {
        Self::open_with(dir, config, Arc::new(Disk::default()), 0)
    }

    /// Opens the log in `dir`, creating the directory (its new parents fsynced) and
    /// a first segment if missing, and recovers it (see the crate documentation for
    /// the rule). Every fsync goes through `disk`. `durable_offset` is the offset up
    /// to which the log was last known to be fsynced (0 when not known): damage
    /// below it is never taken for a torn tail, and no offset below it is handed
    /// out again. What was done is in [`recovery_report`](Self::recovery_report).
    ///
    /// # Errors
    /// [`StorageError::Io`] when the directory or a file cannot be read or repaired;
    /// [`StorageError::Corrupt`] when two segments claim the same offsets.
    pub fn open_with(
        dir: &Path,
        config: LogConfig,
        disk: Arc<Disk>,
        durable_offset: u64,
    ) -> Result<Self, StorageError> {
        disk.create_dir_all(dir)?;
        let bases = list_segments(dir)?;
        let mut report = RecoveryReport {
            segments: u32::try_from(bases.len()).unwrap_or(u32::MAX),
            ..RecoveryReport::default()
        };
        let mut closed = VecDeque::with_capacity(bases.len());
        let mut next_offset = 0u64;
        for (i, &base_offset) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let at = Recovering {
                dir,
                base_offset,
                next_base,
                config: &config,
                disk: &disk,
                durable_offset,
            };
            let segment = at.recover(&mut report)?;
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
        let mut active = match closed.pop_back() {
            Some(active) => active,
            None => {
                let active = Segment::create(dir, durable_offset)?;
                disk.sync_dir(dir)?;
                active
            }
        };
        if durable_offset > next_offset.max(active.end_offset) {
            // Records that were fsynced are missing (a file cut or removed by hand):
            // their offsets become a gap and are not handed out again.
            tracing::warn!(
                dir = %dir.display(),
                end = next_offset,
                durable_offset,
                "the log ends before its last fsynced offset; the missing offsets are skipped"
            );
            active.holes.push(Hole {
                start: active.size,
                end: active.size,
                first_offset: active.end_offset,
                end_offset: durable_offset,
            });
            active.end_offset = durable_offset;
            next_offset = durable_offset;
        }
        let damage = report.kept.clone();
        Ok(Self {
            dir: dir.to_owned(),
            config,
            disk,
            closed,
            active,
            next_offset,
            durable_offset: durable_offset.min(next_offset),
            writes: 0,
            // Data recovered past the durable offset may be in the page cache only
            // (a crash, not a power loss): the next sync fsyncs it.
            unsynced_since: (durable_offset < next_offset).then(Instant::now),
            dir_dirty: false,
            rolls: 0,
            poisoned: None,
            recovery: report,
            damage: Mutex::new(damage),
            sync_stats: SyncStats::default(),
        })
    }

    /// Walks every record of every segment, checking layout, both checksum levels,
    /// partition and offset continuity, and reports every damaged range (those
    /// recovery keeps aside included). Repairs nothing; damage in a sealed segment
    /// is found this way or by the first read of the damaged record (recovery
    /// trusts sealed segments).
    ///
    /// # Errors
    /// [`StorageError::Io`] when a file cannot be read.
    pub fn verify(&self) -> Result<VerifyReport, StorageError> {
        self.verify_plan().run()
    }

    /// What [`verify`](Self::verify) walks: every segment up to its length now.
    /// Taken under the log's lock (cheap), walked by [`VerifyPlan::run`] without it
    /// (the bytes it covers no longer change).
    pub fn verify_plan(&self) -> VerifyPlan {
        let mut segments: Vec<VerifySegment> = self
            .segments()
            .map(|s| VerifySegment {
                path: s.path.clone(),
                file: Arc::clone(&s.file),
                base_offset: s.base_offset,
                size: s.size,
                end_offset: s.end_offset,
                lost_end: s.end_offset,
            })
            .collect();
        for k in 1..segments.len() {
            segments[k - 1].lost_end = segments[k].base_offset;
        }
        VerifyPlan {
            partition_id: self.config.partition_id,
            segments,
        }
    }
}

/// One segment being opened.
struct Recovering<'a> {
    dir: &'a Path,
    base_offset: u64,
    /// The next segment's base offset; `None` for the last segment.
    next_base: Option<u64>,
    config: &'a LogConfig,
    disk: &'a Disk,
    durable_offset: u64,
}

impl Recovering<'_> {
    /// Loads the segment: a closed one from its index files when its seal vouches
    /// for them, otherwise (and always for the last one) by walking the data file.
    fn recover(&self, report: &mut RecoveryReport) -> Result<Segment, StorageError> {
        let path = segment::data_path(self.dir, self.base_offset);
        let file = segment::open_data_file(&path, false)?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io("stat", &path, e))?
            .len();
        let is_last = self.next_base.is_none();
        if !is_last && let Some((index, end_offset)) = sealed_index(&path, len) {
            return Ok(Segment::loaded(
                self.base_offset,
                path,
                file,
                len,
                end_offset,
                index,
                Vec::new(),
                false,
            ));
        }

        let scan = scan(
            &file,
            &path,
            self.base_offset,
            len,
            self.config.partition_id,
        )?;
        let mut holes: Vec<Hole> = scan.holes.iter().map(|(hole, _)| *hole).collect();
        let mut size = len;
        let mut end_offset = scan.end_offset;
        let lost_end = self
            .next_base
            .unwrap_or(self.durable_offset)
            .max(scan.end_offset);
        let mut kept = damage_of(&path, self.base_offset, &scan, len, lost_end);
        if let Some(tail) = &scan.tail {
            // A tail is torn only in the last segment, and only past the last fsync:
            // anything else was on stable storage and is damage, kept aside.
            let torn = is_last && scan.end_offset >= self.durable_offset;
            if torn {
                kept.pop();
                tracing::warn!(
                    path = %path.display(),
                    position = tail.position,
                    damage = %tail.kind,
                    "cutting a torn tail (written after the last fsync)"
                );
                file.set_len(tail.position)
                    .map_err(|e| StorageError::io("truncate", &path, e))?;
                self.disk.sync_data(&file, &path)?;
                size = tail.position;
                report.truncated_bytes = report
                    .truncated_bytes
                    .saturating_add(len.saturating_sub(tail.position));
                report.dropped_records = report.dropped_records.saturating_add(tail.records);
                report.damage.push(SegmentDamage {
                    path: path.clone(),
                    base_offset: self.base_offset,
                    position: tail.position,
                    end: len,
                    lost_from: scan.end_offset,
                    lost_to: scan.end_offset,
                    kind: tail.kind.clone(),
                    copy: None,
                });
            } else {
                holes.push(Hole {
                    start: tail.position,
                    end: len,
                    first_offset: scan.end_offset,
                    end_offset: lost_end,
                });
                end_offset = lost_end;
            }
        }
        for damage in &mut kept {
            damage.copy = quarantine::save_range(&path, &file, damage.position, damage.end);
            tracing::error!(damage = %damage, "damaged records skipped; everything around them is kept");
        }
        report.kept.extend(kept);

        let closed = !is_last;
        if closed {
            // A closed segment's index files and seal only save the next open a
            // walk: failing to write them (a full disk) costs that walk, not the
            // open (reads use the index in memory, the one just walked).
            let mut rewrite = || -> Result<(), StorageError> {
                if Index::read_files(&path, size).as_ref() != Some(&scan.index) {
                    scan.index.write_files(&path, 0, Some(self.disk))?;
                    report.indexes_rebuilt = report.indexes_rebuilt.saturating_add(1);
                }
                if holes.is_empty() {
                    // Walked and whole: sealed, so the next open need not walk it.
                    self.disk.sync_data(&file, &path)?;
                    let bytes = scan.index.encode_from(0);
                    bytes.write(&path, Some(self.disk), true)?;
                    let seal = Seal {
                        data_len: size,
                        end_offset,
                        records: u64::try_from(scan.index.len()).unwrap_or(u64::MAX),
                        offsets_checksum: seal::checksum(&bytes.offsets),
                        times_checksum: seal::checksum(&bytes.times),
                    };
                    seal::write(&path, &seal, self.disk)?;
                    report.sealed = report.sealed.saturating_add(1);
                }
                Ok(())
            };
            if let Err(err) = rewrite() {
                tracing::warn!(
                    path = %path.display(),
                    error = %err,
                    "could not rewrite the index or seal of a closed segment; it is walked again at the next open"
                );
            }
        } else if Index::read_files(&path, size).as_ref() != Some(&scan.index) {
            // The active segment's index lives in memory (its files are written when
            // it is sealed, and it is walked at every open): same as above.
            match scan.index.write_files(&path, 0, None) {
                Ok(_) => report.indexes_rebuilt = report.indexes_rebuilt.saturating_add(1),
                Err(err) => tracing::warn!(
                    path = %path.display(),
                    error = %err,
                    "could not rewrite the index of the active segment; it is rebuilt at the next open"
                ),
            }
        }
        Ok(Segment::loaded(
            self.base_offset,
            path,
            file,
            size,
            end_offset,
            scan.index,
            holes,
            true,
        ))
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

/// The index of a closed segment and its end offset, if its seal vouches for its
/// index files: the seal decodes, names the data file's length, and both index
/// files hash to what it names.
fn sealed_index(path: &Path, len: u64) -> Option<(Index, u64)> {
    let seal = seal::read(path)?;
    if seal.data_len != len {
        return None;
    }
    let (offsets, times) = index::read_raw(path, len)?;
    if seal::checksum(&offsets) != seal.offsets_checksum
        || seal::checksum(&times) != seal.times_checksum
    {
        return None;
    }
    let index = Index::decode(&offsets, &times)?;
    (u64::try_from(index.len()).ok() == Some(seal.records)).then_some((index, seal.end_offset))
}
