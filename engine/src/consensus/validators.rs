//! Validator sets, thresholds, proposer rotation and epoch changes by authority vote.
//!
//! Tally is Proof-of-Authority: every validator has one vote. With `n` validators the set
//! tolerates `f = (n - 1) / 3` Byzantine ones; a quorum is `n - f` (which is `2f + 1` when
//! `n = 3f + 1`) and the round-skip threshold of line 55 is `f + 1`. Two quorums always share
//! at least `f + 1` validators, so at least one honest one: that is what makes a decision
//! final.
//!
//! Proposers follow a round-robin demoted by leader reputation (docs/DESIGN.md decision 17):
//! a validator whose round-0 turn ended in a block built by someone else is left out of
//! round-0 turns for a while, decided from the ledger's schedule alone (so from the chain),
//! and rounds above 0 rotate over every validator, so liveness never rests on reputation.

use super::BlockId;
use ed25519_zebra::VerificationKey;
use std::collections::{BTreeMap, BTreeSet};

/// Most validators one set may hold; indexes fit in a `u16` and vote tables stay small.
pub const VALIDATORS_MAX: usize = 256;

/// Errors building a validator set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    #[error("a validator set needs at least one validator: list the authorities' public keys")]
    Empty,
    #[error("{count} validators exceed the maximum of {max}: remove validators")]
    TooMany { count: usize, max: usize },
    #[error("validator {public_key} is listed twice: list each authority once")]
    Duplicate { public_key: String },
    #[error("validator key {public_key} is not a valid Ed25519 public key: check the key file")]
    InvalidKey { public_key: String },
}

/// The validators of one epoch of one network, in proposer-rotation order.
#[derive(Clone, Debug)]
pub struct ValidatorSet {
    network_id: u64,
    epoch: u64,
    public_keys: Vec<[u8; 32]>,
    verification_keys: Vec<VerificationKey>,
    /// (public key, index) sorted by key, for `index_of` by binary search.
    sorted: Vec<([u8; 32], u16)>,
    /// Validators left out of round-0 turns (leader reputation), one flag per index; all
    /// false in a set built by [`ValidatorSet::new`]. Set by the [`ValidatorSchedule`] for the
    /// height after the ledger's last block. Not part of the set's identity (`PartialEq`).
    demoted: Vec<bool>,
    /// Validators on probation: they missed their last round-0 turn and their demotion has
    /// run out, so their next round-0 turn is a short trial (the machine waits a fraction of
    /// the propose timeout for them). All false in a set built by [`ValidatorSet::new`].
    probation: Vec<bool>,
}

impl PartialEq for ValidatorSet {
    fn eq(&self, other: &Self) -> bool {
        self.network_id == other.network_id
            && self.epoch == other.epoch
            && self.public_keys == other.public_keys
    }
}
impl Eq for ValidatorSet {}

