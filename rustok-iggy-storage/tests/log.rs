//! Tests of the partition log: roundtrips, windows, restarts, damage, retention.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use iggy_binary_protocol::WireError;
use iggy_binary_protocol::batch::BATCH_CHECKSUM_OFFSET;
use tempfile::TempDir;

use rustok_iggy_storage::record::{stamp, validate};
use rustok_iggy_storage::{
    DamageKind, Durability, LogConfig, LogStats, PartitionLog, RecoveryReport, RetentionReport,
    StorageError,
};

mod support;
use support::{TestMessage, encode};

const PARTITION: u32 = 3;
/// Messages per test record.
const PER: usize = 3;

fn config(segment_size_bytes: u64, durability: Durability) -> LogConfig {
    LogConfig {
        partition_id: PARTITION,
        segment_size_bytes,
        durability,
    }
}

/// A record of `count` messages whose payloads are `"{tag}-{i}"`.
fn record(tag: &str, count: usize) -> Vec<u8> {
    let messages: Vec<TestMessage> = (0..count)
        .map(|i| TestMessage::new(format!("{tag}-{i}").into_bytes()).with_id(i as u128 + 1))
        .collect();
    encode(&messages, 1_000)
}

/// The length of every record made by [`fill`].
fn record_len() -> u64 {
    record("r0", PER).len() as u64
}

/// `(offset, payload)` of every message in `records`.
fn messages(records: &[Vec<u8>]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for record in records {
        validate(record, true).unwrap();
        out.extend(support::decode(record).unwrap());
    }
    out.into_iter()
        .map(|m| (m.offset, String::from_utf8(m.payload.to_vec()).unwrap()))
        .collect()
}

/// Appends records `r{first}..r{first + n}` of [`PER`] messages, record `k` at
/// timestamp `1000 * (k + 1)`; returns them as stamped.
fn fill(log: &mut PartitionLog, first: usize, n: usize) -> Vec<Vec<u8>> {
    (first..first + n)
        .map(|k| {
            let mut r = record(&format!("r{k}"), PER);
            let expected = log.next_offset();
            let base = log
                .append(&mut r, 1000 * (k as u64 + 1))
                .unwrap()
                .base_offset;
            assert_eq!(base, expected);
            r
        })
        .collect()
}

/// A log whose segments hold two records each, with six records: segments 0 (r0,
/// r1), 6 (r2, r3) and 12 (r4, r5, active), synced (so segments 0 and 6 are
/// sealed, as a broker leaves them). Returns the directory, the log and the
/// stamped records.
fn six_records() -> (TempDir, PartitionLog, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log =
        PartitionLog::open(dir.path(), config(2 * record_len(), Durability::Never)).unwrap();
    let records = fill(&mut log, 0, 6);
    log.sync().unwrap();
    (dir, log, records)
}

fn reopen(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, config(2 * record_len(), Durability::Never)).unwrap()
}

fn seg(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn read_all(log: &PartitionLog) -> Vec<Vec<u8>> {
    log.read(0, u32::MAX, usize::MAX).unwrap()
}

fn flip_byte(path: &Path, position: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, position).unwrap();
    byte[0] ^= 0x5A;
    file.write_all_at(&byte, position).unwrap();
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn partition_log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + std::fmt::Debug>() {}
    assert_send_sync::<PartitionLog>();
}

#[test]
fn appends_roll_segments_and_read_back_byte_for_byte() {
    let (dir, log, records) = six_records();
    let len = record_len();
    assert_eq!(log.next_offset(), 18);
    assert_eq!(log.first_offset(), 0);
    assert_eq!(
        log.stats(),
        LogStats {
            segments: 3,
            size_bytes: 6 * len,
            messages: 18,
            ..LogStats::default()
        }
    );
    let mut expected_files = Vec::new();
    for base in [0u64, 6, 12] {
        for ext in ["index", "log", "seal", "timeindex"] {
            // The active segment has no seal.
            if !(base == 12 && ext == "seal") {
                expected_files.push(format!("{base:020}.{ext}"));
            }
        }
    }
    assert_eq!(file_names(dir.path()), expected_files);
    assert_eq!(
        fs::metadata(seg(dir.path(), 6, "log")).unwrap().len(),
        2 * len
    );
    // Closed segments have their index files written when they are sealed.
    assert_eq!(fs::metadata(seg(dir.path(), 6, "index")).unwrap().len(), 16);
    assert_eq!(
        fs::metadata(seg(dir.path(), 6, "timeindex")).unwrap().len(),
        24
    );

    let read = read_all(&log);
    assert_eq!(read, records);
    for (k, r) in read.iter().enumerate() {
        let header = validate(r, true).unwrap();
        assert_eq!(header.partition_id, u64::from(PARTITION));
        assert_eq!(header.base_offset, (k * PER) as u64);
        assert_eq!(header.base_timestamp, 1000 * (k as u64 + 1));
    }
    let all = messages(&read);
    assert_eq!(all.len(), 18);
    assert_eq!(all[0], (0, "r0-0".to_owned()));
    assert_eq!(all[7], (7, "r2-1".to_owned()));
    assert_eq!(all[17], (17, "r5-2".to_owned()));
}

