//! The on-disk format of segment files and entries (docs/STORAGE.md has the same tables).
//!
//! Every integer is little-endian. Entries start 8-byte aligned so that a header never
//! straddles a machine word and a scan can step over the file in 8-byte strides.
//!
//! Segment header (`SEGMENT_HEADER_BYTES` = 64):
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `TALLYSEG` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | segment index (also in the file name) |
//! | 24 | 8 | first sequence: the sequence of the first entry this segment holds |
//! | 32 | 8 | segment bytes when created |
//! | 40 | 16 | reserved, zero |
//! | 56 | 8 | header checksum: first 8 bytes of BLAKE3 derive_key over bytes 0..56 |
//!
//! Entry (`ENTRY_HEADER_BYTES` = 80, then the payload, then zero padding to 8 bytes):
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `TLYE` |
//! | 4 | 4 | payload bytes |
//! | 8 | 8 | sequence (the first entry of a log is 0) |
//! | 16 | 32 | hash of the previous entry (all zero for sequence 0) |
//! | 48 | 32 | entry hash: BLAKE3 derive_key over bytes 0..48, then the payload |
//! | 80 | n | payload |
//! | 80 + n | 0..7 | zero padding |
//!
//! The entry hash is both the checksum and the link of the hash chain: the chain needs a
//! BLAKE3 hash of every entry anyway, so a separate crc32c would be extra work that detects
//! less (see docs/STORAGE.md).

use super::prepared::PreparedEntry;

/// Bytes of the segment header at the start of every segment file.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Bytes of the header in front of every payload.
pub const ENTRY_HEADER_BYTES: usize = 80;
/// Alignment of every entry (and so of its padded length).
pub const ENTRY_ALIGN_BYTES: usize = 8;
/// Format version written into segment headers; `open` refuses any other.
pub const FORMAT_VERSION: u32 = 1;
/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TALLYSEG";
/// Magic at the start of every entry.
pub const ENTRY_MAGIC: [u8; 4] = *b"TLYE";
/// `previous_hash` of the entry with sequence 0.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

pub(crate) const ENTRY_HASH_CONTEXT: &str = "tally 2026-11 log entry v1";
const SEGMENT_HASH_CONTEXT: &str = "tally 2026-11 log segment header v1";

/// Offset of the entry hash inside the entry header; bytes before it are hashed.
pub(crate) const ENTRY_HASHED_HEADER_BYTES: usize = 48;

const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(ENTRY_ALIGN_BYTES));
const _: () = assert!(ENTRY_HEADER_BYTES.is_multiple_of(ENTRY_ALIGN_BYTES));
const _: () = assert!(ENTRY_HASHED_HEADER_BYTES + 32 == ENTRY_HEADER_BYTES);

/// Bytes an entry with `payload_bytes` of payload takes on disk: header, payload, padding.
pub const fn entry_bytes(payload_bytes: usize) -> usize {
    let unpadded = ENTRY_HEADER_BYTES + payload_bytes;
    unpadded.div_ceil(ENTRY_ALIGN_BYTES) * ENTRY_ALIGN_BYTES
}

/// Name of the segment file with `index`; the fixed width keeps names in index order.
pub fn segment_file_name(index: u64) -> String {
    format!("segment-{index:020}.log")
}

