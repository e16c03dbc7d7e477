//! The cluster simulator: validators running the production consensus stage (the driver,
//! its host and pool, block sync, sealing and commit over the real log, state file and
//! checkpoints), all in one thread, on simulated time, a simulated network and simulated
//! disks. Over 800 lines on purpose: one scheduler, its fault model and the checks of every
//! run belong together, and none of it is in a node's build (feature `simulator`).
//!
//! As in TigerBeetle's simulator, the code under test is the code that runs in production;
//! only its seams are simulated ([`super::io`]): the clock, the links, and the disk below
//! [`crate::log::FileOps`]. Everything random comes from one seed, events run in (time,
//! sequence) order, and every map the driver iterates to send is ordered, so a seed replays
//! exactly.
//!
//! Faults, during a fault phase drawn from the seed: links are TCP streams, so frames on
//! one link arrive in order, after random delays (frames of different links reorder); a
//! lost frame breaks its link, which connects again after a while (both ends hear
//! `Connected`, as from the real links); frames arrive twice; a partition splits the
//! validators in two and breaks the links across it until it heals. Honest validators
//! crash between events and in the middle of a sync (a log flush, a state slot, a
//! checkpoint), and at each crash every write since its file's last sync is kept, lost or
//! torn, and an interrupted state slot is cut short ([`files`]); they restart through the
//! node's own recovery (log replay, checkpoints, the consensus state file). Up to `f`
//! Byzantine validators run the same code behind links that lie: they propose blocks whose
//! previous-block hash (which covers the last results and state root) is wrong, and send
//! conflicting votes to different peers. Clients submit signed transactions from the
//! workload the caller gives to random honest validators throughout. When the fault phase
//! ends the network heals and every crashed validator restarts.
//!
//! Checked in every run:
//! - safety: honest validators' blocks at a height have the same header (so the same
//!   transactions, results and state root), at every step and in their logs at the end;
//! - durability: every transaction acknowledged with a height is in that block of the
//!   final chain with the acknowledged result, whatever crashes and torn writes came after;
//! - votes: an honest validator's consensus message leaves only when it is in its durable
//!   state, so a restart never signs a second, different message;
//! - no honest validator stops with a fatal error, and each recovers from its own disk;
//! - liveness: after healing, every honest validator commits `heights_after_heal` more
//!   blocks within `liveness_ms_max`.

mod files;
mod net;

use super::io::Clock;
pub use super::InjectedBug;
use super::{stage_parts, Driver, DriverParts, ValidatorConfig};
use crate::block::{self, BlockHeader};
pub use crate::consensus::sim::Faults;
use crate::consensus::sim::{EventQueue, SimRng, SIM_TIMEOUTS};
use crate::consensus::wire::{self, ProposalBody};
use crate::consensus::{Body, SignedMessage, TimeoutConfig};
use crate::genesis::Genesis;
use crate::mempool::{Ack, PendingTx};
use crate::net::peers::PeerEvent;
use crate::node::{
    checkpointer::CheckpointCadence, open_log, recover, verify_signatures, Backend, ExecutorLimits,
    NodeConfig, NodeMetrics, Shared, VerifiedBatch, CHECKPOINTS_DIR,
};
use crate::result::ResultCode;
use crate::tx::TxRecord;
use crossbeam::channel::{unbounded, Receiver, Sender};
use ed25519_zebra::SigningKey;
use files::SimDisk;
use net::{DurableVotes, Outgoing, SimClock, SimLinks};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_kernels::sigverify::Verifier;

/// Parameters of one simulated run.
#[derive(Clone, Debug)]
pub struct ClusterSimConfig {
    pub seed: u64,
    pub validator_count: usize,
    /// Byzantine validators, at most `f`.
    pub byzantine_count: usize,
    /// Network faults and crashes between events (see [`Faults`]).
    pub faults: Faults,
    /// Probability that an honest validator, at each start in the fault phase, is set to
    /// crash in the middle of one of its next syncs.
    pub sync_crash_per_mille: u32,
    /// Most simulated ms between two client transactions.
    pub client_interval_ms_max: u64,
    pub timeouts: TimeoutConfig,
    pub empty_block_interval_ms: u64,
    pub checkpoint_interval_blocks: u64,
    /// Heights every honest validator must commit after healing.
    pub heights_after_heal: u64,
    /// Simulated time after healing within which they must be committed.
    pub liveness_ms_max: u64,
    /// Bound on processed events (a run that exceeds it fails).
    pub events_max: u64,
    /// A bug switched on in every validator's driver (tests of the simulator itself).
    pub injected_bug: Option<InjectedBug>,
    /// Probability that an honest validator's crash also flips a byte of the last wholly
    /// written entry of its log (a disk fault, not a torn write): at its restart the log is
    /// repaired from its peers. 0 for `for_seed`.
    pub damage_last_entry_per_mille: u32,
    /// `(validator, ms)`: that honest validator crashes at that simulated time and never
    /// starts again (healing leaves it down; liveness is asked of the others).
    pub crashed_for_good: Option<(usize, u64)>,
}

