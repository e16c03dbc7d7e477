//! Proofs that trust no node (docs/MERKLE.md, "Proofs that trust no node"): [`build`] makes
//! the [`TxProof`] of a transaction from a node's log, [`verify`] checks one against the
//! genesis alone and names the link that fails.
//!
//! What a proof shows: the record is leaf `leaf_index` of the transaction tree of a block
//! whose proposal (the header less `results_hash` and `state_root`, [`block::proposal_id`])
//! a quorum of the validator set of the block's epoch precommitted, and that set is the one
//! the consensus rule ([`ValidatorSchedule`]) derives from the genesis set and the accepted
//! validator votes the proof carries, each vote itself included in a block committed by the
//! set of its own epoch.

use crate::block::{self, BlockHeader, BLOCK_HEADER_BYTES};
use crate::consensus::validators::{ChangeVoteOutcome, ValidatorChange, ValidatorSchedule};
use crate::consensus::{Certificate, CertificateError, ValidatorSet};
use crate::genesis::Genesis;
use crate::log::Log;
use crate::query::QueryError;
use crate::result::ResultCode;
use crate::tx::{signing_message, TxKind, TxRecord, TX_BYTES, VALIDATOR_CHANGE_ADD};
use ed25519_zebra::{Signature, VerificationKey};
use std::collections::HashSet;
use tally_kernels::merkle::{self, build_proof, tree_levels, Hash};
pub use tally_protocol::proof::*;

/// What a verifier takes from the genesis: the network, the first validator set and the
/// rules a validator vote is executed under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofAnchor {
    pub network_id: u64,
    pub genesis_hash: [u8; 32],
    /// The currency ledger (a vote of another ledger is refused).
    pub ledger: u32,
    /// The genesis validators, in rotation order (the set of epoch 0).
    pub validators: Vec<[u8; 32]>,
    pub heights_per_epoch: u64,
    /// How far past the block time a record's `valid_until` may be.
    pub validity_window_ms: u64,
}

impl ProofAnchor {
    pub fn from_genesis(genesis: &Genesis) -> ProofAnchor {
        ProofAnchor {
            network_id: genesis.network_id,
            genesis_hash: genesis.hash(),
            ledger: genesis.ledger,
            validators: genesis.validator_keys(),
            heights_per_epoch: genesis.heights_per_epoch,
            validity_window_ms: genesis.settlement.validity_window_ms,
        }
    }
}

/// What a verified proof established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub tx_id: u128,
    /// The record proved.
    pub record: TxRecord,
    pub height: u64,
    /// BLAKE3 of the block header.
    pub block_hash: Hash,
    pub leaf_index: u64,
    pub tx_count: u64,
    /// The epoch of the block, its validator count and the valid signatures of the
    /// certificate.
    pub epoch: u64,
    pub validators: usize,
    pub signers: usize,
    /// Blocks of validator votes and the votes checked to reach the set of `epoch`.
    pub vote_blocks: usize,
    pub votes: usize,
}

/// The link of a proof that does not hold. Inside the set-change chain, the failure of a
/// vote block is [`ProofError::BrokenSetChain`] holding what failed there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("proof format version {found}: this verifier reads version {PROOF_VERSION}")]
    UnsupportedVersion { found: u32 },
    #[error("wrong network: the {what} is of network {found}, the genesis of network {expected}")]
    WrongNetwork {
        what: &'static str,
        found: u64,
        expected: u64,
    },
    #[error("wrong genesis: the proof is of the network started from genesis {found}, the genesis given hashes to {expected}")]
    WrongGenesis { found: String, expected: String },
    #[error("the proof is too large: {count} {what}, at most {max}")]
    TooLarge {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("the proof's {part} is malformed: {reason}")]
    Malformed { part: String, reason: String },
    #[error("altered header: the header given for height {height} is not the block its commit certificate signed ({reason})")]
    AlteredHeader { height: u64, reason: String },
    #[error("bad certificate signature: the precommit signature of validator {validator} in the certificate of height {height} does not verify")]
    BadCertificateSignature { height: u64, validator: String },
    #[error("too few signers: the certificate of height {height} has {have} signatures, the {validators} validators of epoch {epoch} need {need}")]
    TooFewSigners {
        height: u64,
        epoch: u64,
        validators: usize,
        have: usize,
        need: usize,
    },
    #[error("wrong validator set: {validator} signed the certificate of height {height} but is not a validator of epoch {epoch}")]
    SignerNotInSet {
        height: u64,
        epoch: u64,
        validator: String,
    },
    #[error("wrong validator set: the certificate of height {height} has {count} signatures, the set of epoch {epoch} has {validators} validators")]
    TooManySigners {
        height: u64,
        epoch: u64,
        count: usize,
        validators: usize,
    },
    #[error("the certificate of height {height} lists validator {validator} twice")]
    DuplicateSigner { height: u64, validator: String },
    #[error("wrong validator set: the certificate of height {height} is for epoch {certificate}, the height is in epoch {expected}")]
    WrongEpoch {
        height: u64,
        certificate: u64,
        expected: u64,
    },
    #[error("altered record: {reason}")]
    AlteredRecord { reason: String },
    #[error("altered path: the record and its path do not lead to the tx_root of the header of height {height} ({reason})")]
    AlteredPath { height: u64, reason: String },
    #[error("a validator vote does not count: {reason}")]
    VoteNotCounted { reason: String },
    #[error("broken set chain at height {height}: {cause}")]
    BrokenSetChain { height: u64, cause: Box<ProofError> },
}

