//! Roles and read privacy on the client port (docs/SECURITY.md, "Roles"): what the holder of
//! a certificate may submit and read, from its role and the signing keys it binds.
//!
//! An account is *covered* by a certificate when the certificate binds the account's owner
//! key, or binds the key of the bank that holds the account (a bank's gateway serves its
//! customers), or, for the tax authority, when the account is a tax sub-account (which only
//! the tax authority's key may debit). Accounts are those of the genesis, and those opened or
//! re-keyed since by the participants' lifecycle (kinds 15 to 19): the node applies each
//! durable block's changes ([`Directory::apply`]) before it acknowledges the block, and seeds
//! them from its recovered ledger at start ([`Directory::seed`]), so a rotated key's old
//! holder covers the account no more and the new one does.
//!
//! | role | submits | reads |
//! | --- | --- | --- |
//! | `bank` | records debiting covered accounts | covered accounts, their queues and pending transfers, their transactions' statuses, histories and proofs (their own records); status |
//! | `central_bank` | records debiting covered accounts (its issuance account) | everything, totals included |
//! | `tax_authority` | records that move no money (tax rates), debiting covered accounts | covered accounts and their transactions; taxed payments; tax reports; status |
//! | `auditor` | nothing | everything |
//! | `monitoring` | nothing | nothing here: `/metrics` only |
//! | `validator` | records it signs with no debit account (validator votes) | status, validators |
//!
//! A record with no debit account (a validator vote) is covered when the certificate binds
//! its signer.
//!
//! A transaction's status, history and proof (`transaction`, `tx_status`, `tx_history`,
//! `proof`) are read by the central bank and auditors for every transaction, and by any
//! other role for a transaction whose debit or credit account its certificate covers (the
//! tax authority also for every taxed payment). The transaction is looked up first, on the executor thread
//! ([`Scope::may_read_transaction`]); an id the ledger does not hold and another
//! participant's id are refused with the same `forbidden` text, so a bank cannot learn
//! whether another bank's transaction ids exist.

use crate::genesis::{Genesis, Role};
use crate::ledger::{AccessChange, Ledger};
use crate::net::query::Query;
use crate::tx::TxRecord;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use tally_pki::{Access, Holder};

/// Who holds each account (from the genesis): the accounts named one by one, and the
/// genesis's ranges of bank customers as ranges (a range of ten million accounts costs one
/// entry here and in every scope).
#[derive(Debug, Default)]
pub struct Directory {
    owner: HashMap<u64, [u8; 32]>,
    bank: HashMap<u64, u64>,
    tax_sub_accounts: Vec<u64>,
    /// (ids, owner key, bank) of each account range.
    ranges: Vec<(std::ops::Range<u64>, [u8; 32], u64)>,
    /// Accounts opened or re-keyed since the genesis, as the durable blocks left them: they
    /// take precedence over the genesis's entries.
    later: RwLock<Later>,
}

/// The accounts of the lifecycle kinds: one by one, and an added bank's customers as ranges.
#[derive(Debug, Default)]
struct Later {
    /// id -> (owner key, bank that holds it).
    accounts: HashMap<u64, ([u8; 32], Option<u64>)>,
    /// (ids, owner key, bank) of each added bank's customers.
    ranges: Vec<(std::ops::Range<u64>, [u8; 32], u64)>,
}

impl Later {
    fn of(&self, id: u64) -> Option<([u8; 32], Option<u64>)> {
        self.accounts.get(&id).copied().or_else(|| {
            self.ranges
                .iter()
                .find(|(ids, _, _)| ids.contains(&id))
                .map(|(_, owner, bank)| (*owner, Some(*bank)))
        })
    }
}

impl Directory {
    pub fn from_genesis(genesis: &Genesis) -> Directory {
        let mut directory = Directory::default();
        for account in &genesis.accounts {
            if let Ok(key) = crate::keys::decode_hex32(&account.owner) {
                directory.owner.insert(account.id, key);
            }
            if let Some(bank) = account.bank {
                directory.bank.insert(account.id, bank);
            }
            if account.role == Role::TaxSubAccount {
                directory.tax_sub_accounts.push(account.id);
            }
        }
        for range in &genesis.account_ranges {
            if let Ok(key) = crate::keys::decode_hex32(&range.owner) {
                directory.ranges.push((range.ids(), key, range.bank));
            }
        }
        directory
            .ranges
            .sort_unstable_by_key(|(ids, _, _)| ids.start);
        directory
    }

    /// The owner key the genesis gives account `id`.
    fn genesis_owner(&self, id: u64) -> Option<[u8; 32]> {
        let after = self.ranges.partition_point(|(ids, _, _)| ids.start <= id);
        if after > 0 {
            let (ids, owner, _) = &self.ranges[after - 1];
            if ids.contains(&id) {
                return Some(*owner);
            }
        }
        self.owner.get(&id).copied()
    }

