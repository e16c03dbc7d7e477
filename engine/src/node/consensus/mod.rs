//! A node as one validator of a network: the consensus stage that replaces the single-node
//! block builder when the node is configured with a validator key and peers.
//!
//! ```text
//! sigverify --verified batches--> consensus stage --sealed blocks--> log stage
//!                                   |   ^
//!                     validator links (net::peers): proposals, votes, transactions, sync
//! ```
//!
//! The consensus stage is the single writer of the ledger. It keeps a pool of verified
//! transactions (its own clients' and those other validators pass on), runs the Tendermint
//! machine of [`crate::consensus`] and, for each decided block, executes it, appends it to the
//! log with its commit certificate, waits until it is durable, and only then starts the next
//! height. docs/PROTOCOL.md part 3 describes the protocol; the invariants are:
//!
//! - Validators vote on the proposal id ([`crate::block::proposal_id`]): the header before
//!   execution. Its previous-block hash covers the previous block's results and state root,
//!   so a validator whose state differs from the proposer's refuses the proposal: every
//!   validator checks every state root, one block later.
//! - A proposal is valid only if every record is well formed and correctly signed; signatures
//!   a validator already verified (its own clients' records, and records passed on by other
//!   validators, which go through its own signature stage) are not verified again.
//! - A decided block is executed and durable before the validator votes at the next height,
//!   and the machine's state is durable before any vote it allows is sent, so a restart
//!   never signs a second, different vote.
//! - A validator that lags (restart, partition) fetches decided blocks with their
//!   certificates from its peers, checks each certificate against the validator set and
//!   executes the block.

mod config;
mod host;
pub(crate) mod io;
mod pool;
mod runtime;
#[cfg(feature = "simulator")]
pub mod sim;
mod sync;

pub use config::ValidatorConfig;
#[cfg(feature = "simulator")]
use runtime::stage_parts;
pub(crate) use runtime::{consensus_stage, runtime};

/// The consensus state file and evidence file (kept with the node's other files in `log`).
use crate::log::consensus_state as state_file;

use crate::block::{self, BlockHeader};
use crate::consensus::wire::{self, PeerMessage, ProposalBody};
use crate::consensus::{
    Action, Application, BlockId, Certificate, Config as MachineConfig, ConsensusError, Decision,
    Event, Tendermint, Timeout, ValidatorSet,
};
use crate::ledger::Ledger;
use crate::log::{FileOps, Log, LogError};
use crate::mempool::PendingTx;
use crate::net::peers::PeerEvent;
use crate::node::checkpointer::{CheckpointPlan, CheckpointStore};
use crate::node::commit::commit_group;
use crate::node::seal::{self, ChainTip};
use crate::node::verify_signatures;
use crate::node::{
    serve_ledger_queries, ExecutorLimits, Recovered, SealedBlock, Shared, VerifiedBatch,
};
use crate::result::ResultCode;
use crate::tx::TxRecord;
use crossbeam::channel::Receiver;
use host::Host;
use io::{Clock, Links, SystemClock};
use pool::Pool;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tally_kernels::sigverify::Verifier;

