//! The history indexer: a thread of its own that adds each block to the history index
//! ([`crate::log::history`]) once it is durable. The commit hands it each durable block's
//! index keys (id, related id, accounts of each record) over a bounded channel; a block that
//! did not fit, and every block at start from the index's last height on, it reads back from
//! the log (or the archive). It takes the keys rather than reading every block back through
//! the log's map, whose touched pages would count in the node's resident memory for as long
//! as the log is open. At shutdown it writes what it holds in memory as a segment. An index that cannot be written (no space, an I/O error) is logged as an error
//! and left as it is: the node goes on, and history queries read the blocks after the
//! index's last from the log, as far as a running node reads.

use super::{IndexedBlock, Shared};
use crate::log::history::HistoryIndex;
use crate::log::Log;
use crate::query::visit_blocks;
use crate::tx::TxRecord;
use crossbeam::channel::{Receiver, RecvTimeoutError};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// How long the indexer waits when it has caught up with the durable log.
const POLL: Duration = Duration::from_millis(20);
/// Most records read from the log under one hold of its lock (at least one block): the log
/// stage waits for the hold to append, and this thread runs at the lowest priority
/// ([`super::background`]), so a hold is kept to a copy of about a block.
const BATCH_RECORDS_MAX: usize = 1 << 12;

