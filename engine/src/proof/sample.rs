//! A network of real validator keys in memory whose blocks carry real commit certificates,
//! for the proof tests and benchmarks: blocks of signed records, certified by a quorum of the
//! set of their epoch, with the set changed by validator votes as the ledger changes it
//! ([`ValidatorSchedule`]). Records are not executed: a vote's code is what the schedule
//! says, every other record is `ok`.

use super::ProofAnchor;
use crate::block::{self, BlockHeader, BLOCK_MAGIC};
use crate::consensus::message::{signing_bytes, Body, VoteKind};
use crate::consensus::validators::{ChangeVoteOutcome, ValidatorChange, ValidatorSchedule};
use crate::consensus::{Certificate, CommitSignature, ValidatorSet};
use crate::log::{Log, LogConfig, LogError};
use crate::result::ResultCode;
use crate::tx::{TxFields, TxRecord};
use ed25519_zebra::{SigningKey, VerificationKey};
use std::collections::HashMap;
use std::path::Path;

/// Block time step of the sample chain, and the validity of its records past their block.
const BLOCK_MS: u64 = 1_000;
const VALID_FOR_MS: u64 = 60_000;

/// The sample network (see the module comment).
pub struct SampleNetwork {
    pub anchor: ProofAnchor,
    /// Every key the network knows: the genesis validators first, then `spare` keys that
    /// votes may add.
    keys: Vec<SigningKey>,
    by_public: HashMap<[u8; 32], usize>,
    schedule: ValidatorSchedule,
    entries: Vec<Vec<u8>>,
    tip: [u8; 32],
    next_id: u128,
}

fn key_of(seed: u64, index: usize) -> SigningKey {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tally-proof-sample-key");
    hasher.update(&seed.to_le_bytes());
    hasher.update(&(index as u64).to_le_bytes());
    SigningKey::from(*hasher.finalize().as_bytes())
}

fn public(key: &SigningKey) -> [u8; 32] {
    VerificationKey::from(key).into()
}