/// Most transactions in a validator's block: a proposal body and a sync block must fit in
/// one frame ([`crate::net::frame::FRAME_BYTES_MAX`]). Part of the protocol: a proposal
/// with more is invalid at every validator.
pub const VALIDATOR_BLOCK_TX_MAX: usize = 8_192;
/// Most blocks sent in answer to one sync request; the lagging validator asks again.
pub const SYNC_BLOCKS_PER_REQUEST: u64 = 32;
/// Peer events (frames, link changes) waiting for the consensus stage; while full, the links
/// stop reading, so peers are pushed back by TCP.
pub const PEER_EVENTS_MAX: usize = 4_096;
/// Shortest gap between two sync requests of one validator.
const SYNC_REQUEST_GAP: Duration = Duration::from_millis(200);
/// How often the messages of the current height are sent again while it runs: lost
/// messages (a link that was down) come back this way, which the algorithm's liveness needs.
const REGOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// How often this node's clients' transactions that stay pending are passed on again: a
/// copy a peer dropped (past half its mempool) or lost with a broken link would otherwise
/// wait for this node's own turn to propose, which leader reputation may take away for a
/// long time. Only transactions already pending at the previous pass go again.
const REPASS_INTERVAL: Duration = Duration::from_secs(2);
/// Most transactions passed on again at once (whole batches).
const REPASS_TX_MAX: usize = VALIDATOR_BLOCK_TX_MAX;
/// Most ids of decided transactions remembered so that a copy arriving late (passed on by a
/// peer, verified after the block that held it) is not proposed again. The pool holds an id
/// until the final block time passes its record's `valid_until` (one validity window of
/// decisions); this cap is a safety net past which the ids nearest their expiry are
/// forgotten early (`tally_consensus_decided_ids_capped_total`, and a warning): such a late
/// copy may then be proposed again, and the ledger refuses it as a duplicate.
const DECIDED_IDS_MAX: usize = 1 << 20;
/// Least gap between two warnings that the decided-id cap forgot ids early.
const DECIDED_CAP_WARNING_GAP: Duration = Duration::from_secs(10);
/// How long after a decision a peer's messages for that height count as late copies rather
/// than a sign that the peer missed the decision; also the least gap between two helps.
const LAGGING_PEER_GAP: Duration = Duration::from_millis(500);
/// Proposal bodies kept for the current and next height (each up to a frame); more are
/// kept only when a signed proposal or a decision names them.
const PROPOSALS_MAX: usize = 64;
/// How long a stopping validator keeps running consensus for its clients' transactions.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the consensus stage stopped the node.
type Fatal = String;

/// The consensus stage's state: the machine, the host (proposals, pool, links), the ledger
/// and the storage it commits to. Generic over the clock and the links so that the
/// simulator runs this very code (see [`io`]).
pub(crate) struct Driver<C: Clock, L: Links> {
    shared: Arc<Shared>,
    limits: ExecutorLimits,
    ledger: Ledger,
    machine: Tendermint,
    state_file: state_file::StateFile,
    host: Host<C, L>,
    config: ValidatorConfig,
    log: Arc<RwLock<Log>>,
    data_dir: PathBuf,
    file_ops: Arc<dyn FileOps>,
    /// Where commits put checkpoints and archived segments: written at once (the
    /// simulator) or by a writer thread (`runtime`).
    plan: CheckpointPlan,
    timers: BinaryHeap<Reverse<(Instant, u64, TimeoutKey)>>,
    timer_sequence: u64,
    /// When the last block was committed (the next height starts from then).
    committed_at: Instant,
    height_started_at: Option<Instant>,
    /// A decision whose body this validator does not have: fetched by sync.
    undelivered: Option<Decision>,
    last_sync_request: Option<Instant>,
    /// The first height the last sync request asked for.
    last_sync_from: u64,
    last_regossip: Instant,
    /// When this node's pending client transactions were last passed on again, and their
    /// ids then (`REPASS_INTERVAL`).
    last_repass: Instant,
    repass_candidates: std::collections::HashSet<u128>,
    /// Proposal messages whose body had not arrived, by block id, fed again when it does.
    waiting_for_body: HashMap<BlockId, crate::consensus::VerifiedMessage>,
    /// When each lagging peer was last sent decided blocks.
    helped: HashMap<[u8; 32], Instant>,
    /// The log's damaged last block was cut at start and the machine, restored beyond it,
    /// waits until block sync brings the chain up to it (see [`Driver::repairing`]).
    repairing: bool,
    /// When the last warning that the decided-id cap forgot ids early was logged, and the
    /// count of ids so forgotten then (`DECIDED_CAP_WARNING_GAP`).
    last_cap_warning: Option<(Instant, u64)>,
    /// A bug switched on by the simulator's tests, to show that the simulator catches it.
    #[cfg(feature = "simulator")]
    pub(crate) injected_bug: Option<InjectedBug>,
}

/// Bugs the simulator's tests switch on in the production driver (never in a node's
/// build), each of which the simulator must catch.
#[cfg(feature = "simulator")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedBug {
    /// A proposal is taken without checking its header against the chain: its previous
    /// block hash, which covers the previous block's results and state root.
    SkipProposalHeaderCheck,
    /// The machine's state is written after the votes it allows are sent, not before.
    VoteBeforeStateDurable,
}

