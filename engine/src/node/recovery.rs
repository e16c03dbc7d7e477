//! Recovery: the state a node starts from. The newest intact checkpoint that belongs to
//! this genesis and agrees with the log, then every block of the log after it, each header
//! checked against the chain and each block sealed again and compared with what the log
//! holds (docs/STORAGE.md, "Recovery").

use super::seal::{self, ChainTip};
use super::{NodeConfig, NodeError};
use crate::block::{self, BLOCK_TX_COUNT_MAX};
use crate::genesis::Genesis;
use crate::ledger::Ledger;
use crate::log::checkpoint::load_checkpoints;
use crate::log::{Log, ReplayError};
use crate::result::ResultCode;
use crate::tx::TxRecord;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// State recovered from the log.
pub struct Recovered {
    pub ledger: Ledger,
    pub height: u64,
    pub last_block_hash: [u8; 32],
    /// Where the time went and what was read.
    pub cost: RecoveryCost,
}

/// What a recovery read and how long each part took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryCost {
    /// The height of the checkpoint recovery started from (none: the genesis).
    pub checkpoint_height: Option<u64>,
    /// Reading, checking and restoring the checkpoints, those skipped as damaged included
    /// (without one: building the genesis state).
    pub checkpoint_load: Duration,
    /// Blocks executed again after the checkpoint, and their records.
    pub replayed_blocks: u64,
    pub replayed_records: u64,
    /// Executing them again (each header checked, each block sealed and compared).
    pub replay: Duration,
    /// Building the accounts' Merkle tree from every account before the replay, so that
    /// each block after costs what it changed.
    pub state_tree: Duration,
}

impl Recovered {
    /// The chain's tip: the last block's height and hash, and the ledger's time after it.
    pub fn tip(&self) -> ChainTip {
        ChainTip {
            height: self.height,
            hash: self.last_block_hash,
            timestamp_ms: self.ledger.time_ms(),
        }
    }
}

/// Replays every block of `log` over the genesis state, checking each block's link, result
/// codes and state root.
pub fn replay(genesis: &Genesis, log: &Log) -> Result<Recovered, NodeError> {
    replay_observed(genesis, log, &mut |_, _, _, _| Ok(()))
}

/// What recovery shows of each block it seals again: its height, the ledger after it, its
/// records and their result codes (the node makes the block's account events from them).
pub type BlockObserver<'a> =
    dyn FnMut(u64, &Ledger, &[TxRecord], &[ResultCode]) -> Result<(), NodeError> + 'a;

fn replay_observed(
    genesis: &Genesis,
    log: &Log,
    observe: &mut BlockObserver<'_>,
) -> Result<Recovered, NodeError> {
    let start = Recovered {
        ledger: Ledger::from_genesis(genesis),
        height: 0,
        last_block_hash: genesis.hash(),
        cost: RecoveryCost::default(),
    };
    replay_from(genesis, log, start, observe)
}

/// Recovers the state: the newest checkpoint in `checkpoints_dir` that is intact, belongs to
/// this genesis and agrees with the log, then the log after it. Damaged checkpoints are
/// skipped with a warning (the log is the record; checkpoints only save time).
pub fn recover(
    genesis: &Genesis,
    log: &Log,
    checkpoints_dir: &Path,
) -> Result<Recovered, NodeError> {
    recover_observed(genesis, log, checkpoints_dir, &mut |_, _, _, _| Ok(()))
}

/// [`recover`], showing `observe` every block replayed after the checkpoint it starts from.
pub fn recover_observed(
    genesis: &Genesis,
    log: &Log,
    checkpoints_dir: &Path,
    observe: &mut BlockObserver<'_>,
) -> Result<Recovered, NodeError> {
    let genesis_hash = genesis.hash();
    let loading = Instant::now();
    let (stored, damaged) = load_checkpoints(checkpoints_dir)?;
    for skipped in damaged {
        tracing::warn!(path = %skipped.path.display(), reason = %skipped.reason, "skipping a damaged checkpoint");
    }
    let log_height = log.next_sequence();
    let cut_damaged = !log.recovery().awaiting_repair.is_empty();
    for checkpoint in stored {
        if checkpoint.height > log_height && cut_damaged {
            // The log's damaged last block was cut to be taken again from peers: a
            // checkpoint after it waits until it is back.
            tracing::warn!(path = %checkpoint.path.display(), log_height, "skipping a checkpoint after the damaged block cut from the log");
            continue;
        }
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
        if point.height != checkpoint.height || ledger.height() != point.height {
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
            cost: RecoveryCost {
                checkpoint_height: Some(point.height),
                checkpoint_load: loading.elapsed(),
                ..RecoveryCost::default()
            },
        };
        return replay_from(genesis, log, start, observe);
    }
    let mut recovered = replay_observed(genesis, log, observe)?;
    recovered.cost.checkpoint_load = loading
        .elapsed()
        .saturating_sub(recovered.cost.replay + recovered.cost.state_tree);
    Ok(recovered)
}

