//! The RTGS business day: payment windows and warehoused payments (docs/SETTLEMENT.md, "The
//! business day").
//!
//! With a calendar in the genesis, a payment settles only inside its class's window (from
//! the day's opening to its class's cut-off); a payment sent ahead of its value date
//! (`TxFlags::WAREHOUSED`) is kept whole in the warehouse, ordered by value date, priority
//! (urgent first) and acceptance, and applied at the first block at or after its value
//! date's opening as if it arrived then: it settles, waits in its payer's RTGS queue, or is
//! refused with its own code. Everything follows block time, so every validator applies it
//! at the same block.

use super::{Closed, Ledger, SettlementEvent};
use crate::calendar::{PaymentClass, WindowRefusal};
use crate::genesis::Role;
use crate::result::ResultCode;
use crate::tx::{TxFlags, TxKind, TxRecord, TX_BYTES};

/// Most payments the warehouse may hold (a calendar's `warehouse_capacity` may say fewer;
/// `warehouse_full` beyond).
pub const WAREHOUSED_PAYMENTS_MAX: usize = crate::calendar::WAREHOUSE_CAPACITY_MAX as usize;

/// Where a warehoused payment stands: its value date, its priority rank (0 urgent, 1
/// normal) and its acceptance number (the ledger-wide arrival counter). The order in which
/// a day's opening applies them is this key's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WarehouseKey {
    pub value_date: u64,
    pub rank: u8,
    pub seq: u64,
}

/// A payment accepted ahead of its value date: its whole signed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarehousedPayment {
    pub record: TxRecord,
    pub value_date: u64,
    pub urgent: bool,
    /// Acceptance number (ledger-wide, increasing).
    pub seq: u64,
    pub accepted_height: u64,
}

/// Bytes of a warehoused payment's encoding (state root and snapshots): value date,
/// urgent, acceptance number, height, the record.
pub(super) const WAREHOUSED_BYTES: usize = 8 + 1 + 8 + 8 + TX_BYTES;

impl WarehousedPayment {
    pub fn key(&self) -> WarehouseKey {
        WarehouseKey {
            value_date: self.value_date,
            rank: u8::from(!self.urgent),
            seq: self.seq,
        }
    }

    pub(super) fn encode(&self) -> [u8; WAREHOUSED_BYTES] {
        let mut out = [0u8; WAREHOUSED_BYTES];
        out[0..8].copy_from_slice(&self.value_date.to_le_bytes());
        out[8] = u8::from(self.urgent);
        out[9..17].copy_from_slice(&self.seq.to_le_bytes());
        out[17..25].copy_from_slice(&self.accepted_height.to_le_bytes());
        out[25..].copy_from_slice(self.record.as_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8; WAREHOUSED_BYTES]) -> Option<WarehousedPayment> {
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        let urgent = match bytes[8] {
            0 => false,
            1 => true,
            _ => return None,
        };
        let record = TxRecord::decode(&bytes[25..]).ok()?;
        let payment = WarehousedPayment {
            record,
            value_date: u64_at(0),
            urgent,
            seq: u64_at(9),
            accepted_height: u64_at(17),
        };
        let consistent = record.flags().has(TxFlags::WAREHOUSED)
            && u64::from(record.reserved_a()) == payment.value_date
            && record.flags().has(TxFlags::URGENT) == urgent;
        consistent.then_some(payment)
    }
}

/// What a warehoused record's value date asks of it when it arrives.
pub(super) enum Arrival {
    /// Keep it until its value date opens.
    Warehouse,
    /// Its value date is open now: it is applied as any payment.
    SettleNow,
}

impl Ledger {
    /// The cut-off class of a payment, if its kind answers to one: customer (taxed
    /// payments, refunds, transfers not between two banks), interbank (transfers between two
    /// banks), liquidity (pledge, redeem). Voids, queue management, suspensions, tax rates
    /// and the administrative kinds answer to none.
    pub(super) fn payment_class(
        &self,
        tx: &TxRecord,
        kind: TxKind,
        debit: usize,
        credit: Option<usize>,
    ) -> Option<PaymentClass> {
        match kind {
            TxKind::Transfer if tx.flags().has(TxFlags::VOID_PENDING) => None,
            TxKind::Transfer => {
                let bank = |index: usize| self.accounts[index].role == Role::Bank;
                if bank(debit) && credit.is_some_and(bank) {
                    Some(PaymentClass::Interbank)
                } else {
                    Some(PaymentClass::Customer)
                }
            }
            TxKind::TaxedPayment | TxKind::Refund => Some(PaymentClass::Customer),
            TxKind::Pledge | TxKind::Redeem => Some(PaymentClass::Liquidity),
            _ => None,
        }
    }

    /// Refuses a payment of `class` outside its window of the business day.
    pub(super) fn check_window(&self, class: PaymentClass) -> Result<(), ResultCode> {
        let Some(calendar) = &self.calendar else {
            return Ok(());
        };
        calendar
            .window(self.block.time_ms, class)
            .map_err(|refusal| match refusal {
                WindowRefusal::Closed => ResultCode::BusinessDayClosed,
                WindowRefusal::AfterCutOff => ResultCode::AfterCutOff,
            })
    }