/// What a validator's consensus stage holds besides its clock and links, built at start by
/// [`runtime::stage_parts`]: its configuration, the set of the next height, the machine
/// and its state file, the log, and the node's verifier.
pub(crate) struct StageParts {
    pub(crate) config: ValidatorConfig,
    pub(crate) set: ValidatorSet,
    pub(crate) machine: Tendermint,
    pub(crate) state_file: state_file::StateFile,
    pub(crate) log: Arc<RwLock<Log>>,
    pub(crate) data_dir: PathBuf,
    pub(crate) file_ops: Arc<dyn FileOps>,
    pub(crate) verifier: Arc<Verifier>,
}

/// What a driver is built from: a node's shared state and recovered ledger, the stage's
/// parts, and its seams.
pub(crate) struct DriverParts<C, L> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) limits: ExecutorLimits,
    pub(crate) recovered: Recovered,
    pub(crate) stage: StageParts,
    pub(crate) verify_pool: Option<rayon::ThreadPool>,
    pub(crate) clock: C,
    pub(crate) links: L,
}

/// A timeout in the timer heap (ordered by deadline, then insertion).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TimeoutKey {
    height: u64,
    round: u32,
    kind: u8,
}

impl TimeoutKey {
    fn from(timeout: Timeout) -> TimeoutKey {
        use crate::consensus::TimeoutKind::*;
        TimeoutKey {
            height: timeout.height,
            round: timeout.round,
            kind: match timeout.kind {
                Propose => 0,
                Prevote => 1,
                Precommit => 2,
            },
        }
    }
    fn timeout(self) -> Timeout {
        use crate::consensus::TimeoutKind::*;
        Timeout {
            height: self.height,
            round: self.round,
            kind: match self.kind {
                0 => Propose,
                1 => Prevote,
                _ => Precommit,
            },
        }
    }
}

impl<C: Clock, L: Links> Driver<C, L> {
    pub(crate) fn new(parts: DriverParts<C, L>) -> Driver<C, L> {
        let DriverParts {
            shared,
            limits,
            recovered,
            stage,
            verify_pool,
            clock,
            links,
        } = parts;
        let StageParts {
            config,
            set,
            machine,
            state_file,
            log,
            data_dir,
            file_ops,
            verifier,
        } = stage;
        let own_key: [u8; 32] = ed25519_zebra::VerificationKey::from(&config.signing_key).into();
        let own_index = set.index_of(&own_key);
        let pool = Pool::new(config.pool_tx_max, DECIDED_IDS_MAX);
        let now = clock.now();
        let host = Host {
            network_id: shared.network_id,
            set,
            own_index,
            tip: recovered.tip(),
            block_tx_max: limits.block_tx_max.min(VALIDATOR_BLOCK_TX_MAX),
            pool,
            proposals: HashMap::new(),
            valid_cache: HashMap::new(),
            verifier,
            verify_pool,
            clock,
            links,
            #[cfg(feature = "simulator")]
            injected_bug: None,
        };
        let plan = CheckpointPlan::Inline(CheckpointStore {
            dir: data_dir.join(crate::node::CHECKPOINTS_DIR),
            file_ops: Arc::clone(&file_ops),
            archive_dir: limits.archive_dir.clone(),
            previous_height: None,
        });
        // Only a repair restores the machine beyond the height after the log's tip.
        let repairing = machine.height() > host.tip.height + 1;
        let metrics = &shared.metrics;
        metrics.validator_epoch.set(host.set.epoch() as i64);
        metrics.validators.set(host.set.len() as i64);
        metrics
            .proposers_demoted
            .set(host.set.demoted_count() as i64);
        Driver {
            shared,
            limits,
            ledger: recovered.ledger,
            machine,
            state_file,
            host,
            config,
            log,
            data_dir,
            file_ops,
            plan,
            timers: BinaryHeap::new(),
            timer_sequence: 0,
            committed_at: now,
            height_started_at: None,
            undelivered: None,
            last_sync_request: None,
            last_sync_from: 0,
            last_regossip: now,
            last_repass: now,
            repass_candidates: std::collections::HashSet::new(),
            waiting_for_body: HashMap::new(),
            helped: HashMap::new(),
            repairing,
            last_cap_warning: None,
            #[cfg(feature = "simulator")]
            injected_bug: None,
        }
    }