impl ClusterSimConfig {
    /// The configuration the test suite uses for `seed`: 4 or 7 validators, usually `f`
    /// Byzantine ones, and loss, duplication, delay, partitions and crashes drawn from the
    /// seed.
    pub fn for_seed(seed: u64) -> ClusterSimConfig {
        let mut rng = SimRng::new(seed.wrapping_mul(0x9e6c_63d0_676a_9a99));
        let validator_count = if seed.is_multiple_of(2) { 4 } else { 7 };
        let f = (validator_count - 1) / 3;
        ClusterSimConfig {
            seed,
            validator_count,
            byzantine_count: if rng.chance(800) { f } else { 0 },
            faults: Faults {
                fault_phase_ms: rng.range(1_000, 4_000),
                loss_per_mille: rng.range(0, 40) as u32,
                duplicate_per_mille: rng.range(0, 150) as u32,
                fault_delay_ms_max: rng.range(5, 250),
                healed_delay_ms_max: rng.range(2, 30),
                partition: rng.chance(400),
                crash_per_mille: rng.range(0, 6) as u32,
                downtime_ms_max: rng.range(50, 1_500),
            },
            sync_crash_per_mille: rng.range(0, 600) as u32,
            client_interval_ms_max: rng.range(5, 60),
            timeouts: SIM_TIMEOUTS,
            empty_block_interval_ms: 100,
            checkpoint_interval_blocks: rng.range(3, 8),
            heights_after_heal: 3,
            liveness_ms_max: 60_000,
            events_max: 3_000_000,
            injected_bug: None,
            damage_last_entry_per_mille: 0,
            crashed_for_good: None,
        }
    }
}

/// Why a run failed: a property did not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterSimFailure {
    #[error(
        "SAFETY: validators {first} and {second} committed different blocks at height {height}"
    )]
    Safety {
        height: u64,
        first: usize,
        second: usize,
    },
    #[error("FATAL: honest validator {node} stopped: {reason}")]
    Fatal { node: usize, reason: String },
    #[error("RECOVERY: honest validator {node} cannot restart from its disk: {reason}")]
    Recovery { node: usize, reason: String },
    #[error("VOTE: honest validator {node} sent its message of height {height} round {round} before it was in its durable state")]
    UndurableVote {
        node: usize,
        height: u64,
        round: u32,
    },
    #[error(
        "DURABILITY: transaction {id:032x} was acknowledged {code} at height {height}, but {found}"
    )]
    Acknowledged {
        id: u128,
        code: String,
        height: u64,
        found: String,
    },
    #[error("LIVENESS: after healing at {heal_ms} ms, heights {heights:?} at {now_ms} ms; wanted {target} on every honest validator")]
    Liveness {
        heal_ms: u64,
        now_ms: u64,
        heights: Vec<u64>,
        target: u64,
    },
    #[error("EVENTS: more than {events_max} events without reaching the goal")]
    EventBudget { events_max: u64 },
    #[error("DISK: {reason}")]
    Disk { reason: String },
}

/// What a successful run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterSimReport {
    pub seed: u64,
    pub validator_count: usize,
    pub byzantine_count: usize,
    /// Committed heights per validator at the end (Byzantine ones included).
    pub heights: Vec<u64>,
    pub heal_ms: u64,
    pub end_ms: u64,
    pub events: u64,
    pub frames_sent: u64,
    pub frames_lost: u64,
    /// Crashes between events, and in the middle of a sync.
    pub crashes: u64,
    pub sync_crashes: u64,
    /// Unsynced writes lost or torn, and state slots cut short, at crashes.
    pub writes_damaged: u64,
    /// Last log entries, wholly written, damaged at crashes (a flipped byte), and restarts
    /// that cut a damaged last entry to take its block again from peers.
    pub entries_damaged: u64,
    pub entries_cut_for_repair: u64,
    /// Restarts through recovery.
    pub restarts: u64,
    /// Blocks with a wrong previous-block hash Byzantine validators proposed.
    pub bad_proposals: u64,
    pub transactions_submitted: u64,
    /// Acknowledged with a height, and of those `ok`.
    pub transactions_acknowledged: u64,
    pub transactions_ok: u64,
    /// Acknowledged transactions by result code's name.
    pub acknowledged_by_code: BTreeMap<&'static str, u64>,
    /// Heights whose headers were compared across honest validators at the end.
    pub heights_compared: u64,
    /// Simulated ms at which each height (index `height - 1`) was first committed by an
    /// honest validator.
    pub committed_at_ms: Vec<u64>,
}