/// Parses a name written by [`segment_file_name`]; `None` for any other name.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub index: u64,
    pub first_sequence: u64,
    pub segment_bytes: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.index.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.first_sequence.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let checksum = segment_header_checksum(&bytes[0..56]);
        bytes[56..64].copy_from_slice(&checksum);
        bytes
    }

    /// Decodes and checks a segment header; the error says what is wrong, for an operator.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(format!(
                "file holds {} bytes, fewer than the {SEGMENT_HEADER_BYTES}-byte segment header",
                bytes.len()
            ));
        }
        let bytes = &bytes[..SEGMENT_HEADER_BYTES];
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(format!(
                "bad magic {:02x?}, expected TALLYSEG",
                &bytes[0..8]
            ));
        }
        if segment_header_checksum(&bytes[0..56]) != bytes[56..64] {
            return Err("header checksum mismatch".to_string());
        }
        let version = u32::from_le_bytes(le4(&bytes[8..12]));
        if version != FORMAT_VERSION {
            return Err(format!(
                "format version {version}; this build reads version {FORMAT_VERSION} only"
            ));
        }
        if bytes[12..16] != [0; 4] || bytes[40..56] != [0; 16] {
            return Err("reserved header bytes are not zero".to_string());
        }
        Ok(SegmentHeader {
            index: u64::from_le_bytes(le8(&bytes[16..24])),
            first_sequence: u64::from_le_bytes(le8(&bytes[24..32])),
            segment_bytes: u64::from_le_bytes(le8(&bytes[32..40])),
        })
    }
}

fn segment_header_checksum(bytes: &[u8]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new_derive_key(SEGMENT_HASH_CONTEXT);
    hasher.update(bytes);
    let hash = hasher.finalize();
    le8(&hash.as_bytes()[0..8])
}

/// Payloads at least this large are hashed on the rayon pool: BLAKE3 splits them into
/// chunks, and below this size the fork-join costs more than it saves.
const PARALLEL_HASH_BYTES_MIN: usize = 256 * 1024;

/// The entry hash over the first 48 header bytes and the payload, in one pass; large
/// payloads are hashed on the rayon pool (bulk verification in `open` and `inspect`). The
/// writer computes the same hash in two steps (`PreparedEntry`); readers always use this one.
pub(crate) fn entry_hash(hashed_header: &[u8], payload: &[u8]) -> [u8; 32] {
    debug_assert_eq!(hashed_header.len(), ENTRY_HASHED_HEADER_BYTES);
    let mut hasher = blake3::Hasher::new_derive_key(ENTRY_HASH_CONTEXT);
    hasher.update(hashed_header);
    if payload.len() >= PARALLEL_HASH_BYTES_MIN {
        hasher.update_rayon(payload);
    } else {
        hasher.update(payload);
    }
    *hasher.finalize().as_bytes()
}

/// The 80-byte header of the entry with `sequence` after `previous_hash` carrying the
/// prepared payload, and the entry hash (which the header holds at offset 48). On disk the
/// header is followed by the payload and `entry_bytes(payload.len()) - 80 - payload.len()`
/// zero bytes.
pub(crate) fn encode_entry_header<P: AsRef<[u8]>>(
    sequence: u64,
    previous_hash: &[u8; 32],
    entry: &PreparedEntry<P>,
) -> ([u8; ENTRY_HEADER_BYTES], [u8; 32]) {
    let payload_bytes =
        u32::try_from(entry.payload().len()).expect("payload length checked by caller");
    let mut header = [0u8; ENTRY_HEADER_BYTES];
    header[0..4].copy_from_slice(&ENTRY_MAGIC);
    header[4..8].copy_from_slice(&payload_bytes.to_le_bytes());
    header[8..16].copy_from_slice(&sequence.to_le_bytes());
    header[16..48].copy_from_slice(previous_hash);
    // On the calling thread, never on the rayon pool: the writer is not a pool thread, so a
    // pool hash would wait until a pool thread is free, and in a node the pool is busy with
    // signature batches. Only the first chunk and the joins up the tree's left edge are left
    // to hash here; the rest was hashed when the entry was prepared.
    let hash = entry.entry_hash(&header[0..ENTRY_HASHED_HEADER_BYTES]);
    header[48..80].copy_from_slice(&hash);
    (header, hash)
}

/// Zero bytes for the padding after a payload (at most `ENTRY_ALIGN_BYTES - 1` are used).
pub(crate) const ENTRY_PADDING: [u8; ENTRY_ALIGN_BYTES] = [0; ENTRY_ALIGN_BYTES];

