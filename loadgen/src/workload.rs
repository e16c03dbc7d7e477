//! Workloads: streams of signed transactions over a [`Population`].

use crate::population::{
    Population, PopulationSpec, CENTRAL_BANK_ID, INVOICE_CATEGORY, RETAIL_CATEGORY,
    ZERO_RATED_CATEGORY,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use tally_protocol::tx::{TxFields, TxFlags, TxKind, TxRecord};

/// Shares of each kind of transaction, in percent of the whole; the rest are consumer to
/// consumer transfers.
#[derive(Clone, Debug)]
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
    /// Central-bank pledges and redeems.
    pub central_bank_pct: u32,
    /// Scale of interbank amounts (minor units; amounts are heavy-tailed around it).
    pub interbank_amount_scale: u64,
    /// Share of interbank payments marked urgent, in percent.
    pub urgent_pct: u32,
    /// Share of interbank traffic that is a payer acting on one of its recent payments
    /// (hold, release, cancel, re-prioritise: effective while the payment is queued).
    pub queue_ops_pct: u32,
    /// Deliberately invalid transactions (bad signature, wrong signer, unknown account), so
    /// that the rejection paths run under load too.
    pub invalid_pct: u32,
    pub seed: u64,
}

impl Default for TransferMix {
    fn default() -> TransferMix {
        TransferMix {
            taxed_payment_pct: 60,
            invoice_pct: 20,
            interbank_pct: 10,
            refund_pct: 5,
            central_bank_pct: 2,
            interbank_amount_scale: 100_000_000,
            urgent_pct: 20,
            queue_ops_pct: 2,
            invalid_pct: 1,
            seed: 7,
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
}

impl WorkloadName {
    pub const ALL: [WorkloadName; 3] = [WorkloadName::Ubin, WorkloadName::Vat, WorkloadName::Mixed];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadName::Ubin => "ubin",
            WorkloadName::Vat => "vat",
            WorkloadName::Mixed => "mixed",
        }
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
                interbank_amount_scale: 200_000_000,
                urgent_pct: 15,
                queue_ops_pct: 4,
                ..base
            },
            WorkloadName::Vat => TransferMix {
                taxed_payment_pct: 90,
                interbank_pct: 0,
                refund_pct: 10,
                central_bank_pct: 0,
                ..base
            },
            WorkloadName::Mixed => base,
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
        }
    }
}

impl std::str::FromStr for WorkloadName {
    type Err = String;

