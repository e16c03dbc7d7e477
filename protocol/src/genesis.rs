//! Genesis: the network's first state, read from a TOML file.
//!
//! A genesis names the network id, the validators, the central bank, the tax authority and
//! every account with its owner key and opening balance: one by one (`accounts`), or for a
//! large population of bank customers as ranges of ids opened alike (`account_ranges`,
//! held by a bank and signed for by one key, the bank's), so that a genesis of ten million
//! accounts is a few lines and loads in seconds. [`Genesis::from_toml`] refuses a
//! malformed genesis with a message that names the field (`accounts[3].owner: ...`).
//! [`GenesisSpec`] is the same shape with keys that may still be key-file paths; `tally
//! genesis` resolves it into a [`Genesis`].

use crate::keys::{decode_hex32, public_key_of, read_key_file};
use crate::tax::{Rounding, TaxBasis, ROUNDING_NAMES, TAX_BASIS_NAMES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Most accounts a genesis may name one by one (`accounts`).
pub const GENESIS_ACCOUNTS_MAX: usize = 1_000_000;
/// Most accounts a genesis may open, ranges included.
pub const GENESIS_ALL_ACCOUNTS_MAX: u64 = 100_000_000;
/// Most validators.
pub const VALIDATORS_MAX: usize = 100;
/// Basis points in one whole (a rate of 10_000 bp is 100%).
pub const BASIS_POINTS_ONE: u32 = 10_000;

/// The role of an account on the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The central bank's issuance account: its balance may go negative by what it issued.
    CentralBank,
    Bank,
    TaxAuthority,
    Merchant,
    Consumer,
    /// A regulator: reads, never moves money.
    Observer,
    /// A merchant's restricted tax sub-account: credited with tax where the rate says so,
    /// debited only by the tax authority's key, to the tax authority.
    TaxSubAccount,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::CentralBank => "central_bank",
            Role::Bank => "bank",
            Role::TaxAuthority => "tax_authority",
            Role::Merchant => "merchant",
            Role::Consumer => "consumer",
            Role::Observer => "observer",
            Role::TaxSubAccount => "tax_sub_account",
        }
    }
}

/// One validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSpec {
    pub name: String,
    /// Hex public key, or in a spec `file:PATH` naming a key file.
    pub public_key: String,
}

/// One account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSpec {
    pub id: u64,
    pub name: String,
    pub role: Role,
    /// Hex public key of the key that may debit this account, or in a spec `file:PATH`.
    pub owner: String,
    #[serde(default)]
    pub balance: u64,
    /// The bank that holds this account (merchants and consumers), by account id.
    #[serde(default)]
    pub bank: Option<u64>,
    /// How far below zero the balance may go (intraday credit). Default 0: no overdraft.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overdraft_max: u64,
    /// Most the balance may hold (merchants and consumers only). Default: no maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_max: Option<u64>,
    /// A merchant's restricted tax sub-account (an account of role `tax_sub_account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_sub_account: Option<u64>,
    /// The participant's business identifier code (ISO 9362 BIC, 8 or 11 characters), by
    /// which ISO 20022 messages name it (docs/ISO20022.md); unique in the genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
}

/// A range of bank customers opened alike: ids `first_id .. first_id + count`, each of
/// `role` (merchant or consumer), held at `bank`, debited by the one key `owner` (as a bank
/// signs for the customers it serves), with the same opening balance and limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRangeSpec {
    pub first_id: u64,
    pub count: u64,
    pub role: Role,
    /// The bank that holds every account of the range, by account id.
    pub bank: u64,
    /// Hex public key of the key that may debit these accounts, or in a spec `file:PATH`.
    pub owner: String,
    #[serde(default)]
    pub balance: u64,
    /// Most each balance may hold. Default: no maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_max: Option<u64>,
}

impl AccountRangeSpec {
    /// The ids of the range.
    pub fn ids(&self) -> std::ops::Range<u64> {
        self.first_id..self.first_id + self.count
    }
}

/// One account of a genesis, whether named alone or in a range, with its owner key parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenesisAccount {
    pub id: u64,
    pub role: Role,
    pub owner: [u8; 32],
    pub balance: u64,
    pub bank: Option<u64>,
    pub overdraft_max: u64,
    pub balance_max: Option<u64>,
    pub tax_sub_account: Option<u64>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_default_settlement(value: &SettlementSpec) -> bool {
    *value == SettlementSpec::default()
}

/// Settlement-day settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementSpec {
    /// The end of the business day, as milliseconds after midnight UTC (default 0:
    /// midnight). Queued payments expire at the first cut-off after they were queued.
    #[serde(default)]
    pub day_cutoff_ms: u64,
    /// The validity window: a record's `valid_until` may be at most this many milliseconds
    /// after the time of the block that executes it (default
    /// [`VALIDITY_WINDOW_MS_DEFAULT`], at least [`VALIDITY_WINDOW_MS_MIN`]). The ledger keeps
    /// an accepted id in memory for at most this long, so its id set holds at most the
    /// transactions of one window (docs/SETTLEMENT.md, "Idempotency and expiry").
    #[serde(default = "default_validity_window_ms")]
    pub validity_window_ms: u64,
    /// The refund window: a taxed payment may be refunded until this many milliseconds after
    /// the time of its block (default [`REFUND_WINDOW_MS_DEFAULT`], between
    /// [`REFUND_WINDOW_MS_MIN`] and [`REFUND_WINDOW_MS_MAX`]). After it the ledger forgets the
    /// payment and a refund of it is refused `refund_window_closed`; the history index still
    /// answers for it (docs/SETTLEMENT.md, "Refunds"). Left out of the canonical TOML at its
    /// default, so a genesis that does not name it keeps its hash.
    #[serde(
        default = "default_refund_window_ms",
        skip_serializing_if = "is_default_refund_window"
    )]
    pub refund_window_ms: u64,
    /// The RTGS business day: opening, cut-offs, end of day, closed days, warehousing
    /// (docs/SETTLEMENT.md, "The business day"). Left out: every day is open around the
    /// clock and ends at `day_cutoff_ms`, and the genesis keeps the hash it had before the
    /// table existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<crate::calendar::CalendarSpec>,
}

