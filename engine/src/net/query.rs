//! Queries a client can ask a running node, and their answers.
//!
//! Queries travel as JSON (externally tagged: `"status"`, `{"balance":{"account":5}}`), so a
//! new query is: a variant of [`Query`], a variant of [`Answer`], and an arm in
//! [`answer_from_ledger`] (for questions about the state, answered by the executor between
//! blocks) or in the server's `answer_now` (for questions about the node itself).

use crate::ledger::Ledger;
use serde::{Deserialize, Serialize};

/// A question to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Query {
    /// The node's height, queues, counters and backend.
    Status,
    /// An account's balance.
    Balance { account: u64 },
    /// Whether a transaction id has settled.
    Transaction { id: u128 },
    /// A transaction's settlement status (queued, settled from the queue, pending...).
    TxStatus { id: u128 },
    /// A payer bank's RTGS queue in settlement order (at most `QUEUE_ANSWER_MAX` entries).
    Queue { payer: u64 },
    /// A payee's tax over business days `from_day..=to_day`, per category.
    TaxReport {
        payee: u64,
        from_day: u64,
        to_day: u64,
    },
    /// The validator set in force, the next epoch's keys so far and the pending votes.
    Validators,
}

/// One change pending a vote in a `Validators` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    /// `add` or `remove`.
    pub change: String,
    /// Hex key of the validator added or removed.
    pub validator: String,
    /// Hex keys of the validators that voted for it this epoch.
    pub voters: Vec<String>,
}

/// Most queued payments one `Queue` answer lists.
pub const QUEUE_ANSWER_MAX: usize = 1_000;

/// One queued payment in a `Queue` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedInfo {
    pub id: u128,
    pub payee: u64,
    pub amount: u64,
    pub urgent: bool,
    pub held: bool,
    pub expires_at_ms: u64,
}

/// One category of a `TaxReport` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRow {
    pub category: u32,
    pub payments: u64,
    pub gross: u128,
    pub tax: u128,
    pub refunds: u64,
    pub refunded_gross: u128,
    pub refunded_tax: u128,
}

impl Query {
    /// Whether the executor must answer it (it reads the ledger).
    pub fn needs_ledger(&self) -> bool {
        !matches!(self, Query::Status)
    }
}

/// Counters of a node's pipeline, as in [`crate::node::NodeCounters`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounters {
    pub submitted: u64,
    pub rejected_at_ingress: u64,
    pub bad_signatures: u64,
    pub executed: u64,
    pub blocks: u64,
    pub flushes: u64,
}

/// What `Query::Status` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Version of the node's software.
    pub version: String,
    pub network_id: u64,
    /// Hex of the genesis hash.
    pub genesis_hash: String,
    /// Height of the last durable block.
    pub height: u64,
    pub mempool_depth: u64,
    pub mempool_capacity: u64,
    /// Signature backend in use: `cpu` or `gpu` (what `auto` chose).
    pub backend: String,
    /// Consensus height and round; 0 while the node runs as a PoA of one (consensus not
    /// wired to the network yet).
    pub consensus_height: u64,
    pub consensus_round: u64,
    /// Client connections open now.
    pub client_connections: u64,
    /// Validator peers connected (0 until validator transport exists).
    pub peers_connected: u64,
    pub uptime_s: u64,
    pub counters: StatusCounters,
    /// Why the node stopped taking transactions, if it did.
    pub fatal: Option<String>,
}

/// An answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    Status(Box<NodeStatus>),
    /// `balance` is `None` when no such account exists.
    Balance {
        account: u64,
        balance: Option<i64>,
    },
    Transaction {
        id: u128,
        settled: bool,
    },
    /// `status`: a name of `ledger::TxStatus` (`unknown`, `settled`, `settled_from_queue`,
    /// `queued`, ...); `height` where the status has one; `queue_position` when queued.
    TxStatus {
        id: u128,
        status: String,
        height: Option<u64>,
        queue_position: Option<u64>,
    },
    Queue {
        payer: u64,
        /// Payments waiting, of which `payments` lists the first `QUEUE_ANSWER_MAX`.
        total: u64,
        payments: Vec<QueuedInfo>,
    },
    TaxReport {
        payee: u64,
        rows: Vec<TaxRow>,
    },
    /// The set in force (`epoch`, `validators` in proposer order, `quorum`), the keys the
    /// next epoch will have with the changes adopted so far, and the changes still short of
    /// a quorum (they lapse when the epoch ends at height `epoch_end`).
    Validators {
        epoch: u64,
        heights_per_epoch: u64,
        epoch_end: u64,
        quorum: u64,
        validators: Vec<String>,
        next: Vec<String>,
        pending: Vec<PendingChange>,
    },
}