    /// Publishes the pool's decided-id count and the ids its cap forgot early since
    /// `capped_before`, with a warning at most every `DECIDED_CAP_WARNING_GAP`.
    fn note_decided_ids(&mut self, capped_before: u64) {
        let pool = &self.host.pool;
        let metrics = &self.shared.metrics;
        metrics.decided_ids.set(pool.decided_count() as i64);
        let capped = pool.decided_capped;
        if capped == capped_before {
            return;
        }
        metrics.decided_ids_capped.add(capped - capped_before);
        let now = self.now();
        let (warned_at, warned_count) = self.last_cap_warning.unwrap_or((now, 0));
        if self.last_cap_warning.is_none()
            || now.saturating_duration_since(warned_at) >= DECIDED_CAP_WARNING_GAP
        {
            tracing::warn!(
                cap = DECIDED_IDS_MAX,
                forgotten_early = capped - warned_count,
                "more decided transactions within one validity window than the pool remembers: ids forgotten before their records expired (a late copy of one may be proposed again, and the ledger refuses it as a duplicate)"
            );
            self.last_cap_warning = Some((now, capped));
        }
    }

    fn now(&self) -> Instant {
        self.host.clock.now()
    }

    /// Time since `then` by this stage's clock.
    fn since(&self, then: Instant) -> Duration {
        self.now().saturating_duration_since(then)
    }

    /// Switches a bug on (the simulator's tests).
    #[cfg(feature = "simulator")]
    pub(crate) fn inject_bug(&mut self, bug: InjectedBug) {
        self.injected_bug = Some(bug);
        self.host.injected_bug = Some(bug);
    }

    /// What the stage does between events, in the order its loop does it: due timeouts,
    /// the periodic re-gossip, and the start of the next height when it is due (the
    /// simulator's step; [`Self::run`] interleaves the same calls with its waits).
    #[cfg(feature = "simulator")]
    pub(crate) fn tick(&mut self) -> Result<(), Fatal> {
        self.fire_timers()?;
        self.regossip();
        self.maybe_start_height()
    }

    /// Whether the pool takes more verified transactions now.
    #[cfg(feature = "simulator")]
    pub(crate) fn has_room(&self) -> bool {
        self.host.pool.has_room()
    }

    /// When the stage next has something to do without an event.
    pub(crate) fn next_wake(&self) -> Instant {
        let mut wake = self.last_regossip + REGOSSIP_INTERVAL;
        if let Some(Reverse((deadline, _, _))) = self.timers.peek() {
            wake = wake.min(*deadline);
        }
        if !self.machine.is_running() {
            wake = wake.min(self.committed_at + self.config.empty_block_interval);
        }
        wake.max(self.now() + Duration::from_micros(100))
    }

    /// This node's clients' verified transactions: into the pool and on to the peers.
    pub(crate) fn add_local(&mut self, batch: VerifiedBatch) {
        self.shared
            .metrics
            .stage
            .verified_wait
            .local()
            .observe_duration_n(self.since(batch.verified_at), batch.txs.len() as u64);
        let mut records = Vec::with_capacity(batch.txs.len());
        let mut locals = Vec::with_capacity(batch.txs.len());
        let mut gossiped = Vec::new();
        let final_time_ms = self.ledger.time_ms();
        for tx in batch.txs {
            let id = tx.record.id();
            if tx.reply.same_channel(&self.shared.gossip_reply) {
                gossiped.push(tx.record);
                continue;
            }
            if tx.record.valid_until() < final_time_ms {
                // no later block can execute it (ingress checks the same against the block
                // time it last saw, which may lag)
                tx.acknowledge(ResultCode::Expired, None);
                continue;
            }
            if self.host.pool.pending.contains_key(&id)
                || self.host.pool.local.contains_key(&id)
                || self.host.pool.is_decided(id)
                || self.ledger.is_accepted(id)
            {
                tx.acknowledge(ResultCode::DuplicateId, None);
                continue;
            }
            records.push(tx.record);
            locals.push(tx);
        }
        let taken = self.host.pool.add(records, final_time_ms);
        let taken_ids: std::collections::HashSet<u128> = taken.iter().map(TxRecord::id).collect();
        for tx in locals {
            let id = tx.record.id();
            if taken_ids.contains(&id) && !self.host.pool.local.contains_key(&id) {
                self.host.pool.local.insert(id, tx);
            } else {
                tx.acknowledge(ResultCode::DuplicateId, None); // twice in one batch
            }
        }
        if !taken.is_empty() {
            self.host
                .links
                .broadcast_bulk(wire::KIND_TRANSACTIONS, wire::encode_transactions(&taken));
        }
        // Passed on by other validators and verified here: pooled, not passed on again.
        if !gossiped.is_empty() {
            self.host.pool.add(gossiped, final_time_ms);
        }
    }

