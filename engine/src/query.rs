//! Read-side queries over a node's data directory: proofs of transactions
//! ([`prove_offline`]), and the blocks that carried a transaction or touched an account (with
//! their result codes), found through the history index ([`crate::log::history`]) over the
//! log and its archive. The ledger's own queries (balances, statuses, queues, tax reports) are
//! methods of [`crate::ledger::Ledger`] over the replayed state. [`answer_offline`] answers the
//! protocol's queries over a stopped node's data directory (`tally query`), with the network
//! server's answer function for the ledger's.

use crate::block::{self, BlockView};
use crate::ledger::{Ledger, TxStatus};
use crate::log::history::{HistoryIndex, HistoryIndexError, REFERENCE};
use crate::log::tax_journal::{TaxDayJournal, TaxJournalError};
use crate::log::{Log, LogConfig, LogError};
use crate::net::query::{
    answer_from_ledger, tx_status_info, Answer, HistoryCursor, LoggedTxInfo, Query, QueryResult,
    TaxedPaymentInfo, TxStatusInfo, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX, TX_HISTORY_BLOCKS_MAX,
};
use crate::result::ResultCode;
use crate::tx::{TxFlags, TxKind, TxRecord};
use std::path::Path;
use tally_protocol::events::EventKind;

/// Why a query over the log cannot be answered, or a proof cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("block height {height} is not in the log (it holds heights 1 to {last})")]
    NoSuchBlock { height: u64, last: u64 },
    #[error("log entry of block {height} is not a valid block: {reason}")]
    BadBlock { height: u64, reason: String },
    #[error("transaction {id} is not in block {height}")]
    NoSuchTransaction { id: u128, height: u64 },
    #[error("transaction {id} is in no block of the log (it holds heights 1 to {last})")]
    NotInLog { id: u128, last: u64 },
    #[error("the log starts at height {first_live}: the blocks before it were archived, and a proof needs the validator votes from height 1 on (prove from a node that keeps its whole log)")]
    ProofArchived { first_live: u64 },
    #[error("block {height} carries no commit certificate (a node outside consensus writes none): nothing proves it final")]
    NoCertificate { height: u64 },
    #[error("the proof would carry {vote_blocks} blocks and {votes} validator votes, more than a proof may (docs/MERKLE.md)")]
    ProofTooLarge { vote_blocks: usize, votes: usize },
    #[error("{path} holds no node's log ({reason}): is --data-dir the node's data directory (its `data_dir`)?")]
    NoLog {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("block {height} was archived (the live log starts at block {first_live}) and no archive directory is given: name the node's `archive_dir`")]
    Archived { height: u64, first_live: u64 },
    #[error("block {height} is in neither the archive nor the live log (the live log starts at block {first_live})")]
    MissingBlock { height: u64, first_live: u64 },
    #[error(transparent)]
    Events(#[from] crate::events::JournalError),
    #[error("the history index names position {index} of block {height} for {what}, which the block does not hold there: the index is damaged (remove the data directory's index/ and it is rebuilt from the log)")]
    IndexMismatch {
        what: String,
        height: u64,
        index: u32,
    },
    #[error(transparent)]
    Index(#[from] HistoryIndexError),
    #[error(transparent)]
    TaxDays(#[from] TaxJournalError),
}

/// Where history is read from: the log, its archive and the history index over both.
#[derive(Clone, Copy)]
pub struct HistorySource<'a> {
    pub log: &'a Log,
    /// The node's `archive_dir`, where the blocks before the live log are.
    pub archive_dir: Option<&'a Path>,
    /// The index; without it, history is a scan of the live log.
    pub index: Option<&'a HistoryIndex>,
    /// The node's event journal: what became of a queued payment the ledger no longer holds
    /// (released from its queue, or expired at its day's end). Without it such a payment is
    /// `queue_closed`.
    pub events: Option<&'a crate::events::EventJournal>,
}

/// Hands the blocks from `from_height` on to `visit` (height, block), out of the archive
/// and then the live log, until it returns `false` or the log ends.
pub fn visit_blocks(
    log: &Log,
    archive_dir: Option<&Path>,
    from_height: u64,
    mut visit: impl FnMut(u64, &BlockView) -> Result<bool, QueryError>,
) -> Result<(), QueryError> {
    let first_live = log.first_sequence() + 1;
    let mut next = from_height.max(1);
    if next < first_live {
        let Some(archive) = archive_dir else {
            return Err(QueryError::Archived {
                height: next,
                first_live,
            });
        };
        let mut failed = None;
        let mut stopped = false;
        crate::log::read_archived(archive, next - 1, |sequence, payload| {
            let height = sequence + 1;
            let outcome = block::decode_entry(payload)
                .map_err(|error| QueryError::BadBlock {
                    height,
                    reason: error.to_string(),
                })
                .and_then(|view| visit(height, &view));
            match outcome {
                Ok(go_on) => {
                    next = height + 1;
                    stopped = !go_on;
                    go_on
                }
                Err(error) => {
                    failed = Some(error);
                    false
                }
            }
        })?;
        if let Some(error) = failed {
            return Err(error);
        }
        if stopped {
            return Ok(());
        }
        if next < first_live {
            return Err(QueryError::MissingBlock {
                height: next,
                first_live,
            });
        }
    }
    if next > log.next_sequence() {
        return Ok(());
    }
    for item in log.entries(next - 1)? {
        let (sequence, entry) = item?;
        let height = sequence + 1;
        let view = block::decode_entry(entry).map_err(|error| QueryError::BadBlock {
            height,
            reason: error.to_string(),
        })?;
        if !visit(height, &view)? {
            break;
        }
    }
    Ok(())
}

/// The records at `positions` (block order), read from their blocks.
fn logged_at(
    source: &HistorySource,
    positions: &[crate::log::history::Entry],
) -> Result<Vec<LoggedTx>, QueryError> {
    let mut found = Vec::with_capacity(positions.len());
    let mut at = 0;
    while at < positions.len() {
        let height = positions[at].height;
        let before = at;
        visit_blocks(source.log, source.archive_dir, height, |h, view| {
            if h != height {
                return Err(QueryError::MissingBlock {
                    height,
                    first_live: source.log.first_sequence() + 1,
                });
            }
            while at < positions.len() && positions[at].height == height {
                let index = positions[at].index as usize;
                let (Some(record), Some(&code)) =
                    (view.records.get(index), view.results.get(index))
                else {
                    return Err(QueryError::IndexMismatch {
                        what: format!("key {}", positions[at].key),
                        height,
                        index: index as u32,
                    });
                };
                found.push(LoggedTx {
                    height,
                    timestamp_ms: view.header.timestamp_ms(),
                    index,
                    record: *record,
                    result: ResultCode::from_wire(code).expect("decode_entry checked the codes"),
                });
                at += 1;
            }
            Ok(false)
        })?;
        if at == before {
            return Err(QueryError::MissingBlock {
                height,
                first_live: source.log.first_sequence() + 1,
            });
        }
    }
    Ok(found)
}

/// Fails with [`QueryError::IndexMismatch`] unless `keep` holds for the record the index
/// pointed at (a damaged index is never trusted silently).
fn check_indexed(
    logged: &LoggedTx,
    what: impl FnOnce() -> String,
    keep: impl FnOnce(&TxRecord) -> bool,
) -> Result<(), QueryError> {
    if keep(&logged.record) {
        Ok(())
    } else {
        Err(QueryError::IndexMismatch {
            what: what(),
            height: logged.height,
            index: logged.index as u32,
        })
    }
}

/// Checks that `data_dir` is a node's data directory that holds a log, before anything opens
/// it: opening creates what is missing, so a mistyped directory would otherwise answer from
/// the genesis as if no block had been made.
pub fn check_data_dir(data_dir: &Path) -> Result<(), QueryError> {
    let no_log = |reason: &str| QueryError::NoLog {
        path: data_dir.to_path_buf(),
        reason: reason.to_string(),
    };
    if !data_dir.is_dir() {
        return Err(no_log("no such directory"));
    }
    let log = data_dir.join("log");
    if !log.is_dir() {
        return Err(no_log("it has no log/ directory"));
    }
    let empty = std::fs::read_dir(&log)
        .map_err(|error| no_log(&format!("log/ cannot be read: {error}")))?
        .next()
        .is_none();
    if empty {
        return Err(no_log("its log/ directory is empty"));
    }
    Ok(())
}

/// Builds the proof that trusts no node ([`crate::proof::build`]) of transaction `id` (in
/// block `height`, or the first block that holds it) from the log of the stopped node in
/// `data_dir`, on the network `network_id` with epochs of `heights_per_epoch` heights.
pub fn prove_offline(
    data_dir: &Path,
    config: LogConfig,
    network_id: u64,
    heights_per_epoch: u64,
    id: u128,
    height: Option<u64>,
) -> Result<crate::proof::TxProof, QueryError> {
    check_data_dir(data_dir)?;
    let log = Log::open(&data_dir.join("log"), config)?;
    crate::proof::build(&log, network_id, heights_per_epoch, id, height)
}

/// One appearance of a transaction in a block of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedTx {
    pub height: u64,
    pub timestamp_ms: u64,
    /// Position in the block.
    pub index: usize,
    pub record: TxRecord,
    /// The code the block recorded for it.
    pub result: ResultCode,
}