/// Makes the transactions clients submit: the `index`-th of the run, drawn with `rng`;
/// signed for the genesis's network and valid or not, as the caller likes.
pub type Workload<'w> = dyn FnMut(&mut SimRng, u64) -> TxRecord + 'w;

#[derive(Debug)]
enum SimEvent {
    Deliver {
        from: usize,
        to: usize,
        kind: u8,
        payload: Vec<u8>,
    },
    Wake {
        node: usize,
        incarnation: u64,
    },
    Restart {
        node: usize,
    },
    /// A broken link between two validators connects again.
    Reconnect {
        a: usize,
        b: usize,
    },
    Client,
    PartitionStart {
        side_mask: u64,
    },
    PartitionEnd,
    Heal,
    /// The validator crashes and stays down (`ClusterSimConfig::crashed_for_good`).
    CrashForGood {
        node: usize,
    },
}

struct SimNode {
    key: SigningKey,
    byzantine: bool,
    /// Crashed for good: never started again.
    dead: bool,
    data_dir: PathBuf,
    disk: Arc<SimDisk>,
    driver: Option<Driver<SimClock, SimLinks>>,
    incarnation: u64,
    wake_at: Option<u64>,
    /// A Byzantine validator's own proposals: the id it made and the one it sends instead
    /// (`None`: sent as made).
    swapped: HashMap<[u8; 32], Option<[u8; 32]>>,
}

struct Sim<'w> {
    config: ClusterSimConfig,
    genesis: Genesis,
    rng: SimRng,
    clock: SimClock,
    queue: EventQueue<SimEvent>,
    nodes: Vec<SimNode>,
    keys: Rc<Vec<[u8; 32]>>,
    outbox: Rc<RefCell<Vec<Outgoing>>>,
    vote_failure: Rc<RefCell<Option<ClusterSimFailure>>>,
    verifier: Arc<Verifier>,
    workload: &'w mut Workload<'w>,
    acks: (Sender<Ack>, Receiver<Ack>),
    acknowledged: Vec<Ack>,
    healed: bool,
    partition_side_mask: Option<u64>,
    /// Links (lower node, higher node) that broke and have not connected again.
    broken: std::collections::BTreeSet<(usize, usize)>,
    /// When the last frame on each direction of a link is delivered: a link is a TCP
    /// stream, so its frames arrive in the order they were sent.
    delivery_order: HashMap<(usize, usize), u64>,
    /// Height -> (validator, header) of the first honest block seen at that height.
    headers: BTreeMap<u64, (usize, BlockHeader)>,
    report: ClusterSimReport,
}

/// Runs one simulation with validators in fresh directories under `dir`, the genesis's
/// accounts and the transactions `workload` makes; the genesis's validators are replaced by
/// the run's. Returns the report, or the first property that failed.
pub fn run(
    config: &ClusterSimConfig,
    genesis: &Genesis,
    workload: &mut Workload<'_>,
    dir: &Path,
) -> Result<ClusterSimReport, ClusterSimFailure> {
    let mut sim = Sim::new(config.clone(), genesis, workload, dir)?;
    let result = sim.run();
    // Logs and maps closed before the caller removes the directory.
    for node in &mut sim.nodes {
        node.driver = None;
    }
    result
}

fn disk_failure(error: impl std::fmt::Display) -> ClusterSimFailure {
    ClusterSimFailure::Disk {
        reason: error.to_string(),
    }
}