impl ValidatorSet {
    /// Builds the set of `epoch` on network `network_id`. The order of `public_keys` is the
    /// proposer-rotation order.
    ///
    /// Errors: [`ValidatorSetError::Empty`], [`ValidatorSetError::TooMany`] (more than
    /// [`VALIDATORS_MAX`]), [`ValidatorSetError::Duplicate`], [`ValidatorSetError::InvalidKey`]
    /// (a key that is not a curve point).
    pub fn new(
        network_id: u64,
        epoch: u64,
        public_keys: Vec<[u8; 32]>,
    ) -> Result<ValidatorSet, ValidatorSetError> {
        if public_keys.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if public_keys.len() > VALIDATORS_MAX {
            return Err(ValidatorSetError::TooMany {
                count: public_keys.len(),
                max: VALIDATORS_MAX,
            });
        }
        let mut verification_keys = Vec::with_capacity(public_keys.len());
        for key in &public_keys {
            let verification_key =
                VerificationKey::try_from(*key).map_err(|_| ValidatorSetError::InvalidKey {
                    public_key: hex::encode(key),
                })?;
            verification_keys.push(verification_key);
        }
        let mut sorted: Vec<([u8; 32], u16)> = public_keys
            .iter()
            .enumerate()
            .map(|(index, key)| (*key, index as u16))
            .collect();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(ValidatorSetError::Duplicate {
                public_key: hex::encode(pair[0].0),
            });
        }
        let demoted = vec![false; public_keys.len()];
        let probation = vec![false; public_keys.len()];
        Ok(ValidatorSet {
            network_id,
            epoch,
            public_keys,
            verification_keys,
            sorted,
            demoted,
            probation,
        })
    }

    /// The network this set belongs to; every signature is bound to it.
    pub fn network_id(&self) -> u64 {
        self.network_id
    }

    /// The epoch this set is in force for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of validators `n` (at least 1).
    pub fn len(&self) -> usize {
        self.public_keys.len()
    }

    /// Always false: a set is never empty (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.public_keys.is_empty()
    }

    /// Public keys in rotation order.
    pub fn public_keys(&self) -> &[[u8; 32]] {
        &self.public_keys
    }

    /// Public key of validator `index`. Panics if `index >= len()` (a caller bug).
    pub fn public_key(&self, index: usize) -> &[u8; 32] {
        &self.public_keys[index]
    }

    /// Decompressed key of validator `index`. Panics if `index >= len()`.
    pub fn verification_key(&self, index: usize) -> &VerificationKey {
        &self.verification_keys[index]
    }

    /// Index of the validator with `public_key`, or `None` if it is not in this set.
    pub fn index_of(&self, public_key: &[u8; 32]) -> Option<usize> {
        self.sorted
            .binary_search_by(|(key, _)| key.cmp(public_key))
            .ok()
            .map(|position| self.sorted[position].1 as usize)
    }

    /// `f`: the most Byzantine validators the set tolerates, `(n - 1) / 3`.
    pub fn faults_tolerated(&self) -> usize {
        (self.len() - 1) / 3
    }

    /// Votes needed for a lock or a commit: `n - f`, which is `2f + 1` when `n = 3f + 1`.
    pub fn quorum(&self) -> usize {
        self.len() - self.faults_tolerated()
    }

    /// Distinct senders of a higher round that make a validator skip to it (line 55): `f + 1`,
    /// so at least one of them is honest.
    pub fn skip_threshold(&self) -> usize {
        self.faults_tolerated() + 1
    }

    /// Index of `proposer(height, round)`.
    ///
    /// Round 0: the first validator at or after `height mod n`, in rotation order, that is
    /// not demoted; when fewer than a quorum are left (or none is demoted) that is plain
    /// round-robin, `height mod n`. Round `r > 0`: `(proposer(height, 0) + r) mod n`, a
    /// rotation over every validator, demoted or not, so any `n` consecutive rounds give each
    /// validator one turn and liveness never depends on the reputation. Without demotions
    /// this is `(height + round) mod n`.
    pub fn proposer(&self, height: u64, round: u32) -> usize {
        let n = self.len() as u64;
        let first = self.round_zero_proposer(height) as u64;
        ((first + (u64::from(round) % n)) % n) as usize
    }

    fn round_zero_proposer(&self, height: u64) -> usize {
        let n = self.len();
        let start = (height % n as u64) as usize;
        if self.demoted_count() == 0 || n - self.demoted_count() < self.quorum() {
            return start;
        }
        (0..n)
            .map(|step| (start + step) % n)
            .find(|index| !self.demoted[*index])
            .unwrap_or(start)
    }

    /// Whether validator `index` is left out of round-0 turns. Panics if `index >= len()`.
    pub fn is_demoted(&self, index: usize) -> bool {
        self.demoted[index]
    }

    /// Whether validator `index` is on probation: its last round-0 turn was missed and its
    /// demotion has run out. Panics if `index >= len()`.
    pub fn is_on_probation(&self, index: usize) -> bool {
        self.probation[index]
    }

    /// How many validators are left out of round-0 turns.
    pub fn demoted_count(&self) -> usize {
        self.demoted.iter().filter(|d| **d).count()
    }

    /// This set with the validators whose keys `demoted` names left out of round-0 turns
    /// (keys outside the set are ignored). What [`ValidatorSchedule`] does for the next
    /// height; tests and simulators may call it directly.
    pub fn with_demoted<'a>(mut self, demoted: impl IntoIterator<Item = &'a [u8; 32]>) -> Self {
        self.set_standing(demoted, []);
        self
    }

    fn set_standing<'a>(
        &mut self,
        demoted: impl IntoIterator<Item = &'a [u8; 32]>,
        probation: impl IntoIterator<Item = &'a [u8; 32]>,
    ) {
        self.demoted.iter_mut().for_each(|d| *d = false);
        self.probation.iter_mut().for_each(|p| *p = false);
        for key in demoted {
            if let Some(index) = self.index_of(key) {
                self.demoted[index] = true;
            }
        }
        for key in probation {
            if let Some(index) = self.index_of(key) {
                self.probation[index] = true;
            }
        }
    }
}

