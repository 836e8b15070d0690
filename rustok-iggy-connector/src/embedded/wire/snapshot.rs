//! `GetSnapshotFile`: a zip of diagnostic text, built as the Iggy server builds it
//! (one `<type>.txt` entry per requested snapshot type, `all` expanded, a section
//! that cannot be captured left out, the requested compression), limited to what
//! this broker has:
//!
//! | type | entry |
//! |---|---|
//! | `filesystem_overview` | the data directory: every file and directory with its size (names only, no contents) |
//! | `process_list` | this process (`/proc/self/status`): the broker runs inside the application, it lists no other |
//! | `resource_usage` | the broker's stats: streams, topics, partitions, segments, messages, bytes, groups, clients, fsyncs, memory |
//! | `server_logs` | left out: the broker writes no log files (its logs go to the application's `tracing` subscriber) |
//! | `server_config` | the embedded configuration as JSON, without its secrets (the root password is never written) |
//! | `test` | `test` |
//!
//! Compression: `stored` and `deflated`; the server's other codecs (`bzip2`,
//! `zstd`, `lzma`, `xz`) are `FeatureUnavailable` here.

use std::fmt::Write as _;
use std::io::{Cursor, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use iggy_binary_protocol::requests::system::GetSnapshotRequest;
use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

use super::lookup::decode;
use super::reply::Handled;
use super::shared::Shared;
use crate::batch;
use crate::error_codes::ErrorCode;

const FILESYSTEM_OVERVIEW: u8 = 1;
const PROCESS_LIST: u8 = 2;
const RESOURCE_USAGE: u8 = 3;
const TEST: u8 = 4;
const SERVER_LOGS: u8 = 5;
const SERVER_CONFIG: u8 = 6;
const ALL: u8 = 100;
/// What `all` stands for, in the server's order.
const EVERY_TYPE: [u8; 5] = [
    FILESYSTEM_OVERVIEW,
    PROCESS_LIST,
    RESOURCE_USAGE,
    SERVER_LOGS,
    SERVER_CONFIG,
];

/// Clears the broker's in-progress flag when the snapshot is done (or abandoned).
struct InProgress(Arc<AtomicBool>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn type_name(code: u8) -> Option<&'static str> {
    Some(match code {
        FILESYSTEM_OVERVIEW => "filesystem_overview",
        PROCESS_LIST => "process_list",
        RESOURCE_USAGE => "resource_usage",
        TEST => "test",
        SERVER_LOGS => "server_logs",
        SERVER_CONFIG => "server_config",
        ALL => "all",
        _ => return None,
    })
}

/// Builds the archive and writes it as the reply body. Unknown type or compression
/// codes, and `all` next to other types, are `InvalidCommand` (as on the server); a
/// snapshot while another is built, or a failure to write the archive, is
/// `SnapshotFileCompletionFailed`.
pub(crate) async fn snapshot(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetSnapshotRequest = decode(body)?;
    let method = match request.compression {
        1 => CompressionMethod::Stored,
        2 => CompressionMethod::Deflated,
        3..=6 => return Err(ErrorCode::FEATURE_UNAVAILABLE),
        _ => return Err(ErrorCode::INVALID_COMMAND),
    };
    if request
        .snapshot_types
        .iter()
        .any(|&t| type_name(t).is_none())
    {
        return Err(ErrorCode::INVALID_COMMAND);
    }
    let types: Vec<u8> = if request.snapshot_types.contains(&ALL) {
        if request.snapshot_types.len() > 1 {
            return Err(ErrorCode::INVALID_COMMAND);
        }
        EVERY_TYPE.to_vec()
    } else {
        request.snapshot_types
    };
    let flag = Arc::clone(&shared.snapshot_in_progress);
    if flag
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(ErrorCode::SNAPSHOT_FILE_COMPLETION_FAILED);
    }
    let guard = InProgress(flag);
    let sections: Vec<(String, Vec<u8>)> = types
        .iter()
        .filter_map(|&t| {
            let content = capture(shared, t)?;
            Some((format!("{}.txt", type_name(t)?), content))
        })
        .collect();
    // Walking the data directory and compressing block: off the runtime.
    let archive = tokio::task::spawn_blocking(move || {
        let _guard = guard;
        build_zip(&sections, method)
    })
    .await
    .map_err(|_| ErrorCode::SNAPSHOT_FILE_COMPLETION_FAILED)??;
    out.extend_from_slice(&archive);
    Ok(())
}

/// The text of one section, or `None` for what this broker does not have.
fn capture(shared: &Shared, snapshot_type: u8) -> Option<Vec<u8>> {
    match snapshot_type {
        FILESYSTEM_OVERVIEW => Some(data_dir_report(shared.broker.data_dir()).into_bytes()),
        PROCESS_LIST => std::fs::read("/proc/self/status").ok(),
        RESOURCE_USAGE => Some(stats(shared).into_bytes()),
        TEST => Some(b"test\n".to_vec()),
        SERVER_CONFIG => Some(shared.config_json.as_bytes().to_vec()),
        _ => None,
    }
}

fn build_zip(
    sections: &[(String, Vec<u8>)],
    method: CompressionMethod,
) -> Result<Vec<u8>, ErrorCode> {
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "cannot build the snapshot archive");
        ErrorCode::SNAPSHOT_FILE_COMPLETION_FAILED
    };
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, content) in sections {
        zip.start_file(name.as_str(), options)
            .map_err(|e| failed(&e))?;
        zip.write_all(content).map_err(|e| failed(&e))?;
    }
    Ok(zip.finish().map_err(|e| failed(&e))?.into_inner())
}

/// Every file and directory under the data directory, with its size in bytes.
fn data_dir_report(root: &Path) -> String {
    let mut out = format!("data directory: {}\n", root.display());
    let mut stack = vec![root.to_path_buf()];
    let mut entries = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            if meta.is_dir() {
                entries.push(format!("{relative}/"));
                stack.push(path);
            } else {
                entries.push(format!("{relative}  {} bytes", meta.len()));
            }
        }
    }
    entries.sort();
    for entry in entries {
        let _ = writeln!(out, "{entry}");
    }
    out
}

fn stats(shared: &Shared) -> String {
    let broker = &shared.broker;
    let mut out = String::new();
    let now = batch::now_micros();
    let _ = writeln!(
        out,
        "uptime_micros: {}",
        now.saturating_sub(broker.started_at())
    );
    let _ = writeln!(out, "clients: {}", shared.clients().len());
    let _ = writeln!(out, "fsyncs: {}", broker.fsyncs());
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(rss) = status.lines().find(|l| l.starts_with("VmRSS:"))
    {
        let _ = writeln!(out, "resident_memory: {}", rss["VmRSS:".len()..].trim());
    }
    for stream in broker.streams() {
        let _ = writeln!(out, "stream {} ({}):", stream.id, stream.name);
        for topic in &stream.topics {
            let (bytes, messages, segments) = topic.totals();
            let _ = writeln!(
                out,
                "  topic {} ({}): partitions {}, segments {segments}, messages {messages}, bytes {bytes}, groups {}",
                topic.id,
                topic.name(),
                topic.partitions_count(),
                topic.groups().by_id.len()
            );
        }
    }
    out
}
