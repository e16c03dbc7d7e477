//! Bookkeeping of the messages received in one height: per round, the proposal of the
//! round's proposer, each validator's prevote and precommit (counted once per round and type),
//! and the distinct senders of any message (for the f + 1 round skip of line 55).
//!
//! A second, different message from one validator for the same (round, type) is not counted:
//! the pair is returned as [`Evidence`] instead.

use super::certificate::{CommitSignature, Evidence};
use super::message::{Body, SignedMessage, VerifiedMessage, VoteKind};
use super::BlockId;
use std::collections::BTreeMap;

/// What recording a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// New information: the rules must be evaluated again.
    New,
    /// Exactly the message already held (network duplicate): nothing changed.
    Duplicate,
    /// A conflicting message from the same validator for the same slot: evidence. A vote still
    /// counts for its value, a proposal is still kept (both within their caps).
    Equivocation(Box<Evidence>),
}

/// New values one validator may introduce in one (round, type); its votes for values others
/// introduced always count. Honest validators vote once; more than one is equivocation. Counting a few lets a
/// lagging validator still count an equivocator's vote that is part of a commit (the paper
/// counts every message received); the cap bounds what a Byzantine validator can make us keep.
pub const VALUES_PER_VALIDATOR_MAX: u8 = 4;
/// Proposals kept per round (the proposer's first, then equivocating ones).
pub const PROPOSALS_PER_ROUND_MAX: usize = VALUES_PER_VALIDATOR_MAX as usize;

/// The votes for one value (nil included) in one (round, type).
#[derive(Clone, Debug)]
struct ValueVotes {
    value: Option<BlockId>,
    /// Signature per validator that voted for `value`.
    signatures: Vec<Option<[u8; 64]>>,
    count: usize,
}

/// One vote type in one round.
#[derive(Clone, Debug)]
struct Tally {
    /// First vote of each validator, by index: what `∗` thresholds count.
    first: Vec<Option<Option<BlockId>>>,
    /// Value entries each validator created.
    values_per_validator: Vec<u8>,
    total: usize,
    /// Senders per value; at most `VALUES_PER_VALIDATOR_MAX` per validator.
    values: Vec<ValueVotes>,
}

impl Tally {
    fn new(validator_count: usize) -> Tally {
        Tally {
            first: vec![None; validator_count],
            values_per_validator: vec![0; validator_count],
            total: 0,
            values: Vec::new(),
        }
    }

    fn value(&self, value: &Option<BlockId>) -> Option<&ValueVotes> {
        self.values.iter().find(|votes| votes.value == *value)
    }

    fn count(&self, value: &Option<BlockId>) -> usize {
        self.value(value).map_or(0, |votes| votes.count)
    }
}

/// Everything received for one round.
#[derive(Clone, Debug)]
pub struct RoundVotes {
    /// The proposer's proposals, first received first (more than one is equivocation).
    proposals: Vec<SignedMessage>,
    prevotes: Tally,
    precommits: Tally,
    senders: Vec<bool>,
    sender_count: usize,
    /// "for the first time" flags of lines 34, 36 and 47.
    pub(crate) prevote_timeout_scheduled: bool,
    pub(crate) polka_handled: bool,
    pub(crate) precommit_timeout_scheduled: bool,
}

impl RoundVotes {
    fn new(validator_count: usize) -> RoundVotes {
        RoundVotes {
            proposals: Vec::new(),
            prevotes: Tally::new(validator_count),
            precommits: Tally::new(validator_count),
            senders: vec![false; validator_count],
            sender_count: 0,
            prevote_timeout_scheduled: false,
            polka_handled: false,
            precommit_timeout_scheduled: false,
        }
    }

    /// The first proposal of this round's proposer, if received: (value, valid round).
    pub fn proposal(&self) -> Option<(BlockId, Option<u32>)> {
        self.proposals.first().map(proposal_parts)
    }

