//! The engine's side of queries: answering them from the ledger and the node. The query and
//! answer types are the protocol's (`tally_protocol::query`), re-exported here.

pub use tally_protocol::query::*;

use crate::ledger::{Ledger, QueuedPayment, TaxReportRow, TxStatus};
use crate::log::tax_journal::TaxDayJournal;

/// What the ledger knows of transaction `id`, as the protocol states it.
pub fn tx_status_info(ledger: &Ledger, id: u128) -> TxStatusInfo {
    let status = ledger.status(id);
    let mut info = TxStatusInfo {
        id,
        status: status.name().to_string(),
        height: None,
        queue_position: None,
        settled_by: None,
        queued: None,
        pending: None,
        closed_by: None,
        posted_amount: None,
        value_date: None,
        rejected_with: None,
        taxed: ledger.tax_payment(id).map(|p| TaxedPaymentInfo {
            category: p.category,
            rate_bp: p.rate_bp,
            basis: p.basis.name().to_string(),
            rounding: p.rounding.name().to_string(),
            amount: p.amount,
            tax: p.tax,
            debited: p.debited(),
            net: p.net(),
            tax_account: p.tax_account,
            refunded_amount: p.refunded_amount,
            refunded_tax: p.refunded_tax,
        }),
    };
    match status {
        TxStatus::Unknown | TxStatus::Settled => {}
        TxStatus::SettledFromQueue { height, via_lsm } => {
            info.height = Some(height);
            info.settled_by = Some(
                if via_lsm {
                    "liquidity_saving"
                } else {
                    "queue_retry"
                }
                .to_string(),
            );
        }
        TxStatus::Queued { payment, position } => {
            info.queue_position = Some(position as u64);
            info.queued = Some(queued_info(&payment));
        }
        TxStatus::Cancelled { height }
        | TxStatus::Expired { height }
        | TxStatus::PendingExpired { height } => info.height = Some(height),
        TxStatus::Pending(pending) => {
            info.pending = Some(PendingInfo {
                debit_account: pending.debit_account,
                credit_account: pending.credit_account,
                amount: pending.amount,
                expires_at_ms: pending.expires_at_ms,
                created_height: pending.created_height,
            })
        }
        TxStatus::Posted { by, amount } => {
            info.closed_by = Some(by);
            info.posted_amount = Some(amount);
        }
        TxStatus::Voided { by } => info.closed_by = Some(by),
        TxStatus::Warehoused { value_date, .. } => info.value_date = Some(value_date),
        TxStatus::SettledAtOpening { height } => {
            info.height = Some(height);
            info.settled_by = Some("opening".to_string());
        }
        TxStatus::RejectedAtOpening { height, code } => {
            info.height = Some(height);
            info.rejected_with = Some(code.name().to_string());
        }
        TxStatus::EndOfDayUnsettled { height } => {
            info.height = Some(height);
            info.rejected_with = Some("end_of_day_unsettled".to_string());
        }
    }
    info
}

/// A queued payment, as the protocol states it.
pub fn queued_info(queued: &QueuedPayment) -> QueuedInfo {
    QueuedInfo {
        id: queued.id,
        payer: queued.payer,
        payee: queued.payee,
        amount: queued.amount,
        urgent: queued.urgent,
        held: queued.held,
        arrival: queued.seq,
        queued_height: queued.queued_height,
        expires_at_ms: queued.expires_at_ms,
    }
}

