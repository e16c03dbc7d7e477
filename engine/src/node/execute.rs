//! Execution on a node alone: the stage takes verified batches as they come, up to a
//! block, seals each block ([`super::seal`]) and hands it to the commit stage. Between
//! blocks it answers ledger queries. (On a validator the consensus stage takes its place:
//! `consensus`.)

use super::checkpointer::{CheckpointCadence, CheckpointJob};
use super::commit::SealedBlock;
use super::seal::{self, ChainTip};
use super::{Recovered, Shared, VerifiedBatch};
use crate::ledger::{Ledger, SnapshotPoint};
use crate::log::PreparedEntry;
use crate::mempool::PendingTx;
use crate::tx::TxRecord;
use crossbeam::channel::{Receiver, Sender, TryRecvError};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Most ledger queries the executor answers between two blocks when it is busy.
const LEDGER_QUERIES_PER_BLOCK_MAX: usize = 64;

/// Answers queued ledger queries: at most `max`, without waiting.
pub(crate) fn serve_ledger_queries(shared: &Shared, ledger: &Ledger, max: usize) {
    for query in shared.ledger_queries.1.try_iter().take(max) {
        query(ledger);
    }
}

/// Waits for the next verified batch, answering ledger queries while it waits.
pub(super) fn recv_serving_queries(
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

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) struct ExecutorLimits {
    pub(crate) block_tx_max: usize,
    /// When checkpoints are due ([`super::checkpointer`]).
    pub(crate) checkpoints: CheckpointCadence,
    /// Where the log thread archives segments (a validator serves block sync from there too).
    pub(crate) archive_dir: Option<PathBuf>,
}

impl ExecutorLimits {
    /// A copy of `ledger` after the block that made `tip` (its log entry `entry` long), to
    /// write as a checkpoint once the block is durable, when one is due.
    pub(crate) fn checkpoint_after(
        &mut self,
        ledger: &Ledger,
        tip: &ChainTip,
        entry: &PreparedEntry,
    ) -> Option<CheckpointJob> {
        let point = SnapshotPoint {
            height: tip.height,
            last_block_hash: tip.hash,
        };
        let bytes = crate::log::entry_bytes(entry.payload().len()) as u64;
        self.checkpoints
            .after_block(ledger, point, tip.timestamp_ms, bytes)
    }
}

pub(super) fn executor_stage(
    shared: &Shared,
    recovered: Recovered,
    mut limits: ExecutorLimits,
    verified: &Receiver<VerifiedBatch>,
    to_log: &Sender<SealedBlock>,
) -> Ledger {
    let block_tx_max = limits.block_tx_max;
    let mut tip = recovered.tip();
    let mut ledger = recovered.ledger;
    let mut pending_batch: Option<VerifiedBatch> = None;
    loop {
        // Take what is ready, up to a block: batching follows the load, no timer needed.
        let mut txs: Vec<PendingTx> = Vec::new();
        let mut records: Vec<TxRecord> = Vec::new();
        let mut disconnected = false;
        let mut gpu_tx_root = None;
        let mut verified_wait = shared.metrics.stage.verified_wait.local();
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
            if !txs.is_empty()
                && (txs.len() + batch.txs.len() > block_tx_max || batch.tx_root.is_some())
            {
                pending_batch = Some(batch);
                break;
            }
            // Whole batches only: a block ends between batches, never inside a chain.
            verified_wait.observe_duration_n(batch.verified_at.elapsed(), batch.txs.len() as u64);
            records.extend(batch.txs.iter().map(|tx| tx.record));
            txs.extend(batch.txs);
            if batch.tx_root.is_some() {
                // The GPU hashed exactly these records: they are a block of their own.
                gpu_tx_root = batch.tx_root;
                break;
            }
        }
        verified_wait.flush();
        shared
            .metrics
            .verified_queue_batches
            .set(verified.len() as i64);
        if !records.is_empty() {
            let execution_started = Instant::now();
            let proposal = match gpu_tx_root {
                Some(tx_root) => {
                    shared.metrics.gpu_block_roots.inc();
                    seal::propose_with_tx_root(
                        &tip,
                        shared.network_id,
                        now_ms(),
                        0,
                        &records,
                        tx_root,
                    )
                }
                None => seal::propose(&tip, shared.network_id, now_ms(), 0, &records),
            };
            let sealed = seal::seal(&mut ledger, &tip, &proposal, &records);
            tip = sealed.tip();
            let height = tip.height;
            let entry = sealed.prepared_entry(&records, None);
            let events = crate::events::block_events(&ledger, &records, &sealed.results);
            let stamp = crate::events::block_stamp(&ledger);
            shared
                .metrics
                .business
                .count_block(&ledger, &records, &sealed.results, &events);
            let results = sealed.results;
            shared
                .counters
                .executed
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            shared
                .counters
                .block_time_ms
                .fetch_max(ledger.time_ms(), Ordering::Release);
            let checkpoint = limits.checkpoint_after(&ledger, &tip, &entry);
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
                revoked: ledger.block_revocations().to_vec(),
                events,
                stamp,
                tax_days: ledger.last_block_finished_tax_days().cloned(),
                index_keys: records.iter().map(Into::into).collect(),
                access_changes: ledger.block_access_changes().to_vec(),
                sealed_at: Instant::now(),
            };
            if to_log.send(block).is_err() {
                return ledger; // the log stopped: fatal error already recorded
            }
            metrics.commit_queue_blocks.set(to_log.len() as i64);
            serve_ledger_queries(shared, &ledger, LEDGER_QUERIES_PER_BLOCK_MAX);
        }
        if disconnected {
            return ledger;
        }
    }
}
