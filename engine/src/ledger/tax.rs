//! Real-time tax: the effective-dated rate table, taxed payments, refunds and tax reports.
//!
//! Each rate of the table names its basis and rounding rule (docs/SETTLEMENT.md, "Tax"); the
//! arithmetic is `tally_protocol::tax::tax_on`, exact in 128-bit integers:
//!
//! - tax-inclusive VAT/GST: the payment's amount is the price; `tax = amount * rate /
//!   (1 + rate)`; payer `-amount`, payee `+(amount - tax)`, tax account `+tax`;
//! - tax-exclusive VAT/GST: the amount is the net; `tax = amount * rate`; payer `-(amount +
//!   tax)` (the funds check is on that sum), payee `+amount`, tax account `+tax`;
//! - levy on the gross: `tax = amount * rate`; payer `-amount`, payee `+(amount - tax)`.
//!
//! A refund names an amount of what the payment's record carried (the price, the net or the
//! gross) and reverses, over all refunds of the payment so far, the tax the payment's own
//! rate, basis and rounding give on the amount refunded so far, less what earlier refunds
//! reversed. The tax of a larger amount is never smaller, so no refund reverses a negative
//! amount, and refunds adding up to the whole amount reverse exactly the tax collected.

use super::{Ledger, Undo};
use crate::result::ResultCode;
use crate::tax::{tax_on, Rounding, TaxBasis};
use crate::tx::{TxFlags, TxRecord};

/// Most entries in the tax-rate table (`tax_rate_table_full` beyond).
pub const TAX_RATES_MAX: usize = 65_536;

/// One rate of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaxRate {
    pub rate_bp: u32,
    /// What the rate applies to.
    pub basis: TaxBasis,
    /// How the tax is taken to the minor unit.
    pub rounding: Rounding,
    /// The tax goes to the payee's restricted tax sub-account where it has one.
    pub to_sub_account: bool,
}

impl TaxRate {
    /// The tax this rate takes on `amount` (what a taxed payment's record carries).
    pub fn tax_on(&self, amount: u64) -> u64 {
        tax_on(amount, self.rate_bp, self.basis, self.rounding)
    }
}

/// A settled taxed payment, kept for refunds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaxPayment {
    pub payer: u64,
    pub payee: u64,
    pub category: u32,
    /// The rate it settled at, kept so that refunds reverse its tax by the same rule.
    pub rate_bp: u32,
    pub basis: TaxBasis,
    pub rounding: Rounding,
    /// What the record carried: the price (inclusive), the net (exclusive) or the gross
    /// (levy on the gross).
    pub amount: u64,
    pub tax: u64,
    /// The account the tax went to (the tax authority or the payee's tax sub-account).
    pub tax_account: u64,
    /// Of `amount`, refunded so far.
    pub refunded_amount: u64,
    /// Tax reversed so far.
    pub refunded_tax: u64,
    /// Block time it settled at.
    pub time_ms: u64,
}

impl TaxPayment {
    /// What the payer paid: `amount + tax` on a tax-exclusive basis, else `amount`.
    pub fn debited(&self) -> u64 {
        match self.basis {
            TaxBasis::Exclusive => self.amount + self.tax,
            TaxBasis::Inclusive | TaxBasis::Gross => self.amount,
        }
    }

    /// What the payee received: `amount` on a tax-exclusive basis, else `amount - tax`.
    pub fn net(&self) -> u64 {
        self.debited() - self.tax
    }

    /// The tax that refunds of `refunded` of its `amount` in all reverse: the payment's own
    /// rule on that amount, and all of the tax for all of the amount.
    pub fn tax_reversed_at(&self, refunded: u64) -> u64 {
        if refunded == self.amount {
            self.tax
        } else {
            self.rate().tax_on(refunded)
        }
    }

    /// The rate it settled at.
    pub fn rate(&self) -> TaxRate {
        TaxRate {
            rate_bp: self.rate_bp,
            basis: self.basis,
            rounding: self.rounding,
            to_sub_account: false,
        }
    }
}

/// Tax totals of one payee, business day, category and basis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaxTotals {
    pub payments: u64,
    /// What payers paid, tax included, on every basis (net + tax).
    pub gross: u128,
    pub tax: u128,
    pub refunds: u64,
    /// What payers got back, tax included.
    pub refunded_gross: u128,
    pub refunded_tax: u128,
}