/// One change to the validator set, proposed by the authorities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValidatorChange {
    /// Admit the validator with this public key.
    Add([u8; 32]),
    /// Retire the validator with this public key.
    Remove([u8; 32]),
}

/// Errors of the authority vote on validator changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("heights_per_epoch must be at least 1")]
    ZeroEpochLength,
    #[error(
        "{voter} is not a validator of epoch {epoch}: only current validators vote on changes"
    )]
    NotAValidator { voter: String, epoch: u64 },
    #[error("validator {public_key} is already in the next set: nothing to add")]
    AlreadyMember { public_key: String },
    #[error("validator {public_key} is not in the next set: nothing to remove")]
    NotMember { public_key: String },
    #[error("removing {public_key} would leave no validator: add a replacement first")]
    WouldEmpty { public_key: String },
    #[error("adding {public_key} would make more than {max} validators: remove one first")]
    SetFull { public_key: String, max: usize },
    #[error("{public_key} is not a valid Ed25519 public key: it cannot be a validator")]
    InvalidKey { public_key: String },
    #[error("{max} changes are already pending a vote this epoch: vote on those first")]
    TooManyPending { max: usize },
    #[error("height {height} is in epoch {height_epoch}, the schedule is at epoch {epoch}")]
    OtherEpoch {
        height: u64,
        height_epoch: u64,
        epoch: u64,
    },
    #[error("the next set is invalid: {0}")]
    InvalidNextSet(#[from] ValidatorSetError),
}

/// What a change vote did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeVoteOutcome {
    /// Counted; the change has `votes` of the `quorum` it needs.
    Counted { votes: usize, quorum: usize },
    /// This vote reached the quorum: the change takes effect at the start of the next epoch.
    Adopted,
    /// The voter had voted for this change already; nothing changed.
    Duplicate,
}

/// Most distinct changes pending a vote at once; a bound against a faulty authority.
pub const PENDING_CHANGES_MAX: usize = 1024;

/// Heights a validator is left out of round-0 turns after its first missed turn (leader
/// reputation, docs/DESIGN.md decision 17). Each further miss in a row doubles it, up to
/// `DEMOTION_HEIGHTS << DEMOTION_DOUBLINGS_MAX`; a round-0 turn that ends in its own block
/// clears the record. Long on purpose: a demoted validator costs nothing but its share of
/// proposals (its clients' transactions reach every proposer), while each turn given to a
/// silent one costs every transaction a propose timeout. Under load four validators decide
/// about 70 heights a second on a 2-core machine, so this is about 2 minutes there; an idle
/// network (an empty block every 500 ms) takes about an hour and a half.
pub const DEMOTION_HEIGHTS: u64 = 8192;

/// Most doublings of [`DEMOTION_HEIGHTS`] (so at most 131 072 heights at a time).
pub const DEMOTION_DOUBLINGS_MAX: u32 = 4;

