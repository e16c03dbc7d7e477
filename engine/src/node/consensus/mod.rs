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
mod pool;
mod runtime;
mod sync;

pub use config::ValidatorConfig;
pub(crate) use runtime::{runtime, ValidatorRuntime};

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
use crate::net::peers::{PeerEvent, PeerLinks};
use crate::node::seal::{self, ChainTip};
use crate::node::verify_signatures;
use crate::node::{
    now_ms, serve_ledger_queries, ExecutorLimits, Recovered, SealedBlock, Shared, VerifiedBatch,
};
use crate::result::ResultCode;
use crate::tx::TxRecord;
use crossbeam::channel::{bounded, Receiver, Sender};
use host::Host;
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
/// Ids of recently decided transactions remembered, so that a copy arriving late (passed on
/// by a peer, verified after the block that held it) is not proposed again.
const DECIDED_IDS_MAX: usize = 1 << 20;
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

struct Driver<'a> {
    shared: &'a Shared,
    limits: &'a ExecutorLimits,
    ledger: Ledger,
    machine: Tendermint,
    state_file: state_file::StateFile,
    host: Host,
    config: ValidatorConfig,
    peer_events: Receiver<PeerEvent>,
    log: Arc<RwLock<Log>>,
    data_dir: PathBuf,
    file_ops: Arc<dyn FileOps>,
    sealed: &'a Sender<SealedBlock>,
    durable: (Sender<u64>, Receiver<u64>),
    timers: BinaryHeap<Reverse<(Instant, u64, TimeoutKey)>>,
    timer_sequence: u64,
    /// When the last block was committed (the next height starts from then).
    committed_at: Instant,
    height_started_at: Option<Instant>,
    /// A decision whose body this validator does not have: fetched by sync.
    undelivered: Option<Decision>,
    last_sync_request: Option<Instant>,
    last_regossip: Instant,
    /// Proposal messages whose body had not arrived, by block id, fed again when it does.
    waiting_for_body: HashMap<BlockId, crate::consensus::VerifiedMessage>,
    /// When each lagging peer was last sent decided blocks.
    helped: HashMap<[u8; 32], Instant>,
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

/// The consensus stage: runs until the signature stage ends (node stopping) and this node's
/// clients' transactions are decided (or [`SHUTDOWN_GRACE`] passed), or a fatal error.
pub(crate) fn consensus_stage(
    shared: &Shared,
    recovered: Recovered,
    limits: &ExecutorLimits,
    runtime: ValidatorRuntime,
    verified: &Receiver<VerifiedBatch>,
    sealed: &Sender<SealedBlock>,
) -> Ledger {
    let ValidatorRuntime {
        config,
        set,
        links,
        peer_events,
        verifier,
        machine,
        state_file,
        log,
        data_dir,
        file_ops,
    } = runtime;
    let own_key: [u8; 32] = ed25519_zebra::VerificationKey::from(&config.signing_key).into();
    let own_index = set.index_of(&own_key);
    let pool = Pool {
        chunks: VecDeque::new(),
        pending: HashMap::new(),
        local: HashMap::new(),
        max: config.pool_tx_max,
        decided: std::collections::HashSet::new(),
        decided_order: VecDeque::new(),
    };
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
        verify_pool: rayon::ThreadPoolBuilder::new()
            .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name(|index| format!("tally-proposal-verify-{index}"))
            .build()
            .map_err(|error| tracing::warn!(%error, "proposals are verified on the shared pool"))
            .ok(),
        links,
    };
    let mut driver = Driver {
        shared,
        limits,
        ledger: recovered.ledger,
        machine,
        state_file,
        host,
        config,
        peer_events,
        log,
        data_dir,
        file_ops,
        sealed,
        durable: bounded(1),
        timers: BinaryHeap::new(),
        timer_sequence: 0,
        committed_at: Instant::now(),
        height_started_at: None,
        undelivered: None,
        last_sync_request: None,
        last_regossip: Instant::now(),
        waiting_for_body: HashMap::new(),
        helped: HashMap::new(),
    };
    let metrics = &driver.shared.metrics;
    metrics.set_peer_stats(driver.host.links.stats_handle());
    metrics.validator_epoch.set(driver.host.set.epoch() as i64);
    metrics.validators.set(driver.host.set.len() as i64);
    if let Err(reason) = driver.run(verified) {
        shared.set_fatal(reason);
    }
    driver.ledger
}

