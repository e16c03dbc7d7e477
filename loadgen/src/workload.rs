//! Workloads: streams of signed transactions over a [`Population`].

use crate::population::{
    Custody, Population, PopulationSpec, CENTRAL_BANK_ID, INVOICE_CATEGORY, RETAIL_CATEGORY,
    TAX_AUTHORITY_ID, ZERO_RATED_CATEGORY,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use std::collections::{HashMap, VecDeque};
use tally_protocol::tax::{tax_on, Rounding, TaxBasis};
use tally_protocol::tx::{TxFields, TxFlags, TxKind, TxRecord};

/// Shares of each kind of transaction, in percent of the whole; the rest are consumer to
/// consumer transfers.
#[derive(Clone, Copy, Debug)]
pub struct TransferMix {
    /// Taxed payments: consumers paying merchants tax-inclusive retail prices, and (a share
    /// of them, `invoice_pct`) merchants paying each other tax-exclusive invoices.
    pub taxed_payment_pct: u32,
    /// Of the taxed payments, the share in percent that are business invoices.
    pub invoice_pct: u32,
    /// Banks paying banks (large amounts).
    pub interbank_pct: u32,
    /// Merchants refunding consumers.
    pub refund_pct: u32,
    /// Central-bank pledges and redeems (on the schedule that keeps banks liquid).
    pub central_bank_pct: u32,
    /// Money going back round: wages, supplier payments and bank fees from merchants, the
    /// tax authority's spending, banks paying out their fee income.
    pub circulation_pct: u32,
    /// Scale of interbank amounts (minor units; amounts are heavy-tailed around it).
    pub interbank_amount_scale: u64,
    /// Share of interbank payments marked urgent, in percent.
    pub urgent_pct: u32,
    /// Share of interbank traffic that is a payer acting on one of its recent payments
    /// (hold, release, cancel, re-prioritise: effective while the payment is queued).
    pub queue_ops_pct: u32,
    /// Banks may pay beyond their reserves (payments queue until liquidity arrives): the
    /// squeeze of `ubin`. Otherwise every payer keeps a reserve.
    pub liquidity_squeeze: bool,
    /// Deliberately invalid transactions (bad signature, wrong signer, unknown account), so
    /// that the rejection paths run under load too.
    pub invalid_pct: u32,
    pub seed: u64,
    /// The plain-transfer workload instead of the mix above.
    pub plain: Option<PlainTransfers>,
}

/// The plain-transfer workload's shape (TigerBeetle's `benchmark`): accounts chosen
/// uniformly or by Zipf's law pay each other amounts of 1 to `amount_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainTransfers {
    pub distribution: Distribution,
    pub amount_max: u64,
}

impl Default for TransferMix {
    fn default() -> TransferMix {
        TransferMix {
            taxed_payment_pct: 60,
            invoice_pct: 20,
            interbank_pct: 10,
            refund_pct: 5,
            central_bank_pct: 2,
            circulation_pct: 8,
            interbank_amount_scale: 100_000_000,
            urgent_pct: 20,
            queue_ops_pct: 2,
            liquidity_squeeze: false,
            invalid_pct: 1,
            seed: 7,
            plain: None,
        }
    }
}

/// How many recent payments refunds and queue operations choose from.
const RECENT_MAX: usize = 1024;

/// Keeps `item` among the last [`RECENT_MAX`] (order does not matter: picks are random).
fn remember<T>(list: &mut Vec<T>, item: T) {
    if list.len() == RECENT_MAX {
        list.swap_remove(0);
    }
    list.push(item);
}

/// The named workloads of `tally loadgen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadName {
    /// Interbank RTGS payments as Project Ubin ran them: heavy-tailed amounts, a priority
    /// mix, and banks holding little liquidity beside their payments (a squeeze that drives
    /// queues and gridlock), with the central bank pledging and redeeming reserves.
    Ubin,
    /// Consumers paying merchants tax-inclusive retail prices, merchants paying each other
    /// tax-exclusive invoices, with refunds.
    Vat,
    /// Retail, taxed, interbank and central-bank traffic together.
    Mixed,
    /// Plain transfers between N accounts, all valid, shaped like TigerBeetle's `benchmark`
    /// (docs/BENCHMARKS.md names the matching flags).
    Transfer,
}

