//! A synthetic population: a central bank, banks, a tax authority, merchants and consumers,
//! each account with its own key (or its consumers held by their banks, signed for with the
//! bank's key, for populations of millions), and the genesis that opens them.

use ed25519_zebra::SigningKey;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeMap;
use std::ops::Range;
use tally_protocol::genesis::{
    AccountRangeSpec, AccountSpec, Genesis, Role, TaxRateSpec, ValidatorSpec,
};
use tally_protocol::keys::public_key_of;
use tally_protocol::tax::{Rounding, TaxBasis};

/// How many of each participant, and their opening balances (in minor units).
#[derive(Clone, Debug)]
pub struct PopulationSpec {
    pub network_id: u64,
    pub ledger: u32,
    pub banks: usize,
    pub merchants: usize,
    pub consumers: usize,
    pub bank_opening_balance: u64,
    pub merchant_opening_balance: u64,
    pub consumer_opening_balance: u64,
    /// Seed for keys and assignments: the same seed gives the same population.
    pub seed: u64,
    /// Who signs for the consumers.
    pub custody: Custody,
}

/// Who signs for a population's consumers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Custody {
    /// Each consumer has its own key and is named in the genesis one by one.
    #[default]
    Own,
    /// Each bank signs for the consumers it holds: they are opened as one account range per
    /// bank (`account_ranges` of the genesis) and have no key of their own, so that ten
    /// million accounts cost a few lines of genesis and no key generation.
    Bank,
}

impl Custody {
    pub fn name(self) -> &'static str {
        match self {
            Custody::Own => "own",
            Custody::Bank => "bank",
        }
    }
}

impl std::str::FromStr for Custody {
    type Err = String;

    fn from_str(text: &str) -> Result<Custody, String> {
        match text {
            "own" => Ok(Custody::Own),
            "bank" => Ok(Custody::Bank),
            _ => Err(format!("unknown custody {text:?}: expected own or bank")),
        }
    }
}

impl Default for PopulationSpec {
    fn default() -> PopulationSpec {
        PopulationSpec {
            network_id: 0x7a11_7a11,
            ledger: 702,
            banks: 20,
            merchants: 200,
            consumers: 400,
            bank_opening_balance: 100_000_000_000,
            merchant_opening_balance: 1_000_000,
            consumer_opening_balance: 5_000_000,
            seed: 1,
            custody: Custody::Own,
        }
    }
}

/// Account id ranges: central bank 1, tax authority 2, banks from 1_000, merchants from
/// 100_000, consumers from 1_000_000.
pub const CENTRAL_BANK_ID: u64 = 1;
pub const TAX_AUTHORITY_ID: u64 = 2;
pub const OBSERVER_ID: u64 = 3;
pub const FIRST_BANK_ID: u64 = 1_000;
pub const FIRST_MERCHANT_ID: u64 = 100_000;
pub const FIRST_CONSUMER_ID: u64 = 1_000_000;

/// Tax category of retail prices: 9% GST inside the price (tax-inclusive, the tax fraction
/// 9/109), rounded half up.
pub const RETAIL_CATEGORY: u32 = 1;
/// Tax category of business invoices: 20% VAT added to the net (tax-exclusive), rounded half
/// up.
pub const INVOICE_CATEGORY: u32 = 2;
/// Tax category of zero-rated retail: 0%, tax-inclusive.
pub const ZERO_RATED_CATEGORY: u32 = 3;

/// The generated population: genesis and every account's signing key.
pub struct Population {
    pub genesis: Genesis,
    pub keys: BTreeMap<u64, SigningKey>,
    pub validator_keys: Vec<SigningKey>,
    pub banks: Vec<u64>,
    pub merchants: Vec<u64>,
    pub consumers: Vec<u64>,
    /// The consumers held by a bank that signs for them ([`Custody::Bank`]): their ids and
    /// their bank.
    pub held: Vec<(Range<u64>, u64)>,
}

