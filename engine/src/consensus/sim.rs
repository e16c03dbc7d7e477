//! Deterministic cluster simulator: N validators in one thread over a simulated network.
//! Over 800 lines on purpose: one scheduler, its fault model and the checks of every run
//! belong together, and none of it runs in a node.
//!
//! Everything random comes from one seed (SplitMix64), time is simulated milliseconds, and
//! events are processed in (time, sequence) order, so a seed replays exactly. The network
//! loses, delays (and so reorders), duplicates and partitions messages during a fault phase;
//! honest validators crash (sometimes between persisting and sending) and restart from what
//! they persisted; up to `f` Byzantine validators sign conflicting proposals and votes. At
//! the end of the fault phase the network heals (no loss, no partition, bounded delay) and
//! every crashed validator restarts.
//!
//! Validator sets change by epoch when `heights_per_epoch` is set: besides the
//! `validator_count` validators of each set, `standby_count` more nodes run, and each epoch
//! the set moves on by one node (one leaves, the next standby node joins), so every node is
//! in and out of the set in turn, Byzantine ones included. In a node the changes come from
//! authority votes in decided blocks, which every validator executes alike
//! ([`super::ValidatorSchedule`]); here they follow a fixed plan every node knows, which is
//! what the votes give the state machine: the set of each height. Nodes outside a height's
//! set follow it (they sign nothing and decide from the others' votes).
//!
//! Checked for every run:
//! - safety: no two honest validators decide different values at one height;
//! - same chain: every honest validator's decided blocks are a prefix of one chain;
//! - certificates: every decision carries a certificate that verifies against the set;
//! - liveness: after healing, every honest validator decides `heights_after_heal` more
//!   heights within `liveness_ms_max` simulated milliseconds;
//! - same state: with a [`SimExecutor`] ([`run_with_executor`]), every validator executes each
//!   block it decides, once and in height order, and no two honest validators have different
//!   state roots after a height.
//!
//! Gossip is modelled as the paper assumes it (a message one correct validator received
//! eventually reaches every correct validator once the network stabilises): every
//! `gossip_interval_ms` each validator relays all messages it counts for its current height
//! ([`Tendermint::known_messages`]), and a validator that receives a peer's own message for a
//! height it has decided answers with that height's proposal and certificate precommits (a
//! minimal block sync, at most once per peer per gossip interval).

use super::certificate::Certificate;
use super::machine::{
    Action, Application, Config, ConsensusError, Event, PersistentState, Tendermint, Timeout,
    TimeoutConfig,
};
use super::message::{Body, SignedMessage, VerifiedMessage, VerifyError, VoteKind, MESSAGE_BYTES};
use super::validators::{short_hex, ValidatorSet};
use super::BlockId;
use ed25519_zebra::SigningKey;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// The timeouts of simulated validators: short, so that a run covers many rounds.
pub const SIM_TIMEOUTS: TimeoutConfig = TimeoutConfig {
    propose_ms: 200,
    propose_delta_ms: 50,
    prevote_ms: 100,
    prevote_delta_ms: 50,
    precommit_ms: 100,
    precommit_delta_ms: 50,
};
/// Network id of simulated clusters.
pub const SIM_NETWORK_ID: u64 = 0x5349_4d00_0000_0001;
/// Bound on verified messages cached by the simulated network before the cache is cleared.
pub const VERIFY_CACHE_ENTRIES_MAX: usize = 200_000;

/// A small, fast, deterministic generator (SplitMix64); good enough to schedule faults.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    /// Generator for `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high` (assumes `low <= high`).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.next_u64() % 1000 < u64::from(per_mille)
    }

    /// 32 random bytes (a key seed, a block id).
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        bytes
    }
}

/// Events in (time, sequence) order, the scheduler of both simulators: events due at the
/// same millisecond run in the order they were scheduled, so a seed replays exactly.
pub struct EventQueue<E> {
    heap: BinaryHeap<Scheduled<E>>,
    sequence: u64,
}

struct Scheduled<E> {
    time_ms: u64,
    sequence: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ms, self.sequence) == (other.time_ms, other.sequence)
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Scheduled<E> {
    /// Reversed, so the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time_ms, other.sequence).cmp(&(self.time_ms, self.sequence))
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            sequence: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `time_ms`.
    pub fn push(&mut self, time_ms: u64, event: E) {
        self.sequence += 1;
        self.heap.push(Scheduled {
            time_ms,
            sequence: self.sequence,
            event,
        });
    }

    /// The earliest event and its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|s| (s.time_ms, s.event))
    }
}

