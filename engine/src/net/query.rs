//! The engine's side of queries: answering them from the ledger and the node. The query and
//! answer types are the protocol's (`tally_protocol::query`), re-exported here.

pub use tally_protocol::query::*;

use crate::ledger::Ledger;

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
