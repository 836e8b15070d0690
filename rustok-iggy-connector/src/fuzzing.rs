//! Entry points of the fuzz targets in `fuzz/` (cargo feature `fuzz`). Not an API:
//! they may change with any release.
//!
//! Each function takes the fuzzer's bytes, runs one part of the crate on them and
//! panics when an invariant breaks (a panic inside the crate is a finding too).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;

use crate::batch::{decode_messages, encode_batch, slice, validate};
use crate::config::Durability;
use crate::embedded::storage::{LogConfig, PartitionLog};
use crate::message::{Headers, OutgoingMessage};

/// The partition id of the logs the segment target builds.
const PARTITION: u32 = 1;

/// The fuzzer's bytes, taken from the front.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
}

fn data_path(dir: &Path, base: u64) -> std::path::PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn config(segment_size_bytes: u64) -> LogConfig {
    LogConfig {
        partition_id: PARTITION,
        segment_size_bytes,
        durability: Durability::Never,
    }
}

/// Segment recovery on files made from `data`, in a fresh temporary directory
/// (`TMPDIR`, so `/dev/shm` makes it fast).
///
/// The first byte picks the mode. Even: *raw*, the bytes become the files of a
/// partition (a last segment, optionally a closed segment before it and an offset
/// index). Odd: *recipe*, valid records are appended by the log itself, then one
/// damage is done while it is closed (a cut, a flipped byte, garbage, a deleted or
/// garbage index file). Then: open, read everything, verify, reopen, append.
///
/// Invariants: opening never fails but for overlapping segments; everything read
/// after the repair decodes and carries the offsets asked for; records before the
/// damage are intact; the repair is durable (a second open finds nothing to do);
/// appends continue at the next offset.
///
/// # Panics
/// When an invariant breaks.
pub fn segment_recovery(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut input = Input(data);
    let mode = input.byte();
    if mode & 1 == 0 {
        raw_segments(dir.path(), mode, &mut input);
    } else {
        recipe(dir.path(), mode, &mut input);
    }
}

/// Writes the raw files, then opens and checks.
fn raw_segments(dir: &Path, mode: u8, input: &mut Input<'_>) {
    let with_closed = mode & 2 != 0;
    let with_index = mode & 4 != 0;
    let mut last_base = if mode & 8 != 0 {
        u64::from(input.u32())
    } else {
        0
    };
    if with_closed {
        let len = usize::from(input.u16());
        fs::write(data_path(dir, 0), input.take(len)).expect("write a closed segment");
        last_base = last_base.max(1);
    }
    if with_index {
        let base = if with_closed { 0 } else { last_base };
        let len = usize::from(input.u16());
        let index = input.take(len);
        let (offsets, times) = index.split_at(index.len() / 2);
        fs::write(dir.join(format!("{base:020}.index")), offsets).expect("write an index");
        fs::write(dir.join(format!("{base:020}.timeindex")), times).expect("write an index");
    }
    fs::write(data_path(dir, last_base), input.rest()).expect("write the last segment");

    let log = match PartitionLog::open(dir, config(1 << 20)) {
        Ok(log) => log,
        Err(crate::StorageError::Corrupt { .. }) if with_closed => return,
        Err(e) => panic!("open failed: {e}"),
    };
    assert!(
        log.next_offset() >= last_base,
        "the next offset is at least the last segment's base"
    );
    let records = read_checked(&log);
    let verified = log.verify().expect("verify reads every segment");
    assert!(
        verified.damage.iter().all(|d| d.base_offset != last_base),
        "recovery walked the last segment, so verify finds no damage there: {verified:?}"
    );
    reopen_and_append(dir, log, &records);
}

