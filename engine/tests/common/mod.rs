// Shared by the engine's integration tests (included with `mod`).
#![allow(dead_code)]

use ed25519_zebra::SigningKey;
use std::collections::BTreeMap;
use tally_engine::genesis::{AccountSpec, Genesis, Role, TaxRateSpec, ValidatorSpec};
use tally_engine::keys::public_key_of;
use tally_engine::tax::{Rounding, TaxBasis};
use tally_engine::tx::{TxFields, TxFlags, TxKind, TxRecord};

pub const NETWORK: u64 = 42;
pub const LEDGER: u32 = 702;
pub const CENTRAL_BANK: u64 = 1;
pub const TAX: u64 = 2;
pub const OBSERVER: u64 = 3;
pub const BANK_A: u64 = 10;
pub const BANK_B: u64 = 11;
pub const ALICE: u64 = 100;
pub const BOB: u64 = 101;
pub const SHOP: u64 = 200;
/// The `valid_until` of the fixtures' records, and the validity window of their genesis: far
/// enough that a record stays valid at any block time a test uses, wall clock included. The
/// tests of expiry set their own.
pub const VALID_UNTIL: u64 = u64::MAX / 4;
pub const FIXTURE_VALIDITY_WINDOW_MS: u64 = u64::MAX / 2;

pub struct Fixture {
    pub genesis: Genesis,
    pub keys: BTreeMap<u64, SigningKey>,
}

impl Default for Fixture {
    fn default() -> Fixture {
        Fixture::new()
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let table: [AccountRow; 8] = [
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (OBSERVER, Role::Observer, 0, None),
            (BANK_A, Role::Bank, 1_000_000, None),
            (BANK_B, Role::Bank, 1_000_000, None),
            (ALICE, Role::Consumer, 10_000, Some(BANK_A)),
            (BOB, Role::Consumer, 500, Some(BANK_B)),
            (SHOP, Role::Merchant, 0, Some(BANK_A)),
        ];
        Fixture::from_table(&table, |_| {})
    }

    pub fn fields(&self, id: u128, kind: TxKind, debit: u64, credit: u64, amount: u64) -> TxFields {
        TxFields {
            id,
            debit_account: debit,
            credit_account: credit,
            amount,
            ledger: LEDGER,
            kind,
            flags: TxFlags::default(),
            reference: 0,
            related_id: 0,
            category: if kind == TxKind::TaxedPayment { 1 } else { 0 },
            reserved_a: 0,
            valid_until: VALID_UNTIL,
        }
    }

    /// Signed by the natural signer: the debit account's owner, or the central bank.
    pub fn tx(&self, id: u128, kind: TxKind, debit: u64, credit: u64, amount: u64) -> TxRecord {
        let signer = match kind {
            TxKind::Pledge | TxKind::Redeem => CENTRAL_BANK,
            _ => debit,
        };
        self.signed_by(signer, &self.fields(id, kind, debit, credit, amount))
    }

    pub fn signed_by(&self, signer: u64, fields: &TxFields) -> TxRecord {
        TxRecord::signed(fields, NETWORK, &self.keys[&signer])
    }
}

/// Seed for a randomised test: `TALLY_TEST_SEED` if set, else fresh; always printed so that a
/// failure can be replayed.
pub fn test_seed(test: &str) -> u64 {
    let seed = std::env::var("TALLY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: seed {seed} (rerun with TALLY_TEST_SEED={seed})");
    seed
}