/// The faults of a run, in both simulators: during the fault phase the network loses,
/// delays and duplicates messages and may split in two, and honest validators crash; then
/// the network heals (no loss, no partition, bounded delay) and every validator restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Length of the faulty period, simulated ms.
    pub fault_phase_ms: u64,
    /// Probability that a message is lost (in the cluster simulator, a lost frame breaks
    /// its link until it connects again).
    pub loss_per_mille: u32,
    pub duplicate_per_mille: u32,
    /// Delay range during the fault phase; wide ranges reorder messages.
    pub fault_delay_ms_max: u64,
    /// Delay bound after healing (the paper's Δ after GST).
    pub healed_delay_ms_max: u64,
    /// A partition into two sides starts and heals within the fault phase.
    pub partition: bool,
    /// Probability that an honest validator crashes when handling an event (fault phase).
    pub crash_per_mille: u32,
    /// How long a crashed validator stays down (at most; all restart at healing).
    pub downtime_ms_max: u64,
}

impl Faults {
    /// When the partition starts and ends, and which nodes are on one side (a bit each),
    /// for a run of `nodes` nodes; `None` without a partition.
    pub fn partition_plan(&self, rng: &mut SimRng, nodes: usize) -> Option<(u64, u64, u64)> {
        if !self.partition {
            return None;
        }
        let start = rng.range(0, self.fault_phase_ms);
        let length = rng.range(100, self.fault_phase_ms);
        // A non-trivial split: some nodes on each side.
        let side_mask = rng.range(1, (1u64 << nodes) - 2);
        Some((start, start + length, side_mask))
    }

    /// A message's delay, before or after healing.
    pub fn delay_ms(&self, rng: &mut SimRng, healed: bool) -> u64 {
        let max = if healed {
            self.healed_delay_ms_max
        } else {
            self.fault_delay_ms_max
        };
        rng.range(1, max)
    }
}

/// Parameters of one simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub validator_count: usize,
    /// Byzantine (equivocating) validators, at most `f`.
    pub byzantine_count: usize,
    pub faults: Faults,
    pub gossip_interval_ms: u64,
    pub timeouts: TimeoutConfig,
    /// Heights every honest validator must decide after healing.
    pub heights_after_heal: u64,
    /// Simulated time after healing within which they must be decided.
    pub liveness_ms_max: u64,
    /// Bound on processed events (a run that exceeds it fails).
    pub events_max: u64,
    /// Nodes outside the set at any time (0: the set never changes).
    pub standby_count: usize,
    /// Heights in one epoch; the set moves on by one node each epoch (0: one epoch).
    pub heights_per_epoch: u64,
    /// Leader reputation as the nodes see it: each height's set leaves up to `f` members
    /// out of round-0 turns, the same on every node, changing every few heights (see
    /// [`SimConfig::demoted`]), so the machine runs under proposers other than plain
    /// round-robin.
    pub demote_proposers: bool,
}

impl SimConfig {
    /// The configuration the test suite uses for `seed`: 4 or 7 validators, `f` Byzantine,
    /// and loss, duplication, delay, partitions and crashes drawn from the seed.
    pub fn for_seed(seed: u64) -> SimConfig {
        let mut rng = SimRng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let validator_count = if seed.is_multiple_of(2) { 4 } else { 7 };
        let f = (validator_count - 1) / 3;
        SimConfig {
            seed,
            validator_count,
            byzantine_count: if rng.chance(850) { f } else { 0 },
            faults: Faults {
                fault_phase_ms: rng.range(500, 2500),
                loss_per_mille: rng.range(0, 300) as u32,
                duplicate_per_mille: rng.range(0, 200) as u32,
                fault_delay_ms_max: rng.range(5, 300),
                healed_delay_ms_max: rng.range(2, 40),
                partition: rng.chance(500),
                crash_per_mille: rng.range(0, 8) as u32,
                downtime_ms_max: rng.range(50, 1500),
            },
            gossip_interval_ms: 150,
            timeouts: SIM_TIMEOUTS,
            heights_after_heal: 3,
            liveness_ms_max: 60_000,
            events_max: 2_000_000,
            // Drawn last, so that seeds without set changes keep their schedule.
            standby_count: [0, 0, 1, 2][rng.range(0, 3) as usize],
            heights_per_epoch: rng.range(2, 6),
            // Not drawn, so that every seed keeps its schedule; two seeds in three.
            demote_proposers: !seed.is_multiple_of(3),
        }
    }

