//! The ledger state and the executor: the single writer of balances.
//!
//! Execution is deterministic (DESIGN.md, decision 8): the same records in the same order give
//! the same result codes and the same state root on every node and every backend. Nothing here
//! reads a clock, a random number or a hash-map iteration order.
//!
//! Money: every balance is an `i64`. Only the central bank's issuance account may go below
//! zero; its negative balance is the money it has issued. The sum of all balances never
//! changes (every movement debits one account what it credits others), and the money in
//! circulation (every account but issuance) changes only by pledge and redeem.

use crate::genesis::{Genesis, Role, BASIS_POINTS_ONE};
use crate::result::ResultCode;
use crate::tx::{TxKind, TxRecord};
use std::collections::{BTreeMap, HashMap, HashSet};
use tally_kernels::merkle::{self, Hash};

/// One account's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: u64,
    pub role: Role,
    pub owner: [u8; 32],
    pub balance: i64,
    pub bank: Option<u64>,
}

/// Bytes of one account's leaf in the state tree: id, balance, role, zero padding.
const ACCOUNT_LEAF_BYTES: usize = 32;

/// The whole ledger state.
#[derive(Clone, Debug)]
pub struct Ledger {
    ledger: u32,
    central_bank: u64,
    tax_authority: u64,
    /// Sorted by id: the state tree's leaf order.
    accounts: Vec<Account>,
    index: HashMap<u64, usize>,
    tax_rates_bp: BTreeMap<u32, u32>,
    /// Ids of settled transactions: a settled id is never applied again.
    settled_ids: HashSet<u128>,
    /// Running BLAKE3 over settled ids in settlement order: commits the id index.
    settled_ids_digest: Hash,
    total_balance: i128,
}

impl Ledger {
    /// The state a validated genesis describes.
    pub fn from_genesis(genesis: &Genesis) -> Ledger {
        let mut accounts: Vec<Account> = genesis
            .accounts
            .iter()
            .map(|spec| Account {
                id: spec.id,
                role: spec.role,
                owner: crate::genesis::parse_public_key(&spec.owner)
                    .expect("genesis was validated"),
                balance: i64::try_from(spec.balance).expect("genesis was validated"),
                bank: spec.bank,
            })
            .collect();
        accounts.sort_by_key(|account| account.id);
        let index = accounts
            .iter()
            .enumerate()
            .map(|(position, account)| (account.id, position))
            .collect();
        let total_balance = accounts.iter().map(|a| i128::from(a.balance)).sum();
        Ledger {
            ledger: genesis.ledger,
            central_bank: genesis.central_bank().id,
            tax_authority: genesis.tax_authority().id,
            accounts,
            index,
            tax_rates_bp: genesis
                .tax_rates
                .iter()
                .map(|rate| (rate.category, rate.rate_bp))
                .collect(),
            settled_ids: HashSet::new(),
            settled_ids_digest: [0; 32],
            total_balance,
        }
    }

    /// Applies one record whose signature has been verified. Changes nothing unless the
    /// result is `Ok`.
    pub fn execute(&mut self, tx: &TxRecord) -> ResultCode {
        let code = self.check_and_apply(tx);
        if code.is_ok() {
            let id = tx.id();
            self.settled_ids.insert(id);
            let mut hasher = blake3::Hasher::new();
            hasher.update(&self.settled_ids_digest);
            hasher.update(&id.to_le_bytes());
            self.settled_ids_digest = *hasher.finalize().as_bytes();
        }
        debug_assert_eq!(self.sum_of_balances(), self.total_balance);
        code
    }