/// A proptest config with a printed, replayable seed.
pub fn proptest_config(test: &str, cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(test_seed(test)),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// A bank for [`Fixture::from_table`]: (id, role, opening balance, bank).
pub type AccountRow = (u64, Role, u64, Option<u64>);

impl Fixture {
    /// A fixture over any account table (keys derived from the account id, as in `new`),
    /// tax rates 1 (9%) and 2 (0%), both levies on the gross rounded down, and a last edit of the genesis (limits, sub-accounts,
    /// rates, cut-off) before it is validated.
    pub fn from_table(table: &[AccountRow], edit: impl FnOnce(&mut Genesis)) -> Fixture {
        let mut keys = BTreeMap::new();
        let mut accounts = Vec::new();
        for &(id, role, balance, bank) in table {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&id.to_le_bytes());
            seed[31] = 0x5a;
            let key = SigningKey::from(seed);
            accounts.push(AccountSpec {
                id,
                name: format!("account-{id}"),
                role,
                owner: hex::encode(public_key_of(&key)),
                balance,
                bank,
                overdraft_max: 0,
                balance_max: None,
                tax_sub_account: None,
                bic: None,
            });
            keys.insert(id, key);
        }
        let validator = SigningKey::from([250u8; 32]);
        let mut genesis = Genesis {
            network_id: NETWORK,
            ledger: LEDGER,
            validators: vec![ValidatorSpec {
                name: "v0".into(),
                public_key: hex::encode(public_key_of(&validator)),
            }],
            // a levy on the gross rounded down: the fixtures' tests count on floor(amount * rate)
            tax_rates: vec![
                TaxRateSpec::new(1, 900, TaxBasis::Gross, Rounding::Down),
                TaxRateSpec::new(2, 0, TaxBasis::Gross, Rounding::Down),
            ],
            accounts,
            account_ranges: Vec::new(),
            settlement: tally_engine::genesis::SettlementSpec {
                validity_window_ms: FIXTURE_VALIDITY_WINDOW_MS,
                ..Default::default()
            },
            heights_per_epoch: tally_engine::genesis::HEIGHTS_PER_EPOCH_DEFAULT,
            revoked: Vec::new(),
            currency: Default::default(),
        };
        edit(&mut genesis);
        genesis.validate().expect("fixture genesis is valid");
        Fixture { genesis, keys }
    }

    /// The central bank, the tax authority, an observer and `count` banks with ids
    /// `BANK_A, BANK_A + 1, ...` opening at `opening` each.
    pub fn banks(count: u64, opening: u64) -> Fixture {
        let mut table: Vec<AccountRow> = vec![
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (OBSERVER, Role::Observer, 0, None),
        ];
        table.extend((0..count).map(|i| (BANK_A + i, Role::Bank, opening, None)));
        Fixture::from_table(&table, |_| {})
    }

    /// A record with `edit` applied to its fields, signed by `signer`.
    #[allow(clippy::too_many_arguments)]
    pub fn custom(
        &self,
        signer: u64,
        id: u128,
        kind: TxKind,
        debit: u64,
        credit: u64,
        amount: u64,
        edit: impl FnOnce(&mut TxFields),
    ) -> TxRecord {
        let mut fields = self.fields(id, kind, debit, credit, amount);
        edit(&mut fields);
        self.signed_by(signer, &fields)
    }
}

/// Banks, consumers (each served by one of the first banks) and the merchant of the
/// simulators' genesis ([`sim_fixture`]).
pub const SIM_BANKS: [u64; 4] = [BANK_A, BANK_A + 1, BANK_A + 2, BANK_A + 3];
pub const SIM_CONSUMERS: [u64; 3] = [100, 101, 102];
pub const SIM_MERCHANT: u64 = 200;

/// The genesis of the simulators' tests: the central bank, the tax authority, an observer,
/// four banks with little liquidity (so that interbank payments queue), three consumers
/// and a merchant.
#[allow(dead_code)]
pub fn sim_fixture() -> Fixture {
    let mut table: Vec<AccountRow> = vec![
        (CENTRAL_BANK, Role::CentralBank, 0, None),
        (TAX, Role::TaxAuthority, 0, None),
        (OBSERVER, Role::Observer, 0, None),
    ];
    table.extend(SIM_BANKS.iter().map(|&bank| (bank, Role::Bank, 400, None)));
    table.extend(
        SIM_CONSUMERS
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, Role::Consumer, 2_000, Some(SIM_BANKS[i]))),
    );
    table.push((SIM_MERCHANT, Role::Merchant, 0, Some(SIM_BANKS[1])));
    Fixture::from_table(&table, |_| {})
}
