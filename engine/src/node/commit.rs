//! Commit: the log stage appends sealed blocks, makes a group of them durable with one
//! flush, and only then acknowledges their transactions (docs/DESIGN.md, decision 5). It
//! writes checkpoints after the blocks they follow are durable and archives the log behind
//! them. A failed append, flush or checkpoint stops the node; nothing is retried.

use super::Shared;
use crate::log::checkpoint::write_checkpoint;
use crate::log::{FileOps, Log, PreparedEntry};
use crate::mempool::PendingTx;
use crate::result::ResultCode;
use crossbeam::channel::Receiver;
use std::path::PathBuf;
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
    /// A snapshot of the ledger after this block, written once the block is durable.
    pub(crate) checkpoint: Option<Vec<u8>>,
    /// Serial numbers (canonical bytes) the block revoked: refused by the node's ports once
    /// the block is durable.
    pub(crate) revoked: Vec<Vec<u8>>,
}

/// Where the log thread puts checkpoints and archived segments.
pub(crate) struct CheckpointPlan {
    pub(crate) dir: PathBuf,
    pub(crate) file_ops: Arc<dyn FileOps>,
    pub(crate) archive_dir: Option<PathBuf>,
}

/// The log stage of a node alone: takes sealed blocks as they come and commits them in
/// groups of up to `group_max` (one flush per group).
pub(super) fn log_stage(
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
        shared.metrics.commit_queue_blocks.set(sealed.len() as i64);
        if let Err(reason) = commit_group(
            shared,
            &log,
            plan,
            &mut group,
            &mut previous_checkpoint_height,
        ) {
            shared.set_fatal(reason);
            return;
        }
    }
}

/// Commits `group` (emptied): appends every block, makes them durable with one flush, then
/// acknowledges their transactions and writes the
/// checkpoints they carry (archiving the log behind the previous one). The node alone's log
/// stage and a validator's consensus stage both commit this way. An error is the node's
/// fatal reason: nothing is retried.
pub(crate) fn commit_group(
    shared: &Shared,
    log: &RwLock<Log>,
    plan: &CheckpointPlan,
    group: &mut Vec<SealedBlock>,
    previous_checkpoint_height: &mut Option<u64>,
) -> Result<(), String> {
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
    let mut end_to_end = metrics.stage.end_to_end.local();
    for block in group.iter() {
        for tx in &block.txs {
            end_to_end.observe_duration(flushed_at.saturating_duration_since(tx.received_at));
        }
    }
    end_to_end.flush();
    for block in group.drain(..) {
        // In force before the central bank hears its revocation settled; the client server
        // closes the open connections at its next turn (the acknowledgements wake it).
        for serial in &block.revoked {
            let serial = crate::revocation::serial_hex(serial);
            if shared.revocations.revoke(&serial) {
                tracing::warn!(height = block.height, %serial, "certificate revoked by the central bank");
            }
        }
        for (tx, code) in block.txs.iter().zip(&block.results) {
            tx.acknowledge(*code, Some(block.height));
        }
        shared.counters.blocks.fetch_add(1, Ordering::Relaxed);
        shared
            .counters
            .height
            .store(block.height, Ordering::Release);
        let Some(snapshot) = &block.checkpoint else {
            continue;
        };
        // Clients hear about the blocks acknowledged so far before the checkpoint.
        shared.notify_ack_listeners();
        if let Err(error) = write_checkpoint(&plan.dir, block.height, snapshot, &*plan.file_ops) {
            return Err(format!(
                "writing the checkpoint of block {} failed: {error}",
                block.height
            ));
        }
        // Keep the log back to the previous checkpoint too, so that a damaged newest
        // checkpoint can still be recovered from the older one.
        if let (Some(archive_dir), Some(before)) = (&plan.archive_dir, *previous_checkpoint_height)
        {
            let archived = log
                .write()
                .expect("log lock")
                .archive_before(before, archive_dir);
            if let Err(error) = archived {
                return Err(format!(
                    "archiving the log before block {before} failed: {error}"
                ));
            }
        }
        *previous_checkpoint_height = Some(block.height);
    }
    shared.notify_ack_listeners();
    Ok(())
}
