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
//! Entry (`ENTRY_HEADER_BYTES` = 80, then the payload, zero padding to 8 bytes, then the
//! `ENTRY_TRAILER_BYTES` = 56 trailer):
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
//! | p | 4 | trailer magic `TLYT` (p = round_up_8(80 + n)) |
//! | p + 4 | 4 | payload bytes (repeated) |
//! | p + 8 | 8 | sequence (repeated) |
//! | p + 16 | 32 | entry hash (repeated) |
//! | p + 48 | 8 | trailer checksum: first 8 bytes of BLAKE3 derive_key over bytes p..p + 48 |
//!
//! The trailer is what only a wholly written entry has: a torn write leaves a prefix of the
//! entry followed by the bytes that were there before (zeros: segments are preallocated and
//! a cut tail is zeroed), so it never leaves the entry's trailer. A damaged entry whose
//! trailer is intact, or whose header and payload are intact but whose trailer holds
//! anything other than a prefix of the right trailer, was wholly written: recovery refuses
//! it as corruption instead of cutting it (DESIGN.md decision 16, docs/STORAGE.md).
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
/// Bytes of the trailer after every entry's padding (the last bytes of the entry).
pub const ENTRY_TRAILER_BYTES: usize = 56;
/// Format version written into segment headers; `open` refuses any other. Version 2 added
/// the entry trailer; version 1 logs are refused with `UnsupportedFormatVersion`.
pub const FORMAT_VERSION: u32 = 2;
/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TALLYSEG";
/// Magic at the start of every entry.
pub const ENTRY_MAGIC: [u8; 4] = *b"TLYE";
/// Magic at the start of every entry trailer.
pub const ENTRY_TRAILER_MAGIC: [u8; 4] = *b"TLYT";
/// `previous_hash` of the entry with sequence 0.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

pub(crate) const ENTRY_HASH_CONTEXT: &str = "tally 2026-11 log entry v1";
const SEGMENT_HASH_CONTEXT: &str = "tally 2026-11 log segment header v1";
const TRAILER_HASH_CONTEXT: &str = "tally 2026-12 log entry trailer v2";
/// Bytes of the trailer its checksum covers.
const TRAILER_CHECKED_BYTES: usize = ENTRY_TRAILER_BYTES - 8;

/// Offset of the entry hash inside the entry header; bytes before it are hashed.
pub(crate) const ENTRY_HASHED_HEADER_BYTES: usize = 48;

const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(ENTRY_ALIGN_BYTES));
const _: () = assert!(ENTRY_HEADER_BYTES.is_multiple_of(ENTRY_ALIGN_BYTES));
const _: () = assert!(ENTRY_HASHED_HEADER_BYTES + 32 == ENTRY_HEADER_BYTES);
const _: () = assert!(ENTRY_TRAILER_BYTES.is_multiple_of(ENTRY_ALIGN_BYTES));

/// Bytes an entry with `payload_bytes` of payload takes on disk: header, payload, padding,
/// trailer.
pub const fn entry_bytes(payload_bytes: usize) -> usize {
    padded_body_end(payload_bytes) + ENTRY_TRAILER_BYTES
}

/// Offset of the trailer inside an entry: header, payload and padding come before it.
const fn padded_body_end(payload_bytes: usize) -> usize {
    let unpadded = ENTRY_HEADER_BYTES + payload_bytes;
    unpadded.div_ceil(ENTRY_ALIGN_BYTES) * ENTRY_ALIGN_BYTES
}

/// The trailer of the entry with `sequence`, `payload_bytes` of payload and `entry_hash`.
pub(crate) fn encode_entry_trailer(
    payload_bytes: u32,
    sequence: u64,
    entry_hash: &[u8; 32],
) -> [u8; ENTRY_TRAILER_BYTES] {
    let mut trailer = [0u8; ENTRY_TRAILER_BYTES];
    trailer[0..4].copy_from_slice(&ENTRY_TRAILER_MAGIC);
    trailer[4..8].copy_from_slice(&payload_bytes.to_le_bytes());
    trailer[8..16].copy_from_slice(&sequence.to_le_bytes());
    trailer[16..48].copy_from_slice(entry_hash);
    let checksum = trailer_checksum(&trailer[..TRAILER_CHECKED_BYTES]);
    trailer[TRAILER_CHECKED_BYTES..].copy_from_slice(&checksum);
    trailer
}

fn trailer_checksum(bytes: &[u8]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new_derive_key(TRAILER_HASH_CONTEXT);
    hasher.update(bytes);
    le8(&hasher.finalize().as_bytes()[0..8])
}

