//! Snapshots of the whole ledger state, for checkpoints (docs/STORAGE.md): deterministic bytes
//! (everything in id or key order), bound to the genesis by its hash.

use super::id_map::IdMap;
use super::rtgs::QUEUED_BYTES;
use super::warehouse::{WarehousedPayment, WAREHOUSED_BYTES};
use super::{Account, Closed, Ledger, Pending, QueuedPayment, TaxPayment, TaxRate, TaxTotals};
use crate::consensus::{ScheduleDecodeError, ValidatorSchedule};
use crate::genesis::Role;
use crate::tax::{Rounding, TaxBasis};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tally_kernels::merkle::Hash;

/// Magic at the start of a ledger snapshot (version 11: the calendar with its warehouse
/// capacity; version 10: the business-day calendar and the
/// warehoused payments at the end, and the closed outcomes of the business day
/// (`end_of_day_unsettled`, settled or rejected at opening); version 9: the refund window, and the ids of
/// taxed payments whose refund window closed, each with the block time after which it is
/// forgotten; version 8: accounts in the ledger's order, the genesis's sorted by id then those
/// opened since in the order they were opened, each with a flags word, bit 0 suspended and
/// bit 1 closed; version 7: the validator schedule's leader
/// reputation; version 6: the certificate revocation list at the end, after the validator
/// schedule, and each held id with its debit and credit account; version 5: the validity
/// window, each held id with
/// its `valid_until`, each closed outcome with the block time after which it is forgotten;
/// version 4 gave the tax-rate table, taxed payments and tax totals their basis and rounding;
/// snapshots of an older version are not read, the node replays its log instead).
const SNAPSHOT_MAGIC: [u8; 8] = *b"TLYSNP11";
/// An account's flags word in a snapshot: suspended.
const ACCOUNT_SUSPENDED: u64 = 1;
/// An account's flags word in a snapshot: closed.
const ACCOUNT_CLOSED: u64 = 2;
/// Bytes of one account in a snapshot.
const SNAPSHOT_ACCOUNT_BYTES: usize = 8 * 2 + 32 + 8 * 8;

/// Why a snapshot cannot be restored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot is cut short at byte {0}")]
    Truncated(usize),
    #[error("snapshot magic is wrong: not a ledger snapshot of this format")]
    BadMagic,
    #[error("snapshot belongs to another genesis")]
    OtherGenesis,
    #[error("snapshot field {0} is invalid")]
    Invalid(&'static str),
    #[error("snapshot has {0} bytes after its end")]
    TrailingBytes(usize),
}

/// A position in the chain a snapshot was taken at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPoint {
    pub height: u64,
    pub last_block_hash: Hash,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .at
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(SnapshotError::Truncated(self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn u128(&mut self) -> Result<u128, SnapshotError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    fn bool(&mut self, field: &'static str) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(SnapshotError::Invalid(field)),
        }
    }
    /// A count of items of `item_bytes` each: more than the whole snapshot could hold is
    /// invalid (never allocated); fewer bytes left than the items need reads as truncated.
    fn count(&mut self, item_bytes: usize, field: &'static str) -> Result<usize, SnapshotError> {
        let count = self.u64()?;
        if count > (self.bytes.len() / item_bytes) as u64 {
            return Err(SnapshotError::Invalid(field));
        }
        Ok(count as usize)
    }
}

fn role_of(value: u64) -> Result<Role, SnapshotError> {
    use Role::*;
    Ok(match value {
        0 => CentralBank,
        1 => Bank,
        2 => TaxAuthority,
        3 => Merchant,
        4 => Consumer,
        5 => Observer,
        6 => TaxSubAccount,
        _ => return Err(SnapshotError::Invalid("account role")),
    })
}

fn basis_of(code: u8) -> Result<TaxBasis, SnapshotError> {
    TaxBasis::from_code(code).ok_or(SnapshotError::Invalid("tax basis"))
}

fn rounding_of(code: u8) -> Result<Rounding, SnapshotError> {
    Rounding::from_code(code).ok_or(SnapshotError::Invalid("tax rounding"))
}

/// Bytes of one taxed payment in a snapshot: id, eight u64 words, category, rate, basis,
/// rounding.
const SNAPSHOT_TAX_PAYMENT_BYTES: usize = 16 + 8 * 8 + 4 + 4 + 1 + 1;