impl SampleNetwork {
    /// `validators` genesis validators and `spare` further keys, all derived from `seed`;
    /// epochs of `heights_per_epoch` heights.
    pub fn new(validators: usize, spare: usize, heights_per_epoch: u64, seed: u64) -> Self {
        let keys: Vec<SigningKey> = (0..validators + spare).map(|i| key_of(seed, i)).collect();
        let by_public = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (public(k), i))
            .collect();
        let anchor = ProofAnchor {
            network_id: 0x5a3e_0000 + seed,
            genesis_hash: *blake3::hash(&seed.to_le_bytes()).as_bytes(),
            ledger: 1,
            validators: keys[..validators].iter().map(public).collect(),
            heights_per_epoch,
            validity_window_ms: VALID_FOR_MS * 10,
        };
        let set = ValidatorSet::new(anchor.network_id, 0, anchor.validators.clone())
            .expect("distinct sample keys");
        let schedule = ValidatorSchedule::new(set, heights_per_epoch).expect("epochs of 1+");
        SampleNetwork {
            tip: anchor.genesis_hash,
            anchor,
            keys,
            by_public,
            schedule,
            entries: Vec::new(),
            next_id: 1,
        }
    }

    /// Public key of key `index` (validators first, then the spare keys).
    pub fn public_key(&self, index: usize) -> [u8; 32] {
        public(&self.keys[index])
    }

    /// The height of the last block (0: none yet).
    pub fn height(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The set in force for the next block.
    pub fn current_set(&self) -> &ValidatorSet {
        self.schedule.current()
    }

    fn time_ms(height: u64) -> u64 {
        1_700_000_000_000 + height * BLOCK_MS
    }

    fn fresh_id(&mut self) -> u128 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A transfer signed by key `signer`, valid from the next block on.
    pub fn transfer(&mut self, signer: usize, amount: u64) -> TxRecord {
        let id = self.fresh_id();
        let fields = TxFields::transfer(id, 10, 11, amount, self.anchor.ledger)
            .valid_until(Self::time_ms(self.height() + 1) + VALID_FOR_MS);
        TxRecord::signed(&fields, self.anchor.network_id, &self.keys[signer])
    }

    /// A vote by key `voter` to add (`add`) or remove key `subject`.
    pub fn vote(&mut self, voter: usize, add: bool, subject: usize) -> TxRecord {
        let id = self.fresh_id();
        let subject = self.public_key(subject);
        let fields = TxFields::validator_vote(id, self.anchor.ledger, add, &subject)
            .valid_until(Self::time_ms(self.height() + 1) + VALID_FOR_MS);
        TxRecord::signed(&fields, self.anchor.network_id, &self.keys[voter])
    }

    /// Appends the next block with `records`, certified by a quorum of the validators of its
    /// epoch (the last in rotation order); returns its height.
    pub fn push_block(&mut self, records: &[TxRecord]) -> u64 {
        self.push(records, true)
    }

    /// Appends the next block without a certificate section, as a node outside consensus
    /// writes it.
    pub fn push_uncertified_block(&mut self, records: &[TxRecord]) -> u64 {
        self.push(records, false)
    }

    fn push(&mut self, records: &[TxRecord], certify: bool) -> u64 {
        let height = self.height() + 1;
        let set = self.schedule.current().clone();
        let header = BlockHeader {
            magic: BLOCK_MAGIC,
            height: height.to_le_bytes(),
            timestamp_ms: Self::time_ms(height).to_le_bytes(),
            tx_count: (records.len() as u32).to_le_bytes(),
            proposer: ((height % set.len() as u64) as u32).to_le_bytes(),
            network_id: self.anchor.network_id.to_le_bytes(),
            previous_hash: self.tip,
            tx_root: block::tx_root(records),
            results_hash: [0; 32],
            state_root: [0; 32],
        };
        let mut results = Vec::with_capacity(records.len());
        for record in records {
            let code = if record.kind() == Some(crate::tx::TxKind::ValidatorVote) {
                let subject = record.validator_subject();
                let change = if record.category() == crate::tx::VALIDATOR_CHANGE_ADD {
                    ValidatorChange::Add(subject)
                } else {
                    ValidatorChange::Remove(subject)
                };
                match self.schedule.vote(&record.public_key, change) {
                    Ok(ChangeVoteOutcome::Counted { .. } | ChangeVoteOutcome::Adopted) => {
                        ResultCode::Ok
                    }
                    Ok(ChangeVoteOutcome::Duplicate) => ResultCode::ValidatorVoteAlreadyCounted,
                    Err(_) => ResultCode::NotAValidator,
                }
            } else {
                ResultCode::Ok
            };
            results.push(code as u8);
        }
        let header = BlockHeader {
            results_hash: block::results_hash(&results),
            state_root: *blake3::hash(&height.to_le_bytes()).as_bytes(),
            ..header
        };
        let mut entry = Vec::new();
        block::encode_entry(&header, records, &results, &mut entry);
        if certify {
            let certificate = self.certificate(&set, &header, set.quorum());
            block::append_certificate(&certificate.encode(), &mut entry);
        }
        self.entries.push(entry);
        self.tip = header.hash();
        self.schedule.on_decided(height).expect("heights in order");
        height
    }

    /// The certificate of `header` signed by the last `signers` validators of `set` in
    /// rotation order (so a validator added by votes signs), listed in key order as
    /// certificates list them.
    pub fn certificate(
        &self,
        set: &ValidatorSet,
        header: &BlockHeader,
        signers: usize,
    ) -> Certificate {
        let value = block::proposal_id(header);
        let body = Body::Vote {
            kind: VoteKind::Precommit,
            height: header.height(),
            round: 0,
            value: Some(value),
        };
        let mut signatures: Vec<CommitSignature> = set
            .public_keys()
            .iter()
            .skip(set.len() - signers.min(set.len()))
            .map(|validator| {
                let key = &self.keys[self.by_public[validator]];
                let message = signing_bytes(&body, validator, set.network_id());
                CommitSignature {
                    validator: *validator,
                    signature: key.sign(&message).to_bytes(),
                }
            })
            .collect();
        signatures.sort_by_key(|entry| entry.validator);
        Certificate {
            epoch: set.epoch(),
            height: header.height(),
            round: 0,
            value,
            signatures,
        }
    }

    /// Signs `certificate`'s precommit with key `index` (for forgeries: any key, in or out
    /// of the set).
    pub fn sign_precommit(&self, certificate: &Certificate, index: usize) -> CommitSignature {
        let validator = self.public_key(index);
        let body = Body::Vote {
            kind: VoteKind::Precommit,
            height: certificate.height,
            round: certificate.round,
            value: Some(certificate.value),
        };
        CommitSignature {
            validator,
            signature: self.keys[index]
                .sign(&signing_bytes(&body, &validator, self.anchor.network_id))
                .to_bytes(),
        }
    }

    /// Writes the chain as a node's log in `dir`.
    pub fn write_log(&self, dir: &Path) -> Result<Log, LogError> {
        let mut log = Log::open(dir, LogConfig::default())?;
        for entry in &self.entries {
            log.append(entry)?;
        }
        log.commit()?;
        Ok(log)
    }
}
