//! Tendermint, Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon, Milosevic,
//! 2018, arXiv:1807.04938), as a sans-IO state machine. Comments `(line N)` cite the paper.
//!
//! Over 800 lines on purpose: the algorithm stays in one file, in the paper's order, so that
//! it can be read against the paper line by line.
//!
//! How a node drives it:
//! 1. `Tendermint::new(config, first_height)` on a fresh node, or `Tendermint::restore(config,
//!    persisted)` after a restart, with the last [`PersistentState`] the node wrote.
//! 2. `handle(Event::StartHeight { height, validator_set })` for the machine's height
//!    ([`Tendermint::height`]); again after each decision, for the next height.
//! 3. For each message from the network: decode ([`SignedMessage::decode`]), verify against
//!    the set of the message's height ([`SignedMessage::verify`]), then
//!    `handle(Event::Message(verified))`.
//! 4. When a timeout it was asked to schedule fires: `handle(Event::Timeout(timeout))`.
//! 5. Execute the returned actions in order: [`Action::Decide`] and [`Action::Persist`] must
//!    be durable before any [`Action::Broadcast`] of the same batch is sent (write-ahead: a
//!    validator that restarts must never sign a second, different vote for a slot).
//!
//! The paper's `valid(v)` and `getValue()` are the host's [`Application`]. Values are block ids,
//! so the paper's `id(v)` is `v`. Two deliberate, documented splits from the paper's text:
//! - lines 52-54 (after a decision): the machine moves to the next height and resets its
//!   state at once (lines 52-53), but `StartRound(0)` (line 54) waits for the host's
//!   `StartHeight`, because the host must first commit the block and pick the next height's
//!   validator set. Messages for the next height are buffered meanwhile.
//! - the paper's "broadcast" includes the sender; the machine delivers its own messages to
//!   itself at once instead of waiting for the network to loop them back.

use super::certificate::{Certificate, Evidence};
use super::message::{Body, SignedMessage, VerifiedMessage, VoteKind, ROUND_MAX};
use super::validators::{short_hex, ValidatorSet};
use super::votes::{HeightVotes, Recorded};
use super::BlockId;
use ed25519_zebra::{SigningKey, VerificationKey};

/// Rounds above the current one for which messages are kept. Messages beyond are refused
/// (`RoundTooFar`) and come back through gossip once the node has caught up; without a bound
/// a Byzantine validator could make the node keep state for any number of rounds.
pub const ROUND_LOOKAHEAD_MAX: u32 = 256;
/// Messages for the next height kept until the host starts it.
pub const FUTURE_MESSAGES_MAX: usize = 1024;
/// Equivocation evidence kept until the host takes it.
pub const EVIDENCE_MAX: usize = 1024;
/// Own signed messages of the current height kept for re-sending (3 per round).
pub const OWN_MESSAGES_MAX: usize = 3 * 1024;
/// The round-0 propose timeout for a proposer on probation (leader reputation) is the
/// normal one divided by this.
pub const PROBATION_PROPOSE_TIMEOUT_DIVISOR: u64 = 8;

/// Rule firings while handling one event. Each firing moves (round, step) forward or sets a
/// "first time" flag, so a handful suffice; reaching the bound is a bug and panics.
pub const RULE_FIRINGS_PER_EVENT_MAX: usize = 16 * (ROUND_LOOKAHEAD_MAX as usize + 8);

/// The host's side of the paper's interface.
pub trait Application {
    /// `getValue()` (line 18): the block id this validator proposes at (height, round) when it
    /// has no valid value to re-propose.
    fn propose_value(&mut self, height: u64, round: u32) -> BlockId;

    /// `valid(v)` (lines 23, 29, 36, 50): whether the block behind `value` is a valid next
    /// block at `height`. Must be deterministic for a given (height, value) across all honest
    /// validators; a host that does not have the block yet answers false (the validator then
    /// prevotes nil, which is safe) and feeds the proposal again once it has it.
    fn is_valid(&mut self, height: u64, value: &BlockId) -> bool;
}

/// The paper's `step_p`. Ordered: `Propose < Prevote < Precommit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
}

/// Which timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    Propose,
    Prevote,
    Precommit,
}

/// A timeout the host must schedule and feed back when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timeout {
    pub kind: TimeoutKind,
    pub height: u64,
    pub round: u32,
}

