//! The ledger state and the executor: the single writer of balances.
//! Over 800 lines on purpose: the executor's rules for every kind of record share the state's
//! private invariants (limits, reservations, the accepted-id index); the queues, tax, the
//! journal, queries and snapshots live in their own files.
//!
//! Execution is deterministic (DESIGN.md, decision 8): the same blocks (records, heights and
//! timestamps) give the same result codes and the same state root on every node and every
//! backend. Nothing here reads a clock, a random number or a hash-map iteration order: hash
//! maps serve look-ups only; every ordered walk goes over a `BTreeMap` or a sorted `Vec`.
//!
//! Money: every balance is an `i64`. Only the central bank's issuance account and accounts
//! with an overdraft allowance may go below zero; no account goes below its limit
//! (`-overdraft_max`, counting the amounts reserved by pending transfers). The sum of all
//! balances never changes (every movement debits what it credits), and the money in
//! circulation (every account but issuance) changes only by pledge and redeem.
//!
//! A block is executed as `begin_block`, one `execute` per record in block order, then
//! `end_block`: time-outs, end-of-day expiry and the opening's warehoused payments
//! (`warehouse`) run at the start of a block, queue retries and the liquidity-saving
//! mechanism at its end, and `end_block` rewrites the codes of linked chains that failed
//! (docs/SETTLEMENT.md).

mod account_index;
mod account_tree;
pub mod cow_vec;
mod id_map;
mod journal;
mod lifecycle;
mod query;
mod rtgs;
mod set_hash;
mod snapshot;
mod tax;
mod tree_nodes;
mod warehouse;

pub use query::{PendingTransfer, TxStatus};
pub use rtgs::{QueueKey, QueuedPayment, QUEUED_PAYMENTS_MAX};
pub use snapshot::{SnapshotError, SnapshotPoint};
pub use tax::{FinishedTaxDays, TaxPayment, TaxRate, TaxReportRow, TaxTotals, TAX_RATES_MAX};
pub use warehouse::{WarehouseKey, WarehousedPayment, WAREHOUSED_PAYMENTS_MAX};

use crate::calendar::Calendar;
use crate::consensus::{ScheduleError, ValidatorChange, ValidatorSchedule, ValidatorSet};
use crate::genesis::{Genesis, Role, DAY_MS};
use crate::result::ResultCode;
use crate::tx::{TxFlags, TxKind, TxRecord};
use cow_vec::CowVec;
use id_map::IdMap;
use journal::{Chain, Undo};
use set_hash::SetHash;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tally_kernels::merkle::{self, Hash};

/// Most two-phase reservations open at once (`pending_transfers_full` beyond).
pub const PENDING_TRANSFERS_MAX: usize = 1 << 20;
/// Most serial numbers on the ledger's revocation list (genesis and revocations together): a
/// revocation past it is refused `revocation_list_full`.
pub const REVOKED_SERIALS_MAX: usize = 1 << 16;

/// One account's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: u64,
    pub role: Role,
    pub owner: [u8; 32],
    pub balance: i64,
    pub bank: Option<u64>,
    /// How far below zero the balance may go.
    pub overdraft_max: i64,
    /// Most the balance may hold, if limited.
    pub balance_max: Option<i64>,
    /// A merchant's restricted tax sub-account.
    pub tax_sub_account: Option<u64>,
    /// Reserved by pending transfers out of this account (not yet moved).
    pub debits_pending: i64,
    /// Reserved by pending transfers into this account (not yet moved).
    pub credits_pending: i64,
    /// Suspended by the central bank: neither pays nor is paid.
    pub suspended: bool,
    /// Closed (kind 16): every later record naming it is refused `account_closed`.
    pub closed: bool,
}

impl Account {
    /// What the account can still pay: balance, less pending debits, plus its overdraft.
    pub fn available(&self) -> i128 {
        i128::from(self.balance) - i128::from(self.debits_pending) + i128::from(self.overdraft_max)
    }
}

/// A terminal outcome other than "settled in its own block", kept per transaction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// A queued payment settled at the end of block `height` (by the liquidity-saving
    /// mechanism if `via_lsm`).
    SettledFromQueue { height: u64, via_lsm: bool },
    /// A queued payment cancelled by its payer in block `height`.
    Cancelled { height: u64 },
    /// A queued payment not settled by the end of its business day (expired at the start of
    /// block `height`).
    Expired { height: u64 },
    /// A pending transfer posted by transaction `by`, for `amount`.
    Posted { by: u128, amount: u64 },
    /// A pending transfer voided by transaction `by`.
    Voided { by: u128 },
    /// A pending transfer that timed out (released at the start of block `height`).
    PendingExpired { height: u64 },
    /// A queued payment still unsettled at the end of its business day (with a calendar):
    /// rejected `end_of_day_unsettled` at the start of block `height`.
    EndOfDayUnsettled { height: u64 },
    /// A warehoused payment settled at its value date's opening, at the start of block
    /// `height`.
    SettledAtOpening { height: u64 },
    /// A warehoused payment refused at its value date's opening with `code`.
    RejectedAtOpening { height: u64, code: ResultCode },
}

impl Closed {
    /// (tag, a, b): the outcome's words in the history digest and in snapshots.
    fn words(self) -> (u8, u128, u64) {
        match self {
            Closed::SettledFromQueue { height, via_lsm } => (1, u128::from(via_lsm), height),
            Closed::Cancelled { height } => (2, 0, height),
            Closed::Expired { height } => (3, 0, height),
            Closed::Posted { by, amount } => (4, by, amount),
            Closed::Voided { by } => (5, by, 0),
            Closed::PendingExpired { height } => (6, 0, height),
            Closed::EndOfDayUnsettled { height } => (7, 0, height),
            Closed::SettledAtOpening { height } => (8, 0, height),
            Closed::RejectedAtOpening { height, code } => (9, u128::from(code as u8), height),
        }
    }

    /// The outcome of [`Closed::words`].
    fn from_words(tag: u8, a: u128, b: u64) -> Option<Closed> {
        Some(match tag {
            1 if a <= 1 => Closed::SettledFromQueue {
                height: b,
                via_lsm: a == 1,
            },
            2 => Closed::Cancelled { height: b },
            3 => Closed::Expired { height: b },
            4 => Closed::Posted { by: a, amount: b },
            5 => Closed::Voided { by: a },
            6 => Closed::PendingExpired { height: b },
            7 => Closed::EndOfDayUnsettled { height: b },
            8 => Closed::SettledAtOpening { height: b },
            9 => Closed::RejectedAtOpening {
                height: b,
                code: ResultCode::from_wire(u8::try_from(a).ok()?)?,
            },
            _ => return None,
        })
    }
}

/// Something that happened outside the block's own records: reported by `end_block`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettlementEvent {
    /// A queued payment settled.
    SettledFromQueue {
        id: u128,
        payer: u64,
        payee: u64,
        amount: u64,
        via_lsm: bool,
    },
    /// A queued payment expired at the end of its business day.
    QueueExpired {
        id: u128,
        payer: u64,
        payee: u64,
        amount: u64,
    },
    /// A pending transfer timed out; its reservation was released.
    PendingExpired {
        id: u128,
        debit: u64,
        credit: u64,
        amount: u64,
    },
    /// A queued payment rejected `end_of_day_unsettled` at the end of its business day.
    EndOfDayUnsettled {
        id: u128,
        payer: u64,
        payee: u64,
        amount: u64,
    },
    /// A warehoused payment settled at its value date's opening.
    SettledFromWarehouse {
        id: u128,
        payer: u64,
        payee: u64,
        amount: u64,
    },
    /// A warehoused payment taken into its payer's RTGS queue at its value date's opening.
    QueuedFromWarehouse {
        id: u128,
        payer: u64,
        payee: u64,
        amount: u64,
    },
    /// A warehoused payment refused at its value date's opening.
    WarehouseRejected {
        id: u128,
        payer: u64,
        payee: u64,
        amount: u64,
        code: ResultCode,
    },
}

/// Who may act for an account, as a block's lifecycle records changed it (opened, re-keyed,
/// a bank added with its customers): what the client port's access rules follow
/// (`net::access::Directory::apply`). Not state: read from the block just executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessChange {
    /// Account `id` is now owned by `owner` and held at `bank`.
    Account {
        id: u64,
        owner: [u8; 32],
        bank: Option<u64>,
    },
    /// Accounts `ids` (an added bank's customers) are owned by `owner` and held at `bank`.
    Range {
        ids: std::ops::Range<u64>,
        owner: [u8; 32],
        bank: u64,
    },
}