#[test]
fn reads_are_sliced_to_the_window() {
    let (_dir, log, _records) = six_records();
    let window = log.read(4, 5, usize::MAX).unwrap();
    assert_eq!(window.len(), 2);
    assert_eq!(validate(&window[0], false).unwrap().base_offset, 3);
    assert_eq!(validate(&window[1], false).unwrap().base_offset, 6);
    assert_eq!(
        messages(&window),
        vec![
            (4, "r1-1".to_owned()),
            (5, "r1-2".to_owned()),
            (6, "r2-0".to_owned()),
            (7, "r2-1".to_owned()),
            (8, "r2-2".to_owned()),
        ]
    );
    // Across a segment boundary, with whole records in between.
    let window = log.read(5, 9, usize::MAX).unwrap();
    assert_eq!(window.len(), 4);
    assert_eq!(
        messages(&window).iter().map(|m| m.0).collect::<Vec<_>>(),
        (5..14).collect::<Vec<u64>>()
    );
    assert_eq!(
        messages(&log.read(17, 10, usize::MAX).unwrap()),
        vec![(17, "r5-2".to_owned())]
    );
    assert!(log.read(18, 10, usize::MAX).unwrap().is_empty());
    assert!(log.read(1000, 10, usize::MAX).unwrap().is_empty());
    assert!(log.read(0, 0, usize::MAX).unwrap().is_empty());
}

#[test]
fn reads_stop_at_max_bytes_but_return_at_least_one_record() {
    let (_dir, log, records) = six_records();
    let len = record_len() as usize;
    assert_eq!(log.read(0, 100, len).unwrap(), records[..1].to_vec());
    assert_eq!(
        log.read(0, 100, 2 * len - 1).unwrap(),
        records[..1].to_vec()
    );
    assert_eq!(log.read(0, 100, 2 * len).unwrap(), records[..2].to_vec());
    assert_eq!(log.read(0, 100, 5 * len).unwrap(), records[..5].to_vec());
    assert_eq!(log.read(0, 100, 0).unwrap(), records[..1].to_vec());
    let one = log.read(1, 100, 0).unwrap();
    assert_eq!(
        messages(&one).iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn reopening_finds_the_same_records_and_continues_the_offsets() {
    let (dir, log, records) = six_records();
    drop(log);
    let mut log = reopen(dir.path());
    let report = log.recovery_report().clone();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.segments, 3);
    assert_eq!(log.next_offset(), 18);
    assert_eq!(log.first_offset(), 0);
    assert_eq!(read_all(&log), records);
    assert_eq!(log.offset_at_timestamp(3500), Some(9));
    let more = fill(&mut log, 6, 1);
    assert_eq!(validate(&more[0], true).unwrap().base_offset, 18);
    assert_eq!(log.next_offset(), 21);
    assert_eq!(log.stats().segments, 4);
}

#[test]
fn a_killed_process_loses_no_appended_record() {
    let (dir, log, records) = six_records();
    // No Drop: the active segment's index entries are never written.
    std::mem::forget(log);
    let log = reopen(dir.path());
    let report = log.recovery_report();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(report.indexes_rebuilt, 1);
    assert_eq!(read_all(&log), records);
    assert_eq!(log.next_offset(), 18);
}

#[test]
fn offset_at_timestamp_finds_the_first_batch_at_or_after_a_time() {
    let (dir, log, _records) = six_records();
    assert_eq!(log.offset_at_timestamp(0), Some(0));
    assert_eq!(log.offset_at_timestamp(1000), Some(0));
    assert_eq!(log.offset_at_timestamp(1001), Some(3));
    assert_eq!(log.offset_at_timestamp(4000), Some(9));
    assert_eq!(log.offset_at_timestamp(5999), Some(15));
    assert_eq!(log.offset_at_timestamp(6001), None);
    drop(log);
    let log = reopen(dir.path());
    assert_eq!(log.offset_at_timestamp(1001), Some(3));
    assert_eq!(log.offset_at_timestamp(6001), None);
}

#[test]
fn offset_at_timestamp_survives_a_clock_going_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, Durability::Never)).unwrap();
    for ts in [5000u64, 3000, 6000, 4000] {
        log.append(&mut record("t", 2), ts).unwrap();
    }
    assert_eq!(log.offset_at_timestamp(2000), Some(0));
    assert_eq!(log.offset_at_timestamp(5000), Some(0));
    assert_eq!(log.offset_at_timestamp(5001), Some(4));
    assert_eq!(log.offset_at_timestamp(6001), None);
    // The record keeps its own timestamp.
    let second = log.read(2, 2, usize::MAX).unwrap();
    assert_eq!(validate(&second[0], true).unwrap().base_timestamp, 3000);
}