/// Why the bytes at an entry position are not the expected next entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryFault {
    /// The header is all zero: nothing was ever written here.
    Zeroed,
    /// Fewer bytes than an entry header are left in the segment and they are not zero.
    TruncatedHeader {
        /// Bytes left in the segment.
        room_bytes: u64,
    },
    /// The first 4 bytes are not `TLYE`.
    BadMagic {
        /// The 4 bytes found.
        found: [u8; 4],
    },
    /// The payload length runs past the end of the segment.
    LengthOutOfBounds {
        /// Payload bytes the header claims.
        payload_bytes: u32,
        /// Bytes left in the segment after this entry's header.
        room_bytes: u64,
    },
    /// The entry hash does not match the header and payload: torn or damaged bytes.
    ChecksumMismatch,
    /// The padding after the payload is not zero.
    PaddingNotZero,
    /// A self-consistent entry with the wrong sequence number.
    SequenceMismatch {
        /// The sequence in the entry.
        found: u64,
    },
    /// A self-consistent entry whose previous-hash field is not the previous entry's hash.
    PreviousHashMismatch,
}

impl std::fmt::Display for EntryFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryFault::Zeroed => write!(f, "no entry (zero bytes)"),
            EntryFault::TruncatedHeader { room_bytes } => {
                write!(
                    f,
                    "{room_bytes} non-zero bytes, too few for an entry header"
                )
            }
            EntryFault::BadMagic { found } => write!(f, "bad entry magic {found:02x?}"),
            EntryFault::LengthOutOfBounds {
                payload_bytes,
                room_bytes,
            } => write!(
                f,
                "payload length {payload_bytes} runs past the segment end ({room_bytes} bytes left)"
            ),
            EntryFault::ChecksumMismatch => write!(f, "entry hash mismatch (torn or damaged)"),
            EntryFault::PaddingNotZero => write!(f, "padding after the payload is not zero"),
            EntryFault::SequenceMismatch { found } => {
                write!(f, "entry carries sequence {found}")
            }
            EntryFault::PreviousHashMismatch => {
                write!(f, "previous-entry hash does not match the previous entry")
            }
        }
    }
}

/// A verified entry inside a segment's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedEntry {
    pub hash: [u8; 32],
    /// Offset of the byte after the padding.
    pub end: usize,
}

/// Checks that the bytes at `offset` are one well-formed entry (magic, length, hash,
/// padding), without looking at the chain. `offset` must be 8-aligned and inside `segment`.
pub(crate) fn check_entry_self(segment: &[u8], offset: usize) -> Result<CheckedEntry, EntryFault> {
    debug_assert!(offset.is_multiple_of(ENTRY_ALIGN_BYTES) && offset <= segment.len());
    let room = segment.len() - offset;
    if room < ENTRY_HEADER_BYTES {
        let rest = &segment[offset..];
        return Err(if is_zero(rest) {
            EntryFault::Zeroed
        } else {
            EntryFault::TruncatedHeader {
                room_bytes: room as u64,
            }
        });
    }
    let header = &segment[offset..offset + ENTRY_HEADER_BYTES];
    let magic: [u8; 4] = le4(&header[0..4]);
    if magic != ENTRY_MAGIC {
        return Err(if is_zero(header) {
            EntryFault::Zeroed
        } else {
            EntryFault::BadMagic { found: magic }
        });
    }
    let payload_bytes = u32::from_le_bytes(le4(&header[4..8]));
    let stored_bytes = entry_bytes(payload_bytes as usize);
    if stored_bytes > room {
        return Err(EntryFault::LengthOutOfBounds {
            payload_bytes,
            room_bytes: (room - ENTRY_HEADER_BYTES) as u64,
        });
    }
    let payload_start = offset + ENTRY_HEADER_BYTES;
    let payload_end = payload_start + payload_bytes as usize;
    let payload = &segment[payload_start..payload_end];
    let hash = entry_hash(&header[0..ENTRY_HASHED_HEADER_BYTES], payload);
    if hash[..] != header[48..80] {
        return Err(EntryFault::ChecksumMismatch);
    }
    let end = offset + stored_bytes;
    if !is_zero(&segment[payload_end..end]) {
        return Err(EntryFault::PaddingNotZero);
    }
    Ok(CheckedEntry { hash, end })
}