    /// The checks of a warehoused record on arrival: the parties (as for any payment), its
    /// value date against the calendar, the warehouse's room.
    pub(super) fn warehouse_arrival(
        &self,
        tx: &TxRecord,
        kind: TxKind,
        debit: usize,
        credit: usize,
    ) -> Result<Arrival, ResultCode> {
        let Some(calendar) = &self.calendar else {
            return Err(ResultCode::NoBusinessCalendar);
        };
        if self.chain.is_some() {
            // a linked chain settles in its block: it cannot wait for a value date
            return Err(ResultCode::NotPermitted);
        }
        self.check_parties(tx, debit, credit, true)?;
        let now = self.block.time_ms;
        if kind == TxKind::TaxedPayment && self.tax_rate(tx.category(), now).is_none() {
            return Err(ResultCode::UnknownTaxCategory);
        }
        let value_date = u64::from(tx.reserved_a());
        if now >= calendar.end_of_day_at(value_date) {
            return Err(ResultCode::ValueDatePassed);
        }
        if now >= calendar.opening_at(value_date) {
            return Ok(Arrival::SettleNow);
        }
        if calendar.is_closed(value_date) {
            return Err(ResultCode::ValueDateClosed);
        }
        if value_date - calendar.day_of(now) > u64::from(calendar.warehouse_days) {
            return Err(ResultCode::ValueDateTooFar);
        }
        if self.warehouse.len() >= calendar.warehouse_capacity as usize {
            return Err(ResultCode::WarehouseFull);
        }
        Ok(Arrival::Warehouse)
    }

    /// Keeps an accepted warehoused record until its value date opens.
    pub(super) fn warehouse_keep(&mut self, tx: &TxRecord) -> ResultCode {
        let payment = WarehousedPayment {
            record: *tx,
            value_date: u64::from(tx.reserved_a()),
            urgent: tx.flags().has(TxFlags::URGENT),
            seq: self.next_seq,
            accepted_height: self.block.height,
        };
        self.next_seq += 1;
        let key = payment.key();
        self.warehouse_put(key, payment);
        self.warehouse_index.insert(tx.id(), key);
        ResultCode::Warehoused
    }

    /// Cancels warehoused payment `id` for its payer (a queue-cancel record from `payer`).
    /// `None`: no warehoused payment has this id.
    pub(super) fn warehouse_cancel(
        &mut self,
        id: u128,
        payer: u64,
    ) -> Option<Result<ResultCode, ResultCode>> {
        let key = *self.warehouse_index.get(&id)?;
        let payment = self.warehouse[&key];
        if payment.record.debit_account() != payer {
            return Some(Err(ResultCode::NotOwner));
        }
        self.journal(super::Undo::Warehouse(key, Some(payment)));
        self.warehouse_take(key);
        self.warehouse_index.remove(&id);
        self.cancelled_in_block.insert(
            id,
            (
                payment.record.debit_account(),
                payment.record.credit_account(),
                payment.record.amount(),
            ),
        );
        self.close(
            id,
            Closed::Cancelled {
                height: self.block.height,
            },
        );
        Some(Ok(ResultCode::Ok))
    }

    /// At the start of a block: applies, in key order, every warehoused payment whose value
    /// date has opened (one whose value date also ended before this block is refused
    /// `value_date_passed`).
    pub(super) fn open_warehouse(&mut self) {
        let now = self.block.time_ms;
        while let Some((&key, _)) = self.warehouse.first_key_value() {
            let calendar = self.calendar.as_ref().expect("only a calendar warehouses");
            if now < calendar.opening_at(key.value_date) {
                break;
            }
            let ended = now >= calendar.end_of_day_at(key.value_date);
            let payment = self.warehouse_take(key).expect("listed above");
            let record = payment.record;
            let id = record.id();
            self.warehouse_index.remove(&id);
            let code = if ended {
                ResultCode::ValueDatePassed
            } else {
                self.apply(&record, true)
            };
            let (payer, payee, amount) = (
                record.debit_account(),
                record.credit_account(),
                record.amount(),
            );
            let height = self.block.height;
            match code {
                ResultCode::Ok => {
                    self.close(id, Closed::SettledAtOpening { height });
                    self.events.push(SettlementEvent::SettledFromWarehouse {
                        id,
                        payer,
                        payee,
                        amount,
                    });
                }
                ResultCode::Queued => {
                    self.events.push(SettlementEvent::QueuedFromWarehouse {
                        id,
                        payer,
                        payee,
                        amount,
                    });
                }
                code => {
                    self.close(id, Closed::RejectedAtOpening { height, code });
                    self.events.push(SettlementEvent::WarehouseRejected {
                        id,
                        payer,
                        payee,
                        amount,
                        code,
                    });
                }
            }
        }
    }

    /// Warehoused payments in the order their openings apply them (value date, urgent
    /// first, acceptance), of one payer or of all.
    pub fn warehoused_payments(&self, payer: Option<u64>) -> Vec<WarehousedPayment> {
        self.warehouse
            .values()
            .filter(|p| payer.is_none_or(|payer| p.record.debit_account() == payer))
            .copied()
            .collect()
    }

    /// Count of warehoused payments.
    pub fn warehouse_len(&self) -> usize {
        self.warehouse.len()
    }

    /// The business-day calendar of the genesis, if any.
    pub fn calendar(&self) -> Option<&crate::calendar::Calendar> {
        self.calendar.as_ref()
    }
}