/// Reopens after `damage` and checks the outcome: `kept` records survive intact and
/// the next append gets `next`.
fn check_damage_recovery(
    dir: &Path,
    records: &[Vec<u8>],
    kept: usize,
    next: u64,
) -> RecoveryReport {
    let mut log = reopen(dir);
    let report = log.recovery_report().clone();
    assert_eq!(read_all(&log), records[..kept].to_vec());
    assert_eq!(messages(&read_all(&log)), messages(&records[..kept]));
    assert_eq!(log.next_offset(), next);
    let mut r = record("after", 2);
    assert_eq!(log.append(&mut r, 99_000).unwrap().base_offset, next);
    assert_eq!(log.read(next, 10, usize::MAX).unwrap(), vec![r]);
    drop(log);
    // The repair is durable: the second open finds nothing to do.
    let again = reopen(dir);
    assert!(
        again.recovery_report().is_clean(),
        "{:?}",
        again.recovery_report()
    );
    assert_eq!(again.next_offset(), next + 2);
    report
}

#[test]
fn garbage_appended_to_the_last_segment_is_cut_off() {
    let (dir, log, records) = six_records();
    drop(log);
    let path = seg(dir.path(), 12, "log");
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0xAB; 100]);
    fs::write(&path, bytes).unwrap();

    let report = check_damage_recovery(dir.path(), &records, 6, 18);
    assert_eq!(report.truncated_bytes, 100);
    assert_eq!(report.dropped_records, 1);
    assert_eq!(report.indexes_rebuilt, 0);
    assert_eq!(report.damage.len(), 1);
    assert_eq!(report.damage[0].base_offset, 12);
    assert_eq!(report.damage[0].position, 2 * record_len());
    assert_eq!(
        report.damage[0].kind,
        DamageKind::Torn {
            need: 256,
            have: 100
        }
    );
}

#[test]
fn a_torn_last_record_is_cut_off() {
    let (dir, log, records) = six_records();
    drop(log);
    let len = record_len();
    // r5 loses its last 10 bytes: its header is whole, its frames are not.
    set_len(&seg(dir.path(), 12, "log"), 2 * len - 10);

    let report = check_damage_recovery(dir.path(), &records, 5, 15);
    assert_eq!(report.truncated_bytes, len - 10);
    assert_eq!(report.dropped_records, 1);
    assert_eq!(report.indexes_rebuilt, 1);
    assert_eq!(
        report.damage[0].kind,
        DamageKind::Torn {
            need: len,
            have: len - 10
        }
    );
}

