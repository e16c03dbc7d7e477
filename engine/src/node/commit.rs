//! Commit: the log stage appends sealed blocks, makes a group of them durable with one
//! flush, and only then acknowledges their transactions (docs/DESIGN.md, decision 5). It
//! hands checkpoints to their writer after the blocks they follow are durable
//! ([`super::checkpointer`]). A failed append, flush or checkpoint stops the node; nothing is
//! retried, and nothing is acknowledged after the failure.

use super::checkpointer::{checkpoint_writer, CheckpointJob, CheckpointPlan, CheckpointStore};
use super::Shared;
use crate::log::{Log, PreparedEntry};
use crate::mempool::PendingTx;
use crate::result::ResultCode;
use crossbeam::channel::{bounded, Receiver};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Instant;

pub(crate) struct SealedBlock {
    pub(crate) height: u64,
    /// The block's log entry, hashed as far as it can be before its place in the log is
    /// known (here, not on the log thread, which meanwhile waits for the previous flush).
    pub(crate) entry: PreparedEntry,
    pub(crate) txs: Vec<PendingTx>,
    pub(crate) results: Vec<ResultCode>,
    /// A copy of the ledger after this block, written as a checkpoint once the block is
    /// durable.
    pub(crate) checkpoint: Option<CheckpointJob>,
    /// Serial numbers (canonical bytes) the block revoked: refused by the node's ports once
    /// the block is durable.
    pub(crate) revoked: Vec<Vec<u8>>,
    /// The block's account events, for the event journal once the block is durable.
    pub(crate) events: Vec<crate::events::AccountEvent>,
    /// The block's time and the business day it ended, stamped on its journal entry.
    pub(crate) stamp: crate::events::BlockStamp,
    /// The business days the block's time ended, with their tax-total rows, for the
    /// tax-day journal once the block is durable.
    pub(crate) tax_days: Option<crate::ledger::FinishedTaxDays>,
    /// The block's records' keys, for the history indexer once the block is durable (made
    /// where the records are at hand, so that the commit does not decode the entry again).
    pub(crate) index_keys: Vec<crate::log::history::RecordKeys>,
    /// Accounts the block's lifecycle records opened or re-keyed: the client port's
    /// directory takes them in once the block is durable.
    pub(crate) access_changes: Vec<crate::ledger::AccessChange>,
    /// When the block was sealed (for the `commit_wait` stage).
    pub(crate) sealed_at: Instant,
}

/// Runs `stage` with a checkpoint writer thread fed by the plan it is given; the writer
/// finishes the checkpoint it is writing, then stops, once `stage` returns.
pub(crate) fn with_checkpoint_writer<T>(
    shared: &Shared,
    log: &RwLock<Log>,
    store: CheckpointStore,
    stage: impl FnOnce(CheckpointPlan) -> T,
) -> T {
    std::thread::scope(|scope| {
        let (jobs_tx, jobs_rx) = bounded(1);
        std::thread::Builder::new()
            .name("tally-checkpoint".to_string())
            .spawn_scoped(scope, move || {
                super::background::lower_this_thread();
                checkpoint_writer(shared, log, store, &jobs_rx);
            })
            .expect("the operating system starts a thread");
        stage(CheckpointPlan::Background(jobs_tx))
    })
}

/// The log stage of a node alone: takes sealed blocks as they come and commits them in
/// groups of up to `group_max` (one flush per group); checkpoints go to a writer thread.
pub(super) fn log_stage(
    shared: &Shared,
    log: Arc<RwLock<Log>>,
    group_max: usize,
    store: CheckpointStore,
    sealed: &Receiver<SealedBlock>,
) {
    with_checkpoint_writer(shared, &log, store, |mut plan| {
        let mut group: Vec<SealedBlock> = Vec::with_capacity(group_max);
        while let Ok(first) = sealed.recv() {
            group.push(first);
            while group.len() < group_max {
                match sealed.try_recv() {
                    Ok(block) => group.push(block),
                    Err(_) => break,
                }
            }
            shared.metrics.commit_queue_blocks.set(sealed.len() as i64);
            let taken = Instant::now();
            let mut commit_wait = shared.metrics.stage.commit_wait.local();
            for block in &group {
                commit_wait.observe_duration_n(
                    taken.saturating_duration_since(block.sealed_at),
                    block.txs.len() as u64,
                );
            }
            commit_wait.flush();
            if let Err(reason) = commit_group(shared, &log, &mut plan, &mut group) {
                shared.set_fatal(reason);
                return;
            }
        }
    });
}

