//! Queries a client can ask a running node, and their answers; `tally query` asks the same
//! queries of a stopped node's data directory and prints the same answers.
//!
//! Queries travel as JSON (externally tagged: `"status"`, `{"balance":{"account":5}}`), so a
//! new query is: a variant of [`Query`], a variant of [`Answer`], and an arm in the engine's
//! `tally_engine::net::query::answer_from_ledger` (for questions about the state, answered by
//! the executor between blocks) or in the server's `answer_now` (for questions about the node
//! itself).

use serde::{Deserialize, Serialize};

/// A question to a node, or to a stopped node's data directory (`tally query`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Query {
    /// The node's height, queues, counters and backend.
    Status,
    /// An account's balance.
    Balance { account: u64 },
    /// An account: balance, role, limits, reservations, suspension, queued payments.
    Account { account: u64 },
    /// Whether a transaction id has settled.
    Transaction { id: u128 },
    /// A transaction's settlement status (queued, settled from the queue, pending...).
    TxStatus { id: u128 },
    /// A payer bank's RTGS queue in settlement order, or every bank's when `payer` is absent
    /// (at most `QUEUE_ANSWER_MAX` entries).
    Queue {
        #[serde(default)]
        payer: Option<u64>,
    },
    /// Tax over business days `from_day..=to_day` per payee and category: of one payee, or of
    /// every payee when `payee` is absent.
    TaxReport {
        #[serde(default)]
        payee: Option<u64>,
        from_day: u64,
        /// The last day, included; absent or `null`: open, to the last day.
        #[serde(default = "open_end", with = "open_end_day")]
        to_day: u64,
    },
    /// The validator set in force, the next epoch's keys so far and the pending votes.
    Validators,
    /// Every block that carried the transaction, with the code it recorded (a rejected
    /// transaction's reason), found through the node's history index over its log and
    /// archive; the blocks after the index's last are read from the log (a running node at
    /// most [`TX_HISTORY_BLOCKS_MAX`] of them).
    TxHistory { id: u128 },
    /// The transactions that name the account, oldest first, one page at a time, found
    /// through the history index: from `from` (absent: the first block the index covers) at
    /// most `limit` of them (absent or 0:
    /// [`HISTORY_PAGE_DEFAULT`], at most [`HISTORY_PAGE_MAX`]); the answer's `next` is where
    /// the next page starts.
    AccountHistory {
        account: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<HistoryCursor>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// Open two-phase reservations (pending transfers) of one account (as debit or credit
    /// account), or of every account when `account` is absent: one page in id order, of
    /// those with ids after `after` (absent: from the first), at most `limit` (default and
    /// most `QUEUE_ANSWER_MAX`).
    PendingTransfers {
        #[serde(default)]
        account: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u128>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// The ledger's totals: money in circulation, queued and reserved value, tax collected.
    Totals,
    /// The business day at the ledger's time: its number and date, its phase (closed, before
    /// opening, open, after a cut-off) and the next boundary of the schedule.
    BusinessDay,
    /// A proof that trusts no node of the transaction's inclusion in a final block
    /// ([`crate::proof::TxProof`]): in block `height`, or (absent) the first block of the
    /// live log that holds it. The node reads its log from the first block (the validator
    /// votes are part of the proof).
    Proof {
        id: u128,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u64>,
    },
}

/// Where a page of an account's history starts: transaction `index` of block `height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryCursor {
    pub height: u64,
    pub index: u64,
}

/// Transactions of one history page when the query names no limit.
pub const HISTORY_PAGE_DEFAULT: u64 = 100;
/// Most transactions of one history page.
pub const HISTORY_PAGE_MAX: u64 = 1_000;
/// Most blocks after the history index's last that a running node reads for one history
/// page or one `TxHistory` (the page ends early, with its `next`, when it read this many).
pub const TX_HISTORY_BLOCKS_MAX: u64 = 10_000;

fn open_end() -> u64 {
    u64::MAX
}

/// A period's last day as JSON: `null` for an open end (`u64::MAX` in the types), so that
/// no report prints 18446744073709551615 as a day.
mod open_end_day {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(day: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        match *day {
            u64::MAX => serializer.serialize_none(),
            day => serializer.serialize_some(&day),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.unwrap_or(u64::MAX))
    }
}

/// Who answers a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answerer {
    /// The node itself, from its counters (`status`).
    Node,
    /// The ledger: the executor of a running node between blocks, or the replayed ledger of a
    /// stopped one.
    Ledger,
    /// The ledger and the log together: the executor of a running node, reading its log
    /// between blocks a bounded number of blocks at a time, or a stopped node's data
    /// directory.
    History,
}