impl Default for SettlementSpec {
    fn default() -> SettlementSpec {
        SettlementSpec {
            day_cutoff_ms: 0,
            validity_window_ms: VALIDITY_WINDOW_MS_DEFAULT,
            refund_window_ms: REFUND_WINDOW_MS_DEFAULT,
            calendar: None,
        }
    }
}

/// The refund window when the genesis names none: 90 days.
pub const REFUND_WINDOW_MS_DEFAULT: u64 = 90 * DAY_MS;
/// The shortest refund window a genesis may set: one second.
pub const REFUND_WINDOW_MS_MIN: u64 = 1_000;
/// The longest refund window a genesis may set: ten years of 366 days.
pub const REFUND_WINDOW_MS_MAX: u64 = 3_660 * DAY_MS;

fn default_refund_window_ms() -> u64 {
    REFUND_WINDOW_MS_DEFAULT
}

fn is_default_refund_window(value: &u64) -> bool {
    *value == REFUND_WINDOW_MS_DEFAULT
}

/// The validity window when the genesis names none: one hour.
pub const VALIDITY_WINDOW_MS_DEFAULT: u64 = 3_600_000;
/// The shortest validity window a genesis may set: one second.
pub const VALIDITY_WINDOW_MS_MIN: u64 = 1_000;

fn default_validity_window_ms() -> u64 {
    VALIDITY_WINDOW_MS_DEFAULT
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// One tax rate: `rate_bp` basis points on payments of `category`, on `basis`, rounded by
/// `rounding`. Both are required: [`Genesis::validate`] refuses a rate that does not name
/// them, saying what to add (they are options only so that the message can name the field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxRateSpec {
    pub category: u32,
    pub rate_bp: u32,
    /// What the rate applies to: `inclusive`, `exclusive` or `gross` ([`TaxBasis`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<TaxBasis>,
    /// How the tax is taken to the minor unit: `half_up`, `half_even` or `down`
    /// ([`Rounding`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounding: Option<Rounding>,
    /// The tax goes to the payee's restricted tax sub-account where it has one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub to_sub_account: bool,
}

impl TaxRateSpec {
    /// A rate with its basis and rounding named.
    pub fn new(category: u32, rate_bp: u32, basis: TaxBasis, rounding: Rounding) -> TaxRateSpec {
        TaxRateSpec {
            category,
            rate_bp,
            basis: Some(basis),
            rounding: Some(rounding),
            to_sub_account: false,
        }
    }
}

/// The genesis file. Keys are hex public keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub network_id: u64,
    /// The currency ledger of every account.
    pub ledger: u32,
    pub validators: Vec<ValidatorSpec>,
    #[serde(default)]
    pub tax_rates: Vec<TaxRateSpec>,
    pub accounts: Vec<AccountSpec>,
    /// Ranges of bank customers opened alike (after `accounts` in the file; ids disjoint from
    /// every other account's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub account_ranges: Vec<AccountRangeSpec>,
    #[serde(default, skip_serializing_if = "is_default_settlement")]
    pub settlement: SettlementSpec,
    /// Heights in one validator epoch: validator-set changes voted during an epoch take
    /// effect from the next (docs/PROTOCOL.md). Default [`HEIGHTS_PER_EPOCH_DEFAULT`].
    #[serde(
        default = "default_heights_per_epoch",
        skip_serializing_if = "is_default_heights_per_epoch"
    )]
    pub heights_per_epoch: u64,
    /// Serial numbers (hex) of network certificates revoked from the start: the ledger's
    /// revocation list begins with them, and the central bank's revocations (kind 14) add to
    /// it (docs/SECURITY.md, "Revocation").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<String>,
    /// The currency of the ledger: its code and minor-unit digits, for reading and printing
    /// amounts as people write them (`125.40`). Records and balances carry minor units.
    #[serde(default, skip_serializing_if = "is_default_currency")]
    pub currency: CurrencySpec,
}

/// The ledger's currency, as people write its amounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencySpec {
    /// Its code (ISO 4217, three capital letters, `EUR`), printed after amounts; empty (the
    /// default): none printed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    /// Digits of its minor unit: 2 (the default) reads `125.40` as 12540 minor units.
    #[serde(default = "default_minor_unit_digits")]
    pub minor_unit_digits: u32,
}

impl Default for CurrencySpec {
    fn default() -> CurrencySpec {
        CurrencySpec {
            code: String::new(),
            minor_unit_digits: MINOR_UNIT_DIGITS_DEFAULT,
        }
    }
}

/// Minor-unit digits when the genesis names none.
pub const MINOR_UNIT_DIGITS_DEFAULT: u32 = 2;

fn default_minor_unit_digits() -> u32 {
    MINOR_UNIT_DIGITS_DEFAULT
}

fn is_default_currency(value: &CurrencySpec) -> bool {
    *value == CurrencySpec::default()
}

impl CurrencySpec {
    /// Reads an amount in currency units (`125.40`) into minor units.
    pub fn parse(&self, text: &str) -> Result<u64, crate::amount::AmountError> {
        crate::amount::parse_units(text, self.minor_unit_digits)
    }

