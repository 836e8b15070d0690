//! Writes the seed corpora in `fuzz/seeds/` (checked in; run again after a change of
//! the record layout). `segment_recovery` has none: its inputs are structured
//! (`arbitrary`), and its recipe mode builds valid records itself.
//!
//! Run with: cargo run --manifest-path fuzz/Cargo.toml --example make_seeds

use std::fs;
use std::path::Path;

use rustok_iggy_fuzz::sample::sample_segment;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).expect("create the seed directory");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

fn main() {
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
