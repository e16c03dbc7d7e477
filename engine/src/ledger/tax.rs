//! Real-time tax: the effective-dated rate table, taxed payments, refunds and tax reports.
//!
//! Rounding rule (docs/SETTLEMENT.md): `tax = floor(gross * rate_bp / 10_000)` in 128-bit
//! integers; the payee gets the rest. A refund of part of a payment reverses tax pro rata on
//! the running total: after refunds adding up to `r` of gross `g` with tax `t`, the tax
//! reversed so far is `floor(t * r / g)`, so a full refund reverses exactly `t` and no minor
//! unit is created or lost.

use super::{Ledger, Undo};
use crate::genesis::BASIS_POINTS_ONE;
use crate::result::ResultCode;
use crate::tx::{TxFlags, TxRecord};

/// Most entries in the tax-rate table (`tax_rate_table_full` beyond).
pub const TAX_RATES_MAX: usize = 65_536;

/// One rate of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaxRate {
    pub rate_bp: u32,
    /// The tax goes to the payee's restricted tax sub-account where it has one.
    pub to_sub_account: bool,
}

/// A settled taxed payment, kept for refunds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaxPayment {
    pub payer: u64,
    pub payee: u64,
    pub category: u32,
    pub gross: u64,
    pub tax: u64,
    /// The account the tax went to (the tax authority or the payee's tax sub-account).
    pub tax_account: u64,
    pub refunded_gross: u64,
    pub refunded_tax: u64,
    /// Block time it settled at.
    pub time_ms: u64,
}

/// Tax totals of one payee, business day and category.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaxTotals {
    pub payments: u64,
    pub gross: u128,
    pub tax: u128,
    pub refunds: u64,
    pub refunded_gross: u128,
    pub refunded_tax: u128,
}

impl TaxTotals {
    /// Tax collected net of refunds.
    pub fn net_tax(&self) -> i128 {
        self.tax as i128 - self.refunded_tax as i128
    }

    fn add(&mut self, other: &TaxTotals) {
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
    pub totals: TaxTotals,
}

/// Tax on a gross amount: `floor(gross * rate_bp / 10_000)`, rounding down so that the payee
/// receives the remainder (docs/SETTLEMENT.md).
pub fn tax_of(gross: u64, rate_bp: u32) -> i64 {
    let tax = u128::from(gross) * u128::from(rate_bp) / u128::from(BASIS_POINTS_ONE);
    i64::try_from(tax).expect("rate_bp <= 10_000 keeps tax <= gross")
}

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

    /// Tax per payee and category over business days `from_day..=to_day` (see
    /// [`Ledger::business_day`]), for one payee or all; sorted by payee then category.
    pub fn tax_report(&self, payee: Option<u64>, from_day: u64, to_day: u64) -> Vec<TaxReportRow> {
        let mut rows: std::collections::BTreeMap<(u64, u32), TaxTotals> = Default::default();
        let range = match payee {
            Some(payee) => (payee, 0, 0)..=(payee, u64::MAX, u32::MAX),
            None => (0, 0, 0)..=(u64::MAX, u64::MAX, u32::MAX),
        };
        for (&(row_payee, day, category), totals) in self.tax_totals.range(range) {
            if day >= from_day && day <= to_day {
                rows.entry((row_payee, category)).or_default().add(totals);
            }
        }
        rows.into_iter()
            .map(|((payee, category), totals)| TaxReportRow {
                payee,
                category,
                totals,
            })
            .collect()
    }

    fn add_tax_totals(&mut self, payee: u64, category: u32, change: TaxTotals) {
        let key = (payee, self.business_day(self.block.time_ms), category);
        let before = self.tax_totals.get(&key).copied();
        self.journal(Undo::TaxTotals(key, before));
        self.tax_totals.entry(key).or_default().add(&change);
    }

    fn note_tax_payment(&mut self, tag: u8, id: u128, payment: &TaxPayment) {
        let mut bytes = [0u8; 1 + 16 + 8 * 8 + 4];
        bytes[0] = tag;
        bytes[1..17].copy_from_slice(&id.to_le_bytes());
        let words = [
            payment.payer,
            payment.payee,
            payment.gross,
            payment.tax,
            payment.tax_account,
            payment.refunded_gross,
            payment.refunded_tax,
            payment.time_ms,
        ];
        for (i, word) in words.iter().enumerate() {
            bytes[17 + i * 8..25 + i * 8].copy_from_slice(&word.to_le_bytes());
        }
        bytes[81..85].copy_from_slice(&payment.category.to_le_bytes());
        self.note(&bytes);
    }