#[test]
fn a_flipped_payload_byte_cuts_the_log_at_that_record() {
    let (dir, log, records) = six_records();
    drop(log);
    let len = record_len();
    // The second payload byte of r5's first message.
    flip_byte(&seg(dir.path(), 12, "log"), len + 256 + 48 + 1);

    let report = check_damage_recovery(dir.path(), &records, 5, 15);
    assert_eq!(report.truncated_bytes, len);
    assert_eq!(report.dropped_records, 1);
    assert_eq!(report.indexes_rebuilt, 1);
    assert_eq!(report.damage[0].position, len);
    assert!(
        matches!(
            report.damage[0].kind,
            DamageKind::Invalid(WireError::InvalidMessageChecksum { offset: 15, .. })
        ),
        "{:?}",
        report.damage[0].kind
    );
}

#[test]
fn a_flipped_batch_checksum_byte_loses_only_that_record() {
    let (dir, log, records) = six_records();
    drop(log);
    let len = record_len();
    let path = seg(dir.path(), 12, "log");
    flip_byte(&path, BATCH_CHECKSUM_OFFSET as u64 + 3);

    // r4 is the first record of the last segment and r5 follows it intact: not a
    // tail. r4 is skipped (kept in the file, copied aside), r5 is served.
    let mut log = reopen(dir.path());
    let report = log.recovery_report().clone();
    assert_eq!(report.truncated_bytes, 0);
    assert!(report.damage.is_empty(), "nothing cut: {report:?}");
    assert_eq!(report.kept.len(), 1, "{report:?}");
    let damage = &report.kept[0];
    assert_eq!((damage.position, damage.end), (0, len));
    assert_eq!((damage.lost_from, damage.lost_to), (12, 15));
    assert!(
        matches!(
            damage.kind,
            DamageKind::Invalid(WireError::InvalidBatchChecksum {
                base_offset: 12,
                ..
            })
        ),
        "{:?}",
        damage.kind
    );
    let copy = damage.copy.clone().expect("copied aside");
    assert_eq!(
        fs::read(&copy).unwrap(),
        fs::read(&path).unwrap()[..len as usize]
    );
    let kept: Vec<Vec<u8>> = [&records[..4], &records[5..]].concat();
    assert_eq!(read_all(&log), kept);
    assert_eq!(fs::metadata(&path).unwrap().len(), 2 * len, "nothing cut");
    assert_eq!(log.stats().lost_messages, 3);
    assert_eq!(log.next_offset(), 18);
    assert_eq!(log.append(&mut record("n", 1), 1).unwrap().base_offset, 18);
    drop(log);
    let log = reopen(dir.path());
    assert_eq!(
        log.recovery_report().kept.len(),
        1,
        "found again, copied once"
    );
    assert_eq!(read_all(&log).len(), 6);
}

#[test]
fn a_record_of_another_partition_is_cut_off() {
    let (dir, log, records) = six_records();
    drop(log);
    let mut foreign = record("x", 1);
    stamp(&mut foreign, PARTITION + 1, 18, 7000);
    let path = seg(dir.path(), 12, "log");
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&foreign);
    fs::write(&path, bytes).unwrap();

    let report = check_damage_recovery(dir.path(), &records, 6, 18);
    assert_eq!(
        report.damage[0].kind,
        DamageKind::WrongPartition {
            expected: PARTITION,
            found: u64::from(PARTITION) + 1
        }
    );
}

#[test]
fn every_cut_of_the_last_segment_keeps_the_whole_records_before_it() {
    let source = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(source.path(), config(1 << 20, Durability::Never)).unwrap();
    let records = fill(&mut log, 0, 3);
    drop(log);
    let bytes = fs::read(seg(source.path(), 0, "log")).unwrap();
    let len = record_len() as usize;
    let mut cuts: Vec<usize> = (0..bytes.len()).step_by(41).collect();
    for boundary in [0, len, 2 * len, 3 * len] {
        for cut in [
            boundary.saturating_sub(1),
            boundary,
            boundary + 1,
            boundary + 256,
        ] {
            cuts.push(cut.min(bytes.len()));
        }
    }
    for cut in cuts {
        let dir = tempfile::tempdir().unwrap();
        fs::write(seg(dir.path(), 0, "log"), &bytes[..cut]).unwrap();
        let log = reopen(dir.path());
        let whole = cut / len;
        assert_eq!(log.next_offset(), (whole * PER) as u64, "cut at {cut}");
        assert_eq!(read_all(&log), records[..whole].to_vec(), "cut at {cut}");
        assert_eq!(
            log.recovery_report().truncated_bytes,
            (cut - whole * len) as u64,
            "cut at {cut}"
        );
    }
}

