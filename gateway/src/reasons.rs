//! Result codes to ISO 20022 status reasons (ExternalStatusReason1Code): the table of
//! docs/ISO20022.md. Keyed by the result code's name, so that codes a later ledger adds are
//! mapped by name before they exist in `ResultCode` (the business day's are listed already).
//! A pacs.002 `RJCT` carries the ISO code in `StsRsnInf/Rsn/Cd` and the result code's name and
//! meaning in `AddtlInf`, so that no detail the ledger gave is lost to a coarser ISO code.

use tally_protocol::result::ResultCode;

/// `MS03`: reason not specified (the agent's own): for codes a participant's payment never
/// meets (the central bank's, validators' and lifecycle records').
pub const NOT_SPECIFIED: &str = "MS03";

/// The gateway's own refusals, before a record is sent.
pub const INVALID_FILE_FORMAT: &str = "FF01";
pub const BANK_IDENTIFIER_INCORRECT: &str = "RC01";
pub const INVALID_CURRENCY: &str = "AM11";
pub const INVALID_AMOUNT: &str = "AM12";
pub const INCORRECT_ACCOUNT: &str = "AC01";
pub const INVALID_DATE: &str = "DT01";
pub const TRANSACTION_NOT_SUPPORTED: &str = "AG03";
pub const DUPLICATION: &str = "AM05";

/// Result code name -> ISO reason code, for every code but `ok` and `queued` (which are not
/// rejections: `ACSC` and `ACSP`).
pub const REASONS: &[(&str, &str)] = &[
    ("bad_signature", "DS0B"),
    ("malformed_length", "FF01"),
    ("malformed_zero_id", "FF01"),
    ("malformed_zero_amount", "AM01"),
    ("malformed_zero_ledger", "AM11"),
    ("malformed_unknown_kind", "FF01"),
    ("malformed_unknown_flags", "FF01"),
    ("malformed_reserved_not_zero", "FF01"),
    ("malformed_same_account", "AC01"),
    ("malformed_missing_category", "FF01"),
    ("malformed_unexpected_category", "FF01"),
    ("unknown_debit_account", "AC02"),
    ("unknown_credit_account", "AC03"),
    ("not_owner", "AG01"),
    ("insufficient_funds", "AM04"),
    ("duplicate_id", "AM05"),
    ("ledger_mismatch", "AM11"),
    ("not_permitted", "AG01"),
    ("not_central_bank", "AG01"),
    ("unknown_tax_category", "FF01"),
    ("overflow", "AM02"),
    ("malformed_unexpected_amount", "FF01"),
    ("malformed_missing_related_id", "FF01"),
    ("malformed_flag_not_for_kind", "FF01"),
    ("malformed_flags_conflict", "FF01"),
    ("malformed_unexpected_credit_account", "FF01"),
    ("malformed_tax_rate_over_full", "FF01"),
    ("observer_read_only", "AG01"),
    ("debit_account_suspended", "AC06"),
    ("credit_account_suspended", "AC06"),
    ("not_tax_authority", "AG01"),
    ("tax_rate_in_the_past", NOT_SPECIFIED),
    ("tax_rate_table_full", NOT_SPECIFIED),
    ("balance_limit_exceeded", "AM14"),
    ("queue_full", "AM04"),
    ("queued_payment_not_found", "NOOR"),
    ("queued_payment_already_held", NOT_SPECIFIED),
    ("queued_payment_not_held", NOT_SPECIFIED),
    ("queued_payment_priority_unchanged", NOT_SPECIFIED),
    ("already_suspended", NOT_SPECIFIED),
    ("not_suspended", NOT_SPECIFIED),
    ("refund_of_unknown_payment", "NOOR"),
    ("refund_accounts_mismatch", "AC01"),
    ("refund_exceeds_payment", "AM09"),
    ("pending_transfer_not_found", "NOOR"),
    ("pending_transfer_already_posted", "AM05"),
    ("pending_transfer_already_voided", NOT_SPECIFIED),
    ("pending_transfer_expired", NOT_SPECIFIED),
    ("pending_accounts_mismatch", "AC01"),
    ("pending_amount_exceeded", "AM09"),
    ("pending_amount_mismatch", "AM09"),
    ("pending_transfers_full", NOT_SPECIFIED),
    ("linked_event_failed", NOT_SPECIFIED),
    ("linked_event_chain_open", "FF01"),
    ("linked_not_accepted_by_node", NOT_SPECIFIED),
    ("linked_chain_too_long", "FF01"),
    ("malformed_unexpected_debit_account", "FF01"),
    ("malformed_unknown_validator_change", NOT_SPECIFIED),
    ("not_a_validator", NOT_SPECIFIED),
    ("validator_already_member", NOT_SPECIFIED),
    ("validator_not_member", NOT_SPECIFIED),
    ("validator_set_would_empty", NOT_SPECIFIED),
    ("validator_set_full", NOT_SPECIFIED),
    ("invalid_validator_key", NOT_SPECIFIED),
    ("validator_changes_full", NOT_SPECIFIED),
    ("validator_vote_already_counted", NOT_SPECIFIED),
    ("malformed_tax_basis_conflict", "FF01"),
    ("malformed_tax_rounding_conflict", "FF01"),
    ("tax_basis_not_named", NOT_SPECIFIED),
    ("tax_rounding_not_named", NOT_SPECIFIED),
    ("expired", "AB05"),
    ("valid_until_beyond_window", "DT01"),
    ("malformed_zero_valid_until", "FF01"),
    ("malformed_revocation_serial", NOT_SPECIFIED),
    ("certificate_already_revoked", NOT_SPECIFIED),
    ("revocation_list_full", NOT_SPECIFIED),
    ("malformed_account_fields", NOT_SPECIFIED),
    ("malformed_owner_key", NOT_SPECIFIED),
    ("account_exists", NOT_SPECIFIED),
    ("holding_bank_not_open", NOT_SPECIFIED),
    ("account_closed", "AC04"),
    ("account_not_empty", NOT_SPECIFIED),
    ("account_has_pending", NOT_SPECIFIED),
    ("account_has_queued", NOT_SPECIFIED),
    ("owner_key_unchanged", NOT_SPECIFIED),
    ("limit_below_use", NOT_SPECIFIED),
    ("refund_window_closed", "DT01"),
    // The business day's codes (docs/ISO20022.md): a payment after its type's cut-off, any
    // payment once the day closed, a value date passed or too far ahead, and a queued payment
    // rejected at the end of the day.
    ("after_cut_off", "TM01"),
    ("business_day_closed", "TM01"),
    ("value_date_passed", "DT01"),
    ("value_date_too_far", "DT01"),
    ("end_of_day_unsettled", "ED05"),
    ("warehouse_full", NOT_SPECIFIED),
    ("value_date_closed", "DT01"),
    ("no_business_calendar", "DT01"),
];

