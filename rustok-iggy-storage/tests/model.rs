//! Property tests of the partition log against a model.
//!
//! A case is a random sequence of operations on one log in a temporary directory:
//! appends of random batches, reads of random windows, reopen (drop and open), a
//! crash (the last segment's index files left with only a prefix of their entries),
//! sync, damage while closed (the tail of the last segment cut by N bytes, or garbage
//! appended to it), retention by age and by size, and purge. After every operation
//! the log is compared with a simple in-memory model: the segments it should have,
//! each a list of records of `(offset, id, payload, headers)` messages.
//!
//! What is checked: every read returns exactly the model's messages for its window
//! (the `max_bytes` rule included), offsets strictly increase and are never handed
//! out twice (damage aside: the offsets of a cut tail are free again, since nothing
//! on disk remembers them), damage loses only a suffix of the last segment and never
//! a record before the cut, the files on disk are the model's segments, and the time
//! index finds the model's offset.
//!
//! 64 cases by default, with segments of a few hundred bytes so that they roll all
//! the time; `PROPTEST_CASES=10000 cargo test -p rustok-iggy-storage --test model`
//! runs more.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;

use rustok_iggy_storage::record::validate;
use rustok_iggy_storage::{Durability, LogConfig, PartitionLog};

mod support;
use support::{TestMessage, crash_index, encode};

const PARTITION: u32 = 7;
/// The timestamp of the first append; later ones move by [`Op::Append::clock_step`].
const START_MICROS: u64 = 1_000_000;

/// The number of cases: `PROPTEST_CASES` when set, 64 otherwise.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

// ---- the model ------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    offset: u64,
    id: u128,
    payload: Vec<u8>,
    user_headers: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Record {
    base: u64,
    /// Stored length in bytes.
    len: u64,
    /// Its `base_timestamp`.
    timestamp: u64,
    messages: Vec<Message>,
}

impl Record {
    fn end(&self) -> u64 {
        self.base + self.messages.len() as u64
    }
}

#[derive(Debug, Clone)]
struct Segment {
    base: u64,
    records: Vec<Record>,
}

impl Segment {
    fn size(&self) -> u64 {
        self.records.iter().map(|r| r.len).sum()
    }

    fn newest_timestamp(&self) -> Option<u64> {
        self.records.iter().map(|r| r.timestamp).max()
    }
}

/// What the log should hold: its segments (the last one active) and next offset.
#[derive(Debug)]
struct Model {
    segment_size: u64,
    segments: Vec<Segment>,
    next: u64,
}

impl Model {
    fn new(segment_size: u64) -> Self {
        Self {
            segment_size,
            segments: vec![Segment {
                base: 0,
                records: Vec::new(),
            }],
            next: 0,
        }
    }

    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("the model always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("the model always has an active segment")
    }

    fn records(&self) -> impl Iterator<Item = &Record> {
        self.segments.iter().flat_map(|s| s.records.iter())
    }

    fn messages(&self) -> Vec<Message> {
        self.records()
            .flat_map(|r| r.messages.iter().cloned())
            .collect()
    }

    fn first_offset(&self) -> u64 {
        self.records().next().map_or(self.next, |r| r.base)
    }

    fn append(&mut self, len: u64, timestamp: u64, batch: &[TestMessage]) -> u64 {
        let active = self.active();
        if !active.records.is_empty() && active.size() >= self.segment_size {
            let base = self.next;
            self.segments.push(Segment {
                base,
                records: Vec::new(),
            });
        }
        let base = self.next;
        let messages = batch
            .iter()
            .zip(base..)
            .map(|(m, offset)| Message {
                offset,
                id: m.id,
                payload: m.payload.clone(),
                user_headers: m.user_headers.clone(),
            })
            .collect();
        self.active_mut().records.push(Record {
            base,
            len,
            timestamp,
            messages,
        });
        self.next = base + batch.len() as u64;
        base
    }

