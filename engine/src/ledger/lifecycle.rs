//! The participants' lifecycle (kinds 15 to 19, docs/SETTLEMENT.md, "Participants'
//! lifecycle"): accounts opened, closed, re-keyed and re-limited, banks added with their
//! customers, after the genesis. An opened account is appended to the account vector (its
//! leaf follows every earlier one in the state tree), and an account is never removed: a
//! closed one stays, marked, so that no position changes and the state tree is updated for
//! the accounts a record touched alone.
//!
//! None of these kinds takes flags, so none is ever inside an open linked chain (a record
//! without the linked flag may close a chain, but nothing of the chain is undone after its
//! closing record succeeded): their changes need no undo records.

use super::{AccessChange, Account, Ledger};
use crate::genesis::Role;
use crate::result::ResultCode;
use crate::tx::{
    TxKind, TxRecord, ROLE_CODE_BANK, ROLE_CODE_CONSUMER, ROLE_CODE_MERCHANT, ROLE_CODE_OBSERVER,
};

/// The role a lifecycle record's role code names (a validated record names one).
fn role_of_code(code: u32) -> Role {
    match code {
        ROLE_CODE_BANK => Role::Bank,
        ROLE_CODE_MERCHANT => Role::Merchant,
        ROLE_CODE_CONSUMER => Role::Consumer,
        ROLE_CODE_OBSERVER => Role::Observer,
        _ => unreachable!("validate() checks the role code"),
    }
}

impl Ledger {
    /// Executes a lifecycle record (after the checks every kind shares: format, expiry,
    /// duplicate id).
    pub(super) fn lifecycle(
        &mut self,
        tx: &TxRecord,
        kind: TxKind,
    ) -> Result<ResultCode, ResultCode> {
        let debit = self
            .index
            .get(tx.debit_account())
            .ok_or(ResultCode::UnknownDebitAccount)?;
        if tx.ledger() != self.ledger {
            return Err(ResultCode::LedgerMismatch);
        }
        if self.accounts[debit].closed {
            return Err(ResultCode::AccountClosed);
        }
        match kind {
            TxKind::OpenAccount => self.open_account(tx, debit),
            TxKind::CloseAccount => self.close_account(tx, debit),
            TxKind::RotateKey => self.rotate_key(tx, debit),
            TxKind::SetLimits => self.set_limits(tx, debit),
            TxKind::AddBank => self.add_bank(tx, debit),
            _ => unreachable!("only lifecycle kinds come here"),
        }
    }

    /// The record is the central bank's: signed with its key, on its issuance account.
    fn by_central_bank(&self, tx: &TxRecord, debit: usize) -> Result<(), ResultCode> {
        if tx.public_key != self.accounts[self.central_bank_index].owner {
            return Err(ResultCode::NotCentralBank);
        }
        if debit != self.central_bank_index {
            return Err(ResultCode::NotPermitted);
        }
        Ok(())
    }

    /// The open account a lifecycle record acts on (its credit account).
    fn lifecycle_target(&self, id: u64) -> Result<usize, ResultCode> {
        let target = self.index.get(id).ok_or(ResultCode::UnknownCreditAccount)?;
        if self.accounts[target].closed {
            return Err(ResultCode::AccountClosed);
        }
        Ok(target)
    }

    /// Appends a new account (balance zero): its leaf follows every other in the state tree.
    fn append_account(&mut self, account: Account) -> usize {
        debug_assert_eq!(account.balance, 0, "an account opens at zero");
        let position = self.accounts.len();
        self.index.insert(account.id, position);
        self.accounts.push(account);
        self.account_tree.mark(position);
        position
    }

    fn new_account(id: u64, role: Role, owner: [u8; 32], bank: Option<u64>) -> Account {
        Account {
            id,
            role,
            owner,
            balance: 0,
            bank,
            overdraft_max: 0,
            balance_max: None,
            tax_sub_account: None,
            debits_pending: 0,
            credits_pending: 0,
            suspended: false,
            closed: false,
        }
    }

    fn open_account(&mut self, tx: &TxRecord, debit: usize) -> Result<ResultCode, ResultCode> {
        self.by_central_bank(tx, debit)?;
        let id = tx.credit_account();
        if self.index.get(id).is_some() {
            return Err(ResultCode::AccountExists);
        }
        let role = role_of_code(tx.category());
        let bank = match role {
            Role::Merchant | Role::Consumer => {
                let bank = tx.amount();
                match self.index.get(bank).map(|at| &self.accounts[at]) {
                    Some(held_at) if held_at.role == Role::Bank && !held_at.closed => Some(bank),
                    _ => return Err(ResultCode::HoldingBankNotOpen),
                }
            }
            _ => None,
        };
        let owner = tx.owner_key();
        self.append_account(Ledger::new_account(id, role, owner, bank));
        self.access_changes
            .push(AccessChange::Account { id, owner, bank });
        Ok(ResultCode::Ok)
    }