impl TaxTotals {
    /// Tax collected net of refunds.
    pub fn net_tax(&self) -> i128 {
        self.tax as i128 - self.refunded_tax as i128
    }

    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &TaxTotals) {
        self.payments += other.payments;
        self.gross += other.gross;
        self.tax += other.tax;
        self.refunds += other.refunds;
        self.refunded_gross += other.refunded_gross;
        self.refunded_tax += other.refunded_tax;
    }
}

/// One line of a tax report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaxReportRow {
    pub payee: u64,
    pub category: u32,
    /// The basis its payments settled on (a category whose basis changed within the period
    /// has a row per basis).
    pub basis: TaxBasis,
    pub totals: TaxTotals,
}

/// Business days that ended, with their tax-total rows: what the tax-day journal keeps of
/// them (docs/STORAGE.md, "Tax-day journal").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedTaxDays {
    /// The first business day ended (that of the block before).
    pub first_day: u64,
    /// One past the last day ended (the current block's business day): the days between
    /// held no block, so no row.
    pub end_day: u64,
    /// (business day, row), by day, then payee, category and basis.
    pub rows: Vec<(u64, TaxReportRow)>,
}

/// Key of the tax totals: (payee, business day, category, basis).
pub(super) type TaxTotalsKey = (u64, u64, u32, TaxBasis);

impl Ledger {
    /// The rate of `category` in force at block time `time_ms`.
    pub fn tax_rate(&self, category: u32, time_ms: u64) -> Option<TaxRate> {
        self.tax_rates
            .range((category, 0)..=(category, time_ms))
            .next_back()
            .map(|(_, rate)| *rate)
    }

    /// The whole rate table: (category, effective-from ms, rate), in that order.
    pub fn tax_rates(&self) -> Vec<(u32, u64, TaxRate)> {
        self.tax_rates
            .iter()
            .map(|(&(category, from), rate)| (category, from, *rate))
            .collect()
    }

    /// A settled taxed payment.
    pub fn tax_payment(&self, id: u128) -> Option<&TaxPayment> {
        self.tax_payments.get(&id)
    }

    /// Tax per payee, category and basis over business days `from_day..=to_day` (see
    /// [`Ledger::business_day`]), for one payee or all; sorted by payee, category, basis.
    /// For any period, the sum of the rows' `net_tax` is what the tax accounts (the tax
    /// authority's and the tax sub-accounts) received as tax less what refunds took back.
    pub fn tax_report(&self, payee: Option<u64>, from_day: u64, to_day: u64) -> Vec<TaxReportRow> {
        let mut rows: std::collections::BTreeMap<(u64, u32, TaxBasis), TaxTotals> =
            Default::default();
        // `TaxBasis::ALL` is in the order the keys sort in
        let (first, last) = (TaxBasis::ALL[0], TaxBasis::ALL[TaxBasis::ALL.len() - 1]);
        let range = match payee {
            Some(payee) => (payee, 0, 0, first)..=(payee, u64::MAX, u32::MAX, last),
            None => (0, 0, 0, first)..=(u64::MAX, u64::MAX, u32::MAX, last),
        };
        for (&(row_payee, day, category, basis), totals) in self.tax_totals.range(range) {
            if day >= from_day && day <= to_day {
                rows.entry((row_payee, category, basis))
                    .or_default()
                    .add(totals);
            }
        }
        rows.into_iter()
            .map(|((payee, category, basis), totals)| TaxReportRow {
                payee,
                category,
                basis,
                totals,
            })
            .collect()
    }

    /// The first business day whose tax-total rows the ledger still holds (it forgets those
    /// of days that ended more than one refund window ago); every later day's rows are whole.
    pub fn first_tax_day_held(&self) -> u64 {
        self.business_day(self.block.time_ms.saturating_sub(self.refund_window_ms))
    }

    /// The days from `previous_day` to the current block's business day (excluded) and
    /// their rows, if the current block's day is later: taken before the block forgets any.
    pub(super) fn take_finished_tax_days(&self, previous_day: u64) -> Option<FinishedTaxDays> {
        let end_day = self.business_day(self.block.time_ms);
        if end_day <= previous_day {
            return None;
        }
        let rows = self
            .tax_totals_by_day
            .range((previous_day, (0, 0, 0, TaxBasis::ALL[0]))..)
            .take_while(|(day, _)| *day < end_day)
            .map(|&(day, key)| {
                let (payee, _, category, basis) = key;
                let row = TaxReportRow {
                    payee,
                    category,
                    basis,
                    totals: self.tax_totals[&key],
                };
                (day, row)
            })
            .collect();
        Some(FinishedTaxDays {
            first_day: previous_day,
            end_day,
            rows,
        })
    }