    /// The messages a read of `[from, ...)` returns, per the contract of
    /// [`PartitionLog::read`].
    fn read(&self, from: u64, max_messages: u32, max_bytes: usize) -> Vec<Message> {
        let mut out = Vec::new();
        if max_messages == 0 || from >= self.next {
            return out;
        }
        let mut cursor = from.max(self.first_offset());
        let mut remaining = u64::from(max_messages);
        let max_bytes = max_bytes as u64;
        let mut gathered = 0u64;
        let mut records = 0usize;
        for record in self.records() {
            if remaining == 0 {
                break;
            }
            if record.end() <= cursor {
                continue;
            }
            if records > 0 && gathered + record.len > max_bytes {
                break;
            }
            cursor = cursor.max(record.base);
            let end = (cursor + remaining).min(record.end());
            out.extend(
                record
                    .messages
                    .iter()
                    .filter(|m| (cursor..end).contains(&m.offset))
                    .cloned(),
            );
            records += 1;
            gathered += record.len;
            remaining -= end - cursor;
            cursor = record.end();
        }
        out
    }

    /// The first offset of a record whose `base_timestamp` is at or past `timestamp`
    /// by the running maximum of each segment (the time index).
    fn offset_at_timestamp(&self, timestamp: u64) -> Option<u64> {
        self.segments.iter().find_map(|segment| {
            let mut newest = 0u64;
            segment.records.iter().find_map(|r| {
                newest = newest.max(r.timestamp);
                (newest >= timestamp).then_some(r.base)
            })
        })
    }

    fn retain(&mut self, now: u64, max_age: Option<u64>, max_bytes: Option<u64>) {
        if let Some(age) = max_age {
            let cutoff = now.saturating_sub(age);
            while self.segments.len() > 1
                && self.segments[0]
                    .newest_timestamp()
                    .is_none_or(|t| t < cutoff)
            {
                self.segments.remove(0);
            }
        }
        if let Some(max) = max_bytes {
            let mut total: u64 = self.segments.iter().map(Segment::size).sum();
            while total > max && self.segments.len() > 1 {
                total -= self.segments.remove(0).size();
            }
        }
    }

    fn purge(&mut self) {
        let active = self.active();
        if !active.records.is_empty() || active.base != self.next {
            let base = self.next;
            self.segments.push(Segment {
                base,
                records: Vec::new(),
            });
        }
        let keep = self.segments.len() - 1;
        self.segments.drain(..keep);
    }

    /// The last segment's file cut to `len` bytes: whole records within `len` stay.
    /// Returns the bytes of the torn record left behind (what recovery must cut).
    fn cut_active(&mut self, len: u64) -> u64 {
        let active = self.active_mut();
        let mut kept = 0u64;
        let mut whole = 0usize;
        for record in &active.records {
            if kept + record.len > len {
                break;
            }
            kept += record.len;
            whole += 1;
        }
        active.records.truncate(whole);
        let base = active.base;
        self.next = active.records.last().map_or(base, Record::end).max(base);
        len - kept
    }
}

// ---- the operations -------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Appends a batch at the clock moved by `clock_step` (it may go backwards).
    Append {
        batch: Vec<TestMessage>,
        clock_step: i64,
    },
    /// Reads from `from % (next + 3)` (so mostly inside the log).
    Read {
        from: u64,
        max_messages: u32,
        max_bytes: MaxBytes,
    },
    /// Drop and open.
    Reopen,
    /// The process killed: only the first `keep` index entries of the last
    /// segment were written (`mem::forget` would leak a file handle per segment
    /// and run out of them at high case counts), then opened.
    Crash {
        keep: u8,
    },
    Sync,
    /// While closed, the last segment file loses its last `n` bytes (all of them
    /// when it is shorter).
    CutTail {
        n: u64,
    },
    /// While closed, garbage is appended to the last segment file.
    AppendGarbage {
        garbage: Vec<u8>,
    },
    /// Retention at the current clock.
    Retention {
        max_age: Option<u64>,
        max_bytes: Option<u64>,
    },
    Purge,
    /// A time index lookup at `clock - back`.
    FindTime {
        back: u64,
    },
}

/// The `max_bytes` of a read.
#[derive(Debug, Clone, Copy)]
enum MaxBytes {
    Unlimited,
    Fixed(usize),
    /// The stored size of the `k` records from the one holding the start of the
    /// read, plus `delta`: the limit falls on, just before or just after a record
    /// boundary.
    Records {
        k: usize,
        delta: i8,
    },
}

impl Model {
    fn max_bytes(&self, from: u64, limit: MaxBytes) -> usize {
        match limit {
            MaxBytes::Unlimited => usize::MAX,
            MaxBytes::Fixed(n) => n,
            MaxBytes::Records { k, delta } => {
                let cursor = from.max(self.first_offset());
                let sum: u64 = self
                    .records()
                    .filter(|r| r.end() > cursor)
                    .take(k)
                    .map(|r| r.len)
                    .sum();
                usize::try_from(sum.saturating_add_signed(i64::from(delta))).unwrap_or(usize::MAX)
            }
        }
    }
}