    /// Every proposal of this round's proposer, first received first: (value, valid round).
    pub fn proposals(&self) -> impl Iterator<Item = (BlockId, Option<u32>)> + '_ {
        self.proposals.iter().map(proposal_parts)
    }

    /// The signed proposal for `value`, if received.
    pub fn signed_proposal(&self, value: &BlockId) -> Option<&SignedMessage> {
        self.proposals
            .iter()
            .find(|proposal| proposal_parts(proposal).0 == *value)
    }

    fn tally(&self, kind: VoteKind) -> &Tally {
        match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        }
    }

    /// Distinct validators that voted `kind` for `value` (`None` = nil).
    pub fn count(&self, kind: VoteKind, value: &Option<BlockId>) -> usize {
        self.tally(kind).count(value)
    }

    /// Validator `index`'s vote of `kind` in this round: `None` if none arrived, else its
    /// value (`Some(None)` for nil).
    pub fn vote(&self, kind: VoteKind, index: usize) -> Option<Option<BlockId>> {
        self.tally(kind).first.get(index).copied().flatten()
    }

    /// Distinct validators that voted `kind` for anything (the paper's `∗`).
    pub fn total(&self, kind: VoteKind) -> usize {
        self.tally(kind).total
    }

    /// Distinct validators that sent any message in this round.
    pub fn sender_count(&self) -> usize {
        self.sender_count
    }

    /// Signatures of the precommits for `value`, in validator order.
    pub fn precommit_signatures(
        &self,
        value: &BlockId,
        public_keys: &[[u8; 32]],
    ) -> Vec<CommitSignature> {
        let Some(votes) = self.precommits.value(&Some(*value)) else {
            return Vec::new();
        };
        votes
            .signatures
            .iter()
            .zip(public_keys)
            .filter_map(|(signature, key)| {
                signature.map(|signature| CommitSignature {
                    validator: *key,
                    signature,
                })
            })
            .collect()
    }

    /// The signed votes of `kind` for `value` (for a proof of lock), rebuilt with their
    /// signatures; `height`, `round` and `public_keys` are the book's.
    pub fn signed_votes(
        &self,
        kind: VoteKind,
        value: &Option<BlockId>,
        height: u64,
        round: u32,
        public_keys: &[[u8; 32]],
    ) -> Vec<SignedMessage> {
        let Some(votes) = self.tally(kind).value(value) else {
            return Vec::new();
        };
        let body = Body::Vote {
            kind,
            height,
            round,
            value: *value,
        };
        votes
            .signatures
            .iter()
            .zip(public_keys)
            .filter_map(|(signature, key)| {
                signature.map(|signature| SignedMessage::from_parts(body, *key, signature))
            })
            .collect()
    }

    /// Every message counted in this round (proposals, then prevotes, then precommits),
    /// rebuilt with their signatures; `height` and `public_keys` are the book's.
    pub fn signed_messages(
        &self,
        height: u64,
        round: u32,
        public_keys: &[[u8; 32]],
        out: &mut Vec<SignedMessage>,
    ) {
        out.extend(self.proposals.iter().copied());
        for (kind, tally) in [
            (VoteKind::Prevote, &self.prevotes),
            (VoteKind::Precommit, &self.precommits),
        ] {
            for votes in &tally.values {
                let body = Body::Vote {
                    kind,
                    height,
                    round,
                    value: votes.value,
                };
                for (signature, key) in votes.signatures.iter().zip(public_keys) {
                    if let Some(signature) = signature {
                        out.push(SignedMessage::from_parts(body, *key, *signature));
                    }
                }
            }
        }
    }

    fn note_sender(&mut self, index: usize) {
        if !std::mem::replace(&mut self.senders[index], true) {
            self.sender_count += 1;
        }
    }
}

/// The messages of one height, by round.
#[derive(Clone, Debug)]
pub struct HeightVotes {
    validator_count: usize,
    rounds: BTreeMap<u32, RoundVotes>,
}

impl HeightVotes {
    /// Empty book for a set of `validator_count` validators.
    pub fn new(validator_count: usize) -> HeightVotes {
        HeightVotes {
            validator_count,
            rounds: BTreeMap::new(),
        }
    }

    /// Messages of `round`, if any arrived.
    pub fn round(&self, round: u32) -> Option<&RoundVotes> {
        self.rounds.get(&round)
    }

