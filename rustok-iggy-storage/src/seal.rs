//! The seal of a closed segment: `{base_offset:020}.seal`, written once its data
//! and index files are fsynced, so that the next open can trust the index files
//! without walking the data file.
//!
//! Layout (56 bytes, little endian): `[magic "RISEAL01"][data_len u64][end_offset
//! u64][records u64][offset-index XXH3-64][time-index XXH3-64][XXH3-64 of the 48
//! bytes before]`. A seal is trusted only when it decodes, its data length is the
//! data file's length, and both index files hash to what it names; otherwise the
//! segment is walked (and sealed again).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use twox_hash::XxHash3_64;

use super::StorageError;
use super::disk::Disk;

const MAGIC: &[u8; 8] = b"RISEAL01";
const LEN: usize = 56;

/// What a seal vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seal {
    /// The data file's length.
    pub(super) data_len: u64,
    /// The offset after the segment's last message.
    pub(super) end_offset: u64,
    /// Records (index entries).
    pub(super) records: u64,
    /// XXH3-64 of the `.index` file.
    pub(super) offsets_checksum: u64,
    /// XXH3-64 of the `.timeindex` file.
    pub(super) times_checksum: u64,
}

/// The seal file next to a `.log` file.
pub(super) fn path(data_path: &Path) -> PathBuf {
    data_path.with_extension("seal")
}

/// The checksum a seal keeps of an index file's bytes.
pub(super) fn checksum(bytes: &[u8]) -> u64 {
    XxHash3_64::oneshot(bytes)
}

impl Seal {
    fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..8].copy_from_slice(MAGIC);
        for (k, value) in [
            self.data_len,
            self.end_offset,
            self.records,
            self.offsets_checksum,
            self.times_checksum,
        ]
        .into_iter()
        .enumerate()
        {
            let at = 8 + 8 * k;
            out[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        let sum = XxHash3_64::oneshot(&out[..48]);
        out[48..].copy_from_slice(&sum.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != LEN || bytes.get(..8)? != MAGIC {
            return None;
        }
        let word = |k: usize| -> Option<u64> {
            let at = 8 * k;
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        if XxHash3_64::oneshot(bytes.get(..48)?) != word(6)? {
            return None;
        }
        Some(Self {
            data_len: word(1)?,
            end_offset: word(2)?,
            records: word(3)?,
            offsets_checksum: word(4)?,
            times_checksum: word(5)?,
        })
    }
}

/// The seal of the segment whose data file is `data_path`, if one decodes.
pub(super) fn read(data_path: &Path) -> Option<Seal> {
    let mut bytes = Vec::with_capacity(LEN);
    File::open(path(data_path))
        .ok()?
        .take(LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    Seal::decode(&bytes)
}

/// Writes and fsyncs the seal of `data_path` (replacing any). Returns `false`
/// without writing when the segment's files are gone (retention removed it).
pub(super) fn write(data_path: &Path, seal: &Seal, disk: &Disk) -> Result<bool, StorageError> {
    if !data_path.exists() {
        return Ok(false);
    }
    let target = path(data_path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&target)
        .map_err(|e| StorageError::io("create", &target, e))?;
    file.write_all(&seal.encode())
        .map_err(|e| StorageError::io("write", &target, e))?;
    disk.sync_data(&file, &target)?;
    Ok(true)
}

/// Removes the seal of `data_path`; a missing one is fine.
pub(super) fn remove(data_path: &Path) -> Result<(), StorageError> {
    let target = path(data_path);
    match fs::remove_file(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", &target, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_roundtrip_and_any_flip_voids_them() {
        let seal = Seal {
            data_len: 4096,
            end_offset: 17,
            records: 4,
            offsets_checksum: 0xDEAD,
            times_checksum: 0xBEEF,
        };
        let bytes = seal.encode();
        assert_eq!(Seal::decode(&bytes), Some(seal));
        for i in 0..LEN {
            let mut flipped = bytes;
            flipped[i] ^= 0x10;
            assert_eq!(Seal::decode(&flipped), None, "byte {i}");
        }
        assert_eq!(Seal::decode(&bytes[..LEN - 1]), None);
    }
}