    /// Positions in the set of `height` (of `set_len` members) left out of round-0 turns:
    /// none without `demote_proposers`; else up to `f` positions, a function of the seed and
    /// of `height / 4`, sometimes Byzantine members, sometimes honest ones.
    pub fn demoted(&self, height: u64, set_len: usize) -> Vec<usize> {
        if !self.demote_proposers || set_len < 4 {
            return Vec::new();
        }
        let f = (set_len - 1) / 3;
        let mut rng = SimRng::new(self.seed ^ (height / 4).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let count = rng.range(0, f as u64) as usize;
        let mut demoted: Vec<usize> = Vec::new();
        while demoted.len() < count {
            let position = rng.range(0, set_len as u64 - 1) as usize;
            if !demoted.contains(&position) {
                demoted.push(position);
            }
        }
        demoted
    }

    /// Every node of the run: the validators of a set and the standby nodes.
    pub fn node_count(&self) -> usize {
        self.validator_count + self.standby_count
    }

    /// Nodes in the set of `epoch`: all but `standby_count` consecutive ones (cyclically),
    /// starting just before the Byzantine nodes in epoch 0 and one further each epoch. In
    /// node order, which is the proposer rotation.
    pub fn members(&self, epoch: u64) -> Vec<usize> {
        let nodes = self.node_count();
        if self.standby_count == 0 {
            return (0..nodes).collect();
        }
        let first_out = nodes - self.byzantine_count - self.standby_count;
        let start = (first_out as u64 + epoch % nodes as u64) as usize % nodes;
        let out: Vec<usize> = (0..self.standby_count)
            .map(|k| (start + k) % nodes)
            .collect();
        (0..nodes).filter(|node| !out.contains(node)).collect()
    }

    /// Epoch of `height`.
    pub fn epoch_of(&self, height: u64) -> u64 {
        if self.standby_count == 0 || self.heights_per_epoch == 0 {
            0
        } else {
            height / self.heights_per_epoch
        }
    }
}

/// Executes decided blocks for the simulator, one state per validator.
///
/// Consensus never looks inside a block, so the simulator hands the executor only the decided
/// value: the executor maps it to a block (deterministically, the same block on every node)
/// and applies it to `node`'s state. The simulator calls it exactly once per validator and
/// height, in height order, when the validator decides; a crash does not reset it (a
/// restarted validator keeps the blocks it decided, as its log would). It must be
/// deterministic: the simulator compares honest validators' roots height by height.
pub trait SimExecutor {
    /// Applies the block behind `value`, decided at `height`, to `node`'s state and returns
    /// the state root after it.
    fn execute(&mut self, node: usize, height: u64, value: &BlockId) -> [u8; 32];
}

/// Why a run failed: a property of the protocol did not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimFailure {
    #[error("SAFETY: validators {first} and {second} decided {first_value} and {second_value} at height {height}")]
    Safety {
        height: u64,
        first: usize,
        second: usize,
        first_value: String,
        second_value: String,
    },
    #[error("CHAIN: validator {validator} decided height {height} out of order (has {chain_len} blocks)")]
    Chain {
        validator: usize,
        height: u64,
        chain_len: u64,
    },
    #[error("CERTIFICATE: validator {validator} decided height {height} with a bad certificate: {reason}")]
    Certificate {
        validator: usize,
        height: u64,
        reason: String,
    },
    #[error("LIVENESS: after healing at {heal_ms} ms, heights {heights:?} at {now_ms} ms; wanted {target} on every honest validator")]
    Liveness {
        heal_ms: u64,
        now_ms: u64,
        heights: Vec<u64>,
        target: u64,
    },
    #[error(
        "STATE ROOT: seed {seed}: validators {first} and {second} have state roots {} and {} \
         after height {height}",
        hex::encode(first_root),
        hex::encode(second_root)
    )]
    StateRoot {
        seed: u64,
        height: u64,
        first: usize,
        second: usize,
        first_root: [u8; 32],
        second_root: [u8; 32],
    },
    #[error("EVENTS: more than {events_max} events without reaching the goal")]
    EventBudget { events_max: u64 },
    #[error("STATE MACHINE: validator {validator}: {reason}")]
    Machine { validator: usize, reason: String },
}

/// What a successful run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    pub seed: u64,
    pub validator_count: usize,
    pub byzantine_count: usize,
    /// Nodes outside the set at any time.
    pub standby_count: usize,
    /// Highest epoch any honest node decided a height of.
    pub epoch_max: u64,
    /// Decided heights per validator (Byzantine ones included).
    pub heights: Vec<u64>,
    pub heal_ms: u64,
    pub end_ms: u64,
    pub events: u64,
    pub messages_sent: u64,
    pub messages_lost: u64,
    pub crashes: u64,
    /// Highest round any honest validator reached.
    pub round_max: u32,
    /// Equivocation evidence gathered by honest validators.
    pub evidence: u64,
    /// Blocks the executor applied (every validator's decisions; 0 without an executor).
    pub blocks_executed: u64,
    /// Honest decisions whose state root was checked against an earlier honest root of the
    /// same height (0 without an executor).
    pub roots_compared: u64,
}

/// The simulated application: block ids encode (height, round, proposer) and a checksum, so
/// `valid(v)` is a deterministic check every honest validator agrees on.
#[derive(Clone, Debug)]
pub struct SimApp {
    validator_count: usize,
}