fn malformed(part: impl Into<String>, reason: impl std::fmt::Display) -> ProofError {
    ProofError::Malformed {
        part: part.into(),
        reason: reason.to_string(),
    }
}

fn hex_bytes(part: &str, text: &str, len: usize) -> Result<Vec<u8>, ProofError> {
    let bytes = hex::decode(text).map_err(|error| malformed(part, format!("not hex: {error}")))?;
    if bytes.len() != len {
        return Err(malformed(
            part,
            format!("{} bytes, expected {len}", bytes.len()),
        ));
    }
    Ok(bytes)
}

fn hash_of(part: &str, text: &str) -> Result<Hash, ProofError> {
    Ok(hex_bytes(part, text, 32)?.try_into().expect("32 bytes"))
}

/// Checks `proof` against the network described by `anchor` (its genesis), offline.
///
/// Order: version and sizes, network and genesis, the set-change chain (each vote block's
/// certificate under the set of its epoch, each vote's record and path, each vote counted
/// by the consensus rule), the proved block's certificate under the set derived for its
/// epoch, then the record and its path to the header's `tx_root`.
///
/// Errors: one [`ProofError`] variant per link (see each).
pub fn verify(proof: &TxProof, anchor: &ProofAnchor) -> Result<Verified, ProofError> {
    if proof.version != PROOF_VERSION {
        return Err(ProofError::UnsupportedVersion {
            found: proof.version,
        });
    }
    check_sizes(proof)?;
    if proof.network_id != anchor.network_id {
        return Err(ProofError::WrongNetwork {
            what: "proof",
            found: proof.network_id,
            expected: anchor.network_id,
        });
    }
    let genesis_hash = hash_of("genesis_hash", &proof.genesis_hash)?;
    if genesis_hash != anchor.genesis_hash {
        return Err(ProofError::WrongGenesis {
            found: proof.genesis_hash.clone(),
            expected: hex::encode(anchor.genesis_hash),
        });
    }
    let hpe = anchor.heights_per_epoch.max(1);
    let genesis_set = ValidatorSet::new(anchor.network_id, 0, anchor.validators.clone())
        .map_err(|error| malformed("genesis validators", error))?;
    let mut schedule = ValidatorSchedule::new(genesis_set, hpe)
        .map_err(|error| malformed("genesis heights_per_epoch", error))?;
    let target_epoch = proof.block.height / hpe;
    let mut last_height = 0;
    let mut vote_ids = HashSet::new();
    let mut votes = 0;
    for vote_block in &proof.set_changes {
        let height = vote_block.block.height;
        votes += vote_block.votes.len();
        check_vote_block(
            vote_block,
            anchor,
            &mut schedule,
            last_height,
            target_epoch,
            &mut vote_ids,
        )
        .map_err(|cause| ProofError::BrokenSetChain {
            height,
            cause: Box::new(cause),
        })?;
        last_height = height;
    }
    advance(&mut schedule, target_epoch, hpe)?;
    let set = schedule.current();
    let (header, certificate) = check_block(&proof.block, anchor, set)?;
    let record = check_record(&proof.record, &header, anchor.network_id)?;
    if record.id() != proof.tx_id {
        return Err(ProofError::AlteredRecord {
            reason: format!(
                "the record's id is {}, the proof is of transaction {}",
                record.id(),
                proof.tx_id
            ),
        });
    }
    Ok(Verified {
        tx_id: proof.tx_id,
        record,
        height: header.height(),
        block_hash: header.hash(),
        leaf_index: proof.record.leaf_index,
        tx_count: header.tx_count() as u64,
        epoch: set.epoch(),
        validators: set.len(),
        signers: certificate.signatures.len(),
        vote_blocks: proof.set_changes.len(),
        votes,
    })
}

