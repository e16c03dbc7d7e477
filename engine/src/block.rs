//! Blocks: a fixed-size header, the transaction records, and one result code per record.
//!
//! The log entry of a block (the payload engine::log stores) is:
//! `header (BLOCK_HEADER_BYTES) | records (tx_count * TX_BYTES) | result codes (tx_count bytes,
//! zero-padded to a multiple of 8) [| certificate section]`. The block hash is BLAKE3 of the
//! header; the header commits to the records (`tx_root`), the result codes (`results_hash`)
//! and the state after the block (`state_root`).
//!
//! A validator's blocks carry a certificate section: `magic "TLYCERT1" (8) | length u32 |
//! zero u32 | commit certificate (length bytes, zero-padded to a multiple of 8)`. The
//! certificate signs the block's proposal id ([`proposal_id`]): the header with
//! `results_hash` and `state_root` zeroed, which is what validators agree on before the block
//! is executed (docs/PROTOCOL.md, part 3).

use crate::result::ResultCode;
use crate::tx::{TxRecord, TX_BYTES};
use bytemuck::{Pod, Zeroable};
use tally_kernels::merkle::{self, Hash};

/// Bytes of a block header.
pub const BLOCK_HEADER_BYTES: usize = 168;
/// Most transactions in one block.
pub const BLOCK_TX_COUNT_MAX: usize = 65_536;
/// Magic at the start of a header: "TLYBLK01".
pub const BLOCK_MAGIC: [u8; 8] = *b"TLYBLK01";

/// The block header, little-endian.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, PartialEq, Eq, Debug)]
pub struct BlockHeader {
    pub magic: [u8; 8],
    pub height: [u8; 8],
    pub timestamp_ms: [u8; 8],
    pub tx_count: [u8; 4],
    pub proposer: [u8; 4],
    pub network_id: [u8; 8],
    pub previous_hash: [u8; 32],
    pub tx_root: [u8; 32],
    pub results_hash: [u8; 32],
    pub state_root: [u8; 32],
}

const _: () = assert!(std::mem::size_of::<BlockHeader>() == BLOCK_HEADER_BYTES);

impl BlockHeader {
    pub fn height(&self) -> u64 {
        u64::from_le_bytes(self.height)
    }
    pub fn tx_count(&self) -> usize {
        u32::from_le_bytes(self.tx_count) as usize
    }
    pub fn timestamp_ms(&self) -> u64 {
        u64::from_le_bytes(self.timestamp_ms)
    }
    pub fn network_id(&self) -> u64 {
        u64::from_le_bytes(self.network_id)
    }
    /// BLAKE3 of the header bytes.
    pub fn hash(&self) -> Hash {
        *blake3::hash(bytemuck::bytes_of(self)).as_bytes()
    }
}

/// Why a log entry is not a well-formed block.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockDecodeError {
    #[error("block entry of {0} bytes is shorter than a block header")]
    TooShort(usize),
    #[error("block header magic is wrong")]
    BadMagic,
    #[error("block claims {tx_count} transactions, more than the maximum {BLOCK_TX_COUNT_MAX}")]
    TooManyTransactions { tx_count: usize },
    #[error("block entry is {found} bytes but a block of {tx_count} transactions is {expected}")]
    WrongLength {
        tx_count: usize,
        expected: usize,
        found: usize,
    },
    #[error("result code byte {value} at transaction {index} is not a known code")]
    UnknownResultCode { index: usize, value: u8 },
    #[error("transaction root does not match the block's records")]
    TxRootMismatch,
    #[error("results hash does not match the block's result codes")]
    ResultsHashMismatch,
    #[error("block entry has {0} bytes after its result codes that are not a certificate section")]
    BadCertificateSection(usize),
}

/// Magic at the start of a block entry's certificate section: "TLYCERT1".
pub const CERTIFICATE_MAGIC: [u8; 8] = *b"TLYCERT1";
/// Bytes before the certificate in a certificate section.
pub const CERTIFICATE_SECTION_HEADER_BYTES: usize = 16;

/// A decoded block borrowing its entry.
pub struct BlockView<'a> {
    pub header: BlockHeader,
    pub records: &'a [TxRecord],
    pub results: &'a [u8],
    /// The encoded commit certificate of a validator's block (not checked here: checking
    /// needs the validator set of the block's height).
    pub certificate: Option<&'a [u8]>,
}

/// The id validators vote on for a block: BLAKE3, under its own domain tag, of the header
/// with `results_hash` and `state_root` zeroed (both are known only after execution, which
/// follows the decision). The previous-block hash in the header covers the previous block's
/// results and state root, so agreeing on this id also agrees on the state before the block.
pub fn proposal_id(header: &BlockHeader) -> Hash {
    let proposal = unsealed(header);
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tally-proposal-v1");
    hasher.update(bytemuck::bytes_of(&proposal));
    *hasher.finalize().as_bytes()
}