/// Reads the whole log and windows of it; checks that every record decodes and
/// holds the offsets asked for.
fn read_checked(log: &PartitionLog) -> Vec<Vec<u8>> {
    let records = match log.read(0, u32::MAX, usize::MAX) {
        Ok(records) => records,
        // A trusted closed segment is not walked at open; its damage shows here.
        Err(crate::StorageError::Corrupt { .. } | crate::StorageError::CorruptRecord { .. }) => {
            return Vec::new();
        }
        Err(e) => panic!("read failed: {e}"),
    };
    let mut previous_end = 0u64;
    for record in &records {
        let Ok(header) = validate(record, false) else {
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
            for record in &window {
                if decode_messages(Bytes::copy_from_slice(record), from, u64::MAX, &mut out)
                    .is_err()
                {
                    return records;
                }
            }
            assert!(
                out.len() <= 2,
                "a read of 2 messages returned {}",
                out.len()
            );
            assert!(
                out.iter().all(|m| m.offset >= from),
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
        log.recovery_report().is_clean(),
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
    let mut record = encode_batch(&[OutgoingMessage::new(&b"after"[..]).with_id(1)], 1);
    match log.append(&mut record, 1) {
        Ok(base) => assert_eq!(base, next, "appends continue at the next offset"),
        Err(crate::StorageError::OffsetOverflow { .. }) => return,
        Err(e) => panic!("append failed: {e}"),
    }
    let back = log
        .read(next, 1, usize::MAX)
        .expect("the appended record reads back");
    assert_eq!(
        back,
        vec![record],
        "the appended record reads back as stored"
    );
}

/// Appends valid records, damages the closed log once, and checks what survives.
fn recipe(dir: &Path, mode: u8, input: &mut Input<'_>) {
    let segment_size = 256 + u64::from(input.byte()) * 8;
    let records_wanted = 1 + usize::from(input.byte() % 8);
    let mut log = PartitionLog::open(dir, config(segment_size)).expect("a new log opens");
    let mut stamped: Vec<(u64, Vec<u8>)> = Vec::new();
    for k in 0..records_wanted {
        let count = 1 + usize::from(input.byte() % 4);
        let messages: Vec<OutgoingMessage> = (0..count)
            .map(|i| {
                let len = usize::from(input.byte() % 64);
                let mut headers = Headers::new();
                if input.byte().is_multiple_of(4) {
                    headers.insert_str("k", "v").expect("a valid header");
                }
                OutgoingMessage::new(input.take(len).to_vec())
                    .with_id(i as u128 + 1)
                    .with_headers(headers)
            })
            .collect();
        let mut record = encode_batch(&messages, 1);
        let base = log
            .append(&mut record, 1000 * (k as u64 + 1))
            .expect("an append to a new log");
        stamped.push((base, record));
    }
    // (segment, position in its file, record) of every append; a segment is named
    // by its first offset.
    let mut bases: Vec<u64> = list_bases(dir);
    bases.sort_unstable();
    let mut appended: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    for (base, record) in stamped {
        let segment = *bases.iter().rev().find(|&&b| b <= base).expect("a segment");
        let position = match appended.last() {
            Some((s, p, r)) if *s == segment => p + r.len() as u64,
            _ => 0,
        };
        appended.push((segment, position, record));
    }
    drop(log);
    if mode & 2 != 0 {
        // The process died: only a prefix of the last segment's index entries had
        // been written (`mem::forget` would leak a file handle per input).
        crash_index(dir, *bases.last().expect("a segment"), input.byte());
    }

    let chosen = bases[usize::from(input.byte()) % bases.len()];
    let last = *bases.last().expect("a segment");
    let damage = input.byte() % 6;
    // (segment, position) of the first byte changed in a data file.
    let mut damaged_at: Option<(u64, u64)> = None;
    match damage {
        1 => {
            let path = data_path(dir, last);
            let len = fs::metadata(&path).expect("stat").len();
            let cut = u64::from(input.u32()) % (len + 1);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(cut))
                .expect("cut");
            damaged_at = Some((last, cut));
        }
        2 => {
            let path = data_path(dir, chosen);
            let mut bytes = fs::read(&path).expect("read a segment");
            if !bytes.is_empty() {
                let at = usize::from(input.u16()) % bytes.len();
                bytes[at] ^= input.byte() | 1;
                fs::write(&path, bytes).expect("write a segment");
                damaged_at = Some((chosen, at as u64));
            }
        }
        3 => {
            OpenOptions::new()
                .append(true)
                .open(data_path(dir, last))
                .and_then(|mut f| f.write_all(input.rest()))
                .expect("append garbage");
        }
        4 => {
            let ext = if input.byte() & 1 == 0 {
                "index"
            } else {
                "timeindex"
            };
            let _ = fs::remove_file(dir.join(format!("{chosen:020}.{ext}")));
        }
        5 => {
            let ext = if input.byte() & 1 == 0 {
                "index"
            } else {
                "timeindex"
            };
            fs::write(dir.join(format!("{chosen:020}.{ext}")), input.rest())
                .expect("write an index");
        }
        _ => {}
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
    for record in &read {
        let base = stored_base(record).expect("a read record has a header");
        let (segment, position, expected) = by_base(base).expect("a read record was appended");
        if before_damage(*segment, *position, expected.len() as u64) {
            assert_eq!(
                record, expected,
                "a record before the damage reads back as appended"
            );
        }
    }
    if damage == 2 && read.is_empty() && log.read(0, u32::MAX, usize::MAX).is_err() {
        // The flipped byte is in a trusted closed segment and breaks its reads.
    } else {
        let read_bases: Vec<u64> = read.iter().filter_map(|r| stored_base(r)).collect();
        for (segment, position, record) in &appended {
            if before_damage(*segment, *position, record.len() as u64) {
                let base = stored_base(record).expect("an appended record has a header");
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
pub(crate) fn crash_index(dir: &Path, base: u64, keep: u8) {
    for (ext, entry) in [("index", 8u64), ("timeindex", 12)] {
        let path = dir.join(format!("{base:020}.{ext}"));
        if let Ok(file) = OpenOptions::new().write(true).open(&path) {
            let len = file.metadata().map_or(0, |m| m.len());
            file.set_len(len.min(u64::from(keep) * entry))
                .expect("cut an index file");
        }
    }
}

fn stored_base(record: &[u8]) -> Option<u64> {
    record.get(8..16)?.try_into().ok().map(u64::from_le_bytes)
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

/// Batch records and user headers from untrusted bytes: [`validate`] (layout and
/// checksums), the offset delta check of appends, [`decode_messages`] and [`slice`]
/// over windows of the record, and `Headers::decode`.
///
/// Invariants: nothing panics; a slice is a valid record holding the messages of its
/// window, in order, and passes the checksum check whenever the whole record does.
///
/// # Panics
/// When an invariant breaks.
pub fn batch_decode(data: &[u8]) {
    let _ = Headers::decode(data);
    let record = Bytes::copy_from_slice(data);
    let mut all = Vec::new();
    let decoded = decode_messages(record.clone(), 0, u64::MAX, &mut all);
    let Ok(header) = validate(data, false) else {
        return;
    };
    if crate::batch::check_offset_deltas(data).is_err() {
        // The log refuses such a record (PartitionLog::append), so it is never read
        // back or sliced.
        return;
    }
    let sealed = validate(data, true).is_ok();
    let base = header.base_offset;
    let end = base.saturating_add(u64::from(header.message_count));
    let windows = [
        (0, u64::MAX),
        (base, base.saturating_add(1)),
        (base.saturating_add(1), end),
        (end.saturating_sub(1), end),
        (base.saturating_add(1), end.saturating_sub(1)),
    ];
    for (from, to) in windows {
        let mut window = Vec::new();
        let window_decoded = decode_messages(record.clone(), from, to, &mut window);
        let Ok(Some((sliced, count))) = slice(data, from, to) else {
            continue;
        };
        let sliced_header = validate(&sliced, false).expect("a slice is a valid record");
        assert_eq!(
            sliced_header.message_count, count,
            "a slice counts its messages"
        );
        assert!(
            count <= header.message_count,
            "a slice holds no more than the record"
        );
        assert_eq!(
            sliced_header.base_offset, base,
            "a slice keeps the base offset"
        );
        if sealed {
            validate(&sliced, true).expect("a slice of a sealed record is sealed");
        }
        if decoded.is_ok() && window_decoded.is_ok() {
            let mut again = Vec::new();
            decode_messages(Bytes::from(sliced), 0, u64::MAX, &mut again)
                .expect("a slice of a decodable record decodes");
            let offsets =
                |m: &[crate::ReceivedMessage]| m.iter().map(|m| m.offset).collect::<Vec<_>>();
            assert_eq!(
                offsets(&again),
                offsets(&window),
                "a slice holds its window's messages"
            );
        }
    }
}

/// A valid segment file of `records` records (1 to 4 messages each, partition 1)
/// whose first offset is `first_offset`, for seed corpora; with the offset after its
/// last message.
#[must_use]
pub fn sample_segment(first_offset: u64, records: usize) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut offset = first_offset;
    for k in 0..records {
        let count = 1 + k % 4;
        let messages: Vec<OutgoingMessage> = (0..count)
            .map(|i| {
                let mut headers = Headers::new();
                if i % 2 == 0 {
                    headers
                        .insert_str("key", format!("v{i}"))
                        .expect("a valid header");
                }
                OutgoingMessage::new(vec![b'a' + (i as u8); 3 + k])
                    .with_id(i as u128 + 1)
                    .with_headers(headers)
            })
            .collect();
        let mut record = encode_batch(&messages, 1);
        crate::batch::stamp(&mut record, PARTITION, offset, 1000 * (k as u64 + 1));
        offset += count as u64;
        out.extend_from_slice(&record);
    }
    (out, offset)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The files of `dir`, relative to this crate; none when it does not exist.
    fn inputs(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut files: Vec<(PathBuf, Vec<u8>)> = entries
            .map(|e| {
                let path = e.expect("a directory entry").path();
                let bytes = fs::read(&path).expect("a readable input");
                (path, bytes)
            })
            .collect();
        files.sort();
        files
    }

    /// Every input checked in under `fuzz-regressions/<target>/` (crashes found
    /// by scripts/fuzz.sh) and every seed of `fuzz/seeds/<target>/` runs through
    /// its target's entry point.
    #[test]
    fn every_regression_input_passes() {
        type Entry = fn(&[u8]);
        let targets: [(&str, Entry); 2] = [
            ("segment_recovery", segment_recovery),
            ("batch_decode", batch_decode),
        ];
        for (target, entry) in targets {
            for dir in [
                format!("fuzz-regressions/{target}"),
                format!("../fuzz/seeds/{target}"),
            ] {
                for (path, bytes) in inputs(&dir) {
                    eprintln!("{}", path.display());
                    entry(&bytes);
                }
            }
        }
    }

    /// The seeds are what they claim: valid records and segments.
    #[test]
    fn sample_segments_are_valid_and_recover_cleanly() {
        let (bytes, end) = sample_segment(10, 4);
        assert_eq!(end, 20);
        let dir = tempfile::tempdir().expect("a temporary directory");
        fs::write(data_path(dir.path(), 10), &bytes).expect("write a segment");
        let log = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
        assert_eq!(log.recovery_report().truncated_bytes, 0);
        assert_eq!(log.next_offset(), 20);
        assert_eq!(
            log.read(0, u32::MAX, usize::MAX).expect("read").concat(),
            bytes
        );
    }

    /// A few hundred deterministic pseudo-random inputs through each entry point, so
    /// that `cargo test` exercises them without a fuzzer.
    #[test]
    fn pseudo_random_inputs_pass() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (valid, _) = sample_segment(0, 3);
        for round in 0..300u64 {
            let len = (next() % 700) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 3 == 0 {
                // A valid segment with a few bytes changed: deeper than pure noise.
                bytes = [&[0u8][..], &valid].concat();
                for _ in 0..(1 + next() % 3) {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] ^= next() as u8 | 1;
                }
            }
            segment_recovery(&bytes);
            batch_decode(bytes.get(1..).unwrap_or_default());
        }
    }
}
