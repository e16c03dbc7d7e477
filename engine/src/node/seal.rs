//! Sealing a block: the one place where a block's records are executed against the ledger and
//! its result codes, results hash, state root, header and log entry are made, and the one
//! check of a block header against the chain it extends.
//!
//! Consensus-critical (docs/DESIGN.md, decision 8): the single node's execution stage, a
//! validator's commit of a decided block and start-up replay all call [`seal`]; proposal
//! validation, block sync and replay all call [`check_header`]. Two nodes that seal the same
//! proposal over the same state make the same bytes. A second copy of either function is a
//! fork waiting to happen: change this file, not its callers.
//!
//! Sealing asserts what must hold at its edges, in release builds too (each check is cheap
//! beside executing the block and computing its state root): the proposal extends the tip
//! the caller holds and the ledger is at that tip, the header counts the records and leaves
//! the results and the state root to sealing, the block is within its size limit, there is
//! one result per record, and money is conserved (the sum of every balance is the genesis
//! total). A failed assertion is a bug in this process, never bad input: input is refused by
//! [`check_header`] and the decoders before it reaches here.

use crate::block::{self, BlockHeader, BLOCK_MAGIC, BLOCK_TX_COUNT_MAX};
use crate::ledger::Ledger;
use crate::log::PreparedEntry;
use crate::result::ResultCode;
use crate::tx::TxRecord;
use tally_kernels::merkle::Hash;

/// The last block of a chain as the next block sees it: its height, its hash and the ledger's
/// time after it (the largest block timestamp so far).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainTip {
    pub height: u64,
    pub hash: Hash,
    pub timestamp_ms: u64,
}

impl ChainTip {
    /// The tip before the first block: height 0, the genesis hash, time 0.
    pub fn genesis(genesis_hash: Hash) -> ChainTip {
        ChainTip {
            height: 0,
            hash: genesis_hash,
            timestamp_ms: 0,
        }
    }
}

/// Why a block header does not extend a chain. Every path that takes a block from outside
/// this process (a proposal, a synced block, a log entry at replay) refuses it with one of
/// these before it is executed; a proposal is also refused when its time goes back
/// ([`check_timestamp`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("block header magic is wrong")]
    BadMagic,
    #[error("height {height} is not the next height {expected}")]
    NotNextHeight { height: u64, expected: u64 },
    #[error("block is for network {found}, this node is on network {expected}")]
    OtherNetwork { found: u64, expected: u64 },
    #[error("a first block that does not follow this genesis (the data directory or peer belongs to another genesis)")]
    OtherGenesis,
    #[error("the previous-block hash differs from this node's block {height} (different state, results or chain)")]
    OtherPrevious { height: u64 },
    #[error("timestamp {timestamp_ms} ms is before the previous block's {previous_ms} ms")]
    TimestampBackwards { timestamp_ms: u64, previous_ms: u64 },
    #[error("{count} transactions, more than the block maximum {max}")]
    TooManyTransactions { count: usize, max: usize },
    #[error("the header counts {header} transactions, the block holds {records}")]
    CountMismatch { header: usize, records: usize },
}

/// Checks that `header`, carrying `record_count` records, is the next block after `tip` on
/// network `network_id`, within `tx_max` records (at most [`BLOCK_TX_COUNT_MAX`]). Checks the
/// header alone: the transaction root and results hash are checked where the block is decoded
/// ([`block::decode_entry`], the proposal decoder), signatures and certificates by the caller.
///
/// The block's time is not checked here: a block already in a log or final by its
/// certificate is taken with the time it has (the ledger's time is the largest timestamp so
/// far, so a time that went back changes nothing; logs a node alone wrote before its blocks
/// took the tip's time as their floor can hold such blocks). A new block must not go back:
/// [`propose`] never does, and proposal validation calls [`check_timestamp`].
pub fn check_header(
    tip: &ChainTip,
    network_id: u64,
    header: &BlockHeader,
    record_count: usize,
    tx_max: usize,
) -> Result<(), HeaderError> {
    if header.magic != BLOCK_MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let expected = tip.height + 1;
    if header.height() != expected {
        return Err(HeaderError::NotNextHeight {
            height: header.height(),
            expected,
        });
    }
    if header.network_id() != network_id {
        return Err(HeaderError::OtherNetwork {
            found: header.network_id(),
            expected: network_id,
        });
    }
    if header.previous_hash != tip.hash {
        return Err(if tip.height == 0 {
            HeaderError::OtherGenesis
        } else {
            HeaderError::OtherPrevious { height: tip.height }
        });
    }
    let max = tx_max.min(BLOCK_TX_COUNT_MAX);
    if record_count > max {
        return Err(HeaderError::TooManyTransactions {
            count: record_count,
            max,
        });
    }
    if header.tx_count() != record_count {
        return Err(HeaderError::CountMismatch {
            header: header.tx_count(),
            records: record_count,
        });
    }
    Ok(())
}

/// Checks that a new block's time does not go back: its timestamp is at least the ledger's
/// time at `tip` (the largest block timestamp so far).
pub fn check_timestamp(tip: &ChainTip, header: &BlockHeader) -> Result<(), HeaderError> {
    if header.timestamp_ms() < tip.timestamp_ms {
        return Err(HeaderError::TimestampBackwards {
            timestamp_ms: header.timestamp_ms(),
            previous_ms: tip.timestamp_ms,
        });
    }
    Ok(())
}

