//! Account events (docs/PROTOCOL.md, "Subscriptions"): what each block did to each account,
//! made from the block's records, their result codes and what the ledger settled outside
//! them, kept in the node's event journal and sent to subscribed clients.
//!
//! Events are derived data: the log is the record. They are made where a block is sealed
//! (the executor, the consensus stage and recovery's replay) and appended to the journal
//! (`log::event_journal`) once the block is durable, so every event in the journal belongs
//! to a durable block.

pub use crate::log::event_journal::{Cursor, EventJournal, JournalError, EVENTS_DIR};
pub use tally_protocol::events::*;

use crate::ledger::{Ledger, SettlementEvent, TxStatus};
use crate::result::ResultCode;
use crate::tx::{TxFlags, TxKind, TxRecord};
use std::collections::HashMap;
use tally_protocol::tax::TaxBasis;

/// The stamp of the block just sealed into `ledger`: its time and the business day it ended
/// (none for the first block, which follows no day).
pub fn block_stamp(ledger: &Ledger) -> BlockStamp {
    BlockStamp {
        time_ms: ledger.time_ms(),
        day_ended: ledger
            .last_block_finished_tax_days()
            .filter(|_| ledger.height() > 1)
            .map(|days| days.first_day),
    }
}

/// The events of a block just sealed into `ledger`, in order: its records' own
/// events first, then what the ledger settled or expired at the end of the block; each
/// with the balances of the accounts it names at the end of the block.
pub fn block_events(
    ledger: &Ledger,
    records: &[TxRecord],
    results: &[ResultCode],
) -> Vec<AccountEvent> {
    let mut events = events_of_block(ledger, records, results);
    let balance = |account: u64| ledger.balance(account).unwrap_or(0);
    for event in &mut events {
        event.payer_balance = balance(event.payer);
        event.payee_balance = balance(event.payee);
        event.tax_account_balance = event.tax_account.map(balance);
    }
    events
}

fn events_of_block(
    ledger: &Ledger,
    records: &[TxRecord],
    results: &[ResultCode],
) -> Vec<AccountEvent> {
    let mut refunds = Refunds::of_block(ledger, records, results);
    let mut events = Vec::new();
    for (record, code) in records.iter().zip(results) {
        if let Some(event) = record_event(ledger, &mut refunds, record, *code) {
            events.push(event);
        }
    }
    for event in ledger.last_block_events() {
        events.push(match *event {
            SettlementEvent::SettledFromQueue {
                id,
                payer,
                payee,
                amount,
                ..
            } => with_tax(ledger, plain(EventKind::Released, id, payer, payee, amount)),
            SettlementEvent::QueueExpired {
                id,
                payer,
                payee,
                amount,
            } => plain(EventKind::Expired, id, payer, payee, amount),
            SettlementEvent::PendingExpired {
                id,
                debit,
                credit,
                amount,
            } => plain(EventKind::ReservationExpired, id, debit, credit, amount),
            SettlementEvent::EndOfDayUnsettled {
                id,
                payer,
                payee,
                amount,
            } => plain(EventKind::Expired, id, payer, payee, amount),
            SettlementEvent::SettledFromWarehouse {
                id,
                payer,
                payee,
                amount,
            } => with_tax(ledger, plain(EventKind::Settled, id, payer, payee, amount)),
            SettlementEvent::QueuedFromWarehouse {
                id,
                payer,
                payee,
                amount,
            } => plain(EventKind::Queued, id, payer, payee, amount),
            SettlementEvent::WarehouseRejected {
                id,
                payer,
                payee,
                amount,
                ..
            } => plain(EventKind::Rejected, id, payer, payee, amount),
        });
    }
    events
}

fn plain(kind: EventKind, id: u128, payer: u64, payee: u64, amount: u64) -> AccountEvent {
    AccountEvent {
        kind,
        id,
        related_id: None,
        payer,
        payee,
        amount,
        tax: None,
        tax_account: None,
        exclusive: false,
        payer_balance: 0,
        payee_balance: 0,
        tax_account_balance: None,
    }
}