#[test]
fn a_segment_of_garbage_recovers_to_its_named_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic noise, with a header that decodes and a length that can be
    // followed, so the walk gets as far as the checksums.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut garbage: Vec<u8> = (0..5000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    garbage[32..40].copy_from_slice(&1000u64.to_le_bytes());
    garbage[52..256].fill(0);
    fs::write(seg(dir.path(), 50, "log"), b"").unwrap();
    fs::write(seg(dir.path(), 100, "log"), &garbage).unwrap();
    fs::write(seg(dir.path(), 100, "index"), &garbage[..77]).unwrap();
    fs::write(dir.path().join("offsets.json"), b"{}").unwrap();

    let mut log = reopen(dir.path());
    assert_eq!(log.recovery_report().truncated_bytes, 5000);
    assert_eq!(log.recovery_report().dropped_records, 2);
    assert_eq!(log.recovery_report().damage.len(), 1, "a torn tail, cut");
    assert_eq!(log.recovery_report().segments, 2);
    assert_eq!(log.next_offset(), 100);
    assert_eq!(log.first_offset(), 100);
    assert!(read_all(&log).is_empty());
    assert_eq!(log.append(&mut record("a", 1), 1).unwrap().base_offset, 100);
    assert_eq!(log.first_offset(), 100);
    assert_eq!(fs::read(dir.path().join("offsets.json")).unwrap(), b"{}");
}

#[test]
fn damage_at_the_end_of_a_closed_segment_is_kept_aside_and_later_segments_are_kept() {
    let (dir, log, records) = six_records();
    drop(log);
    let len = record_len();
    // Cut r3 (offsets 9..12) in half: segment 6 no longer matches its seal. A
    // closed segment is never cut: the half record stays, skipped.
    let path = seg(dir.path(), 6, "log");
    set_len(&path, len + len / 2);

    let mut log = reopen(dir.path());
    let report = log.recovery_report().clone();
    assert_eq!(report.truncated_bytes, 0);
    assert!(report.damage.is_empty(), "{report:?}");
    assert_eq!(report.kept.len(), 1);
    assert_eq!(report.kept[0].base_offset, 6);
    assert_eq!((report.kept[0].lost_from, report.kept[0].lost_to), (9, 12));
    assert_eq!(fs::metadata(&path).unwrap().len(), len + len / 2);
    assert_eq!(log.next_offset(), 18);
    let kept: Vec<Vec<u8>> = [&records[..3], &records[4..]].concat();
    assert_eq!(read_all(&log), kept);
    // A read starting in the gap starts after it and counts only stored messages.
    let after_gap = log.read(9, 4, usize::MAX).unwrap();
    assert_eq!(
        messages(&after_gap).iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![12, 13, 14, 15]
    );
    let across = log.read(7, 4, usize::MAX).unwrap();
    assert_eq!(
        messages(&across).iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![7, 8, 12, 13]
    );
    assert_eq!(log.stats().messages, 15);
    assert_eq!(log.append(&mut record("n", 1), 1).unwrap().base_offset, 18);
}

#[test]
fn damage_in_the_middle_of_a_segment_loses_only_the_damaged_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, Durability::Never)).unwrap();
    let records = fill(&mut log, 0, 10);
    drop(log);
    let len = record_len();
    let path = seg(dir.path(), 0, "log");
    // r3: a payload byte; r6: its length field (the damage ends at r7, which the
    // scan finds byte by byte).
    flip_byte(&path, 3 * len + 256 + 48 + 1);
    flip_byte(&path, 6 * len + 33);

    let log = reopen(dir.path());
    let report = log.recovery_report().clone();
    assert_eq!(report.kept.len(), 2, "{report:?}");
    assert_eq!(
        report
            .kept
            .iter()
            .map(|d| (d.lost_from, d.lost_to))
            .collect::<Vec<_>>(),
        vec![(9, 12), (18, 21)]
    );
    let kept: Vec<Vec<u8>> = records
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != 3 && *k != 6)
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(read_all(&log), kept);
    assert_eq!(log.next_offset(), 30);
    assert_eq!(log.verify().unwrap().damage.len(), 2);
}

