//! The transaction record: a fixed-size little-endian record, the same bytes from the socket
//! to the GPU buffer to the log (DESIGN.md, decision 1).
//!
//! Layout (192 bytes, every integer little-endian):
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 16 | `id`: client-chosen u128, the idempotency key, never zero |
//! | 16 | 8 | `debit_account` |
//! | 24 | 8 | `credit_account` |
//! | 32 | 8 | `amount` (gross amount for a taxed payment; a tax rate's effective-from block time, ms) |
//! | 40 | 4 | `ledger` (currency code), never zero |
//! | 44 | 2 | `kind` ([`TxKind`]) |
//! | 46 | 2 | `flags` ([`TxFlags`]) |
//! | 48 | 16 | `reference`: u128 invoice or payment reference, free for the client |
//! | 64 | 16 | `related_id`: u128 id of a related transaction (refund of, post of), or zero |
//! | 80 | 4 | `category`: tax category of a taxed payment, else zero |
//! | 84 | 4 | `reserved_a`: a pending transfer's timeout (s, 0: none); a tax rate's basis points; a warehoused payment's value date (days since 1970-01-01 UTC); else zero |
//! | 88 | 8 | `valid_until`: the last block time (ms) at which the record may execute, never zero |
//! | 96 | 32 | `public_key`: the signer's Ed25519 public key |
//! | 128 | 64 | `signature`: Ed25519 over [`signing_message`] |
//!
//! Per kind (format rules checked by [`TxRecord::validate`], each with its own error):
//!
//! | kind | debit | credit | amount | related_id | category | flags |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | 1 transfer | payer | payee | > 0 | post/void: the pending id | 0 | urgent, linked, one of pending/post/void, warehoused (not with linked or two-phase) |
//! | 2 taxed payment | payer | payee | gross > 0 | free | > 0 | urgent, linked, warehoused (not with linked) |
//! | 3 pledge, 4 redeem | issuance / bank | bank / issuance | > 0 | free | 0 | urgent, linked |
//! | 5 refund | original payee | original payer | gross refunded > 0 | the taxed payment | 0 | urgent, linked |
//! | 6 set tax rate | tax authority | 0 | effective-from (ms), any | free | > 0 | tax-to-sub-account; at most one basis (inclusive, exclusive, gross); at most one rounding (half up, half even, down) |
//! | 7 suspend, 8 reinstate | issuance | the participant | 0 | free | 0 | none |
//! | 9..12 queue hold, release, cancel, re-prioritise | payer bank | 0 | 0 | the queued payment | 0 | re-prioritise: urgent |
//! | 13 validator vote | 0 | 0 | 0 | key bytes 16..32 (`reference`: bytes 0..16) | 1 add, 2 remove | none |
//! | 14 revoke certificate | issuance | 0 | 0 | serial bytes 16..20 (`reference`: bytes 0..16) | the serial's length in bytes, 1 to 20 | none |
//! | 15 open account | issuance | the new account | its bank (merchant, consumer), else 0 | owner key bytes 16..32 (`reference`: bytes 0..16) | the role: 1 bank, 3 merchant, 4 consumer, 5 observer | none |
//! | 16 close account | issuance, or the account's bank | the account | 0 | 0 | 0 | none |
//! | 17 rotate key | the account (its owner signs), or issuance (the central bank signs) | 0, or the account when the debit is issuance | 0 | new owner key bytes 16..32 (`reference`: bytes 0..16) | 0 | none |
//! | 18 set limits | issuance | the account | overdraft maximum | 0 (`reference`: the balance maximum, `u64::MAX` for none) | 0 | none |
//! | 19 add bank | issuance | the new bank | its customers' first id, or 0 | the bank's key bytes 16..32 (`reference`: bytes 0..16) | its customers' role (3 merchant, 4 consumer), or 0; `reserved_a`: how many customers | none |
//!
//! The lifecycle kinds (15 to 19, docs/SETTLEMENT.md, "Participants' lifecycle") carry an
//! account's owner key the way a validator vote carries its subject: the 32 bytes
//! `reference || related_id`. An added bank's customers are opened like a genesis account
//! range: ids `amount .. amount + reserved_a`, of the role `category`, held at the bank and
//! signed for by the bank's key.
//!
//! A validator vote is signed by a validator of the current epoch with its validator key
//! (`public_key`); the validator it adds or removes is the 32-byte key `reference ||
//! related_id` (docs/PROTOCOL.md, "Validator set changes").
//!
//! A certificate revocation is signed by the central bank with the key of its issuance account
//! (the debit account). The serial number it revokes (an X.509 serial, at most 20 bytes, as
//! `tally pki show` prints it in hex without leading zero bytes) is stored big-endian at the
//! start of the 32-byte field `reference || related_id` (byte 0 of the serial is byte 0 of
//! `reference`'s little-endian bytes); `category` is its length; the first byte is not zero
//! and the bytes after the serial are zero, so every serial has exactly one encoding
//! (docs/SETTLEMENT.md, "Certificate revocation").
//!
//! Every record carries `valid_until` (version 2 of the record, tag `TALLY-TX-V2`): a block
//! whose time is after it refuses the record as `expired`, and a block refuses a record whose
//! `valid_until` is more than the genesis's validity window after the block's time
//! (`valid_until_beyond_window`). That bound is what lets a ledger forget an accepted id once
//! its window has passed and still never apply a signed record twice (docs/DESIGN.md,
//! decision 15; docs/SETTLEMENT.md, "Idempotency and expiry").
//!
//! The signed message is a 16-byte domain tag, the 8-byte network id and the 96-byte body
//! (offsets 0..96): 120 bytes, so a signature is bound to one network and cannot be replayed
//! on another.

use crate::tax::{Rounding, TaxBasis};
use bytemuck::{Pod, Zeroable};
use ed25519_zebra::SigningKey;

/// Bytes in one record.
pub const TX_BYTES: usize = 192;
/// Bytes of the signed body (everything before the public key).
pub const TX_BODY_BYTES: usize = 96;
/// Domain tag at the start of every signed message.
pub const SIGNING_DOMAIN_TAG: [u8; 16] = *b"TALLY-TX-V2\0\0\0\0\0";
/// Version of the record layout and its rules (2: `valid_until` at offset 88, a tax rate's
/// effective-from moved to `amount`).
pub const TX_FORMAT_VERSION: u16 = 2;
/// Bytes in one signed message.
pub const SIGNING_MESSAGE_BYTES: usize = 16 + 8 + TX_BODY_BYTES;

/// One transaction record. Integer fields are stored as little-endian byte arrays so that the
/// struct has alignment 1 and the same bytes on every host.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, PartialEq, Eq)]
pub struct TxRecord {
    id: [u8; 16],
    debit_account: [u8; 8],
    credit_account: [u8; 8],
    amount: [u8; 8],
    ledger: [u8; 4],
    kind: [u8; 2],
    flags: [u8; 2],
    reference: [u8; 16],
    related_id: [u8; 16],
    category: [u8; 4],
    reserved_a: [u8; 4],
    valid_until: [u8; 8],
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

const _: () = assert!(std::mem::size_of::<TxRecord>() == TX_BYTES);
const _: () = assert!(std::mem::align_of::<TxRecord>() == 1);
const _: () = assert!(std::mem::offset_of!(TxRecord, public_key) == TX_BODY_BYTES);
const _: () = assert!(std::mem::offset_of!(TxRecord, signature) == TX_BODY_BYTES + 32);
const _: () = assert!(SIGNING_MESSAGE_BYTES == 120);

/// What a transaction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum TxKind {
    /// Move `amount` from the debit account to the credit account. Between two banks it is an
    /// RTGS payment: queued, not rejected, when the payer lacks liquidity. With a two-phase
    /// flag it reserves, posts or voids (docs/SETTLEMENT.md).
    Transfer = 1,
    /// Gross `amount` from the payer; tax by `category` to the tax authority (or the payee's
    /// tax sub-account), the rest to the payee, atomically.
    TaxedPayment = 2,
    /// Central bank mints `amount` of reserves to the credit account (signed by the central
    /// bank; the debit account is the central bank's issuance account).
    Pledge = 3,
    /// Central bank burns `amount` of reserves from the debit account back to issuance.
    Redeem = 4,
    /// The payee of taxed payment `related_id` (debit) pays back `amount` of its gross to the
    /// payer (credit); the tax is reversed by the payment's rate, basis and rounding.
    Refund = 5,
    /// The tax authority (debit account, its key) sets the rate of `category`:
    /// `reserved_a` basis points from block time `amount` (ms) on, on the basis and with
    /// the rounding its flags name (none named: those of the rate in force at that time).
    SetTaxRate = 6,
    /// The central bank (debit: its issuance account) suspends the credit account.
    Suspend = 7,
    /// The central bank (debit: its issuance account) reinstates the credit account.
    Reinstate = 8,
    /// The payer (debit account) holds its queued payment `related_id`.
    QueueHold = 9,
    /// The payer releases its held queued payment `related_id`.
    QueueRelease = 10,
    /// The payer cancels its queued payment `related_id`.
    QueueCancel = 11,
    /// The payer gives its queued payment `related_id` the priority of this record's
    /// `URGENT` flag (set: urgent, clear: normal), keeping its arrival order.
    QueueReprioritise = 12,
    /// A validator of the current epoch (the signer) votes to add (category 1) or remove
    /// (category 2) the validator whose key is `reference || related_id`, from the next
    /// epoch on.
    ValidatorVote = 13,
    /// The central bank (debit: its issuance account, its key) revokes the network
    /// certificate whose serial number is the first `category` bytes of
    /// `reference || related_id`: every node refuses it from this block on.
    RevokeCertificate = 14,
    /// The central bank (debit: its issuance account) opens account `credit_account` of role
    /// `category`, held at bank `amount` (merchants and consumers), owned by the key
    /// `reference || related_id`, at balance zero with no overdraft and no maximum.
    OpenAccount = 15,
    /// The central bank (debit: issuance) or the account's bank (debit: the bank) closes
    /// `credit_account`: only at zero balance with nothing reserved or queued; every later
    /// record naming it is refused.
    CloseAccount = 16,
    /// The owner key of an account becomes `reference || related_id`: signed by the current
    /// owner (debit: the account, credit 0) or by the central bank (debit: issuance, credit:
    /// the account).
    RotateKey = 17,
    /// The central bank (debit: issuance) sets `credit_account`'s overdraft maximum
    /// (`amount`) and balance maximum (`reference`, `u64::MAX`: none).
    SetLimits = 18,
    /// The central bank (debit: issuance) adds bank `credit_account`, owned by the key
    /// `reference || related_id`, with `reserved_a` customers of role `category` from id
    /// `amount` on, held at it and signed for by its key.
    AddBank = 19,
}