fn put_totals(out: &mut Vec<u8>, totals: &TaxTotals) {
    out.extend_from_slice(&totals.payments.to_le_bytes());
    out.extend_from_slice(&totals.gross.to_le_bytes());
    out.extend_from_slice(&totals.tax.to_le_bytes());
    out.extend_from_slice(&totals.refunds.to_le_bytes());
    out.extend_from_slice(&totals.refunded_gross.to_le_bytes());
    out.extend_from_slice(&totals.refunded_tax.to_le_bytes());
}

impl Ledger {
    /// A copy of everything [`Ledger::snapshot`] encodes, taken between blocks, for a
    /// checkpoint written on another thread (no encoding, no hashing; the look-up indices and
    /// the accounts' Merkle tree are left out). The accounts are shared copy-on-write
    /// ([`super::cow_vec::CowVec`]): the copy clones one pointer per chunk of accounts, and
    /// the blocks executed while the copy lives copy the chunks they change, once each. The
    /// other tables hold at most one window of transactions and are copied plainly. Only
    /// [`Ledger::snapshot`] may be asked of the copy.
    pub fn copy_for_snapshot(&self) -> Ledger {
        Ledger {
            ledger: self.ledger,
            central_bank: self.central_bank,
            tax_authority: self.tax_authority,
            central_bank_index: self.central_bank_index,
            tax_authority_index: self.tax_authority_index,
            day_cutoff_ms: self.day_cutoff_ms,
            validity_window_ms: self.validity_window_ms,
            accounts: self.accounts.clone(),
            account_tree: Default::default(),
            index: Default::default(),
            tax_rates: self.tax_rates.clone(),
            used_ids: self.used_ids.clone(),
            used_ids_by_expiry: self.used_ids_by_expiry.clone(),
            used_ids_digest: self.used_ids_digest,
            history_digest: self.history_digest,
            queue: self.queue.clone(),
            digests: self.digests.clone(),
            queue_index: HashMap::new(),
            next_seq: self.next_seq,
            queue_earliest_expiry_ms: self.queue_earliest_expiry_ms,
            pending: self.pending.clone(),
            pending_earliest_expiry_ms: self.pending_earliest_expiry_ms,
            closed: self.closed.clone(),
            closed_by_expiry: self.closed_by_expiry.clone(),
            refund_window_ms: self.refund_window_ms,
            tax_payments: self.tax_payments.clone(),
            tax_payments_by_expiry: BTreeSet::new(),
            refunds_closed: self.refunds_closed.clone(),
            refunds_closed_by_expiry: BTreeSet::new(),
            tax_totals: self.tax_totals.clone(),
            tax_totals_by_day: BTreeSet::new(),
            total_balance: self.total_balance,
            balance_sum: self.balance_sum,
            block: self.block,
            chain: None,
            corrections: Vec::new(),
            events: Vec::new(),
            cancelled_in_block: std::collections::HashMap::new(),
            finished_tax_days: None,
            schedule: self.schedule.clone(),
            revoked: self.revoked.clone(),
            revoked_in_block: Vec::new(),
            access_changes: Vec::new(),
            calendar: self.calendar.clone(),
            warehouse: self.warehouse.clone(),
            warehouse_index: HashMap::new(),
        }
    }