impl Query {
    /// Who answers it.
    pub fn answerer(&self) -> Answerer {
        match self {
            Query::Status => Answerer::Node,
            Query::TxHistory { .. } | Query::AccountHistory { .. } | Query::Proof { .. } => {
                Answerer::History
            }
            _ => Answerer::Ledger,
        }
    }

    /// Whether the executor must answer it (it reads the ledger, and perhaps the log).
    pub fn needs_ledger(&self) -> bool {
        self.answerer() != Answerer::Node
    }
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

/// One queued payment (a `Queue` answer, a queued transaction's status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedInfo {
    pub id: u128,
    pub payer: u64,
    pub payee: u64,
    pub amount: u64,
    pub urgent: bool,
    pub held: bool,
    /// Arrival order in the queue.
    pub arrival: u64,
    pub queued_height: u64,
    pub expires_at_ms: u64,
}

/// An open two-phase reservation (a pending transaction's status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInfo {
    pub debit_account: u64,
    pub credit_account: u64,
    pub amount: u64,
    /// Block time it times out at; 0: never.
    pub expires_at_ms: u64,
    pub created_height: u64,
}

/// What the ledger knows of a transaction id (a `TxStatus` answer, and each accepted
/// transaction of an `AccountHistory` answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatusInfo {
    pub id: u128,
    /// `unknown`, `settled`, `settled_from_queue`, `queued`, `cancelled`, `expired`,
    /// `pending`, `posted`, `voided`, `pending_expired`, or of the business day
    /// `warehoused`, `settled_at_opening`, `rejected_at_opening` and `end_of_day_unsettled`
    /// (docs/SETTLEMENT.md, "The business day"). A rejected transaction leaves no
    /// trace in the ledger (`unknown`): its code is in the block that carried it
    /// (`TxHistory`).
    pub status: String,
    /// The block of a settled-from-queue, cancelled, expired or timed-out transaction.
    pub height: Option<u64>,
    /// Queued: its place in its payer's queue (1: next to settle).
    pub queue_position: Option<u64>,
    /// Settled from the queue: `liquidity_saving` or `queue_retry`.
    pub settled_by: Option<String>,
    /// Queued: the payment waiting.
    pub queued: Option<QueuedInfo>,
    /// Pending: the open reservation.
    pub pending: Option<PendingInfo>,
    /// Posted or voided: the transaction that closed the reservation.
    pub closed_by: Option<u128>,
    /// Posted: the amount posted.
    pub posted_amount: Option<u64>,
    /// A settled taxed payment: its tax, what the payer was debited and its refunds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxed: Option<TaxedPaymentInfo>,
    /// Warehoused: its value date (a business-day number, days since 1970-01-01 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_date: Option<u64>,
    /// Rejected at its value date's opening, or at the end of day: the result code's name
    /// (`insufficient_funds`, `end_of_day_unsettled`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_with: Option<String>,
}

/// A settled taxed payment (a `TxStatus` answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxedPaymentInfo {
    pub category: u32,
    /// The rate it settled at, in basis points.
    pub rate_bp: u32,
    /// `inclusive`, `exclusive` or `gross`.
    pub basis: String,
    /// `half_up`, `half_even` or `down`.
    pub rounding: String,
    /// What the record carried: the price (inclusive), the net (exclusive) or the gross.
    pub amount: u64,
    pub tax: u64,
    /// What the payer's account was debited: `amount + tax` on an exclusive basis, else
    /// `amount`.
    pub debited: u64,
    /// What the payee was credited: `debited - tax`.
    pub net: u64,
    /// The account the tax went to (the tax authority or the payee's tax sub-account).
    pub tax_account: u64,
    /// Of `amount`, refunded so far, and the tax reversed so far.
    pub refunded_amount: u64,
    pub refunded_tax: u64,
}

/// An account (an `Account` answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub account: u64,
    /// The role it opened with (`central_bank`, `bank`, `merchant`, ...).
    pub role: String,
    /// Its owner key now (hex): the genesis's, or the one a key rotation set.
    #[serde(default)]
    pub owner: String,
    pub balance: i64,
    /// What it may spend now: balance less reservations plus the overdraft it is granted.
    pub available: i128,
    pub debits_pending: i64,
    pub credits_pending: i64,
    pub overdraft_max: i64,
    pub balance_max: Option<i64>,
    /// Its bank, for a merchant or consumer.
    pub bank: Option<u64>,
    pub suspended: bool,
    /// Closed (docs/SETTLEMENT.md, "Participants' lifecycle"): every record naming it is
    /// refused.
    #[serde(default)]
    pub closed: bool,
    /// Payments it has waiting in the RTGS queue as payer.
    pub queued_out: u64,
}