impl Population {
    /// Builds the population and its genesis (one validator; tax categories
    /// [`RETAIL_CATEGORY`], [`INVOICE_CATEGORY`] and [`ZERO_RATED_CATEGORY`]).
    pub fn generate(spec: &PopulationSpec) -> Population {
        let mut rng = ChaCha20Rng::seed_from_u64(spec.seed);
        let mut key = || SigningKey::from(rng.random::<[u8; 32]>());
        let validator_keys = vec![key()];
        let mut keys = BTreeMap::new();
        let mut accounts = Vec::new();
        let mut add = |id: u64,
                       name: String,
                       role: Role,
                       balance: u64,
                       bank: Option<u64>,
                       signing: SigningKey| {
            accounts.push(AccountSpec {
                id,
                name,
                role,
                owner: hex::encode(public_key_of(&signing)),
                balance,
                bank,
                overdraft_max: 0,
                balance_max: None,
                tax_sub_account: None,
                bic: None,
            });
            keys.insert(id, signing);
        };
        add(
            CENTRAL_BANK_ID,
            "central-bank".into(),
            Role::CentralBank,
            0,
            None,
            key(),
        );
        add(
            TAX_AUTHORITY_ID,
            "tax-authority".into(),
            Role::TaxAuthority,
            0,
            None,
            key(),
        );
        add(
            OBSERVER_ID,
            "regulator".into(),
            Role::Observer,
            0,
            None,
            key(),
        );
        let banks: Vec<u64> = (0..spec.banks as u64).map(|i| FIRST_BANK_ID + i).collect();
        for &bank in &banks {
            add(
                bank,
                format!("bank-{bank}"),
                Role::Bank,
                spec.bank_opening_balance,
                None,
                key(),
            );
        }
        let bank_of = |i: usize| (!banks.is_empty()).then(|| banks[i % banks.len()]);
        let merchants: Vec<u64> = (0..spec.merchants as u64)
            .map(|i| FIRST_MERCHANT_ID + i)
            .collect();
        for (i, &merchant) in merchants.iter().enumerate() {
            add(
                merchant,
                format!("merchant-{merchant}"),
                Role::Merchant,
                spec.merchant_opening_balance,
                bank_of(i),
                key(),
            );
        }
        let consumers: Vec<u64> = (0..spec.consumers as u64)
            .map(|i| FIRST_CONSUMER_ID + i)
            .collect();
        let mut account_ranges = Vec::new();
        let mut held = Vec::new();
        match spec.custody {
            Custody::Own => {
                for (i, &consumer) in consumers.iter().enumerate() {
                    add(
                        consumer,
                        format!("consumer-{consumer}"),
                        Role::Consumer,
                        spec.consumer_opening_balance,
                        bank_of(i),
                        key(),
                    );
                }
            }
            Custody::Bank => {
                // One contiguous range per bank, the first banks one account more when the
                // count does not divide.
                let (each, rest) = (
                    spec.consumers / banks.len().max(1),
                    spec.consumers % banks.len().max(1),
                );
                let mut first = FIRST_CONSUMER_ID;
                for (b, &bank) in banks.iter().enumerate() {
                    let count = (each + usize::from(b < rest)) as u64;
                    if count == 0 {
                        continue;
                    }
                    account_ranges.push(AccountRangeSpec {
                        first_id: first,
                        count,
                        role: Role::Consumer,
                        bank,
                        owner: hex::encode(public_key_of(&keys[&bank])),
                        balance: spec.consumer_opening_balance,
                        balance_max: None,
                    });
                    held.push((first..first + count, bank));
                    first += count;
                }
            }
        }
        let genesis = Genesis {
            network_id: spec.network_id,
            ledger: spec.ledger,
            validators: validator_keys
                .iter()
                .enumerate()
                .map(|(i, k)| ValidatorSpec {
                    name: format!("validator-{i}"),
                    public_key: hex::encode(public_key_of(k)),
                })
                .collect(),
            tax_rates: vec![
                TaxRateSpec::new(RETAIL_CATEGORY, 900, TaxBasis::Inclusive, Rounding::HalfUp),
                TaxRateSpec::new(
                    INVOICE_CATEGORY,
                    2_000,
                    TaxBasis::Exclusive,
                    Rounding::HalfUp,
                ),
                TaxRateSpec::new(
                    ZERO_RATED_CATEGORY,
                    0,
                    TaxBasis::Inclusive,
                    Rounding::HalfUp,
                ),
            ],
            accounts,
            account_ranges,
            settlement: Default::default(),
            heights_per_epoch: tally_protocol::genesis::HEIGHTS_PER_EPOCH_DEFAULT,
            revoked: Vec::new(),
            currency: Default::default(),
        };
        Population {
            genesis,
            keys,
            validator_keys,
            banks,
            merchants,
            consumers,
            held,
        }
    }

    /// The key that signs for `account`: its own, or its bank's for a held consumer.
    pub fn signing_key(&self, account: u64) -> &SigningKey {
        if let Some(key) = self.keys.get(&account) {
            return key;
        }
        let (_, bank) = self
            .held
            .iter()
            .find(|(ids, _)| ids.contains(&account))
            .unwrap_or_else(|| panic!("account {account} is not in the population"));
        &self.keys[bank]
    }
}