    fn add_tax_totals(&mut self, payee: u64, category: u32, basis: TaxBasis, change: TaxTotals) {
        let key = (
            payee,
            self.business_day(self.block.time_ms),
            category,
            basis,
        );
        let before = self.tax_totals.get(&key).copied();
        self.journal(Undo::TaxTotals(key, before));
        if before.is_none() {
            self.tax_totals_by_day.insert((key.1, key));
        }
        self.tax_totals.entry(key).or_default().add(&change);
    }

    fn note_tax_payment(&mut self, tag: u8, id: u128, payment: &TaxPayment) {
        self.note(&tax_payment_bytes(tag, id, payment));
    }

    pub(super) fn taxed_payment(
        &mut self,
        tx: &TxRecord,
        debit: usize,
        credit: usize,
        amount: i64,
    ) -> Result<ResultCode, ResultCode> {
        self.check_parties(tx, debit, credit, true)?;
        let category = tx.category();
        let rate = self
            .tax_rate(category, self.block.time_ms)
            .ok_or(ResultCode::UnknownTaxCategory)?;
        let tax = rate.tax_on(tx.amount());
        let tax = i64::try_from(tax).expect("the tax is at most the amount, an i64");
        // what the payer is debited and the payee credited
        let (debited, net) = match rate.basis {
            TaxBasis::Exclusive => (amount.checked_add(tax).ok_or(ResultCode::Overflow)?, amount),
            TaxBasis::Inclusive | TaxBasis::Gross => (amount, amount - tax),
        };
        self.check_available(debit, debited)?;
        let tax_account = match (rate.to_sub_account, self.accounts[credit].tax_sub_account) {
            (true, Some(sub)) => self.index.at(sub),
            _ => self.tax_authority_index,
        };
        self.check_credit_room(credit, net)?;
        // the tax authority may also be the payer or the payee: apply_movements folds them
        self.apply_movements(&[(debit, -debited), (credit, net), (tax_account, tax)])?;
        let payment = TaxPayment {
            payer: self.accounts[debit].id,
            payee: self.accounts[credit].id,
            category,
            rate_bp: rate.rate_bp,
            basis: rate.basis,
            rounding: rate.rounding,
            amount: tx.amount(),
            tax: tax as u64,
            tax_account: self.accounts[tax_account].id,
            refunded_amount: 0,
            refunded_tax: 0,
            time_ms: self.block.time_ms,
        };
        let id = tx.id();
        self.tax_payments.insert(id, payment);
        self.tax_payments_by_expiry
            .insert((payment.time_ms.saturating_add(self.refund_window_ms), id));
        self.journal(Undo::TaxPaymentInserted(id));
        self.note_tax_payment(1, id, &payment);
        self.add_tax_totals(
            payment.payee,
            category,
            payment.basis,
            TaxTotals {
                payments: 1,
                gross: u128::from(payment.debited()),
                tax: u128::from(payment.tax),
                ..TaxTotals::default()
            },
        );
        Ok(ResultCode::Ok)
    }