#[test]
fn segments_that_claim_the_same_offsets_are_refused() {
    let (dir, log, _records) = six_records();
    drop(log);
    let len = record_len() as usize;
    // A copy of r1 (offsets 3..6) as a segment of its own, inside segment 0.
    let bytes = fs::read(seg(dir.path(), 0, "log")).unwrap();
    fs::write(seg(dir.path(), 3, "log"), &bytes[len..2 * len]).unwrap();
    let err = PartitionLog::open(dir.path(), config(1 << 20, Durability::Never)).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

#[test]
fn deleted_or_garbage_index_files_are_rebuilt() {
    let (dir, log, records) = six_records();
    drop(log);
    fs::remove_file(seg(dir.path(), 0, "index")).unwrap();
    fs::write(seg(dir.path(), 6, "timeindex"), [0xFF; 24]).unwrap();
    fs::remove_file(seg(dir.path(), 12, "timeindex")).unwrap();

    let log = reopen(dir.path());
    let report = log.recovery_report();
    assert_eq!(report.indexes_rebuilt, 3);
    assert_eq!(report.truncated_bytes, 0);
    assert!(report.damage.is_empty());
    assert_eq!(read_all(&log), records);
    assert_eq!(log.offset_at_timestamp(3001), Some(9));
    for base in [0, 6, 12] {
        assert_eq!(
            fs::metadata(seg(dir.path(), base, "index")).unwrap().len(),
            16
        );
        assert_eq!(
            fs::metadata(seg(dir.path(), base, "timeindex"))
                .unwrap()
                .len(),
            24
        );
    }
    drop(log);
    assert!(reopen(dir.path()).recovery_report().is_clean());
}

#[test]
fn retention_by_age_deletes_only_whole_expired_segments() {
    let (dir, mut log, records) = six_records();
    let len = record_len();
    // Segment 0 holds timestamps 1000 and 2000, segment 6 3000 and 4000.
    let report = log
        .apply_retention(10_000, Some(Duration::from_micros(7_000)), None)
        .unwrap();
    assert_eq!(
        report,
        RetentionReport {
            segments_deleted: 1,
            bytes_deleted: 2 * len,
            messages_deleted: 6,
            first_offset: 6
        }
    );
    assert!(!seg(dir.path(), 0, "log").exists());
    assert!(!seg(dir.path(), 0, "index").exists());
    assert!(!seg(dir.path(), 0, "timeindex").exists());
    assert_eq!(log.first_offset(), 6);
    assert_eq!(log.next_offset(), 18);
    assert_eq!(log.read(0, 100, usize::MAX).unwrap(), records[2..].to_vec());

    // Everything is expired, but the active segment stays.
    let report = log
        .apply_retention(u64::MAX, Some(Duration::from_micros(1)), None)
        .unwrap();
    assert_eq!(report.segments_deleted, 1);
    assert_eq!(log.first_offset(), 12);
    assert_eq!(log.stats().segments, 1);
    assert_eq!(log.read(0, 100, usize::MAX).unwrap(), records[4..].to_vec());
    drop(log);
    let log = reopen(dir.path());
    assert_eq!(log.first_offset(), 12);
    assert_eq!(log.next_offset(), 18);
}

#[test]
fn retention_by_size_deletes_oldest_segments_and_keeps_the_active_one() {
    let (_dir, mut log, records) = six_records();
    let len = record_len();
    let report = log.apply_retention(0, None, Some(3 * len)).unwrap();
    assert_eq!(report.segments_deleted, 2);
    assert_eq!(report.bytes_deleted, 4 * len);
    assert_eq!(report.first_offset, 12);
    assert_eq!(log.stats().size_bytes, 2 * len);
    let report = log.apply_retention(0, None, Some(0)).unwrap();
    assert_eq!(report.segments_deleted, 0);
    assert_eq!(log.read(0, 100, usize::MAX).unwrap(), records[4..].to_vec());
    assert_eq!(log.append(&mut record("n", 1), 1).unwrap().base_offset, 18);
}

#[test]
fn purge_deletes_every_message_but_keeps_the_offsets() {
    let (dir, mut log, _records) = six_records();
    log.purge().unwrap();
    assert_eq!(
        log.stats(),
        LogStats {
            segments: 1,
            size_bytes: 0,
            messages: 0,
            ..LogStats::default()
        }
    );
    assert_eq!(log.first_offset(), 18);
    assert_eq!(log.next_offset(), 18);
    assert!(read_all(&log).is_empty());
    assert_eq!(log.offset_at_timestamp(0), None);
    // Purging an empty log changes nothing.
    log.purge().unwrap();
    assert_eq!(log.next_offset(), 18);
    assert_eq!(log.stats().segments, 1);
    drop(log);
    let mut log = reopen(dir.path());
    assert_eq!(log.next_offset(), 18);
    assert_eq!(log.append(&mut record("p", 2), 1).unwrap().base_offset, 18);
    assert_eq!(
        file_names(dir.path()),
        vec![
            format!("{:020}.index", 18),
            format!("{:020}.log", 18),
            format!("{:020}.timeindex", 18)
        ]
    );
}

#[test]
fn verify_reports_a_flipped_byte_that_recovery_did_not_look_at() {
    let (dir, log, _records) = six_records();
    let clean = log.verify().unwrap();
    assert!(clean.is_clean());
    assert_eq!((clean.segments, clean.records, clean.messages), (3, 6, 18));

    // A payload byte of r2, in closed segment 6.
    flip_byte(&seg(dir.path(), 6, "log"), 256 + 48 + 2);
    let report = log.verify().unwrap();
    assert_eq!(report.damage.len(), 1);
    assert_eq!(report.damage[0].base_offset, 6);
    assert_eq!(report.damage[0].position, 0);
    assert!(
        matches!(
            report.damage[0].kind,
            DamageKind::Invalid(WireError::InvalidMessageChecksum { offset: 6, .. })
        ),
        "{:?}",
        report.damage[0].kind
    );
    // Every other record is walked, the one after the damage included.
    assert_eq!(report.records, 5);

    // Reopening trusts the closed segment's seal; verify still finds it.
    drop(log);
    let log = reopen(dir.path());
    assert!(log.recovery_report().is_clean());
    assert_eq!(log.verify().unwrap().damage.len(), 1);
}

#[test]
fn a_sync_covers_what_was_appended_before_its_plan() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, Durability::EveryBatch)).unwrap();
    assert!(!log.needs_sync());
    let first = log.append(&mut record("s", 2), 1).unwrap();
    assert_eq!(
        (first.base_offset, first.end_offset, first.rolled),
        (0, 2, false)
    );
    assert!(log.needs_sync());
    let plan = log.begin_sync(true).expect("something to sync");
    // Appended while the plan's fsyncs run (without the log's lock): not covered.
    log.append(&mut record("s", 3), 2).unwrap();
    let outcome = plan.run(&rustok_iggy_storage::Disk::default());
    assert_eq!(log.finish_sync(&plan, outcome).unwrap(), 2);
    assert_eq!(log.durable_offset(), 2);
    assert!(log.needs_sync());
    log.sync().unwrap();
    assert_eq!(log.durable_offset(), 5);
    assert!(!log.needs_sync());
    // The active segment's index files are written when it is closed or dropped,
    // not by syncs.
    assert_eq!(fs::metadata(seg(dir.path(), 0, "index")).unwrap().len(), 0);
    drop(log);
    assert_eq!(fs::metadata(seg(dir.path(), 0, "index")).unwrap().len(), 16);
}