/// What a scan of the log found.
#[derive(Clone, Debug, Default)]
pub struct LogScan {
    /// The first block still in the live log (earlier ones were archived), 0 if none.
    pub first_height: u64,
    /// The last block of the log.
    pub last_height: u64,
    pub found: Vec<LoggedTx>,
    /// Where the scan stopped before the end of the log (its limit of transactions or of
    /// blocks), to go on from.
    pub next: Option<HistoryCursor>,
}

/// The transactions of `log` for which `keep` is true, in block order, from `from` (absent:
/// the first live block; one before it starts there): at most `limit` of them, reading at
/// most `blocks_max` blocks.
pub fn scan_log(
    log: &Log,
    from: Option<HistoryCursor>,
    limit: usize,
    blocks_max: u64,
    mut keep: impl FnMut(&TxRecord) -> bool,
) -> Result<LogScan, QueryError> {
    let first = log.first_sequence();
    let last_height = log.next_sequence();
    let mut scan = LogScan {
        first_height: if last_height > first { first + 1 } else { 0 },
        last_height,
        found: Vec::new(),
        next: None,
    };
    let mut cursor = from.unwrap_or(HistoryCursor {
        height: first + 1,
        index: 0,
    });
    if cursor.height <= first {
        cursor = HistoryCursor {
            height: first + 1,
            index: 0,
        };
    }
    if cursor.height > last_height {
        return Ok(scan);
    }
    for (blocks, item) in (0u64..).zip(log.entries(cursor.height - 1)?) {
        let (sequence, entry) = item?;
        let height = sequence + 1;
        if blocks == blocks_max {
            scan.next = Some(HistoryCursor { height, index: 0 });
            break;
        }
        let view = block::decode_entry(entry).map_err(|error| QueryError::BadBlock {
            height,
            reason: error.to_string(),
        })?;
        let skip = if height == cursor.height {
            cursor.index as usize
        } else {
            0
        };
        for (index, (record, &code)) in view.records.iter().zip(view.results).enumerate().skip(skip)
        {
            if !keep(record) {
                continue;
            }
            if scan.found.len() == limit {
                scan.next = Some(HistoryCursor {
                    height,
                    index: index as u64,
                });
                return Ok(scan);
            }
            scan.found.push(LoggedTx {
                height,
                timestamp_ms: view.header.timestamp_ms(),
                index,
                record: *record,
                result: ResultCode::from_wire(code).expect("decode_entry checked the codes"),
            });
        }
    }
    Ok(scan)
}