/// A two-phase reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    pub debit: usize,
    pub credit: usize,
    pub amount: i64,
    /// Block time at which it times out; 0: never.
    pub expires_at_ms: u64,
    pub created_height: u64,
}

/// An accepted id: when its record stops being valid, and its accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UsedId {
    pub valid_until: u64,
    pub debit: u64,
    pub credit: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct BlockContext {
    height: u64,
    time_ms: u64,
    open: bool,
    next_index: u32,
    /// The header's proposer index, for leader reputation (`set_block_proposer`).
    proposer: Option<u32>,
}

/// Domain tag of the state root's digest, versioned with its bytes (version 9: the
/// warehouse of payments waiting for their value date enters as a set digest; version 8: an account's
/// leaf carries its owner key, its bank and whether it is closed, and accounts opened after
/// the genesis follow the genesis's in the order they were opened; version 7: the queues,
/// the open reservations, the tax-rate table and the revocation list enter as set digests
/// kept up to date as they change; version 6: the validator schedule carries the leader
/// reputation; version 5: the certificate revocation
/// list; version 4: each rate of the tax-rate table carries its basis and rounding; the tax
/// records folded into the history digest carry the rate, basis and rounding a payment
/// settled at).
pub const STATE_ROOT_TAG: &[u8; 16] = b"TALLY-STATE-V9\0\0";

/// Domain tags of the set digests of the tables the state root commits to.
const QUEUE_SET_TAG: &[u8; 16] = b"TALLY-QUEUE-V7\0\0";
const PENDING_SET_TAG: &[u8; 16] = b"TALLY-PENDING-V7";
const TAX_RATE_SET_TAG: &[u8; 16] = b"TALLY-TAXRATE-V7";
const REVOKED_SET_TAG: &[u8; 16] = b"TALLY-REVOKED-V7";
const WAREHOUSE_SET_TAG: &[u8; 16] = b"TALLY-WAREHOUSE9";

/// The set digests ([`set_hash`]) of the tables the state root commits to, each kept up to
/// date by the one place that inserts into or removes from its table (`queue_put`,
/// `pending_put`, ... below).
#[derive(Clone, Debug, PartialEq, Eq)]
struct TableDigests {
    queue: SetHash,
    pending: SetHash,
    tax_rates: SetHash,
    revoked: SetHash,
    warehouse: SetHash,
}

impl TableDigests {
    fn empty() -> TableDigests {
        TableDigests {
            queue: SetHash::new(QUEUE_SET_TAG),
            pending: SetHash::new(PENDING_SET_TAG),
            tax_rates: SetHash::new(TAX_RATE_SET_TAG),
            revoked: SetHash::new(REVOKED_SET_TAG),
            warehouse: SetHash::new(WAREHOUSE_SET_TAG),
        }
    }
}

/// A tax rate's element of its set digest: category, effective-from, rate, the codes of its
/// basis and rounding, the sub-account flag.
fn tax_rate_element(&(category, from): &(u32, u64), rate: &TaxRate) -> [u8; 19] {
    let mut out = [0u8; 19];
    out[0..4].copy_from_slice(&category.to_le_bytes());
    out[4..12].copy_from_slice(&from.to_le_bytes());
    out[12..16].copy_from_slice(&rate.rate_bp.to_le_bytes());
    out[16] = rate.basis.code();
    out[17] = rate.rounding.code();
    out[18] = u8::from(rate.to_sub_account);
    out
}

/// A revoked serial's element of its set digest: its length (one byte), then its bytes.
fn revoked_element(serial: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + serial.len());
    out.push(serial.len() as u8);
    out.extend_from_slice(serial);
    out
}

/// Bytes of one account's leaf in the state tree (layout in [`Ledger::state_root`]).
const ACCOUNT_LEAF_BYTES: usize = 104;

/// One account's leaf of the state tree (layout in [`Ledger::state_root`]).
fn account_leaf(account: &Account, leaf: &mut [u8]) {
    leaf.fill(0);
    leaf[0..8].copy_from_slice(&account.id.to_le_bytes());
    leaf[8..16].copy_from_slice(&account.balance.to_le_bytes());
    leaf[16] = account.role as u8;
    leaf[17] = u8::from(account.suspended);
    leaf[18] = u8::from(account.closed);
    leaf[24..32].copy_from_slice(&account.overdraft_max.to_le_bytes());
    let max = account.balance_max.map_or(u64::MAX, |m| m as u64);
    leaf[32..40].copy_from_slice(&max.to_le_bytes());
    leaf[40..48].copy_from_slice(&account.debits_pending.to_le_bytes());
    leaf[48..56].copy_from_slice(&account.credits_pending.to_le_bytes());
    leaf[56..64].copy_from_slice(&account.tax_sub_account.unwrap_or(0).to_le_bytes());
    leaf[64..72].copy_from_slice(&account.bank.unwrap_or(0).to_le_bytes());
    leaf[72..104].copy_from_slice(&account.owner);
}

/// The whole ledger state.
#[derive(Clone, Debug)]
pub struct Ledger {
    ledger: u32,
    central_bank: u64,
    tax_authority: u64,
    central_bank_index: usize,
    tax_authority_index: usize,
    day_cutoff_ms: u64,
    /// The genesis's validity window: a record's `valid_until` is at most this far after
    /// its block's time.
    validity_window_ms: u64,
    /// The genesis's accounts sorted by id, then the accounts opened since (kinds 15 and
    /// 19) in the order they were opened: the state tree's leaf order. An account is never
    /// removed (a closed one stays, marked), so a position never changes. In copy-on-write
    /// chunks, so that [`Ledger::copy_for_snapshot`] copies chunk pointers, not accounts.
    accounts: CowVec<Account>,
    /// The accounts' Merkle tree, updated for the accounts each block changed.
    account_tree: account_tree::AccountTree,
    index: account_index::AccountIndex,
    /// (category, effective-from ms) -> rate.
    tax_rates: BTreeMap<(u32, u64), TaxRate>,
    /// Ids of accepted transactions whose records are still valid, with their
    /// `valid_until`: a copy of such a record is refused as a duplicate. An id leaves when
    /// the block time passes its `valid_until`; from then on every copy is refused as expired
    /// (docs/SETTLEMENT.md, "Idempotency and expiry"), so the set holds one window.
    /// Each id is kept with the debit and credit account of its record, so that a
    /// participant can be let read the status of its own transactions (not committed by the
    /// state root: it is a read index, restored from checkpoints and replay alike).
    used_ids: IdMap<UsedId>,
    /// The same ids by (`valid_until`, id): the order in which they leave.
    used_ids_by_expiry: BTreeSet<(u64, u128)>,
    /// Running BLAKE3 over accepted ids in acceptance order: commits the id index.
    used_ids_digest: Hash,
    /// Running BLAKE3 over status changes and tax records: commits them.
    history_digest: Hash,
    /// RTGS queues of every payer, in settlement order.
    queue: BTreeMap<QueueKey, QueuedPayment>,
    /// Set digests of the queue, the open reservations, the tax-rate table and the
    /// revocation list, kept as they change.
    digests: TableDigests,
    queue_index: HashMap<u128, QueueKey>,
    next_seq: u64,
    queue_earliest_expiry_ms: u64,
    pending: BTreeMap<u128, Pending>,
    pending_earliest_expiry_ms: u64,
    closed: IdMap<Closed>,
    /// The closed outcomes by (block time after which they are forgotten, id): an outcome is
    /// kept for one validity window after it happened.
    closed_by_expiry: BTreeSet<(u64, u128)>,
    /// The genesis's refund window: a taxed payment is held for refunds this long after its
    /// block's time, then forgotten (docs/SETTLEMENT.md, "Refunds").
    refund_window_ms: u64,
    /// Taxed payments whose refund window is open.
    tax_payments: IdMap<TaxPayment>,
    /// The same payments by (block time after which they are forgotten, id).
    tax_payments_by_expiry: BTreeSet<(u64, u128)>,
    /// Ids of taxed payments whose refund window closed less than one refund window ago,
    /// with the block time after which they are forgotten too: a refund of one is refused
    /// `refund_window_closed` (after that, `refund_of_unknown_payment`).
    refunds_closed: IdMap<u64>,
    /// The same ids by (block time after which they are forgotten, id).
    refunds_closed_by_expiry: BTreeSet<(u64, u128)>,
    /// (payee, business day, category, basis) -> totals, for the business days that ended
    /// less than one refund window ago (older rows no longer change and leave memory).
    tax_totals: BTreeMap<tax::TaxTotalsKey, TaxTotals>,
    /// The keys of `tax_totals` by business day: the order in which they leave.
    tax_totals_by_day: BTreeSet<(u64, tax::TaxTotalsKey)>,
    total_balance: i128,
    /// The sum of every balance now, kept at each balance write (so that the sealer's
    /// money-conservation check costs nothing per untouched account).
    balance_sum: i128,
    block: BlockContext,
    chain: Option<Chain>,
    corrections: Vec<(u32, ResultCode)>,
    events: Vec<SettlementEvent>,
    /// Queued or warehoused payments cancelled in the current block: id -> (payer, payee,
    /// amount), for their `cancelled` events (read only for a cancel whose result is `ok`, so
    /// an entry left by a chain that failed is never used).
    cancelled_in_block: HashMap<u128, (u64, u64, u64)>,
    /// The business days the current block's time ended (the tax-total rows of the
    /// previous block's day, taken before they can be forgotten), for the tax-day journal.
    finished_tax_days: Option<tax::FinishedTaxDays>,
    /// The validator set by epoch and the authorities' pending votes on changes.
    schedule: ValidatorSchedule,
    /// Serial numbers (canonical bytes: big-endian, no leading zero byte) of revoked network
    /// certificates: the genesis's list and the central bank's revocations (kind 14).
    revoked: BTreeSet<Vec<u8>>,
    /// The serials revoked by the current (or last) block, in block order.
    revoked_in_block: Vec<Vec<u8>>,
    /// What the current (or last) block's lifecycle records changed of who acts for an
    /// account, in block order.
    access_changes: Vec<AccessChange>,
    /// The genesis's business-day calendar (`settlement.calendar`), if it has one.
    calendar: Option<Calendar>,
    /// Payments accepted ahead of their value date, in the order their openings apply them.
    warehouse: BTreeMap<WarehouseKey, WarehousedPayment>,
    warehouse_index: HashMap<u128, WarehouseKey>,
}