/// A validator's record of missed round-0 turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// Round-0 turns missed in a row (at least 1 while a record is kept).
    pub misses: u32,
    /// First height at which the validator has round-0 turns again.
    pub demoted_until: u64,
}

/// The validator set over time: epochs of `heights_per_epoch` heights; height `h` is in epoch
/// `h / heights_per_epoch`. Validators of the current epoch vote on changes; a change that
/// reaches a quorum of the current set is adopted for the next epoch, and
/// [`ValidatorSchedule::on_decided`] applies it when the last height of the epoch is decided.
///
/// Votes are meant to be read from decided blocks, so every node applies the same changes at
/// the same height.
#[derive(Clone, Debug)]
pub struct ValidatorSchedule {
    heights_per_epoch: u64,
    current: ValidatorSet,
    /// Keys of the next epoch's set (the current keys plus adopted changes), rotation order.
    next_public_keys: Vec<[u8; 32]>,
    votes: BTreeMap<ValidatorChange, BTreeSet<[u8; 32]>>,
    /// Leader reputation: validators (by key) that missed their last round-0 turn.
    standing: BTreeMap<[u8; 32], Standing>,
    /// The height `current`'s demotions are for (the one after the last decided height). Not
    /// encoded: the state root must not change with a block that changes nothing; whoever
    /// decodes a schedule sets it ([`ValidatorSchedule::set_next_height`]).
    next_height: u64,
}

impl ValidatorSchedule {
    /// Starts a schedule whose current set is `current`.
    ///
    /// Errors: [`ScheduleError::ZeroEpochLength`].
    pub fn new(
        current: ValidatorSet,
        heights_per_epoch: u64,
    ) -> Result<ValidatorSchedule, ScheduleError> {
        if heights_per_epoch == 0 {
            return Err(ScheduleError::ZeroEpochLength);
        }
        Ok(ValidatorSchedule {
            heights_per_epoch,
            next_public_keys: current.public_keys().to_vec(),
            current,
            votes: BTreeMap::new(),
            standing: BTreeMap::new(),
            next_height: 0,
        })
    }

    /// Epoch of `height`.
    pub fn epoch_of(&self, height: u64) -> u64 {
        height / self.heights_per_epoch
    }

    /// The set in force now.
    pub fn current(&self) -> &ValidatorSet {
        &self.current
    }

    /// Keys the next epoch will have with the changes adopted so far.
    pub fn next_public_keys(&self) -> &[[u8; 32]] {
        &self.next_public_keys
    }

    /// The set for `height`. Errors: [`ScheduleError::OtherEpoch`] if `height` is not in the
    /// current epoch (past sets are the block log's business, future ones are not known yet).
    pub fn set_for_height(&self, height: u64) -> Result<&ValidatorSet, ScheduleError> {
        let height_epoch = self.epoch_of(height);
        if height_epoch != self.current.epoch() {
            return Err(ScheduleError::OtherEpoch {
                height,
                height_epoch,
                epoch: self.current.epoch(),
            });
        }
        Ok(&self.current)
    }

