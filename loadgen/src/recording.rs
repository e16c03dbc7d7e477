//! Recorded workloads: signed transactions written to a file once and replayed byte for byte
//! later (to another node, another build, another machine), so two runs can be compared on
//! exactly the same input.
//!
//! File layout (little-endian):
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `TLYWKLD1` |
//! | 8 | 8 | network id |
//! | 16 | 32 | genesis hash the records were signed for |
//! | 48 | 8 | record count `n` |
//! | 56 | 32 | workload name, UTF-8, zero-padded |
//! | 88 | 192 n | the records, as they go on the wire |
//! | 88 + 192 n | 32 | BLAKE3 of every byte before it |

use std::path::{Path, PathBuf};
use tally_protocol::tx::{TxRecord, TX_BYTES};

pub const RECORDING_MAGIC: [u8; 8] = *b"TLYWKLD1";
const HEADER_BYTES: usize = 88;
const NAME_BYTES: usize = 32;
const CHECKSUM_BYTES: usize = 32;

/// A workload read back from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    pub network_id: u64,
    pub genesis_hash: [u8; 32],
    pub workload: String,
    pub records: Vec<TxRecord>,
}

/// Why a recording cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot write recording {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read recording {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a tally-loadgen recording (no TLYWKLD1 magic at the start)")]
    NotARecording { path: PathBuf },
    #[error("{path} is truncated or padded: the header promises {count} records ({expected} bytes in all), the file has {found} bytes")]
    WrongSize {
        path: PathBuf,
        count: u64,
        expected: u128,
        found: u64,
    },
    #[error("{path} is damaged: its checksum does not match its contents")]
    BadChecksum { path: PathBuf },
    #[error("workload name {0:?} is longer than 32 bytes")]
    NameTooLong(String),
}

/// Writes `records` (signed for `network_id` and the genesis with `genesis_hash`) to `path`.
pub fn write(
    path: &Path,
    network_id: u64,
    genesis_hash: &[u8; 32],
    workload: &str,
    records: &[TxRecord],
) -> Result<(), RecordingError> {
    if workload.len() > NAME_BYTES {
        return Err(RecordingError::NameTooLong(workload.to_string()));
    }
    let mut bytes = Vec::with_capacity(HEADER_BYTES + records.len() * TX_BYTES + CHECKSUM_BYTES);
    bytes.extend_from_slice(&RECORDING_MAGIC);
    bytes.extend_from_slice(&network_id.to_le_bytes());
    bytes.extend_from_slice(genesis_hash);
    bytes.extend_from_slice(&(records.len() as u64).to_le_bytes());
    let mut name = [0u8; NAME_BYTES];
    name[..workload.len()].copy_from_slice(workload.as_bytes());
    bytes.extend_from_slice(&name);
    bytes.extend_from_slice(bytemuck::cast_slice(records));
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    std::fs::write(path, &bytes).map_err(|source| RecordingError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a recording and checks its size and checksum. Records are returned as recorded:
/// the node judges them (a recording may hold deliberately invalid transactions).
pub fn read(path: &Path) -> Result<Recording, RecordingError> {
    let bytes = std::fs::read(path).map_err(|source| RecordingError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() < 8 || bytes[..8] != RECORDING_MAGIC {
        return Err(RecordingError::NotARecording {
            path: path.to_path_buf(),
        });
    }
    let count = if bytes.len() >= HEADER_BYTES {
        u64::from_le_bytes(bytes[48..56].try_into().expect("8 bytes"))
    } else {
        0
    };
    let expected =
        HEADER_BYTES as u128 + u128::from(count) * TX_BYTES as u128 + CHECKSUM_BYTES as u128;
    if bytes.len() < HEADER_BYTES || bytes.len() as u128 != expected {
        return Err(RecordingError::WrongSize {
            path: path.to_path_buf(),
            count,
            expected,
            found: bytes.len() as u64,
        });
    }
    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    if blake3::hash(body).as_bytes() != checksum {
        return Err(RecordingError::BadChecksum {
            path: path.to_path_buf(),
        });
    }
    let name = &body[56..HEADER_BYTES];
    let name_len = name.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
    Ok(Recording {
        network_id: u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")),
        genesis_hash: body[16..48].try_into().expect("32 bytes"),
        workload: String::from_utf8_lossy(&name[..name_len]).into_owned(),
        records: body[HEADER_BYTES..]
            .chunks_exact(TX_BYTES)
            .map(bytemuck::pod_read_unaligned)
            .collect(),
    })
}
