//! SIGKILL a publishing process at a random moment: every batch it saw acknowledged is
//! there after reopening (default durability policy).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use rustok_iggy_connector::{IggyConnector, StartPosition};
use tests::{embedded_config, names, open_embedded};

/// A small deterministic generator (no wall clock in the test's decisions).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test]
async fn acknowledged_batches_survive_sigkill() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-publisher"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the publisher");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        // Kill after a random number of acknowledgements, between 50 and 2000.
        let kill_after = 50 + xorshift(&mut seed) % 1950;
        let mut acked = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let parts: Vec<u64> = line
                .strip_prefix("ack ")
                .unwrap()
                .split(' ')
                .map(|p| p.parse().unwrap())
                .collect();
            acked.push((parts[0] as u32, parts[1], parts[2]));
            if acked.len() as u64 >= kill_after {
                break;
            }
        }
        child.kill().expect("SIGKILL");
        // Acknowledgements printed before the kill landed count too.
        for line in lines.map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("ack ") {
                let parts: Vec<u64> = rest.split(' ').map(|p| p.parse().unwrap()).collect();
                acked.push((parts[0] as u32, parts[1], parts[2]));
            }
        }
        child.wait().unwrap();

        let connector = open_embedded(&embedded_config(dir.path())).await;
        let (stream, topic) = names("crash", "events");
        for partition in 0..2u32 {
            let stored = connector
                .poll(
                    &stream,
                    &topic,
                    partition,
                    StartPosition::Earliest,
                    u32::MAX,
                )
                .await
                .unwrap();
            // Offsets strictly increase with no gap and no corrupt record.
            for (expected, message) in stored.iter().enumerate() {
                assert_eq!(message.offset, expected as u64, "round {round}");
                assert!(message.payload.starts_with(b"round-"), "round {round}");
            }
            let end = stored.len() as u64;
            for &(p, base, count) in acked.iter().filter(|(p, _, _)| *p == partition) {
                assert!(
                    base + count <= end,
                    "round {round}: acknowledged batch {p}:{base}+{count} missing (partition holds {end})"
                );
            }
        }
        connector.shutdown().await.unwrap();
    }
}
