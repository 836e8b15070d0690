//! The embedded broker as a process of its own (the `load-broker` helper binary),
//! for tests that read its memory from `/proc/<pid>/status` or give it a file
//! descriptor budget of its own.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Instant;

use rustok_iggy_connector::ConnectorConfig;

use crate::STEP_TIMEOUT;

/// How to start a [`BrokerProcess`].
#[derive(Debug, Default)]
pub struct BrokerOptions {
    /// A configuration to start from (its data directory and listener address are
    /// replaced); the default is `ConnectorConfig::embedded` with the listener on.
    pub config: Option<ConnectorConfig>,
    /// Lower the process's open-file limit to this many descriptors.
    pub open_files: Option<u64>,
}

/// A `load-broker` child process with its TCP listener on `127.0.0.1:0`: stops
/// when its stdin is closed (also if the test dies), killed on drop as a last
/// resort.
pub struct BrokerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    /// The listener's address.
    pub address: SocketAddr,
}

impl BrokerProcess {
    /// Starts `program` (`env!("CARGO_BIN_EXE_load-broker")` of the test) on `dir`
    /// (its configuration file, if any, goes there too).
    pub fn start(program: &str, dir: &Path, options: BrokerOptions) -> Self {
        let data_dir = dir.join("data");
        let mut command = Command::new(program);
        command.arg(&data_dir);
        if let Some(config) = options.config {
            let path = dir.join("config.json");
            std::fs::write(&path, serde_json::to_vec(&config).expect("JSON")).expect("write");
            command.arg(path);
        }
        if let Some(limit) = options.open_files {
            command.env("LOAD_BROKER_NOFILE", limit.to_string());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the broker");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(STEP_TIMEOUT)
            .expect("the broker reports its address");
        let address = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .expect("an address");
        Self {
            child,
            stdin,
            lines,
            address,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `kB` field of the broker's `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        status_kib(self.pid(), field)
    }

    /// Closes stdin and waits (bounded) for a clean stop.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let line = self
            .lines
            .recv_timeout(STEP_TIMEOUT)
            .expect("the broker stops within the step timeout");
        assert_eq!(line, "stopped");
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "the broker exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the broker did not exit");
            std::thread::yield_now();
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `kB` field of `/proc/<pid>/status`, in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the status");
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("{field} of process {pid}"))
}