    /// Records `voter`'s vote for `change`.
    ///
    /// Errors: [`ScheduleError::NotAValidator`] (voter not in the current set),
    /// [`ScheduleError::AlreadyMember`] / [`ScheduleError::NotMember`] (the change would do
    /// nothing to the next set), [`ScheduleError::WouldEmpty`].
    pub fn vote(
        &mut self,
        voter: &[u8; 32],
        change: ValidatorChange,
    ) -> Result<ChangeVoteOutcome, ScheduleError> {
        if self.current.index_of(voter).is_none() {
            return Err(ScheduleError::NotAValidator {
                voter: hex::encode(voter),
                epoch: self.current.epoch(),
            });
        }
        match change {
            ValidatorChange::Add(key) if self.next_public_keys.contains(&key) => {
                return Err(ScheduleError::AlreadyMember {
                    public_key: hex::encode(key),
                })
            }
            ValidatorChange::Remove(key) if !self.next_public_keys.contains(&key) => {
                return Err(ScheduleError::NotMember {
                    public_key: hex::encode(key),
                })
            }
            ValidatorChange::Remove(key) if self.next_public_keys.len() == 1 => {
                return Err(ScheduleError::WouldEmpty {
                    public_key: hex::encode(key),
                })
            }
            ValidatorChange::Add(key) if self.next_public_keys.len() >= VALIDATORS_MAX => {
                return Err(ScheduleError::SetFull {
                    public_key: hex::encode(key),
                    max: VALIDATORS_MAX,
                })
            }
            ValidatorChange::Add(key) if VerificationKey::try_from(key).is_err() => {
                return Err(ScheduleError::InvalidKey {
                    public_key: hex::encode(key),
                })
            }
            _ => {}
        }
        if !self.votes.contains_key(&change) && self.votes.len() >= PENDING_CHANGES_MAX {
            // A bound on memory; honest authorities never have this many changes in flight.
            return Err(ScheduleError::TooManyPending {
                max: PENDING_CHANGES_MAX,
            });
        }
        let voters = self.votes.entry(change).or_default();
        if !voters.insert(*voter) {
            return Ok(ChangeVoteOutcome::Duplicate);
        }
        let votes = voters.len();
        let quorum = self.current.quorum();
        if votes < quorum {
            return Ok(ChangeVoteOutcome::Counted { votes, quorum });
        }
        self.votes.remove(&change);
        match change {
            ValidatorChange::Add(key) => self.next_public_keys.push(key),
            ValidatorChange::Remove(key) => self.next_public_keys.retain(|k| *k != key),
        }
        Ok(ChangeVoteOutcome::Adopted)
    }

    /// Leader reputation: tells the schedule that the block decided at `height` names
    /// `proposer` (an index of the set of `height`) in its header. Call it before
    /// [`ValidatorSchedule::on_decided`] for the same height, with the schedule as it was for
    /// `height`. If the round-0 proposer of `height` was someone else, its turn ended without
    /// its block: it is left out of round-0 turns for [`DEMOTION_HEIGHTS`] heights, doubled
    /// for each miss in a row; if it was `proposer`, its record is cleared. Every validator
    /// executes the same headers, so every one demotes the same validators at the same
    /// heights; the state root commits to the records.
    pub fn on_block_proposer(&mut self, height: u64, proposer: u32) {
        if self.epoch_of(height) != self.current.epoch() || self.current.len() == 1 {
            return;
        }
        if self.next_height != height {
            self.refresh_demotions(height);
        }
        let round_zero = self.current.proposer(height, 0);
        let key = *self.current.public_key(round_zero);
        if proposer as usize == round_zero {
            self.standing.remove(&key);
            return;
        }
        let misses = self
            .standing
            .get(&key)
            .map_or(1, |standing| standing.misses.saturating_add(1));
        let doublings = (misses - 1).min(DEMOTION_DOUBLINGS_MAX);
        self.standing.insert(
            key,
            Standing {
                misses,
                demoted_until: height
                    .saturating_add(1)
                    .saturating_add(DEMOTION_HEIGHTS << doublings),
            },
        );
    }

    /// Validators with a record of missed round-0 turns, by key.
    pub fn standings(&self) -> impl Iterator<Item = (&[u8; 32], &Standing)> {
        self.standing.iter()
    }

    /// Marks in `current` the validators demoted at `height` (the height after the last
    /// decided one), and those on probation (a record whose demotion has run out). The
    /// schedule does this itself as heights are decided; a decoded schedule needs it once
    /// (a ledger restored from a snapshot calls it with its next height).
    pub fn set_next_height(&mut self, height: u64) {
        self.refresh_demotions(height);
    }

    fn refresh_demotions(&mut self, height: u64) {
        self.next_height = height;
        let (demoted, probation): (Vec<_>, Vec<_>) = self
            .standing
            .iter()
            .partition(|(_, standing)| standing.demoted_until > height);
        self.current.set_standing(
            demoted.iter().map(|(key, _)| *key),
            probation.iter().map(|(key, _)| *key),
        );
    }