/// Replays the blocks after `start.height` over `start`: each block's header is checked
/// against the chain ([`seal::check_header`]), the block sealed again ([`seal::seal`]), and
/// what sealing made compared with what the log holds. Equal result codes and an equal header
/// (results hash and state root included) mean the entry sealing would write is the stored
/// one, byte for byte: the records are the same bytes and the certificate is carried over.
fn replay_from(
    genesis: &Genesis,
    log: &Log,
    start: Recovered,
    observe: &mut BlockObserver<'_>,
) -> Result<Recovered, NodeError> {
    let mut tip = start.tip();
    let mut ledger = start.ledger;
    let mut cost = start.cost;
    let building = Instant::now();
    ledger.build_state_tree();
    cost.state_tree = building.elapsed();
    let replaying = Instant::now();
    let result = log.replay(tip.height, |sequence, entry| -> Result<(), NodeError> {
        let view = block::decode_entry(entry).map_err(|error| NodeError::BadBlock {
            sequence,
            reason: error.to_string(),
        })?;
        let header = view.header;
        seal::check_header(
            &tip,
            genesis.network_id,
            &header,
            view.records.len(),
            BLOCK_TX_COUNT_MAX,
        )
        .map_err(|error| NodeError::BadBlock {
            sequence,
            reason: error.to_string(),
        })?;
        let sealed = seal::seal(&mut ledger, &tip, &block::unsealed(&header), view.records);
        if sealed.result_bytes() != view.results {
            return Err(NodeError::ReplayMismatch {
                height: header.height(),
                what: "a result code",
            });
        }
        if sealed.header != header {
            return Err(NodeError::ReplayMismatch {
                height: header.height(),
                what: "a state root",
            });
        }
        tip = sealed.tip();
        cost.replayed_blocks += 1;
        cost.replayed_records += view.records.len() as u64;
        observe(tip.height, &ledger, view.records, &sealed.results)
    });
    cost.replay = replaying.elapsed();
    match result {
        Ok(()) => Ok(Recovered {
            ledger,
            height: tip.height,
            last_block_hash: tip.hash,
            cost,
        }),
        Err(ReplayError::Log(error)) => Err(NodeError::Log(error)),
        Err(ReplayError::Visitor { error, .. }) => Err(error),
    }
}

/// Opens the log of a node that is not running and replays it (recovery may cut a torn
/// tail, as at start; a damaged last entry is refused, never cut).
pub fn replay_dir(genesis: &Genesis, config: &NodeConfig) -> Result<Recovered, NodeError> {
    let log = open_log(config, false)?;
    recover(genesis, &log, &checkpoints_dir(config))
}

/// Creates the data directory if needed and opens (recovers) the node's log. A validator
/// (`repair_damaged_last`) has its damaged last entry cut, to take the block again from its
/// peers by block sync (`Log::open_repairing`); a node alone refuses it.
pub(crate) fn open_log(config: &NodeConfig, repair_damaged_last: bool) -> Result<Log, NodeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let dir = config.data_dir.join("log");
    let ops = Arc::clone(&config.file_ops);
    let log = if repair_damaged_last {
        Log::open_repairing(&dir, config.log, ops)?
    } else {
        Log::open_with(&dir, config.log, ops)?
    };
    if let Some(cut) = &log.recovery().cut_damaged_entry {
        tracing::warn!(
            height = cut.sequence + 1,
            kept_in = %cut.kept_in.display(),
            "repairing damaged last log entry from peers: block sync takes it again, with a \
             certificate of the validator set"
        );
    }
    Ok(log)
}

/// The directory of a node's checkpoints, in its data directory.
pub(crate) const CHECKPOINTS_DIR: &str = "checkpoints";

/// Where a node keeps its checkpoints.
pub fn checkpoints_dir(config: &NodeConfig) -> PathBuf {
    config.data_dir.join(CHECKPOINTS_DIR)
}
