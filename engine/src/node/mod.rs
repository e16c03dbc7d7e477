//! One node: the pipeline of docs/DESIGN.md, stages as threads joined by bounded queues, one
//! file per stage.
//!
//! ```text
//! submit (ingress.rs: format checks) -> mempool (ArrayQueue, Busy when full)
//!   -> sigverify.rs   signature batches through tally-kernels
//!   -> execute.rs     a node alone: blocks cut from verified batches and sealed
//!      consensus/     a validator: blocks proposed, decided by Tendermint, then sealed
//!   -> commit.rs      append, group commit, checkpoints, then acknowledgements
//! ```
//!
//! `seal.rs` is the one block sealer and header check every path uses (execution, the
//! consensus stage, recovery); `recovery.rs` builds the state a node starts from;
//! `config.rs` holds the limits and refuses a configuration that cannot work; `metrics.rs`
//! what the node measures and its `/metrics` page.
//!
//! A transaction is acknowledged with its block height only after the block's log entry is
//! durable. A flush error stops the node (docs/DESIGN.md, decision 5): the log thread records
//! the reason, the pipeline stops, and submit answers `Stopped` with that reason.
//!
//! Dependencies inside the engine run one way: `node` uses `consensus` (the machine, its
//! messages and `wire`), `net::peers` (validator links), `ledger`, `log` and `metrics`
//! (primitives); `validator` (names for operators, and `cluster`) and `net`'s server use
//! `node`, never the reverse.

mod background;
pub(crate) mod checkpointer;
pub(crate) mod commit;
mod config;
pub(crate) mod consensus;
mod execute;
mod indexer;
mod ingress;
mod metrics;
mod recovery;
pub mod seal;
mod sigverify;

pub use checkpointer::CheckpointCadenceConfig;
pub(crate) use commit::SealedBlock;
pub(crate) use config::checkpoint_cadence_problem;
pub use config::{Backend, NodeConfig, QueueLimits, CHECKPOINT_INTERVAL_MS_MIN};
pub use consensus::ValidatorConfig;
pub(crate) use execute::{now_ms, serve_ledger_queries, ExecutorLimits};
pub use ingress::{AckListener, LedgerQuery, NodeHandle, LEDGER_QUERY_QUEUE_MAX};
pub use metrics::{render_metrics, BatchSizes, NodeMetrics, StageLatency};
pub use recovery::{
    checkpoints_dir, recover, recover_observed, replay, replay_dir, BlockObserver, Recovered,
    RecoveryCost,
};
pub(crate) use recovery::{open_log, CHECKPOINTS_DIR};
pub(crate) use sigverify::verify_signatures;

use crate::genesis::Genesis;
use crate::ledger::Ledger;
use crate::log::checkpoint::CheckpointError;
use crate::log::LogError;
use crate::mempool::{Ack, Mempool, PendingTx, LINKED_CHAIN_TX_MAX};
use crate::tx::{linked_units, TxRecord};
use checkpointer::{CheckpointCadence, CheckpointStore};
use commit::log_stage;
use config::check_config;
use crossbeam::channel::{bounded, Receiver, Sender};
use execute::executor_stage;
pub use seal::ChainTip;
use sigverify::sigverify_stage;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tally_kernels::sigverify::{Verifier, VerifierError};

/// A durable block's height and the index keys of its records, for the history indexer.
pub(crate) type IndexedBlock = (u64, Vec<crate::log::history::RecordKeys>);

/// Most durable blocks waiting for the history indexer.
const INDEX_FEED_BLOCKS_MAX: usize = 4_096;

