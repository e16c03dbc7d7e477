//! A transaction's inclusion proof that trusts no node (docs/MERKLE.md, "Proofs that trust no
//! node"): the record, its Merkle path, the header of its block, that block's commit
//! certificate, and the validator-set changes from the genesis set to the set of the block's
//! epoch, each vote with its own path, header and certificate. `tally prove` writes it (from
//! a running node, the `proof` query, or from a stopped node's data directory) and
//! `tally verify-proof` checks it against the genesis alone
//! (`tally_engine::proof::verify`).
//!
//! JSON, every byte string in lowercase hex, unknown fields refused. The sizes are bounded
//! ([`PROOF_SIBLINGS_MAX`], [`PROOF_VOTE_BLOCKS_MAX`], [`PROOF_VOTES_MAX`]): a verifier
//! refuses a larger proof before checking anything.

use serde::{Deserialize, Serialize};

/// Version of the proof format; a verifier refuses any other.
pub const PROOF_VERSION: u32 = 1;

/// Most sibling hashes of one Merkle path: a block holds at most 65,536 records
/// (`BLOCK_TX_COUNT_MAX`), a tree of 16 levels.
pub const PROOF_SIBLINGS_MAX: usize = 16;

/// Most blocks of validator votes one proof carries.
pub const PROOF_VOTE_BLOCKS_MAX: usize = 4_096;

/// Most validator votes one proof carries (all blocks together).
pub const PROOF_VOTES_MAX: usize = 16_384;

/// Largest proof file a verifier reads: room for about 1 900 vote blocks of a 256-validator
/// network (a quorum's certificate is 33 KB in hex), far more than honest set changes need;
/// the vote and block bounds are checked after parsing.
pub const PROOF_FILE_BYTES_MAX: u64 = 64 << 20;

/// The proof of one transaction (see the module comment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxProof {
    /// [`PROOF_VERSION`].
    pub version: u32,
    /// The network the proof is of (the genesis's `network_id`).
    pub network_id: u64,
    /// Hex BLAKE3 of the genesis the network started from (`Genesis::hash`).
    pub genesis_hash: String,
    /// The transaction proved.
    pub tx_id: u128,
    /// The block that holds it, and the record with its path in that block.
    pub block: CertifiedBlock,
    pub record: IncludedRecord,
    /// The blocks before the proved block's epoch that hold accepted validator votes, in
    /// height order, each with the votes it holds: what changed the validator set from the
    /// genesis set to the set of the proved block's epoch.
    pub set_changes: Vec<VoteBlock>,
}

/// A block header with the commit certificate of its height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifiedBlock {
    pub height: u64,
    /// The 168-byte block header (docs/PROTOCOL.md).
    pub header: String,
    /// The commit certificate of the height, as the block's log entry stores it.
    pub certificate: String,
}

/// One record of a block with its Merkle path to the header's `tx_root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludedRecord {
    /// Its position in the block.
    pub leaf_index: u64,
    /// The 192-byte record.
    pub record: String,
    /// Sibling hashes bottom up (docs/MERKLE.md, "Inclusion proof").
    pub siblings: Vec<String>,
}

/// A block holding accepted validator votes, with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteBlock {
    pub block: CertifiedBlock,
    pub votes: Vec<IncludedRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_form_keeps_u128_ids_whole_and_refuses_unknown_fields() {
        let block = CertifiedBlock {
            height: 3,
            header: "00".repeat(168),
            certificate: "00".repeat(56),
        };
        let proof = TxProof {
            version: PROOF_VERSION,
            network_id: 7,
            genesis_hash: "11".repeat(32),
            tx_id: u128::MAX,
            block: block.clone(),
            record: IncludedRecord {
                leaf_index: 0,
                record: "22".repeat(192),
                siblings: vec!["33".repeat(32)],
            },
            set_changes: vec![VoteBlock {
                block,
                votes: Vec::new(),
            }],
        };
        let text = serde_json::to_string(&proof).unwrap();
        assert!(text.contains(&u128::MAX.to_string()), "{text}");
        assert_eq!(serde_json::from_str::<TxProof>(&text).unwrap(), proof);
        let extra = text.replacen("{\"version\"", "{\"trusted\":true,\"version\"", 1);
        assert!(serde_json::from_str::<TxProof>(&extra).is_err());
        let missing = text.replacen("\"network_id\":7,", "", 1);
        assert!(serde_json::from_str::<TxProof>(&missing).is_err());
    }
}