/// One payee, category and basis of a `TaxReport` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRow {
    pub payee: u64,
    pub category: u32,
    /// The basis the payments settled on: `inclusive`, `exclusive` or `gross` (a category
    /// whose basis changed within the period has a row per basis).
    pub basis: String,
    pub payments: u64,
    /// What payers paid, tax included (net + tax, on every basis).
    pub gross: u128,
    pub tax: u128,
    pub refunds: u64,
    /// What payers got back, tax included.
    pub refunded_gross: u128,
    pub refunded_tax: u128,
    /// `tax - refunded_tax`.
    pub net_tax: i128,
}

/// One appearance of a transaction in a block of the log (`TxHistory`, `AccountHistory`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedTxInfo {
    pub height: u64,
    pub timestamp_ms: u64,
    /// Position in the block.
    pub index: u64,
    pub id: u128,
    /// The kind's name (`transfer`, `taxed_payment`, ...), `unknown` for an unknown kind.
    pub kind: String,
    pub debit_account: u64,
    pub credit_account: u64,
    pub amount: u64,
    /// The code the block recorded (`ok`, `queued`, `insufficient_funds`, ...).
    pub result: String,
    /// In an `AccountHistory`, the ledger's status of an accepted transaction.
    pub status: Option<TxStatusInfo>,
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
    Account(Box<AccountInfo>),
    Transaction {
        id: u128,
        settled: bool,
    },
    TxStatus(Box<TxStatusInfo>),
    Queue {
        /// The bank asked about; `None`: every bank.
        payer: Option<u64>,
        /// Payments waiting, of which `payments` lists the first `QUEUE_ANSWER_MAX`.
        total: u64,
        payments: Vec<QueuedInfo>,
    },
    TaxReport {
        /// The payee asked about; `None`: every payee.
        payee: Option<u64>,
        from_day: u64,
        /// `null`: open, to the last day.
        #[serde(with = "open_end_day")]
        to_day: u64,
        /// By payee, then category, then basis.
        rows: Vec<TaxRow>,
        /// The sum of the rows' `net_tax`: what the tax accounts received as tax over the
        /// period less what refunds took back.
        net_tax: i128,
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
    /// The live log holds blocks `first_height..=last_height` (`first_height` 0: none);
    /// earlier ones were archived and are not searched.
    TxHistory {
        id: u128,
        first_height: u64,
        last_height: u64,
        blocks: Vec<LoggedTxInfo>,
    },
    /// One page of an account's history: what blocks `first_height..=last_height` of the
    /// live log hold from the page's start on; `next`: where the next page starts (`None`:
    /// this page reached the end of the log).
    AccountHistory {
        account: u64,
        first_height: u64,
        last_height: u64,
        transactions: Vec<LoggedTxInfo>,
        #[serde(default)]
        next: Option<HistoryCursor>,
    },
    PendingTransfers {
        /// The account asked about; `None`: every account.
        account: Option<u64>,
        /// Open reservations of the account (or all), of which `transfers` is one page in
        /// id order.
        total: u64,
        transfers: Vec<PendingTransferInfo>,
        /// The `after` of the next page (`None`: this page reached the last one).
        #[serde(default)]
        next: Option<u128>,
    },
    Totals(Box<LedgerTotals>),
    /// A subscription taken (the answer to `Subscribe`, crate::events): its events come from
    /// `from_height` on; the node's last durable block is `height`.
    Subscribed {
        from_height: u64,
        height: u64,
    },
    Proof(Box<crate::proof::TxProof>),
    BusinessDay(Box<BusinessDayInfo>),
}

/// The business day at the ledger's time (a `BusinessDay` answer; docs/SETTLEMENT.md, "The
/// business day").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessDayInfo {
    /// The ledger's last block and its time (the schedule follows block time).
    pub height: u64,
    pub time_ms: u64,
    /// Whether the genesis has a calendar. Without one every day is open around the clock,
    /// numbered from the first `day_cutoff_ms`, and ends at that cut-off.
    pub calendar: bool,
    /// The business day the time belongs to (with a calendar: its date as days since
    /// 1970-01-01) and, with a calendar, that date (`YYYY-MM-DD`).
    pub day: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// `closed` (a closed weekday or a holiday), `before_opening`, `open`, or
    /// `after_cut_off:<classes>` (`customer`, `interbank`, `liquidity`).
    pub phase: String,
    /// The next boundary (`opening`, `customer_cut_off`, `interbank_cut_off`,
    /// `liquidity_cut_off`, `end_of_day`), its block time and the business day it belongs
    /// to: the first block at or after that time applies it.
    pub next_boundary: Option<String>,
    pub next_boundary_ms: Option<u64>,
    pub next_boundary_day: Option<u64>,
    /// Payments waiting in the RTGS queues, and in the warehouse for their value date.
    pub queued: u64,
    pub warehoused: u64,
}