/// Checks the entry at `offset` and that it is the next link of the chain.
pub(crate) fn check_entry_chained(
    segment: &[u8],
    offset: usize,
    expected_sequence: u64,
    previous_hash: &[u8; 32],
) -> Result<CheckedEntry, EntryFault> {
    let entry = check_entry_self(segment, offset)?;
    let header = &segment[offset..offset + ENTRY_HEADER_BYTES];
    let sequence = u64::from_le_bytes(le8(&header[8..16]));
    if sequence != expected_sequence {
        return Err(EntryFault::SequenceMismatch { found: sequence });
    }
    if header[16..48] != previous_hash[..] {
        return Err(EntryFault::PreviousHashMismatch);
    }
    Ok(entry)
}

/// The header fields of an entry that `open` or `append` has already verified.
/// Returns (sequence, payload range, end offset); `None` when the bytes are not an entry.
pub(crate) fn read_verified_entry(
    segment: &[u8],
    offset: usize,
) -> Option<(u64, std::ops::Range<usize>, usize)> {
    let header = segment.get(offset..offset + ENTRY_HEADER_BYTES)?;
    if header[0..4] != ENTRY_MAGIC {
        return None;
    }
    let payload_bytes = u32::from_le_bytes(le4(&header[4..8])) as usize;
    let end = offset.checked_add(entry_bytes(payload_bytes))?;
    if end > segment.len() {
        return None;
    }
    let sequence = u64::from_le_bytes(le8(&header[8..16]));
    let start = offset + ENTRY_HEADER_BYTES;
    Some((sequence, start..start + payload_bytes, end))
}

/// True when every byte is zero; steps 8 bytes at a time because tails can be 64 MiB.
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    words.fold(0u64, |acc, w| acc | u64::from_ne_bytes(le8(w))) == 0 && rest.iter().all(|&b| b == 0)
}

/// Offset one past the last non-zero byte in `bytes[from..]`, rounded up to 8 (and capped at
/// the length); `from` when all of it is zero.
pub(crate) fn nonzero_end(bytes: &[u8], from: usize) -> usize {
    // Word steps from the end: the tail of a fresh segment is tens of MiB of zeros.
    let mut end = bytes.len();
    while end > from {
        let word_start = end.saturating_sub(8).max(from);
        if !bytes[word_start..end].iter().all(|&b| b == 0) {
            let last = word_start
                + bytes[word_start..end]
                    .iter()
                    .rposition(|&b| b != 0)
                    .unwrap_or(0);
            return (last + 1)
                .div_ceil(ENTRY_ALIGN_BYTES)
                .saturating_mul(ENTRY_ALIGN_BYTES)
                .min(bytes.len());
        }
        end = word_start;
    }
    from
}

/// First 8-aligned offset at or after `from` that holds a self-consistent entry.
pub(crate) fn find_self_consistent_entry(segment: &[u8], from: usize) -> Option<usize> {
    let mut offset = from.div_ceil(ENTRY_ALIGN_BYTES) * ENTRY_ALIGN_BYTES;
    while offset + ENTRY_HEADER_BYTES <= segment.len() {
        // The magic test rejects almost every offset before any hashing.
        if segment[offset..offset + 4] == ENTRY_MAGIC && check_entry_self(segment, offset).is_ok() {
            return Some(offset);
        }
        offset += ENTRY_ALIGN_BYTES;
    }
    None
}

fn le4(bytes: &[u8]) -> [u8; 4] {
    bytes.try_into().expect("caller passes 4 bytes")
}

fn le8(bytes: &[u8]) -> [u8; 8] {
    bytes.try_into().expect("caller passes 8 bytes")
}