/// Every appearance of transaction `id` (rejected attempts included) in the live log of the
/// stopped node in `data_dir`.
pub fn transaction_history(
    data_dir: &Path,
    config: LogConfig,
    id: u128,
) -> Result<LogScan, QueryError> {
    let log = Log::open(&data_dir.join("log"), config)?;
    scan_log(&log, None, usize::MAX, u64::MAX, |record| record.id() == id)
}

/// Every transaction of the live log of the stopped node in `data_dir` that names `account`
/// as debit or credit account.
pub fn account_history(
    data_dir: &Path,
    config: LogConfig,
    account: u64,
) -> Result<LogScan, QueryError> {
    let log = Log::open(&data_dir.join("log"), config)?;
    scan_log(&log, None, usize::MAX, u64::MAX, |record| {
        names(record, account)
    })
}

fn names(record: &TxRecord, account: u64) -> bool {
    record.debit_account() == account || record.credit_account() == account
}

/// A logged transaction, as the protocol states it, with the ledger's status when given.
fn logged_info(logged: &LoggedTx, status: Option<TxStatusInfo>) -> LoggedTxInfo {
    let record = &logged.record;
    LoggedTxInfo {
        height: logged.height,
        timestamp_ms: logged.timestamp_ms,
        index: logged.index as u64,
        id: record.id(),
        kind: record
            .kind()
            .map_or("unknown", |kind| kind.name())
            .to_string(),
        debit_account: record.debit_account(),
        credit_account: record.credit_account(),
        amount: record.amount(),
        result: logged.result.name().to_string(),
        status,
    }
}