pub(super) fn indexer_stage(
    shared: &Shared,
    log: &Weak<RwLock<Log>>,
    index: &RwLock<HistoryIndex>,
    archive_dir: Option<&Path>,
) {
    let feed = &shared.index_feed.1;
    let outcome = (|| -> Result<(), String> {
        start_over_if_unreadable(log, index, archive_dir)?;
        // the log's durable height when it was last seen ahead of the index with nothing fed:
        // a block the feed dropped, or the blocks before this start, or one the commit is
        // about to hand over; read back from the log only if still missing a poll later
        // (reading the log walks its map, whose pages then count in resident memory)
        let mut ahead_at: Option<u64> = None;
        loop {
            if shared.stopping.load(Ordering::SeqCst) {
                take_fed(feed, index)?;
                break;
            }
            match feed.recv_timeout(POLL) {
                Ok(block) => {
                    ahead_at = None;
                    add_fed(block, log, index, archive_dir)?;
                    take_fed(feed, index)?;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let indexed = index.read().expect("index lock").indexed_height();
                    let durable = durable_height(log);
                    ahead_at = match ahead_at {
                        Some(seen) if indexed < seen => {
                            while index_some(log, index, archive_dir)? > 0 {}
                            None
                        }
                        _ if durable > indexed => Some(durable),
                        _ => None,
                    };
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            flush_if_due(index)?;
        }
        index
            .write()
            .expect("index lock")
            .flush()
            .map_err(|e| e.to_string())
    })();
    if let Err(reason) = outcome {
        tracing::error!(
            "history index: {reason}; the index stops growing (history queries read the \
             blocks after it from the live log) until the node restarts"
        );
    }
}

/// Where the index would need blocks that were archived with no archive directory to read
/// them from, it starts over at the first live block (with a warning).
fn start_over_if_unreadable(
    log: &Weak<RwLock<Log>>,
    index: &RwLock<HistoryIndex>,
    archive_dir: Option<&Path>,
) -> Result<(), String> {
    let Some(log) = log.upgrade() else {
        return Ok(());
    };
    let first_live = log.read().expect("log lock").first_sequence() + 1;
    let mut index = index.write().expect("index lock");
    if archive_dir.is_none() && index.indexed_height() + 1 < first_live {
        tracing::warn!(
            "history index: blocks {} to {} were archived and the node has no archive_dir; \
             the index starts over at block {first_live}",
            index.indexed_height() + 1,
            first_live - 1
        );
        index.restart_at(first_live).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The log's last durable height (0 once it closed).
fn durable_height(log: &Weak<RwLock<Log>>) -> u64 {
    log.upgrade()
        .map_or(0, |log| log.read().expect("log lock").durable_sequence())
}

/// Adds a block the commit handed over: after reading from the log any block before it that
/// the index lacks; a block the index has already is skipped.
fn add_fed(
    (height, keys): IndexedBlock,
    log: &Weak<RwLock<Log>>,
    index: &RwLock<HistoryIndex>,
    archive_dir: Option<&Path>,
) -> Result<(), String> {
    while index.read().expect("index lock").indexed_height() + 1 < height {
        if index_some(log, index, archive_dir)? == 0 {
            // the log does not hold it (yet): leave the block to be read back later
            return Ok(());
        }
    }
    let mut index = index.write().expect("index lock");
    if index.indexed_height() + 1 == height {
        index
            .add_block_keys(height, &keys)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Adds what the feed holds now, in order (without reading the log).
fn take_fed(feed: &Receiver<IndexedBlock>, index: &RwLock<HistoryIndex>) -> Result<(), String> {
    let mut index = index.write().expect("index lock");
    while let Ok((height, keys)) = feed.try_recv() {
        if index.indexed_height() + 1 == height {
            index
                .add_block_keys(height, &keys)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Adds the next durable blocks from the log (up to a batch); returns how many.
fn index_some(
    log: &Weak<RwLock<Log>>,
    index: &RwLock<HistoryIndex>,
    archive_dir: Option<&Path>,
) -> Result<usize, String> {
    let Some(log) = log.upgrade() else {
        return Ok(0);
    };
    let from = index.read().expect("index lock").indexed_height() + 1;
    let mut blocks: Vec<(u64, Vec<TxRecord>)> = Vec::new();
    {
        let log = log.read().expect("log lock");
        let durable = log.durable_sequence();
        if from > durable {
            return Ok(0);
        }
        let mut records = 0;
        visit_blocks(&log, archive_dir, from, |height, view| {
            if height > durable || records >= BATCH_RECORDS_MAX {
                return Ok(false);
            }
            records += view.records.len();
            blocks.push((height, view.records.to_vec()));
            Ok(true)
        })
        .map_err(|e| e.to_string())?;
    }
    drop(log);
    if let (Some((first, _)), Some((last, _))) = (blocks.first(), blocks.last()) {
        tracing::debug!(first, last, "history index: blocks read back from the log");
    }
    let mut guard = index.write().expect("index lock");
    for (height, records) in &blocks {
        // the feed may have filled the gap meanwhile
        if *height == guard.indexed_height() + 1 {
            guard
                .add_block(*height, records)
                .map_err(|e| e.to_string())?;
        }
    }
    drop(guard);
    flush_if_due(index)?;
    Ok(blocks.len())
}

/// Writes the entries in memory as a segment and merges, when due: segments are written and
/// merged under a read hold (queries go on), then put in place under a short write hold.
fn flush_if_due(index: &RwLock<HistoryIndex>) -> Result<(), String> {
    if !index.read().expect("index lock").flush_due() {
        return Ok(());
    }
    let prepared = index
        .read()
        .expect("index lock")
        .prepare_flush()
        .map_err(|e| e.to_string())?;
    if let Some(prepared) = prepared {
        index
            .write()
            .expect("index lock")
            .install(prepared)
            .map_err(|e| e.to_string())?;
    }
    loop {
        let prepared = index
            .read()
            .expect("index lock")
            .prepare_merge()
            .map_err(|e| e.to_string())?;
        let Some(prepared) = prepared else { break };
        index
            .write()
            .expect("index lock")
            .install(prepared)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Opens the history index of a node's data directory.
pub(super) fn open_index(data_dir: &Path) -> Result<Arc<RwLock<HistoryIndex>>, String> {
    let (index, _report) =
        HistoryIndex::open(&HistoryIndex::dir_in(data_dir)).map_err(|e| e.to_string())?;
    Ok(Arc::new(RwLock::new(index)))
}
