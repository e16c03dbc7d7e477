//! Helpers shared by the log integration tests (`log_*.rs`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tally_engine::log::{
    entry_bytes, LogConfig, ENTRY_HEADER_BYTES, ENTRY_MAGIC, ENTRY_TRAILER_BYTES,
    SEGMENT_HEADER_BYTES,
};

/// Environment variable that fixes the seed of the randomised log tests.
pub const SEED_VARIABLE: &str = "TALLY_LOG_SEED";

/// The seed for a randomised test: `TALLY_LOG_SEED` if set, else fresh; printed either way.
pub fn seeded_rng(test: &str) -> ChaCha8Rng {
    let seed = match std::env::var(SEED_VARIABLE) {
        Ok(text) => text.parse().expect("TALLY_LOG_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(1),
    };
    println!("{test}: seed {seed} (re-run with {SEED_VARIABLE}={seed})");
    ChaCha8Rng::seed_from_u64(seed)
}

/// Small segments so that tests roll over often and scan quickly.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        entry_bytes_max: 2048,
    }
}

/// A payload of random length `0..=payload_bytes_max` and random bytes.
pub fn random_payload(rng: &mut ChaCha8Rng, payload_bytes_max: usize) -> Vec<u8> {
    let length = rng.random_range(0..=payload_bytes_max);
    let mut payload = vec![0u8; length];
    rng.fill(&mut payload[..]);
    payload
}

/// Where one entry lies, found by walking a valid log with the documented format.
#[derive(Debug, Clone)]
pub struct EntrySpan {
    pub file: PathBuf,
    pub offset: usize,
    /// Offset after the payload (before the padding).
    pub payload_end: usize,
    /// Offset of the trailer (after the padding).
    pub trailer_start: usize,
    /// Offset after the trailer: the entry's end.
    pub end: usize,
}

/// Segment files of `dir` in index order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read log dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("segment-") && name.ends_with(".log")
        })
        .collect();
    files.sort();
    files
}

/// Every entry of a valid log, in sequence order.
pub fn entry_spans(dir: &Path) -> Vec<EntrySpan> {
    let mut spans = Vec::new();
    for file in segment_files(dir) {
        let bytes = fs::read(&file).expect("read segment");
        let mut offset = SEGMENT_HEADER_BYTES;
        while offset + ENTRY_HEADER_BYTES <= bytes.len() && bytes[offset..offset + 4] == ENTRY_MAGIC
        {
            let payload_bytes =
                u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().unwrap()) as usize;
            let end = offset + entry_bytes(payload_bytes);
            spans.push(EntrySpan {
                file: file.clone(),
                offset,
                payload_end: offset + ENTRY_HEADER_BYTES + payload_bytes,
                trailer_start: end - ENTRY_TRAILER_BYTES,
                end,
            });
            offset = end;
        }
    }
    spans
}

/// The bytes of every file in `dir` (the lock file excluded: it is empty and irrelevant).
pub fn dir_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .expect("read log dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.file_name().is_some_and(|name| name != "LOCK"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(&path).expect("read file");
            (name, bytes)
        })
        .collect()
}

/// Copies every regular file of `source` into a fresh `target`.
pub fn copy_dir(source: &Path, target: &Path) {
    fs::create_dir_all(target).expect("create copy dir");
    for entry in fs::read_dir(source).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        fs::copy(&path, target.join(path.file_name().unwrap())).expect("copy file");
    }
}

/// Replaces `file` bytes from `offset` by `replacement`, then zeroes the rest of the file up
/// to `zero_end` (exclusive, capped at the file length). Bytes past the end of the file are
/// dropped: a write there never reaches a preallocated segment.
pub fn overwrite(file: &Path, offset: usize, replacement: &[u8], zero_end: usize) {
    let mut bytes = fs::read(file).expect("read segment");
    let offset = offset.min(bytes.len());
    let replaced_end = (offset + replacement.len()).min(bytes.len());
    bytes[offset..replaced_end].copy_from_slice(&replacement[..replaced_end - offset]);
    let zero_end = zero_end.min(bytes.len());
    if zero_end > replaced_end {
        bytes[replaced_end..zero_end].fill(0);
    }
    fs::write(file, bytes).expect("write segment");
}

/// Flips one bit of `file` at `offset`.
pub fn flip_bit(file: &Path, offset: usize, bit: u8) {
    let mut bytes = fs::read(file).expect("read segment");
    bytes[offset] ^= 1 << bit;
    fs::write(file, bytes).expect("write segment");
}

/// The archive marker bytes for a base, written from the layout in docs/STORAGE.md (an
/// independent encoder, so the tests also check the documented format).
pub fn encode_marker(segment_index: u64, first_sequence: u64, previous_hash: &[u8; 32]) -> Vec<u8> {
    let mut bytes = vec![0u8; 80];
    bytes[0..8].copy_from_slice(b"TALLYBAS");
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes[16..24].copy_from_slice(&segment_index.to_le_bytes());
    bytes[24..32].copy_from_slice(&first_sequence.to_le_bytes());
    bytes[32..64].copy_from_slice(previous_hash);
    let mut hasher = blake3::Hasher::new_derive_key("tally 2026-11 log archive marker v1");
    hasher.update(&bytes[0..72]);
    let checksum = hasher.finalize();
    bytes[72..80].copy_from_slice(&checksum.as_bytes()[0..8]);
    bytes
}

/// The entry hash stored in the entry at `span` (bytes 48..80 of its header).
pub fn stored_entry_hash(span: &EntrySpan) -> [u8; 32] {
    let bytes = fs::read(&span.file).expect("read segment");
    bytes[span.offset + 48..span.offset + 80]
        .try_into()
        .unwrap()
}

/// The first sequence and index of every segment file of `dir`, read from the headers.
pub fn segment_starts(dir: &Path) -> Vec<(u64, u64)> {
    segment_files(dir)
        .iter()
        .map(|file| {
            let bytes = fs::read(file).expect("read segment");
            let index = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
            let first = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
            (index, first)
        })
        .collect()
}