/// How far a history query reads: a running node a bounded number of blocks
/// ([`HistoryReach::Running`]), a stopped node's data directory the whole live log. With a
/// history index, the reach bounds only the blocks after the last one indexed (read from the
/// log); everything indexed is found through the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryReach {
    Running,
    Stopped,
}

/// Answers the queries that read the log as well as the ledger (`TxHistory`,
/// `AccountHistory`, and `TxStatus` of a transaction the ledger no longer holds): the one
/// answer function of a running node (its executor, between blocks, with its log) and of a
/// stopped node's data directory. `visible` says which records the asker may see (a
/// participant sees those whose debit or credit account its certificate covers; `|_| true`
/// for everything). Other queries go to [`answer_from_ledger`].
pub fn answer_with_log(
    ledger: &Ledger,
    source: &HistorySource,
    query: &Query,
    reach: HistoryReach,
    visible: impl Fn(&TxRecord) -> bool,
) -> Result<QueryResult, QueryError> {
    let log = source.log;
    let blocks_max = match reach {
        HistoryReach::Running => TX_HISTORY_BLOCKS_MAX,
        HistoryReach::Stopped => u64::MAX,
    };
    // the blocks after the index's last, read from the log (all of them without an index)
    let tail_from = source.index.map(|index| index.indexed_height() + 1);
    Ok(match query {
        Query::TxStatus { id } if matches!(ledger.status(*id), TxStatus::Unknown) => {
            let info = tx_status_from_history(ledger, source, *id, reach, &visible)?
                .unwrap_or_else(|| tx_status_info(ledger, *id));
            QueryResult::Ok(Answer::TxStatus(Box::new(info)))
        }
        Query::TxHistory { id } => {
            let mut blocks = Vec::new();
            if let Some(index) = source.index {
                let own: Vec<_> = index
                    .transaction(*id)
                    .into_iter()
                    .filter(|e| e.flags & REFERENCE == 0)
                    .collect();
                for logged in logged_at(source, &own)? {
                    check_indexed(&logged, || format!("transaction {id}"), |r| r.id() == *id)?;
                    if visible(&logged.record) {
                        blocks.push(logged_info(&logged, None));
                    }
                }
            }
            // A running node without an index reads its last blocks, where a transaction
            // still within its validity window is.
            let from = match (tail_from, reach) {
                (Some(height), _) => Some(HistoryCursor { height, index: 0 }),
                (None, HistoryReach::Running) => Some(HistoryCursor {
                    height: log.next_sequence().saturating_sub(blocks_max) + 1,
                    index: 0,
                }),
                (None, HistoryReach::Stopped) => None,
            };
            let scan = scan_log(log, from, usize::MAX, blocks_max, |record| {
                record.id() == *id && visible(record)
            })?;
            blocks.extend(scan.found.iter().map(|l| logged_info(l, None)));
            QueryResult::Ok(Answer::TxHistory {
                id: *id,
                // what was searched
                first_height: match (source.index, from) {
                    (Some(index), _) => index.base_height(),
                    (None, Some(from)) if scan.first_height > 0 => {
                        from.height.max(scan.first_height)
                    }
                    _ => scan.first_height,
                },
                last_height: scan.last_height,
                blocks,
            })
        }
        Query::AccountHistory {
            account,
            from,
            limit,
        } => {
            if ledger.account(*account).is_none() {
                return Ok(QueryResult::Error(format!(
                    "account {account} is not in this ledger"
                )));
            }
            let limit = match limit.unwrap_or(0) {
                0 => HISTORY_PAGE_DEFAULT,
                limit => limit.min(HISTORY_PAGE_MAX),
            } as usize;
            let mut found = Vec::new();
            let mut next = None;
            let mut cursor = *from;
            let mut first_height = None;
            if let Some(index) = source.index {
                first_height = Some(index.base_height());
                let start = cursor.unwrap_or(HistoryCursor {
                    height: index.base_height(),
                    index: 0,
                });
                if start.height <= index.indexed_height() {
                    let (positions, more) = index.account(
                        *account,
                        start.height,
                        u32::try_from(start.index).unwrap_or(u32::MAX),
                        limit + 1,
                    );
                    let mut positions = positions;
                    if positions.len() > limit || more {
                        let over = positions.split_off(limit.min(positions.len()));
                        next = over.first().map(|e| HistoryCursor {
                            height: e.height,
                            index: u64::from(e.index),
                        });
                    }
                    for logged in logged_at(source, &positions)? {
                        check_indexed(
                            &logged,
                            || format!("account {account}"),
                            |r| names(r, *account),
                        )?;
                        found.push(logged);
                    }
                    cursor = Some(HistoryCursor {
                        height: index.indexed_height() + 1,
                        index: 0,
                    });
                }
            }
            let mut scan = LogScan::default();
            if next.is_none() {
                scan = scan_log(log, cursor, limit - found.len(), blocks_max, |record| {
                    names(record, *account)
                })?;
                found.append(&mut scan.found);
                next = scan.next;
            } else {
                scan.last_height = log.next_sequence();
            }
            QueryResult::Ok(Answer::AccountHistory {
                account: *account,
                first_height: first_height.unwrap_or(scan.first_height),
                last_height: log.next_sequence(),
                transactions: found
                    .iter()
                    .map(|logged| {
                        let status = logged
                            .result
                            .is_ok()
                            .then(|| tx_status_info(ledger, logged.record.id()));
                        logged_info(logged, status)
                    })
                    .collect(),
                next,
            })
        }
        Query::Proof { id, height } => {
            let schedule = ledger.validator_schedule();
            let proof = crate::proof::build(
                log,
                schedule.current().network_id(),
                schedule.heights_per_epoch(),
                *id,
                *height,
            )?;
            QueryResult::Ok(Answer::Proof(Box::new(proof)))
        }
        _ => answer_from_ledger(ledger, query),
    })
}

