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
//! | 32 | 8 | `amount` (gross amount for a taxed payment), never zero |
//! | 40 | 4 | `ledger` (currency code), never zero |
//! | 44 | 2 | `kind` ([`TxKind`]) |
//! | 46 | 2 | `flags` ([`TxFlags`]) |
//! | 48 | 16 | `reference`: u128 invoice or payment reference, free for the client |
//! | 64 | 16 | `related_id`: u128 id of a related transaction (refund of, post of), or zero |
//! | 80 | 4 | `category`: tax category of a taxed payment, else zero |
//! | 84 | 4 | `reserved_a`: must be zero |
//! | 88 | 8 | `reserved_b`: must be zero |
//! | 96 | 32 | `public_key`: the signer's Ed25519 public key |
//! | 128 | 64 | `signature`: Ed25519 over [`signing_message`] |
//!
//! The signed message is a 16-byte domain tag, the 8-byte network id and the 96-byte body
//! (offsets 0..96): 120 bytes, so a signature is bound to one network and cannot be replayed
//! on another.

use bytemuck::{Pod, Zeroable};
use ed25519_zebra::SigningKey;

/// Bytes in one record.
pub const TX_BYTES: usize = 192;
/// Bytes of the signed body (everything before the public key).
pub const TX_BODY_BYTES: usize = 96;
/// Domain tag at the start of every signed message.
pub const SIGNING_DOMAIN_TAG: [u8; 16] = *b"TALLY-TX-V1\0\0\0\0\0";
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
    reserved_b: [u8; 8],
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
    /// Move `amount` from the debit account to the credit account.
    Transfer = 1,
    /// Gross `amount` from the payer; tax by `category` to the tax authority, the rest to the
    /// payee, atomically.
    TaxedPayment = 2,
    /// Central bank mints `amount` of reserves to the credit account (signed by the central
    /// bank; the debit account is the central bank's issuance account).
    Pledge = 3,
    /// Central bank burns `amount` of reserves from the debit account back to issuance.
    Redeem = 4,
}

impl TxKind {
    /// Every kind, in wire order.
    pub const ALL: [TxKind; 4] = [
        TxKind::Transfer,
        TxKind::TaxedPayment,
        TxKind::Pledge,
        TxKind::Redeem,
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
        }
    }
}

/// Flag bits. Bits not named here must be zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TxFlags(pub u16);

impl TxFlags {
    /// An urgent payment: settles before normal ones when queued.
    pub const URGENT: u16 = 1 << 0;
    /// Every bit that has a meaning.
    pub const KNOWN: u16 = TxFlags::URGENT;
}

/// Why a record is malformed. Each reason has its own result code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a transaction record is {expected} bytes, got {found}")]
    WrongLength { expected: usize, found: usize },
    #[error("transaction id 0 is reserved: choose a non-zero u128 id")]
    ZeroId,
    #[error("amount 0 moves nothing: a transaction must carry a positive amount")]
    ZeroAmount,
    #[error("ledger 0 is reserved: name the currency ledger of the accounts")]
    ZeroLedger,
    #[error("unknown transaction kind {0}: expected 1 (transfer), 2 (taxed payment), 3 (pledge) or 4 (redeem)")]
    UnknownKind(u16),
    #[error("unknown flag bits {0:#06x} are set")]
    UnknownFlags(u16),
    #[error("reserved bytes must be zero")]
    ReservedNotZero,
    #[error("debit and credit account are the same account {0}")]
    SameAccount(u64),
    #[error("a taxed payment needs a non-zero tax category")]
    MissingCategory,
    #[error("only a taxed payment carries a tax category, got category {0}")]
    UnexpectedCategory(u32),
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
            reserved_a: [0; 4],
            reserved_b: [0; 8],
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

    /// Checks the format rules that need no ledger state.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let kind_wire = u16::from_le_bytes(self.kind);
        let kind = TxKind::from_wire(kind_wire).ok_or(DecodeError::UnknownKind(kind_wire))?;
        let flags = u16::from_le_bytes(self.flags);
        if flags & !TxFlags::KNOWN != 0 {
            return Err(DecodeError::UnknownFlags(flags & !TxFlags::KNOWN));
        }
        if self.reserved_a != [0; 4] || self.reserved_b != [0; 8] {
            return Err(DecodeError::ReservedNotZero);
        }
        if self.id() == 0 {
            return Err(DecodeError::ZeroId);
        }
        if self.amount() == 0 {
            return Err(DecodeError::ZeroAmount);
        }
        if self.ledger() == 0 {
            return Err(DecodeError::ZeroLedger);
        }
        if self.debit_account() == self.credit_account() {
            return Err(DecodeError::SameAccount(self.debit_account()));
        }
        let category = self.category();
        match (kind, category) {
            (TxKind::TaxedPayment, 0) => Err(DecodeError::MissingCategory),
            (TxKind::TaxedPayment, _) | (_, 0) => Ok(()),
            (_, other) => Err(DecodeError::UnexpectedCategory(other)),
        }
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
    pub fn related_id(&self) -> u128 {
        u128::from_le_bytes(self.related_id)
    }
    pub fn category(&self) -> u32 {
        u32::from_le_bytes(self.category)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(with(&|b| b[44] = 9), Err(DecodeError::UnknownKind(9)));
        assert_eq!(
            with(&|b| b[47] = 0x80),
            Err(DecodeError::UnknownFlags(0x8000))
        );
        assert_eq!(with(&|b| b[90] = 1), Err(DecodeError::ReservedNotZero));
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
}
