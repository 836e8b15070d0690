//! Walking the segments of a log without its lock: [`VerifyPlan`], and the damage a
//! scan found.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::StorageError;
use crate::report::{SegmentDamage, VerifyReport};
use crate::scan::{Scan, scan};

/// The segments a [`PartitionLog::verify`](super::PartitionLog::verify) walks, noted
/// under the log's lock.
#[derive(Debug)]
pub struct VerifyPlan {
    pub(super) partition_id: u32,
    pub(super) segments: Vec<VerifySegment>,
}

#[derive(Debug)]
pub(super) struct VerifySegment {
    pub(super) path: PathBuf,
    pub(super) file: Arc<std::fs::File>,
    pub(super) base_offset: u64,
    pub(super) size: u64,
    pub(super) end_offset: u64,
    /// Where the offsets of a damaged tail end: the next segment's base.
    pub(super) lost_end: u64,
}

impl VerifyPlan {
    /// Walks the segments (no lock needed); see
    /// [`PartitionLog::verify`](super::PartitionLog::verify).
    ///
    /// # Errors
    /// [`StorageError::Io`] when a file cannot be read.
    pub fn run(&self) -> Result<VerifyReport, StorageError> {
        let mut report = VerifyReport::default();
        for segment in &self.segments {
            let scan = scan(
                &segment.file,
                &segment.path,
                segment.base_offset,
                segment.size,
                self.partition_id,
            )?;
            report.segments = report.segments.saturating_add(1);
            report.records = report
                .records
                .saturating_add(u64::try_from(scan.index.len()).unwrap_or(u64::MAX));
            report.messages = report.messages.saturating_add(scan.messages);
            let lost_end = segment
                .lost_end
                .max(segment.end_offset)
                .max(scan.end_offset);
            report.damage.extend(damage_of(
                &segment.path,
                segment.base_offset,
                &scan,
                segment.size,
                lost_end,
            ));
        }
        Ok(report)
    }
}

/// Every damaged range `scan` found in the segment `path` (`len` bytes; its
/// offsets end at `lost_end` when its tail is damaged).
pub(crate) fn damage_of(
    path: &Path,
    base_offset: u64,
    scan: &Scan,
    len: u64,
    lost_end: u64,
) -> Vec<SegmentDamage> {
    let mut out: Vec<SegmentDamage> = scan
        .holes
        .iter()
        .map(|(hole, kind)| SegmentDamage {
            path: path.to_owned(),
            base_offset,
            position: hole.start,
            end: hole.end,
            lost_from: hole.first_offset,
            lost_to: hole.end_offset,
            kind: kind.clone(),
            copy: None,
        })
        .collect();
    if let Some(tail) = &scan.tail {
        out.push(SegmentDamage {
            path: path.to_owned(),
            base_offset,
            position: tail.position,
            end: len,
            lost_from: scan.end_offset,
            lost_to: lost_end.max(scan.end_offset),
            kind: tail.kind.clone(),
            copy: None,
        });
    }
    out
}