/// Accounts of the `transfer` workload unless told otherwise (TigerBeetle's default
/// `--account-count`).
pub const TRANSFER_ACCOUNTS_DEFAULT: usize = 10_000;

/// Opening balance of each account of the `transfer` workload (of up to a few million
/// accounts; [`transfer_opening_balance`]): no run moves it far (amounts are at most
/// [`TRANSFER_AMOUNT_MAX`]), so every transfer is valid.
pub const TRANSFER_OPENING_BALANCE: u64 = 1_000_000_000_000;

/// The opening balances of the `transfer` workload's accounts add up to at most this (half
/// of what a ledger holds), so that ten million accounts still open; each still pays tens of
/// millions of the largest transfer.
const TRANSFER_BALANCE_TOTAL_MAX: u64 = 1 << 62;

/// Opening balance of each of `accounts` accounts of the `transfer` workload.
pub fn transfer_opening_balance(accounts: usize) -> u64 {
    TRANSFER_OPENING_BALANCE.min(TRANSFER_BALANCE_TOTAL_MAX / (accounts.max(1) as u64))
}

/// Largest amount of the `transfer` workload.
pub const TRANSFER_AMOUNT_MAX: u64 = 1_000;

impl WorkloadName {
    pub const ALL: [WorkloadName; 4] = [
        WorkloadName::Ubin,
        WorkloadName::Vat,
        WorkloadName::Mixed,
        WorkloadName::Transfer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadName::Ubin => "ubin",
            WorkloadName::Vat => "vat",
            WorkloadName::Mixed => "mixed",
            WorkloadName::Transfer => "transfer",
        }
    }

    /// The least share of `ok` acknowledgements a run of the workload keeps over any
    /// length, with `invalid_pct` percent deliberately invalid: 98% of the valid ones, and
    /// for `ubin` less, for its liquidity squeeze (payments that queue, queue operations on
    /// payments that settled meanwhile).
    pub fn ok_share_min(self, invalid_pct: u32) -> f64 {
        let valid = 1.0 - f64::from(invalid_pct.min(100)) / 100.0;
        let kept = match self {
            WorkloadName::Ubin => UBIN_OK_SHARE_MIN,
            _ => 0.98,
        };
        valid * kept
    }

    /// The transaction mix; `invalid_pct` percent are deliberately invalid.
    pub fn mix(self, seed: u64, invalid_pct: u32) -> TransferMix {
        let base = TransferMix {
            invalid_pct,
            seed,
            ..TransferMix::default()
        };
        match self {
            WorkloadName::Ubin => TransferMix {
                taxed_payment_pct: 0,
                interbank_pct: 96,
                refund_pct: 0,
                central_bank_pct: 4,
                circulation_pct: 0,
                interbank_amount_scale: 200_000_000,
                urgent_pct: 15,
                queue_ops_pct: 4,
                liquidity_squeeze: true,
                ..base
            },
            WorkloadName::Vat => TransferMix {
                taxed_payment_pct: 80,
                interbank_pct: 0,
                refund_pct: 8,
                central_bank_pct: 0,
                circulation_pct: 12,
                ..base
            },
            // Banks hold ample reserves here: nothing queues, so no queue operations.
            WorkloadName::Mixed => TransferMix {
                queue_ops_pct: 0,
                ..base
            },
            WorkloadName::Transfer => TransferMix {
                taxed_payment_pct: 0,
                interbank_pct: 0,
                refund_pct: 0,
                central_bank_pct: 0,
                circulation_pct: 0,
                plain: Some(PlainTransfers {
                    distribution: Distribution::Uniform,
                    amount_max: TRANSFER_AMOUNT_MAX,
                }),
                ..base
            },
        }
    }

    /// The population the workload runs over (`banks` banks).
    pub fn population(self, seed: u64, banks: usize) -> PopulationSpec {
        let base = PopulationSpec {
            banks,
            seed,
            ..PopulationSpec::default()
        };
        match self {
            // Opening reserves of 25 times the typical payment: the heavy tail and the
            // random direction of flows leave some banks short, so payments wait for
            // liquidity.
            WorkloadName::Ubin => PopulationSpec {
                bank_opening_balance: 5_000_000_000,
                merchants: 0,
                consumers: 0,
                ..base
            },
            WorkloadName::Vat | WorkloadName::Mixed => base,
            WorkloadName::Transfer => {
                transfer_population(seed, banks, TRANSFER_ACCOUNTS_DEFAULT, Custody::Own)
            }
        }
    }
}