impl SimApp {
    /// The only valid value proposed at (height, round): made by that round's proposer.
    pub fn value(validator_count: usize, height: u64, round: u32) -> BlockId {
        let proposer = ((height % validator_count as u64
            + u64::from(round) % validator_count as u64)
            % validator_count as u64) as u16;
        let mut value = [0u8; 32];
        value[..8].copy_from_slice(&height.to_le_bytes());
        value[8..12].copy_from_slice(&round.to_le_bytes());
        value[12..14].copy_from_slice(&proposer.to_le_bytes());
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"tally-sim-block");
        hasher.update(&value[..14]);
        value[14..].copy_from_slice(&hasher.finalize().as_bytes()[..18]);
        value
    }
}

impl Application for SimApp {
    fn propose_value(&mut self, height: u64, round: u32) -> BlockId {
        SimApp::value(self.validator_count, height, round)
    }

    fn is_valid(&mut self, height: u64, value: &BlockId) -> bool {
        let round = u32::from_le_bytes(value[8..12].try_into().expect("4 bytes"));
        SimApp::value(self.validator_count, height, round) == *value
    }
}

#[derive(Clone, Debug)]
enum SimEvent {
    Deliver {
        from: usize,
        to: usize,
        bytes: Box<[u8; MESSAGE_BYTES]>,
    },
    Timer {
        node: usize,
        incarnation: u64,
        timeout: Timeout,
    },
    Gossip {
        node: usize,
        incarnation: u64,
    },
    Restart {
        node: usize,
    },
    PartitionStart {
        side_mask: u64,
    },
    PartitionEnd,
    Heal,
}

struct Decided {
    value: BlockId,
    certificate: Certificate,
    proposal: SignedMessage,
}

struct Node {
    key: SigningKey,
    public_key: [u8; 32],
    byzantine: bool,
    machine: Option<Tendermint>,
    persisted: PersistentState,
    chain: Vec<Decided>,
    incarnation: u64,
    app: SimApp,
}

struct Sim<'e> {
    config: SimConfig,
    rng: SimRng,
    now_ms: u64,
    queue: EventQueue<SimEvent>,
    nodes: Vec<Node>,
    /// Every node's public key, in node order.
    public_keys: Vec<[u8; 32]>,
    /// The set of each epoch, built when first needed.
    sets: HashMap<u64, ValidatorSet>,
    healed: bool,
    partition_side_mask: Option<u64>,
    verify_cache: HashMap<[u8; MESSAGE_BYTES], Result<VerifiedMessage, VerifyError>>,
    certificates_verified: HashSet<Vec<u8>>,
    /// (responder, requester) -> (height, time) of the last block-sync answer.
    sync_sent: HashMap<(usize, usize), (u64, u64)>,
    /// Height -> (validator, value) of the first honest decision.
    decided: BTreeMap<u64, (usize, BlockId)>,
    executor: Option<&'e mut dyn SimExecutor>,
    /// Height -> (validator, state root) of the first honest execution.
    roots: BTreeMap<u64, (usize, [u8; 32])>,
    report: SimReport,
}

/// Runs one simulation. Returns the report, or the first property that failed.
pub fn run(config: &SimConfig) -> Result<SimReport, SimFailure> {
    Sim::new(config.clone(), None).run()
}

/// Runs one simulation in which every validator executes the blocks it decides with
/// `executor`, and checks that honest validators agree on the state root at every height.
/// The schedule (messages, faults, decisions) is the one [`run`] gives for the same config.
pub fn run_with_executor(
    config: &SimConfig,
    executor: &mut dyn SimExecutor,
) -> Result<SimReport, SimFailure> {
    Sim::new(config.clone(), Some(executor)).run()
}

