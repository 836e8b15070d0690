//! Batch records from untrusted bytes, through the public API of
//! `rustok-iggy-storage`'s [`record`] module: [`record::validate`] (layout and
//! checksums), the offset delta check of appends, [`record::messages`] and
//! [`record::slice`] over windows of the record.
//!
//! Invariants: nothing panics; a slice is a valid record holding the messages of its
//! window, in order, and passes the checksum check whenever the whole record does.

use rustok_iggy_storage::record;

/// The offsets of the messages of `stored` in `[from, to)`.
fn offsets(stored: &[u8], from: u64, to: u64) -> Result<Vec<u64>, record::WireError> {
    let mut out = Vec::new();
    for message in record::messages(stored)? {
        let offset = message?.offset;
        if offset < from {
            continue;
        }
        if offset >= to {
            break;
        }
        out.push(offset);
    }
    Ok(out)
}

/// Runs one input.
///
/// # Panics
/// When an invariant breaks.
pub fn run(data: &[u8]) {
    let all = offsets(data, 0, u64::MAX);
    let Ok(header) = record::validate(data, false) else {
        return;
    };
    if record::check_offset_deltas(data).is_err() {
        // The log refuses such a record (PartitionLog::append), so it is never read
        // back or sliced.
        return;
    }
    let sealed = record::validate(data, true).is_ok();
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
        let window = offsets(data, from, to);
        let Ok(Some((sliced, count))) = record::slice(data, from, to) else {
            continue;
        };
        let sliced_header = record::validate(&sliced, false).expect("a slice is a valid record");
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
            record::validate(&sliced, true).expect("a slice of a sealed record is sealed");
        }
        if let (Ok(_), Ok(window)) = (&all, window) {
            let again =
                offsets(&sliced, 0, u64::MAX).expect("a slice of a decodable record decodes");
            assert_eq!(again, window, "a slice holds its window's messages");
        }
    }
}