/// The ISO reason code of a rejection by the ledger (`None` for `ok`, `queued` and
/// `warehoused`).
pub fn reason_for(code: ResultCode) -> Option<&'static str> {
    reason_for_name(code.name())
}

/// The ISO reason code of a result code by name.
pub fn reason_for_name(name: &str) -> Option<&'static str> {
    REASONS
        .iter()
        .find(|(code, _)| *code == name)
        .map(|(_, reason)| *reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_has_one_reason_and_no_name_is_unknown() {
        for code in ResultCode::ALL {
            let reason = reason_for(code);
            if matches!(
                code,
                ResultCode::Ok | ResultCode::Queued | ResultCode::Warehoused
            ) {
                assert_eq!(reason, None, "{} is not a rejection", code.name());
            } else {
                let reason = reason.unwrap_or_else(|| panic!("{} has no reason", code.name()));
                assert_eq!(reason.len(), 4, "{}: {reason}", code.name());
                assert!(reason
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (name, _) in REASONS {
            assert!(names.insert(*name), "{name} is listed twice");
            assert!(
                ResultCode::ALL.iter().any(|code| code.name() == *name),
                "{name} is no result code"
            );
        }
        assert_eq!(reason_for(ResultCode::InsufficientFunds), Some("AM04"));
        assert_eq!(reason_for(ResultCode::DuplicateId), Some(DUPLICATION));
        assert_eq!(reason_for_name("end_of_day_unsettled"), Some("ED05"));
    }
}