/// The status of transaction `id` that the ledger no longer holds (its validity window, and
/// its refund window for a taxed payment, have passed), from the history index: the block
/// that accepted it and the records that named it later (a post or void of a reservation, a
/// cancel of a queued payment, the refunds of a taxed payment, whose data is worked out by
/// the payment's own rate). `None` when the index holds no accepted record of that id that
/// the asker may see.
pub fn tx_status_from_history(
    ledger: &Ledger,
    source: &HistorySource,
    id: u128,
    reach: HistoryReach,
    visible: &impl Fn(&TxRecord) -> bool,
) -> Result<Option<TxStatusInfo>, QueryError> {
    let Some(index) = source.index else {
        return Ok(None);
    };
    let entries = index.transaction(id);
    let mut logged = logged_at(source, &entries)?;
    for (entry, logged) in entries.iter().zip(&logged) {
        if entry.flags & REFERENCE == 0 {
            check_indexed(logged, || format!("transaction {id}"), |r| r.id() == id)?;
        } else {
            check_indexed(
                logged,
                || format!("a reference to {id}"),
                |r| r.related_id() == id,
            )?;
        }
    }
    // and the blocks after the index's last (the indexer follows the log a little behind)
    let blocks_max = match reach {
        HistoryReach::Running => TX_HISTORY_BLOCKS_MAX,
        HistoryReach::Stopped => u64::MAX,
    };
    let tail = HistoryCursor {
        height: index.indexed_height() + 1,
        index: 0,
    };
    let scan = scan_log(source.log, Some(tail), usize::MAX, blocks_max, |record| {
        record.id() == id || record.related_id() == id
    })?;
    logged.extend(scan.found);
    let mut accepted = None;
    let mut later = Vec::new();
    for logged in logged {
        if logged.record.id() == id {
            if logged.result.is_ok() {
                accepted = Some(logged);
            }
        } else if logged.result.is_settled() {
            later.push(logged);
        }
    }
    let Some(accepted) = accepted.filter(|l| visible(&l.record)) else {
        return Ok(None);
    };
    let record = &accepted.record;
    let mut info = tx_status_info(ledger, id);
    info.height = Some(accepted.height);
    let flags = record.flags();
    let closed_by = |bit: u16| {
        later
            .iter()
            .find(|l| l.height >= accepted.height && l.record.flags().has(bit))
    };
    info.status = if accepted.result == ResultCode::Warehoused {
        match later
            .iter()
            .find(|l| l.record.kind() == Some(TxKind::QueueCancel))
        {
            Some(cancel) => {
                info.height = Some(cancel.height);
                "cancelled"
            }
            // settled, queued or refused at its value date's opening: the ledger no longer
            // says
            None => "warehouse_closed",
        }
    } else if accepted.result == ResultCode::Queued {
        match later
            .iter()
            .find(|l| l.record.kind() == Some(TxKind::QueueCancel))
        {
            Some(cancel) => {
                info.height = Some(cancel.height);
                "cancelled"
            }
            // settled from the queue or expired at its day's end: the event journal says
            None => match queue_outcome(source, id, accepted.height, blocks_max) {
                Some((EventKind::Released, height)) => {
                    info.height = Some(height);
                    "settled_from_queue"
                }
                Some((_, height)) => {
                    info.height = Some(height);
                    // with a calendar, the end of day rejects what is still queued
                    if ledger.calendar().is_some() {
                        info.rejected_with = Some(ResultCode::EndOfDayUnsettled.name().to_string());
                        "end_of_day_unsettled"
                    } else {
                        "expired"
                    }
                }
                None => "queue_closed",
            },
        }
    } else if flags.has(TxFlags::PENDING) {
        if let Some(post) = closed_by(TxFlags::POST_PENDING) {
            info.closed_by = Some(post.record.id());
            info.posted_amount = Some(post.record.amount());
            "posted"
        } else if let Some(void) = closed_by(TxFlags::VOID_PENDING) {
            info.closed_by = Some(void.record.id());
            "voided"
        } else {
            "pending_expired"
        }
    } else {
        "settled"
    }
    .to_string();
    if record.kind() == Some(TxKind::TaxedPayment) && accepted.result.is_settled() {
        // the rate in force at the block's time, which the ledger keeps (bounded)
        if let Some(rate) = ledger.tax_rate(record.category(), accepted.timestamp_ms) {
            let amount = record.amount();
            let tax = rate.tax_on(amount);
            let refunded_amount: u64 = later
                .iter()
                .filter(|l| l.record.kind() == Some(TxKind::Refund))
                .map(|l| l.record.amount())
                .sum();
            let refunded_tax = if refunded_amount >= amount {
                tax
            } else {
                rate.tax_on(refunded_amount)
            };
            let debited = match rate.basis {
                crate::tax::TaxBasis::Exclusive => amount + tax,
                _ => amount,
            };
            let payee = ledger.account(record.credit_account());
            let tax_account = match (rate.to_sub_account, payee.and_then(|p| p.tax_sub_account)) {
                (true, Some(sub)) => sub,
                _ => ledger.tax_authority(),
            };
            info.taxed = Some(TaxedPaymentInfo {
                category: record.category(),
                rate_bp: rate.rate_bp,
                basis: rate.basis.name().to_string(),
                rounding: rate.rounding.name().to_string(),
                amount,
                tax,
                debited,
                net: debited - tax,
                tax_account,
                refunded_amount,
                refunded_tax,
            });
        }
    }
    Ok(Some(info))
}

