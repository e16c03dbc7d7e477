//! Per-transaction result codes: every rejection has its own code and a reason an operator can
//! read. Codes are part of the log format and the client protocol: never renumber them.

use crate::tx::DecodeError;

/// Outcome of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ResultCode {
    Ok = 0,
    BadSignature = 1,
    MalformedLength = 2,
    MalformedZeroId = 3,
    MalformedZeroAmount = 4,
    MalformedZeroLedger = 5,
    MalformedUnknownKind = 6,
    MalformedUnknownFlags = 7,
    MalformedReservedNotZero = 8,
    MalformedSameAccount = 9,
    MalformedMissingCategory = 10,
    MalformedUnexpectedCategory = 11,
    UnknownDebitAccount = 12,
    UnknownCreditAccount = 13,
    NotOwner = 14,
    InsufficientFunds = 15,
    DuplicateId = 16,
    LedgerMismatch = 17,
    NotPermitted = 18,
    NotCentralBank = 19,
    UnknownTaxCategory = 20,
    Overflow = 21,
}

impl ResultCode {
    /// Every code, in wire order.
    pub const ALL: [ResultCode; 22] = [
        ResultCode::Ok,
        ResultCode::BadSignature,
        ResultCode::MalformedLength,
        ResultCode::MalformedZeroId,
        ResultCode::MalformedZeroAmount,
        ResultCode::MalformedZeroLedger,
        ResultCode::MalformedUnknownKind,
        ResultCode::MalformedUnknownFlags,
        ResultCode::MalformedReservedNotZero,
        ResultCode::MalformedSameAccount,
        ResultCode::MalformedMissingCategory,
        ResultCode::MalformedUnexpectedCategory,
        ResultCode::UnknownDebitAccount,
        ResultCode::UnknownCreditAccount,
        ResultCode::NotOwner,
        ResultCode::InsufficientFunds,
        ResultCode::DuplicateId,
        ResultCode::LedgerMismatch,
        ResultCode::NotPermitted,
        ResultCode::NotCentralBank,
        ResultCode::UnknownTaxCategory,
        ResultCode::Overflow,
    ];

    /// The code for a byte read from the log or the wire.
    pub fn from_wire(value: u8) -> Option<ResultCode> {
        ResultCode::ALL.get(usize::from(value)).copied()
    }

    /// snake_case name for reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ResultCode::Ok => "ok",
            ResultCode::BadSignature => "bad_signature",
            ResultCode::MalformedLength => "malformed_length",
            ResultCode::MalformedZeroId => "malformed_zero_id",
            ResultCode::MalformedZeroAmount => "malformed_zero_amount",
            ResultCode::MalformedZeroLedger => "malformed_zero_ledger",
            ResultCode::MalformedUnknownKind => "malformed_unknown_kind",
            ResultCode::MalformedUnknownFlags => "malformed_unknown_flags",
            ResultCode::MalformedReservedNotZero => "malformed_reserved_not_zero",
            ResultCode::MalformedSameAccount => "malformed_same_account",
            ResultCode::MalformedMissingCategory => "malformed_missing_category",
            ResultCode::MalformedUnexpectedCategory => "malformed_unexpected_category",
            ResultCode::UnknownDebitAccount => "unknown_debit_account",
            ResultCode::UnknownCreditAccount => "unknown_credit_account",
            ResultCode::NotOwner => "not_owner",
            ResultCode::InsufficientFunds => "insufficient_funds",
            ResultCode::DuplicateId => "duplicate_id",
            ResultCode::LedgerMismatch => "ledger_mismatch",
            ResultCode::NotPermitted => "not_permitted",
            ResultCode::NotCentralBank => "not_central_bank",
            ResultCode::UnknownTaxCategory => "unknown_tax_category",
            ResultCode::Overflow => "overflow",
        }
    }

    /// Whether the transaction settled.
    pub fn is_ok(self) -> bool {
        self == ResultCode::Ok
    }
}

impl From<DecodeError> for ResultCode {
    fn from(error: DecodeError) -> ResultCode {
        match error {
            DecodeError::WrongLength { .. } => ResultCode::MalformedLength,
            DecodeError::ZeroId => ResultCode::MalformedZeroId,
            DecodeError::ZeroAmount => ResultCode::MalformedZeroAmount,
            DecodeError::ZeroLedger => ResultCode::MalformedZeroLedger,
            DecodeError::UnknownKind(_) => ResultCode::MalformedUnknownKind,
            DecodeError::UnknownFlags(_) => ResultCode::MalformedUnknownFlags,
            DecodeError::ReservedNotZero => ResultCode::MalformedReservedNotZero,
            DecodeError::SameAccount(_) => ResultCode::MalformedSameAccount,
            DecodeError::MissingCategory => ResultCode::MalformedMissingCategory,
            DecodeError::UnexpectedCategory(_) => ResultCode::MalformedUnexpectedCategory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_names_are_unique() {
        let mut names = std::collections::BTreeSet::new();
        for code in ResultCode::ALL {
            assert_eq!(ResultCode::from_wire(code as u8), Some(code));
            assert!(names.insert(code.name()));
        }
        assert_eq!(ResultCode::from_wire(ResultCode::ALL.len() as u8), None);
    }
}