    fn from_str(text: &str) -> Result<WorkloadName, String> {
        WorkloadName::ALL
            .into_iter()
            .find(|w| w.name() == text)
            .ok_or_else(|| format!("unknown workload {text:?}: expected ubin, vat or mixed"))
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

/// Builds `count` transactions with ids `id_base + 1 ..= id_base + count` and signs them on
/// all cores, each valid until half a validity window of the genesis after now (wall clock,
/// [`valid_until_from_now`]): run them within that time. The same population, mix, ids and second give the same bytes.
pub fn presign(
    population: &Population,
    mix: &TransferMix,
    id_base: u128,
    count: usize,
) -> Vec<TxRecord> {
    let network_id = population.genesis.network_id;
    let ledger = population.genesis.ledger;
    let valid_until = valid_until_from_now(&population.genesis);
    let mut rng = ChaCha20Rng::seed_from_u64(mix.seed);
    let pick = |rng: &mut ChaCha20Rng, from: &[u64]| from[rng.random_range(0..from.len())];
    let mut plans: Vec<(TxFields, u64, u8)> = Vec::with_capacity(count);
    // Recent payments that later records refer to: (id, payer, payee, the record's amount).
    let mut recent_taxed: Vec<(u128, u64, u64, u64)> = Vec::new();
    let mut recent_interbank: Vec<(u128, u64)> = Vec::new();
    for index in 0..count {
        let id = id_base + index as u128 + 1;
        let roll = rng.random_range(0..100u32);
        let mut fields = TxFields {
            id,
            debit_account: 0,
            credit_account: 0,
            amount: 0,
            ledger,
            kind: TxKind::Transfer,
            flags: TxFlags::default(),
            reference: rng.random(),
            related_id: 0,
            category: 0,
            reserved_a: 0,
            valid_until,
        };
        let mut threshold = mix.taxed_payment_pct;
        if roll < threshold {
            fields.kind = TxKind::TaxedPayment;
            if population.merchants.len() > 1 && rng.random_range(0..100u32) < mix.invoice_pct {
                // a business invoice: the record carries the net, the payer is debited
                // net + 20% VAT
                fields.debit_account = pick(&mut rng, &population.merchants);
                fields.credit_account = pick(&mut rng, &population.merchants);
                if fields.debit_account == fields.credit_account {
                    let at = population
                        .merchants
                        .iter()
                        .position(|m| *m == fields.debit_account)
                        .unwrap_or(0);
                    fields.credit_account =
                        population.merchants[(at + 1) % population.merchants.len()];
                }
                fields.amount = amount_capped(&mut rng, 10_000, 50.0);
                fields.category = INVOICE_CATEGORY;
            } else {
                // a retail price with the tax inside it (or zero-rated)
                fields.debit_account = pick(&mut rng, &population.consumers);
                fields.credit_account = pick(&mut rng, &population.merchants);
                fields.amount = amount(&mut rng, 2_000);
                fields.category = if rng.random_range(0..4u32) == 0 {
                    ZERO_RATED_CATEGORY
                } else {
                    RETAIL_CATEGORY
                };
            }
            remember(
                &mut recent_taxed,
                (
                    id,
                    fields.debit_account,
                    fields.credit_account,
                    fields.amount,
                ),
            );
        } else if roll < {
            threshold += mix.interbank_pct;
            threshold
        } {
            if !recent_interbank.is_empty() && rng.random_range(0..100u32) < mix.queue_ops_pct {
                // The payer acts on one of its recent payments; if it is not queued (any
                // more), the ledger answers `queued_payment_not_found`.
                let (target, payer) = recent_interbank[rng.random_range(0..recent_interbank.len())];
                fields.kind = [
                    TxKind::QueueHold,
                    TxKind::QueueRelease,
                    TxKind::QueueCancel,
                    TxKind::QueueReprioritise,
                ][rng.random_range(0..4usize)];
                fields.debit_account = payer;
                fields.related_id = target;
                if fields.kind == TxKind::QueueReprioritise && rng.random_bool(0.5) {
                    fields.flags = TxFlags(TxFlags::URGENT);
                }
                plans.push((fields, payer, 0));
                continue;
            }
            fields.debit_account = pick(&mut rng, &population.banks);
            fields.credit_account = pick(&mut rng, &population.banks);
            fields.amount = amount_capped(&mut rng, mix.interbank_amount_scale, INTERBANK_CAP);
            if fields.debit_account == fields.credit_account {
                fields.credit_account = population.banks[(population
                    .banks
                    .iter()
                    .position(|b| *b == fields.debit_account)
                    .unwrap_or(0)
                    + 1)
                    % population.banks.len()];
            }
            if rng.random_range(0..100u32) < mix.urgent_pct {
                fields.flags = TxFlags(TxFlags::URGENT);
            }
            remember(&mut recent_interbank, (id, fields.debit_account));
        } else if roll < {
            threshold += mix.refund_pct;
            threshold
        } {
            if recent_taxed.is_empty() {
                fields.debit_account = pick(&mut rng, &population.merchants);
                fields.credit_account = pick(&mut rng, &population.consumers);
                fields.amount = amount(&mut rng, 1_000);
            } else {
                // The payee refunds a recent taxed payment in full or in part (an amount of
                // what its record carried: the price, or an invoice's net); the ledger
                // reverses the tax by the payment's own basis and rounding.
                // Each payment is refunded at most once (in full or in part), as shops do.
                let (original, payer, payee, carried) =
                    recent_taxed.swap_remove(rng.random_range(0..recent_taxed.len()));
                fields.kind = TxKind::Refund;
                fields.debit_account = payee;
                fields.credit_account = payer;
                fields.related_id = original;
                fields.amount = if rng.random_bool(0.5) {
                    carried
                } else {
                    carried / 2 + 1
                };
            }
        } else if roll < {
            threshold += mix.central_bank_pct;
            threshold
        } {
            let bank = pick(&mut rng, &population.banks);
            fields.amount = amount(&mut rng, 1_000_000_000);
            if rng.random_bool(0.5) {
                fields.kind = TxKind::Pledge;
                (fields.debit_account, fields.credit_account) = (CENTRAL_BANK_ID, bank);
            } else {
                fields.kind = TxKind::Redeem;
                (fields.debit_account, fields.credit_account) = (bank, CENTRAL_BANK_ID);
            }
        } else {
            fields.debit_account = pick(&mut rng, &population.consumers);
            fields.credit_account = pick(&mut rng, &population.consumers);
            fields.amount = amount(&mut rng, 3_000);
            if fields.debit_account == fields.credit_account {
                fields.credit_account = population.merchants[0];
            }
        }
        // Who signs: the debit account's owner, or the central bank for its operations.
        let mut signer = match fields.kind {
            TxKind::Pledge | TxKind::Redeem => CENTRAL_BANK_ID,
            _ => fields.debit_account,
        };
        let mut corruption = 0u8;
        if rng.random_range(0..100u32) < mix.invalid_pct {
            corruption = rng.random_range(1..=3);
            match corruption {
                // 1: a signature bit flipped after signing.
                1 => {}
                // 2: signed by the key of another account than the payer's.
                2 => {
                    signer = pick(&mut rng, &population.banks);
                    if signer == fields.debit_account || signer == CENTRAL_BANK_ID {
                        signer = crate::population::TAX_AUTHORITY_ID;
                    }
                }
                // 3: an account that does not exist.
                _ => fields.credit_account = u64::MAX - 1,
            }
        }
        plans.push((fields, signer, corruption));
    }
    plans
        .par_iter()
        .map(|(fields, signer, corruption)| {
            let key = &population.keys[signer];
            let mut record = TxRecord::signed(fields, network_id, key);
            if *corruption == 1 {
                record.signature[(fields.id % 64) as usize] ^= 1 << (fields.id % 8);
            }
            record
        })
        .collect()
}