    /// Tells the schedule that `height` is decided. If `height` is the last height of the
    /// current epoch, the next set (with every adopted change) takes over and is returned;
    /// votes that did not reach a quorum are dropped. Otherwise returns `None`. A height
    /// beyond the current epoch (heights skipped) moves the schedule to the epoch of
    /// `height + 1` at once.
    ///
    /// Errors: [`ScheduleError::OtherEpoch`] if `height` is before the current epoch;
    /// [`ScheduleError::InvalidNextSet`] if the next set cannot be built (votes check every
    /// change, so this does not happen with sets built through [`ValidatorSchedule::vote`]).
    pub fn on_decided(&mut self, height: u64) -> Result<Option<&ValidatorSet>, ScheduleError> {
        let height_epoch = self.epoch_of(height);
        if height_epoch < self.current.epoch() {
            return Err(ScheduleError::OtherEpoch {
                height,
                height_epoch,
                epoch: self.current.epoch(),
            });
        }
        let next_epoch = self.epoch_of(height.saturating_add(1));
        if next_epoch == self.current.epoch() {
            self.refresh_demotions(height.saturating_add(1));
            return Ok(None);
        }
        let next = ValidatorSet::new(
            self.current.network_id(),
            next_epoch,
            self.next_public_keys.clone(),
        )?;
        self.current = next;
        self.votes.clear();
        // Records follow keys across epochs; those of validators that left are dropped.
        let current = &self.current;
        self.standing
            .retain(|key, _| current.index_of(key).is_some());
        self.refresh_demotions(height.saturating_add(1));
        Ok(Some(&self.current))
    }

    /// Heights in one epoch.
    pub fn heights_per_epoch(&self) -> u64 {
        self.heights_per_epoch
    }

    /// Changes pending a vote, each with the keys of the validators that voted for it.
    pub fn pending(&self) -> impl Iterator<Item = (&ValidatorChange, &BTreeSet<[u8; 32]>)> {
        self.votes.iter()
    }

