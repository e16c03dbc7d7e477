//! `tally verify-proof FILE --genesis GENESIS`: checks a proof that trusts no node (the JSON
//! of `tally prove`, `tally_protocol::proof::TxProof`, docs/MERKLE.md) against the genesis
//! alone, and says which link fails.

use std::path::PathBuf;

use anyhow::Context;
use tally_engine::genesis::Genesis;
use tally_engine::proof::{verify, ProofAnchor, TxProof, PROOF_FILE_BYTES_MAX};

/// Arguments of `tally verify-proof`.
#[derive(Debug, clap::Args)]
pub struct VerifyProofArgs {
    /// The proof file (`tally prove --out FILE`).
    pub file: PathBuf,
    /// The network's genesis file: the only thing the proof is checked against.
    #[arg(long)]
    pub genesis: PathBuf,
}

/// Reads the proof, verifies it, prints `OK ...` on success.
///
/// Errors (the process then exits non-zero): the file cannot be read or is too large, is not
/// a proof in JSON, or a link of the proof does not hold (the error names it: altered
/// record, altered path, altered header, bad certificate signature, too few signers, wrong
/// validator set, wrong network or genesis, broken set chain).
pub fn run_verify(args: &VerifyProofArgs) -> anyhow::Result<()> {
    let genesis = Genesis::load(&args.genesis)?;
    let path = &args.file;
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("cannot read proof file {}", path.display()))?
        .len();
    anyhow::ensure!(
        bytes <= PROOF_FILE_BYTES_MAX,
        "proof file {} is {bytes} bytes, more than the {PROOF_FILE_BYTES_MAX} a proof can be",
        path.display()
    );
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read proof file {}", path.display()))?;
    let proof: TxProof = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a proof: expected the JSON `tally prove` writes (version {})",
            path.display(),
            tally_engine::proof::PROOF_VERSION
        )
    })?;
    let verified = verify(&proof, &ProofAnchor::from_genesis(&genesis))
        .with_context(|| format!("proof in {} does NOT verify", path.display()))?;
    println!(
        "OK: transaction {} is record {} of {} in block {} (hash {}) of network {}",
        verified.tx_id,
        verified.leaf_index,
        verified.tx_count,
        verified.height,
        hex::encode(verified.block_hash),
        genesis.network_id
    );
    let record = &verified.record;
    println!(
        "record: {} from account {} to account {}, amount {} ({} minor units)",
        record.kind().map_or("unknown", |kind| kind.name()),
        record.debit_account(),
        record.credit_account(),
        genesis.currency.format(i128::from(record.amount())),
        record.amount()
    );
    println!(
        "committed by {} of the {} validators of epoch {}, a set reached from the genesis through {} validator votes in {} blocks",
        verified.signers,
        verified.validators,
        verified.epoch,
        verified.votes,
        verified.vote_blocks
    );
    Ok(())
}
