//! Segment recovery on files made from the fuzzer's input, through the public API of
//! `rustok-iggy-storage`.
//!
//! Two kinds of input ([`SegmentInput`]): *raw*, the bytes become the files of a
//! partition (a last segment, optionally a closed segment before it and the index
//! files of the first segment); *recipe*, valid records are appended by the log itself,
//! then one damage is done while it is closed (a cut, a flipped byte, garbage, a
//! deleted or garbage index file, the index entries a killed process never wrote).
//! Then: open, read everything, verify, reopen, append.
//!
//! Invariants: opening never fails but for overlapping segments; everything read
//! after the repair decodes and carries the offsets asked for; records before the
//! damage are intact; the repair is durable (a second open changes nothing);
//! appends continue at the next offset.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use rustok_iggy_storage::record::{self, RecordBuilder};
use rustok_iggy_storage::{Durability, LogConfig, PartitionLog, StorageError};

use crate::sample::PARTITION;

/// Most records a recipe appends.
const MAX_RECORDS: usize = 8;
/// Most messages of one recipe record.
const MAX_MESSAGES: usize = 4;
/// Longest payload of a recipe message.
const MAX_PAYLOAD: usize = 64;
/// Longest user headers of a recipe message.
const MAX_USER_HEADERS: usize = 16;

/// One input of the target.
#[derive(Debug, Arbitrary)]
pub enum SegmentInput {
    /// The bytes become the files of a partition.
    Raw(RawFiles),
    /// Valid records appended by the log, then one damage done while it is closed.
    Recipe(Recipe),
}

/// The files of a partition, as the fuzzer wrote them.
#[derive(Debug, Arbitrary)]
pub struct RawFiles {
    /// The base offset of the last segment (its file name); 0 when absent.
    pub last_base: Option<u32>,
    /// A closed segment at offset 0 before the last one.
    pub closed: Option<Vec<u8>>,
    /// Offset and time index files of the first segment.
    pub index: Option<(Vec<u8>, Vec<u8>)>,
    /// The last segment's data file.
    pub last: Vec<u8>,
}

/// Valid records, then one damage.
#[derive(Debug, Arbitrary)]
pub struct Recipe {
    /// The segment size is `256 + 8 * segment_size` bytes: segments roll often.
    pub segment_size: u8,
    /// The records to append (at most 8, of 1 to 4 messages; an empty list is one
    /// record of one empty message).
    pub records: Vec<Vec<RecipeMessage>>,
    /// The process died after the appends: only this many index entries of the last
    /// segment had been written.
    pub crash_index: Option<u8>,
    /// What is done to the closed log.
    pub damage: Damage,
}

/// A message of a recipe record.
#[derive(Debug, Arbitrary)]
pub struct RecipeMessage {
    /// Its payload (at most 64 bytes are used).
    pub payload: Vec<u8>,
    /// Its user headers (opaque to the log; at most 16 bytes are used).
    pub user_headers: Vec<u8>,
}

/// One damage done to a closed log. A `segment` picks one of the segments on disk
/// (modulo their number).
#[derive(Debug, Arbitrary)]
pub enum Damage {
    /// Nothing.
    None,
    /// The last segment's data file is cut at `at` (modulo its length + 1).
    Cut {
        /// Where.
        at: u32,
    },
    /// One byte of a data file is flipped.
    Flip {
        /// Which segment.
        segment: u8,
        /// Which byte (modulo the file's length).
        at: u16,
        /// The bits flipped (at least the lowest).
        mask: u8,
    },
    /// Garbage is appended to the last segment's data file.
    Garbage(Vec<u8>),
    /// An index file is deleted.
    DeleteIndex {
        /// Which segment.
        segment: u8,
        /// The time index (else the offset index).
        time: bool,
    },
    /// An index file is replaced by garbage.
    GarbageIndex {
        /// Which segment.
        segment: u8,
        /// The time index (else the offset index).
        time: bool,
        /// Its new content.
        bytes: Vec<u8>,
    },
}