    fn later(&self) -> std::sync::RwLockReadGuard<'_, Later> {
        self.later
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Applies what a durable block's lifecycle records changed (`Ledger::block_access_changes`).
    pub fn apply(&self, changes: &[AccessChange]) {
        if changes.is_empty() {
            return;
        }
        let mut later = self
            .later
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        for change in changes {
            match change {
                AccessChange::Account { id, owner, bank } => {
                    later.accounts.insert(*id, (*owner, *bank));
                }
                AccessChange::Range { ids, owner, bank } => {
                    later.ranges.push((ids.clone(), *owner, *bank));
                }
            }
        }
    }

    /// Takes in what the lifecycle changed before `ledger`'s height (at start, from the
    /// recovered ledger): every account the genesis does not name, or whose owner key is no
    /// longer the genesis's. Linear in the accounts, once; the genesis's accounts come
    /// sorted by id, so a range's accounts are compared with its key without a look-up.
    pub fn seed(&self, ledger: &Ledger) {
        let mut later = self
            .later
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut range = 0;
        for account in ledger.accounts() {
            while range < self.ranges.len() && self.ranges[range].0.end <= account.id {
                range += 1;
            }
            let genesis_owner = match self.ranges.get(range) {
                Some((ids, owner, _)) if ids.contains(&account.id) => Some(*owner),
                _ => self.genesis_owner(account.id),
            };
            if genesis_owner != Some(account.owner) {
                later
                    .accounts
                    .insert(account.id, (account.owner, account.bank));
            }
        }
    }
}

/// What one authenticated connection may do.
#[derive(Debug)]
pub struct Scope {
    pub access: Access,
    pub name: String,
    /// The certificate's serial number (hex).
    pub serial: String,
    signers: HashSet<[u8; 32]>,
    covered: HashSet<u64>,
    /// Account ranges covered as a whole (by their owner key or their bank).
    covered_ranges: Vec<std::ops::Range<u64>>,
    /// The directory, for the accounts the lifecycle opened or re-keyed since.
    directory: Arc<Directory>,
}

impl Scope {
    /// The scope of `holder`'s certificate over `directory`'s accounts.
    pub fn new(holder: &Holder, directory: &Arc<Directory>) -> Scope {
        let signers: HashSet<[u8; 32]> = holder.signers.iter().copied().collect();
        let mut covered: HashSet<u64> = directory
            .owner
            .iter()
            .filter(|(_, owner)| signers.contains(*owner))
            .map(|(id, _)| *id)
            .collect();
        let customers: Vec<u64> = directory
            .bank
            .iter()
            .filter(|(_, bank)| covered.contains(*bank))
            .map(|(id, _)| *id)
            .collect();
        let covered_ranges = directory
            .ranges
            .iter()
            .filter(|(_, owner, bank)| signers.contains(owner) || covered.contains(bank))
            .map(|(ids, _, _)| ids.clone())
            .collect();
        covered.extend(customers);
        if holder.access == Access::TaxAuthority {
            covered.extend(directory.tax_sub_accounts.iter().copied());
        }
        Scope {
            access: holder.access,
            name: holder.name.clone(),
            serial: holder.serial.clone(),
            signers,
            covered,
            covered_ranges,
            directory: Arc::clone(directory),
        }
    }

    /// Whether the role reads every account.
    pub fn reads_all(&self) -> bool {
        matches!(self.access, Access::CentralBank | Access::Auditor)
    }

    /// Whether `account` is covered (its owner, its bank, or the tax authority's). An
    /// account the lifecycle opened or re-keyed is covered by its owner key and its bank as
    /// they are now.
    pub fn covers(&self, account: u64) -> bool {
        if self.access == Access::TaxAuthority && self.directory.tax_sub_accounts.contains(&account)
        {
            return true;
        }
        let later = self.directory.later();
        match later.of(account) {
            Some((owner, bank)) => {
                self.signers.contains(&owner)
                    || bank.is_some_and(|bank| self.covers_itself(&later, bank))
            }
            None => self.covers_genesis(account),
        }
    }

    /// Whether the certificate binds `account`'s owner key (a bank's own account).
    fn covers_itself(&self, later: &Later, account: u64) -> bool {
        match later.of(account) {
            Some((owner, _)) => self.signers.contains(&owner),
            None => self.covers_genesis(account),
        }
    }

    fn covers_genesis(&self, account: u64) -> bool {
        self.covered.contains(&account)
            || self.covered_ranges.iter().any(|ids| ids.contains(&account))
    }

    /// Whether the holder may see a logged record in a history: every record for the roles
    /// that read everything, else a record whose debit or credit account is covered (the
    /// tax authority: also every taxed payment and refund).
    pub fn may_see(&self, record: &TxRecord) -> bool {
        use crate::tx::TxKind;
        self.reads_all()
            || (record.debit_account() != 0 && self.covers(record.debit_account()))
            || (record.credit_account() != 0 && self.covers(record.credit_account()))
            || (self.access == Access::TaxAuthority
                && matches!(record.kind(), Some(TxKind::TaxedPayment | TxKind::Refund)))
    }