impl<'w> Sim<'w> {
    fn new(
        config: ClusterSimConfig,
        genesis: &Genesis,
        workload: &'w mut Workload<'w>,
        dir: &Path,
    ) -> Result<Sim<'w>, ClusterSimFailure> {
        let mut rng = SimRng::new(config.seed);
        let keys: Vec<SigningKey> = (0..config.validator_count)
            .map(|_| SigningKey::from(rng.bytes32()))
            .collect();
        let mut genesis = genesis.clone();
        crate::validator::cluster::set_validators(&mut genesis, &keys);
        genesis.validate().map_err(disk_failure)?;
        let ledger = crate::ledger::Ledger::from_genesis(&genesis);
        let mut verifier = Verifier::new(Backend::Cpu).map_err(disk_failure)?;
        verifier.register_keys(&ledger.owner_keys());
        let byzantine_first = config.validator_count - config.byzantine_count;
        let nodes = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let data_dir = dir.join(format!("validator-{index}"));
                std::fs::create_dir_all(&data_dir).map_err(disk_failure)?;
                Ok(SimNode {
                    key: *key,
                    byzantine: index >= byzantine_first,
                    dead: false,
                    data_dir,
                    disk: Arc::new(SimDisk::default()),
                    driver: None,
                    incarnation: 0,
                    wake_at: None,
                    swapped: HashMap::new(),
                })
            })
            .collect::<Result<Vec<_>, ClusterSimFailure>>()?;
        let report = ClusterSimReport {
            seed: config.seed,
            validator_count: config.validator_count,
            byzantine_count: config.byzantine_count,
            ..ClusterSimReport::default()
        };
        Ok(Sim {
            keys: Rc::new(keys.iter().map(crate::keys::public_key_of).collect()),
            genesis,
            rng,
            clock: SimClock {
                base: Instant::now(),
                now_ms: Rc::new(Cell::new(0)),
            },
            queue: EventQueue::default(),
            nodes,
            outbox: Rc::new(RefCell::new(Vec::new())),
            vote_failure: Rc::new(RefCell::new(None)),
            verifier: Arc::new(verifier),
            workload,
            acks: unbounded(),
            acknowledged: Vec::new(),
            healed: false,
            partition_side_mask: None,
            broken: std::collections::BTreeSet::new(),
            delivery_order: HashMap::new(),
            headers: BTreeMap::new(),
            report,
            config,
        })
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms.get()
    }

    fn schedule(&mut self, delay_ms: u64, event: SimEvent) {
        self.queue.push(self.now_ms() + delay_ms, event);
    }

    fn honest(&self) -> impl Iterator<Item = (usize, &SimNode)> {
        self.nodes.iter().enumerate().filter(|(_, n)| !n.byzantine)
    }

    /// Honest validators that have not crashed for good: those liveness is asked of.
    fn honest_alive(&self) -> impl Iterator<Item = (usize, &SimNode)> {
        self.honest().filter(|(_, n)| !n.dead)
    }

    fn height_of(&self, node: usize) -> u64 {
        self.nodes[node]
            .driver
            .as_ref()
            .map_or(0, |driver| driver.host.tip.height)
    }

    fn run(&mut self) -> Result<ClusterSimReport, ClusterSimFailure> {
        self.schedule(self.config.faults.fault_phase_ms, SimEvent::Heal);
        let nodes = self.config.validator_count;
        if let Some((start, end, side_mask)) =
            self.config.faults.partition_plan(&mut self.rng, nodes)
        {
            self.schedule(start, SimEvent::PartitionStart { side_mask });
            self.schedule(end, SimEvent::PartitionEnd);
        }
        self.schedule(1, SimEvent::Client);
        if let Some((node, at_ms)) = self.config.crashed_for_good {
            self.schedule(at_ms, SimEvent::CrashForGood { node });
        }
        for node in 0..self.nodes.len() {
            self.start(node)?;
        }
        let mut target = None;
        while let Some((time_ms, event)) = self.queue.pop() {
            self.clock.now_ms.set(time_ms);
            self.report.events += 1;
            if self.report.events > self.config.events_max {
                return Err(ClusterSimFailure::EventBudget {
                    events_max: self.config.events_max,
                });
            }
            if let SimEvent::Heal = event {
                self.heal()?;
                let reached = self.honest_alive().map(|(i, _)| self.height_of(i)).max();
                target = Some(reached.unwrap_or(0) + self.config.heights_after_heal);
                continue;
            }
            self.process(event)?;
            if let Some(target) = target {
                let heights: Vec<u64> = (0..self.nodes.len()).map(|i| self.height_of(i)).collect();
                if self.honest_alive().all(|(i, _)| heights[i] >= target) {
                    break;
                }
                if self.now_ms() > self.report.heal_ms + self.config.liveness_ms_max {
                    return Err(ClusterSimFailure::Liveness {
                        heal_ms: self.report.heal_ms,
                        now_ms: self.now_ms(),
                        heights,
                        target,
                    });
                }
            }
        }
        self.check_logs()?;
        self.check_acknowledged()?;
        self.report.end_ms = self.now_ms();
        self.report.heights = (0..self.nodes.len()).map(|i| self.height_of(i)).collect();
        Ok(self.report.clone())
    }

    fn heal(&mut self) -> Result<(), ClusterSimFailure> {
        self.healed = true;
        self.partition_side_mask = None;
        self.report.heal_ms = self.now_ms();
        for node in 0..self.nodes.len() {
            self.nodes[node].disk.plan_crash(None);
            if self.nodes[node].driver.is_none() && !self.nodes[node].dead {
                self.start(node)?;
            }
        }
        for (a, b) in std::mem::take(&mut self.broken) {
            self.connect(a, b)?;
        }
        Ok(())
    }

    /// The link between `a` and `b` is up again: both ends hear of it (and offer each
    /// other their height's messages and ask for blocks, as a node does).
    fn connect(&mut self, a: usize, b: usize) -> Result<(), ClusterSimFailure> {
        let (key_a, key_b) = (self.keys[a], self.keys[b]);
        self.step(a, |driver| {
            driver.on_peer_event(PeerEvent::Connected { peer: key_b })
        })?;
        self.step(b, |driver| {
            driver.on_peer_event(PeerEvent::Connected { peer: key_a })
        })
    }

    /// The link between `a` and `b` breaks: what is sent on it is lost until it connects
    /// again, after a reconnect delay (and not across a partition).
    fn break_link(&mut self, a: usize, b: usize) {
        let link = (a.min(b), a.max(b));
        if self.broken.insert(link) {
            let delay = self.rng.range(20, 400);
            self.schedule(
                delay,
                SimEvent::Reconnect {
                    a: link.0,
                    b: link.1,
                },
            );
        }
    }

    fn process(&mut self, event: SimEvent) -> Result<(), ClusterSimFailure> {
        match event {
            SimEvent::Deliver {
                from,
                to,
                kind,
                payload,
            } => {
                let peer = self.keys[from];
                let event = PeerEvent::Frame {
                    peer,
                    kind,
                    payload,
                };
                self.step(to, |driver| driver.on_peer_event(event))
            }
            SimEvent::Wake { node, incarnation } => {
                let node_state = &mut self.nodes[node];
                if node_state.incarnation != incarnation
                    || node_state.wake_at != Some(self.clock.now_ms.get())
                {
                    return Ok(());
                }
                node_state.wake_at = None;
                self.step(node, |_| Ok(()))
            }
            SimEvent::Restart { node } => {
                if self.nodes[node].driver.is_none() && !self.nodes[node].dead {
                    self.start(node)?;
                }
                Ok(())
            }
            SimEvent::Reconnect { a, b } => {
                if !self.broken.contains(&(a, b)) {
                    return Ok(());
                }
                if self.across_partition(a, b) {
                    let delay = self.rng.range(20, 400);
                    self.schedule(delay, SimEvent::Reconnect { a, b });
                    return Ok(());
                }
                self.broken.remove(&(a, b));
                self.connect(a, b)
            }
            SimEvent::Client => {
                let interval = self.config.client_interval_ms_max;
                let next = self.rng.range(1, interval);
                self.schedule(next, SimEvent::Client);
                self.submit()
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
            SimEvent::CrashForGood { node } => {
                self.nodes[node].dead = true;
                if self.nodes[node].driver.is_some() {
                    self.report.crashes += 1;
                    self.crash(node)?;
                }
                Ok(())
            }
        }
    }

    /// A client's transaction, to a random running honest validator with room for it.
    fn submit(&mut self) -> Result<(), ClusterSimFailure> {
        let up: Vec<usize> = self
            .honest()
            .filter(|(_, node)| node.driver.as_ref().is_some_and(|d| d.has_room()))
            .map(|(index, _)| index)
            .collect();
        if up.is_empty() {
            return Ok(());
        }
        let node = up[self.rng.range(0, up.len() as u64 - 1) as usize];
        let index = self.report.transactions_submitted;
        let record = (self.workload)(&mut self.rng, index);
        self.report.transactions_submitted += 1;
        let pending = PendingTx {
            record,
            reply: self.acks.0.clone(),
            received_at: self.clock.now(),
            lane: crate::mempool::COMMON_LANE,
        };
        let batch = VerifiedBatch {
            txs: vec![pending],
            tx_root: None,
            verified_at: self.clock.now(),
        };
        self.step(node, move |driver| {
            driver.add_local(batch);
            Ok(())
        })
    }

    /// Builds `node` from its data directory as a node starts (log, checkpoints, state
    /// file) and tells it and the running validators that their links are up.
    fn start(&mut self, node: usize) -> Result<(), ClusterSimFailure> {
        let index = node;
        let node = &mut self.nodes[index];
        let mut validator = ValidatorConfig::new(
            node.key,
            "127.0.0.1:0".parse().expect("address"),
            Vec::new(),
        );
        validator.timeouts = self.config.timeouts;
        validator.empty_block_interval = Duration::from_millis(self.config.empty_block_interval_ms);
        validator.pool_tx_max = 4_096;
        let mut config = NodeConfig::new(node.data_dir.clone());
        config.backend = Backend::Cpu;
        config.block_tx_max = 256;
        config.mempool_tx_max = 4_096;
        config.log.segment_bytes = 1 << 20;
        config.log.entry_bytes_max = 256 << 10;
        config.file_ops = node.disk.clone();
        config.checkpoint_interval_blocks = self.config.checkpoint_interval_blocks;
        // Blocks only: a cadence of block time or log bytes would do as well, but the
        // simulated runs are short.
        config.checkpoint_interval_ms = 0;
        config.checkpoint_log_bytes = 0;
        let recovery = |reason: String| ClusterSimFailure::Recovery {
            node: index,
            reason,
        };
        let log = open_log(&config, true).map_err(|e| recovery(e.to_string()))?;
        if log.recovery().cut_damaged_entry.is_some() {
            self.report.entries_cut_for_repair += 1;
        }
        let recovered = recover(&self.genesis, &log, &node.data_dir.join(CHECKPOINTS_DIR))
            .map_err(|e| recovery(e.to_string()))?;
        let log = Arc::new(std::sync::RwLock::new(log));
        let verifier = Arc::clone(&self.verifier);
        let stage =
            stage_parts(&config, &validator, &recovered, &log, verifier).map_err(recovery)?;
        let shared = Arc::new(Shared::new(&self.genesis, &config, NodeMetrics::new()));
        let limits = ExecutorLimits {
            block_tx_max: config.block_tx_max,
            checkpoints: CheckpointCadence::new(
                config.checkpoint_cadence(),
                self.genesis.hash(),
                recovered.height,
            ),
            archive_dir: None,
        };
        let durable_votes = (!node.byzantine).then(|| DurableVotes {
            data_dir: node.data_dir.clone(),
            failure: Rc::clone(&self.vote_failure),
        });
        let mut driver = Driver::new(DriverParts {
            shared,
            limits,
            recovered,
            stage,
            verify_pool: None,
            clock: self.clock.clone(),
            links: SimLinks {
                node: index,
                keys: Rc::clone(&self.keys),
                outbox: Rc::clone(&self.outbox),
                durable_votes,
            },
        });
        if let Some(bug) = self.config.injected_bug {
            driver.inject_bug(bug);
        }
        node.driver = Some(driver);
        node.incarnation += 1;
        node.wake_at = None;
        if node.incarnation > 1 {
            self.report.restarts += 1;
        }
        if !self.healed
            && !self.nodes[index].byzantine
            && self.rng.chance(self.config.sync_crash_per_mille)
        {
            let syncs = self.rng.range(0, 60);
            self.nodes[index].disk.plan_crash(Some(syncs));
        }
        // The links come up: both ends hear of it.
        for other in 0..self.nodes.len() {
            if other != index && self.nodes[other].driver.is_some() {
                self.broken.remove(&(index.min(other), index.max(other)));
                self.connect(index, other)?;
            }
        }
        self.step(index, |_| Ok(()))
    }

    /// Runs `f` on `node`'s driver (nothing when it is down), then what the stage does
    /// between events, and carries out the consequences: frames out, passed-on transactions
    /// verified and pooled, a crash, the next wake-up, and the checks.
    fn step(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut Driver<SimClock, SimLinks>) -> Result<(), String>,
    ) -> Result<(), ClusterSimFailure> {
        let Some(driver) = self.nodes[node].driver.as_mut() else {
            return Ok(());
        };
        let mut outcome = f(driver).and_then(|()| driver.tick());
        if outcome.is_ok() {
            outcome = Self::pool_passed_on(driver, &self.verifier);
        }
        self.send_outbox()?;
        if let Some(failure) = self.vote_failure.borrow_mut().take() {
            return Err(failure);
        }
        self.collect_acks();
        if let Err(reason) = outcome {
            if self.nodes[node].disk.crashed() {
                self.report.sync_crashes += 1;
                return self.crash(node);
            }
            if self.nodes[node].byzantine {
                return self.crash(node);
            }
            return Err(ClusterSimFailure::Fatal { node, reason });
        }
        self.check_tip(node)?;
        if !self.healed
            && !self.nodes[node].byzantine
            && self.rng.chance(self.config.faults.crash_per_mille)
        {
            self.report.crashes += 1;
            return self.crash(node);
        }
        self.schedule_wake(node);
        Ok(())
    }

    /// Transactions other validators passed on, which the node queued for its signature
    /// stage: verified as that stage does and pooled.
    fn pool_passed_on(
        driver: &mut Driver<SimClock, SimLinks>,
        verifier: &Verifier,
    ) -> Result<(), String> {
        let mut pending = Vec::new();
        driver.shared.mempool.drain_into(&mut pending, usize::MAX);
        if pending.is_empty() {
            return Ok(());
        }
        let mut messages = Vec::new();
        let network_id = driver.shared.network_id;
        let records = pending.iter().map(|tx| &tx.record);
        let verdicts = verify_signatures(verifier, network_id, records, &mut messages);
        let txs = pending
            .into_iter()
            .zip(verdicts)
            .filter_map(|(tx, ok)| ok.then_some(tx))
            .collect();
        let verified_at = driver.now();
        driver.add_local(VerifiedBatch {
            txs,
            tx_root: None,
            verified_at,
        });
        driver.tick()
    }

    fn schedule_wake(&mut self, node: usize) {
        let Some(driver) = &self.nodes[node].driver else {
            return;
        };
        let wake_ms = self.clock.ms_of(driver.next_wake()).max(self.now_ms() + 1);
        let state = &mut self.nodes[node];
        if state.wake_at.is_none_or(|at| wake_ms < at) {
            state.wake_at = Some(wake_ms);
            let incarnation = state.incarnation;
            let delay = wake_ms - self.now_ms();
            self.schedule(delay, SimEvent::Wake { node, incarnation });
        }
    }

    /// `node` stops: its driver (and log) are dropped, its disk loses or tears what was not
    /// synced, and it restarts later (at healing at the latest).
    fn crash(&mut self, node: usize) -> Result<(), ClusterSimFailure> {
        let state = &mut self.nodes[node];
        state.driver = None;
        state.incarnation += 1;
        state.wake_at = None;
        let damaged = state.disk.crash(&mut self.rng).map_err(disk_failure)?;
        self.report.writes_damaged += damaged;
        if self.config.damage_last_entry_per_mille > 0
            && !state.byzantine
            && self.rng.chance(self.config.damage_last_entry_per_mille)
            && files::damage_last_entry(&state.data_dir.join("log"), &mut self.rng)
                .map_err(disk_failure)?
        {
            self.report.entries_damaged += 1;
        }
        if state.dead {
            return Ok(());
        }
        if self.healed {
            return self.start(node);
        }
        let downtime = self.rng.range(1, self.config.faults.downtime_ms_max);
        self.schedule(downtime, SimEvent::Restart { node });
        Ok(())
    }

    fn collect_acks(&mut self) {
        while let Ok(ack) = self.acks.1.try_recv() {
            if ack.height.is_some() {
                self.report.transactions_acknowledged += 1;
                *self
                    .report
                    .acknowledged_by_code
                    .entry(ack.code.name())
                    .or_default() += 1;
                if ack.code == ResultCode::Ok {
                    self.report.transactions_ok += 1;
                }
                self.acknowledged.push(ack);
            }
        }
    }

    /// An honest validator's newest block must be the block every other honest validator
    /// has at that height.
    fn check_tip(&mut self, node: usize) -> Result<(), ClusterSimFailure> {
        if self.nodes[node].byzantine {
            return Ok(());
        }
        let Some(driver) = &self.nodes[node].driver else {
            return Ok(());
        };
        let tip = driver.host.tip;
        if tip.height == 0 {
            return Ok(());
        }
        let log = driver.log.read().expect("log lock");
        let header = match log.entries(tip.height - 1).map(|mut e| e.next()) {
            Ok(Some(Ok((_, entry)))) => block::decode_entry(entry).map(|view| view.header),
            _ => return Ok(()), // archived or being written: compared at the end
        };
        let Ok(header) = header else {
            return Ok(());
        };
        drop(log);
        self.compare_header(node, tip.height, header)
    }

    fn compare_header(
        &mut self,
        node: usize,
        height: u64,
        header: BlockHeader,
    ) -> Result<(), ClusterSimFailure> {
        match self.headers.get(&height) {
            Some((first, first_header)) if *first_header != header => {
                Err(ClusterSimFailure::Safety {
                    height,
                    first: *first,
                    second: node,
                })
            }
            Some(_) => Ok(()),
            None => {
                self.headers.insert(height, (node, header));
                let committed_at = &mut self.report.committed_at_ms;
                if committed_at.len() as u64 + 1 == height {
                    committed_at.push(self.clock.now_ms.get());
                }
                Ok(())
            }
        }
    }

    /// Every honest validator's log, block by block, against the others.
    fn check_logs(&mut self) -> Result<(), ClusterSimFailure> {
        let honest: Vec<usize> = self.honest().map(|(index, _)| index).collect();
        for node in honest {
            let Some(driver) = &self.nodes[node].driver else {
                continue;
            };
            let log = Arc::clone(&driver.log);
            let log = log.read().expect("log lock");
            let entries = log.entries(0).map_err(disk_failure)?;
            for (height, item) in (1u64..).zip(entries) {
                let (_, entry) = item.map_err(disk_failure)?;
                let view = block::decode_entry(entry).map_err(disk_failure)?;
                self.compare_header(node, height, view.header)?;
                self.report.heights_compared = self.report.heights_compared.max(height);
            }
        }
        Ok(())
    }

    /// Every transaction acknowledged with a height is in that block of an honest log with
    /// the acknowledged result.
    fn check_acknowledged(&self) -> Result<(), ClusterSimFailure> {
        let Some(driver) = self
            .honest()
            .filter_map(|(_, node)| node.driver.as_ref())
            .max_by_key(|driver| driver.host.tip.height)
        else {
            return Ok(());
        };
        let log = driver.log.read().expect("log lock");
        let mut blocks: HashMap<u64, HashMap<u128, ResultCode>> = HashMap::new();
        for (height, item) in (1u64..).zip(log.entries(0).map_err(disk_failure)?) {
            let (_, entry) = item.map_err(disk_failure)?;
            let view = block::decode_entry(entry).map_err(disk_failure)?;
            let block = blocks.entry(height).or_default();
            for (record, &code) in view.records.iter().zip(view.results) {
                let code = ResultCode::from_wire(code).expect("decode_entry checked the codes");
                block.insert(record.id(), code);
            }
        }
        for ack in &self.acknowledged {
            let height = ack
                .height
                .expect("only acknowledgements with a height are kept");
            let found = match blocks.get(&height).map(|block| block.get(&ack.id)) {
                None => "the final chain has no such block".to_string(),
                Some(None) => "that block does not hold it".to_string(),
                Some(Some(code)) if *code == ack.code => continue,
                Some(Some(code)) => format!("that block has result {}", code.name()),
            };
            return Err(ClusterSimFailure::Acknowledged {
                id: ack.id,
                code: ack.code.name().to_string(),
                height,
                found,
            });
        }
        Ok(())
    }

    /// Delivers what the validators sent, through the network's faults (and a Byzantine
    /// sender's lies).
    fn send_outbox(&mut self) -> Result<(), ClusterSimFailure> {
        let frames: Vec<Outgoing> = std::mem::take(&mut *self.outbox.borrow_mut());
        for frame in frames {
            let frame = if self.nodes[frame.from].byzantine {
                self.lie(frame)
            } else {
                frame
            };
            self.transmit(frame);
        }
        Ok(())
    }

    /// What a Byzantine validator sends instead of `frame`: its own proposals, often, with
    /// a wrong previous-block hash (the same lie to everybody), and its votes, now and then,
    /// for another value (different lies to different peers).
    fn lie(&mut self, mut frame: Outgoing) -> Outgoing {
        let from = frame.from;
        let network_id = self.genesis.network_id;
        match frame.kind {
            wire::KIND_PROPOSAL_BODY => {
                let Ok(body) = ProposalBody::decode(&frame.payload) else {
                    return frame;
                };
                // Validators are in node order in the run's genesis.
                if u32::from_le_bytes(body.header.proposer) as usize != from {
                    return frame;
                }
                let id = body.id();
                let swap = match self.nodes[from].swapped.get(&id) {
                    Some(swap) => *swap,
                    None => {
                        let swap = self.rng.chance(600).then(|| {
                            let mut bad = body.clone();
                            bad.header.previous_hash[0] ^= 0x5a;
                            bad.id()
                        });
                        if swap.is_some() {
                            self.report.bad_proposals += 1;
                        }
                        self.nodes[from].swapped.insert(id, swap);
                        swap
                    }
                };
                if swap.is_some() {
                    let mut bad = body;
                    bad.header.previous_hash[0] ^= 0x5a;
                    frame.payload = bad.encode();
                }
                frame
            }
            wire::KIND_CONSENSUS => {
                let Ok(message) = SignedMessage::decode(&frame.payload) else {
                    return frame;
                };
                if *message.sender() != self.keys[from] {
                    return frame;
                }
                let body = match *message.body() {
                    Body::Proposal {
                        height,
                        round,
                        value,
                        valid_round,
                    } => match self.nodes[from].swapped.get(&value) {
                        Some(Some(bad)) => Body::Proposal {
                            height,
                            round,
                            value: *bad,
                            valid_round,
                        },
                        _ => return frame,
                    },
                    Body::Vote {
                        kind,
                        height,
                        round,
                        ..
                    } if self.rng.chance(300) => {
                        let value = self.rng.bytes32();
                        Body::Vote {
                            kind,
                            height,
                            round,
                            value: self.rng.chance(500).then_some(value),
                        }
                    }
                    Body::Vote { .. } => return frame,
                };
                let lie = SignedMessage::sign(body, network_id, &self.nodes[from].key);
                frame.payload = lie.encode().to_vec();
                frame
            }
            _ => frame,
        }
    }

    fn across_partition(&self, a: usize, b: usize) -> bool {
        self.partition_side_mask
            .is_some_and(|mask| (mask >> a) & 1 != (mask >> b) & 1)
    }

    /// Sends `frame` on its link: lost when the link is broken, or breaks it (a lost frame,
    /// a partition); otherwise delivered after a delay, after every frame sent on the link
    /// before it, and in the fault phase sometimes twice (a peer relaying it).
    fn transmit(&mut self, frame: Outgoing) {
        self.report.frames_sent += 1;
        let (from, to) = (frame.from, frame.to);
        if self.broken.contains(&(from.min(to), from.max(to))) {
            self.report.frames_lost += 1;
            return;
        }
        let copies = if self.healed {
            1
        } else {
            if self.across_partition(from, to) || self.rng.chance(self.config.faults.loss_per_mille)
            {
                self.report.frames_lost += 1;
                self.break_link(from, to);
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
            let last = self.delivery_order.entry((from, to)).or_insert(0);
            let at = (self.clock.now_ms.get() + delay).max(*last);
            *last = at;
            let delay = at - self.clock.now_ms.get();
            self.schedule(
                delay,
                SimEvent::Deliver {
                    from,
                    to,
                    kind: frame.kind,
                    payload: frame.payload.clone(),
                },
            );
        }
    }
}