impl std::str::FromStr for WorkloadName {
    type Err = String;

    fn from_str(text: &str) -> Result<WorkloadName, String> {
        WorkloadName::ALL
            .into_iter()
            .find(|w| w.name() == text)
            .ok_or_else(|| {
                format!("unknown workload {text:?}: expected ubin, vat, mixed or transfer")
            })
    }
}

/// Least `ok` share of `ubin`'s valid transactions (its squeeze queues payments).
pub const UBIN_OK_SHARE_MIN: f64 = 0.70;

/// The population of the `transfer` workload: `accounts` accounts (consumers, each with its
/// own key or signed for by their bank, as `custody` says) opened with
/// [`transfer_opening_balance`], beside the banks that hold them.
pub fn transfer_population(
    seed: u64,
    banks: usize,
    accounts: usize,
    custody: Custody,
) -> PopulationSpec {
    PopulationSpec {
        banks,
        seed,
        merchants: 0,
        consumers: accounts,
        consumer_opening_balance: transfer_opening_balance(accounts),
        custody,
        ..PopulationSpec::default()
    }
}

/// Heavy-tailed amount in minor units: most payments are small, a few are large.
fn amount(rng: &mut ChaCha20Rng, scale: u64) -> u64 {
    amount_capped(rng, scale, 1000.0)
}

/// Pareto with shape 1.5 (mean 3x the scale), capped at `cap` times the scale.
fn amount_capped(rng: &mut ChaCha20Rng, scale: u64, cap: f64) -> u64 {
    let uniform: f64 = rng.random_range(0.0001..1.0);
    let factor = (1.0 / uniform.powf(1.0 / 1.5)).min(cap);
    ((scale as f64) * factor) as u64 + 1
}

/// Interbank amounts stop at this many times their scale: large enough to exceed a bank's
/// reserves (so payments queue and gridlock forms), small enough that offsetting and
/// incoming payments can release them within the day.
const INTERBANK_CAP: f64 = 40.0;

/// How the plain-transfer workload picks its accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Every account equally likely.
    Uniform,
    /// Zipf's law with exponent 1: the k-th account is chosen in proportion to 1/k, so a few
    /// hot accounts take most of the transfers (contention on their balances).
    Zipfian,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
        }
    }
}

impl std::str::FromStr for Distribution {
    type Err = String;

    fn from_str(text: &str) -> Result<Distribution, String> {
        match text {
            "uniform" => Ok(Distribution::Uniform),
            "zipfian" | "zipf" => Ok(Distribution::Zipfian),
            _ => Err(format!(
                "unknown account distribution {text:?}: expected uniform or zipfian"
            )),
        }
    }
}

/// Picks an index in `0..n` by a [`Distribution`] (Zipf through its cumulative weights).
struct Chooser {
    cumulative: Option<Vec<f64>>,
    n: usize,
}

impl Chooser {
    fn new(distribution: Distribution, n: usize) -> Chooser {
        let cumulative = (distribution == Distribution::Zipfian).then(|| {
            let mut total = 0.0;
            (1..=n)
                .map(|k| {
                    total += 1.0 / k as f64;
                    total
                })
                .collect::<Vec<f64>>()
        });
        Chooser { cumulative, n }
    }

    fn pick(&self, rng: &mut ChaCha20Rng) -> usize {
        match &self.cumulative {
            None => rng.random_range(0..self.n),
            Some(cumulative) => {
                let total = cumulative[self.n - 1];
                let x = rng.random_range(0.0..total);
                cumulative.partition_point(|&c| c <= x).min(self.n - 1)
            }
        }
    }
}

/// One planned transaction: its fields, who signs it, and how (if at all) it is made
/// deliberately invalid.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub fields: TxFields,
    pub signer: u64,
    /// 0: valid; 1: a signature bit flipped; 2: signed by another key; 3: unknown account.
    pub corruption: u8,
}

/// A refund may name a payment only this many transactions after it: by then the payment
/// has settled even where validators order their clients' transactions differently.
pub const REFUND_LAG_TX: u64 = 4_096;

/// How far below zero (in opening balances) `ubin` lets a bank pay in the model.
const INTERBANK_SQUEEZE_OPENINGS: i128 = 1;

