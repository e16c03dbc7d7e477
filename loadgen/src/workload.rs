//! Workloads: streams of signed transactions over a [`Population`].

use crate::population::{Population, CENTRAL_BANK_ID};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use tally_engine::tx::{TxFields, TxFlags, TxKind, TxRecord};

/// Shares of each kind of transaction, in percent of the whole; the rest are consumer to
/// consumer transfers.
#[derive(Clone, Debug)]
pub struct TransferMix {
    /// Consumers paying merchants with tax.
    pub taxed_payment_pct: u32,
    /// Banks paying banks (large amounts).
    pub interbank_pct: u32,
    /// Merchants refunding consumers.
    pub refund_pct: u32,
    /// Central-bank pledges and redeems.
    pub central_bank_pct: u32,
    /// Deliberately invalid transactions (bad signature, wrong signer, unknown account), so
    /// that the rejection paths run under load too.
    pub invalid_pct: u32,
    pub seed: u64,
}

impl Default for TransferMix {
    fn default() -> TransferMix {
        TransferMix {
            taxed_payment_pct: 60,
            interbank_pct: 10,
            refund_pct: 5,
            central_bank_pct: 2,
            invalid_pct: 1,
            seed: 7,
        }
    }
}

/// Heavy-tailed amount in minor units: most payments are small, a few are large.
fn amount(rng: &mut ChaCha20Rng, scale: u64) -> u64 {
    let uniform: f64 = rng.random_range(0.0001..1.0);
    // Pareto with shape 1.5, capped at 1000x the scale.
    let factor = (1.0 / uniform.powf(1.0 / 1.5)).min(1000.0);
    ((scale as f64) * factor) as u64 + 1
}

/// Builds `count` transactions with ids `id_base + 1 ..= id_base + count` and signs them on
/// all cores. The same population, mix and ids give the same bytes.
pub fn presign(
    population: &Population,
    mix: &TransferMix,
    id_base: u128,
    count: usize,
) -> Vec<TxRecord> {
    let network_id = population.genesis.network_id;
    let ledger = population.genesis.ledger;
    let mut rng = ChaCha20Rng::seed_from_u64(mix.seed);
    let pick = |rng: &mut ChaCha20Rng, from: &[u64]| from[rng.random_range(0..from.len())];
    let mut plans: Vec<(TxFields, u64, u8)> = Vec::with_capacity(count);
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
        };
        let mut threshold = mix.taxed_payment_pct;
        if roll < threshold {
            fields.kind = TxKind::TaxedPayment;
            fields.debit_account = pick(&mut rng, &population.consumers);
            fields.credit_account = pick(&mut rng, &population.merchants);
            fields.amount = amount(&mut rng, 2_000);
            fields.category = rng.random_range(1..=3);
        } else if roll < {
            threshold += mix.interbank_pct;
            threshold
        } {
            fields.debit_account = pick(&mut rng, &population.banks);
            fields.credit_account = pick(&mut rng, &population.banks);
            fields.amount = amount(&mut rng, 100_000_000);
            if fields.debit_account == fields.credit_account {
                fields.credit_account = population.banks[(population
                    .banks
                    .iter()
                    .position(|b| *b == fields.debit_account)
                    .unwrap_or(0)
                    + 1)
                    % population.banks.len()];
            }
            if rng.random_bool(0.2) {
                fields.flags = TxFlags(TxFlags::URGENT);
            }
        } else if roll < {
            threshold += mix.refund_pct;
            threshold
        } {
            fields.debit_account = pick(&mut rng, &population.merchants);
            fields.credit_account = pick(&mut rng, &population.consumers);
            fields.amount = amount(&mut rng, 1_000);
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
                1 => {}                                              // signature bit flipped after signing
                2 => signer = pick(&mut rng, &population.consumers), // wrong signer
                _ => fields.credit_account = u64::MAX - 1,           // unknown account
            }
            if corruption == 2 && signer == fields.debit_account {
                signer = population.merchants[0];
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
