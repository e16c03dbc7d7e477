//! The history indexer: a thread of its own that adds each block to the history index
//! ([`crate::history`]) once it is durable, reading it back from the log (or the archive),
//! so that the execution and log stages do nothing for it. At start it catches up from the
//! log from the index's last height; at shutdown it writes what it holds in memory as a
//! segment. An index that cannot be written (no space, an I/O error) is logged as an error
//! and left as it is: the node goes on, and history queries read the blocks after the
//! index's last from the log, as far as a running node reads.

use super::Shared;
use crate::log::history::HistoryIndex;
use crate::log::Log;
use crate::query::visit_blocks;
use crate::tx::TxRecord;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// How long the indexer waits when it has caught up with the durable log.
const POLL: Duration = Duration::from_millis(20);
/// Most records read from the log under one hold of its lock.
const BATCH_RECORDS_MAX: usize = 1 << 16;

pub(super) fn indexer_stage(
    shared: &Shared,
    log: &Weak<RwLock<Log>>,
    index: &RwLock<HistoryIndex>,
    archive_dir: Option<&Path>,
) {
    let outcome = (|| -> Result<(), String> {
        start_over_if_unreadable(log, index, archive_dir)?;
        loop {
            let stopping = shared.stopping.load(Ordering::SeqCst);
            let added = index_some(log, index, archive_dir)?;
            if added == 0 {
                if stopping {
                    break;
                }
                std::thread::sleep(POLL);
            }
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

/// Adds the next durable blocks (up to a batch); returns how many.
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
    {
        let mut index = index.write().expect("index lock");
        for (height, records) in &blocks {
            index
                .add_block(*height, records)
                .map_err(|e| e.to_string())?;
        }
    }
    // segments are written and merged under a read hold (queries go on), then put in place
    if index.read().expect("index lock").flush_due() {
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
    }
    Ok(blocks.len())
}

/// Opens the history index of a node's data directory.
pub(super) fn open_index(data_dir: &Path) -> Result<Arc<RwLock<HistoryIndex>>, String> {
    let (index, _report) =
        HistoryIndex::open(&HistoryIndex::dir_in(data_dir)).map_err(|e| e.to_string())?;
    Ok(Arc::new(RwLock::new(index)))
}