    /// Starts the next height once the last is durable: at once on a validator that does
    /// not propose first; on the first proposer when it has transactions or the empty-block
    /// interval has passed.
    fn maybe_start_height(&mut self) -> Result<(), Fatal> {
        if self.machine.is_running() || self.machine.height() != self.host.tip.height + 1 {
            return Ok(());
        }
        let height = self.machine.height();
        let first_proposer = self.host.set.proposer(height, 0);
        let proposes = self.host.own_index == Some(first_proposer);
        // On probation (leader reputation) the others wait only a short trial for this
        // proposal: it goes at once, empty if need be.
        let due = !proposes
            || self.host.set.is_on_probation(first_proposer)
            || !self.host.pool.pending.is_empty()
            || self.since(self.committed_at) >= self.config.empty_block_interval;
        if !due {
            return Ok(());
        }
        self.height_started_at = Some(self.now());
        let event = Event::StartHeight {
            height,
            validator_set: self.host.set.clone(),
        };
        self.handle(event)
    }

    /// Feeds one event to the machine and carries out its actions.
    fn handle(&mut self, event: Event) -> Result<(), Fatal> {
        let mut actions = Vec::new();
        let result = self.machine.handle(event, &mut self.host, &mut actions);
        self.apply(actions)?;
        match result {
            Ok(()) => {}
            Err(ConsensusError::FutureHeight { .. }) => self.request_sync(None),
            Err(ConsensusError::Equivocation {
                validator,
                height,
                round,
            }) => {
                tracing::warn!(
                    validator,
                    height,
                    round,
                    "a validator equivocated; evidence kept"
                );
            }
            Err(error) => tracing::debug!(%error, "consensus event refused"),
        }
        for evidence in self.machine.take_evidence() {
            state_file::append_evidence(&self.data_dir, &evidence, &*self.file_ops)
                .map_err(|error| format!("keeping equivocation evidence failed: {error}"))?;
        }
        let metrics = &self.shared.metrics;
        metrics.consensus_height.set(self.machine.height() as i64);
        metrics.consensus_round.set(i64::from(self.machine.round()));
        Ok(())
    }

    fn apply(&mut self, actions: Vec<Action>) -> Result<(), Fatal> {
        #[cfg(feature = "simulator")]
        let mut late_state = None;
        for action in actions {
            match action {
                Action::Decide(decision) => self.on_decision(decision)?,
                Action::Persist(state) => {
                    #[cfg(feature = "simulator")]
                    if self.injected_bug == Some(InjectedBug::VoteBeforeStateDurable) {
                        late_state = Some(state);
                        continue;
                    }
                    self.state_file.write(&state).map_err(|error| {
                        format!("writing the consensus state failed (never retried): {error}")
                    })?
                }
                Action::Broadcast(message) => {
                    self.host
                        .links
                        .broadcast(wire::KIND_CONSENSUS, &message.encode());
                }
                Action::ScheduleTimeout {
                    timeout,
                    duration_ms,
                } => {
                    self.timer_sequence += 1;
                    self.timers.push(Reverse((
                        self.now() + Duration::from_millis(duration_ms),
                        self.timer_sequence,
                        TimeoutKey::from(timeout),
                    )));
                }
            }
        }
        #[cfg(feature = "simulator")]
        if let Some(state) = late_state {
            self.state_file.write(&state).map_err(|error| {
                format!("writing the consensus state failed (never retried): {error}")
            })?;
        }
        Ok(())
    }

