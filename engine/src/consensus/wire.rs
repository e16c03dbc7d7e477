//! Validator-to-validator messages carried on the validator links (frame types
//! `0x42..=0x7F`; the links use 0x40 and 0x41 for their handshake). docs/PROTOCOL.md part 3.
//!
//! | type | name | payload |
//! | --- | --- | --- |
//! | 0x42 | consensus | one signed Tendermint message (152 bytes) |
//! | 0x43 | proposal body | block header with `results_hash` and `state_root` zero (168 bytes), then the records |
//! | 0x44 | transactions | records (192 bytes each) a validator verified and passes on |
//! | 0x45 | sync request | the first height wanted (u64) |
//! | 0x46 | sync block | one decided block as its log entry, with its certificate section |
//!
//! Every decoder refuses malformed input with a specific [`WireError`]; none panics.

use crate::block::{self, BlockHeader, BLOCK_HEADER_BYTES, BLOCK_MAGIC, BLOCK_TX_COUNT_MAX};
use crate::consensus::{BlockId, SignedMessage, MESSAGE_BYTES};
use crate::tx::{TxRecord, TX_BYTES};

pub const KIND_CONSENSUS: u8 = 0x42;
pub const KIND_PROPOSAL_BODY: u8 = 0x43;
pub const KIND_TRANSACTIONS: u8 = 0x44;
pub const KIND_SYNC_REQUEST: u8 = 0x45;
pub const KIND_SYNC_BLOCK: u8 = 0x46;

/// Why a validator message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unknown validator message type {0:#04x}")]
    UnknownType(u8),
    #[error("consensus message: {0}")]
    Consensus(String),
    #[error("{what} of {found} bytes: expected {expected}")]
    Length {
        what: &'static str,
        expected: String,
        found: usize,
    },
    #[error("proposal body: {0}")]
    Proposal(String),
    #[error("transactions: record {index} is malformed: {reason}")]
    Record { index: usize, reason: String },
}

/// A decoded validator message.
#[derive(Debug)]
pub enum PeerMessage {
    Consensus(SignedMessage),
    Proposal(ProposalBody),
    Transactions(Vec<TxRecord>),
    SyncRequest {
        from_height: u64,
    },
    /// A log entry; checked by the receiver against its validator set.
    SyncBlock(Vec<u8>),
}

/// A proposed block before execution: its header (results and state root zero) and records.
#[derive(Clone, Debug)]
pub struct ProposalBody {
    pub header: BlockHeader,
    pub records: Vec<TxRecord>,
}

impl ProposalBody {
    /// The id the validators vote on ([`block::proposal_id`]).
    pub fn id(&self) -> BlockId {
        block::proposal_id(&self.header)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BLOCK_HEADER_BYTES + self.records.len() * TX_BYTES);
        out.extend_from_slice(bytemuck::bytes_of(&self.header));
        out.extend_from_slice(bytemuck::cast_slice(&self.records));
        out
    }

    /// Decodes a body and checks its own consistency (magic, count, length, tx root, zero
    /// results and state root). Whether it is a valid next block is the receiver's question.
    pub fn decode(bytes: &[u8]) -> Result<ProposalBody, WireError> {
        if bytes.len() < BLOCK_HEADER_BYTES {
            return Err(WireError::Length {
                what: "proposal body",
                expected: format!("at least {BLOCK_HEADER_BYTES}"),
                found: bytes.len(),
            });
        }
        let header: BlockHeader = bytemuck::pod_read_unaligned(&bytes[..BLOCK_HEADER_BYTES]);
        if header.magic != BLOCK_MAGIC {
            return Err(WireError::Proposal("header magic is wrong".into()));
        }
        let count = header.tx_count();
        if count > BLOCK_TX_COUNT_MAX {
            return Err(WireError::Proposal(format!(
                "{count} transactions, more than the block maximum {BLOCK_TX_COUNT_MAX}"
            )));
        }
        let expected = BLOCK_HEADER_BYTES + count * TX_BYTES;
        if bytes.len() != expected {
            return Err(WireError::Length {
                what: "proposal body",
                expected: expected.to_string(),
                found: bytes.len(),
            });
        }
        if header.results_hash != [0; 32] || header.state_root != [0; 32] {
            return Err(WireError::Proposal(
                "results hash and state root must be zero before execution".into(),
            ));
        }
        let records: Vec<TxRecord> = bytes[BLOCK_HEADER_BYTES..]
            .chunks_exact(TX_BYTES)
            .map(bytemuck::pod_read_unaligned)
            .collect();
        if block::tx_root(&records) != header.tx_root {
            return Err(WireError::Proposal(
                "transaction root does not match the records".into(),
            ));
        }
        Ok(ProposalBody { header, records })
    }
}

/// Encodes records for a transactions message.
pub fn encode_transactions(records: &[TxRecord]) -> &[u8] {
    bytemuck::cast_slice(records)
}

/// Decodes one validator message of frame type `kind`.
pub fn decode(kind: u8, payload: &[u8]) -> Result<PeerMessage, WireError> {
    match kind {
        KIND_CONSENSUS => {
            if payload.len() != MESSAGE_BYTES {
                return Err(WireError::Length {
                    what: "consensus message",
                    expected: MESSAGE_BYTES.to_string(),
                    found: payload.len(),
                });
            }
            SignedMessage::decode(payload)
                .map(PeerMessage::Consensus)
                .map_err(|error| WireError::Consensus(error.to_string()))
        }
        KIND_PROPOSAL_BODY => ProposalBody::decode(payload).map(PeerMessage::Proposal),
        KIND_TRANSACTIONS => {
            if payload.is_empty() || !payload.len().is_multiple_of(TX_BYTES) {
                return Err(WireError::Length {
                    what: "transactions message",
                    expected: format!("a positive multiple of {TX_BYTES}"),
                    found: payload.len(),
                });
            }
            let mut records = Vec::with_capacity(payload.len() / TX_BYTES);
            for (index, chunk) in payload.chunks_exact(TX_BYTES).enumerate() {
                let record = TxRecord::decode(chunk).map_err(|error| WireError::Record {
                    index,
                    reason: error.to_string(),
                })?;
                record.validate().map_err(|error| WireError::Record {
                    index,
                    reason: error.to_string(),
                })?;
                records.push(record);
            }
            Ok(PeerMessage::Transactions(records))
        }
        KIND_SYNC_REQUEST => {
            let bytes: [u8; 8] = payload.try_into().map_err(|_| WireError::Length {
                what: "sync request",
                expected: "8".into(),
                found: payload.len(),
            })?;
            Ok(PeerMessage::SyncRequest {
                from_height: u64::from_le_bytes(bytes),
            })
        }
        KIND_SYNC_BLOCK => {
            block::decode_entry(payload)
                .map_err(|error| WireError::Proposal(format!("sync block: {error}")))?;
            Ok(PeerMessage::SyncBlock(payload.to_vec()))
        }
        other => Err(WireError::UnknownType(other)),
    }
}