impl Ledger {
    /// The state a validated genesis describes.
    pub fn from_genesis(genesis: &Genesis) -> Ledger {
        let mut accounts: Vec<Account> = Vec::with_capacity(genesis.account_count() as usize);
        accounts.extend(genesis.all_accounts().map(|spec| {
            Account {
                id: spec.id,
                role: spec.role,
                owner: spec.owner,
                balance: i64::try_from(spec.balance).expect("genesis was validated"),
                bank: spec.bank,
                overdraft_max: i64::try_from(spec.overdraft_max).expect("genesis was validated"),
                balance_max: spec
                    .balance_max
                    .map(|max| i64::try_from(max).unwrap_or(i64::MAX)),
                tax_sub_account: spec.tax_sub_account,
                debits_pending: 0,
                credits_pending: 0,
                suspended: false,
                closed: false,
            }
        }));
        accounts.sort_unstable_by_key(|account| account.id);
        let index = account_index::AccountIndex::new(accounts.iter().map(|account| account.id));
        let tax_rates = genesis
            .tax_rates
            .iter()
            .map(|rate| {
                (
                    (rate.category, 0),
                    TaxRate {
                        rate_bp: rate.rate_bp,
                        basis: rate.basis.expect("genesis was validated"),
                        rounding: rate.rounding.expect("genesis was validated"),
                        to_sub_account: rate.to_sub_account,
                    },
                )
            })
            .collect();
        let validators = ValidatorSet::new(genesis.network_id, 0, genesis.validator_keys())
            .expect("genesis was validated");
        let schedule = ValidatorSchedule::new(validators, genesis.heights_per_epoch)
            .expect("genesis was validated");
        let mut ledger = Ledger::assemble(
            genesis.ledger,
            genesis.central_bank().id,
            genesis.tax_authority().id,
            genesis.settlement.day_cutoff_ms,
            genesis.settlement.validity_window_ms,
            genesis.settlement.refund_window_ms,
            accounts,
            index,
            tax_rates,
            schedule,
        );
        ledger.revoked = genesis
            .revoked
            .iter()
            .map(|serial| crate::tx::canonical_serial(serial).expect("genesis was validated"))
            .collect();
        ledger.calendar = genesis.calendar();
        ledger.digests = ledger.table_digests_from_scratch();
        ledger
    }