/// Answers a query over a stopped node's data directory (`tally query --data-dir`): `ledger`
/// is the state replayed from it. The same answer functions as a running node's
/// ([`answer_with_log`], [`answer_from_ledger`]), so both give the same answers in the same
/// JSON; history is found through the data directory's history index, which is opened
/// (damaged segments removed) and caught up from the log first. The node must not be running
/// (opening the log may cut a torn tail).
pub fn answer_offline(
    ledger: &Ledger,
    data_dir: &Path,
    archive_dir: Option<&Path>,
    config: LogConfig,
    query: &Query,
) -> Result<QueryResult, QueryError> {
    match query {
        Query::TxHistory { .. }
        | Query::AccountHistory { .. }
        | Query::TxStatus { .. }
        | Query::Proof { .. } => {
            check_data_dir(data_dir)?;
            let log = Log::open(&data_dir.join("log"), config)?;
            let (mut index, _) = HistoryIndex::open(&HistoryIndex::dir_in(data_dir))?;
            catch_up(&mut index, &log, archive_dir, log.next_sequence())?;
            index.flush()?;
            // The event journal as the node left it, if it has one (never made here).
            let events_dir = data_dir.join(crate::events::EVENTS_DIR);
            let events = if events_dir.exists() {
                Some(crate::events::EventJournal::open(&events_dir)?)
            } else {
                None
            };
            let source = HistorySource {
                log: &log,
                archive_dir,
                index: Some(&index),
                events: events.as_ref(),
            };
            answer_with_log(ledger, &source, query, HistoryReach::Stopped, |_| true)
        }
        Query::TaxReport {
            payee,
            from_day,
            to_day,
        } => {
            check_data_dir(data_dir)?;
            let journal = TaxDayJournal::open(&TaxDayJournal::dir_in(data_dir))?;
            Ok(crate::net::query::tax_report_with_days(
                ledger, &journal, *payee, *from_day, *to_day,
            ))
        }
        _ => Ok(answer_from_ledger(ledger, query)),
    }
}