    /// Deterministic bytes of the whole schedule (epoch length, current epoch and keys, next
    /// keys, pending votes in order, then the leader reputation: the records of missed turns
    /// in key order): what the ledger's state root commits to and what its snapshots store.
    /// [`ValidatorSchedule::decode`] reads them back.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let put_keys = |out: &mut Vec<u8>, keys: &[[u8; 32]]| {
            out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
            for key in keys {
                out.extend_from_slice(key);
            }
        };
        out.extend_from_slice(&self.heights_per_epoch.to_le_bytes());
        out.extend_from_slice(&self.current.network_id().to_le_bytes());
        out.extend_from_slice(&self.current.epoch().to_le_bytes());
        put_keys(out, self.current.public_keys());
        put_keys(out, &self.next_public_keys);
        out.extend_from_slice(&(self.votes.len() as u64).to_le_bytes());
        for (change, voters) in &self.votes {
            let (tag, key) = match change {
                ValidatorChange::Add(key) => (1u8, key),
                ValidatorChange::Remove(key) => (2u8, key),
            };
            out.push(tag);
            out.extend_from_slice(key);
            let voters: Vec<[u8; 32]> = voters.iter().copied().collect();
            put_keys(out, &voters);
        }
        out.extend_from_slice(&(self.standing.len() as u64).to_le_bytes());
        for (key, standing) in &self.standing {
            out.extend_from_slice(key);
            out.extend_from_slice(&u64::from(standing.misses).to_le_bytes());
            out.extend_from_slice(&standing.demoted_until.to_le_bytes());
        }
    }

    /// Reads a schedule from the front of `bytes` (as [`ValidatorSchedule::encode`] wrote
    /// it); returns it and the bytes read. Errors name the field that is wrong. Its
    /// demotions are for height 0 until [`ValidatorSchedule::set_next_height`] is called.
    pub fn decode(bytes: &[u8]) -> Result<(ValidatorSchedule, usize), ScheduleDecodeError> {
        let mut r = ScheduleReader { bytes, at: 0 };
        let heights_per_epoch = r.u64("heights per epoch")?;
        let network_id = r.u64("network id")?;
        let epoch = r.u64("epoch")?;
        let current_keys = r.keys("current validators")?;
        let next_public_keys = r.keys("next validators")?;
        let pending = r.u64("pending change count")?;
        if pending > PENDING_CHANGES_MAX as u64 {
            return Err(ScheduleDecodeError::Invalid("pending change count"));
        }
        let mut votes = BTreeMap::new();
        for _ in 0..pending {
            let tag = r.take(1, "pending change")?[0];
            let key = r.key("pending change")?;
            let change = match tag {
                1 => ValidatorChange::Add(key),
                2 => ValidatorChange::Remove(key),
                _ => return Err(ScheduleDecodeError::Invalid("pending change kind")),
            };
            let voters: BTreeSet<[u8; 32]> = r.keys("pending change voters")?.into_iter().collect();
            if votes.insert(change, voters).is_some() {
                return Err(ScheduleDecodeError::Invalid("pending change order"));
            }
        }
        let records = r.u64("reputation record count")?;
        if records > VALIDATORS_MAX as u64 {
            return Err(ScheduleDecodeError::Invalid("reputation record count"));
        }
        let mut standing = BTreeMap::new();
        let mut last_key: Option<[u8; 32]> = None;
        for _ in 0..records {
            let key = r.key("reputation record")?;
            let misses = r.u64("reputation record")?;
            let demoted_until = r.u64("reputation record")?;
            if last_key.is_some_and(|last| last >= key) {
                return Err(ScheduleDecodeError::Invalid("reputation record order"));
            }
            if misses == 0 || misses > u64::from(u32::MAX) {
                return Err(ScheduleDecodeError::Invalid("reputation record misses"));
            }
            last_key = Some(key);
            standing.insert(
                key,
                Standing {
                    misses: misses as u32,
                    demoted_until,
                },
            );
        }
        if heights_per_epoch == 0 {
            return Err(ScheduleDecodeError::Invalid("heights per epoch"));
        }
        let current = ValidatorSet::new(network_id, epoch, current_keys)
            .map_err(|_| ScheduleDecodeError::Invalid("current validators"))?;
        if next_public_keys.is_empty() {
            return Err(ScheduleDecodeError::Invalid("next validators"));
        }
        let mut schedule = ValidatorSchedule {
            heights_per_epoch,
            current,
            next_public_keys,
            votes,
            standing,
            next_height: 0,
        };
        schedule.refresh_demotions(0);
        Ok((schedule, r.at))
    }
}

struct ScheduleReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> ScheduleReader<'a> {
    fn take(&mut self, count: usize, field: &'static str) -> Result<&'a [u8], ScheduleDecodeError> {
        let end = self
            .at
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(ScheduleDecodeError::Truncated(field))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, ScheduleDecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8, field)?.try_into().expect("8 bytes"),
        ))
    }
    fn key(&mut self, field: &'static str) -> Result<[u8; 32], ScheduleDecodeError> {
        Ok(self.take(32, field)?.try_into().expect("32 bytes"))
    }
    /// A count (at most [`VALIDATORS_MAX`]) and that many keys.
    fn keys(&mut self, field: &'static str) -> Result<Vec<[u8; 32]>, ScheduleDecodeError> {
        let count = self.u64(field)?;
        if count > VALIDATORS_MAX as u64 {
            return Err(ScheduleDecodeError::Invalid(field));
        }
        (0..count).map(|_| self.key(field)).collect()
    }
}

/// Why schedule bytes cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleDecodeError {
    #[error("validator schedule is cut short in its {0}")]
    Truncated(&'static str),
    #[error("validator schedule field {0} is invalid")]
    Invalid(&'static str),
}

/// First 8 bytes of a block id in hex, for error messages and logs.
pub(crate) fn short_hex(id: &BlockId) -> String {
    hex::encode(&id[..8])
}