/// A query's outcome on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryResult {
    Ok(Answer),
    /// Why the query was not answered.
    Error(String),
}

/// Answers a query that reads the state. Runs on the executor thread between blocks, so it
/// must be quick (no scans proportional to history without a bound).
pub fn answer_from_ledger(ledger: &Ledger, query: &Query) -> QueryResult {
    match query {
        Query::Balance { account } => QueryResult::Ok(Answer::Balance {
            account: *account,
            balance: ledger.balance(*account),
        }),
        Query::Transaction { id } => QueryResult::Ok(Answer::Transaction {
            id: *id,
            settled: ledger.is_settled(*id),
        }),
        Query::TxStatus { id } => {
            use crate::ledger::TxStatus;
            let status = ledger.status(*id);
            let (height, queue_position) = match status {
                TxStatus::SettledFromQueue { height, .. }
                | TxStatus::Cancelled { height }
                | TxStatus::Expired { height }
                | TxStatus::PendingExpired { height } => (Some(height), None),
                TxStatus::Queued { position, .. } => (None, Some(position as u64)),
                _ => (None, None),
            };
            QueryResult::Ok(Answer::TxStatus {
                id: *id,
                status: status.name().to_string(),
                height,
                queue_position,
            })
        }
        Query::Queue { payer } => {
            let queued = ledger.queued_payments(Some(*payer));
            QueryResult::Ok(Answer::Queue {
                payer: *payer,
                total: queued.len() as u64,
                payments: queued
                    .iter()
                    .take(QUEUE_ANSWER_MAX)
                    .map(|q| QueuedInfo {
                        id: q.id,
                        payee: q.payee,
                        amount: q.amount,
                        urgent: q.urgent,
                        held: q.held,
                        expires_at_ms: q.expires_at_ms,
                    })
                    .collect(),
            })
        }
        Query::TaxReport {
            payee,
            from_day,
            to_day,
        } => QueryResult::Ok(Answer::TaxReport {
            payee: *payee,
            rows: ledger
                .tax_report(Some(*payee), *from_day, *to_day)
                .iter()
                .map(|row| TaxRow {
                    category: row.category,
                    payments: row.totals.payments,
                    gross: row.totals.gross,
                    tax: row.totals.tax,
                    refunds: row.totals.refunds,
                    refunded_gross: row.totals.refunded_gross,
                    refunded_tax: row.totals.refunded_tax,
                })
                .collect(),
        }),
        Query::Validators => {
            use crate::consensus::ValidatorChange;
            let schedule = ledger.validator_schedule();
            let set = schedule.current();
            let hex_all = |keys: &[[u8; 32]]| keys.iter().map(hex::encode).collect::<Vec<_>>();
            QueryResult::Ok(Answer::Validators {
                epoch: set.epoch(),
                heights_per_epoch: schedule.heights_per_epoch(),
                epoch_end: (set.epoch() + 1) * schedule.heights_per_epoch() - 1,
                quorum: set.quorum() as u64,
                validators: hex_all(set.public_keys()),
                next: hex_all(schedule.next_public_keys()),
                pending: schedule
                    .pending()
                    .map(|(change, voters)| {
                        let (name, key) = match change {
                            ValidatorChange::Add(key) => ("add", key),
                            ValidatorChange::Remove(key) => ("remove", key),
                        };
                        PendingChange {
                            change: name.to_string(),
                            validator: hex::encode(key),
                            voters: voters.iter().map(hex::encode).collect(),
                        }
                    })
                    .collect(),
            })
        }
        Query::Status => {
            QueryResult::Error("status is answered by the node, not the ledger".into())
        }
    }
}

/// The node's status, read from its counters and metrics (no ledger access).
pub fn node_status(node: &crate::node::NodeHandle, client_connections: u64) -> NodeStatus {
    use std::sync::atomic::Ordering;
    let c = node.counters();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let m = node.metrics();
    NodeStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        network_id: node.network_id(),
        genesis_hash: hex::encode(node.genesis_hash()),
        height: node.height(),
        mempool_depth: node.mempool_len() as u64,
        mempool_capacity: node.mempool_capacity() as u64,
        backend: m.backend(),
        consensus_height: m.consensus_height.get().max(0) as u64,
        consensus_round: m.consensus_round.get().max(0) as u64,
        client_connections,
        peers_connected: m.peers_connected.get().max(0) as u64,
        uptime_s: m.uptime().as_secs(),
        counters: StatusCounters {
            submitted: load(&c.submitted),
            rejected_at_ingress: load(&c.rejected_at_ingress),
            bad_signatures: load(&c.bad_signatures),
            executed: load(&c.executed),
            blocks: load(&c.blocks),
            flushes: load(&c.flushes),
        },
        fatal: node.fatal_error(),
    }
}