/// A trailer that passes its own checksum: (payload bytes, sequence, entry hash).
fn decode_entry_trailer(bytes: &[u8]) -> Option<(u32, u64, [u8; 32])> {
    let bytes = bytes.get(..ENTRY_TRAILER_BYTES)?;
    if bytes[0..4] != ENTRY_TRAILER_MAGIC
        || trailer_checksum(&bytes[..TRAILER_CHECKED_BYTES]) != bytes[TRAILER_CHECKED_BYTES..]
    {
        return None;
    }
    Some((
        u32::from_le_bytes(le4(&bytes[4..8])),
        u64::from_le_bytes(le8(&bytes[8..16])),
        bytes[16..48].try_into().expect("32 bytes"),
    ))
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
            return Err(format!("{UNSUPPORTED_VERSION_PREFIX}{version}"));
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

/// How `SegmentHeader::decode` starts the reason of an intact header of another version
/// (followed by the version), so that the caller can name it as such.
pub(crate) const UNSUPPORTED_VERSION_PREFIX: &str = "format version ";

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
    /// The trailer is not the one the entry's header and payload call for (torn or damaged).
    TrailerMismatch,
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
            EntryFault::TrailerMismatch => {
                write!(f, "trailer does not match the header (torn or damaged)")
            }
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
    let trailer_start = offset + padded_body_end(payload_bytes as usize);
    if !is_zero(&segment[payload_end..trailer_start]) {
        return Err(EntryFault::PaddingNotZero);
    }
    let end = offset + stored_bytes;
    let sequence = u64::from_le_bytes(le8(&header[8..16]));
    if segment[trailer_start..end] != encode_entry_trailer(payload_bytes, sequence, &hash) {
        return Err(EntryFault::TrailerMismatch);
    }
    Ok(CheckedEntry { hash, end })
}

/// What shows that a damaged entry was wholly written (see [`whole_entry_evidence`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WholeEntryEvidence {
    /// A trailer that passes its checksum, names this entry's sequence and ends the entry
    /// that starts at the damaged offset.
    IntactTrailer {
        /// Offset of the trailer in the segment.
        trailer_offset: u64,
        /// The entry hash the trailer repeats: what the entry's hash was when written.
        entry_hash: [u8; 32],
    },
    /// Header, payload and padding verify against the entry hash, but the trailer holds
    /// bytes that are not a prefix of the right trailer followed by zeros.
    DamagedTrailer {
        /// Offset of the trailer in the segment.
        trailer_offset: u64,
    },
}

impl std::fmt::Display for WholeEntryEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WholeEntryEvidence::IntactTrailer { trailer_offset, .. } => write!(
                f,
                "its trailer at byte {trailer_offset} is intact, so every byte of it was written"
            ),
            WholeEntryEvidence::DamagedTrailer { trailer_offset } => write!(
                f,
                "its header and payload verify and its trailer at byte {trailer_offset} holds \
                 damaged bytes, not the zeros of a write that stopped early"
            ),
        }
    }
}

/// Decides whether the entry that should start at `offset` with `sequence`, which failed its
/// checks, had been wholly written: `None` for a tear (a prefix of an entry, then zeros or
/// garbage without a valid trailer), else what shows that the whole entry was written.
///
/// A torn write keeps a prefix of the entry, so it never leaves the entry's own trailer.
/// Looks first where the header's length puts the trailer, then (the length or magic may
/// be the damaged bytes) at every later 8-aligned offset for a trailer with `sequence`
/// whose length puts the entry's start at `offset`.
pub(crate) fn whole_entry_evidence(
    segment: &[u8],
    offset: usize,
    sequence: u64,
) -> Option<WholeEntryEvidence> {
    // Header and payload intact: the trailer is known exactly, and anything but a prefix of
    // it followed by zeros is damage.
    if let Some(header) = segment.get(offset..offset + ENTRY_HEADER_BYTES) {
        let payload_bytes = u32::from_le_bytes(le4(&header[4..8]));
        let end = offset.saturating_add(entry_bytes(payload_bytes as usize));
        let header_sequence = u64::from_le_bytes(le8(&header[8..16]));
        if header[0..4] == ENTRY_MAGIC && header_sequence == sequence && end <= segment.len() {
            let payload_start = offset + ENTRY_HEADER_BYTES;
            let payload = &segment[payload_start..payload_start + payload_bytes as usize];
            let trailer_start = offset + padded_body_end(payload_bytes as usize);
            let hash = entry_hash(&header[..ENTRY_HASHED_HEADER_BYTES], payload);
            let padding = &segment[payload_start + payload_bytes as usize..trailer_start];
            if hash[..] == header[48..80] && is_zero(padding) {
                let expected = encode_entry_trailer(payload_bytes, sequence, &hash);
                let found = &segment[trailer_start..end];
                let written = found
                    .iter()
                    .zip(&expected)
                    .take_while(|(found, expected)| found == expected)
                    .count();
                return if is_zero(&found[written..]) {
                    None
                } else {
                    Some(WholeEntryEvidence::DamagedTrailer {
                        trailer_offset: trailer_start as u64,
                    })
                };
            }
        }
    }
    let mut trailer = offset + entry_bytes(0) - ENTRY_TRAILER_BYTES;
    while trailer + ENTRY_TRAILER_BYTES <= segment.len() {
        if segment[trailer..trailer + 4] == ENTRY_TRAILER_MAGIC {
            if let Some((payload_bytes, found_sequence, entry_hash)) =
                decode_entry_trailer(&segment[trailer..])
            {
                let starts_at = (trailer + ENTRY_TRAILER_BYTES)
                    .checked_sub(entry_bytes(payload_bytes as usize));
                if found_sequence == sequence && starts_at == Some(offset) {
                    return Some(WholeEntryEvidence::IntactTrailer {
                        trailer_offset: trailer as u64,
                        entry_hash,
                    });
                }
            }
        }
        trailer += ENTRY_ALIGN_BYTES;
    }
    None
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