/// Answers a query that reads the state: the one answer function of the network server
/// (run on the executor thread between blocks) and of `tally query` over a stopped node's
/// replayed ledger ([`crate::query::answer_offline`]). Quick on a running node: it reads no
/// log (the queries that do, [`Answerer::History`], go to [`crate::query::answer_with_log`]).
pub fn answer_from_ledger(ledger: &Ledger, query: &Query) -> QueryResult {
    match query {
        Query::Balance { account } => QueryResult::Ok(Answer::Balance {
            account: *account,
            balance: ledger.balance(*account),
        }),
        Query::Account { account } => {
            let Some(found) = ledger.account(*account) else {
                return QueryResult::Error(format!("account {account} is not in this ledger"));
            };
            QueryResult::Ok(Answer::Account(Box::new(AccountInfo {
                account: found.id,
                role: found.role.name().to_string(),
                owner: hex::encode(found.owner),
                balance: found.balance,
                available: found.available(),
                debits_pending: found.debits_pending,
                credits_pending: found.credits_pending,
                overdraft_max: found.overdraft_max,
                balance_max: found.balance_max,
                bank: found.bank,
                suspended: found.suspended,
                closed: found.closed,
                queued_out: ledger.queued_payments(Some(found.id)).len() as u64,
            })))
        }
        Query::Transaction { id } => QueryResult::Ok(Answer::Transaction {
            id: *id,
            settled: ledger.is_settled(*id),
        }),
        Query::TxStatus { id } => {
            QueryResult::Ok(Answer::TxStatus(Box::new(tx_status_info(ledger, *id))))
        }
        Query::Queue { payer } => {
            let queued = ledger.queued_payments(*payer);
            QueryResult::Ok(Answer::Queue {
                payer: *payer,
                total: queued.len() as u64,
                payments: queued
                    .iter()
                    .take(QUEUE_ANSWER_MAX)
                    .map(queued_info)
                    .collect(),
            })
        }
        Query::TaxReport {
            payee,
            from_day,
            to_day,
        } => QueryResult::Ok(tax_report(ledger, *payee, *from_day, *to_day)),
        Query::PendingTransfers {
            account,
            after,
            limit,
        } => {
            let limit = limit.map_or(QUEUE_ANSWER_MAX, |l| {
                (l as usize).clamp(1, QUEUE_ANSWER_MAX)
            });
            let names = |p: &PendingTransferInfo| {
                account.is_none_or(|a| p.debit_account == a || p.credit_account == a)
            };
            let transfers = ledger.pending_transfers();
            let total = transfers.iter().filter(|p| names(p)).count() as u64;
            let mut page: Vec<PendingTransferInfo> = transfers
                .into_iter()
                .filter(|p| after.is_none_or(|after| p.id > after) && names(p))
                .take(limit + 1)
                .collect();
            let next = if page.len() > limit {
                page.truncate(limit);
                page.last().map(|p| p.id)
            } else {
                None
            };
            QueryResult::Ok(Answer::PendingTransfers {
                account: *account,
                total,
                transfers: page,
                next,
            })
        }
        Query::Totals => {
            let queued = ledger.queued_payments(None);
            let pending = ledger.pending_transfers();
            let net_tax = ledger
                .tax_report(None, 0, u64::MAX)
                .iter()
                .map(|row| row.totals.net_tax())
                .sum();
            QueryResult::Ok(Answer::Totals(Box::new(LedgerTotals {
                height: ledger.height(),
                time_ms: ledger.time_ms(),
                accounts: ledger.accounts().len() as u64,
                suspended_accounts: ledger.accounts().iter().filter(|a| a.suspended).count() as u64,
                money_in_circulation: ledger.money_in_circulation(),
                queued_payments: queued.len() as u64,
                queued_value: queued.iter().map(|q| u128::from(q.amount)).sum(),
                pending_transfers: pending.len() as u64,
                pending_value: pending.iter().map(|p| u128::from(p.amount)).sum(),
                net_tax,
            })))
        }
        Query::BusinessDay => QueryResult::Ok(Answer::BusinessDay(Box::new(business_day(ledger)))),
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
            QueryResult::Error("status is answered by a running node, not the ledger".into())
        }
        Query::TxHistory { .. } | Query::AccountHistory { .. } | Query::Proof { .. } => {
            QueryResult::Error(NEEDS_LOG.into())
        }
    }
}

/// Why the ledger alone does not answer a query that reads the log.
pub const NEEDS_LOG: &str = "this query reads the log: it is answered by a node with its log, or \
    over a stopped node's data directory (`tally query --data-dir`)";