impl Driver<'_> {
    fn run(&mut self, verified: &Receiver<VerifiedBatch>) -> Result<(), Fatal> {
        let never = crossbeam::channel::never();
        let mut verified_open = true;
        let mut stop_deadline: Option<Instant> = None;
        loop {
            if !verified_open {
                let deadline =
                    *stop_deadline.get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE);
                if self.host.pool.local.is_empty() || Instant::now() >= deadline {
                    if !self.host.pool.local.is_empty() {
                        tracing::warn!(
                            transactions = self.host.pool.local.len(),
                            "stopping with client transactions not yet decided: clients must query their status"
                        );
                    }
                    return Ok(());
                }
            }
            self.maybe_start_height()?;
            let wait = self.next_wake().saturating_duration_since(Instant::now());
            let verified_now = if verified_open && self.host.pool.has_room() {
                verified
            } else {
                &never
            };
            crossbeam::select! {
                recv(verified_now) -> batch => match batch {
                    Ok(batch) => {
                        self.add_local(batch);
                        // What is verified now goes into the next block (a height takes
                        // milliseconds, batches come every few), but only what is queued
                        // now: under a burst, batches keep coming, and consensus must run.
                        for _ in 0..verified.len() {
                            if !self.host.pool.has_room() {
                                break;
                            }
                            match verified.try_recv() {
                                Ok(batch) => self.add_local(batch),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(_) => verified_open = false,
                },
                recv(self.peer_events) -> event => {
                    if let Ok(event) = event {
                        self.on_peer_event(event)?;
                    }
                }
                recv(self.shared.ledger_queries.1) -> query => {
                    if let Ok(query) = query {
                        query(&self.ledger);
                    }
                }
                default(wait) => {}
            }
            self.fire_timers()?;
            self.regossip();
            self.shared
                .metrics
                .verified_queue_batches
                .set(verified.len() as i64);
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.last_regossip + REGOSSIP_INTERVAL;
        if let Some(Reverse((deadline, _, _))) = self.timers.peek() {
            wake = wake.min(*deadline);
        }
        if !self.machine.is_running() {
            wake = wake.min(self.committed_at + self.config.empty_block_interval);
        }
        wake.max(Instant::now() + Duration::from_micros(100))
    }

    /// This node's clients' verified transactions: into the pool and on to the peers.
    fn add_local(&mut self, batch: VerifiedBatch) {
        let mut records = Vec::with_capacity(batch.txs.len());
        let mut locals = Vec::with_capacity(batch.txs.len());
        let mut gossiped = Vec::new();
        for tx in batch.txs {
            let id = tx.record.id();
            if tx.reply.same_channel(&self.shared.gossip_reply) {
                gossiped.push(tx.record);
                continue;
            }
            if self.host.pool.pending.contains_key(&id)
                || self.host.pool.local.contains_key(&id)
                || self.host.pool.decided.contains(&id)
                || self.ledger.is_accepted(id)
            {
                tx.acknowledge(ResultCode::DuplicateId, None);
                continue;
            }
            records.push(tx.record);
            locals.push(tx);
        }
        let taken = self.host.pool.add(records);
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
            self.host.pool.add(gossiped);
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
        let due = !proposes
            || !self.host.pool.pending.is_empty()
            || self.committed_at.elapsed() >= self.config.empty_block_interval;
        if !due {
            return Ok(());
        }
        self.height_started_at = Some(Instant::now());
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
        for action in actions {
            match action {
                Action::Decide(decision) => self.on_decision(decision)?,
                Action::Persist(state) => self.state_file.write(&state).map_err(|error| {
                    format!("writing the consensus state failed (never retried): {error}")
                })?,
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
                        Instant::now() + Duration::from_millis(duration_ms),
                        self.timer_sequence,
                        TimeoutKey::from(timeout),
                    )));
                }
            }
        }
        Ok(())
    }

    fn fire_timers(&mut self) -> Result<(), Fatal> {
        let now = Instant::now();
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
        if self.last_regossip.elapsed() < REGOSSIP_INTERVAL {
            return;
        }
        self.last_regossip = Instant::now();
        // A decision whose body never came: ask again (the machine waits meanwhile).
        if self.undelivered.is_some() {
            self.request_sync(None);
        }
        if !self.machine.is_running() {
            return;
        }
        self.send_height_state(None);
    }

    fn on_peer_event(&mut self, event: PeerEvent) -> Result<(), Fatal> {
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
                .observe_duration(started.elapsed());
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
        let execution_started = Instant::now();
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
        let checkpoint = self.limits.checkpoint_after(&self.ledger, &new_tip);
        let results = sealed.results;
        let (txs, local_results) = self.host.pool.remove_decided(&body.records, &results);
        self.shared
            .counters
            .executed
            .fetch_add(body.records.len() as u64, Ordering::Relaxed);
        let metrics = &self.shared.metrics;
        metrics
            .stage
            .execution
            .observe_duration(execution_started.elapsed());
        metrics.batch.block.observe(body.records.len() as u64);
        let sealed = SealedBlock {
            height,
            entry,
            txs,
            results: local_results,
            checkpoint,
            durable: Some(self.durable.0.clone()),
        };
        if self.sealed.send(sealed).is_err() || self.durable.1.recv().is_err() {
            return Err(self
                .shared
                .stopped_reason()
                .unwrap_or_else(|| "the log stage stopped".into()));
        }
        self.host.tip = new_tip;
        self.host
            .proposals
            .retain(|_, b| b.header.height() > height);
        self.host.valid_cache.clear();
        self.waiting_for_body.clear();
        self.committed_at = Instant::now();
        self.follow_schedule();
        serve_ledger_queries(self.shared, &self.ledger, 64);
        Ok(())
    }

    /// After a block that ended an epoch: the set the authorities voted in takes over.
    fn follow_schedule(&mut self) {
        let set = self.ledger.validator_schedule().current();
        if set.epoch() == self.host.set.epoch() {
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
    }
}
