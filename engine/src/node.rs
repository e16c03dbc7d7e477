//! One node: the pipeline of DESIGN.md, stages as threads joined by bounded queues.
//!
//! ```text
//! submit (ingress: format checks) -> mempool (ArrayQueue, Busy when full)
//!   -> sigverify thread (batches through tally-kernels)
//!   -> executor thread (builds the block: executes, tx root, state root)
//!   -> log thread (append, group commit, then acknowledgements)
//! ```
//!
//! A transaction is acknowledged with its block height only after the block's log entry is
//! durable. A flush error stops the node (DESIGN.md, decision 5): the log thread records the
//! reason, the pipeline stops, and submit answers `Stopped` with that reason.

use crate::block::{self, BlockHeader, BLOCK_MAGIC, BLOCK_TX_COUNT_MAX};
use crate::genesis::Genesis;
use crate::ledger::{Ledger, SnapshotPoint};
use crate::log::checkpoint::{load_checkpoints, write_checkpoint, CheckpointError};
use crate::log::{FileOps, Log, LogConfig, LogError, OsFileOps, PreparedEntry, ReplayError};
use crate::mempool::{Ack, Mempool, PendingTx, LINKED_CHAIN_TX_MAX};
use crate::metrics::NodeMetrics;
use crate::result::ResultCode;
use crate::tx::{signing_message, TxFlags, TxRecord, SIGNING_MESSAGE_BYTES};
use crate::validator::{ValidatorConfig, ValidatorRuntime};
use crossbeam::channel::{bounded, Receiver, Sender, TryRecvError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
pub use tally_kernels::sigverify::Backend;
use tally_kernels::sigverify::{SigItem, Verifier, VerifierError};

/// Limits and choices of one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub backend: Backend,
    /// Mempool capacity; a full mempool answers `Busy`.
    pub mempool_tx_max: usize,
    /// Most transactions verified in one signature batch.
    pub sigverify_batch_tx_max: usize,
    /// Most transactions in one block.
    pub block_tx_max: usize,
    /// Verified batches waiting for the executor.
    pub verified_queue_batches_max: usize,
    /// Blocks waiting for the log thread.
    pub commit_queue_blocks_max: usize,
    /// Most blocks made durable by one flush.
    pub group_commit_blocks_max: usize,
    pub log: LogConfig,
    /// The log's file operations: the operating system's, or a fault injector in tests.
    pub file_ops: Arc<dyn FileOps>,
    /// A checkpoint of the ledger after every this many blocks (0: never).
    pub checkpoint_interval_blocks: u64,
    /// When set, log segments older than the previous checkpoint move here after each
    /// checkpoint (so restart time and the live log stay bounded).
    pub archive_dir: Option<PathBuf>,
    /// Set on a validator of a network of several: blocks are then decided by consensus
    /// with the other validators (crate::validator) instead of built alone.
    pub validator: Option<ValidatorConfig>,
}

impl NodeConfig {
    /// Defaults sized for a few hundred thousand transactions per second.
    pub fn new(data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            data_dir,
            backend: Backend::Cpu,
            mempool_tx_max: 262_144,
            sigverify_batch_tx_max: 4_096,
            block_tx_max: 16_384,
            verified_queue_batches_max: 16,
            commit_queue_blocks_max: 16,
            group_commit_blocks_max: 16,
            log: LogConfig::default(),
            file_ops: Arc::new(OsFileOps),
            checkpoint_interval_blocks: 4_096,
            archive_dir: None,
            validator: None,
        }
    }
}

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
    pub flushes: AtomicU64,
}

/// A question about the state, run by the executor thread between blocks (never during
/// one), so it sees a consistent ledger. It must be quick: it holds up execution.
pub type LedgerQuery = Box<dyn FnOnce(&Ledger) + Send>;

/// Called after acknowledgements were sent (once per group of blocks, not per transaction),
/// so that a network front can wake up and forward them.
pub type AckListener = Arc<dyn Fn() + Send + Sync>;

/// Most ledger queries waiting for the executor; past it `query_ledger` answers Busy.
pub const LEDGER_QUERY_QUEUE_MAX: usize = 1_024;
/// Most ledger queries the executor answers between two blocks when it is busy.
const LEDGER_QUERIES_PER_BLOCK_MAX: usize = 64;

/// The named maxima of the node's queues, for status and metrics.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    pub mempool_tx_max: usize,
    pub verified_queue_batches_max: usize,
    pub commit_queue_blocks_max: usize,
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
}