/// A tax report of one payee or of all, from the ledger's rows (the business days that
/// ended less than one refund window ago, and today).
pub fn tax_report(ledger: &Ledger, payee: Option<u64>, from_day: u64, to_day: u64) -> Answer {
    tax_report_answer(
        payee,
        from_day,
        to_day,
        ledger.tax_report(payee, from_day, to_day),
    )
}

/// A tax report over any past business days: the days the ledger still holds from its rows,
/// the older ones from the node's tax-day journal ([`TaxDayJournal`]); an error if the
/// journal does not hold one of them.
pub fn tax_report_with_days(
    ledger: &Ledger,
    journal: &TaxDayJournal,
    payee: Option<u64>,
    from_day: u64,
    to_day: u64,
) -> QueryResult {
    let held = ledger.first_tax_day_held();
    let mut rows = if to_day >= held {
        ledger.tax_report(payee, from_day.max(held), to_day)
    } else {
        Vec::new()
    };
    if from_day < held {
        match journal.tax_report(payee, from_day, to_day.min(held - 1)) {
            Ok(older) => rows = merge_tax_rows(older, rows),
            Err(error) => return QueryResult::Error(error.to_string()),
        }
    }
    QueryResult::Ok(tax_report_answer(payee, from_day, to_day, rows))
}

/// Rows of two spans of days summed per payee, category and basis, in that order.
fn merge_tax_rows(a: Vec<TaxReportRow>, b: Vec<TaxReportRow>) -> Vec<TaxReportRow> {
    let mut sums: std::collections::BTreeMap<_, TaxReportRow> = std::collections::BTreeMap::new();
    for row in a.into_iter().chain(b) {
        sums.entry((row.payee, row.category, row.basis))
            .and_modify(|sum: &mut TaxReportRow| sum.totals.add(&row.totals))
            .or_insert(row);
    }
    sums.into_values().collect()
}

fn tax_report_answer(
    payee: Option<u64>,
    from_day: u64,
    to_day: u64,
    rows: Vec<TaxReportRow>,
) -> Answer {
    let rows: Vec<TaxRow> = rows
        .iter()
        .map(|row| TaxRow {
            payee: row.payee,
            category: row.category,
            basis: row.basis.name().to_string(),
            payments: row.totals.payments,
            gross: row.totals.gross,
            tax: row.totals.tax,
            refunds: row.totals.refunds,
            refunded_gross: row.totals.refunded_gross,
            refunded_tax: row.totals.refunded_tax,
            net_tax: row.totals.net_tax(),
        })
        .collect();
    Answer::TaxReport {
        payee,
        from_day,
        to_day,
        net_tax: rows.iter().map(|row| row.net_tax).sum(),
        rows,
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

/// The business day at the ledger's time, as the protocol states it.
pub fn business_day(ledger: &Ledger) -> BusinessDayInfo {
    let now = ledger.time_ms();
    let mut info = BusinessDayInfo {
        height: ledger.height(),
        time_ms: now,
        calendar: ledger.calendar().is_some(),
        day: ledger.business_day(now),
        date: None,
        phase: "open".to_string(),
        next_boundary: Some("end_of_day".to_string()),
        next_boundary_ms: Some(ledger.end_of_day_ms(now)),
        next_boundary_day: Some(ledger.business_day(now)),
        queued: ledger.queue_len() as u64,
        warehoused: ledger.warehouse_len() as u64,
    };
    if let Some(calendar) = ledger.calendar() {
        let (day, phase) = calendar.phase(now);
        info.day = day;
        info.date = Some(crate::calendar::format_date(day));
        info.phase = phase.name();
        let next = calendar.next_boundary(now);
        info.next_boundary = next.map(|(_, _, boundary)| boundary.name());
        info.next_boundary_ms = next.map(|(when, _, _)| when);
        info.next_boundary_day = next.map(|(_, day, _)| day);
    }
    info
}