/// The generator of a workload's transaction stream.
///
/// It keeps a model of every account's balance (what the ledger holds once every planned
/// valid transaction has settled) and plans only payments the payer can afford with a
/// margin, so that a long run measures settlement rather than the rejection path: money
/// circulates back (merchants pay wages to consumers, suppliers and bank fees; the tax
/// authority spends what it collects; banks pay out their fee income; the central bank
/// pledges reserves to banks running low and redeems from banks holding much more than
/// they opened with). The margin covers validators that order their clients'
/// transactions differently from the send order. Refusals come only from
/// `invalid_pct` and, in `ubin`, from the liquidity squeeze (payments that queue, queue
/// operations on payments that are no longer queued).
pub struct Generator<'p> {
    population: &'p Population,
    mix: TransferMix,
    rng: ChaCha20Rng,
    next_id: u128,
    /// Position of the next transaction in the stream.
    position: u64,
    /// Model balance of each account, by index in `ids`.
    balance: Vec<i128>,
    /// Opening balance of each account (its target).
    opening: Vec<i128>,
    index: HashMap<u64, usize>,
    /// Each category's rate, basis and rounding, from the genesis.
    tax_rates: HashMap<u32, (u32, TaxBasis, Rounding)>,
    /// Settled taxed payments refunds may name: (position, id, payer, payee, the record's
    /// amount: a price with its tax, or an invoice's net, category).
    recent_taxed: VecDeque<(u64, u128, u64, u64, u64, u32)>,
    recent_interbank: Vec<(u128, u64)>,
    /// Fees each bank received and has not paid out.
    fee_income: HashMap<u64, i128>,
    /// The plain-transfer workload's account chooser.
    chooser: Option<Chooser>,
}

/// A payer keeps this share of its opening balance in the model (the margin for
/// transactions that settle in another order than planned).
const RESERVE_DIVISOR: i128 = 5;