/// The header of the block after `tip` proposed with `records` by validator `proposer` (0
/// for a single node), before execution: `results_hash` and `state_root` are zero, as in the
/// id validators vote on ([`block::proposal_id`]). The timestamp is `now_ms`, or the tip's
/// time if the clock is behind it.
pub fn propose(
    tip: &ChainTip,
    network_id: u64,
    now_ms: u64,
    proposer: u32,
    records: &[TxRecord],
) -> BlockHeader {
    propose_with_tx_root(
        tip,
        network_id,
        now_ms,
        proposer,
        records,
        block::tx_root(records),
    )
}

/// As [`propose`], with the records' transaction root already computed (the GPU block path
/// hashes it with the signatures). `tx_root` must be `block::tx_root(records)`: the GPU
/// kernels are admitted only after their known answers equal the CPU's, and debug builds
/// check every block.
pub fn propose_with_tx_root(
    tip: &ChainTip,
    network_id: u64,
    now_ms: u64,
    proposer: u32,
    records: &[TxRecord],
    tx_root: Hash,
) -> BlockHeader {
    debug_assert_eq!(tx_root, block::tx_root(records), "the GPU's tx root");
    assert!(
        records.len() <= BLOCK_TX_COUNT_MAX,
        "a block holds at most {BLOCK_TX_COUNT_MAX} records"
    );
    BlockHeader {
        magic: BLOCK_MAGIC,
        height: (tip.height + 1).to_le_bytes(),
        timestamp_ms: now_ms.max(tip.timestamp_ms).to_le_bytes(),
        tx_count: (records.len() as u32).to_le_bytes(),
        proposer: proposer.to_le_bytes(),
        network_id: network_id.to_le_bytes(),
        previous_hash: tip.hash,
        tx_root,
        results_hash: [0; 32],
        state_root: [0; 32],
    }
}

/// A block after execution: the header with its results hash and state root, and one result
/// code per record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub header: BlockHeader,
    pub results: Vec<ResultCode>,
    result_bytes: Vec<u8>,
    tip: ChainTip,
}

impl Sealed {
    /// The result codes as stored in the log.
    pub fn result_bytes(&self) -> &[u8] {
        &self.result_bytes
    }

    /// The chain's tip after this block.
    pub fn tip(&self) -> ChainTip {
        self.tip
    }

    /// The block's log entry: header, `records` (the ones sealed), result codes, and the
    /// commit certificate of a validator's block.
    pub fn entry(&self, records: &[TxRecord], certificate: Option<&[u8]>) -> Vec<u8> {
        assert_eq!(records.len(), self.results.len(), "the records sealed");
        let mut entry = Vec::with_capacity(
            block::entry_bytes(records.len())
                + certificate.map_or(0, |c| {
                    block::CERTIFICATE_SECTION_HEADER_BYTES + c.len().next_multiple_of(8)
                }),
        );
        block::encode_entry(&self.header, records, &self.result_bytes, &mut entry);
        if let Some(certificate) = certificate {
            block::append_certificate(certificate, &mut entry);
        }
        entry
    }

    /// [`Sealed::entry`], with the payload-only part of its log hash computed here, on the
    /// sealing thread, not on the log thread.
    pub fn prepared_entry(
        &self,
        records: &[TxRecord],
        certificate: Option<&[u8]>,
    ) -> PreparedEntry {
        PreparedEntry::new(self.entry(records, certificate))
    }
}

/// Executes the block `proposal` (a header from [`propose`] or a decided proposal: results
/// hash and state root zero) with `records` on `ledger`, which is at `tip`, and returns the
/// sealed block. The caller has checked the proposal ([`check_header`]) and the records'
/// signatures; whatever the records hold, their result codes say what each did.
///
/// Panics if an edge assertion fails (see the module's doc): that is a bug, and a node that
/// carried on would write a block its peers would not.
pub fn seal(
    ledger: &mut Ledger,
    tip: &ChainTip,
    proposal: &BlockHeader,
    records: &[TxRecord],
) -> Sealed {
    let height = proposal.height();
    assert_eq!(height, tip.height + 1, "a block follows its tip");
    assert_eq!(proposal.previous_hash, tip.hash, "a block links to its tip");
    assert_eq!(ledger.height(), tip.height, "the ledger is at the tip");
    assert_eq!(
        proposal.tx_count(),
        records.len(),
        "the header counts the records"
    );
    assert!(
        records.len() <= BLOCK_TX_COUNT_MAX,
        "a block holds at most {BLOCK_TX_COUNT_MAX} records"
    );
    assert!(
        proposal.results_hash == [0; 32] && proposal.state_root == [0; 32],
        "results and state root are made by sealing"
    );
    debug_assert_eq!(proposal.tx_root, block::tx_root(records), "the tx root");

    ledger.begin_block(height, proposal.timestamp_ms());
    ledger.set_block_proposer(u32::from_le_bytes(proposal.proposer));
    let mut results: Vec<ResultCode> = records.iter().map(|r| ledger.execute(r)).collect();
    ledger.end_block(&mut results);

    assert_eq!(results.len(), records.len(), "one result per record");
    assert_eq!(
        ledger.sum_of_balances(),
        ledger.genesis_total(),
        "money is conserved at block {height}"
    );
    let result_bytes: Vec<u8> = results.iter().map(|code| *code as u8).collect();
    let mut header = *proposal;
    header.results_hash = block::results_hash(&result_bytes);
    header.state_root = ledger.state_root();
    let tip = ChainTip {
        height,
        hash: header.hash(),
        timestamp_ms: ledger.time_ms(),
    };
    Sealed {
        header,
        results,
        result_bytes,
        tip,
    }
}