/// An open two-phase reservation with its id (a `PendingTransfers` answer; the ledger's own
/// description of a reservation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTransferInfo {
    pub id: u128,
    pub debit_account: u64,
    pub credit_account: u64,
    pub amount: u64,
    /// Block time it times out at; 0: never.
    pub expires_at_ms: u64,
    pub created_height: u64,
}

/// The ledger's totals (a `Totals` answer), in minor units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTotals {
    /// The ledger's last block and its time.
    pub height: u64,
    pub time_ms: u64,
    pub accounts: u64,
    pub suspended_accounts: u64,
    /// Reserves the central bank issued, less what was redeemed.
    pub money_in_circulation: i128,
    pub queued_payments: u64,
    pub queued_value: u128,
    pub pending_transfers: u64,
    pub pending_value: u128,
    /// Tax the tax accounts received, less what refunds took back, since the genesis.
    pub net_tax: i128,
}

/// A query's outcome on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryResult {
    Ok(Answer),
    /// Why the query was not answered.
    Error(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_as_clients_send_them_and_name_who_answers() {
        let parse = |text: &str| serde_json::from_str::<Query>(text).unwrap();
        assert_eq!(parse(r#"{"queue":{}}"#), Query::Queue { payer: None });
        assert_eq!(
            parse(r#"{"queue":{"payer":5}}"#),
            Query::Queue { payer: Some(5) }
        );
        assert!(serde_json::from_str::<Query>(r#"{"queue":{"bank":5}}"#).is_err());
        let all = parse(r#"{"tax_report":{"from_day":0,"to_day":9}}"#);
        assert_eq!(all.answerer(), Answerer::Ledger);
        let one = parse(r#"{"tax_report":{"payee":7,"from_day":0,"to_day":9}}"#);
        assert_eq!(one.answerer(), Answerer::Ledger);
        assert!(one.needs_ledger());
        assert_eq!(parse(r#""status""#).answerer(), Answerer::Node);
        let history = parse(r#"{"account_history":{"account":3}}"#);
        assert_eq!(history.answerer(), Answerer::History);
        assert_eq!(
            history,
            Query::AccountHistory {
                account: 3,
                from: None,
                limit: None
            }
        );
        assert_eq!(
            parse(r#"{"account_history":{"account":3,"from":{"height":5,"index":2},"limit":10}}"#),
            Query::AccountHistory {
                account: 3,
                from: Some(HistoryCursor {
                    height: 5,
                    index: 2
                }),
                limit: Some(10)
            }
        );
        assert_eq!(parse(r#""totals""#), Query::Totals);
        assert_eq!(parse(r#""business_day""#), Query::BusinessDay);
        // an open end is null (or absent), never 18446744073709551615
        let open = Query::TaxReport {
            payee: None,
            from_day: 0,
            to_day: u64::MAX,
        };
        assert_eq!(parse(r#"{"tax_report":{"from_day":0}}"#), open);
        assert_eq!(
            parse(r#"{"tax_report":{"from_day":0,"to_day":null}}"#),
            open
        );
        let text = serde_json::to_string(&open).unwrap();
        assert!(text.contains(r#""to_day":null"#), "{text}");
        let answer = Answer::TaxReport {
            payee: None,
            from_day: 0,
            to_day: u64::MAX,
            rows: Vec::new(),
            net_tax: 0,
        };
        let text = serde_json::to_string(&answer).unwrap();
        assert!(text.contains(r#""to_day":null"#), "{text}");
        assert_eq!(serde_json::from_str::<Answer>(&text).unwrap(), answer);
        assert_eq!(
            parse(r#"{"pending_transfers":{}}"#),
            Query::PendingTransfers {
                account: None,
                after: None,
                limit: None
            }
        );
        // Ids are u128 and travel whole.
        let id = u128::MAX;
        let text = serde_json::to_string(&Query::TxHistory { id }).unwrap();
        assert_eq!(text, format!(r#"{{"tx_history":{{"id":{id}}}}}"#));
        assert_eq!(parse(&text), Query::TxHistory { id });
        let proof = parse(r#"{"proof":{"id":7}}"#);
        assert_eq!(
            proof,
            Query::Proof {
                id: 7,
                height: None
            }
        );
        assert_eq!(proof.answerer(), Answerer::History);
        assert_eq!(
            parse(r#"{"proof":{"id":7,"height":3}}"#),
            Query::Proof {
                id: 7,
                height: Some(3)
            }
        );
    }
}