    pub(super) fn taxed_payment(
        &mut self,
        tx: &TxRecord,
        debit: usize,
        credit: usize,
        amount: i64,
    ) -> Result<ResultCode, ResultCode> {
        self.check_parties(tx, debit, credit, true)?;
        self.check_available(debit, amount)?;
        let category = tx.category();
        let rate = self
            .tax_rate(category, self.block.time_ms)
            .ok_or(ResultCode::UnknownTaxCategory)?;
        let tax = tax_of(tx.amount(), rate.rate_bp);
        let net = amount - tax;
        let tax_account = match (rate.to_sub_account, self.accounts[credit].tax_sub_account) {
            (true, Some(sub)) => self.index[&sub],
            _ => self.tax_authority_index,
        };
        self.check_credit_room(credit, net)?;
        // the tax authority may also be the payer or the payee: apply_movements folds them
        self.apply_movements(&[(debit, -amount), (credit, net), (tax_account, tax)])?;
        let payment = TaxPayment {
            payer: self.accounts[debit].id,
            payee: self.accounts[credit].id,
            category,
            gross: tx.amount(),
            tax: tax as u64,
            tax_account: self.accounts[tax_account].id,
            refunded_gross: 0,
            refunded_tax: 0,
            time_ms: self.block.time_ms,
        };
        let id = tx.id();
        self.tax_payments.insert(id, payment);
        self.journal(Undo::TaxPaymentInserted(id));
        self.note_tax_payment(1, id, &payment);
        self.add_tax_totals(
            payment.payee,
            category,
            TaxTotals {
                payments: 1,
                gross: u128::from(payment.gross),
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
            return Err(ResultCode::RefundOfUnknownPayment);
        };
        if self.accounts[debit].id != original.payee || self.accounts[credit].id != original.payer {
            return Err(ResultCode::RefundAccountsMismatch);
        }
        self.check_parties(tx, debit, credit, true)?;
        let refunded_gross = original.refunded_gross + amount as u64;
        if refunded_gross > original.gross {
            return Err(ResultCode::RefundExceedsPayment);
        }
        // pro rata on the running total: a full refund reverses exactly the tax
        let reversed_total = (u128::from(original.tax) * u128::from(refunded_gross)
            / u128::from(original.gross)) as u64;
        let tax_back = (reversed_total - original.refunded_tax) as i64;
        let net_back = amount - tax_back;
        let tax_account = self.index[&original.tax_account];
        self.check_available(debit, net_back)?;
        self.check_available(tax_account, tax_back)?;
        self.check_credit_room(credit, amount)?;
        self.apply_movements(&[
            (debit, -net_back),
            (tax_account, -tax_back),
            (credit, amount),
        ])?;
        let updated = TaxPayment {
            refunded_gross,
            refunded_tax: reversed_total,
            ..original
        };
        self.journal(Undo::TaxPaymentUpdated(original_id, original));
        self.tax_payments.insert(original_id, updated);
        self.note_tax_payment(2, original_id, &updated);
        self.add_tax_totals(
            original.payee,
            original.category,
            TaxTotals {
                refunds: 1,
                refunded_gross: amount as u128,
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
        let from = tx.reserved_b();
        if from < self.block.time_ms {
            return Err(ResultCode::TaxRateInThePast);
        }
        let key = (tx.category(), from);
        let before = self.tax_rates.get(&key).copied();
        if before.is_none() && self.tax_rates.len() >= TAX_RATES_MAX {
            return Err(ResultCode::TaxRateTableFull);
        }
        self.journal(Undo::TaxRate(key, before));
        self.tax_rates.insert(
            key,
            TaxRate {
                rate_bp: tx.reserved_a(),
                to_sub_account: tx.flags().has(TxFlags::TAX_TO_SUB_ACCOUNT),
            },
        );
        Ok(ResultCode::Ok)
    }
}