    /// Writes minor units as currency units with the code (`125.40 EUR`).
    pub fn format(&self, minor: i128) -> String {
        let units = crate::amount::format_units(minor, self.minor_unit_digits);
        if self.code.is_empty() {
            units
        } else {
            format!("{units} {}", self.code)
        }
    }
}

/// Heights in one validator epoch when the genesis does not say.
pub const HEIGHTS_PER_EPOCH_DEFAULT: u64 = 1_000;

fn default_heights_per_epoch() -> u64 {
    HEIGHTS_PER_EPOCH_DEFAULT
}

fn is_default_heights_per_epoch(value: &u64) -> bool {
    *value == HEIGHTS_PER_EPOCH_DEFAULT
}

/// Checks the shape of a BIC (ISO 9362): 8 or 11 characters, four letters of the
/// institution, two of the country, two letters or digits of the location and an optional
/// three-character branch; capitals only.
pub fn check_bic(bic: &str) -> Result<(), String> {
    let bytes = bic.as_bytes();
    if bytes.len() != 8 && bytes.len() != 11 {
        return Err(format!(
            "{bic:?} is {} characters: a BIC has 8 or 11",
            bytes.len()
        ));
    }
    let alnum = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    if !bytes[..6].iter().all(u8::is_ascii_uppercase) {
        return Err(format!(
            "{bic:?}: a BIC starts with six capital letters (institution and country)"
        ));
    }
    if !bytes[6..].iter().all(alnum) {
        return Err(format!(
            "{bic:?}: a BIC's location and branch are capital letters or digits"
        ));
    }
    Ok(())
}

/// A spec has the same shape; keys may be `file:PATH` (relative to the spec's folder).
pub type GenesisSpec = Genesis;