impl Shared {
    pub(crate) fn stopped_reason(&self) -> Option<String> {
        if let Some(reason) = self.fatal.lock().expect("fatal lock").clone() {
            return Some(reason);
        }
        // SeqCst pairs with the in-flight count in `submit` (see `sigverify_stage`).
        self.stopping
            .load(Ordering::SeqCst)
            .then(|| "the node is shutting down".to_string())
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
        };
        let mut start = 0;
        while start < records.len() {
            let end = unit_end(records.len(), start, |i| is_linked(&records[i]));
            let pushed = if end == start + 1 {
                self.mempool.push(pending(&records[start])).is_ok()
            } else {
                let unit: Box<[PendingTx]> = records[start..end].iter().map(pending).collect();
                self.mempool.push_chain(unit).is_ok()
            };
            if !pushed {
                self.metrics.busy_tx.add((records.len() - start) as u64);
                break;
            }
            start = end;
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

/// Answers queued ledger queries: at most `max`, without waiting.
pub(crate) fn serve_ledger_queries(shared: &Shared, ledger: &Ledger, max: usize) {
    for query in shared.ledger_queries.1.try_iter().take(max) {
        query(ledger);
    }
}

/// Waits for the next verified batch, answering ledger queries while it waits.
fn recv_serving_queries(
    shared: &Shared,
    verified: &Receiver<VerifiedBatch>,
    ledger: &Ledger,
) -> Result<VerifiedBatch, crossbeam::channel::RecvError> {
    loop {
        crossbeam::select! {
            recv(verified) -> batch => return batch,
            recv(shared.ledger_queries.1) -> query => {
                if let Ok(query) = query {
                    query(ledger);
                }
            }
        }
    }
}

/// A cheap handle for submitting transactions from any thread.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
}

impl NodeHandle {
    /// Checks each record's format and queues it. Malformed records are answered at once
    /// through `reply` with their result code. A linked chain (a run of linked records and
    /// the record that closes it, within this call) is taken or refused whole: open at the
    /// end of `records`, longer than [`NodeHandle::linked_chain_tx_max`], or with a malformed
    /// record, every record of it is answered at once. Returns the number of records taken
    /// (answered or queued).
    ///
    /// Errors: `Busy { accepted }` when the mempool filled after `accepted` records (the
    /// rest were not taken; `accepted` never ends inside a chain); `Stopped` when the node
    /// no longer takes transactions.
    pub fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        self.shared.submits_in_flight.fetch_add(1, Ordering::SeqCst);
        let result = self.submit_counted(records, reply);
        self.shared.submits_in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn submit_counted(
        &self,
        records: &[TxRecord],
        reply: &Sender<Ack>,
    ) -> Result<usize, SubmitError> {
        if let Some(reason) = self.shared.stopped_reason() {
            return Err(SubmitError::Stopped { reason });
        }
        let received_at = Instant::now();
        let counters = &self.shared.counters;
        let pending = |record: &TxRecord| PendingTx {
            record: *record,
            reply: reply.clone(),
            received_at,
        };
        // One unit at a time: a record of its own, or a whole linked chain (a maximal run
        // of linked records and the record that closes it), which is taken or refused whole.
        let mut start = 0;
        while start < records.len() {
            let end = unit_end(records.len(), start, |i| is_linked(&records[i]));
            let pushed = if end == start + 1 && !is_linked(&records[start]) {
                let record = &records[start];
                if let Err(error) = record.validate() {
                    counters.rejected_at_ingress.fetch_add(1, Ordering::Relaxed);
                    pending(record).acknowledge(error.into(), None);
                    true
                } else {
                    self.shared.mempool.push(pending(record)).is_ok()
                }
            } else {
                let chain = &records[start..end];
                match self.chain_refusal(chain) {
                    Some(codes) => {
                        counters
                            .rejected_at_ingress
                            .fetch_add(chain.len() as u64, Ordering::Relaxed);
                        for (record, code) in chain.iter().zip(codes) {
                            pending(record).acknowledge(code, None);
                        }
                        true
                    }
                    None => {
                        let unit: Box<[PendingTx]> = chain.iter().map(pending).collect();
                        self.shared.mempool.push_chain(unit).is_ok()
                    }
                }
            };
            if !pushed {
                // Nothing of this unit was taken: the client retries from its start.
                self.wake_sigverify();
                counters
                    .submitted
                    .fetch_add(start as u64, Ordering::Relaxed);
                return Err(SubmitError::Busy { accepted: start });
            }
            start = end;
        }
        counters
            .submitted
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.wake_sigverify();
        Ok(records.len())
    }

    /// Why a linked chain (`chain`: its linked records and, unless it is open, the record
    /// that closes it) cannot be taken, as each member's code; `None` when it can.
    fn chain_refusal(&self, chain: &[TxRecord]) -> Option<Vec<ResultCode>> {
        let every = |code| Some(vec![code; chain.len()]);
        if chain.last().is_some_and(is_linked) {
            return every(ResultCode::LinkedEventChainOpen);
        }
        if chain.len() > self.shared.linked_chain_tx_max {
            return every(ResultCode::LinkedChainTooLong);
        }
        let codes: Vec<ResultCode> = chain
            .iter()
            .map(|record| match record.validate() {
                Ok(()) => ResultCode::LinkedEventFailed,
                Err(error) => error.into(),
            })
            .collect();
        codes
            .iter()
            .any(|code| *code != ResultCode::LinkedEventFailed)
            .then_some(codes)
    }

    /// Most transactions in one linked chain this node takes: [`LINKED_CHAIN_TX_MAX`], or
    /// its mempool or block size when smaller.
    pub fn linked_chain_tx_max(&self) -> usize {
        self.shared.linked_chain_tx_max
    }