/// Commits `group` (emptied): appends every block, makes them durable with one flush, then
/// acknowledges their transactions and hands the checkpoints they carry to `plan`. The node
/// alone's log stage and a validator's consensus stage both commit this way. An error is the
/// node's fatal reason: nothing is retried. After a fatal error (a checkpoint the writer
/// could not write, say) nothing more is acknowledged.
pub(crate) fn commit_group(
    shared: &Shared,
    log: &RwLock<Log>,
    plan: &mut CheckpointPlan,
    group: &mut Vec<SealedBlock>,
) -> Result<(), String> {
    if let Some(reason) = shared.fatal_reason() {
        return Err(reason);
    }
    let metrics = &shared.metrics;
    metrics.batch.group_commit.observe(group.len() as u64);
    let flush_started = Instant::now();
    let mut writer = log.write().expect("log lock");
    for block in group.iter() {
        if let Err(error) = writer.append_prepared(&block.entry) {
            return Err(format!(
                "appending block {} to the log failed: {error}",
                block.height
            ));
        }
    }
    metrics
        .stage
        .log_append
        .observe_duration(flush_started.elapsed());
    if let Err(error) = writer.commit() {
        return Err(format!(
            "making blocks durable failed (never retried, see docs/STORAGE.md): {error}"
        ));
    }
    drop(writer);
    shared.counters.flushes.fetch_add(1, Ordering::Relaxed);
    let flushed_at = Instant::now();
    metrics
        .stage
        .log_flush
        .observe_duration(flushed_at - flush_started);
    if let Some(reason) = shared.fatal_reason() {
        return Err(reason);
    }
    let journal = shared.events.get();
    let tax_days = shared.tax_days.get();
    for mut block in group.drain(..) {
        if let Some(journal) = journal {
            if let Err(error) = journal.append(block.height, block.stamp, &block.events) {
                return Err(format!(
                    "writing block {}'s events to the event journal failed: {error}",
                    block.height
                ));
            }
        }
        // flushed at once (a day's rows once a day): a checkpoint after this block never
        // comes before them
        if let (Some(journal), Some(days)) = (tax_days, &block.tax_days) {
            if let Err(error) = journal.append(days) {
                return Err(format!(
                    "writing the tax rows of the business days block {} ended failed: {error}",
                    block.height
                ));
            }
        }
        // the history indexer takes the durable block's keys (what does not fit in its feed,
        // it reads back from the log)
        let _ = shared
            .index_feed
            .0
            .try_send((block.height, std::mem::take(&mut block.index_keys)));
        // In force before the central bank hears its revocation settled; the client server
        // closes the open connections at its next turn (the acknowledgements wake it).
        for serial in &block.revoked {
            let serial = crate::revocation::serial_hex(serial);
            if shared.revocations.revoke(&serial) {
                tracing::warn!(height = block.height, %serial, "certificate revoked by the central bank");
            }
        }
        if let Some(directory) = &shared.directory {
            directory.apply(&block.access_changes);
        }
        // Counted before the answers go out, so that a client that heard sees the count.
        observe_acknowledged(metrics, &block.txs, flushed_at, Instant::now());
        for (tx, code) in block.txs.iter().zip(&block.results) {
            tx.acknowledge(*code, Some(block.height));
        }
        shared.counters.blocks.fetch_add(1, Ordering::Relaxed);
        shared
            .counters
            .height
            .store(block.height, Ordering::Release);
        let Some(job) = block.checkpoint else {
            continue;
        };
        // Clients hear about the blocks acknowledged so far before the checkpoint.
        shared.notify_ack_listeners();
        // Recovery starts from a checkpoint and makes the events of the blocks after it
        // again: the journal must hold every block up to it first.
        if let Some(journal) = journal {
            journal
                .sync()
                .map_err(|error| format!("flushing the event journal failed: {error}"))?;
        }
        plan.submit(log, job, metrics)?;
    }
    shared.notify_ack_listeners();
    Ok(())
}

/// Records the `ack` stage (durable to acknowledged, per transaction) and `end_to_end`
/// (arrival to acknowledged) of `txs`, about to be acknowledged at `acknowledged_at` after
/// their block was durable at `flushed_at`.
fn observe_acknowledged(
    metrics: &super::NodeMetrics,
    txs: &[PendingTx],
    flushed_at: Instant,
    acknowledged_at: Instant,
) {
    metrics.stage.ack.local().observe_duration_n(
        acknowledged_at.saturating_duration_since(flushed_at),
        txs.len() as u64,
    );
    let mut end_to_end = metrics.stage.end_to_end.local();
    for tx in txs {
        end_to_end.observe_duration(acknowledged_at.saturating_duration_since(tx.received_at));
    }
}