/// Runs one input.
///
/// # Panics
/// When an invariant breaks.
pub fn run(input: SegmentInput) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    match input {
        SegmentInput::Raw(files) => raw_segments(dir.path(), files),
        SegmentInput::Recipe(recipe) => run_recipe(dir.path(), recipe),
    }
}

fn data_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn index_path(dir: &Path, base: u64, time: bool) -> PathBuf {
    let ext = if time { "timeindex" } else { "index" };
    dir.join(format!("{base:020}.{ext}"))
}

fn config(segment_size_bytes: u64) -> LogConfig {
    LogConfig {
        partition_id: PARTITION,
        segment_size_bytes,
        durability: Durability::Never,
    }
}

/// Writes the raw files, then opens and checks.
fn raw_segments(dir: &Path, files: RawFiles) {
    let with_closed = files.closed.is_some();
    let mut last_base = files.last_base.map_or(0, u64::from);
    if let Some(closed) = &files.closed {
        fs::write(data_path(dir, 0), closed).expect("write a closed segment");
        last_base = last_base.max(1);
    }
    if let Some((offsets, times)) = &files.index {
        let base = if with_closed { 0 } else { last_base };
        fs::write(index_path(dir, base, false), offsets).expect("write an index");
        fs::write(index_path(dir, base, true), times).expect("write an index");
    }
    fs::write(data_path(dir, last_base), &files.last).expect("write the last segment");

    let log = match PartitionLog::open(dir, config(1 << 20)) {
        Ok(log) => log,
        Err(StorageError::Corrupt { .. }) if with_closed => return,
        Err(e) => panic!("open failed: {e}"),
    };
    assert!(
        log.next_offset() >= last_base,
        "the next offset is at least the last segment's base"
    );
    let records = read_checked(&log);
    let verified = log.verify().expect("verify reads every segment");
    let kept = &log.recovery_report().kept;
    assert!(
        verified
            .damage
            .iter()
            .filter(|d| d.base_offset == last_base)
            .all(|d| kept
                .iter()
                .any(|k| k.path == d.path && k.position == d.position)),
        "recovery walked the last segment, so verify finds no damage there but what \
         recovery kept aside: {verified:?}, kept {kept:?}"
    );
    reopen_and_append(dir, log, &records);
}

/// The offsets of the messages of `record` in `[from, ..)`.
fn offsets_from(record: &[u8], from: u64) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for message in record::messages(record).ok()? {
        let message = message.ok()?;
        if message.offset >= from {
            out.push(message.offset);
        }
    }
    Some(out)
}

/// Reads the whole log and windows of it; checks that every record decodes and
/// holds the offsets asked for.
fn read_checked(log: &PartitionLog) -> Vec<Vec<u8>> {
    let records = match log.read(0, u32::MAX, usize::MAX) {
        Ok(records) => records,
        // A trusted closed segment is not walked at open; its damage shows here.
        Err(StorageError::Corrupt { .. } | StorageError::CorruptRecord { .. }) => {
            return Vec::new();
        }
        Err(e) => panic!("read failed: {e}"),
    };
    let mut previous_end = 0u64;
    for stored in &records {
        let Ok(header) = record::validate(stored, false) else {
            // Only a record of a trusted closed segment can be returned damaged.
            continue;
        };
        assert!(
            header.base_offset >= previous_end,
            "offsets strictly increase"
        );
        previous_end = header
            .base_offset
            .saturating_add(u64::from(header.message_count));
    }
    let first = log.first_offset();
    for from in [
        first,
        first.saturating_add(1),
        log.next_offset().saturating_sub(1),
    ] {
        if let Ok(window) = log.read(from, 2, 0) {
            let mut out = Vec::new();
            for stored in &window {
                let Some(offsets) = offsets_from(stored, from) else {
                    return records;
                };
                out.extend(offsets);
            }
            assert!(
                out.len() <= 2,
                "a read of 2 messages returned {}",
                out.len()
            );
            assert!(
                out.iter().all(|&offset| offset >= from),
                "a read returned an offset before its start"
            );
        }
    }
    records
}