    fn check_and_apply(&mut self, tx: &TxRecord) -> ResultCode {
        if let Err(error) = tx.validate() {
            return error.into();
        }
        if self.settled_ids.contains(&tx.id()) {
            return ResultCode::DuplicateId;
        }
        let Some(debit) = self.index.get(&tx.debit_account()).copied() else {
            return ResultCode::UnknownDebitAccount;
        };
        let Some(credit) = self.index.get(&tx.credit_account()).copied() else {
            return ResultCode::UnknownCreditAccount;
        };
        if tx.ledger() != self.ledger {
            return ResultCode::LedgerMismatch;
        }
        let amount = tx.amount();
        let Ok(amount_signed) = i64::try_from(amount) else {
            return ResultCode::Overflow;
        };
        let kind = tx.kind().expect("validated above");
        let (debit_role, credit_role) = (self.accounts[debit].role, self.accounts[credit].role);
        if debit_role == Role::Observer || credit_role == Role::Observer {
            return ResultCode::NotPermitted;
        }
        match kind {
            TxKind::Pledge | TxKind::Redeem => {
                let central_bank_owner = self.accounts[self.index[&self.central_bank]].owner;
                if tx.public_key != central_bank_owner {
                    return ResultCode::NotCentralBank;
                }
                let shape_ok = match kind {
                    TxKind::Pledge => debit_role == Role::CentralBank && credit_role == Role::Bank,
                    _ => debit_role == Role::Bank && credit_role == Role::CentralBank,
                };
                if !shape_ok {
                    return ResultCode::NotPermitted;
                }
            }
            TxKind::Transfer | TxKind::TaxedPayment => {
                if debit_role == Role::CentralBank || credit_role == Role::CentralBank {
                    return ResultCode::NotPermitted;
                }
                if tx.public_key != self.accounts[debit].owner {
                    return ResultCode::NotOwner;
                }
            }
        }
        let may_go_negative = debit_role == Role::CentralBank;
        let debit_balance = self.accounts[debit].balance;
        if !may_go_negative && debit_balance < amount_signed {
            return ResultCode::InsufficientFunds;
        }
        let tax = if kind == TxKind::TaxedPayment {
            let Some(rate_bp) = self.tax_rates_bp.get(&tx.category()).copied() else {
                return ResultCode::UnknownTaxCategory;
            };
            tax_of(amount, rate_bp)
        } else {
            0
        };
        let net = amount_signed - tax;
        let authority = self.index[&self.tax_authority];
        // The tax authority may also be the payer or the payee: fold the three movements
        // per account before writing, so no movement overwrites another.
        let movements = [(debit, -amount_signed), (credit, net), (authority, tax)];
        let mut updated: [(usize, i64); 3] = [(usize::MAX, 0); 3];
        let mut updated_count = 0;
        for (account, delta) in movements {
            let slot = match updated[..updated_count]
                .iter()
                .position(|(a, _)| *a == account)
            {
                Some(slot) => slot,
                None => {
                    updated[updated_count] = (account, self.accounts[account].balance);
                    updated_count += 1;
                    updated_count - 1
                }
            };
            let Some(balance) = updated[slot].1.checked_add(delta) else {
                return ResultCode::Overflow;
            };
            updated[slot].1 = balance;
        }
        for &(account, balance) in &updated[..updated_count] {
            self.accounts[account].balance = balance;
        }
        ResultCode::Ok
    }

    /// Root of the state: the Merkle root of the accounts (sorted by id) joined with the
    /// digest of settled ids.
    pub fn state_root(&self) -> Hash {
        let mut leaves = vec![0u8; self.accounts.len() * ACCOUNT_LEAF_BYTES];
        for (leaf, account) in leaves
            .chunks_exact_mut(ACCOUNT_LEAF_BYTES)
            .zip(&self.accounts)
        {
            leaf[0..8].copy_from_slice(&account.id.to_le_bytes());
            leaf[8..16].copy_from_slice(&account.balance.to_le_bytes());
            leaf[16] = account.role as u8;
        }
        let accounts_root = merkle::root(&leaves, ACCOUNT_LEAF_BYTES);
        merkle::node_hash(&accounts_root, &self.settled_ids_digest)
    }

    /// Balance of an account, if it exists.
    pub fn balance(&self, account: u64) -> Option<i64> {
        self.index.get(&account).map(|&i| self.accounts[i].balance)
    }

    /// An account, if it exists.
    pub fn account(&self, account: u64) -> Option<&Account> {
        self.index.get(&account).map(|&i| &self.accounts[i])
    }

    /// Every account, sorted by id.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// Sum of every balance, issuance included: constant from genesis on.
    pub fn sum_of_balances(&self) -> i128 {
        self.accounts.iter().map(|a| i128::from(a.balance)).sum()
    }

    /// The sum of balances at genesis.
    pub fn genesis_total(&self) -> i128 {
        self.total_balance
    }

    /// Money in circulation: every balance but the central bank's issuance account.
    pub fn money_in_circulation(&self) -> i128 {
        self.sum_of_balances() - i128::from(self.balance(self.central_bank).unwrap_or(0))
    }

    /// Whether `id` has settled.
    pub fn is_settled(&self, id: u128) -> bool {
        self.settled_ids.contains(&id)
    }

    /// Count of settled transactions.
    pub fn settled_count(&self) -> usize {
        self.settled_ids.len()
    }

