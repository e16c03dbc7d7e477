//! Read-side queries over a node's data directory: inclusion proofs of transactions.

use crate::block::{self, BlockHeader};
use crate::log::{Log, LogConfig, LogError};
use crate::result::ResultCode;
use crate::tx::TX_BYTES;
use std::path::Path;
use tally_kernels::merkle::{build_proof, tree_levels, ProofJson};

/// A transaction's inclusion proof with the header it proves against.
pub struct TxProof {
    pub header: BlockHeader,
    pub result: ResultCode,
    pub proof: ProofJson,
}

/// Why a proof cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("block height {height} is not in the log (it holds heights 1 to {last})")]
    NoSuchBlock { height: u64, last: u64 },
    #[error("log entry of block {height} is not a valid block: {reason}")]
    BadBlock { height: u64, reason: String },
    #[error("transaction {id} is not in block {height}")]
    NoSuchTransaction { id: u128, height: u64 },
}

/// Builds the proof that transaction `id` is in block `height` of the log in
/// `data_dir/log`. The node must not be running (opening the log may cut a torn tail).
pub fn prove_transaction(
    data_dir: &Path,
    config: LogConfig,
    height: u64,
    id: u128,
) -> Result<TxProof, QueryError> {
    let log = Log::open(&data_dir.join("log"), config)?;
    let last = log.next_sequence();
    if height == 0 || height > last {
        return Err(QueryError::NoSuchBlock { height, last });
    }
    let (_, entry) = log
        .entries(height - 1)?
        .next()
        .expect("a sequence below next_sequence has an entry")?;
    let view = block::decode_entry(entry).map_err(|error| QueryError::BadBlock {
        height,
        reason: error.to_string(),
    })?;
    let index = view
        .records
        .iter()
        .position(|record| record.id() == id)
        .ok_or(QueryError::NoSuchTransaction { id, height })?;
    let leaves: &[u8] = bytemuck::cast_slice(view.records);
    let levels = tree_levels(leaves, TX_BYTES);
    let proof = build_proof(&levels, index as u64);
    let leaf = &leaves[index * TX_BYTES..(index + 1) * TX_BYTES];
    Ok(TxProof {
        header: view.header,
        result: ResultCode::from_wire(view.results[index]).expect("decode_entry checked the codes"),
        proof: ProofJson::new(&proof, &view.header.tx_root, leaf),
    })
}