    pub(crate) fn round_mut(&mut self, round: u32) -> &mut RoundVotes {
        let validator_count = self.validator_count;
        self.rounds
            .entry(round)
            .or_insert_with(|| RoundVotes::new(validator_count))
    }

    /// All rounds with messages, ascending.
    pub fn rounds(&self) -> impl DoubleEndedIterator<Item = (&u32, &RoundVotes)> {
        self.rounds.iter()
    }

    /// Records `message`. Assumes the caller checked height, epoch and (for a proposal) that
    /// the sender is the round's proposer.
    pub fn record(&mut self, message: &VerifiedMessage) -> Recorded {
        let index = message.validator_index();
        assert!(index < self.validator_count, "validator index out of range");
        let signed = *message.message();
        let round = self.round_mut(message.body().round());
        let recorded = match *message.body() {
            Body::Proposal { value, .. } => {
                match round
                    .proposals
                    .iter()
                    .find(|held| held.body() == signed.body())
                {
                    Some(_) => Recorded::Duplicate,
                    None => {
                        let evidence = round.proposals.first().map(|held| Evidence {
                            first: *held,
                            second: signed,
                        });
                        let known_value = round.signed_proposal(&value).is_some();
                        // Beyond the cap, a proposal is still kept if votes name its value
                        // (bounded by the value entries), so junk proposals from an
                        // equivocating proposer cannot hide the one that was decided.
                        let voted = round.prevotes.value(&Some(value)).is_some()
                            || round.precommits.value(&Some(value)).is_some();
                        if !known_value
                            && (round.proposals.len() < PROPOSALS_PER_ROUND_MAX || voted)
                        {
                            round.proposals.push(signed);
                        }
                        match evidence {
                            None => Recorded::New,
                            Some(evidence) => Recorded::Equivocation(Box::new(evidence)),
                        }
                    }
                }
            }
            Body::Vote { kind, value, .. } => {
                let tally = match kind {
                    VoteKind::Prevote => &mut round.prevotes,
                    VoteKind::Precommit => &mut round.precommits,
                };
                let position = tally.values.iter().position(|votes| votes.value == value);
                if let Some(position) = position {
                    if tally.values[position].signatures[index].is_some() {
                        return Recorded::Duplicate;
                    }
                }
                let first = tally.first[index];
                // The cap limits the value entries a validator can create; a vote for a value
                // that already has an entry costs no memory and always counts, so junk votes
                // cannot hide an equivocator's vote for the value that was decided.
                let position = match position {
                    Some(position) => Some(position),
                    None if tally.values_per_validator[index] < VALUES_PER_VALIDATOR_MAX => {
                        tally.values_per_validator[index] += 1;
                        tally.values.push(ValueVotes {
                            value,
                            signatures: vec![None; tally.first.len()],
                            count: 0,
                        });
                        Some(tally.values.len() - 1)
                    }
                    None => None,
                };
                if let Some(position) = position {
                    let votes = &mut tally.values[position];
                    votes.signatures[index] = Some(*signed.signature());
                    votes.count += 1;
                }
                match first {
                    None => {
                        tally.first[index] = Some(value);
                        tally.total += 1;
                        Recorded::New
                    }
                    Some(first_value) => {
                        let first_signature = tally
                            .value(&first_value)
                            .and_then(|votes| votes.signatures[index])
                            .expect("a validator's first vote is always counted");
                        let first = SignedMessage::from_parts(
                            Body::Vote {
                                kind,
                                height: signed.body().height(),
                                round: signed.body().round(),
                                value: first_value,
                            },
                            *signed.sender(),
                            first_signature,
                        );
                        Recorded::Equivocation(Box::new(Evidence {
                            first,
                            second: signed,
                        }))
                    }
                }
            }
        };
        if recorded == Recorded::New {
            round.note_sender(index);
        }
        recorded
    }
}

fn proposal_parts(message: &SignedMessage) -> (BlockId, Option<u32>) {
    match *message.body() {
        Body::Proposal {
            value, valid_round, ..
        } => (value, valid_round),
        Body::Vote { .. } => unreachable!("only proposals are stored as proposals"),
    }
}