fn check_sizes(proof: &TxProof) -> Result<(), ProofError> {
    let too_large = |what, count, max| {
        if count > max {
            Err(ProofError::TooLarge { what, count, max })
        } else {
            Ok(())
        }
    };
    too_large(
        "vote blocks",
        proof.set_changes.len(),
        PROOF_VOTE_BLOCKS_MAX,
    )?;
    let votes: usize = proof.set_changes.iter().map(|b| b.votes.len()).sum();
    too_large("votes", votes, PROOF_VOTES_MAX)?;
    let records =
        std::iter::once(&proof.record).chain(proof.set_changes.iter().flat_map(|b| b.votes.iter()));
    for record in records {
        too_large(
            "sibling hashes in a path",
            record.siblings.len(),
            PROOF_SIBLINGS_MAX,
        )?;
    }
    Ok(())
}

/// Moves `schedule` to `epoch` as the ledger does at the last height of each epoch before
/// it: the adopted changes take effect, the votes short of a quorum lapse.
fn advance(schedule: &mut ValidatorSchedule, epoch: u64, hpe: u64) -> Result<(), ProofError> {
    if schedule.current().epoch() < epoch {
        schedule
            .on_decided(epoch * hpe - 1)
            .map_err(|error| malformed("validator set change", error))?;
    }
    Ok(())
}

fn check_vote_block(
    vote_block: &VoteBlock,
    anchor: &ProofAnchor,
    schedule: &mut ValidatorSchedule,
    last_height: u64,
    target_epoch: u64,
    vote_ids: &mut HashSet<u128>,
) -> Result<(), ProofError> {
    let hpe = schedule.heights_per_epoch();
    let height = vote_block.block.height;
    if height <= last_height {
        return Err(ProofError::VoteNotCounted {
            reason: format!("vote blocks are not in height order ({height} after {last_height})"),
        });
    }
    let epoch = height / hpe;
    if epoch >= target_epoch {
        return Err(ProofError::VoteNotCounted {
            reason: format!(
                "height {height} is in epoch {epoch}: only votes before the proved block's epoch {target_epoch} change its set"
            ),
        });
    }
    if vote_block.votes.is_empty() {
        return Err(malformed("vote block", "it holds no vote"));
    }
    advance(schedule, epoch, hpe)?;
    let (header, _) = check_block(&vote_block.block, anchor, schedule.current())?;
    let time_ms = header.timestamp_ms();
    for vote in &vote_block.votes {
        let record = check_record(vote, &header, anchor.network_id)?;
        let refused = |why: String| {
            Err(ProofError::VoteNotCounted {
                reason: format!("record {} of height {height} {why}", record.id()),
            })
        };
        if record.kind() != Some(TxKind::ValidatorVote) {
            return refused("is not a validator vote".into());
        }
        let valid_until = record.valid_until();
        if valid_until < time_ms || valid_until - time_ms > anchor.validity_window_ms {
            return refused(format!(
                "has valid_until {valid_until}, outside the window of its block's time {time_ms}"
            ));
        }
        if record.ledger() != anchor.ledger {
            return refused(format!("is of ledger {}", record.ledger()));
        }
        if !vote_ids.insert(record.id()) {
            return refused("repeats the id of an earlier vote".into());
        }
        let subject = record.validator_subject();
        let change = if record.category() == VALIDATOR_CHANGE_ADD {
            ValidatorChange::Add(subject)
        } else {
            ValidatorChange::Remove(subject)
        };
        match schedule.vote(&record.public_key, change) {
            Ok(ChangeVoteOutcome::Counted { .. } | ChangeVoteOutcome::Adopted) => {}
            Ok(ChangeVoteOutcome::Duplicate) => return refused("repeats its voter's vote".into()),
            Err(error) => return refused(format!("is refused by the rule: {error}")),
        }
    }
    Ok(())
}