/// Timeout durations: `base + round * delta` milliseconds for each kind. Growing with the
/// round is what gives liveness after the network stabilises (the paper's timeout(r)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutConfig {
    pub propose_ms: u64,
    pub propose_delta_ms: u64,
    pub prevote_ms: u64,
    pub prevote_delta_ms: u64,
    pub precommit_ms: u64,
    pub precommit_delta_ms: u64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            propose_ms: 3000,
            propose_delta_ms: 500,
            prevote_ms: 1000,
            prevote_delta_ms: 500,
            precommit_ms: 1000,
            precommit_delta_ms: 500,
        }
    }
}

impl TimeoutConfig {
    /// Duration of timeout `kind` in `round`, saturating.
    pub fn duration_ms(&self, kind: TimeoutKind, round: u32) -> u64 {
        let (base, delta) = match kind {
            TimeoutKind::Propose => (self.propose_ms, self.propose_delta_ms),
            TimeoutKind::Prevote => (self.prevote_ms, self.prevote_delta_ms),
            TimeoutKind::Precommit => (self.precommit_ms, self.precommit_delta_ms),
        };
        base.saturating_add(delta.saturating_mul(u64::from(round)))
    }
}

/// What the machine needs from the node.
#[derive(Clone)]
pub struct Config {
    /// This validator's key; a node whose key is not in a height's set only follows.
    pub signing_key: SigningKey,
    pub timeouts: TimeoutConfig,
}

/// Inputs.
#[derive(Clone, Debug)]
pub enum Event {
    /// Start (or, after a restart, resume) height `height` with its validator set (line 10).
    StartHeight {
        height: u64,
        validator_set: ValidatorSet,
    },
    /// A proposal or vote whose signature the host verified.
    Message(VerifiedMessage),
    /// A scheduled timeout fired (lines 57-67).
    Timeout(Timeout),
}

/// A decision: `value` is final at `height`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub height: u64,
    pub value: BlockId,
    /// A quorum of signed precommits; verifiable with the height's validator set.
    pub certificate: Certificate,
    /// The signed proposal of the deciding round, so that peers that missed the decision can
    /// be sent proposal + precommits and decide by line 49 themselves.
    pub proposal: SignedMessage,
}

/// Outputs, to be executed in order.
#[derive(Clone, Debug)]
pub enum Action {
    /// `decision_p[h] = v` (line 51). Record the block as final before anything else.
    Decide(Decision),
    /// Write this state durably before sending any broadcast that follows.
    Persist(PersistentState),
    /// Send to every other validator (the machine has already delivered it to itself).
    Broadcast(SignedMessage),
    /// Feed `Event::Timeout(timeout)` back after `duration_ms`.
    ScheduleTimeout { timeout: Timeout, duration_ms: u64 },
}

/// What a validator must keep across a crash: its height, round and step, its locked and
/// valid value and round, and the messages it signed in this height. Restoring from it, the
/// validator never signs a different message for a (height, round, step) it has signed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistentState {
    pub height: u64,
    /// Whether `StartRound(0)` ran for `height`; false right after a decision.
    pub started: bool,
    pub round: u32,
    pub step: Step,
    /// `(lockedValue_p, lockedRound_p)`; `None` is (nil, -1).
    pub locked: Option<(BlockId, u32)>,
    /// `(validValue_p, validRound_p)`; `None` is (nil, -1).
    pub valid: Option<(BlockId, u32)>,
    /// Messages this validator signed in `height`, oldest first.
    pub own_messages: Vec<SignedMessage>,
    /// The prevotes (a quorum) that justify `locked` and `valid`: the polkas of lines 36-43.
    /// Without them a restarted validator would hold a lock that nobody can see the reason
    /// for once the other holders of those prevotes have moved on or crashed too, and the
    /// height could stall (the paper assumes received messages are never forgotten).
    pub polka_messages: Vec<SignedMessage>,
}

/// Why an event was refused. A refused event changes nothing, except
/// [`ConsensusError::Equivocation`]: the evidence is stored and, as in the paper, the message
/// is still counted for its value; actions may follow from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    #[error("height {height} has not been started: send StartHeight first")]
    NotStarted { height: u64 },
    #[error("StartHeight for height {got}, but the machine is at height {expected}: start heights in order")]
    UnexpectedStartHeight { expected: u64, got: u64 },
    #[error("height {height} is already running: StartHeight was sent twice")]
    AlreadyStarted { height: u64 },
    #[error("message for past height {height} (now at {current}): the sender lags; send it the decided block's certificate")]
    PastHeight { height: u64, current: u64 },
    #[error("message for height {height} is too far ahead (now at {current}): this node lags; fetch the missing blocks (block sync)")]
    FutureHeight { height: u64, current: u64 },
    #[error(
        "buffer of next-height messages is full ({max}): message dropped, gossip will resend it"
    )]
    FutureBufferFull { max: usize },
    #[error("message verified against epoch {message} but height runs epoch {current}: verify with the set of the message's height")]
    WrongEpoch { message: u64, current: u64 },
    #[error("message for round {round} is more than {max} rounds ahead of round {current}: dropped, gossip will resend it")]
    RoundTooFar { round: u32, current: u32, max: u32 },
    #[error("proposal from validator {validator} for round {round}, whose proposer is {proposer}: sender is faulty")]
    NotProposer {
        validator: usize,
        round: u32,
        proposer: usize,
    },
    #[error("validator {validator} equivocated at height {height} round {round}: evidence kept, report the validator to the authorities")]
    Equivocation {
        validator: usize,
        height: u64,
        round: u32,
    },
}

