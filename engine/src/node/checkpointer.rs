//! Checkpoints of a running node: when one is due (a cadence of block time, log bytes and,
//! if set, blocks), and the writer that encodes and writes it off the execution thread.
//!
//! After sealing a block, the execution thread asks [`CheckpointCadence::after_block`]
//! whether a checkpoint is due. If one is, and none is being written, it takes a copy of the
//! ledger as it stands after that block ([`Ledger::copy_for_snapshot`]: the accounts shared
//! copy-on-write by chunk pointers, plain copies of the windowed tables, no encoding and no
//! hashing) and puts it in the block's [`SealedBlock`].
//! The copy is owned by the checkpoint from then on, so the blocks executed meanwhile cannot
//! change it: the snapshot is exactly the state after the block it names. Once that block
//! is durable, the commit hands the copy to the writer, which encodes it, hashes it and
//! writes the file (`log::checkpoint::write_checkpoint`), then archives the log behind the
//! previous checkpoint. At most one checkpoint is in flight: while one is written, a due
//! checkpoint waits for the first block after the writer is done.
//!
//! A checkpoint that cannot be written (no space left, an I/O error) stops the node: the
//! write removes its temporary file, and no block is acknowledged after the failure.
//!
//! [`SealedBlock`]: super::commit::SealedBlock

use super::{NodeMetrics, Shared};
use crate::ledger::{Ledger, SnapshotPoint};
use crate::log::checkpoint::write_checkpoint;
use crate::log::{FileOps, Log};
use crossbeam::channel::{Receiver, Sender};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// When checkpoints are due; each trigger set to 0 is off, and a checkpoint is due as soon
/// as any trigger that is on fires (counted from the previous checkpoint, or from start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointCadenceConfig {
    /// Block time (ms, from the block headers) between checkpoints.
    pub interval_ms: u64,
    /// Log bytes (whole entries) appended between checkpoints.
    pub log_bytes: u64,
    /// Blocks between checkpoints.
    pub interval_blocks: u64,
}

impl CheckpointCadenceConfig {
    /// Whether no trigger is on (the node makes no checkpoints).
    pub fn is_off(&self) -> bool {
        self.interval_ms == 0 && self.log_bytes == 0 && self.interval_blocks == 0
    }
}

/// A checkpoint to write: the state after block `point.height`, copied when the block was
/// sealed.
pub(crate) struct CheckpointJob {
    point: SnapshotPoint,
    state: Box<Ledger>,
    genesis_hash: [u8; 32],
    /// Cleared when the checkpoint is written, so that the next one may be taken.
    in_flight: Arc<AtomicBool>,
}

/// The execution side of the cadence: what has happened since the previous checkpoint.
#[derive(Debug)]
pub(crate) struct CheckpointCadence {
    config: CheckpointCadenceConfig,
    genesis_hash: [u8; 32],
    last_height: u64,
    /// Block time of the previous checkpoint (or of the first block after start).
    last_time_ms: Option<u64>,
    bytes_since: u64,
    in_flight: Arc<AtomicBool>,
}

impl CheckpointCadence {
    /// The cadence of a node whose chain starts (or restarts) at `height`.
    pub(crate) fn new(
        config: CheckpointCadenceConfig,
        genesis_hash: [u8; 32],
        height: u64,
    ) -> CheckpointCadence {
        CheckpointCadence {
            config,
            genesis_hash,
            last_height: height,
            last_time_ms: None,
            bytes_since: 0,
            in_flight: Arc::new(AtomicBool::new(false)),
        }
    }

    fn due(&self, height: u64, time_ms: u64) -> bool {
        let config = &self.config;
        (config.interval_blocks > 0
            && height.saturating_sub(self.last_height) >= config.interval_blocks)
            || (config.log_bytes > 0 && self.bytes_since >= config.log_bytes)
            || (config.interval_ms > 0
                && self
                    .last_time_ms
                    .is_some_and(|last| time_ms.saturating_sub(last) >= config.interval_ms))
    }

    /// Whether a checkpoint is taken after block `height` (block time `time_ms`, a log entry
    /// of `entry_bytes`): it is due and none is in flight. Taking one marks it in flight and
    /// starts the counts anew; a due checkpoint waits while one is written.
    fn take(&mut self, height: u64, time_ms: u64, entry_bytes: u64) -> bool {
        self.bytes_since = self.bytes_since.saturating_add(entry_bytes);
        self.last_time_ms.get_or_insert(time_ms);
        if self.config.is_off() || !self.due(height, time_ms) {
            return false;
        }
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return false; // the previous checkpoint is still being written
        }
        self.last_height = height;
        self.last_time_ms = Some(time_ms);
        self.bytes_since = 0;
        true
    }

    /// Called after sealing block `point.height`: a copy of `ledger` to write when a
    /// checkpoint is taken ([`CheckpointCadence::take`]).
    pub(crate) fn after_block(
        &mut self,
        ledger: &Ledger,
        point: SnapshotPoint,
        time_ms: u64,
        entry_bytes: u64,
    ) -> Option<CheckpointJob> {
        self.take(point.height, time_ms, entry_bytes)
            .then(|| CheckpointJob {
                point,
                state: Box::new(ledger.copy_for_snapshot()),
                genesis_hash: self.genesis_hash,
                in_flight: Arc::clone(&self.in_flight),
            })
    }
}