fn max_bytes() -> impl Strategy<Value = MaxBytes> {
    prop_oneof![
        Just(MaxBytes::Unlimited),
        (0usize..3_000).prop_map(MaxBytes::Fixed),
        (0usize..6, -1i8..=1).prop_map(|(k, delta)| MaxBytes::Records { k, delta }),
    ]
}

fn message() -> impl Strategy<Value = TestMessage> {
    let payload = prop_oneof![3 => vec(any::<u8>(), 0..20), 1 => vec(any::<u8>(), 0..300)];
    let user_headers = proptest::option::weighted(0.3, vec(any::<u8>(), 1..40));
    (1u128.., payload, user_headers).prop_map(|(id, payload, user_headers)| {
        TestMessage::new(payload)
            .with_id(id)
            .with_user_headers(user_headers.unwrap_or_default())
    })
}

fn op() -> impl Strategy<Value = Op> {
    let batch = prop_oneof![3 => vec(message(), 1..5), 1 => vec(message(), 1..50)];
    prop_oneof![
        12 => (batch, -2_000i64..20_000).prop_map(|(batch, clock_step)| Op::Append { batch, clock_step }),
        6 => (any::<u64>(), 0u32..60, max_bytes())
            .prop_map(|(from, max_messages, max_bytes)| Op::Read { from, max_messages, max_bytes }),
        2 => Just(Op::Reopen),
        1 => any::<u8>().prop_map(|keep| Op::Crash { keep }),
        1 => Just(Op::Sync),
        2 => prop_oneof![1u64..64, 1u64..2_000, Just(u64::MAX)].prop_map(|n| Op::CutTail { n }),
        1 => vec(any::<u8>(), 1..600).prop_map(|garbage| Op::AppendGarbage { garbage }),
        1 => (
            proptest::option::of(0u64..100_000),
            proptest::option::of(0u64..20_000),
        )
            .prop_map(|(max_age, max_bytes)| Op::Retention { max_age, max_bytes }),
        1 => Just(Op::Purge),
        1 => (0u64..100_000).prop_map(|back| Op::FindTime { back }),
    ]
}

// ---- running a case ---------------------------------------------------------------

struct Harness {
    dir: tempfile::TempDir,
    config: LogConfig,
    log: Option<PartitionLog>,
    model: Model,
    clock: u64,
}