/// Most customers one add-bank record opens.
pub const ADD_BANK_ACCOUNTS_MAX: u32 = 1 << 20;

/// Largest overdraft maximum a set-limits record may carry (as a genesis allows).
pub const OVERDRAFT_MAX_LIMIT: u64 = i64::MAX as u64 / 2;

/// Role codes of the lifecycle records (`category`): the codes of the state tree's leaves.
pub const ROLE_CODE_BANK: u32 = 1;
pub const ROLE_CODE_MERCHANT: u32 = 3;
pub const ROLE_CODE_CONSUMER: u32 = 4;
pub const ROLE_CODE_OBSERVER: u32 = 5;

/// Most bytes of a certificate serial number (RFC 5280, 4.1.2.2).
pub const CERTIFICATE_SERIAL_BYTES_MAX: usize = 20;

/// A validator vote's category: add the validator.
pub const VALIDATOR_CHANGE_ADD: u32 = 1;
/// A validator vote's category: remove the validator.
pub const VALIDATOR_CHANGE_REMOVE: u32 = 2;

impl TxKind {
    /// Every kind, in wire order.
    pub const ALL: [TxKind; 19] = [
        TxKind::Transfer,
        TxKind::TaxedPayment,
        TxKind::Pledge,
        TxKind::Redeem,
        TxKind::Refund,
        TxKind::SetTaxRate,
        TxKind::Suspend,
        TxKind::Reinstate,
        TxKind::QueueHold,
        TxKind::QueueRelease,
        TxKind::QueueCancel,
        TxKind::QueueReprioritise,
        TxKind::ValidatorVote,
        TxKind::RevokeCertificate,
        TxKind::OpenAccount,
        TxKind::CloseAccount,
        TxKind::RotateKey,
        TxKind::SetLimits,
        TxKind::AddBank,
    ];

    fn from_wire(value: u16) -> Option<TxKind> {
        TxKind::ALL.into_iter().find(|kind| *kind as u16 == value)
    }

    /// Lower-case name, as in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            TxKind::Transfer => "transfer",
            TxKind::TaxedPayment => "taxed_payment",
            TxKind::Pledge => "pledge",
            TxKind::Redeem => "redeem",
            TxKind::Refund => "refund",
            TxKind::SetTaxRate => "set_tax_rate",
            TxKind::Suspend => "suspend",
            TxKind::Reinstate => "reinstate",
            TxKind::QueueHold => "queue_hold",
            TxKind::QueueRelease => "queue_release",
            TxKind::QueueCancel => "queue_cancel",
            TxKind::QueueReprioritise => "queue_reprioritise",
            TxKind::ValidatorVote => "validator_vote",
            TxKind::RevokeCertificate => "revoke_certificate",
            TxKind::OpenAccount => "open_account",
            TxKind::CloseAccount => "close_account",
            TxKind::RotateKey => "rotate_key",
            TxKind::SetLimits => "set_limits",
            TxKind::AddBank => "add_bank",
        }
    }

    /// Whether the kind moves money (`amount` must be positive); the others must carry
    /// amount 0.
    pub fn moves_money(self) -> bool {
        matches!(
            self,
            TxKind::Transfer
                | TxKind::TaxedPayment
                | TxKind::Pledge
                | TxKind::Redeem
                | TxKind::Refund
        )
    }

    /// Whether the kind acts on a queued payment named by `related_id`.
    pub fn is_queue_operation(self) -> bool {
        matches!(
            self,
            TxKind::QueueHold
                | TxKind::QueueRelease
                | TxKind::QueueCancel
                | TxKind::QueueReprioritise
        )
    }

    /// Whether the kind is one of the participants' lifecycle (15 to 19): it opens, closes
    /// or changes an account.
    pub fn is_lifecycle(self) -> bool {
        matches!(
            self,
            TxKind::OpenAccount
                | TxKind::CloseAccount
                | TxKind::RotateKey
                | TxKind::SetLimits
                | TxKind::AddBank
        )
    }

    /// Whether the record carries an owner key in `reference || related_id`.
    pub fn carries_owner_key(self) -> bool {
        matches!(
            self,
            TxKind::OpenAccount | TxKind::RotateKey | TxKind::AddBank
        )
    }

    /// Whether the record has no credit account (it must be 0).
    pub fn has_no_credit_account(self) -> bool {
        self == TxKind::SetTaxRate
            || self.is_queue_operation()
            || self == TxKind::ValidatorVote
            || self == TxKind::RevokeCertificate
    }

    /// Flag bits this kind may carry.
    pub fn allowed_flags(self) -> u16 {
        match self {
            TxKind::Transfer => {
                TxFlags::URGENT
                    | TxFlags::LINKED
                    | TxFlags::PENDING
                    | TxFlags::POST_PENDING
                    | TxFlags::VOID_PENDING
                    | TxFlags::WAREHOUSED
            }
            TxKind::TaxedPayment => TxFlags::URGENT | TxFlags::LINKED | TxFlags::WAREHOUSED,
            TxKind::Pledge | TxKind::Redeem | TxKind::Refund => TxFlags::URGENT | TxFlags::LINKED,
            TxKind::SetTaxRate => {
                TxFlags::TAX_TO_SUB_ACCOUNT | TxFlags::TAX_BASIS | TxFlags::TAX_ROUNDING
            }
            TxKind::QueueReprioritise => TxFlags::URGENT,
            TxKind::Suspend
            | TxKind::Reinstate
            | TxKind::QueueHold
            | TxKind::QueueRelease
            | TxKind::QueueCancel
            | TxKind::ValidatorVote
            | TxKind::RevokeCertificate
            | TxKind::OpenAccount
            | TxKind::CloseAccount
            | TxKind::RotateKey
            | TxKind::SetLimits
            | TxKind::AddBank => 0,
        }
    }
}

/// Flag bits. Bits not named here must be zero; each kind allows some
/// ([`TxKind::allowed_flags`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TxFlags(pub u16);