    fn close_account(&mut self, tx: &TxRecord, debit: usize) -> Result<ResultCode, ResultCode> {
        let target = self.lifecycle_target(tx.credit_account())?;
        if debit == self.central_bank_index {
            if tx.public_key != self.accounts[self.central_bank_index].owner {
                return Err(ResultCode::NotCentralBank);
            }
        } else {
            // a bank closes the accounts it holds, with its own key
            let authority = &self.accounts[debit];
            if authority.role != Role::Bank || self.accounts[target].bank != Some(authority.id) {
                return Err(ResultCode::NotPermitted);
            }
            if tx.public_key != authority.owner {
                return Err(ResultCode::NotOwner);
            }
        }
        let account = &self.accounts[target];
        if matches!(
            account.role,
            Role::CentralBank | Role::TaxAuthority | Role::TaxSubAccount
        ) {
            return Err(ResultCode::NotPermitted);
        }
        if account.balance != 0 {
            return Err(ResultCode::AccountNotEmpty);
        }
        if account.debits_pending != 0 || account.credits_pending != 0 {
            return Err(ResultCode::AccountHasPending);
        }
        if self.has_queued(account.id) {
            return Err(ResultCode::AccountHasQueued);
        }
        self.touch(target);
        self.accounts[target].closed = true;
        Ok(ResultCode::Ok)
    }

    /// Whether a queued payment is from or to `account` (its payer's queue is a key range;
    /// payees are looked for among the queued payments, at most `QUEUED_PAYMENTS_MAX`).
    fn has_queued(&self, account: u64) -> bool {
        let from = super::QueueKey {
            payer: account,
            rank: 0,
            seq: 0,
        };
        let until = super::QueueKey {
            payer: account,
            rank: u8::MAX,
            seq: u64::MAX,
        };
        self.queue.range(from..=until).next().is_some()
            || self.queue.values().any(|queued| queued.payee == account)
    }

    fn rotate_key(&mut self, tx: &TxRecord, debit: usize) -> Result<ResultCode, ResultCode> {
        let target = if tx.credit_account() == 0 {
            // the owner rotates its own account's key
            if tx.public_key != self.accounts[debit].owner {
                return Err(ResultCode::NotOwner);
            }
            debit
        } else {
            // the central bank rotates a compromised key
            self.by_central_bank(tx, debit)?;
            self.lifecycle_target(tx.credit_account())?
        };
        let key = tx.owner_key();
        if self.accounts[target].owner == key {
            return Err(ResultCode::OwnerKeyUnchanged);
        }
        self.touch(target);
        self.accounts[target].owner = key;
        let account = &self.accounts[target];
        self.access_changes.push(AccessChange::Account {
            id: account.id,
            owner: key,
            bank: account.bank,
        });
        Ok(ResultCode::Ok)
    }

    fn set_limits(&mut self, tx: &TxRecord, debit: usize) -> Result<ResultCode, ResultCode> {
        self.by_central_bank(tx, debit)?;
        let target = self.lifecycle_target(tx.credit_account())?;
        // validate() bounds both: the overdraft by 2^62 - 1, the maximum by 2^63 - 1
        let overdraft = i64::try_from(tx.amount()).map_err(|_| ResultCode::Overflow)?;
        let balance_max = match tx.balance_max_limit() {
            Some(max) => Some(i64::try_from(max).map_err(|_| ResultCode::Overflow)?),
            None => None,
        };
        let account = &self.accounts[target];
        let role = account.role;
        if role == Role::CentralBank
            || (overdraft > 0 && matches!(role, Role::Observer | Role::TaxSubAccount))
            || (balance_max.is_some() && !matches!(role, Role::Merchant | Role::Consumer))
        {
            return Err(ResultCode::NotPermitted);
        }
        if balance_max.is_some_and(|max| account.balance > max) {
            return Err(ResultCode::LimitBelowUse);
        }
        let available = i128::from(account.balance) - i128::from(account.debits_pending)
            + i128::from(overdraft);
        if available < 0 {
            return Err(ResultCode::LimitBelowUse);
        }
        self.touch(target);
        let account = &mut self.accounts[target];
        account.overdraft_max = overdraft;
        account.balance_max = balance_max;
        Ok(ResultCode::Ok)
    }

    fn add_bank(&mut self, tx: &TxRecord, debit: usize) -> Result<ResultCode, ResultCode> {
        self.by_central_bank(tx, debit)?;
        let bank = tx.credit_account();
        let (first, count) = (tx.amount(), u64::from(tx.reserved_a()));
        // validate() checked that first + count does not overflow
        if self.index.get(bank).is_some()
            || (first..first + count).any(|id| self.index.get(id).is_some())
        {
            return Err(ResultCode::AccountExists);
        }
        let key = tx.owner_key();
        self.append_account(Ledger::new_account(bank, Role::Bank, key, None));
        self.access_changes.push(AccessChange::Account {
            id: bank,
            owner: key,
            bank: None,
        });
        if count > 0 {
            let role = role_of_code(tx.category());
            let position = self.accounts.len();
            self.accounts.extend(
                (first..first + count).map(|id| Ledger::new_account(id, role, key, Some(bank))),
            );
            self.index.insert_run(first, first + count, position);
            for at in position..self.accounts.len() {
                self.account_tree.mark(at);
            }
            self.access_changes.push(AccessChange::Range {
                ids: first..first + count,
                owner: key,
                bank,
            });
        }
        Ok(ResultCode::Ok)
    }
}