    /// Encodes the whole state after block `point.height`.
    pub fn snapshot(&self, genesis_hash: &Hash, point: SnapshotPoint) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            300 + self.accounts.len() * SNAPSHOT_ACCOUNT_BYTES
                + self.used_ids.len() * 40
                + self.queue.len() * QUEUED_BYTES
                + self.tax_payments.len() * SNAPSHOT_TAX_PAYMENT_BYTES,
        );
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(genesis_hash);
        out.extend_from_slice(&point.height.to_le_bytes());
        out.extend_from_slice(&point.last_block_hash);
        out.extend_from_slice(&u64::from(self.ledger).to_le_bytes());
        out.extend_from_slice(&self.central_bank.to_le_bytes());
        out.extend_from_slice(&self.tax_authority.to_le_bytes());
        out.extend_from_slice(&self.day_cutoff_ms.to_le_bytes());
        out.extend_from_slice(&self.validity_window_ms.to_le_bytes());
        out.extend_from_slice(&self.refund_window_ms.to_le_bytes());
        out.extend_from_slice(&self.total_balance.to_le_bytes());
        out.extend_from_slice(&self.used_ids_digest);
        out.extend_from_slice(&self.history_digest);
        out.extend_from_slice(&self.next_seq.to_le_bytes());
        out.extend_from_slice(&self.block.height.to_le_bytes());
        out.extend_from_slice(&self.block.time_ms.to_le_bytes());
        out.extend_from_slice(&(self.accounts.len() as u64).to_le_bytes());
        for account in &self.accounts {
            out.extend_from_slice(&account.id.to_le_bytes());
            out.extend_from_slice(&(account.role as u64).to_le_bytes());
            out.extend_from_slice(&account.owner);
            out.extend_from_slice(&account.balance.to_le_bytes());
            out.extend_from_slice(&account.bank.unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&account.overdraft_max.to_le_bytes());
            let max = account.balance_max.map_or(u64::MAX, |max| max as u64);
            out.extend_from_slice(&max.to_le_bytes());
            out.extend_from_slice(&account.tax_sub_account.unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&account.debits_pending.to_le_bytes());
            out.extend_from_slice(&account.credits_pending.to_le_bytes());
            let flags = if account.suspended {
                ACCOUNT_SUSPENDED
            } else {
                0
            } | if account.closed { ACCOUNT_CLOSED } else { 0 };
            out.extend_from_slice(&flags.to_le_bytes());
        }
        out.extend_from_slice(&(self.tax_rates.len() as u64).to_le_bytes());
        for (&(category, from), rate) in &self.tax_rates {
            out.extend_from_slice(&category.to_le_bytes());
            out.extend_from_slice(&from.to_le_bytes());
            out.extend_from_slice(&rate.rate_bp.to_le_bytes());
            out.push(rate.basis.code());
            out.push(rate.rounding.code());
            out.push(u8::from(rate.to_sub_account));
        }
        out.extend_from_slice(&(self.used_ids_by_expiry.len() as u64).to_le_bytes());
        for (valid_until, id) in &self.used_ids_by_expiry {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&valid_until.to_le_bytes());
            let used = &self.used_ids[id];
            out.extend_from_slice(&used.debit.to_le_bytes());
            out.extend_from_slice(&used.credit.to_le_bytes());
        }
        out.extend_from_slice(&(self.queue.len() as u64).to_le_bytes());
        for queued in self.queue.values() {
            out.extend_from_slice(&queued.encode());
        }
        out.extend_from_slice(&(self.pending.len() as u64).to_le_bytes());
        for (id, pending) in &self.pending {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&self.accounts[pending.debit].id.to_le_bytes());
            out.extend_from_slice(&self.accounts[pending.credit].id.to_le_bytes());
            out.extend_from_slice(&pending.amount.to_le_bytes());
            out.extend_from_slice(&pending.expires_at_ms.to_le_bytes());
            out.extend_from_slice(&pending.created_height.to_le_bytes());
        }
        out.extend_from_slice(&(self.closed_by_expiry.len() as u64).to_le_bytes());
        for (forget_at, id) in &self.closed_by_expiry {
            let (tag, a, b) = self.closed[id].words();
            out.extend_from_slice(&id.to_le_bytes());
            out.push(tag);
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&forget_at.to_le_bytes());
        }
        let mut payments: Vec<(&u128, &TaxPayment)> = self.tax_payments.iter().collect();
        payments.sort_unstable_by_key(|(id, _)| **id);
        out.extend_from_slice(&(payments.len() as u64).to_le_bytes());
        for (id, p) in payments {
            out.extend_from_slice(&id.to_le_bytes());
            for word in [
                p.payer,
                p.payee,
                p.amount,
                p.tax,
                p.tax_account,
                p.refunded_amount,
                p.refunded_tax,
                p.time_ms,
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&p.category.to_le_bytes());
            out.extend_from_slice(&p.rate_bp.to_le_bytes());
            out.push(p.basis.code());
            out.push(p.rounding.code());
        }
        let mut refunds_closed: Vec<(&u128, &u64)> = self.refunds_closed.iter().collect();
        refunds_closed.sort_unstable_by_key(|(id, _)| **id);
        out.extend_from_slice(&(refunds_closed.len() as u64).to_le_bytes());
        for (id, forget_at) in refunds_closed {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&forget_at.to_le_bytes());
        }
        out.extend_from_slice(&(self.tax_totals.len() as u64).to_le_bytes());
        for (&(payee, day, category, basis), totals) in &self.tax_totals {
            out.extend_from_slice(&payee.to_le_bytes());
            out.extend_from_slice(&day.to_le_bytes());
            out.extend_from_slice(&category.to_le_bytes());
            out.push(basis.code());
            put_totals(&mut out, totals);
        }
        self.schedule.encode(&mut out);
        out.extend_from_slice(&(self.revoked.len() as u64).to_le_bytes());
        for serial in &self.revoked {
            out.push(serial.len() as u8);
            out.extend_from_slice(serial);
        }
        match &self.calendar {
            Some(calendar) => {
                out.push(1);
                calendar.encode(&mut out);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(self.warehouse.len() as u64).to_le_bytes());
        for payment in self.warehouse.values() {
            out.extend_from_slice(&payment.encode());
        }
        out
    }

    /// Restores a state from [`Ledger::snapshot`] bytes, checking that it belongs to the
    /// genesis with `genesis_hash`.
    pub fn restore(
        bytes: &[u8],
        genesis_hash: &Hash,
    ) -> Result<(Ledger, SnapshotPoint), SnapshotError> {
        let mut r = Reader { bytes, at: 0 };
        if r.array::<8>()? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        if &r.array::<32>()? != genesis_hash {
            return Err(SnapshotError::OtherGenesis);
        }
        let point = SnapshotPoint {
            height: r.u64()?,
            last_block_hash: r.array()?,
        };
        let ledger = u32::try_from(r.u64()?).map_err(|_| SnapshotError::Invalid("ledger"))?;
        let central_bank = r.u64()?;
        let tax_authority = r.u64()?;
        let day_cutoff_ms = r.u64()?;
        let validity_window_ms = r.u64()?;
        let refund_window_ms = r.u64()?;
        let total_balance = i128::from_le_bytes(r.array()?);
        let used_ids_digest = r.array()?;
        let history_digest = r.array()?;
        let next_seq = r.u64()?;
        let block_height = r.u64()?;
        let block_time_ms = r.u64()?;
        let account_count = r.count(SNAPSHOT_ACCOUNT_BYTES, "account count")?;
        let mut accounts = Vec::with_capacity(account_count);
        for _ in 0..account_count {
            let id = r.u64()?;
            let role = role_of(r.u64()?)?;
            let owner = r.array()?;
            let balance = r.i64()?;
            let bank = Some(r.u64()?).filter(|bank| *bank != 0);
            let overdraft_max = r.i64()?;
            let balance_max = Some(r.u64()?)
                .filter(|max| *max != u64::MAX)
                .map(|max| max as i64);
            let tax_sub_account = Some(r.u64()?).filter(|sub| *sub != 0);
            let debits_pending = r.i64()?;
            let credits_pending = r.i64()?;
            let flags = r.u64()?;
            if flags & !(ACCOUNT_SUSPENDED | ACCOUNT_CLOSED) != 0 {
                return Err(SnapshotError::Invalid("account flags"));
            }
            accounts.push(Account {
                id,
                role,
                owner,
                balance,
                bank,
                overdraft_max,
                balance_max,
                tax_sub_account,
                debits_pending,
                credits_pending,
                suspended: flags & ACCOUNT_SUSPENDED != 0,
                closed: flags & ACCOUNT_CLOSED != 0,
            });
        }
        // every id once: the index of a repeated id answers one position for both
        let index = super::account_index::AccountIndex::new(accounts.iter().map(|a| a.id));
        if accounts
            .iter()
            .enumerate()
            .any(|(at, account)| index.get(account.id) != Some(at))
        {
            return Err(SnapshotError::Invalid("account repeated"));
        }
        let position = |id: u64| index.get(id);
        if position(central_bank).is_none() || position(tax_authority).is_none() {
            return Err(SnapshotError::Invalid("central bank or tax authority"));
        }
        let rate_count = r.count(19, "tax rate count")?;
        let mut tax_rates = BTreeMap::new();
        for _ in 0..rate_count {
            let category = r.u32()?;
            let from = r.u64()?;
            let rate_bp = r.u32()?;
            if rate_bp > crate::genesis::BASIS_POINTS_ONE {
                return Err(SnapshotError::Invalid("tax rate over 100%"));
            }
            let basis = basis_of(r.u8()?)?;
            let rounding = rounding_of(r.u8()?)?;
            let to_sub_account = r.bool("tax rate regime")?;
            tax_rates.insert(
                (category, from),
                TaxRate {
                    rate_bp,
                    basis,
                    rounding,
                    to_sub_account,
                },
            );
        }
        let id_count = r.count(40, "settled id count")?;
        let mut used_ids = IdMap::with_capacity(id_count);
        let mut used_ids_by_expiry = BTreeSet::new();
        for _ in 0..id_count {
            let id = r.u128()?;
            let valid_until = r.u64()?;
            let used = super::UsedId {
                valid_until,
                debit: r.u64()?,
                credit: r.u64()?,
            };
            if used_ids.insert(id, used).is_some() {
                return Err(SnapshotError::Invalid("settled id repeated"));
            }
            used_ids_by_expiry.insert((valid_until, id));
        }
        let queue_count = r.count(QUEUED_BYTES, "queue length")?;
        let mut queue = BTreeMap::new();
        for _ in 0..queue_count {
            let queued = QueuedPayment::decode(&r.array()?)
                .ok_or(SnapshotError::Invalid("queued payment"))?;
            if position(queued.payer).is_none() || position(queued.payee).is_none() {
                return Err(SnapshotError::Invalid("queued payment account"));
            }
            queue.insert(queued.key(), queued);
        }
        let pending_count = r.count(56, "pending count")?;
        let mut pending = BTreeMap::new();
        for _ in 0..pending_count {
            let id = r.u128()?;
            let debit = position(r.u64()?).ok_or(SnapshotError::Invalid("pending debit"))?;
            let credit = position(r.u64()?).ok_or(SnapshotError::Invalid("pending credit"))?;
            pending.insert(
                id,
                Pending {
                    debit,
                    credit,
                    amount: r.i64()?,
                    expires_at_ms: r.u64()?,
                    created_height: r.u64()?,
                },
            );
        }
        let closed_count = r.count(49, "closed count")?;
        let mut closed = IdMap::with_capacity(closed_count);
        let mut closed_by_expiry = BTreeSet::new();
        for _ in 0..closed_count {
            let id = r.u128()?;
            let tag = r.u8()?;
            let a = r.u128()?;
            let b = r.u64()?;
            let outcome =
                Closed::from_words(tag, a, b).ok_or(SnapshotError::Invalid("closed outcome"))?;
            let forget_at = r.u64()?;
            if closed.insert(id, outcome).is_some() {
                return Err(SnapshotError::Invalid("closed outcome repeated"));
            }
            closed_by_expiry.insert((forget_at, id));
        }
        let payment_count = r.count(SNAPSHOT_TAX_PAYMENT_BYTES, "tax payment count")?;
        let mut tax_payments = IdMap::with_capacity(payment_count);
        for _ in 0..payment_count {
            let id = r.u128()?;
            let mut words = [0u64; 8];
            for word in &mut words {
                *word = r.u64()?;
            }
            let [payer, payee, amount, tax, tax_account, refunded_amount, refunded_tax, time_ms] =
                words;
            if position(tax_account).is_none() {
                return Err(SnapshotError::Invalid("tax payment account"));
            }
            let payment = TaxPayment {
                payer,
                payee,
                category: r.u32()?,
                rate_bp: r.u32()?,
                basis: basis_of(r.u8()?)?,
                rounding: rounding_of(r.u8()?)?,
                amount,
                tax,
                tax_account,
                refunded_amount,
                refunded_tax,
                time_ms,
            };
            if payment.rate_bp > crate::genesis::BASIS_POINTS_ONE
                || payment.tax > payment.amount
                || refunded_amount > amount
                || refunded_tax > tax
            {
                return Err(SnapshotError::Invalid("tax payment amounts"));
            }
            tax_payments.insert(id, payment);
        }
        let closed_count = r.count(24, "closed refund count")?;
        let mut refunds_closed = IdMap::with_capacity(closed_count);
        for _ in 0..closed_count {
            let id = r.u128()?;
            let forget_at = r.u64()?;
            if tax_payments.contains_key(&id) || refunds_closed.insert(id, forget_at).is_some() {
                return Err(SnapshotError::Invalid("closed refund repeated"));
            }
        }
        let totals_count = r.count(21 + 8 * 2 + 16 * 4, "tax totals count")?;
        let mut tax_totals = BTreeMap::new();
        for _ in 0..totals_count {
            let key = (r.u64()?, r.u64()?, r.u32()?, basis_of(r.u8()?)?);
            let totals = TaxTotals {
                payments: r.u64()?,
                gross: r.u128()?,
                tax: r.u128()?,
                refunds: r.u64()?,
                refunded_gross: r.u128()?,
                refunded_tax: r.u128()?,
            };
            tax_totals.insert(key, totals);
        }
        let (schedule, read) =
            ValidatorSchedule::decode(&bytes[r.at..]).map_err(|error| match error {
                ScheduleDecodeError::Truncated(_) => SnapshotError::Truncated(bytes.len()),
                ScheduleDecodeError::Invalid(_) => SnapshotError::Invalid("validator schedule"),
            })?;
        r.at += read;
        let revoked_count = r.count(2, "revoked serial count")?;
        let mut revoked = BTreeSet::new();
        for _ in 0..revoked_count {
            let length = usize::from(r.u8()?);
            if length == 0 || length > crate::tx::CERTIFICATE_SERIAL_BYTES_MAX {
                return Err(SnapshotError::Invalid("revoked serial length"));
            }
            let serial = r.take(length)?.to_vec();
            if serial[0] == 0 || !revoked.insert(serial) {
                return Err(SnapshotError::Invalid("revoked serial"));
            }
        }
        let calendar = if r.bool("calendar flag")? {
            let (calendar, read) = crate::calendar::Calendar::decode(&bytes[r.at..])
                .ok_or(SnapshotError::Invalid("calendar"))?;
            r.at += read;
            Some(calendar)
        } else {
            None
        };
        let warehouse_count = r.count(WAREHOUSED_BYTES, "warehouse count")?;
        let mut warehouse = BTreeMap::new();
        let mut warehouse_index = HashMap::with_capacity(warehouse_count);
        for _ in 0..warehouse_count {
            let payment = WarehousedPayment::decode(&r.array()?)
                .ok_or(SnapshotError::Invalid("warehoused payment"))?;
            let record = &payment.record;
            if position(record.debit_account()).is_none()
                || position(record.credit_account()).is_none()
            {
                return Err(SnapshotError::Invalid("warehoused payment account"));
            }
            if warehouse_index.insert(record.id(), payment.key()).is_some() {
                return Err(SnapshotError::Invalid("warehoused payment repeated"));
            }
            warehouse.insert(payment.key(), payment);
        }
        if !warehouse.is_empty() && calendar.is_none() {
            return Err(SnapshotError::Invalid(
                "warehoused payments without a calendar",
            ));
        }
        if r.at != bytes.len() {
            return Err(SnapshotError::TrailingBytes(bytes.len() - r.at));
        }
        let mut restored = Ledger::assemble(
            ledger,
            central_bank,
            tax_authority,
            day_cutoff_ms,
            validity_window_ms,
            refund_window_ms,
            accounts,
            index,
            tax_rates,
            schedule,
        );
        restored.revoked = revoked;
        restored.calendar = calendar;
        restored.warehouse = warehouse;
        restored.warehouse_index = warehouse_index;
        restored.used_ids = used_ids;
        restored.used_ids_by_expiry = used_ids_by_expiry;
        restored.closed_by_expiry = closed_by_expiry;
        restored.used_ids_digest = used_ids_digest;
        restored.history_digest = history_digest;
        restored.next_seq = next_seq;
        restored.queue_index = queue.iter().map(|(key, q)| (q.id, *key)).collect();
        restored.queue_earliest_expiry_ms = queue
            .values()
            .map(|q| q.expires_at_ms)
            .min()
            .unwrap_or(u64::MAX);
        restored.queue = queue;
        restored.pending_earliest_expiry_ms = pending
            .values()
            .filter(|p| p.expires_at_ms != 0)
            .map(|p| p.expires_at_ms)
            .min()
            .unwrap_or(u64::MAX);
        restored.pending = pending;
        restored.closed = closed;
        restored.tax_payments_by_expiry = tax_payments
            .iter()
            .map(|(id, p)| (p.time_ms.saturating_add(refund_window_ms), *id))
            .collect();
        restored.tax_payments = tax_payments;
        restored.refunds_closed_by_expiry = refunds_closed
            .iter()
            .map(|(id, forget_at)| (*forget_at, *id))
            .collect();
        restored.refunds_closed = refunds_closed;
        restored.tax_totals_by_day = tax_totals.keys().map(|key| (key.1, *key)).collect();
        restored.tax_totals = tax_totals;
        restored.block.height = block_height;
        restored
            .schedule
            .set_next_height(block_height.saturating_add(1));
        restored.block.time_ms = block_time_ms;
        if restored.recount_balances() != total_balance {
            return Err(SnapshotError::Invalid(
                "balances do not add up to the total",
            ));
        }
        restored.digests = restored.table_digests_from_scratch();
        Ok((restored, point))
    }
}