    pub(super) fn refund(
        &mut self,
        tx: &TxRecord,
        debit: usize,
        credit: usize,
        amount: i64,
    ) -> Result<ResultCode, ResultCode> {
        let original_id = tx.related_id();
        let Some(original) = self.tax_payments.get(&original_id).copied() else {
            return Err(if self.refunds_closed.contains_key(&original_id) {
                ResultCode::RefundWindowClosed
            } else {
                ResultCode::RefundOfUnknownPayment
            });
        };
        if self.accounts[debit].id != original.payee || self.accounts[credit].id != original.payer {
            return Err(ResultCode::RefundAccountsMismatch);
        }
        self.check_parties(tx, debit, credit, true)?;
        let refunded_amount = original
            .refunded_amount
            .checked_add(tx.amount())
            .filter(|total| *total <= original.amount)
            .ok_or(ResultCode::RefundExceedsPayment)?;
        // the payment's own rule on the amount refunded so far: all of it reverses all the tax
        let reversed_total = original.tax_reversed_at(refunded_amount);
        let tax_back = reversed_total
            .checked_sub(original.refunded_tax)
            .expect("the tax of a larger refunded amount is never smaller");
        let tax_back = i64::try_from(tax_back).expect("at most the tax, an i64");
        // the payee pays back its share, the tax account the tax; the payer gets both
        let (payee_pays, payer_gets) = match original.basis {
            TaxBasis::Exclusive => (
                amount,
                amount.checked_add(tax_back).ok_or(ResultCode::Overflow)?,
            ),
            TaxBasis::Inclusive | TaxBasis::Gross => (amount - tax_back, amount),
        };
        let tax_account = self.index.at(original.tax_account);
        self.check_available(debit, payee_pays)?;
        self.check_available(tax_account, tax_back)?;
        self.check_credit_room(credit, payer_gets)?;
        self.apply_movements(&[
            (debit, -payee_pays),
            (tax_account, -tax_back),
            (credit, payer_gets),
        ])?;
        let updated = TaxPayment {
            refunded_amount,
            refunded_tax: reversed_total,
            ..original
        };
        self.journal(Undo::TaxPaymentUpdated(original_id, original));
        self.tax_payments.insert(original_id, updated);
        self.note_tax_payment(2, original_id, &updated);
        self.add_tax_totals(
            original.payee,
            original.category,
            original.basis,
            TaxTotals {
                refunds: 1,
                refunded_gross: payer_gets as u128,
                refunded_tax: tax_back as u128,
                ..TaxTotals::default()
            },
        );
        Ok(ResultCode::Ok)
    }

    pub(super) fn set_tax_rate(
        &mut self,
        tx: &TxRecord,
        debit: usize,
    ) -> Result<ResultCode, ResultCode> {
        let authority = &self.accounts[self.tax_authority_index];
        if tx.public_key != authority.owner || debit != self.tax_authority_index {
            return Err(ResultCode::NotTaxAuthority);
        }
        let from = tx.effective_from_ms();
        if from < self.block.time_ms {
            return Err(ResultCode::TaxRateInThePast);
        }
        let category = tx.category();
        // what the record does not name, it keeps from the rate in force at its time
        let in_force = self.tax_rate(category, from);
        let flags = tx.flags();
        let basis = flags
            .tax_basis()
            .or(in_force.map(|rate| rate.basis))
            .ok_or(ResultCode::TaxBasisNotNamed)?;
        let rounding = flags
            .tax_rounding()
            .or(in_force.map(|rate| rate.rounding))
            .ok_or(ResultCode::TaxRoundingNotNamed)?;
        let key = (category, from);
        let before = self.tax_rates.get(&key).copied();
        if before.is_none() && self.tax_rates.len() >= TAX_RATES_MAX {
            return Err(ResultCode::TaxRateTableFull);
        }
        self.journal(Undo::TaxRate(key, before));
        self.tax_rate_put(
            key,
            TaxRate {
                rate_bp: tx.reserved_a(),
                basis,
                rounding,
                to_sub_account: flags.has(TxFlags::TAX_TO_SUB_ACCOUNT),
            },
        );
        Ok(ResultCode::Ok)
    }
}

/// The bytes of a tax record folded into the history digest (tag 1: a payment settled, 2:
/// refunded): tag, id, payer, payee, amount, tax, tax account, refunded amount, refunded tax,
/// time (u64 each), category, rate (u32 each), basis, rounding (their codes).
fn tax_payment_bytes(tag: u8, id: u128, payment: &TaxPayment) -> [u8; TAX_RECORD_BYTES] {
    let mut bytes = [0u8; TAX_RECORD_BYTES];
    bytes[0] = tag;
    bytes[1..17].copy_from_slice(&id.to_le_bytes());
    let words = [
        payment.payer,
        payment.payee,
        payment.amount,
        payment.tax,
        payment.tax_account,
        payment.refunded_amount,
        payment.refunded_tax,
        payment.time_ms,
    ];
    for (i, word) in words.iter().enumerate() {
        bytes[17 + i * 8..25 + i * 8].copy_from_slice(&word.to_le_bytes());
    }
    bytes[81..85].copy_from_slice(&payment.category.to_le_bytes());
    bytes[85..89].copy_from_slice(&payment.rate_bp.to_le_bytes());
    bytes[89] = payment.basis.code();
    bytes[90] = payment.rounding.code();
    bytes
}

/// Bytes of one tax record in the history digest.
const TAX_RECORD_BYTES: usize = 1 + 16 + 8 * 8 + 4 + 4 + 1 + 1;