/// Checks a header and its certificate under `set`; returns both decoded.
fn check_block(
    block: &CertifiedBlock,
    anchor: &ProofAnchor,
    set: &ValidatorSet,
) -> Result<(BlockHeader, Certificate), ProofError> {
    let height = block.height;
    let header_bytes = hex_bytes("block header", &block.header, BLOCK_HEADER_BYTES)?;
    let header: BlockHeader = bytemuck::pod_read_unaligned(&header_bytes);
    if header.magic != block::BLOCK_MAGIC {
        return Err(ProofError::AlteredHeader {
            height,
            reason: "its magic is not TLYBLK01".into(),
        });
    }
    if header.network_id() != anchor.network_id {
        return Err(ProofError::WrongNetwork {
            what: "block header",
            found: header.network_id(),
            expected: anchor.network_id,
        });
    }
    let certificate_bytes =
        hex::decode(&block.certificate).map_err(|error| malformed("certificate", error))?;
    let certificate = Certificate::decode(&certificate_bytes)
        .map_err(|error| malformed(format!("certificate of height {height}"), error))?;
    if header.height() != height || certificate.height != height {
        return Err(ProofError::AlteredHeader {
            height,
            reason: format!(
                "the header is of height {}, the certificate of height {}",
                header.height(),
                certificate.height
            ),
        });
    }
    if certificate.value != block::proposal_id(&header) {
        return Err(ProofError::AlteredHeader {
            height,
            reason: "its proposal id differs from the value the certificate signs".into(),
        });
    }
    let epoch = set.epoch();
    certificate.verify(set).map_err(|error| match error {
        CertificateError::EpochMismatch { certificate, set } => ProofError::WrongEpoch {
            height,
            certificate,
            expected: set,
        },
        CertificateError::TooManySignatures { count, .. } => ProofError::TooManySigners {
            height,
            epoch,
            count,
            validators: set.len(),
        },
        CertificateError::UnknownValidator { validator } => ProofError::SignerNotInSet {
            height,
            epoch,
            validator,
        },
        CertificateError::DuplicateValidator { validator } => {
            ProofError::DuplicateSigner { height, validator }
        }
        CertificateError::BadSignature { validator } => {
            ProofError::BadCertificateSignature { height, validator }
        }
        CertificateError::NotEnoughSignatures { have, need, .. } => ProofError::TooFewSigners {
            height,
            epoch,
            validators: set.len(),
            have,
            need,
        },
        CertificateError::Length { .. } => malformed("certificate", error),
    })?;
    Ok((header, certificate))
}

/// Checks that a record decodes, carries a valid signature for the network, and its path
/// leads to `header`'s `tx_root` at its index among `tx_count` leaves.
fn check_record(
    included: &IncludedRecord,
    header: &BlockHeader,
    network_id: u64,
) -> Result<TxRecord, ProofError> {
    let altered = |reason: String| ProofError::AlteredRecord { reason };
    let bytes = hex::decode(&included.record)
        .map_err(|error| altered(format!("the record is not hex: {error}")))?;
    let record = TxRecord::decode(&bytes)
        .map_err(|error| altered(format!("the record does not decode: {error}")))?;
    let signed = VerificationKey::try_from(record.public_key)
        .and_then(|key| {
            key.verify(
                &Signature::from_bytes(&record.signature),
                &signing_message(network_id, &record),
            )
        })
        .is_ok();
    if !signed {
        return Err(altered(format!(
            "the signature of record {} does not verify for network {network_id}",
            record.id()
        )));
    }
    let height = header.height();
    let siblings = included
        .siblings
        .iter()
        .enumerate()
        .map(|(index, sibling)| hash_of(&format!("sibling {index}"), sibling))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ProofError::AlteredPath {
            height,
            reason: error.to_string(),
        })?;
    let path = merkle::Proof {
        leaf_index: included.leaf_index,
        // the count from the certified header, not from the proof (docs/MERKLE.md)
        leaf_count: header.tx_count() as u64,
        siblings,
    };
    merkle::verify_proof(&header.tx_root, &bytes, &path).map_err(|error| {
        ProofError::AlteredPath {
            height,
            reason: error.to_string(),
        }
    })?;
    Ok(record)
}