impl Harness {
    fn new(segment_size: u64, durability: Durability) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = LogConfig {
            partition_id: PARTITION,
            segment_size_bytes: segment_size,
            durability,
        };
        let log = PartitionLog::open(dir.path(), config).expect("a new log opens");
        Self {
            dir,
            config,
            log: Some(log),
            model: Model::new(segment_size),
            clock: START_MICROS,
        }
    }

    fn log(&self) -> &PartitionLog {
        self.log
            .as_ref()
            .expect("the log is open between operations")
    }

    fn log_mut(&mut self) -> &mut PartitionLog {
        self.log
            .as_mut()
            .expect("the log is open between operations")
    }

    fn open(&mut self) -> Result<(), TestCaseError> {
        let log = PartitionLog::open(self.dir.path(), self.config)
            .map_err(|e| TestCaseError::fail(format!("reopen failed: {e}")))?;
        self.log = Some(log);
        Ok(())
    }

    /// The last segment's data file (by the model, checked against the disk).
    fn active_path(&self) -> std::path::PathBuf {
        self.dir
            .path()
            .join(format!("{:020}.log", self.model.active().base))
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let before = self.log().next_offset();
        match op {
            Op::Append { batch, clock_step } => {
                self.clock = self.clock.saturating_add_signed(*clock_step);
                let mut record = encode(batch, self.clock);
                let len = record.len() as u64;
                let clock = self.clock;
                let base = self
                    .log_mut()
                    .append(&mut record, clock)
                    .map_err(|e| TestCaseError::fail(format!("append failed: {e}")))?
                    .base_offset;
                let expected = self.model.append(len, self.clock, batch);
                prop_assert_eq!(base, expected, "the base offset of an append");
                prop_assert_eq!(base, before, "an append starts at the next offset");
                prop_assert!(
                    self.log().next_offset() > before,
                    "offsets strictly increase"
                );
            }
            Op::Read {
                from,
                max_messages,
                max_bytes,
            } => {
                let from = from % (self.model.next + 3);
                let max_bytes = self.model.max_bytes(from, *max_bytes);
                let records = self
                    .log()
                    .read(from, *max_messages, max_bytes)
                    .map_err(|e| TestCaseError::fail(format!("read failed: {e}")))?;
                let got = decode(&records)?;
                let expected = self.model.read(from, *max_messages, max_bytes);
                prop_assert_eq!(
                    got,
                    expected,
                    "read({}, {}, {})",
                    from,
                    max_messages,
                    max_bytes
                );
            }
            Op::Reopen => {
                drop(self.log.take());
                self.open()?;
                let report = self.log().recovery_report();
                prop_assert!(
                    report.is_clean(),
                    "a clean reopen repairs nothing: {report:?}"
                );
            }
            Op::Crash { keep } => {
                drop(self.log.take());
                crash_index(self.dir.path(), self.model.active().base, *keep);
                self.open()?;
                let report = self.log().recovery_report();
                prop_assert_eq!(report.truncated_bytes, 0, "a crash loses no written byte");
            }
            Op::Sync => self
                .log_mut()
                .sync()
                .map_err(|e| TestCaseError::fail(format!("sync failed: {e}")))?,
            Op::CutTail { n } => {
                drop(self.log.take());
                let path = self.active_path();
                let len = fs::metadata(&path).map_err(fail)?.len();
                prop_assert_eq!(len, self.model.active().size(), "the last segment's size");
                let new_len = len.saturating_sub(*n);
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(new_len))
                    .map_err(fail)?;
                let torn = self.model.cut_active(new_len);
                self.open()?;
                let report = self.log().recovery_report();
                prop_assert_eq!(report.truncated_bytes, torn, "bytes cut by recovery");
                prop_assert_eq!(report.damage.len(), usize::from(torn > 0));
                if let Some(damage) = report.damage.first() {
                    prop_assert_eq!(damage.base_offset, self.model.active().base);
                    prop_assert_eq!(damage.position, new_len - torn);
                }
            }
            Op::AppendGarbage { garbage } => {
                drop(self.log.take());
                OpenOptions::new()
                    .append(true)
                    .open(self.active_path())
                    .and_then(|mut f| f.write_all(garbage))
                    .map_err(fail)?;
                self.open()?;
                let report = self.log().recovery_report();
                prop_assert_eq!(report.truncated_bytes, garbage.len() as u64);
                prop_assert_eq!(report.damage.len(), 1);
                prop_assert_eq!(report.damage[0].position, self.model.active().size());
            }
            Op::Retention { max_age, max_bytes } => {
                let now = self.clock;
                self.log_mut()
                    .apply_retention(now, max_age.map(Duration::from_micros), *max_bytes)
                    .map_err(|e| TestCaseError::fail(format!("retention failed: {e}")))?;
                self.model.retain(now, *max_age, *max_bytes);
            }
            Op::Purge => {
                self.log_mut()
                    .purge()
                    .map_err(|e| TestCaseError::fail(format!("purge failed: {e}")))?;
                self.model.purge();
            }
            Op::FindTime { back } => {
                let at = self.clock.saturating_sub(*back);
                prop_assert_eq!(
                    self.log().offset_at_timestamp(at),
                    self.model.offset_at_timestamp(at),
                    "offset_at_timestamp({})",
                    at
                );
            }
        }
        let damaged = matches!(op, Op::CutTail { .. } | Op::AppendGarbage { .. });
        if !damaged {
            prop_assert!(
                self.log().next_offset() >= before,
                "the next offset went back from {} to {} without damage",
                before,
                self.log().next_offset()
            );
        }
        self.check()
    }

    /// The log, read whole, and its files are the model.
    fn check(&self) -> Result<(), TestCaseError> {
        let log = self.log();
        let model = &self.model;
        prop_assert_eq!(log.next_offset(), model.next, "next offset");
        prop_assert_eq!(log.first_offset(), model.first_offset(), "first offset");
        let stats = log.stats();
        prop_assert_eq!(stats.segments as usize, model.segments.len(), "segments");
        prop_assert_eq!(
            stats.size_bytes,
            model.segments.iter().map(Segment::size).sum::<u64>(),
            "bytes"
        );
        prop_assert_eq!(
            stats.messages,
            model
                .records()
                .map(|r| r.messages.len() as u64)
                .sum::<u64>(),
            "messages"
        );

        let records = log
            .read(0, u32::MAX, usize::MAX)
            .map_err(|e| TestCaseError::fail(format!("read all failed: {e}")))?;
        prop_assert_eq!(records.len(), model.records().count(), "records");
        for (record, expected) in records.iter().zip(model.records()) {
            prop_assert_eq!(
                record.len() as u64,
                expected.len,
                "a whole record is returned as stored"
            );
            let header = validate(record, true).map_err(|e| {
                TestCaseError::fail(format!("a stored record fails validation: {e}"))
            })?;
            prop_assert_eq!(header.partition_id, u64::from(PARTITION));
            prop_assert_eq!(header.base_offset, expected.base);
            prop_assert_eq!(header.base_timestamp, expected.timestamp);
        }
        prop_assert_eq!(decode(&records)?, model.messages(), "every stored message");

        let report = log
            .verify()
            .map_err(|e| TestCaseError::fail(format!("verify failed: {e}")))?;
        prop_assert!(report.is_clean(), "verify: {report:?}");

        let files = segment_files(self.dir.path()).map_err(fail)?;
        let expected: Vec<(u64, u64)> = model.segments.iter().map(|s| (s.base, s.size())).collect();
        prop_assert_eq!(files, expected, "segment files (base offset, size)");
        Ok(())
    }
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn decode(records: &[Vec<u8>]) -> Result<Vec<Message>, TestCaseError> {
    let mut received = Vec::new();
    for record in records {
        let decoded = support::decode(record)
            .map_err(|e| TestCaseError::fail(format!("a read record does not decode: {e}")))?;
        received.extend(decoded.into_iter().map(|m| Message {
            offset: m.offset,
            id: m.id,
            payload: m.payload,
            user_headers: m.user_headers,
        }));
    }
    Ok(received)
}