/// Why a node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid node configuration: {0}")]
    Config(String),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    #[error("log entry {sequence} is not a valid block: {reason}")]
    BadBlock { sequence: u64, reason: String },
    #[error("replaying block {height} gave {what} different from the log: the log was written by different code or a different genesis, or it is damaged")]
    ReplayMismatch { height: u64, what: &'static str },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("checkpoint {path} is at height {height} but the log holds only {log_height} blocks: the log lost durable blocks; restore it from a replica or backup")]
    CheckpointAheadOfLog {
        path: PathBuf,
        height: u64,
        log_height: u64,
    },
    #[error("checkpoint {path} does not match block {height} of the log (different block hash): keep all files and restore from a replica or backup")]
    CheckpointMismatch { path: PathBuf, height: u64 },
    #[error(transparent)]
    Peers(#[from] crate::net::peers::PeerError),
    #[error("validator: {0}")]
    Validator(String),
    #[error(transparent)]
    Events(#[from] crate::events::JournalError),
    #[error(transparent)]
    TaxDays(#[from] crate::log::tax_journal::TaxJournalError),
    #[error("{0}")]
    HistoryIndex(String),
}

/// Why a submission was not taken (a protocol type: the client library returns it too).
pub use tally_protocol::submit::SubmitError;

/// Counters published by the pipeline.
#[derive(Default)]
pub struct NodeCounters {
    pub submitted: AtomicU64,
    pub rejected_at_ingress: AtomicU64,
    pub bad_signatures: AtomicU64,
    pub executed: AtomicU64,
    pub blocks: AtomicU64,
    pub height: AtomicU64,
    /// The ledger's time after the last executed block (ms): ingress refuses a record whose
    /// `valid_until` is before it, as no later block can execute it.
    pub block_time_ms: AtomicU64,
    pub flushes: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) network_id: u64,
    genesis_hash: [u8; 32],
    pub(crate) mempool: Mempool,
    pub(crate) counters: NodeCounters,
    pub(crate) metrics: NodeMetrics,
    limits: QueueLimits,
    ack_listeners: RwLock<Vec<AckListener>>,
    pub(crate) ledger_queries: (Sender<LedgerQuery>, Receiver<LedgerQuery>),
    pub(crate) stopping: AtomicBool,
    /// Submit calls under way: the signature stage may end only when none is, so that a
    /// submit racing with shutdown never leaves a transaction unanswered in the mempool.
    submits_in_flight: AtomicUsize,
    fatal: Mutex<Option<String>>,
    sigverify_thread: Mutex<Option<std::thread::Thread>>,
    /// Most transactions in one linked chain taken at ingress (see `linked_chain_tx_max`).
    linked_chain_tx_max: usize,
    /// The reply channel of transactions other validators pass on: their clients are
    /// answered by their own node, so nobody listens here (sends fail silently). It also
    /// marks such transactions in verified batches.
    pub(crate) gossip_reply: Sender<Ack>,
    /// The revocation list of the node's ports: committed revocations go in here.
    pub(crate) revocations: Arc<crate::revocation::Revocations>,
    /// The client port's directory of accounts, if the node serves one.
    pub(crate) directory: Option<Arc<crate::net::access::Directory>>,
    /// The node's log, for the queries that read it (history), once the node started. Weak:
    /// the pipeline owns the log, which closes (and unlocks) when the node stops, whatever
    /// handles are still held.
    log: std::sync::OnceLock<std::sync::Weak<RwLock<crate::log::Log>>>,
    /// The account events of durable blocks, for subscriptions (absent in the consensus
    /// simulator, which keeps none).
    pub(crate) events: std::sync::OnceLock<Arc<crate::events::EventJournal>>,
    /// The tax-total rows of finished business days, for tax reports older than the
    /// ledger's refund window (absent in the consensus simulator).
    pub(crate) tax_days: std::sync::OnceLock<Arc<crate::log::tax_journal::TaxDayJournal>>,
    /// The history index over the log and the archive, for the history queries.
    history: std::sync::OnceLock<Arc<RwLock<crate::log::history::HistoryIndex>>>,
    /// Durable blocks' index keys, from the commit to the history indexer (bounded: what does
    /// not fit, the indexer reads back from the log).
    pub(crate) index_feed: (Sender<IndexedBlock>, Receiver<IndexedBlock>),
    /// The node's archive directory, where history before the live log is read from.
    pub(crate) archive_dir: Option<PathBuf>,
}

impl Shared {
    /// The state the stages of a node share, for `genesis` and `config`.
    pub(crate) fn new(genesis: &Genesis, config: &NodeConfig, metrics: NodeMetrics) -> Shared {
        Shared {
            network_id: genesis.network_id,
            genesis_hash: genesis.hash(),
            mempool: Mempool::new(config.mempool_tx_max),
            counters: NodeCounters::default(),
            metrics,
            limits: QueueLimits {
                mempool_tx_max: config.mempool_tx_max,
                verified_queue_batches_max: config.verified_queue_batches_max,
                commit_queue_blocks_max: config.commit_queue_blocks_max,
            },
            ack_listeners: RwLock::new(Vec::new()),
            ledger_queries: bounded(LEDGER_QUERY_QUEUE_MAX),
            stopping: AtomicBool::new(false),
            submits_in_flight: AtomicUsize::new(0),
            fatal: Mutex::new(None),
            sigverify_thread: Mutex::new(None),
            gossip_reply: bounded(0).0,
            revocations: Arc::clone(&config.revocations),
            directory: config.directory.clone(),
            log: std::sync::OnceLock::new(),
            events: std::sync::OnceLock::new(),
            tax_days: std::sync::OnceLock::new(),
            history: std::sync::OnceLock::new(),
            index_feed: bounded(INDEX_FEED_BLOCKS_MAX),
            archive_dir: config.archive_dir.clone(),
            linked_chain_tx_max: LINKED_CHAIN_TX_MAX
                .min(config.mempool_tx_max)
                .min(config.block_tx_max),
        }
    }

    pub(crate) fn stopped_reason(&self) -> Option<String> {
        if let Some(reason) = self.fatal.lock().expect("fatal lock").clone() {
            return Some(reason);
        }
        // SeqCst pairs with the in-flight count in `submit` (see `sigverify_stage`).
        self.stopping
            .load(Ordering::SeqCst)
            .then(|| "the node is shutting down".to_string())
    }

    /// The reason the node stopped on an error, if it did.
    pub(crate) fn fatal_reason(&self) -> Option<String> {
        self.fatal.lock().expect("fatal lock").clone()
    }

    pub(crate) fn set_fatal(&self, reason: String) {
        tracing::error!(%reason, "node stopping");
        let mut fatal = self.fatal.lock().expect("fatal lock");
        fatal.get_or_insert(reason);
        self.stopping.store(true, Ordering::SeqCst);
        drop(fatal);
        // Whoever forwards acknowledgements learns of the stop at once.
        self.notify_ack_listeners();
    }

    /// Queues transactions another validator passed on for this node's own signature stage
    /// (whole chains as one unit); what does not fit is dropped.
    pub(crate) fn push_gossip(&self, records: Vec<TxRecord>) {
        // Clients come first: past half full, passed-on transactions are dropped (the
        // validator that took them still proposes them, and they are verified then).
        if self.mempool.len() >= self.mempool.capacity() / 2 {
            self.metrics.busy_tx.add(records.len() as u64);
            return;
        }
        let received_at = Instant::now();
        let pending = |record: &TxRecord| PendingTx {
            record: *record,
            reply: self.gossip_reply.clone(),
            received_at,
            lane: crate::mempool::COMMON_LANE,
        };
        for unit in linked_units(&records, TxRecord::is_linked) {
            let pushed = if unit.len() == 1 {
                self.mempool.push(pending(&records[unit.start])).is_ok()
            } else {
                let chain: Box<[PendingTx]> = records[unit.clone()].iter().map(pending).collect();
                self.mempool.push_chain(chain).is_ok()
            };
            if !pushed {
                self.metrics
                    .busy_tx
                    .add((records.len() - unit.start) as u64);
                break;
            }
        }
        if let Some(thread) = self.sigverify_thread.lock().expect("lock").as_ref() {
            thread.unpark();
        }
    }

    fn notify_ack_listeners(&self) {
        for listener in self.ack_listeners.read().expect("listeners lock").iter() {
            listener();
        }
    }
}

/// A running node.
pub struct Node {
    handle: NodeHandle,
    threads: Vec<JoinHandle<()>>,
    executor_result: Receiver<Ledger>,
    replayed_height: u64,
    replayed_money_in_circulation: i128,
    genesis_hash: [u8; 32],
    start_cost: StartCost,
}

/// Where a node's start spends its time, in the order it goes (docs/STORAGE.md, "Restart
/// time"): opening the log (every live entry's checksum verified), opening the event and
/// tax-day journals, recovery (the newest good checkpoint loaded, the accounts' Merkle tree
/// built, the blocks after it executed again), registering the owners' keys with the verifier, and opening the history
/// index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartCost {
    pub log_open: Duration,
    /// Entries in the live log (after the archived prefix), each verified by the open.
    pub live_log_entries: u64,
    pub journals_open: Duration,
    pub recovery: RecoveryCost,
    pub verifier_keys: Duration,
    pub history_open: Duration,
    /// From the start of `Node::start` until its threads run.
    pub total: Duration,
}

impl std::fmt::Display for StartCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let recovery = &self.recovery;
        write!(
            f,
            "{} ms: log open {} ms ({} live entries verified), journals {} ms, ",
            millis(self.total),
            millis(self.log_open),
            self.live_log_entries,
            millis(self.journals_open)
        )?;
        match recovery.checkpoint_height {
            Some(height) => write!(
                f,
                "checkpoint of height {height} loaded in {} ms, ",
                millis(recovery.checkpoint_load)
            )?,
            None => write!(
                f,
                "no checkpoint (the genesis state in {} ms), ",
                millis(recovery.checkpoint_load)
            )?,
        }
        write!(
            f,
            "state tree {} ms, {} blocks ({} records) replayed in {} ms, verifier keys {} ms, history index {} ms",
            millis(recovery.state_tree),
            recovery.replayed_blocks,
            recovery.replayed_records,
            millis(recovery.replay),
            millis(self.verifier_keys),
            millis(self.history_open)
        )
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// What a stopped node leaves: the final state and how it stopped.
pub struct NodeOutcome {
    pub ledger: Ledger,
    pub height: u64,
    pub state_root: [u8; 32],
    pub fatal: Option<String>,
}

/// Transactions that passed the signature stage, for the stage that orders them into blocks:
/// only valid ones, in mempool order, every linked chain whole and contiguous (a chain with a
/// bad signature was answered and left out whole). A batch holds at most `block_tx_max`
/// transactions, so a block cut between batches never cuts a chain.
pub(crate) struct VerifiedBatch {
    pub(crate) txs: Vec<PendingTx>,
    /// The transaction root of exactly these records, when the GPU block path computed it
    /// with their signatures: the executor then makes them a block of their own.
    pub(crate) tx_root: Option<tally_kernels::merkle::Hash>,
    /// When the signature stage finished the batch (for the `verified_wait` stage).
    pub(crate) verified_at: Instant,
}

impl Node {
    /// Opens the data directory, replays the log and starts the pipeline threads.
    pub fn start(genesis: &Genesis, config: NodeConfig) -> Result<Node, NodeError> {
        check_config(&config)?;
        let starting = Instant::now();
        let log = open_log(&config, config.validator.is_some())?;
        let log_open = starting.elapsed();
        let journals_opening = Instant::now();
        let events = Arc::new(crate::events::EventJournal::open(
            &config.data_dir.join(crate::events::EVENTS_DIR),
        )?);
        let tax_days = Arc::new(crate::log::tax_journal::TaxDayJournal::open(
            &crate::log::tax_journal::TaxDayJournal::dir_in(&config.data_dir),
        )?);
        let journals_open = journals_opening.elapsed();
        let recovered = recover_observed(
            genesis,
            &log,
            &checkpoints_dir(&config),
            &mut |height, ledger, records, results| {
                let made = crate::events::block_events(ledger, records, results);
                events.append_replayed(height, crate::events::block_stamp(ledger), &made)?;
                if let Some(days) = ledger.last_block_finished_tax_days() {
                    tax_days.append(days)?;
                }
                Ok(())
            },
        )?;
        events.end_at(recovered.height)?;
        // What a write cut short by a crash left behind (never read: not a checkpoint's name).
        crate::log::checkpoint::remove_temporaries(&checkpoints_dir(&config))?;
        let keys_registering = Instant::now();
        let mut verifier = Verifier::new(config.backend)?;
        verifier.register_keys(&recovered.ledger.owner_keys());
        let verifier = Arc::new(verifier);
        let verifier_keys = keys_registering.elapsed();
        let metrics = NodeMetrics::new();
        metrics.set_backend(&backend_in_use(&verifier));

        let shared = Arc::new(Shared::new(genesis, &config, metrics));
        if let Some(directory) = &shared.directory {
            directory.seed(&recovered.ledger);
        }
        for serial in recovered.ledger.revoked_serials() {
            shared
                .revocations
                .revoke(&crate::revocation::serial_hex(serial));
        }
        shared
            .counters
            .height
            .store(recovered.height, Ordering::Release);
        shared
            .counters
            .block_time_ms
            .store(recovered.ledger.time_ms(), Ordering::Release);
        let (verified_tx, verified_rx) = bounded(config.verified_queue_batches_max);
        let (ledger_tx, executor_result) = bounded(1);
        let replayed_height = recovered.height;
        let recovery = recovered.cost;
        let live_log_entries = log
            .next_sequence()
            .saturating_sub(log.first_live_sequence());
        let replayed_money_in_circulation = recovered.ledger.money_in_circulation();

        let log = Arc::new(RwLock::new(log));
        let _ = shared.log.set(Arc::downgrade(&log));
        let _ = shared.events.set(events);
        let _ = shared.tax_days.set(tax_days);
        let history_opening = Instant::now();
        let history = indexer::open_index(&config.data_dir).map_err(NodeError::HistoryIndex)?;
        let history_open = history_opening.elapsed();
        let _ = shared.history.set(Arc::clone(&history));
        let validator = match &config.validator {
            Some(validator) => Some(consensus::runtime(
                genesis,
                &config,
                validator,
                &recovered,
                &log,
                Arc::clone(&verifier),
            )?),
            None => None,
        };
        // A node that builds its own blocks verifies and hashes them together on the GPU (a
        // validator's blocks are its proposer's choice, so it verifies only).
        let gpu_block = match &config.validator {
            None => sigverify::gpu_block_path(&verifier, &recovered.ledger.owner_keys()),
            Some(_) => None,
        };
        let sigverify = {
            let shared = Arc::clone(&shared);
            // On the GPU block path a batch is a block: as large as a block may be.
            let batch_max = if gpu_block.is_some() {
                config.block_tx_max
            } else {
                config.sigverify_batch_tx_max
            };
            spawn("tally-sigverify", Arc::clone(&shared), move || {
                sigverify_stage(&shared, &verifier, gpu_block, batch_max, &verified_tx)
            })
        };
        *shared.sigverify_thread.lock().expect("lock") = Some(sigverify.thread().clone());
        let limits = ExecutorLimits {
            block_tx_max: config.block_tx_max,
            checkpoints: CheckpointCadence::new(
                config.checkpoint_cadence(),
                genesis.hash(),
                recovered.height,
            ),
            archive_dir: config.archive_dir.clone(),
        };
        let mut threads = vec![sigverify];
        {
            let shared_indexer = Arc::clone(&shared);
            let log = Arc::downgrade(&log);
            let archive_dir = config.archive_dir.clone();
            // The pool's threads start now, at the node's priority: a thread inherits its
            // creator's, and the background threads below lower theirs.
            let _ = rayon::current_num_threads();
            threads.push(spawn("tally-indexer", Arc::clone(&shared), move || {
                background::lower_this_thread();
                indexer::indexer_stage(&shared_indexer, &log, &history, archive_dir.as_deref())
            }));
        }
        match validator {
            None => {
                let (sealed_tx, sealed_rx) = bounded(config.commit_queue_blocks_max);
                let shared_executor = Arc::clone(&shared);
                threads.push(spawn("tally-executor", Arc::clone(&shared), move || {
                    let ledger = executor_stage(
                        &shared_executor,
                        recovered,
                        limits,
                        &verified_rx,
                        &sealed_tx,
                    );
                    let _ = ledger_tx.send(ledger);
                }));
                let shared_log = Arc::clone(&shared);
                let group_max = config.group_commit_blocks_max;
                let store = CheckpointStore {
                    dir: checkpoints_dir(&config),
                    file_ops: Arc::clone(&config.file_ops),
                    archive_dir: config.archive_dir.clone(),
                    previous_height: None,
                };
                threads.push(spawn("tally-log", Arc::clone(&shared), move || {
                    log_stage(&shared_log, log, group_max, store, &sealed_rx)
                }));
            }
            // A validator commits each decided block itself (see consensus/).
            Some(runtime) => {
                let shared_consensus = Arc::clone(&shared);
                threads.push(spawn("tally-consensus", Arc::clone(&shared), move || {
                    let ledger = consensus::consensus_stage(
                        &shared_consensus,
                        recovered,
                        limits,
                        runtime,
                        &verified_rx,
                    );
                    let _ = ledger_tx.send(ledger);
                }));
            }
        }
        let start_cost = StartCost {
            log_open,
            live_log_entries,
            journals_open,
            recovery,
            verifier_keys,
            history_open,
            total: starting.elapsed(),
        };
        tracing::info!(
            height = replayed_height,
            total_ms = millis(start_cost.total),
            log_open_ms = millis(log_open),
            live_log_entries,
            journals_open_ms = millis(journals_open),
            checkpoint_height = recovery.checkpoint_height.unwrap_or(0),
            checkpoint_load_ms = millis(recovery.checkpoint_load),
            replayed_blocks = recovery.replayed_blocks,
            replayed_records = recovery.replayed_records,
            state_tree_ms = millis(recovery.state_tree),
            replay_ms = millis(recovery.replay),
            verifier_keys_ms = millis(verifier_keys),
            history_open_ms = millis(history_open),
            "node started: the time split of its start"
        );
        Ok(Node {
            handle: NodeHandle { shared },
            threads,
            executor_result,
            replayed_height,
            replayed_money_in_circulation,
            genesis_hash: genesis.hash(),
            start_cost,
        })
    }

    /// What this node's start read and where the time went (also logged at start).
    pub fn start_cost(&self) -> StartCost {
        self.start_cost
    }

    /// A handle for submitting transactions.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Height reached by replaying the log at start.
    pub fn replayed_height(&self) -> u64 {
        self.replayed_height
    }

    /// Money in circulation in the state recovered at start.
    pub fn replayed_money_in_circulation(&self) -> i128 {
        self.replayed_money_in_circulation
    }

    /// Hash of the genesis this node runs.
    pub fn genesis_hash(&self) -> [u8; 32] {
        self.genesis_hash
    }

    /// Stops taking transactions, lets every accepted one finish (acknowledged when durable),
    /// joins the threads and returns the final state.
    pub fn shutdown(self) -> NodeOutcome {
        let shared = &self.handle.shared;
        shared.stopping.store(true, Ordering::SeqCst);
        shared.notify_ack_listeners();
        self.handle.wake_sigverify();
        for thread in self.threads {
            if thread.join().is_err() {
                shared.set_fatal("a pipeline thread panicked".to_string());
            }
        }
        let ledger = self.executor_result.recv().unwrap_or_else(|_| {
            // Only a panic (a bug) ends the stage without its ledger; its reason is set.
            panic!(
                "the node stopped without its state: {}",
                shared
                    .fatal
                    .lock()
                    .expect("fatal lock")
                    .clone()
                    .unwrap_or_default()
            )
        });
        NodeOutcome {
            height: shared.counters.height.load(Ordering::Acquire),
            state_root: ledger.state_root(),
            ledger,
            fatal: shared.fatal.lock().expect("fatal lock").clone(),
        }
    }
}

impl NodeHandle {
    /// The node's log, for the queries that read it; `None` before it started or once it
    /// stopped. Read it briefly: the log stage waits for readers to append.
    pub fn log(&self) -> Option<Arc<RwLock<crate::log::Log>>> {
        self.shared.log.get().and_then(std::sync::Weak::upgrade)
    }

    /// The node's log as a weak reference, for a query queued for the executor (which must
    /// not keep the node's state alive).
    pub(crate) fn log_weak(&self) -> Option<std::sync::Weak<RwLock<crate::log::Log>>> {
        self.shared.log.get().cloned()
    }

    /// The node's tax-day journal (the tax-total rows of finished business days).
    pub fn tax_days(&self) -> Option<Arc<crate::log::tax_journal::TaxDayJournal>> {
        self.shared.tax_days.get().cloned()
    }

    /// The node's event journal (the account events of its durable blocks).
    pub fn events(&self) -> Option<Arc<crate::events::EventJournal>> {
        self.shared.events.get().cloned()
    }

    /// The node's history index, for the queries that read it.
    pub fn history_index(&self) -> Option<Arc<RwLock<crate::log::history::HistoryIndex>>> {
        self.shared.history.get().cloned()
    }

    /// The node's archive directory, if it archives its log.
    pub fn archive_dir(&self) -> Option<&std::path::Path> {
        self.shared.archive_dir.as_deref()
    }
}

/// The backend's name for status and metrics: `cpu`, `gpu`, or what `auto` can use.
fn backend_in_use(verifier: &Verifier) -> String {
    match (verifier.backend(), verifier.gpu_adapter_name()) {
        (Backend::Auto, Some(_)) => "auto-gpu".to_string(),
        (Backend::Auto, None) => "auto-cpu".to_string(),
        (backend, _) => backend.to_string(),
    }
}

/// Starts a pipeline thread. A panic in it (a broken assertion: a bug, never bad input)
/// stops the node at once with the panic's message as its reason, in the log, in `/metrics`
/// and in every later `Stopped` answer, instead of leaving a node that silently does nothing.
fn spawn(
    name: &'static str,
    shared: Arc<Shared>,
    body: impl FnOnce() + Send + 'static,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("no message");
                shared.set_fatal(format!(
                    "the {name} thread hit an internal error: {message}"
                ));
            }
        })
        .expect("the operating system starts a thread")
}