impl<'e> Sim<'e> {
    fn new(config: SimConfig, executor: Option<&'e mut dyn SimExecutor>) -> Sim<'e> {
        let mut rng = SimRng::new(config.seed);
        let n = config.validator_count;
        let keys: Vec<SigningKey> = (0..config.node_count())
            .map(|_| SigningKey::from(rng.bytes32()))
            .collect();
        let public_keys: Vec<[u8; 32]> = keys
            .iter()
            .map(|key| ed25519_zebra::VerificationKey::from(key).into())
            .collect();
        // Byzantine validators are the last nodes; which index they have does not matter
        // since the proposer rotates through everybody.
        let byzantine_first = config.node_count() - config.byzantine_count;
        let nodes = keys
            .into_iter()
            .enumerate()
            .map(|(index, key)| {
                let machine_config = Config {
                    signing_key: key,
                    timeouts: config.timeouts,
                };
                let machine = Tendermint::new(machine_config, 0);
                Node {
                    key,
                    public_key: public_keys[index],
                    byzantine: index >= byzantine_first,
                    persisted: machine.persistent_state(),
                    machine: Some(machine),
                    chain: Vec::new(),
                    incarnation: 0,
                    app: SimApp { validator_count: n },
                }
            })
            .collect();
        let report = SimReport {
            seed: config.seed,
            validator_count: n,
            byzantine_count: config.byzantine_count,
            standby_count: config.standby_count,
            ..SimReport::default()
        };
        Sim {
            rng,
            now_ms: 0,
            queue: EventQueue::default(),
            nodes,
            public_keys,
            sets: HashMap::new(),
            healed: false,
            partition_side_mask: None,
            verify_cache: HashMap::new(),
            certificates_verified: HashSet::new(),
            sync_sent: HashMap::new(),
            decided: BTreeMap::new(),
            executor,
            roots: BTreeMap::new(),
            report,
            config,
        }
    }

    /// The validator set of `height`'s epoch.
    fn set_for(&mut self, height: u64) -> &ValidatorSet {
        let epoch = self.config.epoch_of(height);
        let config = &self.config;
        let public_keys = &self.public_keys;
        self.sets.entry(epoch).or_insert_with(|| {
            let members = config.members(epoch);
            ValidatorSet::new(
                SIM_NETWORK_ID,
                epoch,
                members.iter().map(|&node| public_keys[node]).collect(),
            )
            .expect("distinct random keys")
        })
    }

    fn schedule(&mut self, delay_ms: u64, event: SimEvent) {
        self.queue.push(self.now_ms + delay_ms, event);
    }

    fn honest(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| !node.byzantine)
    }

    fn run(mut self) -> Result<SimReport, SimFailure> {
        self.schedule(self.config.faults.fault_phase_ms, SimEvent::Heal);
        let nodes = self.config.node_count();
        if let Some((start, end, side_mask)) =
            self.config.faults.partition_plan(&mut self.rng, nodes)
        {
            self.schedule(start, SimEvent::PartitionStart { side_mask });
            self.schedule(end, SimEvent::PartitionEnd);
        }
        for node in 0..self.nodes.len() {
            let interval = self.config.gossip_interval_ms;
            let first = self.rng.range(1, interval);
            self.schedule(
                first,
                SimEvent::Gossip {
                    node,
                    incarnation: 0,
                },
            );
            self.start_height(node, 0)?;
        }
        let mut target = None;
        while let Some((time_ms, event)) = self.queue.pop() {
            self.now_ms = time_ms;
            self.report.events += 1;
            if self.report.events > self.config.events_max {
                return Err(SimFailure::EventBudget {
                    events_max: self.config.events_max,
                });
            }
            if let SimEvent::Heal = event {
                self.heal()?;
                let decided_max = self.honest().map(|(_, n)| n.chain.len() as u64).max();
                target = Some(decided_max.unwrap_or(0) + self.config.heights_after_heal);
                continue;
            }
            self.process(event)?;
            if let Some(target) = target {
                if self
                    .honest()
                    .all(|(_, node)| node.chain.len() as u64 >= target)
                {
                    break;
                }
                if self.now_ms > self.report.heal_ms + self.config.liveness_ms_max {
                    return Err(SimFailure::Liveness {
                        heal_ms: self.report.heal_ms,
                        now_ms: self.now_ms,
                        heights: self.nodes.iter().map(|n| n.chain.len() as u64).collect(),
                        target,
                    });
                }
            }
        }
        self.check_chains()?;
        self.report.end_ms = self.now_ms;
        self.report.heights = self.nodes.iter().map(|n| n.chain.len() as u64).collect();
        self.report.evidence = self
            .honest()
            .filter_map(|(_, node)| node.machine.as_ref())
            .map(|machine| machine.evidence().len() as u64)
            .sum();
        Ok(self.report)
    }

    fn heal(&mut self) -> Result<(), SimFailure> {
        self.healed = true;
        self.partition_side_mask = None;
        self.report.heal_ms = self.now_ms;
        for node in 0..self.nodes.len() {
            if self.nodes[node].machine.is_none() {
                self.restart(node)?;
            }
        }
        Ok(())
    }

