//! The node's configuration: its limits and choices, and the checks that refuse a
//! configuration that cannot work before anything starts.

use super::consensus::ValidatorConfig;
use super::NodeError;
use crate::block::{self, BLOCK_TX_COUNT_MAX};
use crate::log::{FileOps, LogConfig, OsFileOps};
use std::path::PathBuf;
use std::sync::Arc;
pub use tally_kernels::sigverify::Backend;

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
    /// A checkpoint once this much block time (ms) has passed since the previous one (0:
    /// off; at least [`CHECKPOINT_INTERVAL_MS_MIN`] otherwise).
    pub checkpoint_interval_ms: u64,
    /// A checkpoint once the log has grown by this many bytes since the previous one (0: off;
    /// at least the largest log entry a block of `block_tx_max` makes otherwise).
    pub checkpoint_log_bytes: u64,
    /// A checkpoint once this many blocks followed the previous one (0: off). A checkpoint
    /// is due as soon as any of the three fires; with all three off there are none.
    pub checkpoint_interval_blocks: u64,
    /// When set, log segments older than the previous checkpoint move here after each
    /// checkpoint (so restart time and the live log stay bounded).
    pub archive_dir: Option<PathBuf>,
    /// Set on a validator of a network of several: blocks are then decided by consensus
    /// with the other validators (`consensus`) instead of built alone.
    pub validator: Option<ValidatorConfig>,
    /// The revocation list the node's ports enforce: the node adds the ledger's list at start
    /// and each revocation as its block commits (a node with TLS shares its `NodeTls`'s).
    pub revocations: Arc<crate::revocation::Revocations>,
    /// The accounts the node's client port checks records and queries against: the node
    /// seeds it with what the lifecycle changed before its recovered height and applies each
    /// block's changes as the block commits (a node with a client server shares the
    /// server's).
    pub directory: Option<Arc<crate::net::access::Directory>>,
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
            checkpoint_interval_ms: 60_000,
            checkpoint_log_bytes: 1 << 30,
            checkpoint_interval_blocks: 0,
            archive_dir: None,
            validator: None,
            revocations: Default::default(),
            directory: None,
        }
    }
}

/// Shortest time cadence of checkpoints: a checkpoint copies the live state, so a cadence
/// shorter than this would make checkpoints back to back.
pub const CHECKPOINT_INTERVAL_MS_MIN: u64 = 1_000;

impl NodeConfig {
    /// When checkpoints are due.
    pub fn checkpoint_cadence(&self) -> super::checkpointer::CheckpointCadenceConfig {
        super::checkpointer::CheckpointCadenceConfig {
            interval_ms: self.checkpoint_interval_ms,
            log_bytes: self.checkpoint_log_bytes,
            interval_blocks: self.checkpoint_interval_blocks,
        }
    }
}

/// The named maxima of the node's queues, for status and metrics.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    pub mempool_tx_max: usize,
    pub verified_queue_batches_max: usize,
    pub commit_queue_blocks_max: usize,
}

pub(super) fn check_config(config: &NodeConfig) -> Result<(), NodeError> {
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
    // The log entry: the block behind the entry header, with padding and trailer.
    let entry_max = crate::log::entry_bytes(block::entry_bytes(config.block_tx_max));
    if entry_max as u64 > u64::from(config.log.entry_bytes_max) {
        return Err(NodeError::Config(format!(
            "a block of block_tx_max = {} transactions needs a {entry_max}-byte log entry, above the log's entry_bytes_max {}",
            config.block_tx_max, config.log.entry_bytes_max
        )));
    }
    if let Some((_, message)) = checkpoint_cadence_problem(config) {
        return Err(NodeError::Config(message));
    }
    Ok(())
}

/// Why the checkpoint cadence cannot work, with the configuration file's name of the field
/// (`limits.…`), or `None`.
pub(crate) fn checkpoint_cadence_problem(config: &NodeConfig) -> Option<(&'static str, String)> {
    let interval_ms = config.checkpoint_interval_ms;
    if interval_ms != 0 && interval_ms < CHECKPOINT_INTERVAL_MS_MIN {
        return Some((
            "limits.checkpoint_interval_ms",
            format!(
                "checkpoint_interval_ms {interval_ms} is below {CHECKPOINT_INTERVAL_MS_MIN}: checkpoints would follow each other back to back (0 turns the time cadence off)"
            ),
        ));
    }
    let entry_max = crate::log::entry_bytes(block::entry_bytes(config.block_tx_max));
    let log_bytes = config.checkpoint_log_bytes;
    if log_bytes != 0 && log_bytes < entry_max as u64 {
        return Some((
            "limits.checkpoint_log_bytes",
            format!(
                "checkpoint_log_bytes {log_bytes} is below one block's largest log entry ({entry_max} bytes for block_tx_max = {}): every block would be a checkpoint (0 turns the log-bytes cadence off)",
                config.block_tx_max
            ),
        ));
    }
    None
}