/// Builds the proof of transaction `id` from `log`: in block `height`, or (absent) in the
/// first block that holds it. Reads the log from its first block (the accepted validator
/// votes before the block's epoch are part of the proof); a log whose first blocks were
/// archived cannot prove anything.
///
/// Errors: [`QueryError::ProofArchived`], [`QueryError::NoSuchBlock`],
/// [`QueryError::NoSuchTransaction`], [`QueryError::NotInLog`], [`QueryError::NoCertificate`]
/// (a node outside consensus writes none), [`QueryError::ProofTooLarge`], the log's errors.
pub fn build(
    log: &Log,
    network_id: u64,
    heights_per_epoch: u64,
    id: u128,
    height: Option<u64>,
) -> Result<TxProof, QueryError> {
    let first = log.first_sequence();
    if first > 0 {
        return Err(QueryError::ProofArchived {
            first_live: first + 1,
        });
    }
    let last = log.next_sequence();
    if let Some(height) = height {
        if height == 0 || height > last {
            return Err(QueryError::NoSuchBlock { height, last });
        }
    }
    let hpe = heights_per_epoch.max(1);
    let mut genesis_hash = None;
    let mut set_changes = Vec::new();
    let mut found = None;
    if last > 0 {
        for item in log.entries(0)? {
            let (sequence, entry) = item?;
            let at = sequence + 1;
            let view = block::decode_entry(entry).map_err(|error| QueryError::BadBlock {
                height: at,
                reason: error.to_string(),
            })?;
            if at == 1 {
                genesis_hash = Some(view.header.previous_hash);
            }
            if height.is_none_or(|height| height == at) {
                if let Some(index) = view.records.iter().position(|r| r.id() == id) {
                    let levels = tree_levels(bytemuck::cast_slice(view.records), TX_BYTES);
                    found = Some((certified(&view, at)?, included(&view, &levels, index)));
                    break;
                }
                if height.is_some() {
                    return Err(QueryError::NoSuchTransaction { id, height: at });
                }
            }
            let votes: Vec<usize> = (0..view.records.len())
                .filter(|&index| {
                    view.records[index].kind() == Some(TxKind::ValidatorVote)
                        && view.results[index] == ResultCode::Ok as u8
                })
                .collect();
            if !votes.is_empty() {
                let levels = tree_levels(bytemuck::cast_slice(view.records), TX_BYTES);
                set_changes.push(VoteBlock {
                    block: certified(&view, at)?,
                    votes: votes
                        .iter()
                        .map(|&index| included(&view, &levels, index))
                        .collect(),
                });
            }
        }
    }
    let Some((block, record)) = found else {
        return Err(QueryError::NotInLog { id, last });
    };
    let target_epoch = block.height / hpe;
    set_changes.retain(|vote_block| vote_block.block.height / hpe < target_epoch);
    let votes: usize = set_changes.iter().map(|b| b.votes.len()).sum();
    if set_changes.len() > PROOF_VOTE_BLOCKS_MAX || votes > PROOF_VOTES_MAX {
        return Err(QueryError::ProofTooLarge {
            vote_blocks: set_changes.len(),
            votes,
        });
    }
    Ok(TxProof {
        version: PROOF_VERSION,
        network_id,
        genesis_hash: hex::encode(genesis_hash.expect("a found block follows block 1")),
        tx_id: id,
        block,
        record,
        set_changes,
    })
}

fn certified(view: &block::BlockView<'_>, height: u64) -> Result<CertifiedBlock, QueryError> {
    let certificate = view
        .certificate
        .ok_or(QueryError::NoCertificate { height })?;
    Ok(CertifiedBlock {
        height,
        header: hex::encode(bytemuck::bytes_of(&view.header)),
        certificate: hex::encode(certificate),
    })
}

fn included(view: &block::BlockView<'_>, levels: &[Vec<Hash>], index: usize) -> IncludedRecord {
    let path = build_proof(levels, index as u64);
    IncludedRecord {
        leaf_index: index as u64,
        record: hex::encode(view.records[index].as_bytes()),
        siblings: path.siblings.iter().map(hex::encode).collect(),
    }
}

pub mod sample;