    fn process(&mut self, event: SimEvent) -> Result<(), SimFailure> {
        match event {
            SimEvent::Deliver { from, to, bytes } => self.deliver(from, to, &bytes),
            SimEvent::Timer {
                node,
                incarnation,
                timeout,
            } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].machine.is_none()
                {
                    return Ok(());
                }
                self.handle(node, Event::Timeout(timeout)).map(|_| ())
            }
            SimEvent::Gossip { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation {
                    return Ok(());
                }
                let interval = self.config.gossip_interval_ms;
                self.schedule(interval, SimEvent::Gossip { node, incarnation });
                // Relay everything held for the current height, as gossip does: the paper
                // assumes a message one correct validator got reaches all correct ones.
                // Byzantine validators relay too (their twins are in nobody's own list).
                let own: Vec<SignedMessage> = match &self.nodes[node].machine {
                    Some(machine) => machine.known_messages(),
                    None => return Ok(()),
                };
                for message in own {
                    self.send_all(node, &message);
                }
                Ok(())
            }
            SimEvent::Restart { node } => {
                if self.nodes[node].machine.is_none() {
                    self.restart(node)?;
                }
                Ok(())
            }
            SimEvent::PartitionStart { side_mask } => {
                if !self.healed {
                    self.partition_side_mask = Some(side_mask);
                }
                Ok(())
            }
            SimEvent::PartitionEnd => {
                self.partition_side_mask = None;
                Ok(())
            }
            SimEvent::Heal => Ok(()),
        }
    }

    fn verified(&mut self, bytes: &[u8; MESSAGE_BYTES]) -> Option<VerifiedMessage> {
        if let Some(result) = self.verify_cache.get(bytes) {
            return result.as_ref().ok().copied();
        }
        // Decoding failures cannot happen between simulated honest encoders; treat as loss.
        let message = SignedMessage::decode(bytes).ok()?;
        let result = message.verify(self.set_for(message.body().height()));
        if self.verify_cache.len() >= VERIFY_CACHE_ENTRIES_MAX {
            self.verify_cache.clear();
        }
        self.verify_cache.insert(*bytes, result.clone());
        result.ok()
    }

    fn deliver(
        &mut self,
        from: usize,
        to: usize,
        bytes: &[u8; MESSAGE_BYTES],
    ) -> Result<(), SimFailure> {
        if self.nodes[to].machine.is_none() {
            return Ok(());
        }
        let Some(message) = self.verified(bytes) else {
            return Ok(());
        };
        // Only a peer's own message for an old height shows that the peer lags; messages it
        // relays (block sync answers) must not trigger answers, or up-to-date peers would
        // answer each other forever.
        let own_message = *message.message().sender() == self.nodes[from].public_key;
        let message_height = message.body().height();
        let current = self.nodes[to].chain.len() as u64;
        let receiver_key = self.nodes[to].public_key;
        let follower = self.set_for(current).index_of(&receiver_key).is_none();
        match self.handle(to, Event::Message(message)) {
            Ok(Err(ConsensusError::PastHeight { height, .. })) if own_message => {
                self.block_sync(to, from, height);
                Ok(())
            }
            Ok(Err(ConsensusError::FutureHeight { current, .. })) => {
                // The receiver lags: a node asks for blocks when messages of a later height
                // arrive.
                self.block_sync(from, to, current);
                Ok(())
            }
            Ok(_) if follower && message_height > current => {
                // A node outside its height's set signs nothing, so no peer learns from its
                // messages that it lags: it asks as soon as a later height shows up.
                self.block_sync(from, to, current);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(failure) => Err(failure),
        }
    }

    /// `responder` decided `height` and `requester` is still on it: send the proposal and the
    /// certificate's precommits, from which the requester decides by line 49.
    fn block_sync(&mut self, responder: usize, requester: usize, height: u64) {
        if let Some((last_height, last_ms)) = self.sync_sent.get(&(responder, requester)) {
            // At most one answer per peer per gossip interval, and none for a height older
            // than the one answered last (the peer has moved on).
            if height < *last_height || self.now_ms < last_ms + self.config.gossip_interval_ms {
                return;
            }
        }
        self.sync_sent
            .insert((responder, requester), (height, self.now_ms));
        let Some(decided) = self.nodes[responder].chain.get(height as usize) else {
            return;
        };
        let mut messages = vec![decided.proposal];
        messages.extend(
            decided
                .certificate
                .signatures
                .iter()
                .map(|entry| decided.certificate.precommit(entry)),
        );
        for message in messages {
            self.send(responder, requester, &message.encode());
        }
    }

    /// Feeds `event` to `node` and executes the actions. The outer result is a failed
    /// property; the inner one is the machine's verdict on the event.
    fn handle(
        &mut self,
        node: usize,
        event: Event,
    ) -> Result<Result<(), ConsensusError>, SimFailure> {
        let mut actions = Vec::new();
        let result = {
            let Node { machine, app, .. } = &mut self.nodes[node];
            let machine = machine.as_mut().expect("handle on a running node");
            machine.handle(event, app, &mut actions)
        };
        // A crash in the middle of executing the actions: what was persisted stays, the
        // broadcasts and timeouts of this batch are lost.
        let crash = !self.healed
            && !self.nodes[node].byzantine
            && self.rng.chance(self.config.faults.crash_per_mille);
        let mut next_height = None;
        for action in actions {
            match action {
                Action::Decide(decision) => {
                    self.record_decision(
                        node,
                        decision.height,
                        Decided {
                            value: decision.value,
                            certificate: decision.certificate,
                            proposal: decision.proposal,
                        },
                    )?;
                    next_height = Some(decision.height + 1);
                }
                Action::Persist(state) => self.nodes[node].persisted = state,
                Action::Broadcast(message) if !crash => self.broadcast(node, &message),
                Action::ScheduleTimeout {
                    timeout,
                    duration_ms,
                } if !crash => {
                    let incarnation = self.nodes[node].incarnation;
                    self.schedule(
                        duration_ms,
                        SimEvent::Timer {
                            node,
                            incarnation,
                            timeout,
                        },
                    );
                }
                Action::Broadcast(_) | Action::ScheduleTimeout { .. } => {}
            }
        }
        if crash {
            self.crash(node);
            return Ok(result);
        }
        if let Some(height) = next_height {
            self.start_height(node, height)?;
        }
        if let Some(machine) = &self.nodes[node].machine {
            if !self.nodes[node].byzantine {
                self.report.round_max = self.report.round_max.max(machine.round());
            }
        }
        Ok(result)
    }

    fn start_height(&mut self, node: usize, height: u64) -> Result<(), SimFailure> {
        let set = self.set_for(height).clone();
        let demoted: Vec<[u8; 32]> = self
            .config
            .demoted(height, set.len())
            .into_iter()
            .map(|position| *set.public_key(position))
            .collect();
        let event = Event::StartHeight {
            height,
            validator_set: set.with_demoted(demoted.iter()),
        };
        match self.handle(node, event)? {
            Ok(()) => Ok(()),
            Err(error) => Err(SimFailure::Machine {
                validator: node,
                reason: error.to_string(),
            }),
        }
    }

    fn crash(&mut self, node: usize) {
        self.report.crashes += 1;
        self.nodes[node].machine = None;
        self.nodes[node].incarnation += 1;
        let downtime = self.rng.range(1, self.config.faults.downtime_ms_max);
        self.schedule(downtime, SimEvent::Restart { node });
    }

    /// Restarts `node` from what it persisted: its machine state and its decided blocks.
    fn restart(&mut self, node: usize) -> Result<(), SimFailure> {
        let config = Config {
            signing_key: self.nodes[node].key,
            timeouts: self.config.timeouts,
        };
        let persisted = self.nodes[node].persisted.clone();
        let height = persisted.height;
        if height != self.nodes[node].chain.len() as u64 {
            return Err(SimFailure::Machine {
                validator: node,
                reason: format!(
                    "persisted height {height} but {} blocks decided",
                    self.nodes[node].chain.len()
                ),
            });
        }
        self.nodes[node].machine = Some(Tendermint::restore(config, persisted));
        self.nodes[node].incarnation += 1;
        let incarnation = self.nodes[node].incarnation;
        let first = self.rng.range(1, self.config.gossip_interval_ms);
        self.schedule(first, SimEvent::Gossip { node, incarnation });
        self.start_height(node, height)
    }

    fn record_decision(
        &mut self,
        node: usize,
        height: u64,
        decided: Decided,
    ) -> Result<(), SimFailure> {
        let chain_len = self.nodes[node].chain.len() as u64;
        if height != chain_len {
            return Err(SimFailure::Chain {
                validator: node,
                height,
                chain_len,
            });
        }
        let certificate = &decided.certificate;
        let certificate_ok = certificate.height == height && certificate.value == decided.value;
        if !certificate_ok {
            return Err(SimFailure::Certificate {
                validator: node,
                height,
                reason: "certificate is for another height or value".to_string(),
            });
        }
        let encoded = certificate.encode();
        if !self.certificates_verified.contains(&encoded) {
            certificate
                .verify(self.set_for(height))
                .map_err(|error| SimFailure::Certificate {
                    validator: node,
                    height,
                    reason: error.to_string(),
                })?;
            self.certificates_verified.insert(encoded);
        }
        if !self.nodes[node].byzantine {
            self.report.epoch_max = self.report.epoch_max.max(self.config.epoch_of(height));
            match self.decided.get(&height) {
                Some(&(first, value)) if value != decided.value => {
                    return Err(SimFailure::Safety {
                        height,
                        first,
                        second: node,
                        first_value: short_hex(&value),
                        second_value: short_hex(&decided.value),
                    })
                }
                Some(_) => {}
                None => {
                    self.decided.insert(height, (node, decided.value));
                }
            }
        }
        self.execute(node, height, &decided.value)?;
        self.nodes[node].chain.push(decided);
        Ok(())
    }

    /// Executes `node`'s decision at `height` (the next height of its chain) and compares
    /// an honest node's state root with the first honest root of the height.
    fn execute(&mut self, node: usize, height: u64, value: &BlockId) -> Result<(), SimFailure> {
        let Some(executor) = self.executor.as_mut() else {
            return Ok(());
        };
        let root = executor.execute(node, height, value);
        self.report.blocks_executed += 1;
        if self.nodes[node].byzantine {
            return Ok(());
        }
        match self.roots.get(&height) {
            Some(&(first, first_root)) => {
                self.report.roots_compared += 1;
                if first_root != root {
                    return Err(SimFailure::StateRoot {
                        seed: self.config.seed,
                        height,
                        first,
                        second: node,
                        first_root,
                        second_root: root,
                    });
                }
            }
            None => {
                self.roots.insert(height, (node, root));
            }
        }
        Ok(())
    }

    fn check_chains(&self) -> Result<(), SimFailure> {
        for (index, node) in self.honest() {
            for (height, block) in node.chain.iter().enumerate() {
                let (first, value) = self.decided[&(height as u64)];
                if block.value != value {
                    return Err(SimFailure::Safety {
                        height: height as u64,
                        first,
                        second: index,
                        first_value: short_hex(&value),
                        second_value: short_hex(&block.value),
                    });
                }
            }
        }
        Ok(())
    }

    fn broadcast(&mut self, node: usize, message: &SignedMessage) {
        if !self.nodes[node].byzantine {
            self.send_all(node, message);
            return;
        }
        // Equivocation: sign a conflicting twin and send each peer one of the two at random.
        let twin = self.conflicting(node, message);
        let encoded = message.encode();
        let twin_encoded = twin.encode();
        for peer in 0..self.nodes.len() {
            if peer == node {
                continue;
            }
            let bytes = if self.rng.chance(500) {
                &twin_encoded
            } else {
                &encoded
            };
            self.send(node, peer, bytes);
        }
        // Sometimes also push a vote for the next round, to tempt a round skip (which f
        // Byzantine validators alone cannot cause).
        if self.rng.chance(200) {
            let body = Body::Vote {
                kind: VoteKind::Precommit,
                height: message.body().height(),
                round: message.body().round() + 1,
                value: Some(self.some_value(message.body().height(), message.body().round() + 2)),
            };
            let extra = SignedMessage::sign(body, SIM_NETWORK_ID, &self.nodes[node].key);
            self.send_all(node, &extra);
        }
    }

    /// A valid-looking value of `height` other than the canonical one for the round, or
    /// (sometimes) an invalid one.
    fn some_value(&mut self, height: u64, round_max: u32) -> BlockId {
        if self.rng.chance(150) {
            return self.rng.bytes32();
        }
        let round = self.rng.range(0, u64::from(round_max)) as u32;
        SimApp::value(self.config.validator_count, height, round)
    }

    fn conflicting(&mut self, node: usize, message: &SignedMessage) -> SignedMessage {
        let body = match *message.body() {
            Body::Proposal {
                height,
                round,
                value,
                ..
            } => {
                let mut other = self.some_value(height, round + 2);
                if other == value {
                    other = SimApp::value(self.config.validator_count, height, round + 1);
                }
                Body::Proposal {
                    height,
                    round,
                    value: other,
                    valid_round: None,
                }
            }
            Body::Vote {
                kind,
                height,
                round,
                value,
            } => {
                let other = match value {
                    Some(_) if self.rng.chance(500) => None,
                    _ => Some(self.some_value(height, round + 2)),
                };
                let other = if other == value {
                    Some(SimApp::value(
                        self.config.validator_count,
                        height,
                        round + 3,
                    ))
                } else {
                    other
                };
                Body::Vote {
                    kind,
                    height,
                    round,
                    value: other,
                }
            }
        };
        SignedMessage::sign(body, SIM_NETWORK_ID, &self.nodes[node].key)
    }

    fn send_all(&mut self, node: usize, message: &SignedMessage) {
        let encoded = message.encode();
        for peer in 0..self.nodes.len() {
            if peer != node {
                self.send(node, peer, &encoded);
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, bytes: &[u8; MESSAGE_BYTES]) {
        self.report.messages_sent += 1;
        let copies = if self.healed {
            1
        } else {
            if let Some(mask) = self.partition_side_mask {
                if (mask >> from) & 1 != (mask >> to) & 1 {
                    self.report.messages_lost += 1;
                    return;
                }
            }
            if self.rng.chance(self.config.faults.loss_per_mille) {
                self.report.messages_lost += 1;
                return;
            }
            if self.rng.chance(self.config.faults.duplicate_per_mille) {
                2
            } else {
                1
            }
        };
        for _ in 0..copies {
            let delay = self.config.faults.delay_ms(&mut self.rng, self.healed);
            self.schedule(
                delay,
                SimEvent::Deliver {
                    from,
                    to,
                    bytes: Box::new(*bytes),
                },
            );
        }
    }
}