    // every part of a ledger that is not derived from the others, named (genesis and restore)
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        ledger: u32,
        central_bank: u64,
        tax_authority: u64,
        day_cutoff_ms: u64,
        validity_window_ms: u64,
        refund_window_ms: u64,
        accounts: Vec<Account>,
        index: account_index::AccountIndex,
        tax_rates: BTreeMap<(u32, u64), TaxRate>,
        schedule: ValidatorSchedule,
    ) -> Ledger {
        let total_balance = accounts.iter().map(|a| i128::from(a.balance)).sum();
        let accounts = CowVec::from(accounts);
        Ledger {
            ledger,
            central_bank,
            tax_authority,
            central_bank_index: index.at(central_bank),
            tax_authority_index: index.at(tax_authority),
            day_cutoff_ms,
            validity_window_ms,
            accounts,
            account_tree: Default::default(),
            index,
            tax_rates,
            used_ids: IdMap::new(),
            used_ids_by_expiry: BTreeSet::new(),
            used_ids_digest: [0; 32],
            history_digest: [0; 32],
            queue: BTreeMap::new(),
            digests: TableDigests::empty(),
            queue_index: HashMap::new(),
            next_seq: 0,
            queue_earliest_expiry_ms: u64::MAX,
            pending: BTreeMap::new(),
            pending_earliest_expiry_ms: u64::MAX,
            closed: IdMap::new(),
            closed_by_expiry: BTreeSet::new(),
            refund_window_ms,
            tax_payments: IdMap::new(),
            tax_payments_by_expiry: BTreeSet::new(),
            refunds_closed: IdMap::new(),
            refunds_closed_by_expiry: BTreeSet::new(),
            tax_totals: BTreeMap::new(),
            tax_totals_by_day: BTreeSet::new(),
            total_balance,
            balance_sum: total_balance,
            block: BlockContext::default(),
            chain: None,
            corrections: Vec::new(),
            events: Vec::new(),
            cancelled_in_block: HashMap::new(),
            finished_tax_days: None,
            schedule,
            revoked: BTreeSet::new(),
            revoked_in_block: Vec::new(),
            access_changes: Vec::new(),
            calendar: None,
            warehouse: BTreeMap::new(),
            warehouse_index: HashMap::new(),
        }
    }

    /// Opens block `height` at block time `timestamp_ms` (from the block header). Time never
    /// runs backwards: the ledger's time is the largest timestamp seen. Pending transfers
    /// that timed out and queued payments whose business day has ended are closed here, and
    /// warehoused payments whose value date has opened are applied, before the block's
    /// records.
    pub fn begin_block(&mut self, height: u64, timestamp_ms: u64) {
        // a chain left open by a caller that never ended its block settles nothing
        if let Some(chain) = self.chain.take() {
            if !chain.failed {
                self.undo(chain);
            }
        }
        let previous_day = self.business_day(self.block.time_ms);
        self.block = BlockContext {
            height,
            time_ms: self.block.time_ms.max(timestamp_ms),
            open: true,
            next_index: 0,
            proposer: None,
        };
        self.finished_tax_days = self.take_finished_tax_days(previous_day);
        self.corrections.clear();
        self.events.clear();
        self.cancelled_in_block.clear();
        self.revoked_in_block.clear();
        self.access_changes.clear();
        self.forget_expired();
        self.expire_pending();
        self.expire_queue();
        if !self.warehouse.is_empty() {
            self.open_warehouse();
        }
    }

    /// Closes the block: a linked chain still open is undone and its records answered
    /// `linked_event_chain_open`; `results` (the codes `execute` returned, in block order)
    /// get the corrections of failed linked chains; then queued payments are retried and the
    /// liquidity-saving mechanism offsets what is still gridlocked. Returns what settled or
    /// expired outside the block's own records.
    pub fn end_block(&mut self, results: &mut [ResultCode]) -> &[SettlementEvent] {
        if let Some(chain) = self.chain.take() {
            let start = chain.start_index;
            if !chain.failed {
                self.undo(chain);
            }
            for index in start..self.block.next_index {
                self.corrections
                    .push((index, ResultCode::LinkedEventChainOpen));
            }
        }
        for &(index, code) in &self.corrections {
            if let Some(slot) = results.get_mut(index as usize) {
                *slot = code;
            }
        }
        self.corrections.clear();
        self.settle_queues();
        if let Some(proposer) = self.block.proposer.take() {
            self.schedule.on_block_proposer(self.block.height, proposer);
        }
        if let Err(error) = self.schedule.on_decided(self.block.height) {
            // Only a height before the schedule's epoch (a caller executing heights out of
            // order) gets here; the schedule stays as it was, on every node alike.
            tracing::error!(height = self.block.height, %error, "validator schedule not advanced");
        }
        self.block.open = false;
        self.block.next_index = 0;
        &self.events
    }

    /// Names the open block's proposer (the header's `proposer` index) so that `end_block`
    /// updates the leader reputation of the validator schedule
    /// ([`ValidatorSchedule::on_block_proposer`]). The one sealer calls it for every block;
    /// a block sealed without it leaves the reputation as it was.
    pub fn set_block_proposer(&mut self, proposer: u32) {
        if self.block.open {
            self.block.proposer = Some(proposer);
        }
    }

    /// Executes a whole block: `begin_block`, `execute` each record, `end_block`.
    pub fn execute_block(
        &mut self,
        height: u64,
        timestamp_ms: u64,
        records: &[TxRecord],
    ) -> Vec<ResultCode> {
        self.begin_block(height, timestamp_ms);
        let mut results: Vec<ResultCode> = records.iter().map(|r| self.execute(r)).collect();
        self.end_block(&mut results);
        results
    }

    /// Applies one record whose signature has been verified. Changes nothing unless the
    /// result is accepted ([`ResultCode::is_ok`]). In a linked chain the code may still be
    /// corrected by `end_block` (the chain failed later, or stayed open).
    pub fn execute(&mut self, tx: &TxRecord) -> ResultCode {
        let index = self.block.next_index;
        self.block.next_index = index.wrapping_add(1);
        let linked = tx.is_linked();
        match &self.chain {
            Some(chain) if chain.failed => {
                if !linked {
                    self.chain = None;
                }
                return ResultCode::LinkedEventFailed;
            }
            Some(_) => {}
            None if linked => {
                self.chain = Some(Chain::start(
                    index,
                    self.used_ids_digest,
                    self.history_digest,
                ));
            }
            None => {}
        }
        let code = self.check_and_apply(tx);
        if code.is_ok() {
            self.record_used_id(
                tx.id(),
                UsedId {
                    valid_until: tx.valid_until(),
                    debit: tx.debit_account(),
                    credit: tx.credit_account(),
                },
            );
        }
        if let Some(chain) = self.chain.take() {
            if !code.is_ok() {
                let start = chain.start_index;
                self.undo(chain);
                for earlier in start..index {
                    self.corrections
                        .push((earlier, ResultCode::LinkedEventFailed));
                }
                if linked {
                    self.chain = Some(Chain::failed(start));
                }
            } else if linked {
                self.chain = Some(chain);
            }
        }
        debug_assert_eq!(self.sum_of_balances(), self.total_balance);
        debug_assert_eq!(self.balance_sum, self.recount_balances());
        code
    }

    /// Writes an account's balance (the only way balances change) and keeps the sum.
    pub(super) fn set_balance(&mut self, index: usize, balance: i64) {
        let old = std::mem::replace(&mut self.accounts[index].balance, balance);
        self.balance_sum += i128::from(balance) - i128::from(old);
    }

    fn record_used_id(&mut self, id: u128, used: UsedId) {
        let valid_until = used.valid_until;
        self.used_ids.insert(id, used);
        self.used_ids_by_expiry.insert((valid_until, id));
        self.journal(Undo::UsedId(id, valid_until));
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.used_ids_digest);
        hasher.update(&id.to_le_bytes());
        self.used_ids_digest = *hasher.finalize().as_bytes();
    }

    /// Folds a status change or a tax record into the history digest.
    fn note(&mut self, bytes: &[u8]) {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.history_digest);
        hasher.update(bytes);
        self.history_digest = *hasher.finalize().as_bytes();
    }

    /// Forgets, at the start of a block, the ids whose records have expired, the closed
    /// outcomes older than one validity window, the taxed payments whose refund window has
    /// closed (kept as ids for one more refund window, then forgotten too) and the tax totals
    /// of business days that ended more than one refund window ago. Depends on the block
    /// time alone, so every node forgets the same entries at the same block.
    fn forget_expired(&mut self) {
        let now = self.block.time_ms;
        while let Some(&(valid_until, id)) = self.used_ids_by_expiry.first() {
            if valid_until >= now {
                break;
            }
            self.used_ids_by_expiry.pop_first();
            self.used_ids.remove(&id);
        }
        while let Some(&(forget_at, id)) = self.closed_by_expiry.first() {
            if forget_at >= now {
                break;
            }
            self.closed_by_expiry.pop_first();
            self.closed.remove(&id);
        }
        while let Some(&(forget_at, id)) = self.tax_payments_by_expiry.first() {
            if forget_at >= now {
                break;
            }
            self.tax_payments_by_expiry.pop_first();
            self.tax_payments.remove(&id);
            let closed_until = forget_at.saturating_add(self.refund_window_ms);
            self.refunds_closed.insert(id, closed_until);
            self.refunds_closed_by_expiry.insert((closed_until, id));
        }
        while let Some(&(forget_at, id)) = self.refunds_closed_by_expiry.first() {
            if forget_at >= now {
                break;
            }
            self.refunds_closed_by_expiry.pop_first();
            self.refunds_closed.remove(&id);
        }
        let first_kept_day = self.business_day(now.saturating_sub(self.refund_window_ms));
        while let Some(&(day, key)) = self.tax_totals_by_day.first() {
            if day >= first_kept_day {
                break;
            }
            self.tax_totals_by_day.pop_first();
            self.tax_totals.remove(&key);
        }
    }

    /// When a closed outcome recorded in this block is forgotten.
    fn closed_forget_at(&self) -> u64 {
        self.block.time_ms.saturating_add(self.validity_window_ms)
    }

    fn close(&mut self, id: u128, outcome: Closed) {
        if self.closed.insert(id, outcome).is_none() {
            self.closed_by_expiry.insert((self.closed_forget_at(), id));
        }
        self.journal(Undo::ClosedInserted(id));
        let (tag, a, b) = outcome.words();
        let mut bytes = [0u8; 41];
        bytes[0] = tag;
        bytes[1..17].copy_from_slice(&id.to_le_bytes());
        bytes[17..33].copy_from_slice(&a.to_le_bytes());
        bytes[33..41].copy_from_slice(&b.to_le_bytes());
        self.note(&bytes);
    }

    /// Remembers an account's state before a change, when inside a linked chain.
    fn touch(&mut self, account: usize) {
        self.account_tree.mark(account);
        if self.chain.is_some() {
            let before = self.accounts[account].clone();
            self.journal(Undo::Account(account, before));
        }
    }

    fn journal(&mut self, undo: Undo) {
        if let Some(chain) = &mut self.chain {
            chain.undo.push(undo);
        }
    }

    /// Business day of a block time: with a calendar, the date (days since 1970-01-01) of
    /// the first end of day after it; without one, days counted from the first cut-off.
    pub fn business_day(&self, time_ms: u64) -> u64 {
        match &self.calendar {
            Some(calendar) => calendar.day_of(time_ms),
            None => time_ms.saturating_sub(self.day_cutoff_ms) / DAY_MS,
        }
    }

    /// The end of the business day of `time_ms`: the first end of day (cut-off) after it.
    pub fn end_of_day_ms(&self, time_ms: u64) -> u64 {
        match &self.calendar {
            Some(calendar) => calendar.end_of_day_at(calendar.day_of(time_ms)),
            None => (self.business_day(time_ms) + 1) * DAY_MS + self.day_cutoff_ms,
        }
    }

    fn check_and_apply(&mut self, tx: &TxRecord) -> ResultCode {
        if let Err(error) = tx.validate() {
            return error.into();
        }
        let valid_until = tx.valid_until();
        if valid_until < self.block.time_ms {
            return ResultCode::Expired;
        }
        if valid_until - self.block.time_ms > self.validity_window_ms {
            return ResultCode::ValidUntilBeyondWindow;
        }
        if self.id_in_use(tx.id()) {
            return ResultCode::DuplicateId;
        }
        self.apply(tx, false)
    }

    /// Applies a record whose format, validity and id were checked: as it arrives in its
    /// block, or (`at_opening`) as a warehoused payment at its value date's opening.
    fn apply(&mut self, tx: &TxRecord, at_opening: bool) -> ResultCode {
        let kind = tx.kind().expect("validated above");
        if kind == TxKind::ValidatorVote {
            if tx.ledger() != self.ledger {
                return ResultCode::LedgerMismatch;
            }
            return self.validator_vote(tx);
        }
        if kind.is_lifecycle() {
            return self.lifecycle(tx, kind).unwrap_or_else(|code| code);
        }
        let Some(debit) = self.index.get(tx.debit_account()) else {
            return ResultCode::UnknownDebitAccount;
        };
        let credit = if kind.has_no_credit_account() {
            None
        } else {
            match self.index.get(tx.credit_account()) {
                Some(credit) => Some(credit),
                None => return ResultCode::UnknownCreditAccount,
            }
        };
        if tx.ledger() != self.ledger {
            return ResultCode::LedgerMismatch;
        }
        let Ok(amount) = i64::try_from(tx.amount()) else {
            return ResultCode::Overflow;
        };
        if self.accounts[debit].closed || credit.is_some_and(|c| self.accounts[c].closed) {
            return ResultCode::AccountClosed;
        }
        let debit_role = self.accounts[debit].role;
        let credit_role = credit.map(|c| self.accounts[c].role);
        if debit_role == Role::Observer || credit_role == Some(Role::Observer) {
            return ResultCode::ObserverReadOnly;
        }
        if let (false, true, Some(credit)) =
            (at_opening, tx.flags().has(TxFlags::WAREHOUSED), credit)
        {
            match self.warehouse_arrival(tx, kind, debit, credit) {
                Err(code) => return code,
                Ok(warehouse::Arrival::Warehouse) => return self.warehouse_keep(tx),
                Ok(warehouse::Arrival::SettleNow) => {}
            }
        }
        if let Some(class) = self.payment_class(tx, kind, debit, credit) {
            if let Err(code) = self.check_window(class) {
                return code;
            }
        }
        let result = match (kind, credit) {
            (TxKind::Transfer, Some(credit)) => {
                let flags = tx.flags();
                if flags.has(TxFlags::PENDING) {
                    self.create_pending(tx, debit, credit, amount)
                } else if flags.has(TxFlags::POST_PENDING) {
                    self.post_pending(tx, debit, credit, amount)
                } else if flags.has(TxFlags::VOID_PENDING) {
                    self.void_pending(tx, debit, credit, amount)
                } else {
                    self.transfer(tx, debit, credit, amount)
                }
            }
            (TxKind::TaxedPayment, Some(credit)) => self.taxed_payment(tx, debit, credit, amount),
            (TxKind::Refund, Some(credit)) => self.refund(tx, debit, credit, amount),
            (TxKind::Pledge | TxKind::Redeem, Some(credit)) => {
                self.central_bank_money(tx, kind, debit, credit, amount)
            }
            (TxKind::Suspend | TxKind::Reinstate, Some(credit)) => {
                self.suspension(tx, kind, debit, credit)
            }
            (TxKind::SetTaxRate, None) => self.set_tax_rate(tx, debit),
            (TxKind::RevokeCertificate, None) => self.revoke_certificate(tx, debit),
            (kind, None) if kind.is_queue_operation() => self.queue_operation(tx, kind, debit),
            _ => unreachable!("validate() ties the credit account to the kind"),
        };
        match result {
            Ok(code) => code,
            Err(code) => code,
        }
    }

    /// A validator's vote on a change of the next epoch's set (kind 13). The signer is the
    /// voter: it must be a validator of the current epoch. Never part of a linked chain (the
    /// kind allows no flags), so it needs no undo.
    fn validator_vote(&mut self, tx: &TxRecord) -> ResultCode {
        use crate::consensus::validators::ChangeVoteOutcome;
        let subject = tx.validator_subject();
        let change = if tx.category() == crate::tx::VALIDATOR_CHANGE_ADD {
            ValidatorChange::Add(subject)
        } else {
            ValidatorChange::Remove(subject)
        };
        match self.schedule.vote(&tx.public_key, change) {
            Ok(ChangeVoteOutcome::Counted { .. } | ChangeVoteOutcome::Adopted) => ResultCode::Ok,
            Ok(ChangeVoteOutcome::Duplicate) => ResultCode::ValidatorVoteAlreadyCounted,
            Err(ScheduleError::NotAValidator { .. }) => ResultCode::NotAValidator,
            Err(ScheduleError::AlreadyMember { .. }) => ResultCode::ValidatorAlreadyMember,
            Err(ScheduleError::NotMember { .. }) => ResultCode::ValidatorNotMember,
            Err(ScheduleError::WouldEmpty { .. }) => ResultCode::ValidatorSetWouldEmpty,
            Err(ScheduleError::SetFull { .. }) => ResultCode::ValidatorSetFull,
            Err(ScheduleError::InvalidKey { .. }) => ResultCode::InvalidValidatorKey,
            Err(ScheduleError::TooManyPending { .. }) => ResultCode::ValidatorChangesFull,
            Err(
                ScheduleError::ZeroEpochLength
                | ScheduleError::OtherEpoch { .. }
                | ScheduleError::InvalidNextSet(_),
            ) => unreachable!("a vote never returns these"),
        }
    }

    /// The central bank revokes a network certificate (kind 14): signed with the key of its
    /// issuance account, which is the debit account.
    fn revoke_certificate(
        &mut self,
        tx: &TxRecord,
        debit: usize,
    ) -> Result<ResultCode, ResultCode> {
        if tx.public_key != self.accounts[self.central_bank_index].owner {
            return Err(ResultCode::NotCentralBank);
        }
        if debit != self.central_bank_index {
            return Err(ResultCode::NotPermitted);
        }
        let serial = tx.revoked_serial();
        if self.revoked.contains(&serial) {
            return Err(ResultCode::CertificateAlreadyRevoked);
        }
        if self.revoked.len() >= REVOKED_SERIALS_MAX {
            return Err(ResultCode::RevocationListFull);
        }
        self.revoked_put(serial.clone());
        self.journal(Undo::Revoked(serial.clone()));
        self.revoked_in_block.push(serial);
        Ok(ResultCode::Ok)
    }

    /// The rules for a payment from `debit` to `credit` signed by `tx.public_key`.
    fn check_parties(
        &self,
        tx: &TxRecord,
        debit: usize,
        credit: usize,
        check_suspension: bool,
    ) -> Result<(), ResultCode> {
        let (payer, payee) = (&self.accounts[debit], &self.accounts[credit]);
        if payer.role == Role::CentralBank || payee.role == Role::CentralBank {
            return Err(ResultCode::NotPermitted);
        }
        if payee.role == Role::TaxSubAccount {
            return Err(ResultCode::NotPermitted);
        }
        if payer.role == Role::TaxSubAccount {
            // a sweep: only by the tax authority's key, only to the tax authority
            if tx.public_key != self.accounts[self.tax_authority_index].owner {
                return Err(ResultCode::NotOwner);
            }
            if credit != self.tax_authority_index {
                return Err(ResultCode::NotPermitted);
            }
        } else if tx.public_key != payer.owner {
            return Err(ResultCode::NotOwner);
        }
        if check_suspension {
            if payer.suspended {
                return Err(ResultCode::DebitAccountSuspended);
            }
            if payee.suspended {
                return Err(ResultCode::CreditAccountSuspended);
            }
        }
        Ok(())
    }

    /// Refuses a credit that would take an account above its balance maximum.
    fn check_credit_room(&self, account: usize, credit: i64) -> Result<(), ResultCode> {
        let account = &self.accounts[account];
        match account.balance_max {
            Some(max) if i128::from(account.balance) + i128::from(credit) > i128::from(max) => {
                Err(ResultCode::BalanceLimitExceeded)
            }
            _ => Ok(()),
        }
    }

    fn check_available(&self, account: usize, amount: i64) -> Result<(), ResultCode> {
        let account = &self.accounts[account];
        if account.role != Role::CentralBank && account.available() < i128::from(amount) {
            return Err(ResultCode::InsufficientFunds);
        }
        Ok(())
    }

    /// Applies movements (account, delta) that add up to zero, folding repeated accounts,
    /// all or nothing.
    fn apply_movements(&mut self, movements: &[(usize, i64)]) -> Result<(), ResultCode> {
        let mut updated: [(usize, i64); 3] = [(usize::MAX, 0); 3];
        let mut updated_count = 0;
        debug_assert!(movements.len() <= 3);
        for &(account, delta) in movements {
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
                return Err(ResultCode::Overflow);
            };
            updated[slot].1 = balance;
        }
        for &(account, balance) in &updated[..updated_count] {
            self.touch(account);
            self.set_balance(account, balance);
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        tx: &TxRecord,
        debit: usize,
        credit: usize,
        amount: i64,
    ) -> Result<ResultCode, ResultCode> {
        self.check_parties(tx, debit, credit, true)?;
        self.check_credit_room(credit, amount)?;
        let rtgs = self.accounts[debit].role == Role::Bank
            && self.accounts[credit].role == Role::Bank
            && self.chain.is_none();
        if rtgs {
            let urgent = tx.flags().has(TxFlags::URGENT);
            if self.queue_blocks(self.accounts[debit].id, urgent)
                || self.accounts[debit].available() < i128::from(amount)
            {
                return self.enqueue(tx, debit, credit, amount, urgent);
            }
        } else {
            self.check_available(debit, amount)?;
        }
        self.apply_movements(&[(debit, -amount), (credit, amount)])?;
        Ok(ResultCode::Ok)
    }

    fn central_bank_money(
        &mut self,
        tx: &TxRecord,
        kind: TxKind,
        debit: usize,
        credit: usize,
        amount: i64,
    ) -> Result<ResultCode, ResultCode> {
        if tx.public_key != self.accounts[self.central_bank_index].owner {
            return Err(ResultCode::NotCentralBank);
        }
        let (debit_role, credit_role) = (self.accounts[debit].role, self.accounts[credit].role);
        let shape_ok = match kind {
            TxKind::Pledge => debit_role == Role::CentralBank && credit_role == Role::Bank,
            _ => debit_role == Role::Bank && credit_role == Role::CentralBank,
        };
        if !shape_ok {
            return Err(ResultCode::NotPermitted);
        }
        if kind == TxKind::Pledge {
            if self.accounts[credit].suspended {
                return Err(ResultCode::CreditAccountSuspended);
            }
        } else {
            // burn only reserves the bank holds: no overdraft, nothing reserved
            let bank = &self.accounts[debit];
            if i128::from(bank.balance) - i128::from(bank.debits_pending) < i128::from(amount) {
                return Err(ResultCode::InsufficientFunds);
            }
        }
        self.apply_movements(&[(debit, -amount), (credit, amount)])?;
        Ok(ResultCode::Ok)
    }

    fn suspension(
        &mut self,
        tx: &TxRecord,
        kind: TxKind,
        debit: usize,
        target: usize,
    ) -> Result<ResultCode, ResultCode> {
        if tx.public_key != self.accounts[self.central_bank_index].owner {
            return Err(ResultCode::NotCentralBank);
        }
        if debit != self.central_bank_index {
            return Err(ResultCode::NotPermitted);
        }
        let suspend = kind == TxKind::Suspend;
        match (suspend, self.accounts[target].suspended) {
            (true, true) => return Err(ResultCode::AlreadySuspended),
            (false, false) => return Err(ResultCode::NotSuspended),
            _ => {}
        }
        self.touch(target);
        self.accounts[target].suspended = suspend;
        Ok(ResultCode::Ok)
    }

    fn create_pending(
        &mut self,
        tx: &TxRecord,
        debit: usize,
        credit: usize,
        amount: i64,
    ) -> Result<ResultCode, ResultCode> {
        self.check_parties(tx, debit, credit, true)?;
        self.check_available(debit, amount)?;
        if self.pending.len() >= PENDING_TRANSFERS_MAX {
            return Err(ResultCode::PendingTransfersFull);
        }
        let (Some(debits), Some(credits)) = (
            self.accounts[debit].debits_pending.checked_add(amount),
            self.accounts[credit].credits_pending.checked_add(amount),
        ) else {
            return Err(ResultCode::Overflow);
        };
        let timeout_s = tx.reserved_a();
        let expires_at_ms = if timeout_s == 0 {
            0
        } else {
            self.block.time_ms + u64::from(timeout_s) * 1_000
        };
        self.touch(debit);
        self.touch(credit);
        self.accounts[debit].debits_pending = debits;
        self.accounts[credit].credits_pending = credits;
        let id = tx.id();
        self.pending_put(
            id,
            Pending {
                debit,
                credit,
                amount,
                expires_at_ms,
                created_height: self.block.height,
            },
        );
        self.journal(Undo::PendingInserted(id));
        if expires_at_ms != 0 {
            self.pending_earliest_expiry_ms = self.pending_earliest_expiry_ms.min(expires_at_ms);
        }
        Ok(ResultCode::Ok)
    }

    /// The open reservation `related_id`, or why there is none.
    fn find_pending(&self, related: u128) -> Result<Pending, ResultCode> {
        if let Some(pending) = self.pending.get(&related) {
            if pending.expires_at_ms != 0 && self.block.time_ms >= pending.expires_at_ms {
                return Err(ResultCode::PendingTransferExpired);
            }
            return Ok(*pending);
        }
        Err(match self.closed.get(&related) {
            Some(Closed::Posted { .. }) => ResultCode::PendingTransferAlreadyPosted,
            Some(Closed::Voided { .. }) => ResultCode::PendingTransferAlreadyVoided,
            Some(Closed::PendingExpired { .. }) => ResultCode::PendingTransferExpired,
            _ => ResultCode::PendingTransferNotFound,
        })
    }

    fn release_pending(&mut self, id: u128, pending: &Pending) {
        self.touch(pending.debit);
        self.touch(pending.credit);
        self.accounts[pending.debit].debits_pending -= pending.amount;
        self.accounts[pending.credit].credits_pending -= pending.amount;
        self.pending_take(id);
        self.journal(Undo::PendingRemoved(id, *pending));
    }

    fn post_pending(
        &mut self,
        tx: &TxRecord,
        debit: usize,
        credit: usize,
        amount: i64,
    ) -> Result<ResultCode, ResultCode> {
        let related = tx.related_id();
        let pending = self.find_pending(related)?;
        if pending.debit != debit || pending.credit != credit {
            return Err(ResultCode::PendingAccountsMismatch);
        }
        self.check_parties(tx, debit, credit, true)?;
        if amount > pending.amount {
            return Err(ResultCode::PendingAmountExceeded);
        }
        self.check_credit_room(credit, amount)?;
        // the reservation guaranteed the funds: release it and move what is posted
        let debit_balance = self.accounts[debit].balance.checked_sub(amount);
        let credit_balance = self.accounts[credit].balance.checked_add(amount);
        if debit_balance.is_none() || credit_balance.is_none() {
            return Err(ResultCode::Overflow);
        }
        self.release_pending(related, &pending);
        self.apply_movements(&[(debit, -amount), (credit, amount)])?;
        self.close(
            related,
            Closed::Posted {
                by: tx.id(),
                amount: amount as u64,
            },
        );
        Ok(ResultCode::Ok)
    }

    fn void_pending(
        &mut self,
        tx: &TxRecord,
        debit: usize,
        credit: usize,
        amount: i64,
    ) -> Result<ResultCode, ResultCode> {
        let related = tx.related_id();
        let pending = self.find_pending(related)?;
        if pending.debit != debit || pending.credit != credit {
            return Err(ResultCode::PendingAccountsMismatch);
        }
        self.check_parties(tx, debit, credit, false)?;
        if amount != pending.amount {
            return Err(ResultCode::PendingAmountMismatch);
        }
        self.release_pending(related, &pending);
        self.close(related, Closed::Voided { by: tx.id() });
        Ok(ResultCode::Ok)
    }

    fn expire_pending(&mut self) {
        let now = self.block.time_ms;
        if now < self.pending_earliest_expiry_ms {
            return;
        }
        let expired: Vec<(u128, Pending)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.expires_at_ms != 0 && p.expires_at_ms <= now)
            .map(|(id, p)| (*id, *p))
            .collect();
        for (id, pending) in expired {
            self.release_pending(id, &pending);
            self.close(
                id,
                Closed::PendingExpired {
                    height: self.block.height,
                },
            );
            self.events.push(SettlementEvent::PendingExpired {
                id,
                debit: self.accounts[pending.debit].id,
                credit: self.accounts[pending.credit].id,
                amount: pending.amount as u64,
            });
        }
        self.pending_earliest_expiry_ms = self
            .pending
            .values()
            .filter(|p| p.expires_at_ms != 0)
            .map(|p| p.expires_at_ms)
            .min()
            .unwrap_or(u64::MAX);
    }

    /// Undoes every change of a linked chain.
    fn undo(&mut self, chain: Chain) {
        for undo in chain.undo.into_iter().rev() {
            match undo {
                Undo::Account(index, before) => {
                    self.accounts[index] = before;
                    self.account_tree.mark(index);
                }
                Undo::UsedId(id, valid_until) => {
                    self.used_ids.remove(&id);
                    self.used_ids_by_expiry.remove(&(valid_until, id));
                }
                Undo::PendingInserted(id) => {
                    self.pending_take(id);
                }
                Undo::PendingRemoved(id, pending) => {
                    self.pending_put(id, pending);
                }
                Undo::ClosedInserted(id) => {
                    if self.closed.remove(&id).is_some() {
                        let forget_at = self.closed_forget_at();
                        self.closed_by_expiry.remove(&(forget_at, id));
                    }
                }
                Undo::TaxPaymentInserted(id) => {
                    if let Some(payment) = self.tax_payments.remove(&id) {
                        let forget_at = payment.time_ms.saturating_add(self.refund_window_ms);
                        self.tax_payments_by_expiry.remove(&(forget_at, id));
                    }
                }
                Undo::TaxPaymentUpdated(id, before) => {
                    self.tax_payments.insert(id, before);
                }
                Undo::TaxTotals(key, before) => match before {
                    Some(totals) => {
                        self.tax_totals.insert(key, totals);
                    }
                    None => {
                        self.tax_totals.remove(&key);
                        self.tax_totals_by_day.remove(&(key.1, key));
                    }
                },
                Undo::TaxRate(key, before) => match before {
                    Some(rate) => {
                        self.tax_rate_put(key, rate);
                    }
                    None => {
                        self.tax_rate_take(key);
                    }
                },
                Undo::Revoked(serial) => {
                    self.revoked_take(&serial);
                    self.revoked_in_block.retain(|s| *s != serial);
                }
                Undo::Warehouse(key, before) => match before {
                    Some(payment) => {
                        self.warehouse_index.insert(payment.record.id(), key);
                        self.warehouse_put(key, payment);
                    }
                    None => {
                        if let Some(payment) = self.warehouse_take(key) {
                            self.warehouse_index.remove(&payment.record.id());
                        }
                    }
                },
                Undo::Queue(key, before) => match before {
                    Some(queued) => {
                        self.queue_index.insert(queued.id, key);
                        self.queue_put(key, queued);
                    }
                    None => {
                        if let Some(queued) = self.queue_take(key) {
                            self.queue_index.remove(&queued.id);
                        }
                    }
                },
            }
        }
        self.used_ids_digest = chain.used_ids_digest;
        self.history_digest = chain.history_digest;
    }

    /// Root of the state: the Merkle root of the account leaves (the genesis's accounts
    /// sorted by id, then those opened since in the order they were opened) joined with the
    /// digest of everything else.
    ///
    /// Account leaf (104 bytes, little-endian): id (0..8), balance (8..16), role (16),
    /// suspended (17), closed (18), zero (19..24), overdraft_max (24..32), balance_max or
    /// `u64::MAX` (32..40), debits_pending (40..48), credits_pending (48..56), tax
    /// sub-account or 0 (56..64), holding bank or 0 (64..72), owner key (72..104). The other digest is BLAKE3 over a domain tag, the accepted-id digest, the
    /// history digest, the arrival counter, then for the queues, the open reservations and
    /// the tax-rate table each its length (u64) and its set digest, the validator schedule
    /// (length-prefixed `ValidatorSchedule::encode` bytes), and the revocation list's length
    /// and set digest. A set digest ([`set_hash`], LtHash16) is the BLAKE3 of the lane-wise
    /// sum of the table's elements: a queued payment's 66-byte encoding (which holds its
    /// queue key), a reservation's id, accounts, amount, time-out and height, a rate's
    /// (category, effective-from, rate, basis and rounding codes, sub-account flag), a
    /// serial's length and bytes. The domain tag is [`STATE_ROOT_TAG`].
    ///
    /// The accounts' tree is kept between calls and updated for the accounts changed since
    /// the last call (O(changed x log n)), and the set digests follow each insertion and
    /// removal (constant time each), so a block's root costs what the block changed, not
    /// what the state holds; [`Ledger::state_root_from_scratch`] rehashes every account and
    /// every element and gives the same root.
    pub fn state_root(&self) -> Hash {
        let accounts_root =
            self.account_tree
                .root(self.accounts.len(), ACCOUNT_LEAF_BYTES, |index, leaf| {
                    account_leaf(&self.accounts[index], leaf)
                });
        self.root_with_accounts(&accounts_root, &self.digests)
    }

    /// Builds the accounts' tree from every account, on every core, if it is not built yet
    /// (a node does this at start, so that its first block's [`Ledger::state_root`] costs
    /// what that block changed, not a hash of every account).
    pub fn build_state_tree(&self) {
        self.account_tree
            .build(self.accounts.len(), ACCOUNT_LEAF_BYTES, |index, leaf| {
                account_leaf(&self.accounts[index], leaf)
            });
    }

    /// [`Ledger::state_root`] computed from every account leaf, without the kept tree (for
    /// tests and benchmarks).
    pub fn state_root_from_scratch(&self) -> Hash {
        let mut leaves = vec![0u8; self.accounts.len() * ACCOUNT_LEAF_BYTES];
        for (leaf, account) in leaves
            .chunks_exact_mut(ACCOUNT_LEAF_BYTES)
            .zip(&self.accounts)
        {
            account_leaf(account, leaf);
        }
        self.root_with_accounts(
            &merkle::root(&leaves, ACCOUNT_LEAF_BYTES),
            &self.table_digests_from_scratch(),
        )
    }

    fn root_with_accounts(&self, accounts_root: &Hash, digests: &TableDigests) -> Hash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(STATE_ROOT_TAG);
        hasher.update(&self.used_ids_digest);
        hasher.update(&self.history_digest);
        hasher.update(&self.next_seq.to_le_bytes());
        hasher.update(&(self.queue.len() as u64).to_le_bytes());
        hasher.update(&digests.queue.digest());
        hasher.update(&(self.pending.len() as u64).to_le_bytes());
        hasher.update(&digests.pending.digest());
        hasher.update(&(self.tax_rates.len() as u64).to_le_bytes());
        hasher.update(&digests.tax_rates.digest());
        // The schedule is bounded by the validator set (its keys, votes and reputation):
        // hashed whole, at a cost that does not grow with the ledger.
        let mut schedule = Vec::new();
        self.schedule.encode(&mut schedule);
        hasher.update(&(schedule.len() as u64).to_le_bytes());
        hasher.update(&schedule);
        hasher.update(&(self.revoked.len() as u64).to_le_bytes());
        hasher.update(&digests.revoked.digest());
        hasher.update(&(self.warehouse.len() as u64).to_le_bytes());
        hasher.update(&digests.warehouse.digest());
        let rest: Hash = *hasher.finalize().as_bytes();
        merkle::node_hash(accounts_root, &rest)
    }

    /// The set digests of the tables computed from every element (genesis, restore, and
    /// [`Ledger::state_root_from_scratch`]).
    fn table_digests_from_scratch(&self) -> TableDigests {
        let mut digests = TableDigests::empty();
        for queued in self.queue.values() {
            digests.queue.insert(&queued.encode());
        }
        for (id, pending) in &self.pending {
            digests.pending.insert(&self.pending_element(*id, pending));
        }
        for (key, rate) in &self.tax_rates {
            digests.tax_rates.insert(&tax_rate_element(key, rate));
        }
        for serial in &self.revoked {
            digests.revoked.insert(&revoked_element(serial));
        }
        for payment in self.warehouse.values() {
            digests.warehouse.insert(&payment.encode());
        }
        digests
    }

    /// An open reservation's element of its set digest (56 bytes, little-endian): id,
    /// debit and credit account ids, amount, time-out, height created.
    fn pending_element(&self, id: u128, pending: &Pending) -> [u8; 56] {
        let mut out = [0u8; 56];
        out[0..16].copy_from_slice(&id.to_le_bytes());
        out[16..24].copy_from_slice(&self.accounts[pending.debit].id.to_le_bytes());
        out[24..32].copy_from_slice(&self.accounts[pending.credit].id.to_le_bytes());
        out[32..40].copy_from_slice(&pending.amount.to_le_bytes());
        out[40..48].copy_from_slice(&pending.expires_at_ms.to_le_bytes());
        out[48..56].copy_from_slice(&pending.created_height.to_le_bytes());
        out
    }

    // The only places that change the queue, the reservations, the tax-rate table and the
    // revocation list: each keeps its table's set digest.

    fn queue_put(&mut self, key: QueueKey, queued: QueuedPayment) {
        if let Some(before) = self.queue.insert(key, queued) {
            self.digests.queue.remove(&before.encode());
        }
        self.digests.queue.insert(&queued.encode());
    }

    fn queue_take(&mut self, key: QueueKey) -> Option<QueuedPayment> {
        let queued = self.queue.remove(&key)?;
        self.digests.queue.remove(&queued.encode());
        Some(queued)
    }

    fn pending_put(&mut self, id: u128, pending: Pending) {
        if let Some(before) = self.pending.insert(id, pending) {
            let element = self.pending_element(id, &before);
            self.digests.pending.remove(&element);
        }
        let element = self.pending_element(id, &pending);
        self.digests.pending.insert(&element);
    }

    fn pending_take(&mut self, id: u128) -> Option<Pending> {
        let pending = self.pending.remove(&id)?;
        let element = self.pending_element(id, &pending);
        self.digests.pending.remove(&element);
        Some(pending)
    }

    fn tax_rate_put(&mut self, key: (u32, u64), rate: TaxRate) {
        if let Some(before) = self.tax_rates.insert(key, rate) {
            self.digests
                .tax_rates
                .remove(&tax_rate_element(&key, &before));
        }
        self.digests
            .tax_rates
            .insert(&tax_rate_element(&key, &rate));
    }

    fn tax_rate_take(&mut self, key: (u32, u64)) -> Option<TaxRate> {
        let rate = self.tax_rates.remove(&key)?;
        self.digests
            .tax_rates
            .remove(&tax_rate_element(&key, &rate));
        Some(rate)
    }

    fn warehouse_put(&mut self, key: WarehouseKey, payment: WarehousedPayment) {
        if let Some(before) = self.warehouse.insert(key, payment) {
            self.digests.warehouse.remove(&before.encode());
        }
        self.digests.warehouse.insert(&payment.encode());
    }

    fn warehouse_take(&mut self, key: WarehouseKey) -> Option<WarehousedPayment> {
        let payment = self.warehouse.remove(&key)?;
        self.digests.warehouse.remove(&payment.encode());
        Some(payment)
    }

    fn revoked_put(&mut self, serial: Vec<u8>) {
        let element = revoked_element(&serial);
        if self.revoked.insert(serial) {
            self.digests.revoked.insert(&element);
        }
    }

    fn revoked_take(&mut self, serial: &[u8]) {
        if self.revoked.remove(serial) {
            self.digests.revoked.remove(&revoked_element(serial));
        }
    }

    /// The validator schedule: the set in force for the next block's height (the current
    /// epoch's), the next epoch's keys so far and the pending votes.
    pub fn validator_schedule(&self) -> &ValidatorSchedule {
        &self.schedule
    }

    /// The revocation list: serial numbers (canonical bytes) of revoked certificates.
    pub fn revoked_serials(&self) -> &BTreeSet<Vec<u8>> {
        &self.revoked
    }

    /// Whether the certificate with this serial number (canonical bytes) is revoked.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revoked.contains(serial)
    }

    /// The serials the current (or last executed) block revoked, in block order.
    pub fn block_revocations(&self) -> &[Vec<u8>] {
        &self.revoked_in_block
    }

    /// What the current (or last executed) block's lifecycle records changed of who acts
    /// for an account, in block order.
    pub fn block_access_changes(&self) -> &[AccessChange] {
        &self.access_changes
    }

    /// Balance of an account, if it exists.
    pub fn balance(&self, account: u64) -> Option<i64> {
        self.index.get(account).map(|i| self.accounts[i].balance)
    }

    /// An account, if it exists.
    pub fn account(&self, account: u64) -> Option<&Account> {
        self.index.get(account).map(|i| &self.accounts[i])
    }

    /// Every account: the genesis's sorted by id, then those opened since in the order they
    /// were opened (closed ones included, marked).
    pub fn accounts(&self) -> &CowVec<Account> {
        &self.accounts
    }

    /// Sum of every balance, issuance included: constant from genesis on. Kept at every
    /// balance write, O(1); [`Ledger::recount_balances`] adds every account up.
    pub fn sum_of_balances(&self) -> i128 {
        self.balance_sum
    }

    /// Sum of every balance, added up account by account (O(accounts): for checks of
    /// [`Ledger::sum_of_balances`] and of restored snapshots).
    pub fn recount_balances(&self) -> i128 {
        self.accounts.iter().map(|a| i128::from(a.balance)).sum()
    }

    /// The sum of balances at genesis.
    pub fn genesis_total(&self) -> i128 {
        self.total_balance
    }

    /// Money in circulation: every balance but the central bank's issuance account.
    pub fn money_in_circulation(&self) -> i128 {
        self.sum_of_balances() - i128::from(self.accounts[self.central_bank_index].balance)
    }

    /// Whether `id` has settled (in its own block, from a queue, or as a post of a pending
    /// transfer) and its record is still valid (the ledger holds ids for one validity
    /// window; the history index answers for older ones), or it was warehoused and settled
    /// at its value date's opening (for one validity window after). A queued, pending,
    /// warehoused, cancelled, expired or voided transaction has not.
    pub fn is_settled(&self, id: u128) -> bool {
        let settled_at_opening =
            matches!(self.closed.get(&id), Some(Closed::SettledAtOpening { .. }));
        settled_at_opening
            || (self.used_ids.contains_key(&id)
                && !self.queue_index.contains_key(&id)
                && !self.pending.contains_key(&id)
                && !self.warehouse_index.contains_key(&id)
                && matches!(
                    self.closed.get(&id),
                    None | Some(Closed::SettledFromQueue { .. })
                ))
    }

    /// Whether `id` names a transaction the ledger still holds: an accepted record that is
    /// still valid, an open reservation, a queued payment, a refundable taxed payment or a
    /// closed outcome it still remembers. A record with such an id is refused as a
    /// duplicate.
    pub fn is_accepted(&self, id: u128) -> bool {
        self.id_in_use(id)
    }

    fn id_in_use(&self, id: u128) -> bool {
        self.used_ids.contains_key(&id)
            || self.pending.contains_key(&id)
            || self.queue_index.contains_key(&id)
            || self.warehouse_index.contains_key(&id)
            || self.tax_payments.contains_key(&id)
            || self.refunds_closed.contains_key(&id)
            || self.closed.contains_key(&id)
    }

    /// Count of accepted transactions whose records are still valid (the ids held against
    /// duplicates: at most one validity window of them).
    pub fn settled_count(&self) -> usize {
        self.used_ids.len()
    }

    /// The genesis's validity window (ms).
    pub fn validity_window_ms(&self) -> u64 {
        self.validity_window_ms
    }

    /// Sizes of the ledger's per-transaction structures: (valid ids held, closed outcomes
    /// held, taxed payments held, open reservations, queued payments, ids of taxed payments
    /// whose refund window closed, tax-total rows). Each is bounded by what one window (the
    /// validity window, the refund window, or the limits) admits.
    pub fn retained_counts(&self) -> [usize; 7] {
        [
            self.used_ids.len(),
            self.closed.len(),
            self.tax_payments.len(),
            self.pending.len(),
            self.queue.len(),
            self.refunds_closed.len(),
            self.tax_totals.len(),
        ]
    }

    /// The genesis's refund window (ms).
    pub fn refund_window_ms(&self) -> u64 {
        self.refund_window_ms
    }

    /// Every registered owner key (for the verifier's key cache).
    pub fn owner_keys(&self) -> Vec<[u8; 32]> {
        let mut keys: Vec<[u8; 32]> = self.accounts.iter().map(|a| a.owner).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The central bank's issuance account.
    pub fn central_bank(&self) -> u64 {
        self.central_bank
    }

    /// The tax authority's account.
    pub fn tax_authority(&self) -> u64 {
        self.tax_authority
    }

    /// The ledger's time: the largest block timestamp seen (ms).
    pub fn time_ms(&self) -> u64 {
        self.block.time_ms
    }

    /// Height of the last block begun.
    pub fn height(&self) -> u64 {
        self.block.height
    }

    /// What happened outside the records of the last block (queue settlements, expiries).
    pub fn last_block_events(&self) -> &[SettlementEvent] {
        &self.events
    }

    /// The payer, payee and amount of a queued or warehoused payment cancelled in the last
    /// block.
    pub fn cancelled_in_last_block(&self, id: u128) -> Option<(u64, u64, u64)> {
        self.cancelled_in_block.get(&id).copied()
    }

    /// The business days the last block's time ended, with their tax-total rows, which never
    /// change again (for the tax-day journal); `None` when the block is in the same business
    /// day as the block before it.
    pub fn last_block_finished_tax_days(&self) -> Option<&FinishedTaxDays> {
        self.finished_tax_days.as_ref()
    }
}
