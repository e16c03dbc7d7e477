//! Read-side queries over a node's data directory: proofs of transactions
//! ([`prove_offline`]), and the blocks that carried a transaction or touched an account (with
//! their result codes). The ledger's own queries (balances, statuses, queues, tax reports) are
//! methods of [`crate::ledger::Ledger`] over the replayed state. [`answer_offline`] answers the
//! protocol's queries over a stopped node's data directory (`tally query`), with the network
//! server's answer function for the ledger's.

use crate::block;
use crate::ledger::Ledger;
use crate::log::{Log, LogConfig, LogError};
use crate::net::query::{
    answer_from_ledger, tx_status_info, Answer, HistoryCursor, LoggedTxInfo, Query, QueryResult,
    TxStatusInfo, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX, TX_HISTORY_BLOCKS_MAX,
};
use crate::result::ResultCode;
use crate::tx::TxRecord;
use std::path::Path;

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
    Archived { first_live: u64 },
    #[error("block {height} carries no commit certificate (a node outside consensus writes none): nothing proves it final")]
    NoCertificate { height: u64 },
    #[error("the proof would carry {vote_blocks} blocks and {votes} validator votes, more than a proof may (docs/MERKLE.md)")]
    ProofTooLarge { vote_blocks: usize, votes: usize },
    #[error("{path} holds no node's log ({reason}): is --data-dir the node's data directory (its `data_dir`)?")]
    NoLog {
        path: std::path::PathBuf,
        reason: String,
    },
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
/// ([`HistoryReach::Running`]), a stopped node's data directory the whole live log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryReach {
    Running,
    Stopped,
}

/// Answers the queries that read the log as well as the ledger (`TxHistory`,
/// `AccountHistory`): the one answer function of a running node (its executor, between
/// blocks, with its log) and of a stopped node's data directory. `visible` says which
/// records the asker may see (a participant sees those whose debit or credit account its
/// certificate covers; `|_| true` for everything). Other queries go to
/// [`answer_from_ledger`].
pub fn answer_with_log(
    ledger: &Ledger,
    log: &Log,
    query: &Query,
    reach: HistoryReach,
    visible: impl Fn(&TxRecord) -> bool,
) -> Result<QueryResult, QueryError> {
    let blocks_max = match reach {
        HistoryReach::Running => TX_HISTORY_BLOCKS_MAX,
        HistoryReach::Stopped => u64::MAX,
    };
    Ok(match query {
        Query::TxHistory { id } => {
            // A running node reads its last blocks, where a transaction still within its
            // validity window is.
            let from = match reach {
                HistoryReach::Running => Some(HistoryCursor {
                    height: log.next_sequence().saturating_sub(blocks_max) + 1,
                    index: 0,
                }),
                HistoryReach::Stopped => None,
            };
            let scan = scan_log(log, from, usize::MAX, blocks_max, |record| {
                record.id() == *id && visible(record)
            })?;
            QueryResult::Ok(Answer::TxHistory {
                id: *id,
                // what was searched: from `from` on, within the live log
                first_height: match from {
                    Some(from) if scan.first_height > 0 => from.height.max(scan.first_height),
                    _ => scan.first_height,
                },
                last_height: scan.last_height,
                blocks: scan.found.iter().map(|l| logged_info(l, None)).collect(),
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
            };
            let scan = scan_log(log, *from, limit as usize, blocks_max, |record| {
                names(record, *account)
            })?;
            QueryResult::Ok(Answer::AccountHistory {
                account: *account,
                first_height: scan.first_height,
                last_height: scan.last_height,
                transactions: scan
                    .found
                    .iter()
                    .map(|logged| {
                        let status = logged
                            .result
                            .is_ok()
                            .then(|| tx_status_info(ledger, logged.record.id()));
                        logged_info(logged, status)
                    })
                    .collect(),
                next: scan.next,
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

/// Answers a query over a stopped node's data directory (`tally query --data-dir`): `ledger`
/// is the state replayed from it. The same answer functions as a running node's
/// ([`answer_with_log`], [`answer_from_ledger`]), so both give the same answers in the same
/// JSON; a stopped node's history reads the whole live log. The node must not be running
/// (opening the log may cut a torn tail).
pub fn answer_offline(
    ledger: &Ledger,
    data_dir: &Path,
    config: LogConfig,
    query: &Query,
) -> Result<QueryResult, QueryError> {
    match query {
        Query::TxHistory { .. } | Query::AccountHistory { .. } | Query::Proof { .. } => {
            check_data_dir(data_dir)?;
            let log = Log::open(&data_dir.join("log"), config)?;
            answer_with_log(ledger, &log, query, HistoryReach::Stopped, |_| true)
        }
        _ => Ok(answer_from_ledger(ledger, query)),
    }
}