type PersistKey = (
    u64,
    bool,
    u32,
    Step,
    Option<(BlockId, u32)>,
    Option<(BlockId, u32)>,
    (usize, usize),
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for `StartHeight` (fresh, after a decision, or after a restore).
    Waiting,
    Running,
}

/// The Tendermint state machine of one validator. See the module comment for how to drive it.
pub struct Tendermint {
    config: Config,
    public_key: [u8; 32],
    phase: Phase,
    /// `h_p`.
    height: u64,
    /// Whether `StartRound(0)` ran for `height` (persisted).
    started: bool,
    /// `round_p`.
    round: u32,
    /// `step_p`.
    step: Step,
    locked: Option<(BlockId, u32)>,
    valid: Option<(BlockId, u32)>,
    validator_set: Option<ValidatorSet>,
    /// Own index in the current set, `None` when not a validator of it.
    own_index: Option<usize>,
    votes: HeightVotes,
    own_messages: Vec<SignedMessage>,
    /// Prevotes justifying `locked` and `valid` (persisted).
    polka_messages: Vec<SignedMessage>,
    future_messages: Vec<VerifiedMessage>,
    evidence: Vec<Evidence>,
    evidence_dropped: u64,
}

/// Actions of one event, gathered so they can be emitted in the safe order.
#[derive(Default)]
struct Outbox {
    decision: Option<Decision>,
    sends: Vec<Action>,
}

impl Tendermint {
    /// A fresh validator whose first height will be `height` (line 1-9: round 0, step
    /// propose, nothing locked or valid).
    pub fn new(config: Config, height: u64) -> Tendermint {
        let public_key: [u8; 32] = VerificationKey::from(&config.signing_key).into();
        Tendermint {
            config,
            public_key,
            phase: Phase::Waiting,
            height,
            started: false,
            round: 0,
            step: Step::Propose,
            locked: None,
            valid: None,
            validator_set: None,
            own_index: None,
            votes: HeightVotes::new(0),
            own_messages: Vec::new(),
            polka_messages: Vec::new(),
            future_messages: Vec::new(),
            evidence: Vec::new(),
            evidence_dropped: 0,
        }
    }

    /// A validator restarted from `state`, the last state it persisted. The host then sends
    /// `StartHeight` for `state.height`; the machine re-sends its own messages of that height
    /// and continues from the persisted round and step instead of starting round 0.
    pub fn restore(config: Config, state: PersistentState) -> Tendermint {
        let mut machine = Tendermint::new(config, state.height);
        machine.started = state.started;
        machine.round = state.round;
        machine.step = state.step;
        machine.locked = state.locked;
        machine.valid = state.valid;
        machine.own_messages = state.own_messages;
        machine.polka_messages = state.polka_messages;
        machine
    }

    /// `h_p`: the height being decided (or waiting for `StartHeight`).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// `round_p`.
    pub fn round(&self) -> u32 {
        self.round
    }

    /// `step_p`.
    pub fn step(&self) -> Step {
        self.step
    }

    /// Whether the current height runs (false while waiting for `StartHeight`).
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// `(lockedValue_p, lockedRound_p)`, `None` for (nil, -1).
    pub fn locked(&self) -> Option<(BlockId, u32)> {
        self.locked
    }

    /// `(validValue_p, validRound_p)`, `None` for (nil, -1).
    pub fn valid(&self) -> Option<(BlockId, u32)> {
        self.valid
    }

    /// This validator's public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// Messages this validator signed in the current height, for re-sending by gossip.
    pub fn own_messages(&self) -> &[SignedMessage] {
        &self.own_messages
    }