#[test]
fn a_closed_segment_is_sealed_by_the_next_sync_and_trusted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log =
        PartitionLog::open(dir.path(), config(2 * record_len(), Durability::Never)).unwrap();
    let records = fill(&mut log, 0, 3);
    assert!(log.needs_sync(), "segment 0 awaits its seal");
    // A seal-only sync (the `never` policy) leaves the active data file alone.
    let plan = log.begin_sync(false).expect("a seal to make");
    let outcome = plan.run(&rustok_iggy_storage::Disk::default());
    assert_eq!(log.finish_sync(&plan, outcome).unwrap(), 6);
    assert!(seg(dir.path(), 0, "seal").exists());
    assert_eq!(fs::metadata(seg(dir.path(), 0, "index")).unwrap().len(), 16);
    assert!(log.begin_sync(false).is_none(), "nothing more to seal");
    drop(log);
    let log = reopen(dir.path());
    assert!(log.recovery_report().is_clean());
    assert_eq!(log.recovery_report().sealed, 0, "trusted, not walked");
    assert_eq!(read_all(&log), records);
}

#[test]
fn a_failed_sync_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, Durability::EveryBatch)).unwrap();
    log.append(&mut record("s", 2), 1).unwrap();
    let plan = log.begin_sync(true).unwrap();
    let failed = StorageError::io("fsync", dir.path(), std::io::Error::other("injected"));
    assert!(log.finish_sync(&plan, Err(failed)).is_err());
    assert!(log.poisoned().is_some());
    assert_eq!(log.durable_offset(), 0);
    let err = log.append(&mut record("s", 1), 2).unwrap_err();
    assert!(matches!(err, StorageError::Poisoned { .. }), "{err}");
    assert!(log.begin_sync(true).is_none());
    assert!(matches!(log.sync(), Err(StorageError::Poisoned { .. })));
    // Reopened, the log is whole again.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, Durability::EveryBatch)).unwrap();
    assert_eq!(log.next_offset(), 2);
    assert_eq!(log.append(&mut record("s", 1), 3).unwrap().base_offset, 2);
}