/// A genesis that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("genesis is not valid TOML or has a wrong field: {0}")]
    Syntax(String),
    #[error("genesis field {field}: {reason}")]
    Field { field: String, reason: String },
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> GenesisError {
    GenesisError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Genesis {
    /// The business-day calendar, resolved, if the genesis has one (it was validated).
    pub fn calendar(&self) -> Option<crate::calendar::Calendar> {
        self.settlement
            .calendar
            .as_ref()
            .map(|spec| spec.resolve().expect("genesis was validated"))
    }

    /// Reads and validates a genesis file.
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Genesis::from_toml(&text)
    }

    /// Parses and validates a genesis.
    pub fn from_toml(text: &str) -> Result<Genesis, GenesisError> {
        let genesis: Genesis =
            toml::from_str(text).map_err(|e| GenesisError::Syntax(e.to_string()))?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// The genesis as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a genesis always serialises")
    }

    /// Resolves `file:PATH` keys of a spec (relative to `base`) into hex public keys and
    /// validates the result.
    pub fn resolve_spec(mut spec: GenesisSpec, base: &Path) -> Result<Genesis, GenesisError> {
        let resolve = |field: String, key: &mut String| -> Result<(), GenesisError> {
            if let Some(file) = key.strip_prefix("file:") {
                let signing = read_key_file(&base.join(file))
                    .map_err(|e| field_error(field, e.to_string()))?;
                *key = hex::encode(public_key_of(&signing));
            }
            Ok(())
        };
        for (index, validator) in spec.validators.iter_mut().enumerate() {
            resolve(
                format!("validators[{index}].public_key"),
                &mut validator.public_key,
            )?;
        }
        for (index, account) in spec.accounts.iter_mut().enumerate() {
            resolve(format!("accounts[{index}].owner"), &mut account.owner)?;
        }
        for (index, range) in spec.account_ranges.iter_mut().enumerate() {
            resolve(format!("account_ranges[{index}].owner"), &mut range.owner)?;
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every rule; the error names the first field that breaks one.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.network_id == 0 {
            return Err(field_error("network_id", "must be non-zero"));
        }
        if self.ledger == 0 {
            return Err(field_error("ledger", "must be non-zero"));
        }
        if self.validators.is_empty() {
            return Err(field_error(
                "validators",
                "at least one validator is needed",
            ));
        }
        if self.heights_per_epoch == 0 {
            return Err(field_error("heights_per_epoch", "must be at least 1"));
        }
        if self.currency.minor_unit_digits > crate::amount::MINOR_UNIT_DIGITS_MAX {
            return Err(field_error(
                "currency.minor_unit_digits",
                format!(
                    "{} digits: at most {}",
                    self.currency.minor_unit_digits,
                    crate::amount::MINOR_UNIT_DIGITS_MAX
                ),
            ));
        }
        let code = &self.currency.code;
        if !code.is_empty() && (code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(field_error(
                "currency.code",
                format!("{code:?}: three capital letters (ISO 4217, as EUR), or leave it out"),
            ));
        }
        let mut bics = BTreeSet::new();
        for (index, account) in self.accounts.iter().enumerate() {
            if let Some(bic) = &account.bic {
                check_bic(bic)
                    .map_err(|reason| field_error(format!("accounts[{index}].bic"), reason))?;
                if !bics.insert(bic.as_str()) {
                    return Err(field_error(
                        format!("accounts[{index}].bic"),
                        format!("{bic} names another account too: a BIC names one account"),
                    ));
                }
            }
        }
        let mut serials = BTreeSet::new();
        for (index, serial) in self.revoked.iter().enumerate() {
            let bytes = crate::tx::canonical_serial(serial)
                .map_err(|reason| field_error(format!("revoked[{index}]"), reason.to_string()))?;
            if !serials.insert(bytes) {
                return Err(field_error(
                    format!("revoked[{index}]"),
                    format!("serial {serial} is listed twice"),
                ));
            }
        }
        if self.validators.len() > VALIDATORS_MAX {
            return Err(field_error(
                "validators",
                format!("at most {VALIDATORS_MAX} validators"),
            ));
        }
        let mut validator_keys = BTreeSet::new();
        for (index, validator) in self.validators.iter().enumerate() {
            let key = parse_public_key(&validator.public_key)
                .map_err(|reason| field_error(format!("validators[{index}].public_key"), reason))?;
            if !validator_keys.insert(key) {
                return Err(field_error(
                    format!("validators[{index}].public_key"),
                    "the same key is listed twice",
                ));
            }
        }
        let mut categories = BTreeSet::new();
        for (index, rate) in self.tax_rates.iter().enumerate() {
            if rate.category == 0 {
                return Err(field_error(
                    format!("tax_rates[{index}].category"),
                    "category 0 is reserved",
                ));
            }
            if rate.rate_bp > BASIS_POINTS_ONE {
                return Err(field_error(
                    format!("tax_rates[{index}].rate_bp"),
                    format!("{} bp is over 100%", rate.rate_bp),
                ));
            }
            if !categories.insert(rate.category) {
                return Err(field_error(
                    format!("tax_rates[{index}].category"),
                    format!("category {} is listed twice", rate.category),
                ));
            }
            if rate.basis.is_none() {
                return Err(field_error(
                    format!("tax_rates[{index}].basis"),
                    format!(
                        "category {} names no tax basis: add basis = {TAX_BASIS_NAMES} \
                         (a rate on the gross rounded down, the rule before tax bases, is \
                         basis = \"gross\" with rounding = \"down\")",
                        rate.category
                    ),
                ));
            }
            if rate.rounding.is_none() {
                return Err(field_error(
                    format!("tax_rates[{index}].rounding"),
                    format!(
                        "category {} names no rounding rule: add rounding = {ROUNDING_NAMES}",
                        rate.category
                    ),
                ));
            }
        }
        if self.accounts.len() > GENESIS_ACCOUNTS_MAX {
            return Err(field_error(
                "accounts",
                format!("at most {GENESIS_ACCOUNTS_MAX} accounts"),
            ));
        }
        let mut ids = BTreeSet::new();
        let mut total: u128 = 0;
        for (index, account) in self.accounts.iter().enumerate() {
            let field = |name: &str| format!("accounts[{index}].{name}");
            if account.id == 0 {
                return Err(field_error(field("id"), "account id 0 is reserved"));
            }
            if !ids.insert(account.id) {
                return Err(field_error(
                    field("id"),
                    format!("account id {} is listed twice", account.id),
                ));
            }
            parse_public_key(&account.owner)
                .map_err(|reason| field_error(field("owner"), reason))?;
            if account.role == Role::CentralBank && account.balance != 0 {
                return Err(field_error(
                    field("balance"),
                    "the central bank's issuance account opens at 0; money enters by pledge",
                ));
            }
            total += u128::from(account.balance);
        }
        total += self.validate_ranges(&ids)?;
        if total > i64::MAX as u128 {
            return Err(field_error(
                "accounts",
                "opening balances add up to more than 2^63 - 1",
            ));
        }
        let bank_ids: BTreeSet<u64> = self
            .accounts
            .iter()
            .filter(|account| account.role == Role::Bank)
            .map(|account| account.id)
            .collect();
        for (index, account) in self.accounts.iter().enumerate() {
            match (account.role, account.bank) {
                (Role::Merchant | Role::Consumer, Some(bank)) => {
                    if !bank_ids.contains(&bank) {
                        return Err(field_error(
                            format!("accounts[{index}].bank"),
                            format!("account {bank} is not a bank account in this genesis"),
                        ));
                    }
                }
                (Role::Merchant | Role::Consumer, None) => {
                    return Err(field_error(
                        format!("accounts[{index}].bank"),
                        "merchants and consumers name the bank that holds them",
                    ))
                }
                (_, Some(_)) => {
                    return Err(field_error(
                        format!("accounts[{index}].bank"),
                        "only merchants and consumers are held at a bank",
                    ))
                }
                (_, None) => {}
            }
        }
        if self.settlement.day_cutoff_ms >= DAY_MS {
            return Err(field_error(
                "settlement.day_cutoff_ms",
                format!("{} ms is not within a day", self.settlement.day_cutoff_ms),
            ));
        }
        if let Some(calendar) = &self.settlement.calendar {
            calendar
                .resolve()
                .map_err(|(field, reason)| field_error(field, reason))?;
            if self.settlement.day_cutoff_ms != 0 {
                return Err(field_error(
                    "settlement.day_cutoff_ms",
                    "a genesis with a calendar ends the day at settlement.calendar.end_of_day_ms: \
                     leave day_cutoff_ms out",
                ));
            }
        }
        if self.settlement.validity_window_ms < VALIDITY_WINDOW_MS_MIN {
            return Err(field_error(
                "settlement.validity_window_ms",
                format!(
                    "{} ms is shorter than the least validity window, {VALIDITY_WINDOW_MS_MIN} ms",
                    self.settlement.validity_window_ms
                ),
            ));
        }
        let refund_window = self.settlement.refund_window_ms;
        if !(REFUND_WINDOW_MS_MIN..=REFUND_WINDOW_MS_MAX).contains(&refund_window) {
            return Err(field_error(
                "settlement.refund_window_ms",
                format!(
                    "{refund_window} ms is not between {REFUND_WINDOW_MS_MIN} ms (one second) \
                     and {REFUND_WINDOW_MS_MAX} ms (ten years)"
                ),
            ));
        }
        let mut sub_accounts_named = BTreeSet::new();
        let sub_account_ids: BTreeSet<u64> = self
            .accounts
            .iter()
            .filter(|account| account.role == Role::TaxSubAccount)
            .map(|account| account.id)
            .collect();
        for (index, account) in self.accounts.iter().enumerate() {
            let field = |name: &str| format!("accounts[{index}].{name}");
            if account.balance_max.is_some()
                && !matches!(account.role, Role::Merchant | Role::Consumer)
            {
                return Err(field_error(
                    field("balance_max"),
                    "only merchants and consumers have a balance maximum",
                ));
            }
            if let Some(max) = account.balance_max {
                if account.balance > max {
                    return Err(field_error(
                        field("balance_max"),
                        format!(
                            "the opening balance {} is above it ({max})",
                            account.balance
                        ),
                    ));
                }
            }
            if account.overdraft_max > 0
                && matches!(
                    account.role,
                    Role::CentralBank | Role::Observer | Role::TaxSubAccount
                )
            {
                return Err(field_error(
                    field("overdraft_max"),
                    format!("a {} account has no overdraft", account.role.name()),
                ));
            }
            if account.overdraft_max > i64::MAX as u64 / 2 {
                return Err(field_error(field("overdraft_max"), "too large"));
            }
            if let Some(sub) = account.tax_sub_account {
                if account.role != Role::Merchant {
                    return Err(field_error(
                        field("tax_sub_account"),
                        "only merchants have a tax sub-account",
                    ));
                }
                if !sub_account_ids.contains(&sub) {
                    return Err(field_error(
                        field("tax_sub_account"),
                        format!("account {sub} is not a tax_sub_account account in this genesis"),
                    ));
                }
                if !sub_accounts_named.insert(sub) {
                    return Err(field_error(
                        field("tax_sub_account"),
                        format!("tax sub-account {sub} already belongs to another merchant"),
                    ));
                }
            }
        }
        for role in [Role::CentralBank, Role::TaxAuthority] {
            let count = self.accounts.iter().filter(|a| a.role == role).count();
            if count != 1 {
                return Err(field_error(
                    "accounts",
                    format!(
                        "exactly one {} account is needed, found {count}",
                        role.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the account ranges against the ids named one by one; returns the sum of their
    /// opening balances.
    fn validate_ranges(&self, ids: &BTreeSet<u64>) -> Result<u128, GenesisError> {
        let mut total: u128 = 0;
        let mut all = self.accounts.len() as u64;
        let mut spans: Vec<(u64, u64, usize)> = Vec::new();
        for (index, range) in self.account_ranges.iter().enumerate() {
            let field = |name: &str| format!("account_ranges[{index}].{name}");
            if range.first_id == 0 {
                return Err(field_error(field("first_id"), "account id 0 is reserved"));
            }
            if range.count == 0 {
                return Err(field_error(
                    field("count"),
                    "a range opens at least one account",
                ));
            }
            let Some(end) = range.first_id.checked_add(range.count) else {
                return Err(field_error(
                    field("count"),
                    "the range runs past the last id",
                ));
            };
            all = all.saturating_add(range.count);
            if all > GENESIS_ALL_ACCOUNTS_MAX {
                return Err(field_error(
                    field("count"),
                    format!("at most {GENESIS_ALL_ACCOUNTS_MAX} accounts in all"),
                ));
            }
            if !matches!(range.role, Role::Merchant | Role::Consumer) {
                return Err(field_error(
                    field("role"),
                    "a range opens merchants or consumers (bank customers)",
                ));
            }
            let bank_named = self
                .accounts
                .iter()
                .any(|account| account.id == range.bank && account.role == Role::Bank);
            if !bank_named {
                return Err(field_error(
                    field("bank"),
                    format!(
                        "account {} is not a bank account in this genesis",
                        range.bank
                    ),
                ));
            }
            parse_public_key(&range.owner).map_err(|reason| field_error(field("owner"), reason))?;
            if let Some(max) = range.balance_max {
                if range.balance > max {
                    return Err(field_error(
                        field("balance_max"),
                        format!("the opening balance {} is above it ({max})", range.balance),
                    ));
                }
            }
            if let Some(id) = ids.range(range.first_id..end).next() {
                return Err(field_error(
                    field("first_id"),
                    format!("account {id} is also named in accounts"),
                ));
            }
            total += u128::from(range.balance) * u128::from(range.count);
            spans.push((range.first_id, end, index));
        }
        spans.sort_unstable();
        for pair in spans.windows(2) {
            let ((_, end, first), (start, _, second)) = (pair[0], pair[1]);
            if start < end {
                return Err(field_error(
                    format!("account_ranges[{}].first_id", first.max(second)),
                    format!("the range overlaps account_ranges[{}]", first.min(second)),
                ));
            }
        }
        Ok(total)
    }

    /// How many accounts the genesis opens, ranges included.
    pub fn account_count(&self) -> u64 {
        self.accounts.len() as u64
            + self
                .account_ranges
                .iter()
                .map(|range| range.count)
                .sum::<u64>()
    }

    /// Every account the genesis opens: those named one by one, then each range's in id
    /// order. The genesis must have been validated (owner keys parse).
    pub fn all_accounts(&self) -> impl Iterator<Item = GenesisAccount> + '_ {
        let named = self.accounts.iter().map(|spec| GenesisAccount {
            id: spec.id,
            role: spec.role,
            owner: parse_public_key(&spec.owner).expect("genesis was validated"),
            balance: spec.balance,
            bank: spec.bank,
            overdraft_max: spec.overdraft_max,
            balance_max: spec.balance_max,
            tax_sub_account: spec.tax_sub_account,
        });
        let ranged = self.account_ranges.iter().flat_map(|range| {
            let owner = parse_public_key(&range.owner).expect("genesis was validated");
            range.ids().map(move |id| GenesisAccount {
                id,
                role: range.role,
                owner,
                balance: range.balance,
                bank: Some(range.bank),
                overdraft_max: 0,
                balance_max: range.balance_max,
                tax_sub_account: None,
            })
        });
        named.chain(ranged)
    }

    /// The account of the one central bank.
    pub fn central_bank(&self) -> &AccountSpec {
        self.single_role(Role::CentralBank)
    }

    /// The account of the one tax authority.
    pub fn tax_authority(&self) -> &AccountSpec {
        self.single_role(Role::TaxAuthority)
    }

    fn single_role(&self, role: Role) -> &AccountSpec {
        self.accounts
            .iter()
            .find(|account| account.role == role)
            .expect("validate() checked that the role exists once")
    }

    /// Validators' public keys, in order.
    pub fn validator_keys(&self) -> Vec<[u8; 32]> {
        self.validators
            .iter()
            .map(|v| parse_public_key(&v.public_key).expect("validated"))
            .collect()
    }

    /// BLAKE3 of the genesis file's canonical TOML: identifies the network's first state.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(self.to_toml().as_bytes()).as_bytes()
    }
}

/// Parses a hex public key and checks that it is a valid compressed Edwards point.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    if text.starts_with("file:") {
        return Err("a key file reference: run `tally genesis` to resolve the spec".to_string());
    }
    let key = decode_hex32(text)?;
    ed25519_zebra::VerificationKey::try_from(key).map_err(|_| {
        "not a valid Ed25519 public key (the point does not decompress)".to_string()
    })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_key;

    fn key_hex() -> String {
        hex::encode(public_key_of(&generate_key()))
    }

    fn sample() -> Genesis {
        let account = |id, role, balance, bank| AccountSpec {
            id,
            name: format!("acct-{id}"),
            role,
            owner: key_hex(),
            balance,
            bank,
            overdraft_max: 0,
            balance_max: None,
            tax_sub_account: None,
            bic: None,
        };
        Genesis {
            network_id: 7,
            ledger: 702,
            validators: vec![ValidatorSpec {
                name: "v0".into(),
                public_key: key_hex(),
            }],
            tax_rates: vec![
                TaxRateSpec::new(1, 900, TaxBasis::Inclusive, Rounding::HalfUp),
                TaxRateSpec::new(2, 2_000, TaxBasis::Exclusive, Rounding::HalfEven),
                TaxRateSpec::new(3, 1_000, TaxBasis::Gross, Rounding::Down),
            ],
            accounts: vec![
                account(1, Role::CentralBank, 0, None),
                account(2, Role::TaxAuthority, 0, None),
                account(10, Role::Bank, 1_000, None),
                account(100, Role::Consumer, 50, Some(10)),
                account(200, Role::Merchant, 0, Some(10)),
                account(201, Role::TaxSubAccount, 0, None),
            ],
            account_ranges: Vec::new(),
            settlement: SettlementSpec::default(),
            heights_per_epoch: HEIGHTS_PER_EPOCH_DEFAULT,
            revoked: Vec::new(),
            currency: CurrencySpec::default(),
        }
    }

    #[test]
    fn a_genesis_round_trips_through_toml() {
        let genesis = sample();
        let parsed = Genesis::from_toml(&genesis.to_toml()).unwrap();
        assert_eq!(parsed, genesis);
        assert_eq!(parsed.hash(), genesis.hash());
    }

    #[test]
    fn bics_are_checked_for_shape_and_uniqueness() {
        let mut genesis = sample();
        genesis.accounts[2].bic = Some("BANKDEFFXXX".into());
        genesis.accounts[0].bic = Some("CENTDEFF".into());
        genesis.validate().unwrap();
        let parsed = Genesis::from_toml(&genesis.to_toml()).unwrap();
        assert_eq!(parsed.accounts[2].bic.as_deref(), Some("BANKDEFFXXX"));
        for (bic, says) in [
            ("BANKDEF", "is 7 characters"),
            ("BANKDEFFXX", "is 10 characters"),
            ("bankdeff", "six capital letters"),
            ("BANK1EFF", "six capital letters"),
            ("BANKDEF-", "capital letters or digits"),
        ] {
            genesis.accounts[2].bic = Some(bic.into());
            let error = genesis.validate().unwrap_err().to_string();
            assert!(
                error.contains("accounts[2].bic") && error.contains(says),
                "{bic}: {error}"
            );
        }
        genesis.accounts[2].bic = Some("CENTDEFF".into());
        let error = genesis.validate().unwrap_err().to_string();
        assert!(
            error.contains("accounts[2].bic") && error.contains("names another account"),
            "{error}"
        );
        // a genesis without BICs keeps its hash: the field is left out of the file
        assert!(!sample().to_toml().contains("bic"));
    }

    fn with_ranges() -> Genesis {
        let mut genesis = sample();
        let owner = genesis.accounts[2].owner.clone(); // bank 10's key
        let range = |first_id, count| AccountRangeSpec {
            first_id,
            count,
            role: Role::Consumer,
            bank: 10,
            owner: owner.clone(),
            balance: 7,
            balance_max: None,
        };
        genesis.account_ranges = vec![range(1_000, 500), range(10_000_000, 10_000_000)];
        genesis
    }

    #[test]
    fn account_ranges_open_millions_of_bank_customers_in_a_few_lines() {
        let genesis = with_ranges();
        let text = genesis.to_toml();
        assert!(text.len() < 4_096, "{} bytes", text.len());
        let parsed = Genesis::from_toml(&text).unwrap();
        assert_eq!(parsed, genesis);
        assert_eq!(parsed.account_count(), 6 + 500 + 10_000_000);
        let mut seen = 0u64;
        let mut last = None;
        for account in parsed.all_accounts().skip(6) {
            assert_eq!(
                (account.role, account.bank, account.balance),
                (Role::Consumer, Some(10), 7)
            );
            assert_eq!(hex::encode(account.owner), genesis.accounts[2].owner);
            last = Some(account.id);
            seen += 1;
        }
        assert_eq!((seen, last), (10_000_500, Some(19_999_999)));
    }

    #[test]
    fn each_broken_account_range_is_named() {
        let check = |edit: &dyn Fn(&mut Genesis), field: &str, reason: &str| {
            let mut genesis = with_ranges();
            edit(&mut genesis);
            let error = Genesis::from_toml(&genesis.to_toml())
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(field) && error.contains(reason),
                "expected {field} and {reason:?} in: {error}"
            );
        };
        check(
            &|g| g.account_ranges[0].count = 0,
            "account_ranges[0].count",
            "at least one",
        );
        check(
            &|g| g.account_ranges[1].first_id = 0,
            "account_ranges[1].first_id",
            "reserved",
        );
        check(
            &|g| g.account_ranges[1].count = u64::MAX,
            "account_ranges[1].count",
            "past the last id",
        );
        check(
            &|g| g.account_ranges[1].count = GENESIS_ALL_ACCOUNTS_MAX,
            "account_ranges[1].count",
            "in all",
        );
        check(
            &|g| g.account_ranges[0].role = Role::Bank,
            "account_ranges[0].role",
            "merchants or consumers",
        );
        check(
            &|g| g.account_ranges[0].bank = 2,
            "account_ranges[0].bank",
            "not a bank account",
        );
        check(
            &|g| g.account_ranges[0].owner = "00".repeat(31),
            "account_ranges[0].owner",
            "",
        );
        check(
            &|g| g.account_ranges[0].balance_max = Some(6),
            "account_ranges[0].balance_max",
            "above it",
        );
        // an id also named one by one (consumer 100), and two ranges that overlap
        check(
            &|g| g.account_ranges[0].first_id = 100,
            "account_ranges[0].first_id",
            "account 100 is also named in accounts",
        );
        check(
            &|g| g.account_ranges[0].first_id = 19_999_999,
            "account_ranges[1].first_id",
            "overlaps account_ranges[0]",
        );
        check(
            &|g| g.account_ranges[1].balance = u64::MAX / 1_000,
            "accounts",
            "more than 2^63 - 1",
        );
    }

    #[test]
    fn a_calendar_is_read_checked_and_left_out_when_absent() {
        let mut genesis = sample();
        let before = genesis.hash();
        assert!(!genesis.to_toml().contains("calendar"));
        assert_eq!(
            Genesis::from_toml(&genesis.to_toml()).unwrap().hash(),
            before
        );
        let text = genesis.to_toml()
            + "\n[settlement.calendar]\nopening_ms = -21600000\ncustomer_cut_off_ms = 57600000\n\
               interbank_cut_off_ms = 61200000\nend_of_day_ms = 61200000\n\
               closed_weekdays = [\"saturday\", \"sunday\"]\nholidays = [\"2026-12-25\"]\n";
        let parsed = Genesis::from_toml(&text).unwrap();
        let calendar = parsed.calendar().unwrap();
        assert_eq!(calendar.opening_ms, -21_600_000);
        assert_eq!(calendar.cut_off_ms, [57_600_000, 61_200_000, 61_200_000]);
        assert_eq!(
            calendar.warehouse_days,
            crate::calendar::WAREHOUSE_DAYS_DEFAULT
        );
        assert_ne!(parsed.hash(), before);
        assert_eq!(Genesis::from_toml(&parsed.to_toml()).unwrap(), parsed);
        // a bad table is refused naming its field; a day cut-off beside a calendar too
        genesis.settlement.calendar = parsed.settlement.calendar.clone();
        genesis.settlement.calendar.as_mut().unwrap().holidays = vec!["2026-02-30".into()];
        let error = Genesis::from_toml(&genesis.to_toml())
            .unwrap_err()
            .to_string();
        assert!(error.contains("settlement.calendar.holidays[0]"), "{error}");
        genesis.settlement.calendar = parsed.settlement.calendar.clone();
        genesis.settlement.day_cutoff_ms = 1;
        let error = Genesis::from_toml(&genesis.to_toml())
            .unwrap_err()
            .to_string();
        assert!(error.contains("settlement.day_cutoff_ms"), "{error}");
        assert!(error.contains("end_of_day_ms"), "{error}");
    }

    #[test]
    fn a_refund_window_is_read_and_its_default_leaves_old_hashes_alone() {
        let mut genesis = sample();
        genesis.settlement.validity_window_ms = 60_000;
        let before = genesis.hash();
        // the default refund window is not written: a genesis without one keeps its hash
        assert!(!genesis.to_toml().contains("refund_window_ms"));
        let parsed = Genesis::from_toml(&genesis.to_toml()).unwrap();
        assert_eq!(parsed.settlement.refund_window_ms, REFUND_WINDOW_MS_DEFAULT);
        assert_eq!(parsed.hash(), before);
        genesis.settlement.refund_window_ms = 5_000;
        let parsed = Genesis::from_toml(&genesis.to_toml()).unwrap();
        assert_eq!(parsed.settlement.refund_window_ms, 5_000);
        assert_ne!(parsed.hash(), before);
        genesis.settlement.refund_window_ms = 0;
        let error = Genesis::from_toml(&genesis.to_toml()).unwrap_err();
        assert!(
            error.to_string().contains("settlement.refund_window_ms"),
            "{error}"
        );
    }

    #[test]
    fn a_currency_reads_and_writes_amounts_and_leaves_old_hashes_alone() {
        let mut genesis = sample();
        let before = genesis.hash();
        // the default currency is not written: a genesis without one keeps its hash
        assert!(!genesis.to_toml().contains("currency"));
        assert_eq!(genesis.currency.parse("125.40"), Ok(12_540));
        assert_eq!(genesis.currency.format(12_540), "125.40");
        genesis.currency = CurrencySpec {
            code: "JPY".into(),
            minor_unit_digits: 0,
        };
        let parsed = Genesis::from_toml(&genesis.to_toml()).unwrap();
        assert_eq!(parsed.currency.parse("125"), Ok(125));
        assert_eq!(parsed.currency.format(125), "125 JPY");
        assert_ne!(parsed.hash(), before);
        for (code, digits, field) in [
            ("EURO", 2, "currency.code"),
            ("eur", 2, "currency.code"),
            ("EUR", 19, "currency.minor_unit_digits"),
        ] {
            let mut genesis = sample();
            genesis.currency = CurrencySpec {
                code: code.into(),
                minor_unit_digits: digits,
            };
            let error = Genesis::from_toml(&genesis.to_toml()).unwrap_err();
            assert!(error.to_string().contains(field), "{error}");
        }
    }

    #[test]
    fn each_broken_field_is_named() {
        let check = |edit: &dyn Fn(&mut Genesis), field: &str| {
            let mut genesis = sample();
            edit(&mut genesis);
            let error = Genesis::from_toml(&genesis.to_toml()).unwrap_err();
            assert!(
                error.to_string().contains(field),
                "expected {field} in: {error}"
            );
        };
        check(&|g| g.network_id = 0, "network_id");
        check(&|g| g.ledger = 0, "ledger");
        check(&|g| g.validators.clear(), "validators");
        check(
            &|g| g.validators[0].public_key = "abc".into(),
            "validators[0].public_key",
        );
        check(
            &|g| g.accounts[3].owner = "00".repeat(31),
            "accounts[3].owner",
        );
        check(&|g| g.accounts[3].id = 10, "accounts[3].id");
        check(&|g| g.accounts[2].id = 0, "accounts[2].id");
        check(&|g| g.accounts[3].bank = Some(2), "accounts[3].bank");
        check(&|g| g.accounts[3].bank = None, "accounts[3].bank");
        check(&|g| g.accounts[0].balance = 5, "accounts[0].balance");
        check(&|g| g.tax_rates[0].rate_bp = 10_001, "tax_rates[0].rate_bp");
        check(
            &|g| {
                g.accounts.remove(1);
            },
            "tax_authority",
        );
        check(
            &|g| g.accounts[2].balance_max = Some(5),
            "accounts[2].balance_max",
        );
        check(
            &|g| g.accounts[3].balance_max = Some(5),
            "accounts[3].balance_max",
        );
        check(
            &|g| g.accounts[0].overdraft_max = 5,
            "accounts[0].overdraft_max",
        );
        check(
            &|g| g.accounts[3].tax_sub_account = Some(201),
            "accounts[3].tax_sub_account",
        );
        check(
            &|g| g.accounts[4].tax_sub_account = Some(100),
            "accounts[4].tax_sub_account",
        );
        check(
            &|g| g.settlement.day_cutoff_ms = DAY_MS,
            "settlement.day_cutoff_ms",
        );
        check(
            &|g| g.settlement.validity_window_ms = 999,
            "settlement.validity_window_ms",
        );
        check(
            &|g| g.settlement.refund_window_ms = 999,
            "settlement.refund_window_ms",
        );
        check(
            &|g| g.settlement.refund_window_ms = REFUND_WINDOW_MS_MAX + 1,
            "settlement.refund_window_ms",
        );
        let error = Genesis::from_toml("network_id = \"x\"").unwrap_err();
        assert!(matches!(error, GenesisError::Syntax(_)), "{error}");
    }

    #[test]
    fn a_rate_without_its_basis_or_rounding_is_refused_with_what_to_add() {
        let mut genesis = sample();
        genesis.tax_rates[1].basis = None;
        let error = Genesis::from_toml(&genesis.to_toml())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tax_rates[1].basis")
                && error.contains("category 2 names no tax basis")
                && error.contains("add basis = \"inclusive\"")
                && error.contains("\"exclusive\"")
                && error.contains("\"gross\""),
            "{error}"
        );
        let mut genesis = sample();
        genesis.tax_rates[2].rounding = None;
        let error = Genesis::from_toml(&genesis.to_toml())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tax_rates[2].rounding")
                && error.contains("add rounding = \"half_up\", \"half_even\" or \"down\""),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_basis_or_rounding_name_is_refused_with_the_names_accepted() {
        let rate = |basis: &str, rounding: &str| {
            let mut text = sample().to_toml();
            let start = text.find("[[tax_rates]]").unwrap();
            let end = text[start..].find("[[accounts]]").unwrap() + start;
            text.replace_range(
                start..end,
                &format!(
                    "[[tax_rates]]\ncategory = 1\nrate_bp = 900\nbasis = \"{basis}\"\n\
                     rounding = \"{rounding}\"\n\n"
                ),
            );
            Genesis::from_toml(&text)
        };
        assert!(rate("inclusive", "half_up").is_ok());
        let error = rate("vat", "half_up").unwrap_err().to_string();
        assert!(
            error.contains("unknown tax basis \"vat\"") && error.contains("\"inclusive\""),
            "{error}"
        );
        let error = rate("gross", "nearest").unwrap_err().to_string();
        assert!(
            error.contains("unknown rounding rule \"nearest\"") && error.contains("\"half_even\""),
            "{error}"
        );
        let text = sample()
            .to_toml()
            .replace("rate_bp = 900", "rate_bp = 900\nbase = \"gross\"");
        let error = Genesis::from_toml(&text).unwrap_err().to_string();
        assert!(error.contains("base"), "an unknown key is named: {error}");
    }
}