    /// Every registered owner key (for the verifier's key cache).
    pub fn owner_keys(&self) -> Vec<[u8; 32]> {
        let mut keys: Vec<[u8; 32]> = self.accounts.iter().map(|a| a.owner).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// Tax on a gross amount: `floor(gross * rate_bp / 10_000)`, rounding down so that the payee
/// receives the remainder (docs/SETTLEMENT.md).
pub fn tax_of(gross: u64, rate_bp: u32) -> i64 {
    let tax = u128::from(gross) * u128::from(rate_bp) / u128::from(BASIS_POINTS_ONE);
    i64::try_from(tax).expect("rate_bp <= 10_000 keeps tax <= gross")
}

/// Magic at the start of a ledger snapshot.
const SNAPSHOT_MAGIC: [u8; 8] = *b"TLYSNAP1";
/// Bytes of one account in a snapshot.
const SNAPSHOT_ACCOUNT_BYTES: usize = 64;

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
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

impl Ledger {
    /// Encodes the whole state after block `point.height` (deterministic bytes: accounts by
    /// id, settled ids sorted), bound to the genesis by its hash.
    pub fn snapshot(&self, genesis_hash: &Hash, point: SnapshotPoint) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            200 + self.accounts.len() * SNAPSHOT_ACCOUNT_BYTES + self.settled_ids.len() * 16,
        );
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(genesis_hash);
        out.extend_from_slice(&point.height.to_le_bytes());
        out.extend_from_slice(&point.last_block_hash);
        out.extend_from_slice(&u64::from(self.ledger).to_le_bytes());
        out.extend_from_slice(&self.central_bank.to_le_bytes());
        out.extend_from_slice(&self.tax_authority.to_le_bytes());
        out.extend_from_slice(&self.total_balance.to_le_bytes());
        out.extend_from_slice(&self.settled_ids_digest);
        out.extend_from_slice(&(self.accounts.len() as u64).to_le_bytes());
        for account in &self.accounts {
            out.extend_from_slice(&account.id.to_le_bytes());
            out.extend_from_slice(&(account.role as u64).to_le_bytes());
            out.extend_from_slice(&account.owner);
            out.extend_from_slice(&account.balance.to_le_bytes());
            out.extend_from_slice(&account.bank.unwrap_or(0).to_le_bytes());
        }
        out.extend_from_slice(&(self.tax_rates_bp.len() as u64).to_le_bytes());
        for (category, rate) in &self.tax_rates_bp {
            out.extend_from_slice(&category.to_le_bytes());
            out.extend_from_slice(&rate.to_le_bytes());
        }
        let mut ids: Vec<u128> = self.settled_ids.iter().copied().collect();
        ids.sort_unstable();
        out.extend_from_slice(&(ids.len() as u64).to_le_bytes());
        for id in ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        out
    }

    /// Restores a state from [`Ledger::snapshot`] bytes, checking that it belongs to the
    /// genesis with `genesis_hash`.
    pub fn restore(
        bytes: &[u8],
        genesis_hash: &Hash,
    ) -> Result<(Ledger, SnapshotPoint), SnapshotError> {
        use crate::genesis::Role::*;
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
        let total_balance = i128::from_le_bytes(r.array()?);
        let settled_ids_digest = r.array()?;
        let account_count = r.u64()? as usize;
        if account_count > bytes.len() / SNAPSHOT_ACCOUNT_BYTES {
            return Err(SnapshotError::Invalid("account count"));
        }
        let mut accounts = Vec::with_capacity(account_count);
        for _ in 0..account_count {
            let id = r.u64()?;
            let role = match r.u64()? {
                0 => CentralBank,
                1 => Bank,
                2 => TaxAuthority,
                3 => Merchant,
                4 => Consumer,
                5 => Observer,
                _ => return Err(SnapshotError::Invalid("account role")),
            };
            let owner = r.array()?;
            let balance = i64::from_le_bytes(r.array()?);
            let bank = Some(r.u64()?).filter(|bank| *bank != 0);
            accounts.push(Account {
                id,
                role,
                owner,
                balance,
                bank,
            });
        }
        if accounts.windows(2).any(|pair| pair[0].id >= pair[1].id) {
            return Err(SnapshotError::Invalid("account order"));
        }
        let rate_count = r.u64()? as usize;
        let mut tax_rates_bp = BTreeMap::new();
        for _ in 0..rate_count {
            let category = u32::from_le_bytes(r.array()?);
            let rate = u32::from_le_bytes(r.array()?);
            tax_rates_bp.insert(category, rate);
        }
        let id_count = r.u64()? as usize;
        if id_count > bytes.len() / 16 {
            return Err(SnapshotError::Invalid("settled id count"));
        }
        let mut settled_ids = HashSet::with_capacity(id_count);
        for _ in 0..id_count {
            settled_ids.insert(u128::from_le_bytes(r.array()?));
        }
        if r.at != bytes.len() {
            return Err(SnapshotError::TrailingBytes(bytes.len() - r.at));
        }
        let index = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id, i))
            .collect::<HashMap<_, _>>();
        if !index.contains_key(&central_bank) || !index.contains_key(&tax_authority) {
            return Err(SnapshotError::Invalid("central bank or tax authority"));
        }
        let restored = Ledger {
            ledger,
            central_bank,
            tax_authority,
            accounts,
            index,
            tax_rates_bp,
            settled_ids,
            settled_ids_digest,
            total_balance,
        };
        if restored.sum_of_balances() != total_balance {
            return Err(SnapshotError::Invalid(
                "balances do not add up to the total",
            ));
        }
        Ok((restored, point))
    }
}