    /// Every message of the current height this validator counts, its own included. The
    /// paper assumes that a message one correct validator received reaches every correct
    /// validator; the node's gossip relays these periodically to make that true on a lossy
    /// network. Empty while no height runs.
    pub fn known_messages(&self) -> Vec<SignedMessage> {
        let mut out = Vec::new();
        if let (Phase::Running, Some(set)) = (self.phase, &self.validator_set) {
            for (round, votes) in self.votes.rounds() {
                votes.signed_messages(self.height, *round, set.public_keys(), &mut out);
            }
        }
        out
    }

    /// Received messages of the current height.
    pub fn votes(&self) -> &HeightVotes {
        &self.votes
    }

    /// Equivocation evidence gathered so far (at most [`EVIDENCE_MAX`]).
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }

    /// Takes the evidence gathered so far, making room for more.
    pub fn take_evidence(&mut self) -> Vec<Evidence> {
        std::mem::take(&mut self.evidence)
    }

    /// Evidence not kept because the store was full.
    pub fn evidence_dropped(&self) -> u64 {
        self.evidence_dropped
    }

    /// The state to persist now (also emitted as [`Action::Persist`] whenever it changes).
    pub fn persistent_state(&self) -> PersistentState {
        PersistentState {
            height: self.height,
            started: self.started,
            round: self.round,
            step: self.step,
            locked: self.locked,
            valid: self.valid,
            own_messages: self.own_messages.clone(),
            polka_messages: self.polka_messages.clone(),
        }
    }

    /// Handles one event and appends the resulting actions to `actions`, in the order they
    /// must be executed: at most one `Decide`, then at most one `Persist`, then broadcasts and
    /// timeouts. Assumes nothing about the event; deterministic.
    ///
    /// Errors ([`ConsensusError`]): the event was refused and `actions` is left as it was,
    /// except for [`ConsensusError::Equivocation`] (evidence stored, message counted).
    pub fn handle<A: Application>(
        &mut self,
        event: Event,
        app: &mut A,
        actions: &mut Vec<Action>,
    ) -> Result<(), ConsensusError> {
        let before = self.persist_key();
        let mut outbox = Outbox::default();
        let result = match event {
            Event::StartHeight {
                height,
                validator_set,
            } => self.on_start_height(height, validator_set, app, &mut outbox),
            Event::Message(message) => self.on_message(message, app, &mut outbox),
            Event::Timeout(timeout) => {
                self.on_timeout(timeout, app, &mut outbox);
                Ok(())
            }
        };
        if let Some(decision) = outbox.decision {
            actions.push(Action::Decide(decision));
        }
        if self.persist_key() != before {
            actions.push(Action::Persist(self.persistent_state()));
        }
        actions.extend(outbox.sends);
        result
    }

    /// Changes whenever the persistent state does (own messages and polkas only ever change
    /// together with one of the other fields or grow).
    fn persist_key(&self) -> PersistKey {
        (
            self.height,
            self.started,
            self.round,
            self.step,
            self.locked,
            self.valid,
            (self.own_messages.len(), self.polka_messages.len()),
        )
    }

    fn set(&self) -> &ValidatorSet {
        self.validator_set
            .as_ref()
            .expect("a running height has a validator set")
    }

    fn on_start_height<A: Application>(
        &mut self,
        height: u64,
        validator_set: ValidatorSet,
        app: &mut A,
        outbox: &mut Outbox,
    ) -> Result<(), ConsensusError> {
        if height != self.height {
            return Err(ConsensusError::UnexpectedStartHeight {
                expected: self.height,
                got: height,
            });
        }
        if self.phase == Phase::Running {
            return Err(ConsensusError::AlreadyStarted { height });
        }
        self.phase = Phase::Running;
        self.own_index = validator_set.index_of(&self.public_key);
        self.votes = HeightVotes::new(validator_set.len());
        let epoch = validator_set.epoch();
        self.validator_set = Some(validator_set);
        if self.started {
            // Restored mid-height: re-send and re-count what this validator signed before the
            // crash, and re-arm the propose timeout; lines 34 and 47 re-arm the others when
            // the votes come in again. StartRound is not run again: it would sign anew.
            if let Some(own_index) = self.own_index {
                for message in self.own_messages.clone() {
                    let verified = VerifiedMessage::trusted(message, own_index, epoch);
                    // Own messages never conflict with each other (persisted before sending).
                    let _ = self.votes.record(&verified);
                    outbox.sends.push(Action::Broadcast(message));
                }
            }
            // The persisted polkas were verified before they were written.
            for message in self.polka_messages.clone() {
                let Some(index) = self.set().index_of(message.sender()) else {
                    continue;
                };
                let _ = self
                    .votes
                    .record(&VerifiedMessage::trusted(message, index, epoch));
            }
            if self.step == Step::Propose {
                self.schedule(TimeoutKind::Propose, outbox);
            }
        } else {
            // upon start do StartRound(0) (line 10; line 54 for later heights).
            self.started = true;
            self.start_round(0, app, outbox);
        }
        for message in std::mem::take(&mut self.future_messages) {
            if message.body().height() == self.height {
                // A buffered message that no longer fits (other epoch, equivocation) is
                // dropped here just as it would have been refused on arrival.
                let _ = self.accept(message);
            }
        }
        self.evaluate(app, outbox);
        Ok(())
    }

    fn on_message<A: Application>(
        &mut self,
        message: VerifiedMessage,
        app: &mut A,
        outbox: &mut Outbox,
    ) -> Result<(), ConsensusError> {
        let height = message.body().height();
        let running_height = self.phase == Phase::Running && height == self.height;
        let next_height = if self.phase == Phase::Running {
            height == self.height + 1
        } else {
            height == self.height
        };
        if !running_height && next_height {
            if self.future_messages.contains(&message) {
                return Ok(());
            }
            if self.future_messages.len() >= FUTURE_MESSAGES_MAX {
                return Err(ConsensusError::FutureBufferFull {
                    max: FUTURE_MESSAGES_MAX,
                });
            }
            self.future_messages.push(message);
            return Ok(());
        }
        if height < self.height {
            return Err(ConsensusError::PastHeight {
                height,
                current: self.height,
            });
        }
        if !running_height {
            return Err(ConsensusError::FutureHeight {
                height,
                current: self.height,
            });
        }
        match self.accept(message) {
            Ok(true) => {
                self.evaluate(app, outbox);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(error @ ConsensusError::Equivocation { .. }) => {
                // The conflicting message still counts for its value, as in the paper.
                self.evaluate(app, outbox);
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// Checks and records a message of the running height; true if it was new.
    fn accept(&mut self, message: VerifiedMessage) -> Result<bool, ConsensusError> {
        let set = self.set();
        if message.epoch() != set.epoch() || message.validator_index() >= set.len() {
            return Err(ConsensusError::WrongEpoch {
                message: message.epoch(),
                current: set.epoch(),
            });
        }
        if Some(message.validator_index()) == self.own_index {
            // Own messages are counted when signed (and re-counted from the persisted state
            // after a restart); copies relayed back by gossip add nothing.
            return Ok(false);
        }
        let round = message.body().round();
        if round > self.round.saturating_add(ROUND_LOOKAHEAD_MAX) {
            return Err(ConsensusError::RoundTooFar {
                round,
                current: self.round,
                max: ROUND_LOOKAHEAD_MAX,
            });
        }
        if let Body::Proposal { height, .. } = *message.body() {
            // Lines 22, 28, 36, 49 only consider proposals "from proposer(h_p, r)".
            let proposer = set.proposer(height, round);
            if message.validator_index() != proposer {
                return Err(ConsensusError::NotProposer {
                    validator: message.validator_index(),
                    round,
                    proposer,
                });
            }
        }
        match self.votes.record(&message) {
            Recorded::New => Ok(true),
            Recorded::Duplicate => Ok(false),
            Recorded::Equivocation(evidence) => {
                if self.evidence.len() < EVIDENCE_MAX {
                    self.evidence.push(*evidence);
                } else {
                    self.evidence_dropped += 1;
                }
                Err(ConsensusError::Equivocation {
                    validator: message.validator_index(),
                    height: self.height,
                    round,
                })
            }
        }
    }

    fn on_timeout<A: Application>(&mut self, timeout: Timeout, app: &mut A, outbox: &mut Outbox) {
        if self.phase != Phase::Running || timeout.height != self.height {
            return;
        }
        let current = timeout.round == self.round;
        match timeout.kind {
            // OnTimeoutPropose (lines 57-60).
            TimeoutKind::Propose if current && self.step == Step::Propose => {
                self.broadcast_vote(VoteKind::Prevote, None, outbox);
                self.step = Step::Prevote;
            }
            // OnTimeoutPrevote (lines 61-64).
            TimeoutKind::Prevote if current && self.step == Step::Prevote => {
                self.broadcast_vote(VoteKind::Precommit, None, outbox);
                self.step = Step::Precommit;
            }
            // OnTimeoutPrecommit (lines 65-67).
            TimeoutKind::Precommit if current => {
                let next = self.round.checked_add(1).filter(|next| *next <= ROUND_MAX);
                let next = next.expect("round overflow: timeouts cannot run for 2^32 rounds");
                self.start_round(next, app, outbox);
            }
            _ => return,
        }
        self.evaluate(app, outbox);
    }

    /// StartRound(round) (lines 11-21).
    fn start_round<A: Application>(&mut self, round: u32, app: &mut A, outbox: &mut Outbox) {
        debug_assert!(round >= self.round || !self.started || round == 0);
        self.round = round; // line 12
        self.step = Step::Propose; // line 13
        let proposer = self.set().proposer(self.height, round);
        if self.own_index == Some(proposer) {
            // lines 14-19: re-propose the valid value if there is one, else a new value.
            let (value, valid_round) = match self.valid {
                Some((value, valid_round)) => (value, Some(valid_round)),
                None => (app.propose_value(self.height, round), None),
            };
            let body = Body::Proposal {
                height: self.height,
                round,
                value,
                valid_round,
            };
            self.broadcast(body, outbox);
        } else {
            // line 21
            self.schedule(TimeoutKind::Propose, outbox);
        }
    }

    fn schedule(&mut self, kind: TimeoutKind, outbox: &mut Outbox) {
        let timeout = Timeout {
            kind,
            height: self.height,
            round: self.round,
        };
        let mut duration_ms = self.config.timeouts.duration_ms(kind, self.round);
        if kind == TimeoutKind::Propose && self.round == 0 {
            // Leader reputation: a round-0 proposer on probation (it missed its last turn)
            // gets a short trial, so that a validator still down costs little when its
            // demotion runs out. Only timing: any proposer function and any timeout are safe,
            // and later rounds keep the full, growing timeout (liveness).
            let proposer = self.set().proposer(self.height, 0);
            if self.set().is_on_probation(proposer) {
                duration_ms = (duration_ms / PROBATION_PROPOSE_TIMEOUT_DIVISOR).max(1);
            }
        }
        outbox.sends.push(Action::ScheduleTimeout {
            timeout,
            duration_ms,
        });
    }

    fn broadcast_vote(&mut self, kind: VoteKind, value: Option<BlockId>, outbox: &mut Outbox) {
        let body = Body::Vote {
            kind,
            height: self.height,
            round: self.round,
            value,
        };
        self.broadcast(body, outbox);
    }

    /// Signs and sends `body`, and delivers it to this validator itself. A node that is not in
    /// the set only follows: it signs nothing.
    fn broadcast(&mut self, body: Body, outbox: &mut Outbox) {
        let Some(own_index) = self.own_index else {
            return;
        };
        let set = self.set();
        let message = SignedMessage::sign(body, set.network_id(), &self.config.signing_key);
        let verified = VerifiedMessage::trusted(message, own_index, set.epoch());
        let recorded = self.votes.record(&verified);
        // The write-ahead rule guarantees this: a validator signs one message per slot.
        assert!(
            recorded == Recorded::New,
            "own message conflicts with one already signed: {recorded:?}"
        );
        if self.own_messages.len() >= OWN_MESSAGES_MAX {
            // Only re-sending needs old messages; safety rests on the persisted round/step.
            self.own_messages.remove(0);
        }
        self.own_messages.push(message);
        outbox.sends.push(Action::Broadcast(message));
    }

    /// Fires the rules of Algorithm 1 until none applies.
    fn evaluate<A: Application>(&mut self, app: &mut A, outbox: &mut Outbox) {
        for _ in 0..RULE_FIRINGS_PER_EVENT_MAX {
            if self.phase != Phase::Running {
                return;
            }
            let fired = self.rule_decide(app, outbox)
                || self.rule_round_skip(app, outbox)
                || self.rule_proposal(app, outbox)
                || self.rule_prevote_timeout(outbox)
                || self.rule_polka(app, outbox)
                || self.rule_polka_nil(outbox)
                || self.rule_precommit_timeout(outbox);
            if !fired {
                return;
            }
        }
        panic!("consensus rules fired {RULE_FIRINGS_PER_EVENT_MAX} times for one event: a bug");
    }

    /// Lines 49-54: upon ⟨PROPOSAL, h_p, r, v, ∗⟩ from proposer(h_p, r) AND 2f + 1
    /// ⟨PRECOMMIT, h_p, r, id(v)⟩ while decision_p[h_p] = nil, if valid(v): decide.
    fn rule_decide<A: Application>(&mut self, app: &mut A, outbox: &mut Outbox) -> bool {
        let quorum = self.set().quorum();
        let height = self.height;
        let mut found = None;
        'rounds: for (round, votes) in self.votes.rounds() {
            for (value, _) in votes.proposals() {
                // line 50: an invalid value is never decided, whatever the votes say.
                if votes.count(VoteKind::Precommit, &Some(value)) >= quorum
                    && app.is_valid(height, &value)
                {
                    found = Some((*round, value));
                    break 'rounds;
                }
            }
        }
        let Some((round, value)) = found else {
            return false;
        };
        let set = self.set();
        let votes = self.votes.round(round).expect("round has votes");
        let certificate = Certificate {
            epoch: set.epoch(),
            height: self.height,
            round,
            value,
            signatures: votes.precommit_signatures(&value, set.public_keys()),
        };
        let proposal = *votes
            .signed_proposal(&value)
            .expect("round has the proposal");
        debug_assert!(certificate.signatures.len() >= quorum);
        outbox.decision = Some(Decision {
            height: self.height,
            value,
            certificate,
            proposal,
        }); // line 51
            // lines 52-53: next height, reset lockedRound/Value, validRound/Value, message log.
        self.height += 1;
        self.started = false;
        self.round = 0;
        self.step = Step::Propose;
        self.locked = None;
        self.valid = None;
        self.own_messages.clear();
        self.polka_messages.clear();
        self.votes = HeightVotes::new(0);
        self.validator_set = None;
        self.own_index = None;
        self.phase = Phase::Waiting;
        // line 54 (StartRound(0)) runs when the host sends StartHeight for the next height.
        true
    }

    /// Lines 55-56: upon f + 1 ⟨∗, h_p, round, ∗, ∗⟩ with round > round_p do StartRound(round).
    fn rule_round_skip<A: Application>(&mut self, app: &mut A, outbox: &mut Outbox) -> bool {
        let threshold = self.set().skip_threshold();
        let target = self
            .votes
            .rounds()
            .rev()
            .take_while(|(round, _)| **round > self.round)
            .find(|(_, votes)| votes.sender_count() >= threshold)
            .map(|(round, _)| *round);
        match target {
            Some(round) => {
                self.start_round(round, app, outbox);
                true
            }
            None => false,
        }
    }

    /// Lines 22-27 and 28-33: the proposal of round_p while step_p = propose.
    fn rule_proposal<A: Application>(&mut self, app: &mut A, outbox: &mut Outbox) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let proposals: Vec<(BlockId, Option<u32>)> = match self.votes.round(self.round) {
            Some(votes) => votes.proposals().collect(),
            None => return false,
        };
        // An equivocating proposer may have sent several; the first one that triggers a rule
        // is taken, which is one of the executions the paper allows.
        let Some(vote) = proposals
            .into_iter()
            .find_map(|(value, valid_round)| self.proposal_prevote(app, value, valid_round))
        else {
            return false;
        };
        self.broadcast_vote(VoteKind::Prevote, vote, outbox);
        self.step = Step::Prevote; // lines 27, 33
        true
    }

    /// The prevote lines 22-33 send for proposal (value, valid_round) of round_p, or `None` if
    /// neither rule applies yet.
    fn proposal_prevote<A: Application>(
        &self,
        app: &mut A,
        value: BlockId,
        valid_round: Option<u32>,
    ) -> Option<Option<BlockId>> {
        match valid_round {
            // line 22: ⟨PROPOSAL, h_p, round_p, v, −1⟩
            None => {
                // line 23: valid(v) ∧ (lockedRound_p = −1 ∨ lockedValue_p = v)
                let unlocked_or_same = match self.locked {
                    None => true,
                    Some((locked_value, _)) => locked_value == value,
                };
                if app.is_valid(self.height, &value) && unlocked_or_same {
                    Some(Some(value)) // line 24
                } else {
                    Some(None) // line 26
                }
            }
            // line 28: ⟨PROPOSAL, h_p, round_p, v, vr⟩ AND 2f + 1 ⟨PREVOTE, h_p, vr, id(v)⟩
            // with vr ≥ 0 ∧ vr < round_p.
            Some(valid_round) => {
                if valid_round >= self.round {
                    return None;
                }
                let quorum = self.set().quorum();
                let polka = self
                    .votes
                    .round(valid_round)
                    .is_some_and(|votes| votes.count(VoteKind::Prevote, &Some(value)) >= quorum);
                if !polka {
                    return None;
                }
                // line 29: valid(v) ∧ (lockedRound_p ≤ vr ∨ lockedValue_p = v)
                let lock_allows = match self.locked {
                    None => true,
                    Some((locked_value, locked_round)) => {
                        locked_round <= valid_round || locked_value == value
                    }
                };
                if app.is_valid(self.height, &value) && lock_allows {
                    Some(Some(value)) // line 30
                } else {
                    Some(None) // line 32
                }
            }
        }
    }

    /// Lines 34-35: upon 2f + 1 ⟨PREVOTE, h_p, round_p, ∗⟩ while step_p = prevote for the first
    /// time, schedule OnTimeoutPrevote.
    fn rule_prevote_timeout(&mut self, outbox: &mut Outbox) -> bool {
        if self.step != Step::Prevote {
            return false;
        }
        let quorum = self.set().quorum();
        let round = self.round;
        let votes = self.votes.round_mut(round);
        if votes.prevote_timeout_scheduled || votes.total(VoteKind::Prevote) < quorum {
            return false;
        }
        votes.prevote_timeout_scheduled = true;
        self.schedule(TimeoutKind::Prevote, outbox);
        true
    }

    /// Lines 36-43: upon ⟨PROPOSAL, h_p, round_p, v, ∗⟩ from proposer AND 2f + 1 ⟨PREVOTE,
    /// h_p, round_p, id(v)⟩ while valid(v) ∧ step_p ≥ prevote for the first time.
    fn rule_polka<A: Application>(&mut self, app: &mut A, outbox: &mut Outbox) -> bool {
        if self.step < Step::Prevote {
            return false;
        }
        let quorum = self.set().quorum();
        let Some(votes) = self.votes.round(self.round) else {
            return false;
        };
        if votes.polka_handled {
            return false;
        }
        let height = self.height;
        let found = votes.proposals().find(|(value, _)| {
            votes.count(VoteKind::Prevote, &Some(*value)) >= quorum && app.is_valid(height, value)
        });
        let Some((value, _)) = found else {
            return false;
        };
        let round = self.round;
        self.votes.round_mut(round).polka_handled = true;
        if self.step == Step::Prevote {
            // lines 37-41
            self.locked = Some((value, round));
            self.broadcast_vote(VoteKind::Precommit, Some(value), outbox);
            self.step = Step::Precommit;
        }
        self.valid = Some((value, round)); // lines 42-43
        self.keep_polkas();
        true
    }

    /// Keeps the prevotes behind `locked` and `valid`, to be persisted with them.
    fn keep_polkas(&mut self) {
        let set = self
            .validator_set
            .as_ref()
            .expect("a running height has a set");
        let mut polkas = Vec::new();
        let mut justified = [self.locked, self.valid];
        if justified[0] == justified[1] {
            justified[1] = None;
        }
        for (value, round) in justified.into_iter().flatten() {
            if let Some(votes) = self.votes.round(round) {
                polkas.extend(votes.signed_votes(
                    VoteKind::Prevote,
                    &Some(value),
                    self.height,
                    round,
                    set.public_keys(),
                ));
            }
        }
        self.polka_messages = polkas;
    }

    /// Lines 44-46: upon 2f + 1 ⟨PREVOTE, h_p, round_p, nil⟩ while step_p = prevote.
    fn rule_polka_nil(&mut self, outbox: &mut Outbox) -> bool {
        if self.step != Step::Prevote {
            return false;
        }
        let quorum = self.set().quorum();
        let nil_votes = self
            .votes
            .round(self.round)
            .map_or(0, |votes| votes.count(VoteKind::Prevote, &None));
        if nil_votes < quorum {
            return false;
        }
        self.broadcast_vote(VoteKind::Precommit, None, outbox);
        self.step = Step::Precommit;
        true
    }

    /// Lines 47-48: upon 2f + 1 ⟨PRECOMMIT, h_p, round_p, ∗⟩ for the first time, schedule
    /// OnTimeoutPrecommit.
    fn rule_precommit_timeout(&mut self, outbox: &mut Outbox) -> bool {
        let quorum = self.set().quorum();
        let round = self.round;
        let votes = self.votes.round_mut(round);
        if votes.precommit_timeout_scheduled || votes.total(VoteKind::Precommit) < quorum {
            return false;
        }
        votes.precommit_timeout_scheduled = true;
        self.schedule(TimeoutKind::Precommit, outbox);
        true
    }
}

impl std::fmt::Debug for Tendermint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tendermint")
            .field("validator", &hex::encode(&self.public_key[..8]))
            .field("height", &self.height)
            .field("round", &self.round)
            .field("step", &self.step)
            .field("locked", &self.locked.map(|(v, r)| (short_hex(&v), r)))
            .field("valid", &self.valid.map(|(v, r)| (short_hex(&v), r)))
            .field("running", &(self.phase == Phase::Running))
            .finish()
    }
}