#[test]
fn malformed_records_are_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, Durability::Never)).unwrap();
    let mut longer = record("m", 1);
    longer.push(0);
    let mut empty = encode(&[], 1);
    let mut short = vec![0u8; 100];
    for r in [&mut longer, &mut empty, &mut short] {
        let err = log.append(r, 1).unwrap_err();
        assert!(matches!(err, StorageError::MalformedBatch(_)), "{err}");
    }
    assert_eq!(log.next_offset(), 0);
    assert_eq!(log.stats().size_bytes, 0);
    assert_eq!(fs::metadata(seg(dir.path(), 0, "log")).unwrap().len(), 0);
}

#[test]
fn a_record_larger_than_the_segment_size_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(10, Durability::Never)).unwrap();
    let records = fill(&mut log, 0, 3);
    assert_eq!(log.stats().segments, 3);
    assert_eq!(read_all(&log), records);
    drop(log);
    let log = PartitionLog::open(dir.path(), config(10, Durability::Never)).unwrap();
    assert!(log.recovery_report().is_clean());
    assert_eq!(read_all(&log), records);
}

#[test]
fn a_damaged_message_count_in_a_sealed_segment_costs_only_that_record() {
    // Found by the segment_recovery fuzz target: the index of segment 0 agreed with
    // its data file, but its last record's message count was changed. Trusting the
    // count made segment 0 overlap segment 6 and the whole log refuse to open. The
    // seal names the segment's end offset itself; the read that meets the damaged
    // record skips it.
    let (dir, log, records) = six_records();
    drop(log);
    let len = record_len();
    let path = seg(dir.path(), 0, "log");
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    let at = len + iggy_binary_protocol::batch::BATCH_MESSAGE_COUNT_OFFSET as u64;
    file.write_all_at(&13u32.to_le_bytes(), at).unwrap();
    drop(file);

    let log = reopen(dir.path());
    assert!(log.recovery_report().is_clean());
    let kept: Vec<Vec<u8>> = [&records[..1], &records[2..]].concat();
    assert_eq!(read_all(&log), kept);
    assert_eq!(log.next_offset(), 18);
    let damage = log.damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!((damage[0].base_offset, damage[0].position), (0, len));
    assert_eq!((damage[0].lost_from, damage[0].lost_to), (3, 6));
    assert_eq!(log.verify().unwrap().damage.len(), 1);
}

#[test]
fn records_whose_offset_deltas_are_out_of_sequence_are_refused() {
    // Found by the batch_decode fuzz target: a record whose second message claims
    // offset delta 1024 would be stored, and read back at the wrong offset.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, Durability::Never)).unwrap();
    let mut r = record("d", 2);
    let first_frame = 48 + "d-0".len();
    let delta_at = 256 + first_frame + 24;
    r[delta_at..delta_at + 4].copy_from_slice(&1024u32.to_le_bytes());
    let err = log.append(&mut r, 1).unwrap_err();
    assert!(matches!(err, StorageError::MalformedBatch(_)), "{err}");
    assert_eq!(log.next_offset(), 0);
    assert_eq!(fs::metadata(seg(dir.path(), 0, "log")).unwrap().len(), 0);
    assert_eq!(log.append(&mut record("d", 2), 1).unwrap().base_offset, 0);
}