/// `(base offset, size)` of every data file in `dir`, by base offset.
fn segment_files(dir: &Path) -> std::io::Result<Vec<(u64, u64)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(base) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        files.push((base, entry.metadata()?.len()));
    }
    files.sort_unstable();
    Ok(files)
}

fn durability() -> impl Strategy<Value = Durability> {
    prop_oneof![
        Just(Durability::Never),
        Just(Durability::EveryBatch),
        Just(Durability::Interval(Duration::from_secs(3600))),
    ]
}

proptest! {
    #![proptest_config(Config { cases: cases(), ..Config::default() })]

    #[test]
    fn the_log_matches_the_model(
        segment_size in 300u64..3_000,
        durability in durability(),
        ops in vec(op(), 1..40),
    ) {
        let mut harness = Harness::new(segment_size, durability);
        harness.check()?;
        for op in &ops {
            harness.run(op)?;
        }
        // Whatever happened, the state survives one more restart unchanged.
        drop(harness.log.take());
        harness.open()?;
        prop_assert!(harness.log().recovery_report().is_clean(), "{:?}", harness.log().recovery_report());
        harness.check()?;
    }
}

/// The model itself, on a case small enough to follow by hand.
#[test]
fn the_model_reads_like_the_contract() {
    let mut model = Model::new(1);
    let batch = |n: usize| -> Vec<TestMessage> {
        (0..n)
            .map(|i| TestMessage::new(vec![i as u8]).with_id(i as u128 + 1))
            .collect()
    };
    assert_eq!(model.append(100, 10, &batch(3)), 0);
    assert_eq!(model.append(100, 20, &batch(3)), 3);
    assert_eq!(model.segments.len(), 2, "a full segment rolls");
    let offsets = |m: Vec<Message>| m.iter().map(|m| m.offset).collect::<Vec<_>>();
    assert_eq!(offsets(model.read(1, 3, usize::MAX)), vec![1, 2, 3]);
    assert_eq!(
        offsets(model.read(1, 10, 150)),
        vec![1, 2],
        "max_bytes stops before the second record"
    );
    assert_eq!(
        offsets(model.read(1, 10, 0)),
        vec![1, 2],
        "the first record always comes back"
    );
    assert_eq!(model.offset_at_timestamp(15), Some(3));
    assert_eq!(model.cut_active(50), 50, "half a record is left to cut");
    assert_eq!(model.next, 3, "the cut record's offsets are free again");
    assert_eq!(model.append(100, 30, &batch(1)), 3);
    model.purge();
    assert_eq!(
        (model.first_offset(), model.next, model.segments.len()),
        (4, 4, 1)
    );
}