    fn fire_timers(&mut self) -> Result<(), Fatal> {
        let now = self.now();
        while let Some(Reverse((deadline, _, key))) = self.timers.peek().copied() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            if key.height == self.machine.height() {
                self.handle(Event::Timeout(key.timeout()))?;
            }
        }
        Ok(())
    }

    /// Sends the current height's messages (and own proposal body) again, now and then.
    fn regossip(&mut self) {
        if self.since(self.last_regossip) < REGOSSIP_INTERVAL {
            return;
        }
        self.last_regossip = self.now();
        self.repass_pending();
        if self.repairing() {
            self.request_sync(None);
            return;
        }
        // A decision whose body never came: ask again (the machine waits meanwhile).
        if self.undelivered.is_some() {
            self.request_sync(None);
        }
        if !self.machine.is_running() {
            return;
        }
        self.send_height_state(None);
    }

    /// Whether the log's damaged last block was cut at start (`Log::open_repairing`) and the
    /// machine restored beyond it. Until block sync has brought back the missing blocks,
    /// each checked against the validator set, the machine gets no event, so it signs
    /// nothing for a height it voted at before.
    fn repairing(&self) -> bool {
        self.repairing
    }

    /// Passes on again, in whole batches, this node's clients' transactions that were
    /// already pending at the previous pass (`REPASS_INTERVAL`), so that whoever proposes
    /// holds them. Receivers take a transaction once (its id), so a copy they hold costs
    /// them a signature check and nothing else; in a healthy network nothing stays pending
    /// that long and nothing is sent.
    fn repass_pending(&mut self) {
        if self.since(self.last_repass) < REPASS_INTERVAL {
            return;
        }
        self.last_repass = self.now();
        let candidates = std::mem::take(&mut self.repass_candidates);
        let pool = &self.host.pool;
        let mut sent = 0;
        if !candidates.is_empty() {
            for chunk in &pool.chunks {
                if !chunk.iter().any(|record| candidates.contains(&record.id())) {
                    continue;
                }
                if sent + chunk.len() > REPASS_TX_MAX {
                    break;
                }
                sent += chunk.len();
                self.host
                    .links
                    .broadcast_bulk(wire::KIND_TRANSACTIONS, wire::encode_transactions(chunk));
            }
        }
        if sent > 0 {
            tracing::debug!(
                transactions = sent,
                "pending client transactions passed on again"
            );
        }
        self.repass_candidates = pool.local.keys().copied().collect();
    }

    pub(crate) fn on_peer_event(&mut self, event: PeerEvent) -> Result<(), Fatal> {
        match event {
            PeerEvent::Connected { peer } => {
                self.shared
                    .metrics
                    .peers_connected
                    .set(self.host.links.connected().len() as i64);
                // A peer that was away may be behind or ahead: offer what this height has,
                // and ask for blocks this node may lack.
                self.send_height_state(Some(&peer));
                let from = (self.host.tip.height + 1).to_le_bytes();
                let _ = self.host.links.send(&peer, wire::KIND_SYNC_REQUEST, &from);
                Ok(())
            }
            PeerEvent::Disconnected { peer, reason } => {
                tracing::info!(peer = %hex::encode(&peer[..8]), %reason, "validator link down");
                self.shared
                    .metrics
                    .peers_connected
                    .set(self.host.links.connected().len() as i64);
                Ok(())
            }
            PeerEvent::Frame {
                peer,
                kind,
                payload,
            } => match wire::decode(kind, &payload) {
                Ok(message) => self.on_peer_message(peer, message),
                Err(error) => {
                    self.shared.metrics.frames_rejected.inc();
                    tracing::warn!(peer = %hex::encode(&peer[..8]), %error, "refusing a validator message");
                    Ok(())
                }
            },
        }
    }

    fn on_peer_message(&mut self, peer: [u8; 32], message: PeerMessage) -> Result<(), Fatal> {
        match message {
            PeerMessage::Consensus(message) => {
                let message_height = message.body().height();
                if self.repairing() {
                    // The machine waits ahead of the chain for the cut block: nothing reaches
                    // it until sync brings that block back.
                    self.request_sync(Some(&peer));
                    return Ok(());
                }
                if message_height <= self.host.tip.height {
                    // The peer (authenticated by its link) is still at a decided height.
                    self.help_lagging_peer(&peer, message_height);
                    return Ok(());
                }
                if message_height > self.host.tip.height + 1 && self.host.own_index.is_none() {
                    // Outside the set this node signs nothing, so no peer learns from its
                    // messages that it lags: it asks when a later height shows up.
                    self.request_sync(Some(&peer));
                }
                let schedule = self.ledger.validator_schedule();
                if schedule.epoch_of(message_height) != self.host.set.epoch() {
                    // A height of the next epoch, whose set this node learns when it has
                    // committed the current epoch's last block: the peer sends it again.
                    // Beyond the next height it also shows that this node lags (a validator
                    // back from a cut-off, while the others went on past an epoch end): it
                    // asks for the blocks, or it would wait for peers to notice it lags.
                    if message_height > self.host.tip.height + 1 {
                        self.request_sync(Some(&peer));
                    }
                    return Ok(());
                }
                let verified = match message.verify(&self.host.set) {
                    Ok(verified) => verified,
                    Err(error) => {
                        self.shared.metrics.frames_rejected.inc();
                        tracing::warn!(peer = %hex::encode(&peer[..8]), %error, "refusing a consensus message");
                        return Ok(());
                    }
                };
                if let crate::consensus::Body::Proposal { value, .. } = *verified.body() {
                    if !self.host.proposals.contains_key(&value) {
                        self.waiting_for_body.insert(value, verified);
                    }
                }
                self.handle(Event::Message(verified))
            }
            PeerMessage::Proposal(body) => {
                let height = body.header.height();
                if height <= self.host.tip.height || height > self.host.tip.height + 2 {
                    return Ok(());
                }
                let id = body.id();
                if self.host.proposals.len() >= PROPOSALS_MAX
                    && !self.host.proposals.contains_key(&id)
                    && !self.waiting_for_body.contains_key(&id)
                    && self.undelivered.as_ref().is_none_or(|d| d.value != id)
                {
                    // A faulty validator sending bodies nobody proposed: keep memory bounded.
                    self.shared.metrics.frames_rejected.inc();
                    return Ok(());
                }
                self.host.proposals.entry(id).or_insert(body);
                if let Some(decision) = self.undelivered.take() {
                    if decision.value == id {
                        return self.on_decision(decision);
                    }
                    self.undelivered = Some(decision);
                }
                if let Some(message) = self.waiting_for_body.remove(&id) {
                    self.handle(Event::Message(message))?;
                }
                Ok(())
            }
            PeerMessage::Transactions(records) => {
                // Verified by the sender; verified here again, in this node's own signature
                // stage, before they count as verified. The peer's reply channel is closed:
                // a peer's transaction is answered to its own client by its own node.
                self.shared.push_gossip(records);
                Ok(())
            }
            PeerMessage::SyncRequest { from_height } => {
                self.serve_sync(&peer, from_height);
                Ok(())
            }
            PeerMessage::SyncBlock(entry) => self.on_sync_block(&peer, &entry),
        }
    }

    fn on_decision(&mut self, decision: Decision) -> Result<(), Fatal> {
        let Some(body) = self.host.proposals.get(&decision.value).cloned() else {
            tracing::info!(
                height = decision.height,
                "decided a block whose body has not arrived; fetching it"
            );
            self.undelivered = Some(decision);
            self.request_sync(None);
            return Ok(());
        };
        if let Some(started) = self.height_started_at.take() {
            self.shared
                .metrics
                .stage
                .consensus
                .observe_duration(self.since(started));
        }
        self.commit(body, decision.certificate, None)
    }

    /// Executes a decided block (decided here, or final by a certificate checked by sync),
    /// appends it with its certificate and waits until it is durable; this node's clients'
    /// transactions in it are answered by the log stage. A decided block that does not extend
    /// this validator's chain means its state diverged from the quorum's: the node stops.
    fn commit(
        &mut self,
        body: ProposalBody,
        certificate: Certificate,
        claimed: Option<&BlockHeader>,
    ) -> Result<(), Fatal> {
        let execution_started = self.now();
        let tip = self.host.tip;
        if let Err(error) = seal::check_header(
            &tip,
            self.host.network_id,
            &body.header,
            body.records.len(),
            VALIDATOR_BLOCK_TX_MAX,
        ) {
            return Err(format!(
                "block {}, final by its certificate, does not extend this validator's chain ({error}): this validator's state diverged from the network's; stop it and restore its data directory from a healthy validator",
                tip.height + 1
            ));
        }
        let sealed = seal::seal(&mut self.ledger, &tip, &body.header, &body.records);
        if let Some(claimed) = claimed {
            if *claimed != sealed.header {
                tracing::error!(
                    height = tip.height + 1,
                    "a peer's copy of a final block has other results or another state root than this validator computed: one of the two diverged"
                );
            }
        }
        let entry = sealed.prepared_entry(&body.records, Some(&certificate.encode()));
        let new_tip = sealed.tip();
        let height = new_tip.height;
        let checkpoint = self.limits.checkpoint_after(&self.ledger, &new_tip, &entry);
        let events = crate::events::block_events(&self.ledger, &body.records, &sealed.results);
        let stamp = crate::events::block_stamp(&self.ledger);
        self.shared.metrics.business.count_block(
            &self.ledger,
            &body.records,
            &sealed.results,
            &events,
        );
        let results = sealed.results;
        let capped_before = self.host.pool.decided_capped;
        let (txs, local_results) =
            self.host
                .pool
                .remove_decided(&body.records, &results, self.ledger.time_ms());
        self.note_decided_ids(capped_before);
        self.shared
            .counters
            .executed
            .fetch_add(body.records.len() as u64, Ordering::Relaxed);
        self.shared
            .counters
            .block_time_ms
            .fetch_max(self.ledger.time_ms(), Ordering::Release);
        let metrics = &self.shared.metrics;
        metrics
            .stage
            .execution
            .observe_duration(self.since(execution_started));
        metrics.batch.block.observe(body.records.len() as u64);
        let mut group = vec![SealedBlock {
            height,
            entry,
            txs,
            results: local_results,
            checkpoint,
            revoked: self.ledger.block_revocations().to_vec(),
            events,
            stamp,
            tax_days: self.ledger.last_block_finished_tax_days().cloned(),
            index_keys: body.records.iter().map(Into::into).collect(),
            access_changes: self.ledger.block_access_changes().to_vec(),
            sealed_at: self.now(),
        }];
        commit_group(&self.shared, &self.log, &mut self.plan, &mut group)?;
        self.host.tip = new_tip;
        self.host
            .proposals
            .retain(|_, b| b.header.height() > height);
        self.host.valid_cache.clear();
        self.waiting_for_body.clear();
        self.committed_at = self.now();
        self.follow_schedule();
        serve_ledger_queries(&self.shared, &self.ledger, 64);
        Ok(())
    }

    /// After every block: the set for the next height, with the validators the leader
    /// reputation leaves out of round-0 turns (the proposer of each round follows from it);
    /// after a block that ended an epoch, the set the authorities voted in takes over.
    fn follow_schedule(&mut self) {
        let set = self.ledger.validator_schedule().current();
        if set.epoch() == self.host.set.epoch() {
            if (0..set.len()).any(|index| {
                set.is_demoted(index) != self.host.set.is_demoted(index)
                    || set.is_on_probation(index) != self.host.set.is_on_probation(index)
            }) {
                self.host.set = set.clone();
                self.shared
                    .metrics
                    .proposers_demoted
                    .set(set.demoted_count() as i64);
            }
            return;
        }
        let own_key: [u8; 32] =
            ed25519_zebra::VerificationKey::from(&self.config.signing_key).into();
        let own_index = set.index_of(&own_key);
        tracing::info!(
            epoch = set.epoch(),
            validators = set.len(),
            member = own_index.is_some(),
            "a new validator epoch begins"
        );
        for key in set.public_keys().iter().filter(|key| **key != own_key) {
            if !self.config.peers.iter().any(|peer| peer.public_key == *key) {
                tracing::warn!(
                    validator = %hex::encode(key),
                    epoch = set.epoch(),
                    "a validator of the new epoch has no address among this node's peers: add it to [validator] peers"
                );
            }
        }
        self.host.set = set.clone();
        self.host.own_index = own_index;
        self.shared.metrics.validator_epoch.set(set.epoch() as i64);
        self.shared.metrics.validators.set(set.len() as i64);
        self.shared
            .metrics
            .proposers_demoted
            .set(set.demoted_count() as i64);
    }
}
