//! The fuzz targets' checks (`fuzz/src/`) under `cargo test`: every checked-in seed
//! and regression input, and a few hundred pseudo-random inputs, so that the checks
//! run without a fuzzer.

use std::fs;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use rustok_iggy_storage::{Durability, LogConfig, PartitionLog};

#[path = "../../fuzz/src/batch_decode.rs"]
mod batch_decode;
#[path = "../../fuzz/src/sample.rs"]
mod sample;
#[path = "../../fuzz/src/segment_recovery.rs"]
mod segment_recovery;

use sample::sample_segment;
use segment_recovery::SegmentInput;

/// The files of `fuzz/<dir>`, sorted; none when it does not exist.
fn inputs(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir);
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

/// What libFuzzer does with the bytes of a structured target.
fn segment_recovery(bytes: &[u8]) {
    if let Ok(input) = SegmentInput::arbitrary_take_rest(Unstructured::new(bytes)) {
        segment_recovery::run(input);
    }
}

/// Every input checked in under `fuzz/regressions/<target>/` (crashes found by
/// scripts/fuzz.sh) and every seed of `fuzz/seeds/<target>/` passes its target.
#[test]
fn every_seed_and_regression_input_passes() {
    type Entry = fn(&[u8]);
    let targets: [(&str, Entry); 2] = [
        ("segment_recovery", segment_recovery),
        ("batch_decode", batch_decode::run),
    ];
    let mut replayed = 0;
    for (target, entry) in targets {
        for dir in [format!("regressions/{target}"), format!("seeds/{target}")] {
            for (path, bytes) in inputs(&dir) {
                eprintln!("{}", path.display());
                entry(&bytes);
                replayed += 1;
            }
        }
    }
    assert!(
        replayed > 0,
        "the seed and regression directories were found"
    );
}

/// The seeds are what they claim: valid records and segments.
#[test]
fn sample_segments_are_valid_and_recover_cleanly() {
    let (bytes, end) = sample_segment(10, 4);
    assert_eq!(end, 20);
    let dir = tempfile::tempdir().expect("a temporary directory");
    fs::write(dir.path().join(format!("{:020}.log", 10)), &bytes).expect("write a segment");
    let config = LogConfig {
        partition_id: sample::PARTITION,
        segment_size_bytes: 1 << 20,
        durability: Durability::Never,
    };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    assert_eq!(log.recovery_report().truncated_bytes, 0);
    assert_eq!(log.next_offset(), 20);
    assert_eq!(
        log.read(0, u32::MAX, usize::MAX).expect("read").concat(),
        bytes
    );
}

/// A few hundred deterministic pseudo-random inputs through each target.
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
            bytes.clone_from(&valid);
            for _ in 0..(1 + next() % 3) {
                let at = (next() as usize) % bytes.len();
                bytes[at] ^= next() as u8 | 1;
            }
            // As the last segment of a raw input.
            segment_recovery::run(SegmentInput::Raw(segment_recovery::RawFiles {
                last_base: None,
                closed: None,
                index: None,
                last: bytes.clone(),
            }));
        }
        segment_recovery(&bytes);
        batch_decode::run(&bytes);
    }
}