/// Reopens (finding nothing to repair and the same records), appends one record
/// and reads it back.
fn reopen_and_append(dir: &Path, log: PartitionLog, records: &[Vec<u8>]) {
    let next = log.next_offset();
    drop(log);
    let mut log = PartitionLog::open(dir, config(1 << 20)).expect("a repaired log reopens");
    assert!(
        log.recovery_report().changed_nothing(),
        "the repair is durable: {:?}",
        log.recovery_report()
    );
    assert_eq!(log.next_offset(), next, "the next offset survives a reopen");
    if !records.is_empty() {
        assert_eq!(
            log.read(0, u32::MAX, usize::MAX).ok().as_deref(),
            Some(records),
            "a reopen returns the same records"
        );
    }
    let mut builder = RecordBuilder::new();
    builder.push(1, b"after", &[]);
    let mut appended = builder.finish(1);
    match log.append(&mut appended, 1) {
        Ok(done) => assert_eq!(
            done.base_offset, next,
            "appends continue at the next offset"
        ),
        Err(StorageError::OffsetOverflow { .. }) => return,
        Err(e) => panic!("append failed: {e}"),
    }
    let back = log
        .read(next, 1, usize::MAX)
        .expect("the appended record reads back");
    assert_eq!(
        back,
        vec![appended],
        "the appended record reads back as stored"
    );
}

/// The records of a recipe, within its limits.
fn recipe_records(records: &[Vec<RecipeMessage>]) -> Vec<RecordBuilder> {
    let mut out: Vec<RecordBuilder> = records
        .iter()
        .take(MAX_RECORDS)
        .map(|messages| {
            let mut builder = RecordBuilder::new();
            for (i, m) in messages.iter().take(MAX_MESSAGES).enumerate() {
                let payload = &m.payload[..m.payload.len().min(MAX_PAYLOAD)];
                let headers = &m.user_headers[..m.user_headers.len().min(MAX_USER_HEADERS)];
                builder.push(i as u128 + 1, payload, headers);
            }
            if builder.message_count() == 0 {
                builder.push(1, &[], &[]);
            }
            builder
        })
        .collect();
    if out.is_empty() {
        let mut builder = RecordBuilder::new();
        builder.push(1, &[], &[]);
        out.push(builder);
    }
    out
}

