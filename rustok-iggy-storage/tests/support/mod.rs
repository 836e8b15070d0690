//! Shared helpers of the storage tests: messages to append, and what a record holds.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the helpers"
)]

use std::fs::OpenOptions;
use std::path::Path;

use rustok_iggy_storage::record::{self, RecordBuilder, WireError};

/// A message to append: the log treats the user headers as opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestMessage {
    pub id: u128,
    pub payload: Vec<u8>,
    pub user_headers: Vec<u8>,
}

impl TestMessage {
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Self {
            id: 0,
            payload: payload.into(),
            user_headers: Vec::new(),
        }
    }

    pub fn with_id(mut self, id: u128) -> Self {
        self.id = id;
        self
    }

    pub fn with_user_headers(mut self, user_headers: Vec<u8>) -> Self {
        self.user_headers = user_headers;
        self
    }
}

/// One record of `messages`, every one created at `origin_timestamp`.
pub fn encode(messages: &[TestMessage], origin_timestamp: u64) -> Vec<u8> {
    let mut builder = RecordBuilder::new();
    for m in messages {
        builder.push(m.id, &m.payload, &m.user_headers);
    }
    builder.finish(origin_timestamp)
}

/// A message read back from a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub offset: u64,
    pub id: u128,
    pub payload: Vec<u8>,
    pub user_headers: Vec<u8>,
}

/// The messages of `record`, in order.
pub fn decode(record: &[u8]) -> Result<Vec<Decoded>, WireError> {
    record::messages(record)?
        .map(|m| {
            m.map(|m| Decoded {
                offset: m.offset,
                id: m.id,
                payload: m.payload.to_vec(),
                user_headers: m.user_headers.to_vec(),
            })
        })
        .collect()
}

/// Cuts both index files of the segment at `base` to at most `keep` entries, as
/// a killed process leaves them (the entries after the last flush never written).
pub fn crash_index(dir: &Path, base: u64, keep: u8) {
    for (ext, entry) in [("index", 8u64), ("timeindex", 12)] {
        let path = dir.join(format!("{base:020}.{ext}"));
        if let Ok(file) = OpenOptions::new().write(true).open(&path) {
            let len = file.metadata().map_or(0, |m| m.len());
            file.set_len(len.min(u64::from(keep) * entry))
                .expect("cut an index file");
        }
    }
}
