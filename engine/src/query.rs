//! Read-side queries over a node's data directory: inclusion proofs of transactions, and the
//! blocks that carried a transaction or touched an account (with their result codes). The
//! ledger's own queries (balances, statuses, queues, tax reports) are methods of
//! [`crate::ledger::Ledger`] over the replayed state. [`answer_offline`] answers the
//! protocol's queries over a stopped node's data directory (`tally query`), with the network
//! server's answer function for the ledger's.

use crate::block::{self, BlockHeader};
use crate::ledger::Ledger;
use crate::log::{Log, LogConfig, LogError};
use crate::net::query::{
    answer_from_ledger, tax_report, tx_status_info, Answer, LoggedTxInfo, Query, QueryResult,
    TxStatusInfo,
};
use crate::result::ResultCode;
use crate::tx::{TxRecord, TX_BYTES};
use std::path::Path;
use tally_kernels::merkle::{build_proof, tree_levels, ProofJson};

/// A transaction's inclusion proof with the header it proves against.
pub struct TxProof {
    pub header: BlockHeader,
    pub result: ResultCode,
    pub proof: ProofJson,
}

/// Why a proof cannot be made.
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
}

/// Builds the proof that transaction `id` is in block `height` of the log in
/// `data_dir/log`. The node must not be running (opening the log may cut a torn tail).
pub fn prove_transaction(
    data_dir: &Path,
    config: LogConfig,
    height: u64,
    id: u128,
) -> Result<TxProof, QueryError> {
    let log = Log::open(&data_dir.join("log"), config)?;
    let last = log.next_sequence();
    if height == 0 || height > last {
        return Err(QueryError::NoSuchBlock { height, last });
    }
    let (_, entry) = log
        .entries(height - 1)?
        .next()
        .expect("a sequence below next_sequence has an entry")?;
    let view = block::decode_entry(entry).map_err(|error| QueryError::BadBlock {
        height,
        reason: error.to_string(),
    })?;
    let index = view
        .records
        .iter()
        .position(|record| record.id() == id)
        .ok_or(QueryError::NoSuchTransaction { id, height })?;
    let leaves: &[u8] = bytemuck::cast_slice(view.records);
    let levels = tree_levels(leaves, TX_BYTES);
    let proof = build_proof(&levels, index as u64);
    let leaf = &leaves[index * TX_BYTES..(index + 1) * TX_BYTES];
    Ok(TxProof {
        header: view.header,
        result: ResultCode::from_wire(view.results[index]).expect("decode_entry checked the codes"),
        proof: ProofJson::new(&proof, &view.header.tx_root, leaf),
    })
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
}

/// Every transaction of the live log for which `keep` is true, in block order. The node
/// must not be running (opening the log may cut a torn tail).
pub fn scan_transactions(
    data_dir: &Path,
    config: LogConfig,
    mut keep: impl FnMut(&TxRecord) -> bool,
) -> Result<LogScan, QueryError> {
    let log = Log::open(&data_dir.join("log"), config)?;
    let first = log.first_sequence();
    let mut scan = LogScan {
        first_height: if log.next_sequence() > first {
            first + 1
        } else {
            0
        },
        last_height: log.next_sequence(),
        found: Vec::new(),
    };
    for item in log.entries(first)? {
        let (sequence, entry) = item?;
        let height = sequence + 1;
        let view = block::decode_entry(entry).map_err(|error| QueryError::BadBlock {
            height,
            reason: error.to_string(),
        })?;
        for (index, (record, &code)) in view.records.iter().zip(view.results).enumerate() {
            if keep(record) {
                scan.found.push(LoggedTx {
                    height,
                    timestamp_ms: view.header.timestamp_ms(),
                    index,
                    record: *record,
                    result: ResultCode::from_wire(code).expect("decode_entry checked the codes"),
                });
            }
        }
    }
    Ok(scan)
}

/// Every appearance of transaction `id` (rejected attempts included) in the live log.
pub fn transaction_history(
    data_dir: &Path,
    config: LogConfig,
    id: u128,
) -> Result<LogScan, QueryError> {
    scan_transactions(data_dir, config, |record| record.id() == id)
}

/// Every transaction of the live log that names `account` as debit or credit account.
pub fn account_history(
    data_dir: &Path,
    config: LogConfig,
    account: u64,
) -> Result<LogScan, QueryError> {
    scan_transactions(data_dir, config, |record| {
        record.debit_account() == account || record.credit_account() == account
    })
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

/// Answers a query over a stopped node's data directory (`tally query`): `ledger` is the state
/// replayed from it. Queries of the state go to the network server's answer function
/// ([`answer_from_ledger`]), so a running node and its stopped data directory give the same
/// answers in the same JSON; the queries only this path answers (the log's `TxHistory` and
/// `AccountHistory`, a `TaxReport` of every payee) are answered here. The node must not be
/// running (opening the log may cut a torn tail).
pub fn answer_offline(
    ledger: &Ledger,
    data_dir: &Path,
    config: LogConfig,
    query: &Query,
) -> Result<QueryResult, QueryError> {
    Ok(match query {
        Query::TxHistory { id } => {
            let scan = transaction_history(data_dir, config, *id)?;
            QueryResult::Ok(Answer::TxHistory {
                id: *id,
                first_height: scan.first_height,
                last_height: scan.last_height,
                blocks: scan.found.iter().map(|l| logged_info(l, None)).collect(),
            })
        }
        Query::AccountHistory { account } => {
            if ledger.account(*account).is_none() {
                return Ok(QueryResult::Error(format!(
                    "account {account} is not in this ledger"
                )));
            }
            let scan = account_history(data_dir, config, *account)?;
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
            })
        }
        Query::TaxReport {
            payee: None,
            from_day,
            to_day,
        } => QueryResult::Ok(tax_report(ledger, None, *from_day, *to_day)),
        _ => answer_from_ledger(ledger, query),
    })
}