/// Where checkpoints go, and the height of the previous one (the log behind it is archived
/// after the next one is durable, so that a damaged newest checkpoint still has the older one
/// and the log after it).
pub(crate) struct CheckpointStore {
    pub(crate) dir: PathBuf,
    pub(crate) file_ops: Arc<dyn FileOps>,
    pub(crate) archive_dir: Option<PathBuf>,
    pub(crate) previous_height: Option<u64>,
}

impl CheckpointStore {
    /// Encodes, writes and makes durable the checkpoint of `job`, then archives the log
    /// before the previous checkpoint. An error is the node's fatal reason.
    pub(crate) fn write(
        &mut self,
        log: &RwLock<Log>,
        job: CheckpointJob,
        metrics: &NodeMetrics,
    ) -> Result<(), String> {
        let started = Instant::now();
        let height = job.point.height;
        let bytes = job.state.snapshot(&job.genesis_hash, job.point);
        drop(job.state);
        write_checkpoint(&self.dir, height, &bytes, &*self.file_ops).map_err(|error| {
            format!("writing the checkpoint of block {height} failed (the node stops; free space or fix the disk, then restart): {error}")
        })?;
        if let (Some(archive_dir), Some(before)) = (&self.archive_dir, self.previous_height) {
            log.write()
                .expect("log lock")
                .archive_before(before, archive_dir)
                .map_err(|error| {
                    format!("archiving the log before block {before} failed: {error}")
                })?;
        }
        self.previous_height = Some(height);
        metrics
            .checkpoint_height
            .set(i64::try_from(height).unwrap_or(i64::MAX));
        metrics
            .checkpoint_bytes
            .set(i64::try_from(bytes.len()).unwrap_or(i64::MAX));
        metrics
            .checkpoint_write_ms
            .set(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX));
        job.in_flight.store(false, Ordering::Release);
        // counted once the next checkpoint may be taken
        metrics.checkpoints_written.inc();
        Ok(())
    }
}

/// How the commit hands over checkpoints: to a writer thread, or written at once by the
/// committing thread (the cluster simulator, which runs every node in one thread and must
/// stay deterministic).
pub(crate) enum CheckpointPlan {
    Background(Sender<CheckpointJob>),
    Inline(CheckpointStore),
    /// The stage is done: no more checkpoints.
    Stopped,
}

impl CheckpointPlan {
    /// Writes `job` (inline) or queues it for the writer; an error is the node's fatal reason.
    pub(crate) fn submit(
        &mut self,
        log: &RwLock<Log>,
        job: CheckpointJob,
        metrics: &NodeMetrics,
    ) -> Result<(), String> {
        match self {
            CheckpointPlan::Inline(store) => store.write(log, job, metrics),
            CheckpointPlan::Background(jobs) => jobs
                .send(job)
                .map_err(|_| "the checkpoint writer stopped".to_string()),
            CheckpointPlan::Stopped => Err("checkpoints were stopped".to_string()),
        }
    }
}

/// The checkpoint writer's loop: one checkpoint at a time, until the committing stage drops
/// its end of the queue. A failure stops the node.
pub(crate) fn checkpoint_writer(
    shared: &Shared,
    log: &RwLock<Log>,
    mut store: CheckpointStore,
    jobs: &Receiver<CheckpointJob>,
) {
    for job in jobs.iter() {
        if let Err(reason) = store.write(log, job, &shared.metrics) {
            shared.set_fatal(reason);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cadence(interval_ms: u64, log_bytes: u64, interval_blocks: u64) -> CheckpointCadence {
        let config = CheckpointCadenceConfig {
            interval_ms,
            log_bytes,
            interval_blocks,
        };
        CheckpointCadence::new(config, [0; 32], 10)
    }

    /// The heights of blocks 11..=40 (a block every 100 ms of block time, 1 000 log bytes
    /// each) after which a checkpoint is taken, each written before the next block.
    fn taken(cadence: &mut CheckpointCadence) -> Vec<u64> {
        let mut heights = Vec::new();
        for height in 11..=40 {
            if cadence.take(height, height * 100, 1_000) {
                heights.push(height);
                cadence.in_flight.store(false, Ordering::Release);
            }
        }
        heights
    }

    #[test]
    fn each_trigger_counts_from_the_previous_checkpoint_and_off_makes_none() {
        assert_eq!(taken(&mut cadence(0, 0, 0)), Vec::<u64>::new());
        assert_eq!(taken(&mut cadence(0, 0, 10)), [20, 30, 40]);
        // 1 000 bytes a block: every 8 blocks past 7 500 bytes
        assert_eq!(taken(&mut cadence(0, 7_500, 0)), [18, 26, 34]);
        // block time counts from the first block after start (1 100 ms), not from 0
        assert_eq!(taken(&mut cadence(1_000, 0, 0)), [21, 31]);
        // the first trigger to fire wins, and every count starts anew
        assert_eq!(taken(&mut cadence(1_000, 7_500, 0)), [18, 26, 34]);
    }

    #[test]
    fn a_due_checkpoint_waits_while_one_is_written() {
        let mut cadence = cadence(0, 0, 2);
        assert!(!cadence.take(11, 0, 0));
        assert!(cadence.take(12, 0, 0));
        // still being written: due again at 14, deferred block after block
        assert!(!cadence.take(13, 0, 0));
        assert!(!cadence.take(14, 0, 0));
        assert!(!cadence.take(15, 0, 0));
        cadence.in_flight.store(false, Ordering::Release);
        assert!(cadence.take(16, 0, 0));
        assert!(!cadence.take(17, 0, 0));
    }
}