    /// Decodes raw bytes into a record and submits it; a malformed record is answered
    /// through `reply` with its specific result code.
    pub fn submit_bytes(&self, bytes: &[u8], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        match TxRecord::decode(bytes) {
            Ok(record) => self.submit(&[record], reply),
            Err(error) => {
                let id = bytes
                    .get(..16)
                    .map_or(0, |b| u128::from_le_bytes(b.try_into().expect("16 bytes")));
                let _ = reply.send(Ack {
                    id,
                    code: error.into(),
                    height: None,
                });
                self.shared
                    .counters
                    .rejected_at_ingress
                    .fetch_add(1, Ordering::Relaxed);
                Ok(1)
            }
        }
    }

    /// The pipeline's counters.
    pub fn counters(&self) -> &NodeCounters {
        &self.shared.counters
    }

    /// Transactions waiting in the mempool.
    pub fn mempool_len(&self) -> usize {
        self.shared.mempool.len()
    }

    /// Why the node stopped, if it did.
    pub fn fatal_error(&self) -> Option<String> {
        self.shared.fatal.lock().expect("fatal lock").clone()
    }

    /// Why the node no longer takes transactions (stopped, or shutting down), if so.
    pub fn stopped_reason(&self) -> Option<String> {
        self.shared.stopped_reason()
    }

    /// The node's metrics (latencies, batch sizes, queue depths, network counters).
    pub fn metrics(&self) -> &NodeMetrics {
        &self.shared.metrics
    }

    /// Mempool capacity (`mempool_tx_max`).
    pub fn mempool_capacity(&self) -> usize {
        self.shared.mempool.capacity()
    }

    /// The named maxima of the node's queues.
    pub fn config_limits(&self) -> QueueLimits {
        self.shared.limits
    }

    pub fn network_id(&self) -> u64 {
        self.shared.network_id
    }

    pub fn genesis_hash(&self) -> [u8; 32] {
        self.shared.genesis_hash
    }

    /// Height of the last durable block.
    pub fn height(&self) -> u64 {
        self.shared.counters.height.load(Ordering::Acquire)
    }

    /// Registers a function called after acknowledgements were sent (once per group of
    /// blocks or signature batch with failures, never per transaction) and when the node
    /// stops. It runs on a pipeline thread: it must be quick and must not block (waking a
    /// poll loop is the intended use).
    pub fn add_ack_listener(&self, listener: AckListener) {
        self.shared
            .ack_listeners
            .write()
            .expect("listeners lock")
            .push(listener);
    }

    /// Queues a question about the state for the executor, which runs it between blocks.
    /// `Busy` when [`LEDGER_QUERY_QUEUE_MAX`] are already waiting; `Stopped` when the node
    /// stopped (a query queued just before the stop may be dropped unanswered: callers that
    /// wait for an answer must also watch for the stop).
    pub fn query_ledger(&self, query: LedgerQuery) -> Result<(), SubmitError> {
        if let Some(reason) = self.shared.stopped_reason() {
            return Err(SubmitError::Stopped { reason });
        }
        self.shared
            .ledger_queries
            .0
            .try_send(query)
            .map_err(|_| SubmitError::Busy { accepted: 0 })
    }