/// A taxed payment's tax and where it went, when the ledger still holds the payment (it does
/// in the block that settles it).
fn with_tax(ledger: &Ledger, mut event: AccountEvent) -> AccountEvent {
    if let Some(payment) = ledger.tax_payment(event.id) {
        event.tax = Some(payment.tax);
        event.tax_account = Some(payment.tax_account);
        event.exclusive = payment.basis == TaxBasis::Exclusive;
    }
    event
}

/// Where each payment refunded in the block stood before it: what had been refunded of it,
/// so that each refund's own reversed tax follows (the ledger holds only the sums after the
/// block).
struct Refunds(HashMap<u128, u64>);

impl Refunds {
    fn of_block(ledger: &Ledger, records: &[TxRecord], results: &[ResultCode]) -> Refunds {
        let mut in_block: HashMap<u128, u64> = HashMap::new();
        for (record, code) in records.iter().zip(results) {
            if *code == ResultCode::Ok && record.kind() == Some(TxKind::Refund) {
                *in_block.entry(record.related_id()).or_default() += record.amount();
            }
        }
        for (payment, amount) in in_block.iter_mut() {
            let after = ledger
                .tax_payment(*payment)
                .map_or(*amount, |p| p.refunded_amount);
            *amount = after - *amount;
        }
        Refunds(in_block)
    }

    /// The tax a refund of `amount` of `payment` reversed, and the account it came from.
    fn reverse(&mut self, ledger: &Ledger, payment: u128, amount: u64) -> Option<(u64, u64)> {
        let taxed = ledger.tax_payment(payment)?;
        let before = self.0.get_mut(&payment)?;
        let reversed = taxed.tax_reversed_at(*before + amount) - taxed.tax_reversed_at(*before);
        *before += amount;
        Some((reversed, taxed.tax_account))
    }
}

fn record_event(
    ledger: &Ledger,
    refunds: &mut Refunds,
    record: &TxRecord,
    code: ResultCode,
) -> Option<AccountEvent> {
    let kind = record.kind()?;
    let id = record.id();
    let (payer, payee) = (record.debit_account(), record.credit_account());
    let flags = record.flags();
    let event = match (code, kind) {
        (ResultCode::Queued, _) => plain(EventKind::Queued, id, payer, payee, record.amount()),
        (ResultCode::Warehoused, _) => {
            plain(EventKind::Warehoused, id, payer, payee, record.amount())
        }
        (ResultCode::Ok, TxKind::Transfer) if flags.has(TxFlags::PENDING) => {
            plain(EventKind::Reserved, id, payer, payee, record.amount())
        }
        (ResultCode::Ok, TxKind::Transfer) if flags.has(TxFlags::VOID_PENDING) => return None,
        (ResultCode::Ok, TxKind::Transfer) if flags.has(TxFlags::POST_PENDING) => {
            // what was posted: the reservation's whole amount unless the post names less
            let amount = match ledger.status(record.related_id()) {
                TxStatus::Posted { amount, .. } => amount,
                _ => record.amount(),
            };
            plain(EventKind::Settled, id, payer, payee, amount)
        }
        (ResultCode::Ok, TxKind::Transfer | TxKind::Pledge | TxKind::Redeem) => {
            plain(EventKind::Settled, id, payer, payee, record.amount())
        }
        (ResultCode::Ok, TxKind::TaxedPayment) => with_tax(
            ledger,
            plain(EventKind::Settled, id, payer, payee, record.amount()),
        ),
        (ResultCode::Ok, TxKind::QueueCancel) => {
            let cancelled = record.related_id();
            let (payer, payee, amount) = ledger.cancelled_in_last_block(cancelled)?;
            plain(EventKind::Cancelled, cancelled, payer, payee, amount)
        }
        (ResultCode::Ok, TxKind::Refund) => {
            let reversed = refunds.reverse(ledger, record.related_id(), record.amount());
            AccountEvent {
                related_id: Some(record.related_id()),
                tax: reversed.map(|(tax, _)| tax),
                tax_account: reversed.map(|(_, account)| account),
                exclusive: ledger
                    .tax_payment(record.related_id())
                    .is_some_and(|payment| payment.basis == TaxBasis::Exclusive),
                ..plain(EventKind::Refunded, id, payer, payee, record.amount())
            }
        }
        _ => return None,
    };
    Some(event)
}
