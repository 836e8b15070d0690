//! Recovery allocates by what a file holds, never by what a damaged length field
//! claims: a `batch_length` turned into tens of megabytes does not make the scan
//! allocate them. Measured as the growth of the process's peak resident memory
//! (Linux, `/proc/self/status`), in a binary of its own.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use rustok_iggy_storage::{Durability, LogConfig, PartitionLog};

mod support;
use support::{TestMessage, encode};

const RECORDS: usize = 320;
const PAYLOAD: usize = 256 * 1024;

/// The peak resident memory of this process so far, in bytes.
fn peak_resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[test]
fn a_damaged_length_field_does_not_allocate_what_it_claims() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        partition_id: 1,
        segment_size_bytes: 1 << 30,
        durability: Durability::Never,
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    let mut record_len = 0;
    for k in 0..RECORDS {
        let mut record = encode(&[TestMessage::new(vec![k as u8; PAYLOAD])], 1);
        record_len = record.len() as u64;
        log.append(&mut record, 1).unwrap();
    }
    drop(log);
    // Record 1 now claims to run to the end of the file (about 80 MiB).
    let path = dir.path().join(format!("{:020}.log", 0));
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    let claimed = (RECORDS as u64 - 1) * record_len;
    file.write_all_at(&claimed.to_le_bytes(), record_len + 32)
        .unwrap();
    drop(file);

    // The peak is reset, so that what the appends used does not hide it.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident memory");
    let before = peak_resident();
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let grown = peak_resident().saturating_sub(before);
    assert!(
        grown < claimed / 4,
        "recovery grew the process by {grown} bytes for a length field claiming {claimed}"
    );
    // Only the damaged record is lost.
    assert_eq!(log.recovery_report().kept.len(), 1);
    assert_eq!(log.next_offset(), RECORDS as u64);
    assert_eq!(log.stats().messages, RECORDS as u64 - 1);
}