    fn wake_sigverify(&self) {
        if let Some(thread) = self.shared.sigverify_thread.lock().expect("lock").as_ref() {
            thread.unpark();
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
}

pub(crate) struct SealedBlock {
    pub(crate) height: u64,
    /// The block's log entry, hashed as far as it can be before its place in the log is
    /// known (here, not on the log thread, which meanwhile waits for the previous flush).
    pub(crate) entry: PreparedEntry,
    pub(crate) txs: Vec<PendingTx>,
    pub(crate) results: Vec<ResultCode>,
    /// A snapshot of the ledger after this block, written once the block is durable.
    pub(crate) checkpoint: Option<Vec<u8>>,
    /// Told the height once the block is durable (a validator waits for it before the next
    /// height).
    pub(crate) durable: Option<Sender<u64>>,
}

/// Where the log thread puts checkpoints and archived segments.
struct CheckpointPlan {
    dir: PathBuf,
    file_ops: Arc<dyn FileOps>,
    archive_dir: Option<PathBuf>,
}

/// State recovered from the log.
pub struct Recovered {
    pub ledger: Ledger,
    pub height: u64,
    pub last_block_hash: [u8; 32],
}

/// Replays every block of `log` over the genesis state, checking each block's link, result
/// codes and state root.
pub fn replay(genesis: &Genesis, log: &Log) -> Result<Recovered, NodeError> {
    let start = Recovered {
        ledger: Ledger::from_genesis(genesis),
        height: 0,
        last_block_hash: genesis.hash(),
    };
    replay_from(genesis, log, start)
}

/// Recovers the state: the newest checkpoint in `checkpoints_dir` that is intact, belongs to
/// this genesis and agrees with the log, then the log after it. Damaged checkpoints are
/// skipped with a warning (the log is the record; checkpoints only save time).
pub fn recover(
    genesis: &Genesis,
    log: &Log,
    checkpoints_dir: &Path,
) -> Result<Recovered, NodeError> {
    let genesis_hash = genesis.hash();
    let (stored, damaged) = load_checkpoints(checkpoints_dir)?;
    for skipped in damaged {
        tracing::warn!(path = %skipped.path.display(), reason = %skipped.reason, "skipping a damaged checkpoint");
    }
    let log_height = log.next_sequence();
    for checkpoint in stored {
        if checkpoint.height > log_height {
            return Err(NodeError::CheckpointAheadOfLog {
                path: checkpoint.path,
                height: checkpoint.height,
                log_height,
            });
        }
        let (ledger, point) = match Ledger::restore(&checkpoint.bytes, &genesis_hash) {
            Ok(restored) => restored,
            Err(error) => {
                tracing::warn!(path = %checkpoint.path.display(), %error, "skipping a checkpoint that does not restore");
                continue;
            }
        };
        if point.height != checkpoint.height {
            tracing::warn!(path = %checkpoint.path.display(), "skipping a checkpoint whose name and content disagree");
            continue;
        }
        // Where the block is still in the live log, its hash must be the checkpoint's.
        if point.height > 0 {
            if let Ok(mut entries) = log.entries(point.height - 1) {
                if let Some(Ok((_, entry))) = entries.next() {
                    let matches = block::decode_entry(entry)
                        .is_ok_and(|view| view.header.hash() == point.last_block_hash);
                    if !matches {
                        return Err(NodeError::CheckpointMismatch {
                            path: checkpoint.path,
                            height: point.height,
                        });
                    }
                }
            }
        }
        let start = Recovered {
            ledger,
            height: point.height,
            last_block_hash: point.last_block_hash,
        };
        return replay_from(genesis, log, start);
    }
    replay(genesis, log)
}

/// Replays the blocks after `start.height` over `start`.
fn replay_from(genesis: &Genesis, log: &Log, start: Recovered) -> Result<Recovered, NodeError> {
    let Recovered {
        mut ledger,
        mut height,
        mut last_block_hash,
    } = start;
    let result = log.replay(height, |sequence, entry| -> Result<(), NodeError> {
        let view = block::decode_entry(entry).map_err(|error| NodeError::BadBlock {
            sequence,
            reason: error.to_string(),
        })?;
        let header = view.header;
        let block_height = header.height();
        if block_height != height + 1 {
            return Err(NodeError::BadBlock {
                sequence,
                reason: format!("height {block_height} follows height {height}"),
            });
        }
        if header.network_id() != genesis.network_id {
            return Err(NodeError::BadBlock {
                sequence,
                reason: format!(
                    "block is for network {}, this genesis is network {}",
                    header.network_id(),
                    genesis.network_id
                ),
            });
        }
        if header.previous_hash != last_block_hash {
            let what = if block_height == 1 {
                "a first block that does not follow this genesis (the data directory belongs to another genesis)"
            } else {
                "a previous-block hash"
            };
            return Err(NodeError::BadBlock {
                sequence,
                reason: format!("{what} does not match"),
            });
        }
        ledger.begin_block(block_height, header.timestamp_ms());
        let mut codes: Vec<ResultCode> = view.records.iter().map(|r| ledger.execute(r)).collect();
        ledger.end_block(&mut codes);
        for (code, &stored) in codes.iter().zip(view.results) {
            if *code as u8 != stored {
                return Err(NodeError::ReplayMismatch {
                    height: block_height,
                    what: "a result code",
                });
            }
        }
        if ledger.state_root() != header.state_root {
            return Err(NodeError::ReplayMismatch {
                height: block_height,
                what: "a state root",
            });
        }
        height = block_height;
        last_block_hash = header.hash();
        Ok(())
    });
    match result {
        Ok(()) => Ok(Recovered {
            ledger,
            height,
            last_block_hash,
        }),
        Err(ReplayError::Log(error)) => Err(NodeError::Log(error)),
        Err(ReplayError::Visitor { error, .. }) => Err(error),
    }
}

/// Opens the log of a node that is not running and replays it (recovery may cut a torn
/// tail, as at start).
pub fn replay_dir(genesis: &Genesis, config: &NodeConfig) -> Result<Recovered, NodeError> {
    let log = open_log(config)?;
    recover(genesis, &log, &checkpoints_dir(config))
}

/// Creates the data directory if needed and opens (recovers) the node's log.
fn open_log(config: &NodeConfig) -> Result<Log, NodeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let log = Log::open_with(
        &config.data_dir.join("log"),
        config.log,
        Arc::clone(&config.file_ops),
    )?;
    Ok(log)
}

/// Where a node keeps its checkpoints.
pub fn checkpoints_dir(config: &NodeConfig) -> PathBuf {
    config.data_dir.join("checkpoints")
}

impl Node {
    /// Opens the data directory, replays the log and starts the pipeline threads.
    pub fn start(genesis: &Genesis, config: NodeConfig) -> Result<Node, NodeError> {
        check_config(&config)?;
        let log = open_log(&config)?;
        let recovered = recover(genesis, &log, &checkpoints_dir(&config))?;
        let mut verifier = Verifier::new(config.backend)?;
        verifier.register_keys(&recovered.ledger.owner_keys());
        let metrics = NodeMetrics::new();
        metrics.set_backend(&backend_in_use(&verifier));

        let shared = Arc::new(Shared {
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
            linked_chain_tx_max: LINKED_CHAIN_TX_MAX
                .min(config.mempool_tx_max)
                .min(config.block_tx_max),
        });
        shared
            .counters
            .height
            .store(recovered.height, Ordering::Release);
        let (verified_tx, verified_rx) = bounded(config.verified_queue_batches_max);
        let (sealed_tx, sealed_rx) = bounded(config.commit_queue_blocks_max);
        let (ledger_tx, executor_result) = bounded(1);
        let replayed_height = recovered.height;
        let replayed_money_in_circulation = recovered.ledger.money_in_circulation();

        let log = Arc::new(RwLock::new(log));
        let validator = match &config.validator {
            Some(validator) => Some(validator_runtime(
                genesis, &config, validator, &recovered, &log,
            )?),
            None => None,
        };
        let sigverify = {
            let shared = Arc::clone(&shared);
            let batch_max = config.sigverify_batch_tx_max;
            spawn("tally-sigverify", move || {
                sigverify_stage(&shared, &verifier, batch_max, &verified_tx)
            })
        };
        *shared.sigverify_thread.lock().expect("lock") = Some(sigverify.thread().clone());
        let executor = {
            let shared = Arc::clone(&shared);
            let limits = ExecutorLimits {
                block_tx_max: config.block_tx_max,
                checkpoint_interval_blocks: config.checkpoint_interval_blocks,
                genesis_hash: genesis.hash(),
                archive_dir: config.archive_dir.clone(),
            };
            match validator {
                None => spawn("tally-executor", move || {
                    let ledger =
                        executor_stage(&shared, recovered, &limits, &verified_rx, &sealed_tx);
                    let _ = ledger_tx.send(ledger);
                }),
                Some(runtime) => spawn("tally-consensus", move || {
                    let ledger = crate::validator::consensus_stage(
                        &shared,
                        recovered,
                        &limits,
                        runtime,
                        &verified_rx,
                        &sealed_tx,
                    );
                    let _ = ledger_tx.send(ledger);
                }),
            }
        };
        let committer = {
            let shared = Arc::clone(&shared);
            let group_max = config.group_commit_blocks_max;
            let plan = CheckpointPlan {
                dir: checkpoints_dir(&config),
                file_ops: Arc::clone(&config.file_ops),
                archive_dir: config.archive_dir.clone(),
            };
            spawn("tally-log", move || {
                log_stage(&shared, log, group_max, &plan, &sealed_rx)
            })
        };
        Ok(Node {
            handle: NodeHandle { shared },
            threads: vec![sigverify, executor, committer],
            executor_result,
            replayed_height,
            replayed_money_in_circulation,
            genesis_hash: genesis.hash(),
        })
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
        let ledger = self
            .executor_result
            .recv()
            .expect("the executor thread sends its ledger when it ends");
        NodeOutcome {
            height: shared.counters.height.load(Ordering::Acquire),
            state_root: ledger.state_root(),
            ledger,
            fatal: shared.fatal.lock().expect("fatal lock").clone(),
        }
    }
}

fn check_config(config: &NodeConfig) -> Result<(), NodeError> {
    let positive = [
        ("mempool_tx_max", config.mempool_tx_max),
        ("sigverify_batch_tx_max", config.sigverify_batch_tx_max),
        ("block_tx_max", config.block_tx_max),
        (
            "verified_queue_batches_max",
            config.verified_queue_batches_max,
        ),
        ("commit_queue_blocks_max", config.commit_queue_blocks_max),
        ("group_commit_blocks_max", config.group_commit_blocks_max),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
        return Err(NodeError::Config(format!("{name} must be at least 1")));
    }
    // A signature batch goes into one block whole, so that a block never cuts a linked
    // chain: it must fit. (A chain is a batch's first unit at most, and no longer than
    // block_tx_max: see `linked_chain_tx_max`.)
    if config.block_tx_max < config.sigverify_batch_tx_max {
        return Err(NodeError::Config(format!(
            "block_tx_max ({}) must be at least sigverify_batch_tx_max ({}): a signature batch goes into one block whole",
            config.block_tx_max, config.sigverify_batch_tx_max
        )));
    }
    if config.block_tx_max > BLOCK_TX_COUNT_MAX {
        return Err(NodeError::Config(format!(
            "block_tx_max {} is above the block format's maximum {BLOCK_TX_COUNT_MAX}",
            config.block_tx_max
        )));
    }
    let entry_max = block::entry_bytes(config.block_tx_max);
    if entry_max as u64 > u64::from(config.log.entry_bytes_max) {
        return Err(NodeError::Config(format!(
            "a block of block_tx_max = {} transactions needs {entry_max} bytes, above the log's entry_bytes_max {}",
            config.block_tx_max, config.log.entry_bytes_max
        )));
    }
    Ok(())
}

/// The backend's name for status and metrics: `cpu`, `gpu`, or what `auto` can use.
fn backend_in_use(verifier: &Verifier) -> String {
    match (verifier.backend(), verifier.gpu_adapter_name()) {
        (Backend::Auto, Some(_)) => "auto-gpu".to_string(),
        (Backend::Auto, None) => "auto-cpu".to_string(),
        (backend, _) => backend.to_string(),
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .expect("the operating system starts a thread")
}

/// How long the signature stage sleeps when the mempool is empty (ingress wakes it sooner).
const IDLE_PARK: Duration = Duration::from_millis(2);

fn sigverify_stage(
    shared: &Shared,
    verifier: &Verifier,
    batch_max: usize,
    verified: &Sender<VerifiedBatch>,
) {
    let mut messages: Vec<[u8; SIGNING_MESSAGE_BYTES]> = Vec::with_capacity(batch_max);
    loop {
        let mut txs = Vec::with_capacity(batch_max);
        shared.mempool.drain_into(&mut txs, batch_max);
        if txs.is_empty() {
            // Stop only when no submit can still push: it raised the in-flight count before
            // it read `stopping`, so a zero count read after `stopping` means none will.
            if shared.stopping.load(Ordering::SeqCst)
                && shared.submits_in_flight.load(Ordering::SeqCst) == 0
                && shared.mempool.is_empty()
            {
                return;
            }
            std::thread::park_timeout(IDLE_PARK);
            continue;
        }
        let started = Instant::now();
        let metrics = &shared.metrics;
        {
            let mut wait = metrics.stage.mempool_wait.local();
            for tx in &txs {
                wait.observe_duration(started.saturating_duration_since(tx.received_at));
            }
        }
        metrics.batch.sigverify.observe(txs.len() as u64);
        messages.clear();
        messages.extend(
            txs.iter()
                .map(|tx| signing_message(shared.network_id, &tx.record)),
        );
        let items: Vec<SigItem<'_>> = txs
            .iter()
            .zip(&messages)
            .map(|(tx, message)| SigItem {
                public_key: &tx.record.public_key,
                message,
                signature: &tx.record.signature,
            })
            .collect();
        let mut verdicts = vec![false; txs.len()];
        verifier.verify_batch(&items, &mut verdicts);
        drop(items);
        let txs = if verdicts.iter().all(|valid| *valid) {
            txs
        } else {
            answer_failed_signatures(shared, txs, &verdicts)
        };
        metrics.stage.sigverify.observe_duration(started.elapsed());
        if txs.is_empty() {
            continue;
        }
        if verified.send(VerifiedBatch { txs }).is_err() {
            return; // the executor stopped; the node is stopping
        }
        metrics.verified_queue_batches.set(verified.len() as i64);
    }
}

/// Whether a record carries the linked flag (it belongs to the chain that the next record
/// continues or closes).
fn is_linked(record: &TxRecord) -> bool {
    record.flags().has(TxFlags::LINKED)
}

/// End (exclusive) of the unit that starts at `start` among `len` records: the next index for
/// a record that is not linked, else past the first record without the flag that closes the
/// chain (`len` when the chain is still open at the end).
fn unit_end(len: usize, start: usize, linked: impl Fn(usize) -> bool) -> usize {
    (start..len)
        .find(|&i| !linked(i))
        .map_or(len, |close| close + 1)
}

/// Answers the transactions of a signature batch that fail there and returns the others, in
/// order. A bad signature is answered `bad_signature`; a linked chain with one fails whole
/// (all or nothing), its other members answered `linked_event_failed`. Chains are found by
/// their flags: the mempool delivers each one whole and contiguous.
fn answer_failed_signatures(
    shared: &Shared,
    txs: Vec<PendingTx>,
    verdicts: &[bool],
) -> Vec<PendingTx> {
    let mut failed = vec![false; txs.len()];
    let mut start = 0;
    while start < txs.len() {
        let end = unit_end(txs.len(), start, |i| is_linked(&txs[i].record));
        if verdicts[start..end].contains(&false) {
            failed[start..end].fill(true);
        }
        start = end;
    }
    // Counted before the answers go out, so that a client that heard sees the count.
    let bad_signatures = verdicts.iter().filter(|valid| !**valid).count();
    shared
        .counters
        .bad_signatures
        .fetch_add(bad_signatures as u64, Ordering::Relaxed);
    let mut valid = Vec::with_capacity(txs.len());
    for ((tx, &signature_ok), &fails) in txs.into_iter().zip(verdicts).zip(&failed) {
        if !fails {
            valid.push(tx);
        } else if signature_ok {
            tx.acknowledge(ResultCode::LinkedEventFailed, None);
        } else {
            tx.acknowledge(ResultCode::BadSignature, None);
        }
    }
    shared.notify_ack_listeners();
    valid
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) struct ExecutorLimits {
    pub(crate) block_tx_max: usize,
    pub(crate) checkpoint_interval_blocks: u64,
    pub(crate) genesis_hash: [u8; 32],
    /// Where the log thread archives segments (a validator serves block sync from there too).
    pub(crate) archive_dir: Option<PathBuf>,
}

fn executor_stage(
    shared: &Shared,
    recovered: Recovered,
    limits: &ExecutorLimits,
    verified: &Receiver<VerifiedBatch>,
    sealed: &Sender<SealedBlock>,
) -> Ledger {
    let block_tx_max = limits.block_tx_max;
    let Recovered {
        mut ledger,
        mut height,
        last_block_hash: mut previous_hash,
    } = recovered;
    let mut pending_batch: Option<VerifiedBatch> = None;
    loop {
        // Take what is ready, up to a block: batching follows the load, no timer needed.
        let mut txs: Vec<PendingTx> = Vec::new();
        let mut records: Vec<TxRecord> = Vec::new();
        let mut disconnected = false;
        loop {
            let batch = match pending_batch.take() {
                Some(batch) => batch,
                None if txs.is_empty() => match recv_serving_queries(shared, verified, &ledger) {
                    Ok(batch) => batch,
                    Err(_) => {
                        disconnected = true;
                        break;
                    }
                },
                None => match verified.try_recv() {
                    Ok(batch) => batch,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                },
            };
            if !txs.is_empty() && txs.len() + batch.txs.len() > block_tx_max {
                pending_batch = Some(batch);
                break;
            }
            // Whole batches only: a block ends between batches, never inside a chain.
            records.extend(batch.txs.iter().map(|tx| tx.record));
            txs.extend(batch.txs);
        }
        shared
            .metrics
            .verified_queue_batches
            .set(verified.len() as i64);
        if !records.is_empty() {
            let execution_started = Instant::now();
            let timestamp_ms = now_ms();
            ledger.begin_block(height + 1, timestamp_ms);
            let mut results: Vec<ResultCode> = records.iter().map(|r| ledger.execute(r)).collect();
            ledger.end_block(&mut results);
            let result_codes: Vec<u8> = results.iter().map(|code| *code as u8).collect();
            height += 1;
            let header = BlockHeader {
                magic: BLOCK_MAGIC,
                height: height.to_le_bytes(),
                timestamp_ms: timestamp_ms.to_le_bytes(),
                tx_count: (records.len() as u32).to_le_bytes(),
                proposer: 0u32.to_le_bytes(),
                network_id: shared.network_id.to_le_bytes(),
                previous_hash,
                tx_root: block::tx_root(&records),
                results_hash: block::results_hash(&result_codes),
                state_root: ledger.state_root(),
            };
            previous_hash = header.hash();
            let mut entry = Vec::with_capacity(block::entry_bytes(records.len()));
            block::encode_entry(&header, &records, &result_codes, &mut entry);
            let entry = PreparedEntry::new(entry);
            shared
                .counters
                .executed
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            let interval = limits.checkpoint_interval_blocks;
            let checkpoint = (interval > 0 && height % interval == 0).then(|| {
                let point = SnapshotPoint {
                    height,
                    last_block_hash: previous_hash,
                };
                ledger.snapshot(&limits.genesis_hash, point)
            });
            let metrics = &shared.metrics;
            metrics
                .stage
                .execution
                .observe_duration(execution_started.elapsed());
            metrics.batch.block.observe(txs.len() as u64);
            let block = SealedBlock {
                height,
                entry,
                txs,
                results,
                checkpoint,
                durable: None,
            };
            if sealed.send(block).is_err() {
                return ledger; // the log stopped: fatal error already recorded
            }
            metrics.commit_queue_blocks.set(sealed.len() as i64);
            serve_ledger_queries(shared, &ledger, LEDGER_QUERIES_PER_BLOCK_MAX);
        }
        if disconnected {
            return ledger;
        }
    }
}

fn log_stage(
    shared: &Shared,
    log: Arc<RwLock<Log>>,
    group_max: usize,
    plan: &CheckpointPlan,
    sealed: &Receiver<SealedBlock>,
) {
    let mut previous_checkpoint_height: Option<u64> = None;
    let mut group: Vec<SealedBlock> = Vec::with_capacity(group_max);
    while let Ok(first) = sealed.recv() {
        group.push(first);
        while group.len() < group_max {
            match sealed.try_recv() {
                Ok(block) => group.push(block),
                Err(_) => break,
            }
        }
        let metrics = &shared.metrics;
        metrics.commit_queue_blocks.set(sealed.len() as i64);
        metrics.batch.group_commit.observe(group.len() as u64);
        let flush_started = Instant::now();
        let mut writer = log.write().expect("log lock");
        for block in &group {
            if let Err(error) = writer.append_prepared(&block.entry) {
                shared.set_fatal(format!(
                    "appending block {} to the log failed: {error}",
                    block.height
                ));
                return;
            }
        }
        if let Err(error) = writer.commit() {
            shared.set_fatal(format!(
                "making blocks durable failed (never retried, see docs/STORAGE.md): {error}"
            ));
            return;
        }
        drop(writer);
        shared.counters.flushes.fetch_add(1, Ordering::Relaxed);
        let flushed_at = Instant::now();
        metrics
            .stage
            .log_flush
            .observe_duration(flushed_at - flush_started);
        let mut end_to_end = metrics.stage.end_to_end.local();
        for block in &group {
            for tx in &block.txs {
                end_to_end.observe_duration(flushed_at.saturating_duration_since(tx.received_at));
            }
        }
        end_to_end.flush();
        for block in group.drain(..) {
            for (tx, code) in block.txs.iter().zip(&block.results) {
                tx.acknowledge(*code, Some(block.height));
            }
            shared.counters.blocks.fetch_add(1, Ordering::Relaxed);
            shared
                .counters
                .height
                .store(block.height, Ordering::Release);
            if let Some(durable) = &block.durable {
                let _ = durable.send(block.height);
            }
            let Some(snapshot) = &block.checkpoint else {
                continue;
            };
            // Clients hear about the blocks acknowledged so far before the checkpoint.
            shared.notify_ack_listeners();
            if let Err(error) = write_checkpoint(&plan.dir, block.height, snapshot, &*plan.file_ops)
            {
                shared.set_fatal(format!(
                    "writing the checkpoint of block {} failed: {error}",
                    block.height
                ));
                return;
            }
            // Keep the log back to the previous checkpoint too, so that a damaged newest
            // checkpoint can still be recovered from the older one.
            if let (Some(archive_dir), Some(before)) =
                (&plan.archive_dir, previous_checkpoint_height)
            {
                let archived = log
                    .write()
                    .expect("log lock")
                    .archive_before(before, archive_dir);
                if let Err(error) = archived {
                    shared.set_fatal(format!(
                        "archiving the log before block {before} failed: {error}"
                    ));
                    return;
                }
            }
            previous_checkpoint_height = Some(block.height);
        }
        shared.notify_ack_listeners();
    }
}

/// Checks a validator's configuration against the genesis and builds what its consensus
/// stage needs: the validator set, the machine (restored from the state file when it is for
/// the next height), the validator links and a verifier for proposals.
fn validator_runtime(
    genesis: &Genesis,
    config: &NodeConfig,
    validator: &ValidatorConfig,
    recovered: &Recovered,
    log: &Arc<RwLock<Log>>,
) -> Result<ValidatorRuntime, NodeError> {
    use crate::net::peers::{PeerConfig, PeerLinks};
    // The set in force for the next height: the genesis's, or the one the authorities
    // voted in (kept by the ledger).
    let set = recovered.ledger.validator_schedule().current().clone();
    let own = crate::keys::public_key_of(&validator.signing_key);
    if set.index_of(&own).is_none() {
        if !validator.candidate {
            return Err(NodeError::Config(format!(
                "the validator key {} is not a validator of epoch {} (set `candidate = true` in [validator] to follow the chain until the authorities vote it in)",
                hex::encode(own),
                set.epoch()
            )));
        }
        tracing::info!(
            key = %hex::encode(own),
            epoch = set.epoch(),
            "not a validator of this epoch: following the chain until the authorities vote this key in"
        );
    }
    for key in set.public_keys().iter().filter(|key| **key != own) {
        if !validator.peers.iter().any(|peer| peer.public_key == *key) {
            return Err(NodeError::Config(format!(
                "validator {} of epoch {} has no address among the peers: list every other validator",
                hex::encode(key),
                set.epoch()
            )));
        }
    }
    // Blocks take whole signature batches (a batch never splits a linked chain).
    if config.sigverify_batch_tx_max > crate::validator::VALIDATOR_BLOCK_TX_MAX {
        return Err(NodeError::Config(format!(
            "sigverify_batch_tx_max {} is above a validator block's maximum {}",
            config.sigverify_batch_tx_max,
            crate::validator::VALIDATOR_BLOCK_TX_MAX
        )));
    }
    let (machine, state_file) = crate::validator::machine_at(
        validator,
        &config.data_dir,
        Arc::clone(&config.file_ops),
        recovered.height,
    )
    .map_err(NodeError::Validator)?;
    let last_timestamp_ms = if recovered.height == 0 {
        0
    } else {
        let log = log.read().expect("log lock");
        let mut entries = log.entries(recovered.height - 1)?;
        match entries.next() {
            Some(Ok((_, entry))) => block::decode_entry(entry)
                .map(|view| view.header.timestamp_ms())
                .map_err(|error| NodeError::BadBlock {
                    sequence: recovered.height - 1,
                    reason: error.to_string(),
                })?,
            _ => 0,
        }
    };
    let mut verifier = Verifier::new(config.backend)?;
    verifier.register_keys(&recovered.ledger.owner_keys());
    let (events_tx, peer_events) = bounded(crate::validator::PEER_EVENTS_MAX);
    let peer_config = PeerConfig {
        listen: validator.listen,
        peers: validator.peers.clone(),
        network_id: genesis.network_id,
        genesis_hash: genesis.hash(),
        backoff_min: validator.backoff_min,
        backoff_max: validator.backoff_max,
        out_bytes_max: validator.peer_out_bytes_max,
    };
    let links = match &validator.listener {
        Some(listener) => PeerLinks::start_with_listener(
            listener.try_clone().map_err(|source| NodeError::DataDir {
                path: config.data_dir.clone(),
                source,
            })?,
            peer_config,
            validator.signing_key,
            events_tx,
        )?,
        None => PeerLinks::start(peer_config, validator.signing_key, events_tx)?,
    };
    Ok(ValidatorRuntime {
        config: validator.clone(),
        set,
        links,
        peer_events,
        verifier,
        machine,
        state_file,
        log: Arc::clone(log),
        data_dir: config.data_dir.clone(),
        file_ops: Arc::clone(&config.file_ops),
        last_timestamp_ms,
    })
}