/// `header` as it was proposed, before sealing: `results_hash` and `state_root` zeroed.
pub fn unsealed(header: &BlockHeader) -> BlockHeader {
    BlockHeader {
        results_hash: [0; 32],
        state_root: [0; 32],
        ..*header
    }
}

/// Appends a certificate section holding `certificate` to a block entry built by
/// [`encode_entry`].
pub fn append_certificate(certificate: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&CERTIFICATE_MAGIC);
    out.extend_from_slice(&(certificate.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(certificate);
    out.resize(out.len().next_multiple_of(8), 0);
}

/// Bytes of a block entry with `tx_count` transactions.
pub fn entry_bytes(tx_count: usize) -> usize {
    BLOCK_HEADER_BYTES + tx_count * TX_BYTES + tx_count.next_multiple_of(8)
}

/// Merkle root over the records' bytes.
pub fn tx_root(records: &[TxRecord]) -> Hash {
    merkle::root(bytemuck::cast_slice(records), TX_BYTES)
}

/// BLAKE3 over the result code bytes.
pub fn results_hash(results: &[u8]) -> Hash {
    *blake3::hash(results).as_bytes()
}

/// Writes a block entry into `out` (cleared first); `results` are the result codes' bytes,
/// one per record.
pub fn encode_entry(header: &BlockHeader, records: &[TxRecord], results: &[u8], out: &mut Vec<u8>) {
    assert_eq!(records.len(), results.len(), "one result per record");
    assert_eq!(
        header.tx_count(),
        records.len(),
        "header counts the records"
    );
    out.clear();
    out.extend_from_slice(bytemuck::bytes_of(header));
    out.extend_from_slice(bytemuck::cast_slice(records));
    out.extend_from_slice(results);
    out.resize(entry_bytes(records.len()), 0);
}

/// Reads a block entry and checks its internal commitments (tx root, results hash).
pub fn decode_entry(entry: &[u8]) -> Result<BlockView<'_>, BlockDecodeError> {
    if entry.len() < BLOCK_HEADER_BYTES {
        return Err(BlockDecodeError::TooShort(entry.len()));
    }
    let header: BlockHeader = bytemuck::pod_read_unaligned(&entry[..BLOCK_HEADER_BYTES]);
    if header.magic != BLOCK_MAGIC {
        return Err(BlockDecodeError::BadMagic);
    }
    let tx_count = header.tx_count();
    if tx_count > BLOCK_TX_COUNT_MAX {
        return Err(BlockDecodeError::TooManyTransactions { tx_count });
    }
    let expected = entry_bytes(tx_count);
    if entry.len() < expected {
        return Err(BlockDecodeError::WrongLength {
            tx_count,
            expected,
            found: entry.len(),
        });
    }
    let certificate = match &entry[expected..] {
        [] => None,
        section => Some(certificate_section(section)?),
    };
    let records_end = BLOCK_HEADER_BYTES + tx_count * TX_BYTES;
    let records: &[TxRecord] = bytemuck::cast_slice(&entry[BLOCK_HEADER_BYTES..records_end]);
    let results = &entry[records_end..records_end + tx_count];
    if let Some((index, &value)) = results
        .iter()
        .enumerate()
        .find(|(_, value)| ResultCode::from_wire(**value).is_none())
    {
        return Err(BlockDecodeError::UnknownResultCode { index, value });
    }
    if tx_root(records) != header.tx_root {
        return Err(BlockDecodeError::TxRootMismatch);
    }
    if results_hash(results) != header.results_hash {
        return Err(BlockDecodeError::ResultsHashMismatch);
    }
    Ok(BlockView {
        header,
        records,
        results,
        certificate,
    })
}

/// The certificate inside a certificate section (which must fill the rest of the entry).
fn certificate_section(section: &[u8]) -> Result<&[u8], BlockDecodeError> {
    let bad = || BlockDecodeError::BadCertificateSection(section.len());
    if section.len() < CERTIFICATE_SECTION_HEADER_BYTES || section[..8] != CERTIFICATE_MAGIC {
        return Err(bad());
    }
    let length = u32::from_le_bytes(section[8..12].try_into().expect("4 bytes")) as usize;
    let end = CERTIFICATE_SECTION_HEADER_BYTES
        .checked_add(length)
        .ok_or_else(bad)?;
    if section[12..16] != [0; 4] || end.next_multiple_of(8) != section.len() {
        return Err(bad());
    }
    Ok(&section[CERTIFICATE_SECTION_HEADER_BYTES..end])
}
