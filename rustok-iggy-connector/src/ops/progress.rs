//! The progress file of a migration: where each partition stands, and where its
//! copied messages went (to translate consumer-group offsets).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::source::SourceMessage;

/// The progress file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Progress {
    pub(super) format: u32,
    /// The directory the last run read (for people; the source is recognised by the
    /// ids of the messages copied, so a backup of the same data continues it).
    pub(super) source: PathBuf,
    /// `stream/topic` → its progress.
    pub(super) topics: BTreeMap<String, TopicProgress>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct TopicProgress {
    pub(super) partitions: Vec<PartitionProgress>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct PartitionProgress {
    /// The next source offset to copy.
    pub(super) source_next: u64,
    /// The destination offset the next copied message gets.
    pub(super) dest_next: u64,
    /// Messages copied so far.
    pub(super) copied: u64,
    /// The id of the last message copied (checked against the source on resume).
    pub(super) last_id: Option<u128>,
    /// Where the copied messages went: contiguous runs of source and destination
    /// offsets (one run unless the source has gaps).
    pub(super) runs: Vec<CopyRun>,
}

/// `count` messages from source offset `source` on went to destination offsets
/// from `dest` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CopyRun {
    pub(super) source: u64,
    pub(super) dest: u64,
    pub(super) count: u64,
}

impl PartitionProgress {
    /// The destination offset of the last copied message at or before source offset
    /// `offset` (what a group that committed `offset` has handled), if any.
    pub(super) fn translate(&self, offset: u64) -> Option<u64> {
        let run = self.runs.iter().rev().find(|r| r.source <= offset)?;
        Some(run.dest + (offset - run.source).min(run.count.saturating_sub(1)))
    }
}

/// Moves `state` past `copied` (the next messages of the partition, in order,
/// stored at the destination from `state.dest_next` on).
pub(super) fn advance(state: &mut PartitionProgress, copied: &[SourceMessage]) {
    for message in copied {
        match state.runs.last_mut() {
            Some(run)
                if run.source + run.count == message.offset
                    && run.dest + run.count == state.dest_next =>
            {
                run.count += 1;
            }
            _ => state.runs.push(CopyRun {
                source: message.offset,
                dest: state.dest_next,
                count: 1,
            }),
        }
        state.dest_next += 1;
        state.copied += 1;
        state.source_next = message.offset + 1;
        state.last_id = Some(message.copy.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::source::tests::message;

    #[test]
    fn uuid_sized_ids_survive_the_file() {
        let state = PartitionProgress {
            last_id: Some(u128::MAX - 7),
            ..PartitionProgress::default()
        };
        let text = serde_json::to_string(&state).unwrap();
        let back: PartitionProgress = serde_json::from_str(&text).unwrap();
        assert_eq!(back.last_id, Some(u128::MAX - 7));
    }

    #[test]
    fn copied_runs_translate_group_offsets() {
        let mut state = PartitionProgress {
            source_next: 5,
            ..PartitionProgress::default()
        };
        // Source offsets 5, 6, then a gap, then 9, 10: destination 0..4.
        advance(&mut state, &[message(5, 1, 1), message(6, 1, 1)]);
        advance(&mut state, &[message(9, 1, 1), message(10, 1, 1)]);
        assert_eq!(
            (state.source_next, state.dest_next, state.copied),
            (11, 4, 4)
        );
        assert_eq!(state.last_id, Some(11));
        assert_eq!(state.runs.len(), 2);
        assert_eq!(state.translate(3), None, "before anything copied");
        assert_eq!(state.translate(5), Some(0));
        assert_eq!(state.translate(6), Some(1));
        assert_eq!(
            state.translate(8),
            Some(1),
            "in the gap: the last one before it"
        );
        assert_eq!(state.translate(9), Some(2));
        assert_eq!(
            state.translate(50),
            Some(3),
            "past the end: the last copied"
        );
    }
}
