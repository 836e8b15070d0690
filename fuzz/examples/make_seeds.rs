//! Writes the seed corpora in `fuzz/seeds/` (checked in; run again after a change of
//! the record layout).
//!
//! Run with: cargo run --manifest-path fuzz/Cargo.toml --example make_seeds

use std::fs;
use std::path::Path;

use rustok_iggy_connector::__fuzz::sample_segment;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).expect("create the seed directory");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

fn main() {
    // segment_recovery, raw mode (even first byte): one last segment at offset 0.
    let (five, _) = sample_segment(0, 5);
    write(
        "segment_recovery",
        "raw-five-records",
        &[&[0u8][..], &five].concat(),
    );
    // Raw with a closed segment (mode bit 1) and the last one's base (bit 3).
    let (closed, end) = sample_segment(0, 3);
    let (last, _) = sample_segment(end, 2);
    let mut two = vec![2u8 | 8];
    two.extend_from_slice(&u32::try_from(end).expect("small").to_le_bytes());
    two.extend_from_slice(&u16::try_from(closed.len()).expect("small").to_le_bytes());
    two.extend_from_slice(&closed);
    two.extend_from_slice(&last);
    write("segment_recovery", "raw-two-segments", &two);
    // Recipe mode (odd first byte): [mode][segment size][records][per message...][damage].
    for (name, recipe) in [
        (
            "recipe-cut",
            vec![
                1u8, 40, 5, 2, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 0x30, 0x01, 0, 0,
            ],
        ),
        (
            "recipe-flip",
            vec![3u8, 0, 7, 1, 20, 1, 9, 9, 9, 0, 2, 0x10, 0, 0x40],
        ),
        (
            "recipe-index",
            vec![1u8, 2, 6, 3, 5, 0, 1, 2, 3, 4, 5, 0, 1, 5, 0, 0xFF, 0xEE],
        ),
    ] {
        write("segment_recovery", name, &recipe);
    }

    // batch_decode: single records, one with several messages and headers.
    let (one, _) = sample_segment(7, 1);
    write("batch_decode", "one-message", &one);
    let (first, _) = sample_segment(0, 1);
    let (two_records, _) = sample_segment(0, 2);
    write("batch_decode", "two-messages", &two_records[first.len()..]);
    let (three_records, _) = sample_segment(0, 3);
    let (four_records, _) = sample_segment(0, 4);
    write(
        "batch_decode",
        "four-messages",
        &four_records[three_records.len()..],
    );

    // config_yaml: the documented example and a section with every part.
    write(
        "config_yaml",
        "seeds-example.yaml",
        br#"events:
  transport: iggy
  iggy:
    mode: embedded
    serialization: json
    topology:
      stream_name: rustok
      domain_partitions: 8
      replication_factor: 1
    embedded:
      data_dir: ./data/iggy
      tcp_port: 8090
      http_port: 3000
      durability: interval
      fsync_interval_ms: 100
    remote:
      addresses:
        - "127.0.0.1:8090"
      protocol: tcp
      username: rustok
      password: ${IGGY_PASSWORD:-default}
      tls_enabled: false
    retention:
      domain_max_age_days: 30
      domain_max_size_gb: 10
      system_max_age_days: 7
      dlq_max_age_days: 365
"#,
    );
    write(
        "config_yaml",
        "remote.yaml",
        b"events:\n  iggy:\n    mode: remote\n    serialization: postcard\n    remote: { addresses: [\"a:1\", \"b:2\"], username: u, password: \"${SET}\", tls_enabled: true, tls_domain: x }\n",
    );
}