/// What closed queued payment `id` (accepted into its queue at `queued_at`): the first
/// `released` or `expired` event of it in the event journal after that block, with its
/// height, reading at most `blocks_max` blocks; `None` without a journal, before the
/// journal's first block, past the bound, or on a journal error (then `queue_closed`).
fn queue_outcome(
    source: &HistorySource<'_>,
    id: u128,
    queued_at: u64,
    blocks_max: u64,
) -> Option<(EventKind, u64)> {
    let journal = source.events?;
    let mut cursor = crate::events::Cursor::at(queued_at + 1);
    let mut found = None;
    let mut read = 0u64;
    while found.is_none() && read < blocks_max {
        let chunk = (blocks_max - read).min(1_024) as usize;
        let got = journal
            .read(&mut cursor, chunk, |height, _, events| {
                if found.is_none() {
                    found = events
                        .iter()
                        .find(|e| {
                            e.id == id && matches!(e.kind, EventKind::Released | EventKind::Expired)
                        })
                        .map(|e| (e.kind, height));
                }
            })
            .ok()?;
        if got == 0 {
            break;
        }
        read += got as u64;
    }
    found
}

/// Adds the blocks after the index's last, up to `through`, read from the log and its
/// archive, writing segments as they fill. Where the index lacks blocks that were archived
/// and no archive directory is given, it fails with [`QueryError::Archived`] and leaves the
/// index as it is (a node with its `archive_dir` catches it up).
pub fn catch_up(
    index: &mut HistoryIndex,
    log: &Log,
    archive_dir: Option<&Path>,
    through: u64,
) -> Result<(), QueryError> {
    // visit_blocks refuses archived blocks without an archive directory (`Archived`),
    // leaving the index as it is
    let mut failed = None;
    visit_blocks(
        log,
        archive_dir,
        index.indexed_height() + 1,
        |height, view| {
            if height > through {
                return Ok(false);
            }
            if let Err(error) = index.add_block(height, view.records) {
                failed = Some(error);
                return Ok(false);
            }
            if index.flush_due() {
                if let Err(error) = index.flush() {
                    failed = Some(error);
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    match failed {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}