impl<'p> Generator<'p> {
    /// A generator of ids `id_base + 1, id_base + 2, ...`.
    pub fn new(population: &'p Population, mix: &TransferMix, id_base: u128) -> Generator<'p> {
        let count = population.genesis.account_count() as usize;
        let mut index = HashMap::with_capacity(count);
        let mut opening: Vec<i128> = Vec::with_capacity(count);
        for (i, account) in population.genesis.all_accounts().enumerate() {
            index.insert(account.id, i);
            opening.push(i128::from(account.balance));
        }
        let chooser = mix
            .plain
            .map(|plain| Chooser::new(plain.distribution, population.consumers.len()));
        Generator {
            population,
            mix: *mix,
            rng: ChaCha20Rng::seed_from_u64(mix.seed),
            next_id: id_base + 1,
            position: 0,
            balance: opening.clone(),
            opening,
            index,
            tax_rates: population
                .genesis
                .tax_rates
                .iter()
                .map(|r| {
                    let basis = r.basis.unwrap_or(TaxBasis::Gross);
                    (
                        r.category,
                        (r.rate_bp, basis, r.rounding.unwrap_or(Rounding::Down)),
                    )
                })
                .collect(),
            recent_taxed: VecDeque::new(),
            recent_interbank: Vec::new(),
            fee_income: HashMap::new(),
            chooser,
        }
    }

    fn at(&self, account: u64) -> usize {
        self.index[&account]
    }

    /// What `account` may pay and keep its reserve, in the model.
    fn spendable(&self, account: u64) -> i128 {
        let i = self.at(account);
        self.balance[i] - self.opening[i] / RESERVE_DIVISOR
    }

    fn excess(&self, account: u64) -> i128 {
        let i = self.at(account);
        self.balance[i] - self.opening[i]
    }

    fn moved(&mut self, from: u64, to: u64, amount: i128) {
        let (f, t) = (self.at(from), self.at(to));
        self.balance[f] -= amount;
        self.balance[t] += amount;
    }

    /// Of `tries` random accounts of `from`, the one `better` prefers.
    fn sample(&mut self, from: &[u64], tries: usize, richest: bool) -> u64 {
        let mut best = from[self.rng.random_range(0..from.len())];
        for _ in 1..tries {
            let other = from[self.rng.random_range(0..from.len())];
            let (b, o) = (self.balance[self.at(best)], self.balance[self.at(other)]);
            if (richest && o > b) || (!richest && o < b) {
                best = other;
            }
        }
        best
    }

    /// The tax on a taxed payment's `amount` in `category` and the category's basis, by the
    /// category's own rule (docs/SETTLEMENT.md, "The three bases").
    fn tax_of(&self, amount: u64, category: u32) -> (i128, TaxBasis) {
        let (rate, basis, rounding) =
            self.tax_rates
                .get(&category)
                .copied()
                .unwrap_or((0, TaxBasis::Gross, Rounding::Down));
        (i128::from(tax_on(amount, rate, basis, rounding)), basis)
    }

    fn blank(&mut self, id: u128) -> TxFields {
        TxFields {
            id,
            debit_account: 0,
            credit_account: 0,
            amount: 0,
            ledger: self.population.genesis.ledger,
            kind: TxKind::Transfer,
            flags: TxFlags::default(),
            reference: self.rng.random(),
            related_id: 0,
            category: 0,
            reserved_a: 0,
            valid_until: 0,
        }
    }

    /// The next transaction of the stream.
    pub fn next_plan(&mut self) -> Plan {
        let id = self.next_id;
        self.next_id += 1;
        self.position += 1;
        let invalid = self.rng.random_range(0..100u32) < self.mix.invalid_pct;
        let mut fields = self.blank(id);
        // Deliberately invalid records move no money in the model and are never named by
        // later refunds or queue operations.
        let apply = !invalid;
        let signer = if self.mix.plain.is_some() {
            self.plain(&mut fields, apply)
        } else {
            self.mixed(&mut fields, apply)
        };
        self.corrupt(fields, signer, invalid)
    }

    /// `count` plans.
    pub fn plans(&mut self, count: usize) -> Vec<Plan> {
        (0..count).map(|_| self.next_plan()).collect()
    }

    fn corrupt(&mut self, mut fields: TxFields, signer: u64, invalid: bool) -> Plan {
        if !invalid {
            return Plan {
                fields,
                signer,
                corruption: 0,
            };
        }
        let corruption = self.rng.random_range(1..=3u8);
        let mut signer = signer;
        match corruption {
            1 => {}
            2 => {
                let banks = &self.population.banks;
                signer = if banks.is_empty() {
                    crate::population::TAX_AUTHORITY_ID
                } else {
                    banks[self.rng.random_range(0..banks.len())]
                };
                if signer == fields.debit_account || signer == CENTRAL_BANK_ID {
                    signer = crate::population::TAX_AUTHORITY_ID;
                }
            }
            _ => fields.credit_account = u64::MAX - 1,
        }
        Plan {
            fields,
            signer,
            corruption,
        }
    }

    /// The plain-transfer workload: one account pays another a small amount; opening
    /// balances are far larger than any run moves, and the model keeps every payer solvent.
    fn plain(&mut self, fields: &mut TxFields, apply: bool) -> u64 {
        let plain = self.mix.plain.expect("plain workload");
        let chooser = self.chooser.as_ref().expect("plain workload");
        let accounts = &self.population.consumers;
        let amount = self.rng.random_range(1..=plain.amount_max);
        let mut debit = accounts[chooser.pick(&mut self.rng)];
        let mut credit = accounts[chooser.pick(&mut self.rng)];
        while credit == debit {
            credit = accounts[chooser.pick(&mut self.rng)];
        }
        if self.spendable(debit) < i128::from(amount) {
            // Never in practice (balances dwarf the amounts), but the model says so.
            std::mem::swap(&mut debit, &mut credit);
        }
        fields.debit_account = debit;
        fields.credit_account = credit;
        fields.amount = amount;
        if apply {
            self.moved(debit, credit, i128::from(amount));
        }
        debit
    }

    /// The named workloads' mix (`ubin`, `vat`, `mixed`), returning the signer.
    fn mixed(&mut self, fields: &mut TxFields, apply: bool) -> u64 {
        let mix = self.mix;
        let population = self.population;
        let roll = self.rng.random_range(0..100u32);
        let mut threshold = mix.taxed_payment_pct;
        if roll < threshold {
            return self.taxed_payment(fields, apply);
        }
        threshold += mix.interbank_pct;
        if roll < threshold {
            return self.interbank(fields, apply);
        }
        threshold += mix.refund_pct;
        if roll < threshold {
            return self.refund(fields, apply);
        }
        threshold += mix.central_bank_pct;
        if roll < threshold {
            return self.central_bank(fields, apply);
        }
        threshold += mix.circulation_pct;
        if roll < threshold {
            return self.circulate(fields, apply);
        }
        // Consumer to consumer, by one who can afford it.
        let payer = self.sample(&population.consumers, 4, true);
        let mut payee = population.consumers[self.rng.random_range(0..population.consumers.len())];
        if payee == payer {
            payee = population.merchants[0];
        }
        let amount = amount(&mut self.rng, 3_000);
        let amount = amount.min(self.spendable(payer).max(1) as u64);
        fields.debit_account = payer;
        fields.credit_account = payee;
        fields.amount = amount;
        if apply {
            self.moved(payer, payee, i128::from(amount));
        }
        payer
    }

    /// A retail price with its tax inside it (or zero-rated), or, `invoice_pct` of the time,
    /// a merchant's invoice to another merchant with 20% VAT added to the net.
    fn taxed_payment(&mut self, fields: &mut TxFields, apply: bool) -> u64 {
        let population = self.population;
        let invoice = population.merchants.len() > 1
            && self.rng.random_range(0..100u32) < self.mix.invoice_pct;
        let (payer, payee, amount, category) = if invoice {
            let payer = self.sample(&population.merchants, 4, true);
            let at = population
                .merchants
                .iter()
                .position(|m| *m == payer)
                .unwrap_or(0);
            let other = self.rng.random_range(1..population.merchants.len());
            let payee = population.merchants[(at + other) % population.merchants.len()];
            // The payer is debited net + tax: the net leaves room for the tax.
            let room = (self.spendable(payer) * 5 / 6).max(1) as u64;
            let net = amount_capped(&mut self.rng, 10_000, 50.0).min(room);
            (payer, payee, net, INVOICE_CATEGORY)
        } else {
            let payer = self.sample(&population.consumers, 4, true);
            let payee = population.merchants[self.rng.random_range(0..population.merchants.len())];
            let price = amount(&mut self.rng, 2_000).min(self.spendable(payer).max(1) as u64);
            let category = if self.rng.random_range(0..4u32) == 0 {
                ZERO_RATED_CATEGORY
            } else {
                RETAIL_CATEGORY
            };
            (payer, payee, price, category)
        };
        fields.kind = TxKind::TaxedPayment;
        fields.debit_account = payer;
        fields.credit_account = payee;
        fields.amount = amount;
        fields.category = category;
        if apply {
            let (tax, basis) = self.tax_of(amount, category);
            let to_payee = match basis {
                TaxBasis::Exclusive => i128::from(amount),
                TaxBasis::Inclusive | TaxBasis::Gross => i128::from(amount) - tax,
            };
            self.moved(payer, payee, to_payee);
            self.moved(payer, TAX_AUTHORITY_ID, tax);
            self.recent_taxed
                .push_back((self.position, fields.id, payer, payee, amount, category));
            if self.recent_taxed.len() > RECENT_MAX * 8 {
                self.recent_taxed.pop_front();
            }
        }
        payer
    }

    fn refund(&mut self, fields: &mut TxFields, apply: bool) -> u64 {
        let population = self.population;
        let settled = self
            .recent_taxed
            .iter()
            .take_while(|p| p.0 + REFUND_LAG_TX <= self.position)
            .count();
        if settled == 0 {
            // Nothing old enough to refund yet: the merchant pays a consumer back directly.
            let merchant = self.sample(&population.merchants, 4, true);
            let consumer = self.sample(&population.consumers, 4, false);
            let amount = amount(&mut self.rng, 1_000).min(self.spendable(merchant).max(1) as u64);
            fields.debit_account = merchant;
            fields.credit_account = consumer;
            fields.amount = amount;
            if apply {
                self.moved(merchant, consumer, i128::from(amount));
            }
            return merchant;
        }
        // The merchant refunds a settled taxed payment in full or in part (of what its record
        // carried: the price, or an invoice's net); the ledger reverses the tax by the
        // payment's own basis and rounding. Each payment is refunded at most once, as shops do.
        let pick = self.rng.random_range(0..settled);
        let (_, original, payer, payee, gross, category) =
            self.recent_taxed.remove(pick).expect("in range");
        let refunded = if self.rng.random_bool(0.5) {
            gross
        } else {
            gross / 2 + 1
        };
        // The payment's own rule on the amount refunded (each payment is refunded once).
        let (tax_back, basis) = self.tax_of(refunded, category);
        let payee_pays = match basis {
            TaxBasis::Exclusive => i128::from(refunded),
            TaxBasis::Inclusive | TaxBasis::Gross => i128::from(refunded) - tax_back,
        };
        if self.spendable(payee) < payee_pays || self.spendable(TAX_AUTHORITY_ID) < tax_back {
            // The shop cannot afford it now: put the payment back, pay wages instead.
            self.recent_taxed
                .push_front((0, original, payer, payee, gross, category));
            return self.circulate(fields, apply);
        }
        fields.kind = TxKind::Refund;
        fields.debit_account = payee;
        fields.credit_account = payer;
        fields.related_id = original;
        fields.amount = refunded;
        if apply {
            self.moved(payee, payer, payee_pays);
            self.moved(TAX_AUTHORITY_ID, payer, tax_back);
        }
        payee
    }

    fn interbank(&mut self, fields: &mut TxFields, apply: bool) -> u64 {
        let population = self.population;
        let mix = self.mix;
        if !self.recent_interbank.is_empty() && self.rng.random_range(0..100u32) < mix.queue_ops_pct
        {
            // The payer acts on one of its recent payments; if it is not queued (any more),
            // the ledger answers `queued_payment_not_found` (part of the squeeze).
            let (target, payer) =
                self.recent_interbank[self.rng.random_range(0..self.recent_interbank.len())];
            fields.kind = [
                TxKind::QueueHold,
                TxKind::QueueRelease,
                TxKind::QueueCancel,
                TxKind::QueueReprioritise,
            ][self.rng.random_range(0..4usize)];
            fields.debit_account = payer;
            fields.related_id = target;
            if fields.kind == TxKind::QueueReprioritise && self.rng.random_bool(0.5) {
                fields.flags = TxFlags(TxFlags::URGENT);
            }
            return payer;
        }
        let banks = &population.banks;
        let squeeze = mix.liquidity_squeeze;
        let payer = if squeeze {
            banks[self.rng.random_range(0..banks.len())]
        } else {
            self.sample(banks, 3, true)
        };
        let mut payee = banks[self.rng.random_range(0..banks.len())];
        if payee == payer {
            payee = banks[(banks.iter().position(|b| *b == payer).unwrap_or(0) + 1) % banks.len()];
        }
        let mut amount = amount_capped(&mut self.rng, mix.interbank_amount_scale, INTERBANK_CAP);
        if squeeze {
            // The squeeze: a bank may pay beyond its reserves (the payment queues until
            // liquidity arrives), down to one opening balance below zero in the model;
            // pledges bring it back.
            let i = self.at(payer);
            let floor = -self.opening[i] * INTERBANK_SQUEEZE_OPENINGS;
            let room = self.balance[i] - floor;
            amount = amount.min(room.max(1) as u64);
        } else {
            amount = amount.min(self.spendable(payer).max(1) as u64);
        }
        fields.debit_account = payer;
        fields.credit_account = payee;
        fields.amount = amount;
        if self.rng.random_range(0..100u32) < mix.urgent_pct {
            fields.flags = TxFlags(TxFlags::URGENT);
        }
        if apply {
            self.moved(payer, payee, i128::from(amount));
            remember(&mut self.recent_interbank, (fields.id, payer));
        }
        payer
    }

    /// The central bank's schedule: pledge reserves to the bank lowest on liquidity (of a
    /// sample) when it holds less than it opened with, otherwise redeem what the richest
    /// bank of a sample holds beyond twice its opening.
    fn central_bank(&mut self, fields: &mut TxFields, apply: bool) -> u64 {
        let population = self.population;
        let poorest = self.sample(&population.banks, 4, false);
        let richest = self.sample(&population.banks, 4, true);
        let top_up = -self.excess(poorest);
        let surplus = self.excess(richest) - self.opening[self.at(richest)];
        if top_up <= 0 && surplus > 0 {
            fields.kind = TxKind::Redeem;
            (fields.debit_account, fields.credit_account) = (richest, CENTRAL_BANK_ID);
            // Half the surplus: payments still queued towards it may not have settled.
            fields.amount = (surplus / 2).max(1) as u64;
        } else {
            // Top up to the opening balance, or (when every bank sampled is at or above it)
            // a small pledge that keeps the schedule going.
            fields.kind = TxKind::Pledge;
            (fields.debit_account, fields.credit_account) = (CENTRAL_BANK_ID, poorest);
            let floor = amount(&mut self.rng, self.mix.interbank_amount_scale / 100 + 1);
            fields.amount = (top_up.max(0) as u64).max(floor);
        }
        if apply {
            let (from, to) = (fields.debit_account, fields.credit_account);
            self.moved(from, to, i128::from(fields.amount));
        }
        CENTRAL_BANK_ID
    }

    /// Money going back round: a merchant over its opening pays wages to a consumer low on
    /// funds, a supplier (another merchant) or a fee to its bank; the tax authority spends
    /// what it collected; a bank pays its fee income out to a consumer.
    fn circulate(&mut self, fields: &mut TxFields, apply: bool) -> u64 {
        let population = self.population;
        if population.merchants.is_empty() || population.consumers.is_empty() {
            return self.central_bank(fields, apply);
        }
        let consumer = self.sample(&population.consumers, 8, false);
        let choice = self.rng.random_range(0..10u32);
        let (payer, payee, amount) = if choice == 0 && self.excess(TAX_AUTHORITY_ID) > 0 {
            // Public spending of what the tax authority holds beyond its opening.
            (
                TAX_AUTHORITY_ID,
                consumer,
                self.excess(TAX_AUTHORITY_ID)
                    .min(self.spendable(TAX_AUTHORITY_ID)),
            )
        } else if choice == 1 && !population.banks.is_empty() {
            let bank = population.banks[self.rng.random_range(0..population.banks.len())];
            let income = self.fee_income.get(&bank).copied().unwrap_or(0);
            if income > 0 {
                self.fee_income.insert(bank, 0);
                (bank, consumer, income)
            } else {
                let merchant = self.sample(&population.merchants, 4, true);
                (merchant, bank, self.excess(merchant).min(1_000))
            }
        } else {
            let merchant = self.sample(&population.merchants, 4, true);
            let excess = self.excess(merchant);
            if choice == 2 {
                let supplier = self.sample(&population.merchants, 4, false);
                (merchant, supplier, excess / 2)
            } else {
                (merchant, consumer, excess)
            }
        };
        let amount = amount.min(self.spendable(payer));
        let (payer, payee, amount) = if amount <= 0 || payer == payee {
            // Nobody holds more than they opened with: a small wage from the richest
            // merchant of a sample keeps the share of kinds steady.
            let merchant = self.sample(&population.merchants, 8, true);
            (merchant, consumer, self.spendable(merchant).clamp(1, 1_000))
        } else {
            (payer, payee, amount)
        };
        fields.debit_account = payer;
        fields.credit_account = payee;
        fields.amount = amount as u64;
        if apply {
            self.moved(payer, payee, amount);
            if population.banks.contains(&payee) {
                *self.fee_income.entry(payee).or_insert(0) += amount;
            }
        }
        payer
    }
}

/// The `valid_until` of records signed now for a network with `genesis`: now (wall clock,
/// rounded down to the second) plus half the genesis's validity window. Half, so that a node
/// whose clock is behind this one's by less than half a window still finds `valid_until`
/// within its window.
pub fn valid_until_from_now(genesis: &tally_protocol::genesis::Genesis) -> u64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    (now_ms / 1_000 * 1_000).saturating_add(genesis.settlement.validity_window_ms / 2)
}

/// Signs plans on all cores, each valid until half a validity window of the genesis after
/// now ([`valid_until_from_now`]): send them within that time. The same plans signed within
/// the same second give the same bytes.
pub fn sign(population: &Population, plans: &[Plan]) -> Vec<TxRecord> {
    let network_id = population.genesis.network_id;
    let valid_until = valid_until_from_now(&population.genesis);
    plans
        .par_iter()
        .map(|plan| {
            let key = population.signing_key(plan.signer);
            let fields = plan.fields.valid_until(valid_until);
            let mut record = TxRecord::signed(&fields, network_id, key);
            if plan.corruption == 1 {
                let id = plan.fields.id;
                record.signature[(id % 64) as usize] ^= 1 << (id % 8);
            }
            record
        })
        .collect()
}

/// Builds `count` transactions with ids `id_base + 1 ..= id_base + count` and signs them on
/// all cores ([`sign`]: valid for half the genesis's validity window from now).
pub fn presign(
    population: &Population,
    mix: &TransferMix,
    id_base: u128,
    count: usize,
) -> Vec<TxRecord> {
    let plans = Generator::new(population, mix, id_base).plans(count);
    sign(population, &plans)
}