impl TxFlags {
    /// An urgent payment: settles before normal ones when queued.
    pub const URGENT: u16 = 1 << 0;
    /// Linked to the next record of the block: the chain settles all or nothing.
    pub const LINKED: u16 = 1 << 1;
    /// Two-phase, first phase: reserve `amount` (timeout in `reserved_a`, seconds, 0: none).
    pub const PENDING: u16 = 1 << 2;
    /// Two-phase: post the pending transfer `related_id` (up to its amount).
    pub const POST_PENDING: u16 = 1 << 3;
    /// Two-phase: void the pending transfer `related_id` (amount: the reserved amount).
    pub const VOID_PENDING: u16 = 1 << 4;
    /// A tax rate whose tax goes to the payee's restricted tax sub-account.
    pub const TAX_TO_SUB_ACCOUNT: u16 = 1 << 5;
    /// A tax rate on a tax-inclusive price (VAT/GST: the tax fraction of the amount).
    pub const TAX_BASIS_INCLUSIVE: u16 = 1 << 6;
    /// A tax rate added to a net amount (VAT/GST on a tax-exclusive invoice).
    pub const TAX_BASIS_EXCLUSIVE: u16 = 1 << 7;
    /// A tax rate levied on the gross (withholding, a transaction tax).
    pub const TAX_BASIS_GROSS: u16 = 1 << 8;
    /// A tax rate rounded to the nearest minor unit, a half up.
    pub const TAX_ROUND_HALF_UP: u16 = 1 << 9;
    /// A tax rate rounded to the nearest minor unit, a half to the even neighbour.
    pub const TAX_ROUND_HALF_EVEN: u16 = 1 << 10;
    /// A tax rate rounded down to the minor unit.
    pub const TAX_ROUND_DOWN: u16 = 1 << 11;
    /// A payment sent ahead of its value date (`reserved_a`: the value date as a business-day
    /// number, days since 1970-01-01 UTC): kept by the ledger and settled at that day's
    /// opening (docs/SETTLEMENT.md, "Warehoused payments"). Transfers (not two-phase) and
    /// taxed payments; never linked.
    pub const WAREHOUSED: u16 = 1 << 12;
    /// The basis bits of a tax rate: at most one may be set; none keeps the basis in force.
    pub const TAX_BASIS: u16 =
        TxFlags::TAX_BASIS_INCLUSIVE | TxFlags::TAX_BASIS_EXCLUSIVE | TxFlags::TAX_BASIS_GROSS;
    /// The rounding bits of a tax rate: at most one may be set; none keeps the rule in force.
    pub const TAX_ROUNDING: u16 =
        TxFlags::TAX_ROUND_HALF_UP | TxFlags::TAX_ROUND_HALF_EVEN | TxFlags::TAX_ROUND_DOWN;
    /// Every bit that has a meaning.
    pub const KNOWN: u16 = TxFlags::URGENT
        | TxFlags::LINKED
        | TxFlags::PENDING
        | TxFlags::POST_PENDING
        | TxFlags::VOID_PENDING
        | TxFlags::TAX_TO_SUB_ACCOUNT
        | TxFlags::TAX_BASIS
        | TxFlags::TAX_ROUNDING
        | TxFlags::WAREHOUSED;
    /// The two-phase bits: at most one may be set.
    pub const TWO_PHASE: u16 = TxFlags::PENDING | TxFlags::POST_PENDING | TxFlags::VOID_PENDING;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// The flag bits that name `basis` on a tax rate record.
    pub fn of_basis(basis: TaxBasis) -> u16 {
        match basis {
            TaxBasis::Inclusive => TxFlags::TAX_BASIS_INCLUSIVE,
            TaxBasis::Exclusive => TxFlags::TAX_BASIS_EXCLUSIVE,
            TaxBasis::Gross => TxFlags::TAX_BASIS_GROSS,
        }
    }

    /// The flag bits that name `rounding` on a tax rate record.
    pub fn of_rounding(rounding: Rounding) -> u16 {
        match rounding {
            Rounding::HalfUp => TxFlags::TAX_ROUND_HALF_UP,
            Rounding::HalfEven => TxFlags::TAX_ROUND_HALF_EVEN,
            Rounding::Down => TxFlags::TAX_ROUND_DOWN,
        }
    }

    /// The basis a tax rate record names, if it names one (a validated record names at most
    /// one).
    pub fn tax_basis(self) -> Option<TaxBasis> {
        TaxBasis::ALL
            .into_iter()
            .find(|basis| self.has(TxFlags::of_basis(*basis)))
    }

    /// The rounding rule a tax rate record names, if it names one.
    pub fn tax_rounding(self) -> Option<Rounding> {
        Rounding::ALL
            .into_iter()
            .find(|rule| self.has(TxFlags::of_rounding(*rule)))
    }
}