    /// Checks a batch before it is taken; the error says which record and why.
    pub fn may_submit(&self, records: &[TxRecord]) -> Result<(), String> {
        match self.access {
            Access::Auditor | Access::Monitoring => {
                return Err(format!(
                    "{} ({}) moves nothing: its certificate does not submit",
                    self.name, self.access
                ))
            }
            _ => {}
        }
        for (index, record) in records.iter().enumerate() {
            let debit = record.debit_account();
            let covered = if debit == 0 {
                self.signers.contains(&record.public_key)
            } else {
                self.covers(debit)
            };
            if !covered {
                return Err(format!(
                    "record {index} (id {}) debits account {debit}, which the certificate of {} ({}) does not cover",
                    record.id(),
                    self.name,
                    self.access
                ));
            }
            if self.access == Access::TaxAuthority {
                if let Some(kind) = record.kind() {
                    if kind.moves_money() {
                        return Err(format!(
                            "record {index} (id {}) is a {}: the tax authority moves no money",
                            record.id(),
                            kind.name()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks a subscription's accounts: the roles that read everything follow any account,
    /// the others only accounts their certificate covers; monitoring follows none.
    pub fn may_follow(&self, accounts: &[u64]) -> Result<(), String> {
        if self.access == Access::Monitoring {
            return Err(format!(
                "{} ({}) may not follow accounts: monitoring reads /metrics",
                self.name, self.access
            ));
        }
        if self.reads_all() {
            return Ok(());
        }
        match accounts.iter().find(|account| !self.covers(**account)) {
            None => Ok(()),
            Some(account) => Err(format!(
                "{} ({}) may not follow account {account}, which its certificate does not cover",
                self.name, self.access
            )),
        }
    }

    /// Checks a query before it is answered; the error says why not.
    pub fn may_query(&self, query: &Query) -> Result<(), String> {
        let refuse = |what: String| {
            Err(format!(
                "{} ({}) may not read {what}",
                self.name, self.access
            ))
        };
        if self.access == Access::Monitoring {
            return refuse("anything on the client port: monitoring reads /metrics".into());
        }
        if self.reads_all() {
            return Ok(());
        }
        match query {
            Query::Status | Query::Validators | Query::BusinessDay => Ok(()),
            Query::Balance { account }
            | Query::Account { account }
            | Query::AccountHistory { account, .. } => {
                if self.covers(*account) {
                    Ok(())
                } else {
                    refuse(format!(
                        "account {account}, which its certificate does not cover"
                    ))
                }
            }
            Query::Queue { payer: Some(payer) }
            | Query::PendingTransfers {
                account: Some(payer),
                ..
            } if self.covers(*payer) => Ok(()),
            Query::PendingTransfers { account, .. } => refuse(match account {
                Some(account) => format!("the pending transfers of account {account}"),
                None => "every account's pending transfers".to_string(),
            }),
            Query::Totals => refuse("the ledger's totals".into()),
            Query::Queue { payer } => refuse(match payer {
                Some(payer) => format!("the queue of account {payer}"),
                None => "every bank's queue".to_string(),
            }),
            Query::TaxReport { payee, .. } => match payee {
                _ if self.access == Access::TaxAuthority => Ok(()),
                Some(payee) if self.covers(*payee) => Ok(()),
                Some(payee) => refuse(format!("the tax report of account {payee}")),
                None => refuse("every payee's tax report".into()),
            },
            // looked up first, on the executor thread: `may_read_transaction`
            Query::Transaction { .. }
            | Query::TxStatus { .. }
            | Query::TxHistory { .. }
            | Query::Proof { .. } => Ok(()),
        }
    }

    /// Whether a query names a transaction whose accounts must be checked against the
    /// ledger before it is answered (every transaction query of a role that does not read
    /// everything).
    pub fn transaction_to_check(&self, query: &Query) -> Option<u128> {
        match query {
            Query::Transaction { id }
            | Query::TxStatus { id }
            | Query::TxHistory { id }
            | Query::Proof { id, .. }
                if !self.reads_all() =>
            {
                Some(*id)
            }
            _ => None,
        }
    }

    /// Checks, against the ledger, that transaction `id` is one this certificate may read:
    /// its debit or credit account is covered (or, for the tax authority, it is a taxed
    /// payment). An unknown id gets the same answer as another participant's.
    pub fn may_read_transaction(&self, ledger: &Ledger, id: u128) -> Result<(), String> {
        if self.reads_all() {
            return Ok(());
        }
        let covered = match ledger.parties(id) {
            Some((debit, credit)) => {
                (debit != 0 && self.covers(debit)) || (credit != 0 && self.covers(credit))
            }
            None => false,
        };
        let taxed = self.access == Access::TaxAuthority && ledger.is_taxed_payment(id);
        if covered || taxed {
            Ok(())
        } else {
            Err(format!(
                "{} ({}) may not read transaction {id}: the ledger holds no transaction of that id whose debit or credit account the certificate covers",
                self.name, self.access
            ))
        }
    }
}
