//! Read-side views of the ledger: transaction status, queues, reservations.

use super::{Closed, Ledger, QueueKey, QueuedPayment};

/// What the ledger knows of a transaction id. A rejected transaction leaves no trace in the
/// state: its code is in the block that carried it (`tally query status` reads both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Never accepted on this ledger.
    Unknown,
    /// Settled in the block that carried it.
    Settled,
    /// Queued, then settled at the end of block `height`.
    SettledFromQueue { height: u64, via_lsm: bool },
    /// Waiting in its payer's queue, at `position` (1: next to settle).
    Queued {
        payment: QueuedPayment,
        position: usize,
    },
    /// Cancelled by its payer while queued.
    Cancelled { height: u64 },
    /// Still queued at the end of its business day.
    Expired { height: u64 },
    /// A two-phase reservation, open.
    Pending(PendingTransfer),
    /// A reservation posted by `by` for `amount`.
    Posted { by: u128, amount: u64 },
    /// A reservation voided by `by`.
    Voided { by: u128 },
    /// A reservation that timed out.
    PendingExpired { height: u64 },
    /// Waiting in the warehouse for the opening of its value date (a business-day number).
    Warehoused { value_date: u64, urgent: bool },
    /// Warehoused, then settled at its value date's opening, at the start of block `height`.
    SettledAtOpening { height: u64 },
    /// Warehoused, then refused with `code` at its value date's opening.
    RejectedAtOpening {
        height: u64,
        code: crate::result::ResultCode,
    },
    /// Still queued at the end of its business day (with a calendar): rejected, final.
    EndOfDayUnsettled { height: u64 },
}

impl TxStatus {
    /// snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            TxStatus::Unknown => "unknown",
            TxStatus::Settled => "settled",
            TxStatus::SettledFromQueue { .. } => "settled_from_queue",
            TxStatus::Queued { .. } => "queued",
            TxStatus::Cancelled { .. } => "cancelled",
            TxStatus::Expired { .. } => "expired",
            TxStatus::Pending(_) => "pending",
            TxStatus::Posted { .. } => "posted",
            TxStatus::Voided { .. } => "voided",
            TxStatus::PendingExpired { .. } => "pending_expired",
            TxStatus::Warehoused { .. } => "warehoused",
            TxStatus::SettledAtOpening { .. } => "settled_at_opening",
            TxStatus::RejectedAtOpening { .. } => "rejected_at_opening",
            TxStatus::EndOfDayUnsettled { .. } => "end_of_day_unsettled",
        }
    }
}

/// An open two-phase reservation, as the client protocol answers it.
pub use tally_protocol::query::PendingTransferInfo as PendingTransfer;

impl Ledger {
    /// The status of transaction `id`.
    pub fn status(&self, id: u128) -> TxStatus {
        if let Some(key) = self.queue_index.get(&id) {
            let payment = self.queue[key];
            let position = self
                .queue
                .range(
                    QueueKey {
                        payer: key.payer,
                        rank: 0,
                        seq: 0,
                    }..=*key,
                )
                .count();
            return TxStatus::Queued { payment, position };
        }
        if let Some(pending) = self.pending_transfer(id) {
            return TxStatus::Pending(pending);
        }
        if let Some(key) = self.warehouse_index.get(&id) {
            return TxStatus::Warehoused {
                value_date: key.value_date,
                urgent: key.rank == 0,
            };
        }
        match self.closed.get(&id) {
            Some(Closed::SettledFromQueue { height, via_lsm }) => TxStatus::SettledFromQueue {
                height: *height,
                via_lsm: *via_lsm,
            },
            Some(Closed::Cancelled { height }) => TxStatus::Cancelled { height: *height },
            Some(Closed::Expired { height }) => TxStatus::Expired { height: *height },
            Some(Closed::Posted { by, amount }) => TxStatus::Posted {
                by: *by,
                amount: *amount,
            },
            Some(Closed::Voided { by }) => TxStatus::Voided { by: *by },
            Some(Closed::PendingExpired { height }) => TxStatus::PendingExpired { height: *height },
            Some(Closed::EndOfDayUnsettled { height }) => {
                TxStatus::EndOfDayUnsettled { height: *height }
            }
            Some(Closed::SettledAtOpening { height }) => {
                TxStatus::SettledAtOpening { height: *height }
            }
            Some(Closed::RejectedAtOpening { height, code }) => TxStatus::RejectedAtOpening {
                height: *height,
                code: *code,
            },
            None if self.used_ids.contains_key(&id) => TxStatus::Settled,
            None => TxStatus::Unknown,
        }
    }

    /// The debit and credit account of transaction `id` (0 where its kind has none), while
    /// the ledger holds them: its id is held (its record is still valid), it is queued or
    /// reserved, or it is a taxed payment still refundable. `None` otherwise, and for an id
    /// never accepted: a caller that answers participants refuses both alike.
    pub fn parties(&self, id: u128) -> Option<(u64, u64)> {
        if let Some(used) = self.used_ids.get(&id) {
            return Some((used.debit, used.credit));
        }
        if let Some(key) = self.queue_index.get(&id) {
            let payment = &self.queue[key];
            return Some((payment.payer, payment.payee));
        }
        if let Some(pending) = self.pending_transfer(id) {
            return Some((pending.debit_account, pending.credit_account));
        }
        if let Some(key) = self.warehouse_index.get(&id) {
            let record = &self.warehouse[key].record;
            return Some((record.debit_account(), record.credit_account()));
        }
        self.tax_payments
            .get(&id)
            .map(|payment| (payment.payer, payment.payee))
    }

    /// Whether `id` is a taxed payment the ledger still holds (refundable).
    pub fn is_taxed_payment(&self, id: u128) -> bool {
        self.tax_payments.contains_key(&id)
    }

    /// Queued payments in settlement order (by payer, then priority, then arrival), of one
    /// payer or of all.
    pub fn queued_payments(&self, payer: Option<u64>) -> Vec<QueuedPayment> {
        match payer {
            Some(payer) => self
                .queue
                .range(
                    QueueKey {
                        payer,
                        rank: 0,
                        seq: 0,
                    }..=QueueKey {
                        payer,
                        rank: u8::MAX,
                        seq: u64::MAX,
                    },
                )
                .map(|(_, queued)| *queued)
                .collect(),
            None => self.queue.values().copied().collect(),
        }
    }

    /// Count of queued payments.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// An open reservation.
    pub fn pending_transfer(&self, id: u128) -> Option<PendingTransfer> {
        self.pending.get(&id).map(|pending| PendingTransfer {
            id,
            debit_account: self.accounts[pending.debit].id,
            credit_account: self.accounts[pending.credit].id,
            amount: pending.amount as u64,
            expires_at_ms: pending.expires_at_ms,
            created_height: pending.created_height,
        })
    }

    /// Every open reservation, by id.
    pub fn pending_transfers(&self) -> Vec<PendingTransfer> {
        self.pending
            .keys()
            .filter_map(|id| self.pending_transfer(*id))
            .collect()
    }
}