/// Appends valid records, damages the closed log once, and checks what survives.
fn run_recipe(dir: &Path, recipe: Recipe) {
    let segment_size = 256 + u64::from(recipe.segment_size) * 8;
    let mut log = PartitionLog::open(dir, config(segment_size)).expect("a new log opens");
    let mut stamped: Vec<(u64, Vec<u8>)> = Vec::new();
    for (k, builder) in recipe_records(&recipe.records).into_iter().enumerate() {
        let mut stored = builder.finish(1);
        let base = log
            .append(&mut stored, 1000 * (k as u64 + 1))
            .expect("an append to a new log")
            .base_offset;
        stamped.push((base, stored));
    }
    // (segment, position in its file, record) of every append; a segment is named
    // by its first offset.
    let mut bases: Vec<u64> = list_bases(dir);
    bases.sort_unstable();
    let mut appended: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    for (base, stored) in stamped {
        let segment = *bases.iter().rev().find(|&&b| b <= base).expect("a segment");
        let position = match appended.last() {
            Some((s, p, r)) if *s == segment => p + r.len() as u64,
            _ => 0,
        };
        appended.push((segment, position, stored));
    }
    drop(log);
    let last = *bases.last().expect("a segment");
    if let Some(keep) = recipe.crash_index {
        // The process died: only a prefix of the last segment's index entries had
        // been written (`mem::forget` would leak a file handle per input).
        crash_index(dir, last, keep);
    }

    let pick = |segment: u8| bases[usize::from(segment) % bases.len()];
    // (segment, position) of the first byte changed in a data file.
    let mut damaged_at: Option<(u64, u64)> = None;
    let flipped = matches!(recipe.damage, Damage::Flip { .. });
    match recipe.damage {
        Damage::None => {}
        Damage::Cut { at } => {
            let path = data_path(dir, last);
            let len = fs::metadata(&path).expect("stat").len();
            let cut = u64::from(at) % (len + 1);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(cut))
                .expect("cut");
            damaged_at = Some((last, cut));
        }
        Damage::Flip { segment, at, mask } => {
            let chosen = pick(segment);
            let path = data_path(dir, chosen);
            let mut bytes = fs::read(&path).expect("read a segment");
            if !bytes.is_empty() {
                let at = usize::from(at) % bytes.len();
                bytes[at] ^= mask | 1;
                fs::write(&path, bytes).expect("write a segment");
                damaged_at = Some((chosen, at as u64));
            }
        }
        Damage::Garbage(garbage) => {
            OpenOptions::new()
                .append(true)
                .open(data_path(dir, last))
                .and_then(|mut f| f.write_all(&garbage))
                .expect("append garbage");
        }
        Damage::DeleteIndex { segment, time } => {
            let _ = fs::remove_file(index_path(dir, pick(segment), time));
        }
        Damage::GarbageIndex {
            segment,
            time,
            bytes,
        } => {
            fs::write(index_path(dir, pick(segment), time), bytes).expect("write an index");
        }
    }

    let log = PartitionLog::open(dir, config(segment_size)).expect("a damaged log opens");
    let read = read_checked(&log);
    // Every record the damage did not touch (before it in its segment, or in
    // another segment) is intact, and no record is read that was not appended.
    let before_damage = |segment: u64, position: u64, len: u64| match damaged_at {
        None => true,
        Some((s, at)) => segment != s || position + len <= at,
    };
    let by_base = |base: u64| {
        appended
            .iter()
            .find(|(_, _, r)| stored_base(r) == Some(base))
    };
    for stored in &read {
        let base = stored_base(stored).expect("a read record has a header");
        let (segment, position, expected) = by_base(base).expect("a read record was appended");
        if before_damage(*segment, *position, expected.len() as u64) {
            assert_eq!(
                stored, expected,
                "a record before the damage reads back as appended"
            );
        }
    }
    if flipped && read.is_empty() && log.read(0, u32::MAX, usize::MAX).is_err() {
        // The flipped byte is in a trusted closed segment and breaks its reads.
    } else {
        let read_bases: Vec<u64> = read.iter().filter_map(|r| stored_base(r)).collect();
        for (segment, position, stored) in &appended {
            if before_damage(*segment, *position, stored.len() as u64) {
                let base = stored_base(stored).expect("an appended record has a header");
                assert!(
                    read_bases.contains(&base),
                    "the record at offset {base}, before the damage, is lost"
                );
            }
        }
    }
    reopen_and_append(dir, log, &read);
}

/// Cuts both index files of the segment at `base` to at most `keep` entries, as
/// a killed process leaves them (the entries after the last flush never written).
fn crash_index(dir: &Path, base: u64, keep: u8) {
    for (time, entry) in [(false, 8u64), (true, 12)] {
        let path = index_path(dir, base, time);
        if let Ok(file) = OpenOptions::new().write(true).open(&path) {
            let len = file.metadata().map_or(0, |m| m.len());
            file.set_len(len.min(u64::from(keep) * entry))
                .expect("cut an index file");
        }
    }
}

/// The `base_offset` field of a record's header, damaged or not.
fn stored_base(stored: &[u8]) -> Option<u64> {
    stored.get(8..16)?.try_into().ok().map(u64::from_le_bytes)
}

fn list_bases(dir: &Path) -> Vec<u64> {
    fs::read_dir(dir)
        .expect("list the log directory")
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            name.to_str()?.strip_suffix(".log")?.parse().ok()
        })
        .collect()
}
