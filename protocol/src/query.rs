//! Queries a client can ask a running node, and their answers.
//!
//! Queries travel as JSON (externally tagged: `"status"`, `{"balance":{"account":5}}`), so a
//! new query is: a variant of [`Query`], a variant of [`Answer`], and an arm in the engine's
//! `tally_engine::net::query::answer_from_ledger` (for questions about the state, answered by
//! the executor between blocks) or in the server's `answer_now` (for questions about the node
//! itself).

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

/// Counters of a node's pipeline, as in `tally_engine::node::NodeCounters`.
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