/// Why a record is malformed. Each reason has its own result code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a transaction record is {expected} bytes, got {found}")]
    WrongLength { expected: usize, found: usize },
    #[error("transaction id 0 is reserved: choose a non-zero u128 id")]
    ZeroId,
    #[error("valid_until 0 has passed: set it to the last block time (ms) at which the record may execute, within the genesis's validity window")]
    ZeroValidUntil,
    #[error("amount 0 moves nothing: a transaction must carry a positive amount")]
    ZeroAmount,
    #[error("ledger 0 is reserved: name the currency ledger of the accounts")]
    ZeroLedger,
    #[error("unknown transaction kind {0}: expected 1 to 19 (see docs/SETTLEMENT.md)")]
    UnknownKind(u16),
    #[error("unknown flag bits {0:#06x} are set")]
    UnknownFlags(u16),
    #[error("reserved bytes must be zero")]
    ReservedNotZero,
    #[error("debit and credit account are the same account {0}")]
    SameAccount(u64),
    #[error("a taxed payment or a tax rate needs a non-zero tax category")]
    MissingCategory,
    #[error("only a taxed payment or a tax rate carries a tax category, got category {0}")]
    UnexpectedCategory(u32),
    #[error("a {kind} moves no money: its amount must be 0, got {amount}")]
    UnexpectedAmount { kind: &'static str, amount: u64 },
    #[error("a {0} names the transaction it acts on in related_id, which is 0")]
    MissingRelatedId(&'static str),
    #[error("flag bits {flags:#06x} have no meaning on a {kind}")]
    FlagNotForKind { kind: &'static str, flags: u16 },
    #[error("at most one of the pending, post-pending and void-pending flags may be set")]
    FlagsConflict,
    #[error("a {kind} has no credit account: it must be 0, got {account}")]
    UnexpectedCreditAccount { kind: &'static str, account: u64 },
    #[error("tax rate {0} bp is over 100% (10000 bp)")]
    TaxRateOverFull(u32),
    #[error("a {kind} names no account: its debit account must be 0, got {account}")]
    UnexpectedDebitAccount { kind: &'static str, account: u64 },
    #[error("a validator vote's category is the change, 1 (add) or 2 (remove), got {0}")]
    UnknownValidatorChange(u32),
    #[error("a tax rate names at most one basis: one of the inclusive, exclusive and gross flags")]
    TaxBasisConflict,
    #[error(
        "a tax rate names at most one rounding rule: one of the half-up, half-even and down flags"
    )]
    TaxRoundingConflict,
    #[error("a certificate revocation's serial number is malformed: {0}")]
    RevocationSerial(&'static str),
    #[error("a {kind} is malformed: {reason}")]
    AccountFields {
        kind: &'static str,
        reason: &'static str,
    },
    #[error("a {0}'s owner key (reference || related_id) is not an Ed25519 public key")]
    OwnerKey(&'static str),
}

/// The fields of a transaction, for building and reading records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxFields {
    pub id: u128,
    pub debit_account: u64,
    pub credit_account: u64,
    pub amount: u64,
    pub ledger: u32,
    pub kind: TxKind,
    pub flags: TxFlags,
    pub reference: u128,
    pub related_id: u128,
    pub category: u32,
    /// Per kind: a pending transfer's timeout in seconds; a tax rate's basis points; else 0.
    pub reserved_a: u32,
    /// The last block time (ms) at which the record may execute; never 0, and at most the
    /// genesis's validity window after the time of the block that executes it.
    pub valid_until: u64,
}

impl TxFields {
    /// A transfer of `amount` with every optional field zero.
    pub fn transfer(
        id: u128,
        debit_account: u64,
        credit_account: u64,
        amount: u64,
        ledger: u32,
    ) -> TxFields {
        TxFields {
            id,
            debit_account,
            credit_account,
            amount,
            ledger,
            kind: TxKind::Transfer,
            flags: TxFlags::default(),
            reference: 0,
            related_id: 0,
            category: 0,
            reserved_a: 0,
            valid_until: 0,
        }
    }

    /// These fields with `valid_until` set to `valid_until_ms` (a builder's record has 0,
    /// which is malformed, until it is set).
    pub fn valid_until(self, valid_until_ms: u64) -> TxFields {
        TxFields {
            valid_until: valid_until_ms,
            ..self
        }
    }

    /// A validator vote: add (`add` true) or remove the validator with key `subject`.
    pub fn validator_vote(id: u128, ledger: u32, add: bool, subject: &[u8; 32]) -> TxFields {
        let (reference, related) = subject.split_at(16);
        TxFields {
            kind: TxKind::ValidatorVote,
            amount: 0,
            debit_account: 0,
            reference: u128::from_le_bytes(reference.try_into().expect("16 bytes")),
            related_id: u128::from_le_bytes(related.try_into().expect("16 bytes")),
            category: if add {
                VALIDATOR_CHANGE_ADD
            } else {
                VALIDATOR_CHANGE_REMOVE
            },
            ..TxFields::transfer(id, 0, 0, 0, ledger)
        }
    }

    /// A revocation by the central bank (its issuance account `issuance`) of the certificate
    /// with serial number `serial_hex` (hex, as `tally pki show` prints it; leading zero
    /// bytes are dropped, as a node reads serials).
    pub fn revoke_certificate(
        id: u128,
        ledger: u32,
        issuance: u64,
        serial_hex: &str,
    ) -> Result<TxFields, DecodeError> {
        let serial = canonical_serial(serial_hex)?;
        let mut field = [0u8; 32];
        field[..serial.len()].copy_from_slice(&serial);
        Ok(TxFields {
            kind: TxKind::RevokeCertificate,
            reference: u128::from_le_bytes(field[..16].try_into().expect("16 bytes")),
            related_id: u128::from_le_bytes(field[16..].try_into().expect("16 bytes")),
            category: serial.len() as u32,
            ..TxFields::transfer(id, issuance, 0, 0, ledger)
        })
    }
}

impl TxFields {
    /// These fields carrying `key` in `reference || related_id` (a lifecycle record's owner
    /// key).
    fn with_key(self, key: &[u8; 32]) -> TxFields {
        let (reference, related) = key.split_at(16);
        TxFields {
            reference: u128::from_le_bytes(reference.try_into().expect("16 bytes")),
            related_id: u128::from_le_bytes(related.try_into().expect("16 bytes")),
            ..self
        }
    }

    /// The central bank (its issuance account) opens `account` of role `role_code`
    /// ([`ROLE_CODE_BANK`], ...), held at `bank` (merchants and consumers; else 0), owned by
    /// `owner`.
    pub fn open_account(
        id: u128,
        ledger: u32,
        issuance: u64,
        account: u64,
        role_code: u32,
        bank: u64,
        owner: &[u8; 32],
    ) -> TxFields {
        TxFields {
            category: role_code,
            ..TxFields::of_kind(TxKind::OpenAccount, id, ledger, issuance, account, bank)
        }
        .with_key(owner)
    }

    /// `authority` (the central bank's issuance account, or the account's bank) closes
    /// `account`.
    pub fn close_account(id: u128, ledger: u32, authority: u64, account: u64) -> TxFields {
        TxFields::of_kind(TxKind::CloseAccount, id, ledger, authority, account, 0)
    }

    /// `account`'s owner key becomes `new_key`: signed by its owner when `issuance` is
    /// `None`, else by the central bank (its issuance account).
    pub fn rotate_key(
        id: u128,
        ledger: u32,
        account: u64,
        issuance: Option<u64>,
        new_key: &[u8; 32],
    ) -> TxFields {
        let (debit, credit) = match issuance {
            Some(issuance) => (issuance, account),
            None => (account, 0),
        };
        TxFields::of_kind(TxKind::RotateKey, id, ledger, debit, credit, 0).with_key(new_key)
    }

    /// The central bank (its issuance account) sets `account`'s overdraft maximum and
    /// balance maximum (`None`: none).
    pub fn set_limits(
        id: u128,
        ledger: u32,
        issuance: u64,
        account: u64,
        overdraft_max: u64,
        balance_max: Option<u64>,
    ) -> TxFields {
        TxFields {
            reference: u128::from(balance_max.unwrap_or(u64::MAX)),
            ..TxFields::of_kind(
                TxKind::SetLimits,
                id,
                ledger,
                issuance,
                account,
                overdraft_max,
            )
        }
    }

    /// The central bank (its issuance account) adds `bank`, owned by `owner`, with
    /// `customers` (first id, count, role code) held at it and signed for by its key.
    pub fn add_bank(
        id: u128,
        ledger: u32,
        issuance: u64,
        bank: u64,
        owner: &[u8; 32],
        customers: Option<(u64, u32, u32)>,
    ) -> TxFields {
        let (first, count, role) = customers.unwrap_or((0, 0, 0));
        TxFields {
            category: role,
            reserved_a: count,
            ..TxFields::of_kind(TxKind::AddBank, id, ledger, issuance, bank, first)
        }
        .with_key(owner)
    }

    /// A record of `kind` with every optional field zero (`valid_until` still to set).
    fn of_kind(
        kind: TxKind,
        id: u128,
        ledger: u32,
        debit: u64,
        credit: u64,
        amount: u64,
    ) -> TxFields {
        TxFields {
            kind,
            ..TxFields::transfer(id, debit, credit, amount, ledger)
        }
    }

    /// The first phase of a two-phase transfer: reserve `amount`, released after
    /// `timeout_s` seconds unless posted or voided (0: never).
    pub fn pending_transfer(
        id: u128,
        ledger: u32,
        debit: u64,
        credit: u64,
        amount: u64,
        timeout_s: u32,
    ) -> TxFields {
        TxFields {
            flags: TxFlags(TxFlags::PENDING),
            reserved_a: timeout_s,
            ..TxFields::transfer(id, debit, credit, amount, ledger)
        }
    }

    /// Posts (settles) up to `amount` of the pending transfer `pending_id`, whose accounts
    /// these are.
    pub fn post_pending(
        id: u128,
        ledger: u32,
        debit: u64,
        credit: u64,
        amount: u64,
        pending_id: u128,
    ) -> TxFields {
        TxFields::transfer(id, debit, credit, amount, ledger)
            .closing_pending(TxFlags::POST_PENDING, pending_id)
    }

    /// Voids the pending transfer `pending_id` (`amount`: exactly what it reserved).
    pub fn void_pending(
        id: u128,
        ledger: u32,
        debit: u64,
        credit: u64,
        amount: u64,
        pending_id: u128,
    ) -> TxFields {
        TxFields::transfer(id, debit, credit, amount, ledger)
            .closing_pending(TxFlags::VOID_PENDING, pending_id)
    }

    /// These fields as the post or void (`flag`) of the reservation `pending_id`.
    fn closing_pending(self, flag: u16, pending_id: u128) -> TxFields {
        TxFields {
            flags: TxFlags(flag),
            related_id: pending_id,
            ..self
        }
    }

    /// A taxed payment of gross `amount` in tax `category`.
    pub fn taxed_payment(
        id: u128,
        ledger: u32,
        payer: u64,
        payee: u64,
        amount: u64,
        category: u32,
    ) -> TxFields {
        TxFields {
            category,
            ..TxFields::of_kind(TxKind::TaxedPayment, id, ledger, payer, payee, amount)
        }
    }

    /// The payee of taxed payment `payment_id` pays `amount` of its gross back to the payer.
    pub fn refund(
        id: u128,
        ledger: u32,
        payee: u64,
        payer: u64,
        amount: u64,
        payment_id: u128,
    ) -> TxFields {
        TxFields {
            related_id: payment_id,
            ..TxFields::of_kind(TxKind::Refund, id, ledger, payee, payer, amount)
        }
    }

    /// The central bank (its issuance account) mints `amount` of reserves to `bank`.
    pub fn pledge(id: u128, ledger: u32, issuance: u64, bank: u64, amount: u64) -> TxFields {
        TxFields::of_kind(TxKind::Pledge, id, ledger, issuance, bank, amount)
    }

    /// `bank`'s reserves of `amount` go back to the central bank's issuance account.
    pub fn redeem(id: u128, ledger: u32, bank: u64, issuance: u64, amount: u64) -> TxFields {
        TxFields::of_kind(TxKind::Redeem, id, ledger, bank, issuance, amount)
    }

    /// The central bank (its issuance account) suspends `participant`.
    pub fn suspend(id: u128, ledger: u32, issuance: u64, participant: u64) -> TxFields {
        TxFields::of_kind(TxKind::Suspend, id, ledger, issuance, participant, 0)
    }

    /// The central bank (its issuance account) reinstates `participant`.
    pub fn reinstate(id: u128, ledger: u32, issuance: u64, participant: u64) -> TxFields {
        TxFields::of_kind(TxKind::Reinstate, id, ledger, issuance, participant, 0)
    }

    /// A queue operation (`kind`: hold, release, cancel or re-prioritise) by `payer` on its
    /// queued payment `payment_id`; `urgent` is the new priority of a re-prioritisation.
    /// `None` for a kind that is not a queue operation.
    pub fn queue_operation(
        kind: TxKind,
        id: u128,
        ledger: u32,
        payer: u64,
        payment_id: u128,
        urgent: bool,
    ) -> Option<TxFields> {
        if !kind.is_queue_operation() {
            return None;
        }
        let urgent = kind == TxKind::QueueReprioritise && urgent;
        Some(TxFields {
            related_id: payment_id,
            flags: TxFlags(if urgent { TxFlags::URGENT } else { 0 }),
            ..TxFields::of_kind(kind, id, ledger, payer, 0, 0)
        })
    }

    /// The tax authority (its account `tax_account`) sets `category`'s rate to `rate_bp`
    /// basis points from block time `effective_from_ms` on; a basis or rounding rule not
    /// named keeps the one in force.
    #[allow(clippy::too_many_arguments)]
    pub fn set_tax_rate(
        id: u128,
        ledger: u32,
        tax_account: u64,
        category: u32,
        rate_bp: u32,
        effective_from_ms: u64,
        basis: Option<TaxBasis>,
        rounding: Option<Rounding>,
        to_sub_account: bool,
    ) -> TxFields {
        let mut flags =
            basis.map_or(0, TxFlags::of_basis) | rounding.map_or(0, TxFlags::of_rounding);
        if to_sub_account {
            flags |= TxFlags::TAX_TO_SUB_ACCOUNT;
        }
        TxFields {
            category,
            reserved_a: rate_bp,
            flags: TxFlags(flags),
            ..TxFields::of_kind(
                TxKind::SetTaxRate,
                id,
                ledger,
                tax_account,
                0,
                effective_from_ms,
            )
        }
    }
}

/// A serial number's canonical bytes (big-endian, no leading zero bytes) from its hex form.
pub fn canonical_serial(serial_hex: &str) -> Result<Vec<u8>, DecodeError> {
    let text = serial_hex.trim().trim_start_matches("0x");
    let text = if text.len() % 2 == 1 {
        format!("0{text}")
    } else {
        text.to_string()
    };
    let bytes = hex::decode(&text)
        .map_err(|_| DecodeError::RevocationSerial("the serial number is not hex"))?;
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let serial = bytes[start..].to_vec();
    if serial.is_empty() {
        return Err(DecodeError::RevocationSerial("the serial number is zero"));
    }
    if serial.len() > CERTIFICATE_SERIAL_BYTES_MAX {
        return Err(DecodeError::RevocationSerial(
            "the serial number is longer than 20 bytes",
        ));
    }
    Ok(serial)
}

impl TxRecord {
    /// Builds an unsigned record from its fields.
    pub fn new(fields: &TxFields) -> TxRecord {
        TxRecord {
            id: fields.id.to_le_bytes(),
            debit_account: fields.debit_account.to_le_bytes(),
            credit_account: fields.credit_account.to_le_bytes(),
            amount: fields.amount.to_le_bytes(),
            ledger: fields.ledger.to_le_bytes(),
            kind: (fields.kind as u16).to_le_bytes(),
            flags: fields.flags.0.to_le_bytes(),
            reference: fields.reference.to_le_bytes(),
            related_id: fields.related_id.to_le_bytes(),
            category: fields.category.to_le_bytes(),
            reserved_a: fields.reserved_a.to_le_bytes(),
            valid_until: fields.valid_until.to_le_bytes(),
            public_key: [0; 32],
            signature: [0; 64],
        }
    }

    /// Builds and signs a record for `network_id`.
    pub fn signed(fields: &TxFields, network_id: u64, key: &SigningKey) -> TxRecord {
        let mut record = TxRecord::new(fields);
        record.sign(network_id, key);
        record
    }

    /// Sets the public key and signs the body for `network_id`.
    pub fn sign(&mut self, network_id: u64, key: &SigningKey) {
        self.public_key = ed25519_zebra::VerificationKey::from(key).into();
        let message = signing_message(network_id, self);
        self.signature = key.sign(&message).to_bytes();
    }

    /// Reads a record from exactly [`TX_BYTES`] bytes and checks its format.
    pub fn decode(bytes: &[u8]) -> Result<TxRecord, DecodeError> {
        let record: TxRecord =
            bytemuck::try_pod_read_unaligned(bytes).map_err(|_| DecodeError::WrongLength {
                expected: TX_BYTES,
                found: bytes.len(),
            })?;
        record.validate()?;
        Ok(record)
    }

    /// Checks the format rules that need no ledger state (the per-kind rules of the layout
    /// table in the module documentation).
    pub fn validate(&self) -> Result<(), DecodeError> {
        let kind_wire = u16::from_le_bytes(self.kind);
        let kind = TxKind::from_wire(kind_wire).ok_or(DecodeError::UnknownKind(kind_wire))?;
        let flags = u16::from_le_bytes(self.flags);
        if flags & !TxFlags::KNOWN != 0 {
            return Err(DecodeError::UnknownFlags(flags & !TxFlags::KNOWN));
        }
        if flags & !kind.allowed_flags() != 0 {
            return Err(DecodeError::FlagNotForKind {
                kind: kind.name(),
                flags: flags & !kind.allowed_flags(),
            });
        }
        if (flags & TxFlags::TWO_PHASE).count_ones() > 1 {
            return Err(DecodeError::FlagsConflict);
        }
        if flags & TxFlags::WAREHOUSED != 0 && flags & (TxFlags::TWO_PHASE | TxFlags::LINKED) != 0 {
            return Err(DecodeError::FlagsConflict);
        }
        if (flags & TxFlags::TAX_BASIS).count_ones() > 1 {
            return Err(DecodeError::TaxBasisConflict);
        }
        if (flags & TxFlags::TAX_ROUNDING).count_ones() > 1 {
            return Err(DecodeError::TaxRoundingConflict);
        }
        let reserved_a_used = kind == TxKind::SetTaxRate
            || kind == TxKind::AddBank
            || (kind == TxKind::Transfer && flags & TxFlags::PENDING != 0)
            || flags & TxFlags::WAREHOUSED != 0;
        if !reserved_a_used && self.reserved_a != [0; 4] {
            return Err(DecodeError::ReservedNotZero);
        }
        if self.id() == 0 {
            return Err(DecodeError::ZeroId);
        }
        if self.valid_until() == 0 {
            return Err(DecodeError::ZeroValidUntil);
        }
        let amount = self.amount();
        if kind.moves_money() && amount == 0 {
            return Err(DecodeError::ZeroAmount);
        }
        // a tax rate carries its effective-from time in `amount`, the lifecycle kinds an
        // account id or a limit
        let amount_carries_data = matches!(
            kind,
            TxKind::SetTaxRate | TxKind::OpenAccount | TxKind::SetLimits | TxKind::AddBank
        );
        if !kind.moves_money() && !amount_carries_data && amount != 0 {
            return Err(DecodeError::UnexpectedAmount {
                kind: kind.name(),
                amount,
            });
        }
        if self.ledger() == 0 {
            return Err(DecodeError::ZeroLedger);
        }
        if kind.has_no_credit_account() {
            if self.credit_account() != 0 {
                return Err(DecodeError::UnexpectedCreditAccount {
                    kind: kind.name(),
                    account: self.credit_account(),
                });
            }
        } else if self.debit_account() == self.credit_account() {
            return Err(DecodeError::SameAccount(self.debit_account()));
        }
        let needs_related = kind == TxKind::Refund
            || kind.is_queue_operation()
            || flags & (TxFlags::POST_PENDING | TxFlags::VOID_PENDING) != 0;
        if needs_related && self.related_id() == 0 {
            let what = if kind == TxKind::Transfer {
                "post or void of a pending transfer"
            } else {
                kind.name()
            };
            return Err(DecodeError::MissingRelatedId(what));
        }
        if kind == TxKind::SetTaxRate && self.reserved_a() > crate::genesis::BASIS_POINTS_ONE {
            return Err(DecodeError::TaxRateOverFull(self.reserved_a()));
        }
        if kind.is_lifecycle() {
            return self.validate_lifecycle(kind);
        }
        let category = self.category();
        if kind == TxKind::ValidatorVote {
            if self.debit_account() != 0 {
                return Err(DecodeError::UnexpectedDebitAccount {
                    kind: kind.name(),
                    account: self.debit_account(),
                });
            }
            return match category {
                VALIDATOR_CHANGE_ADD | VALIDATOR_CHANGE_REMOVE => Ok(()),
                other => Err(DecodeError::UnknownValidatorChange(other)),
            };
        }
        if kind == TxKind::RevokeCertificate {
            let length = category as usize;
            if length == 0 || length > CERTIFICATE_SERIAL_BYTES_MAX {
                return Err(DecodeError::RevocationSerial(
                    "its length (category) must be 1 to 20 bytes",
                ));
            }
            let field = self.serial_field();
            if field[0] == 0 {
                return Err(DecodeError::RevocationSerial(
                    "its first byte is zero (leading zero bytes are dropped)",
                ));
            }
            if field[length..].iter().any(|b| *b != 0) {
                return Err(DecodeError::RevocationSerial(
                    "the bytes after the serial number are not zero",
                ));
            }
            return Ok(());
        }
        let carries_category = matches!(kind, TxKind::TaxedPayment | TxKind::SetTaxRate);
        match (carries_category, category) {
            (true, 0) => Err(DecodeError::MissingCategory),
            (true, _) | (false, 0) => Ok(()),
            (false, other) => Err(DecodeError::UnexpectedCategory(other)),
        }
    }

    /// The format rules of the lifecycle kinds (15 to 19), after the rules every kind shares.
    fn validate_lifecycle(&self, kind: TxKind) -> Result<(), DecodeError> {
        let bad = |reason: &'static str| {
            Err(DecodeError::AccountFields {
                kind: kind.name(),
                reason,
            })
        };
        let (category, amount, credit) = (self.category(), self.amount(), self.credit_account());
        if !matches!(kind, TxKind::OpenAccount | TxKind::AddBank) && category != 0 {
            return Err(DecodeError::UnexpectedCategory(category));
        }
        if kind.carries_owner_key() {
            if ed25519_zebra::VerificationKey::try_from(self.owner_key()).is_err() {
                return Err(DecodeError::OwnerKey(kind.name()));
            }
        } else if self.related_id() != 0 {
            return bad("its related_id must be 0");
        }
        if kind != TxKind::RotateKey && credit == 0 {
            return bad("it names the account in its credit account, which is 0");
        }
        let customer_role = |role: u32| matches!(role, ROLE_CODE_MERCHANT | ROLE_CODE_CONSUMER);
        match kind {
            TxKind::OpenAccount => {
                if !matches!(
                    category,
                    ROLE_CODE_BANK | ROLE_CODE_MERCHANT | ROLE_CODE_CONSUMER | ROLE_CODE_OBSERVER
                ) {
                    return bad(
                        "its role (category) is 1 bank, 3 merchant, 4 consumer or 5 observer",
                    );
                }
                if customer_role(category) && amount == 0 {
                    return bad("a merchant or consumer names the bank that holds it (amount)");
                }
                if !customer_role(category) && amount != 0 {
                    return bad("only a merchant or consumer is held at a bank: amount must be 0");
                }
            }
            TxKind::SetLimits => {
                if amount > OVERDRAFT_MAX_LIMIT {
                    return bad("the overdraft maximum (amount) is over 2^62 - 1");
                }
                let max = self.reference();
                if max != u128::from(u64::MAX) && max > i64::MAX as u128 {
                    return bad("the balance maximum (reference) is over 2^63 - 1 and is not u64::MAX (none)");
                }
            }
            TxKind::AddBank => {
                let count = self.reserved_a();
                if count == 0 {
                    if amount != 0 || category != 0 {
                        return bad("a bank without customers has first id (amount) 0 and role (category) 0");
                    }
                    return Ok(());
                }
                if count > ADD_BANK_ACCOUNTS_MAX {
                    return bad("it opens more customers (reserved_a) than ADD_BANK_ACCOUNTS_MAX");
                }
                if amount == 0 {
                    return bad("its customers' first id (amount) is 0, which is reserved");
                }
                if !customer_role(category) {
                    return bad("its customers' role (category) is 3 merchant or 4 consumer");
                }
                let Some(end) = amount.checked_add(u64::from(count)) else {
                    return bad("its customers' ids run past the last id");
                };
                if (amount..end).contains(&credit) {
                    return bad("the bank's own id is among its customers' ids");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The fields of a record that passed [`TxRecord::validate`].
    ///
    /// Panics if the kind is unknown: call only on validated records.
    pub fn fields(&self) -> TxFields {
        TxFields {
            id: self.id(),
            debit_account: self.debit_account(),
            credit_account: self.credit_account(),
            amount: self.amount(),
            ledger: self.ledger(),
            kind: self
                .kind()
                .expect("fields() is called on validated records"),
            flags: TxFlags(u16::from_le_bytes(self.flags)),
            reference: u128::from_le_bytes(self.reference),
            related_id: self.related_id(),
            category: self.category(),
            reserved_a: self.reserved_a(),
            valid_until: self.valid_until(),
        }
    }

    pub fn id(&self) -> u128 {
        u128::from_le_bytes(self.id)
    }
    pub fn debit_account(&self) -> u64 {
        u64::from_le_bytes(self.debit_account)
    }
    pub fn credit_account(&self) -> u64 {
        u64::from_le_bytes(self.credit_account)
    }
    pub fn amount(&self) -> u64 {
        u64::from_le_bytes(self.amount)
    }
    pub fn ledger(&self) -> u32 {
        u32::from_le_bytes(self.ledger)
    }
    pub fn kind(&self) -> Option<TxKind> {
        TxKind::from_wire(u16::from_le_bytes(self.kind))
    }
    pub fn flags(&self) -> TxFlags {
        TxFlags(u16::from_le_bytes(self.flags))
    }
    /// Whether the record carries the linked flag: it belongs to the chain that the next
    /// record continues or closes.
    pub fn is_linked(&self) -> bool {
        self.flags().has(TxFlags::LINKED)
    }
    pub fn related_id(&self) -> u128 {
        u128::from_le_bytes(self.related_id)
    }
    pub fn category(&self) -> u32 {
        u32::from_le_bytes(self.category)
    }
    pub fn reference(&self) -> u128 {
        u128::from_le_bytes(self.reference)
    }
    /// A pending transfer's timeout in seconds, or a tax rate's basis points.
    pub fn reserved_a(&self) -> u32 {
        u32::from_le_bytes(self.reserved_a)
    }
    /// The last block time (ms) at which the record may execute.
    pub fn valid_until(&self) -> u64 {
        u64::from_le_bytes(self.valid_until)
    }
    /// A tax rate's effective-from block time in milliseconds (its `amount`).
    pub fn effective_from_ms(&self) -> u64 {
        self.amount()
    }

    /// The key a validator vote adds or removes: `reference || related_id`, as stored.
    pub fn validator_subject(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&self.reference);
        key[16..].copy_from_slice(&self.related_id);
        key
    }

    /// The owner key a lifecycle record carries (open account, rotate key, add bank):
    /// `reference || related_id`, as stored.
    pub fn owner_key(&self) -> [u8; 32] {
        self.validator_subject()
    }

    /// A set-limits record's balance maximum (`None`: no maximum).
    pub fn balance_max_limit(&self) -> Option<u64> {
        let max = self.reference() as u64;
        (max != u64::MAX).then_some(max)
    }

    /// `reference || related_id` as stored: a revocation's serial field.
    fn serial_field(&self) -> [u8; 32] {
        self.validator_subject()
    }

    /// The serial number a certificate revocation names (its canonical bytes; call on
    /// validated revocations).
    pub fn revoked_serial(&self) -> Vec<u8> {
        let length = (self.category() as usize).min(CERTIFICATE_SERIAL_BYTES_MAX);
        self.serial_field()[..length].to_vec()
    }

    /// The record's bytes.
    pub fn as_bytes(&self) -> &[u8; TX_BYTES] {
        bytemuck::cast_ref(self)
    }

    /// The signed body (everything before the public key).
    pub fn body(&self) -> &[u8] {
        &self.as_bytes()[..TX_BODY_BYTES]
    }
}

impl std::fmt::Debug for TxRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxRecord")
            .field("id", &self.id())
            .field("debit_account", &self.debit_account())
            .field("credit_account", &self.credit_account())
            .field("amount", &self.amount())
            .field("ledger", &self.ledger())
            .field("kind", &u16::from_le_bytes(self.kind))
            .field("flags", &u16::from_le_bytes(self.flags))
            .finish_non_exhaustive()
    }
}

/// The message a record's signature covers: domain tag, network id, body.
pub fn signing_message(network_id: u64, record: &TxRecord) -> [u8; SIGNING_MESSAGE_BYTES] {
    let mut message = [0u8; SIGNING_MESSAGE_BYTES];
    message[..16].copy_from_slice(&SIGNING_DOMAIN_TAG);
    message[16..24].copy_from_slice(&network_id.to_le_bytes());
    message[24..].copy_from_slice(record.body());
    message
}

/// The units of a run of records, in order, as index ranges: a record of its own, or a
/// linked chain (a maximal run of linked records and the record that closes it; a chain
/// still open at the end of the run ends there). `linked` says whether an item carries the
/// linked flag. Every place that cuts records into units (ingress, the signature stage,
/// passed-on transactions, the client library's batches) uses this one iterator.
pub fn linked_units<T, F: Fn(&T) -> bool>(items: &[T], linked: F) -> LinkedUnits<'_, T, F> {
    LinkedUnits {
        items,
        start: 0,
        linked,
    }
}

/// The iterator of [`linked_units`].
pub struct LinkedUnits<'a, T, F> {
    items: &'a [T],
    start: usize,
    linked: F,
}

impl<T, F: Fn(&T) -> bool> Iterator for LinkedUnits<'_, T, F> {
    type Item = std::ops::Range<usize>;

    fn next(&mut self) -> Option<std::ops::Range<usize>> {
        let start = self.start;
        if start >= self.items.len() {
            return None;
        }
        let end = self.items[start..]
            .iter()
            .position(|item| !(self.linked)(item))
            .map_or(self.items.len(), |close| start + close + 1);
        self.start = end;
        Some(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builder_makes_a_well_formed_record_of_its_kind() {
        let (id, ledger) = (7u128, 702u32);
        let built = [
            (
                TxKind::Transfer,
                TxFields::pending_transfer(id, ledger, 10, 11, 5, 60),
            ),
            (
                TxKind::Transfer,
                TxFields::post_pending(id, ledger, 10, 11, 5, 3),
            ),
            (
                TxKind::Transfer,
                TxFields::void_pending(id, ledger, 10, 11, 5, 3),
            ),
            (
                TxKind::TaxedPayment,
                TxFields::taxed_payment(id, ledger, 100, 200, 5, 1),
            ),
            (TxKind::Refund, TxFields::refund(id, ledger, 200, 100, 5, 3)),
            (TxKind::Pledge, TxFields::pledge(id, ledger, 1, 10, 5)),
            (TxKind::Redeem, TxFields::redeem(id, ledger, 10, 1, 5)),
            (TxKind::Suspend, TxFields::suspend(id, ledger, 1, 10)),
            (TxKind::Reinstate, TxFields::reinstate(id, ledger, 1, 10)),
            (
                TxKind::SetTaxRate,
                TxFields::set_tax_rate(
                    id,
                    ledger,
                    2,
                    1,
                    900,
                    1_000,
                    Some(TaxBasis::Gross),
                    Some(Rounding::Down),
                    true,
                ),
            ),
            (
                TxKind::SetTaxRate,
                TxFields::set_tax_rate(id, ledger, 2, 1, 900, 1_000, None, None, false),
            ),
        ];
        let queue_ops = [
            TxKind::QueueHold,
            TxKind::QueueRelease,
            TxKind::QueueCancel,
            TxKind::QueueReprioritise,
        ]
        .map(|kind| {
            (
                kind,
                TxFields::queue_operation(kind, id, ledger, 10, 3, true).unwrap(),
            )
        });
        for (kind, fields) in built.into_iter().chain(queue_ops) {
            let record = TxRecord::new(&fields.valid_until(1));
            assert_eq!(record.kind(), Some(kind));
            assert_eq!(record.validate(), Ok(()), "{kind:?}: {fields:?}");
        }
        // the urgent flag is a re-prioritisation's alone
        let hold = TxFields::queue_operation(TxKind::QueueHold, id, ledger, 10, 3, true).unwrap();
        assert_eq!(hold.flags.0, 0);
        assert!(TxFields::queue_operation(TxKind::Transfer, id, ledger, 10, 3, false).is_none());
    }

    #[test]
    fn lifecycle_builders_make_well_formed_records_and_each_malformation_has_its_error() {
        let key: [u8; 32] =
            ed25519_zebra::VerificationKey::from(&SigningKey::from([9u8; 32])).into();
        let (id, ledger) = (7u128, 702u32);
        let built = [
            (
                TxKind::OpenAccount,
                TxFields::open_account(id, ledger, 1, 300, ROLE_CODE_CONSUMER, 10, &key),
            ),
            (
                TxKind::OpenAccount,
                TxFields::open_account(id, ledger, 1, 301, ROLE_CODE_BANK, 0, &key),
            ),
            (
                TxKind::CloseAccount,
                TxFields::close_account(id, ledger, 10, 300),
            ),
            (
                TxKind::RotateKey,
                TxFields::rotate_key(id, ledger, 300, None, &key),
            ),
            (
                TxKind::RotateKey,
                TxFields::rotate_key(id, ledger, 300, Some(1), &key),
            ),
            (
                TxKind::SetLimits,
                TxFields::set_limits(id, ledger, 1, 300, 50, Some(1_000)),
            ),
            (
                TxKind::SetLimits,
                TxFields::set_limits(id, ledger, 1, 300, 0, None),
            ),
            (
                TxKind::AddBank,
                TxFields::add_bank(id, ledger, 1, 20, &key, None),
            ),
            (
                TxKind::AddBank,
                TxFields::add_bank(id, ledger, 1, 20, &key, Some((500, 10, ROLE_CODE_MERCHANT))),
            ),
        ];
        for (kind, fields) in built {
            let record = TxRecord::new(&fields.valid_until(1));
            assert_eq!(record.kind(), Some(kind));
            assert!(kind.is_lifecycle());
            assert_eq!(record.validate(), Ok(()), "{kind:?}: {fields:?}");
            if kind.carries_owner_key() {
                assert_eq!(record.owner_key(), key);
            }
        }
        let limits = TxRecord::new(
            &TxFields::set_limits(id, ledger, 1, 300, 50, Some(1_000)).valid_until(1),
        );
        assert_eq!(
            (limits.amount(), limits.balance_max_limit()),
            (50, Some(1_000))
        );
        let none = TxRecord::new(&TxFields::set_limits(id, ledger, 1, 300, 0, None).valid_until(1));
        assert_eq!(none.balance_max_limit(), None);
        let fields_error = |fields: TxFields| match TxRecord::new(&fields.valid_until(1)).validate()
        {
            Err(DecodeError::AccountFields { reason, .. }) => reason,
            other => panic!("{fields:?}: {other:?}"),
        };
        let open = TxFields::open_account(id, ledger, 1, 300, ROLE_CODE_CONSUMER, 10, &key);
        assert!(fields_error(TxFields {
            category: 2,
            ..open
        })
        .contains("role"));
        assert!(fields_error(TxFields { amount: 0, ..open }).contains("names the bank"));
        assert!(fields_error(TxFields {
            category: ROLE_CODE_OBSERVER,
            ..open
        })
        .contains("only a merchant"));
        assert!(fields_error(TxFields {
            credit_account: 0,
            ..open
        })
        .contains("credit account"));
        let close = TxFields::close_account(id, ledger, 10, 300);
        assert!(fields_error(TxFields {
            related_id: 1,
            ..close
        })
        .contains("related_id"));
        assert_eq!(
            TxRecord::new(&TxFields { amount: 5, ..close }.valid_until(1)).validate(),
            Err(DecodeError::UnexpectedAmount {
                kind: "close_account",
                amount: 5
            })
        );
        assert_eq!(
            TxRecord::new(
                &TxFields {
                    category: 5,
                    ..close
                }
                .valid_until(1)
            )
            .validate(),
            Err(DecodeError::UnexpectedCategory(5))
        );
        let set = TxFields::set_limits(id, ledger, 1, 300, 0, None);
        assert!(fields_error(TxFields {
            amount: OVERDRAFT_MAX_LIMIT + 1,
            ..set
        })
        .contains("overdraft"));
        assert!(fields_error(TxFields {
            reference: 1 << 64,
            ..set
        })
        .contains("balance maximum"));
        let add = TxFields::add_bank(id, ledger, 1, 20, &key, Some((500, 10, ROLE_CODE_MERCHANT)));
        assert!(fields_error(TxFields {
            reserved_a: ADD_BANK_ACCOUNTS_MAX + 1,
            ..add
        })
        .contains("more customers"));
        assert!(fields_error(TxFields { amount: 0, ..add }).contains("first id"));
        assert!(fields_error(TxFields {
            category: ROLE_CODE_BANK,
            ..add
        })
        .contains("role"));
        assert!(fields_error(TxFields {
            credit_account: 505,
            ..add
        })
        .contains("own id"));
        assert!(fields_error(TxFields {
            amount: u64::MAX - 2,
            ..add
        })
        .contains("past the last id"));
        assert!(fields_error(TxFields {
            reserved_a: 0,
            ..add
        })
        .contains("without customers"));
        // a key that is not a curve point
        let not_a_point = (1u8..)
            .map(|i| [i; 32])
            .find(|bytes| ed25519_zebra::VerificationKey::try_from(*bytes).is_err())
            .unwrap();
        let rotate = TxFields::rotate_key(id, ledger, 300, None, &not_a_point);
        assert_eq!(
            TxRecord::new(&rotate.valid_until(1)).validate(),
            Err(DecodeError::OwnerKey("rotate_key"))
        );
        // no lifecycle kind takes a flag (none is linked)
        let linked = TxFields {
            flags: TxFlags(TxFlags::LINKED),
            ..close
        };
        assert!(matches!(
            TxRecord::new(&linked.valid_until(1)).validate(),
            Err(DecodeError::FlagNotForKind { .. })
        ));
    }

    #[test]
    fn linked_units_cut_single_records_and_whole_chains() {
        // 'L' is a linked record, '.' one without the flag.
        let cut = |flags: &str| -> Vec<std::ops::Range<usize>> {
            let items: Vec<char> = flags.chars().collect();
            linked_units(&items, |c| *c == 'L').collect()
        };
        assert_eq!(cut(""), vec![]);
        assert_eq!(cut("."), vec![0..1]);
        assert_eq!(cut("L"), vec![0..1], "an open chain ends with the run");
        assert_eq!(cut("..L."), vec![0..1, 1..2, 2..4]);
        assert_eq!(cut("LL.L"), vec![0..3, 3..4]);
        assert_eq!(cut(".LLL.LL"), vec![0..1, 1..5, 5..7]);
    }

    fn transfer() -> TxFields {
        TxFields {
            id: 7,
            debit_account: 100,
            credit_account: 200,
            amount: 5_00,
            ledger: 702,
            kind: TxKind::Transfer,
            flags: TxFlags::default(),
            reference: 99,
            related_id: 0,
            category: 0,
            reserved_a: 0,
            valid_until: 1_000,
        }
    }

    #[test]
    fn fields_round_trip_through_bytes() {
        let key = SigningKey::from([3u8; 32]);
        let record = TxRecord::signed(&transfer(), 1, &key);
        let decoded = TxRecord::decode(record.as_bytes()).expect("valid record");
        assert_eq!(decoded.fields(), transfer());
        assert_eq!(decoded, record);
        // little-endian on the wire whatever the host
        assert_eq!(&record.as_bytes()[0..16], &7u128.to_le_bytes());
        assert_eq!(&record.as_bytes()[32..40], &500u64.to_le_bytes());
    }

    #[test]
    fn every_malformed_record_has_its_own_error() {
        let good = TxRecord::new(&transfer());
        let with = |edit: &dyn Fn(&mut [u8; TX_BYTES])| {
            let mut bytes = *good.as_bytes();
            edit(&mut bytes);
            TxRecord::decode(&bytes)
        };
        assert_eq!(
            TxRecord::decode(&good.as_bytes()[..191]),
            Err(DecodeError::WrongLength {
                expected: 192,
                found: 191
            })
        );
        assert_eq!(with(&|b| b[0..16].fill(0)), Err(DecodeError::ZeroId));
        assert_eq!(with(&|b| b[32..40].fill(0)), Err(DecodeError::ZeroAmount));
        assert_eq!(with(&|b| b[40..44].fill(0)), Err(DecodeError::ZeroLedger));
        assert_eq!(with(&|b| b[44] = 99), Err(DecodeError::UnknownKind(99)));
        assert_eq!(
            with(&|b| b[47] = 0x80),
            Err(DecodeError::UnknownFlags(0x8000))
        );
        assert_eq!(
            with(&|b| b[88..96].fill(0)),
            Err(DecodeError::ZeroValidUntil)
        );
        assert_eq!(with(&|b| b[85] = 1), Err(DecodeError::ReservedNotZero));
        assert_eq!(
            with(&|b| b[24..32].copy_from_slice(&100u64.to_le_bytes())),
            Err(DecodeError::SameAccount(100))
        );
        assert_eq!(
            with(&|b| b[80] = 3),
            Err(DecodeError::UnexpectedCategory(3))
        );
        assert_eq!(with(&|b| b[44] = 2), Err(DecodeError::MissingCategory));
        // queue cancel: no amount, no credit account, names the queued payment
        assert_eq!(
            with(&|b| b[44] = 11),
            Err(DecodeError::UnexpectedAmount {
                kind: "queue_cancel",
                amount: 500
            })
        );
        assert_eq!(
            with(&|b| {
                b[44] = 11;
                b[32..40].fill(0);
            }),
            Err(DecodeError::UnexpectedCreditAccount {
                kind: "queue_cancel",
                account: 200
            })
        );
        assert_eq!(
            with(&|b| {
                b[44] = 11;
                b[32..40].fill(0);
                b[24..32].fill(0);
            }),
            Err(DecodeError::MissingRelatedId("queue_cancel"))
        );
        assert_eq!(
            with(&|b| b[46] = (TxFlags::TAX_TO_SUB_ACCOUNT) as u8),
            Err(DecodeError::FlagNotForKind {
                kind: "transfer",
                flags: TxFlags::TAX_TO_SUB_ACCOUNT
            })
        );
        assert_eq!(
            with(&|b| b[46] = (TxFlags::PENDING | TxFlags::VOID_PENDING) as u8),
            Err(DecodeError::FlagsConflict)
        );
        // a warehoused payment carries its value date in reserved_a, is never linked nor
        // two-phase
        let flags = |bits: u16| {
            move |b: &mut [u8; TX_BYTES]| {
                b[46..48].copy_from_slice(&bits.to_le_bytes());
                b[84..88].copy_from_slice(&20_800u32.to_le_bytes());
            }
        };
        let warehoused = with(&flags(TxFlags::WAREHOUSED | TxFlags::URGENT)).unwrap();
        assert_eq!(warehoused.reserved_a(), 20_800);
        assert_eq!(
            with(&flags(TxFlags::WAREHOUSED | TxFlags::LINKED)),
            Err(DecodeError::FlagsConflict)
        );
        assert_eq!(
            with(&flags(TxFlags::WAREHOUSED | TxFlags::PENDING)),
            Err(DecodeError::FlagsConflict)
        );
        assert_eq!(
            with(&|b| b[46] = TxFlags::POST_PENDING as u8),
            Err(DecodeError::MissingRelatedId(
                "post or void of a pending transfer"
            ))
        );
        // a pending transfer carries its timeout in reserved_a
        let pending = with(&|b| {
            b[46] = TxFlags::PENDING as u8;
            b[84] = 30;
        })
        .expect("a pending transfer with a timeout is well formed");
        assert_eq!(pending.reserved_a(), 30);
        assert_eq!(with(&|b| b[84] = 30), Err(DecodeError::ReservedNotZero));
        let mut rate = TxFields {
            kind: TxKind::SetTaxRate,
            credit_account: 0,
            amount: 0,
            category: 4,
            reserved_a: 10_001,
            ..transfer()
        };
        assert_eq!(
            TxRecord::new(&rate).validate(),
            Err(DecodeError::TaxRateOverFull(10_001))
        );
        rate.reserved_a = 10_000;
        rate.amount = 5; // its effective-from time
        assert_eq!(TxRecord::new(&rate).effective_from_ms(), 5);
        assert_eq!(TxRecord::new(&rate).validate(), Ok(()));
        // a rate names at most one basis and at most one rounding rule, or neither
        for basis in TaxBasis::ALL {
            for rounding in Rounding::ALL {
                rate.flags = TxFlags(TxFlags::of_basis(basis) | TxFlags::of_rounding(rounding));
                let record = TxRecord::new(&rate);
                assert_eq!(record.validate(), Ok(()));
                assert_eq!(record.flags().tax_basis(), Some(basis));
                assert_eq!(record.flags().tax_rounding(), Some(rounding));
            }
        }
        rate.flags = TxFlags(TxFlags::TAX_TO_SUB_ACCOUNT);
        let record = TxRecord::new(&rate);
        assert_eq!(record.validate(), Ok(()));
        assert_eq!(record.flags().tax_basis(), None);
        assert_eq!(record.flags().tax_rounding(), None);
        rate.flags = TxFlags(TxFlags::TAX_BASIS_INCLUSIVE | TxFlags::TAX_BASIS_GROSS);
        assert_eq!(
            TxRecord::new(&rate).validate(),
            Err(DecodeError::TaxBasisConflict)
        );
        rate.flags = TxFlags(TxFlags::TAX_ROUND_DOWN | TxFlags::TAX_ROUND_HALF_EVEN);
        assert_eq!(
            TxRecord::new(&rate).validate(),
            Err(DecodeError::TaxRoundingConflict)
        );
        // the basis and rounding flags belong to the rate record alone
        let payment = TxFields {
            kind: TxKind::TaxedPayment,
            category: 1,
            flags: TxFlags(TxFlags::TAX_BASIS_EXCLUSIVE),
            ..transfer()
        };
        assert_eq!(
            TxRecord::new(&payment).validate(),
            Err(DecodeError::FlagNotForKind {
                kind: "taxed_payment",
                flags: TxFlags::TAX_BASIS_EXCLUSIVE
            })
        );
    }

    #[test]
    fn signature_is_bound_to_the_network() {
        let key = SigningKey::from([5u8; 32]);
        let record = TxRecord::signed(&transfer(), 1, &key);
        let vk = ed25519_zebra::VerificationKey::try_from(record.public_key).unwrap();
        let signature = ed25519_zebra::Signature::from_bytes(&record.signature);
        assert!(vk.verify(&signature, &signing_message(1, &record)).is_ok());
        assert!(vk.verify(&signature, &signing_message(2, &record)).is_err());
    }

    #[test]
    fn a_revocation_carries_its_serial_in_one_encoding() {
        let fields = TxFields::revoke_certificate(7, 1, 99, "00ab01ff")
            .unwrap()
            .valid_until(1);
        let record = TxRecord::new(&fields);
        assert_eq!(record.validate(), Ok(()));
        assert_eq!(record.kind(), Some(TxKind::RevokeCertificate));
        assert_eq!(record.debit_account(), 99);
        assert_eq!(record.category(), 3, "leading zero bytes are dropped");
        assert_eq!(record.revoked_serial(), vec![0xab, 0x01, 0xff]);
        // 20 bytes, the longest serial: 16 in reference, 4 in related_id
        let long = "7f".repeat(20);
        let record = TxRecord::new(
            &TxFields::revoke_certificate(7, 1, 99, &long)
                .unwrap()
                .valid_until(1),
        );
        assert_eq!(record.validate(), Ok(()));
        assert_eq!(record.revoked_serial(), vec![0x7f; 20]);
        for bad in ["", "00", "zz", &"01".repeat(21)] {
            assert!(
                matches!(
                    TxFields::revoke_certificate(7, 1, 99, bad),
                    Err(DecodeError::RevocationSerial(_))
                ),
                "{bad:?}"
            );
        }
        // a record built by hand: length out of range, a leading zero, bytes after it
        let base = TxFields::revoke_certificate(7, 1, 99, "ab")
            .unwrap()
            .valid_until(1);
        for malformed in [
            TxFields {
                category: 0,
                ..base
            },
            TxFields {
                category: 21,
                ..base
            },
            TxFields {
                reference: base.reference << 8,
                category: 2,
                ..base
            },
            TxFields {
                related_id: 1,
                ..base
            },
        ] {
            assert!(matches!(
                TxRecord::new(&malformed).validate(),
                Err(DecodeError::RevocationSerial(_))
            ));
        }
        let credit = TxFields {
            credit_account: 5,
            ..base
        };
        assert!(matches!(
            TxRecord::new(&credit).validate(),
            Err(DecodeError::UnexpectedCreditAccount { .. })
        ));
    }
}
