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
    /// An RTGS payment that lacked liquidity waits in its payer's queue: accepted; it settles, is cancelled or expires later.
    Queued = 22,
    MalformedUnexpectedAmount = 23,
    MalformedMissingRelatedId = 24,
    MalformedFlagNotForKind = 25,
    MalformedFlagsConflict = 26,
    MalformedUnexpectedCreditAccount = 27,
    MalformedTaxRateOverFull = 28,
    /// An observer (regulator) account is a party: observers read, never move money.
    ObserverReadOnly = 29,
    DebitAccountSuspended = 30,
    CreditAccountSuspended = 31,
    /// Only the tax authority's key, on its own account, may set tax rates.
    NotTaxAuthority = 32,
    /// A tax rate must take effect at or after the block's time.
    TaxRateInThePast = 33,
    TaxRateTableFull = 34,
    /// The credit would take an account above its balance maximum.
    BalanceLimitExceeded = 35,
    /// The RTGS queues hold their named maximum of payments.
    QueueFull = 36,
    /// No queued payment has this id (never queued, or already settled, cancelled or expired).
    QueuedPaymentNotFound = 37,
    QueuedPaymentAlreadyHeld = 38,
    QueuedPaymentNotHeld = 39,
    QueuedPaymentPriorityUnchanged = 40,
    AlreadySuspended = 41,
    NotSuspended = 42,
    /// related_id names no settled taxed payment.
    RefundOfUnknownPayment = 43,
    /// A refund is paid by the original payee to the original payer.
    RefundAccountsMismatch = 44,
    /// Refunds would add up to more than the gross of the payment.
    RefundExceedsPayment = 45,
    PendingTransferNotFound = 46,
    PendingTransferAlreadyPosted = 47,
    PendingTransferAlreadyVoided = 48,
    PendingTransferExpired = 49,
    PendingAccountsMismatch = 50,
    /// A post may settle at most the reserved amount.
    PendingAmountExceeded = 51,
    /// A void names exactly the reserved amount.
    PendingAmountMismatch = 52,
    PendingTransfersFull = 53,
    /// Another record of this linked chain failed: nothing of the chain settled.
    LinkedEventFailed = 54,
    /// The block ended inside this linked chain: nothing of the chain settled.
    LinkedEventChainOpen = 55,
    /// No longer produced: nodes used to refuse every linked record at ingress with it,
    /// before they kept a chain whole from ingress to the block. It stays in the table
    /// because codes are wire format and the log may hold it.
    LinkedNotAcceptedByNode = 56,
    /// The chain has more records than a node takes in one chain (`LINKED_CHAIN_TX_MAX`,
    /// or the node's mempool or block size when smaller), or than one submit batch holds
    /// (answered by the client library): nothing of it was taken.
    LinkedChainTooLong = 57,
    /// A validator vote names no accounts: its debit account must be 0.
    MalformedUnexpectedDebitAccount = 58,
    /// A validator vote's category is the change: 1 adds, 2 removes a validator.
    MalformedUnknownValidatorChange = 59,
    /// The signer of a validator vote is not a validator of the current epoch.
    NotAValidator = 60,
    /// The key a vote would add is already in the next epoch's set.
    ValidatorAlreadyMember = 61,
    /// The key a vote would remove is not in the next epoch's set.
    ValidatorNotMember = 62,
    /// The removal would leave the next epoch without validators.
    ValidatorSetWouldEmpty = 63,
    /// The addition would make the next epoch's set larger than its maximum.
    ValidatorSetFull = 64,
    /// The key a vote would add is not an Ed25519 public key.
    InvalidValidatorKey = 65,
    /// Too many distinct changes are pending a vote this epoch.
    ValidatorChangesFull = 66,
    /// This validator's vote for this change was counted already this epoch.
    ValidatorVoteAlreadyCounted = 67,
    /// A tax rate record sets more than one of the tax-basis flags.
    MalformedTaxBasisConflict = 68,
    /// A tax rate record sets more than one of the rounding flags.
    MalformedTaxRoundingConflict = 69,
    /// A tax rate record names no basis, and its category has no rate in force at the
    /// record's effective time whose basis it could keep.
    TaxBasisNotNamed = 70,
    /// A tax rate record names no rounding rule, and its category has no rate in force at
    /// the record's effective time whose rule it could keep.
    TaxRoundingNotNamed = 71,
    /// The record's `valid_until` is before the block's time (or, at ingress, before the
    /// time of the last block): it can never execute, and a copy of it never will.
    Expired = 72,
    /// The record's `valid_until` is further after the block's time than the genesis's
    /// validity window (`settlement.validity_window_ms`).
    ValidUntilBeyondWindow = 73,
    /// The record's `valid_until` is 0.
    MalformedZeroValidUntil = 74,
    /// A certificate revocation's serial number is malformed: its length (category) is not
    /// 1 to 20 bytes, its first byte is zero, or bytes after it are not zero.
    MalformedRevocationSerial = 75,
    /// The certificate's serial number is on the ledger's revocation list already.
    CertificateAlreadyRevoked = 76,
    /// The ledger's revocation list holds its maximum of serial numbers
    /// (`REVOKED_SERIALS_MAX`).
    RevocationListFull = 77,
    // 78 and 79 are unassigned.
    /// A lifecycle record's fields do not fit its kind (a role, a holding bank, a range of
    /// customers or a limit out of its bounds; the node's error says which).
    MalformedAccountFields = 80,
    /// The owner key a lifecycle record carries is not an Ed25519 public key.
    MalformedOwnerKey = 81,
    /// The account id to open (or one of an added bank's customers) is taken: an account of
    /// that id exists, open or closed (a genesis range's ids included).
    AccountExists = 82,
    /// The bank named to hold a new merchant or consumer is not an open bank account.
    HoldingBankNotOpen = 83,
    /// The record names a closed account: a closed account takes part in nothing.
    AccountClosed = 84,
    /// An account closes only at balance zero.
    AccountNotEmpty = 85,
    /// An account closes only when no pending transfer reserves anything to or from it.
    AccountHasPending = 86,
    /// An account closes only when no queued payment is from or to it.
    AccountHasQueued = 87,
    /// A key rotation names the key the account has already.
    OwnerKeyUnchanged = 88,
    /// New limits below what the account uses: its balance is above the new balance
    /// maximum, or it is overdrawn (with its reservations) further than the new overdraft.
    LimitBelowUse = 89,
    /// A refund of a taxed payment whose refund window (genesis
    /// `settlement.refund_window_ms`) has closed: the ledger no longer holds the payment.
    RefundWindowClosed = 90,
    /// Past its class's cut-off of the business day (customer, interbank or liquidity),
    /// before the end of day (genesis `settlement.calendar`).
    AfterCutOff = 91,
    /// Outside the business day: before its opening, on a closed weekday or a holiday.
    BusinessDayClosed = 92,
    /// A warehoused payment whose value date has ended: when sent, or when its value
    /// date's opening came only after its end of day.
    ValueDatePassed = 93,
    /// A warehoused payment's value date beyond the calendar's `warehouse_days` horizon.
    ValueDateTooFar = 94,
    /// A queued payment still unsettled at the end of its business day: its final status.
    EndOfDayUnsettled = 95,
    /// The warehouse holds its named maximum of payments.
    WarehouseFull = 96,
    /// A payment accepted ahead of its value date: it settles (or queues) at that day's
    /// opening, or is cancelled before.
    Warehoused = 97,
    /// A warehoused payment's value date is a closed weekday or a holiday.
    ValueDateClosed = 98,
    /// A warehoused payment on a network whose genesis has no business-day calendar.
    NoBusinessCalendar = 99,
}

impl ResultCode {
    /// Every code, in wire order.
    pub const ALL: [ResultCode; 98] = [
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
        ResultCode::Queued,
        ResultCode::MalformedUnexpectedAmount,
        ResultCode::MalformedMissingRelatedId,
        ResultCode::MalformedFlagNotForKind,
        ResultCode::MalformedFlagsConflict,
        ResultCode::MalformedUnexpectedCreditAccount,
        ResultCode::MalformedTaxRateOverFull,
        ResultCode::ObserverReadOnly,
        ResultCode::DebitAccountSuspended,
        ResultCode::CreditAccountSuspended,
        ResultCode::NotTaxAuthority,
        ResultCode::TaxRateInThePast,
        ResultCode::TaxRateTableFull,
        ResultCode::BalanceLimitExceeded,
        ResultCode::QueueFull,
        ResultCode::QueuedPaymentNotFound,
        ResultCode::QueuedPaymentAlreadyHeld,
        ResultCode::QueuedPaymentNotHeld,
        ResultCode::QueuedPaymentPriorityUnchanged,
        ResultCode::AlreadySuspended,
        ResultCode::NotSuspended,
        ResultCode::RefundOfUnknownPayment,
        ResultCode::RefundAccountsMismatch,
        ResultCode::RefundExceedsPayment,
        ResultCode::PendingTransferNotFound,
        ResultCode::PendingTransferAlreadyPosted,
        ResultCode::PendingTransferAlreadyVoided,
        ResultCode::PendingTransferExpired,
        ResultCode::PendingAccountsMismatch,
        ResultCode::PendingAmountExceeded,
        ResultCode::PendingAmountMismatch,
        ResultCode::PendingTransfersFull,
        ResultCode::LinkedEventFailed,
        ResultCode::LinkedEventChainOpen,
        ResultCode::LinkedNotAcceptedByNode,
        ResultCode::LinkedChainTooLong,
        ResultCode::MalformedUnexpectedDebitAccount,
        ResultCode::MalformedUnknownValidatorChange,
        ResultCode::NotAValidator,
        ResultCode::ValidatorAlreadyMember,
        ResultCode::ValidatorNotMember,
        ResultCode::ValidatorSetWouldEmpty,
        ResultCode::ValidatorSetFull,
        ResultCode::InvalidValidatorKey,
        ResultCode::ValidatorChangesFull,
        ResultCode::ValidatorVoteAlreadyCounted,
        ResultCode::MalformedTaxBasisConflict,
        ResultCode::MalformedTaxRoundingConflict,
        ResultCode::TaxBasisNotNamed,
        ResultCode::TaxRoundingNotNamed,
        ResultCode::Expired,
        ResultCode::ValidUntilBeyondWindow,
        ResultCode::MalformedZeroValidUntil,
        ResultCode::MalformedRevocationSerial,
        ResultCode::CertificateAlreadyRevoked,
        ResultCode::RevocationListFull,
        ResultCode::MalformedAccountFields,
        ResultCode::MalformedOwnerKey,
        ResultCode::AccountExists,
        ResultCode::HoldingBankNotOpen,
        ResultCode::AccountClosed,
        ResultCode::AccountNotEmpty,
        ResultCode::AccountHasPending,
        ResultCode::AccountHasQueued,
        ResultCode::OwnerKeyUnchanged,
        ResultCode::LimitBelowUse,
        ResultCode::RefundWindowClosed,
        ResultCode::AfterCutOff,
        ResultCode::BusinessDayClosed,
        ResultCode::ValueDatePassed,
        ResultCode::ValueDateTooFar,
        ResultCode::EndOfDayUnsettled,
        ResultCode::WarehouseFull,
        ResultCode::Warehoused,
        ResultCode::ValueDateClosed,
        ResultCode::NoBusinessCalendar,
    ];

    /// The code for a byte read from the log or the wire (wire values need not be
    /// contiguous: a range may be left for codes appended elsewhere).
    pub fn from_wire(value: u8) -> Option<ResultCode> {
        WIRE_CODES[usize::from(value)]
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
            ResultCode::Queued => "queued",
            ResultCode::MalformedUnexpectedAmount => "malformed_unexpected_amount",
            ResultCode::MalformedMissingRelatedId => "malformed_missing_related_id",
            ResultCode::MalformedFlagNotForKind => "malformed_flag_not_for_kind",
            ResultCode::MalformedFlagsConflict => "malformed_flags_conflict",
            ResultCode::MalformedUnexpectedCreditAccount => "malformed_unexpected_credit_account",
            ResultCode::MalformedTaxRateOverFull => "malformed_tax_rate_over_full",
            ResultCode::ObserverReadOnly => "observer_read_only",
            ResultCode::DebitAccountSuspended => "debit_account_suspended",
            ResultCode::CreditAccountSuspended => "credit_account_suspended",
            ResultCode::NotTaxAuthority => "not_tax_authority",
            ResultCode::TaxRateInThePast => "tax_rate_in_the_past",
            ResultCode::TaxRateTableFull => "tax_rate_table_full",
            ResultCode::BalanceLimitExceeded => "balance_limit_exceeded",
            ResultCode::QueueFull => "queue_full",
            ResultCode::QueuedPaymentNotFound => "queued_payment_not_found",
            ResultCode::QueuedPaymentAlreadyHeld => "queued_payment_already_held",
            ResultCode::QueuedPaymentNotHeld => "queued_payment_not_held",
            ResultCode::QueuedPaymentPriorityUnchanged => "queued_payment_priority_unchanged",
            ResultCode::AlreadySuspended => "already_suspended",
            ResultCode::NotSuspended => "not_suspended",
            ResultCode::RefundOfUnknownPayment => "refund_of_unknown_payment",
            ResultCode::RefundAccountsMismatch => "refund_accounts_mismatch",
            ResultCode::RefundExceedsPayment => "refund_exceeds_payment",
            ResultCode::PendingTransferNotFound => "pending_transfer_not_found",
            ResultCode::PendingTransferAlreadyPosted => "pending_transfer_already_posted",
            ResultCode::PendingTransferAlreadyVoided => "pending_transfer_already_voided",
            ResultCode::PendingTransferExpired => "pending_transfer_expired",
            ResultCode::PendingAccountsMismatch => "pending_accounts_mismatch",
            ResultCode::PendingAmountExceeded => "pending_amount_exceeded",
            ResultCode::PendingAmountMismatch => "pending_amount_mismatch",
            ResultCode::PendingTransfersFull => "pending_transfers_full",
            ResultCode::LinkedEventFailed => "linked_event_failed",
            ResultCode::LinkedEventChainOpen => "linked_event_chain_open",
            ResultCode::LinkedNotAcceptedByNode => "linked_not_accepted_by_node",
            ResultCode::LinkedChainTooLong => "linked_chain_too_long",
            ResultCode::MalformedUnexpectedDebitAccount => "malformed_unexpected_debit_account",
            ResultCode::MalformedUnknownValidatorChange => "malformed_unknown_validator_change",
            ResultCode::NotAValidator => "not_a_validator",
            ResultCode::ValidatorAlreadyMember => "validator_already_member",
            ResultCode::ValidatorNotMember => "validator_not_member",
            ResultCode::ValidatorSetWouldEmpty => "validator_set_would_empty",
            ResultCode::ValidatorSetFull => "validator_set_full",
            ResultCode::InvalidValidatorKey => "invalid_validator_key",
            ResultCode::ValidatorChangesFull => "validator_changes_full",
            ResultCode::ValidatorVoteAlreadyCounted => "validator_vote_already_counted",
            ResultCode::MalformedTaxBasisConflict => "malformed_tax_basis_conflict",
            ResultCode::MalformedTaxRoundingConflict => "malformed_tax_rounding_conflict",
            ResultCode::TaxBasisNotNamed => "tax_basis_not_named",
            ResultCode::TaxRoundingNotNamed => "tax_rounding_not_named",
            ResultCode::Expired => "expired",
            ResultCode::ValidUntilBeyondWindow => "valid_until_beyond_window",
            ResultCode::MalformedZeroValidUntil => "malformed_zero_valid_until",
            ResultCode::MalformedRevocationSerial => "malformed_revocation_serial",
            ResultCode::CertificateAlreadyRevoked => "certificate_already_revoked",
            ResultCode::RevocationListFull => "revocation_list_full",
            ResultCode::MalformedAccountFields => "malformed_account_fields",
            ResultCode::MalformedOwnerKey => "malformed_owner_key",
            ResultCode::AccountExists => "account_exists",
            ResultCode::HoldingBankNotOpen => "holding_bank_not_open",
            ResultCode::AccountClosed => "account_closed",
            ResultCode::AccountNotEmpty => "account_not_empty",
            ResultCode::AccountHasPending => "account_has_pending",
            ResultCode::AccountHasQueued => "account_has_queued",
            ResultCode::OwnerKeyUnchanged => "owner_key_unchanged",
            ResultCode::LimitBelowUse => "limit_below_use",
            ResultCode::RefundWindowClosed => "refund_window_closed",
            ResultCode::AfterCutOff => "after_cut_off",
            ResultCode::BusinessDayClosed => "business_day_closed",
            ResultCode::ValueDatePassed => "value_date_passed",
            ResultCode::ValueDateTooFar => "value_date_too_far",
            ResultCode::EndOfDayUnsettled => "end_of_day_unsettled",
            ResultCode::WarehouseFull => "warehouse_full",
            ResultCode::Warehoused => "warehoused",
            ResultCode::ValueDateClosed => "value_date_closed",
            ResultCode::NoBusinessCalendar => "no_business_calendar",
        }
    }

    /// What the code means, in a short sentence for people (`tally tx` prints it).
    pub fn meaning(self) -> &'static str {
        match self {
            ResultCode::Ok => "applied in its block (a payment: settled)",
            ResultCode::BadSignature => "the signature does not verify for this record and network",
            ResultCode::MalformedLength => "the record is not 192 bytes",
            ResultCode::MalformedZeroId => "transaction id 0 is reserved",
            ResultCode::MalformedZeroAmount => "a transaction that moves money needs a positive amount",
            ResultCode::MalformedZeroLedger => "ledger 0 is reserved",
            ResultCode::MalformedUnknownKind => "the transaction kind is unknown",
            ResultCode::MalformedUnknownFlags => "flag bits without a meaning are set",
            ResultCode::MalformedReservedNotZero => "reserved bytes are not zero",
            ResultCode::MalformedSameAccount => "debit and credit account are the same",
            ResultCode::MalformedMissingCategory => "a taxed payment or tax rate needs a tax category",
            ResultCode::MalformedUnexpectedCategory => "only a taxed payment or a tax rate carries a tax category",
            ResultCode::UnknownDebitAccount => "the debit account does not exist",
            ResultCode::UnknownCreditAccount => "the credit account does not exist",
            ResultCode::NotOwner => "the signing key is not the debit account's owner key",
            ResultCode::InsufficientFunds => "the payer lacks the funds (balance less reservations plus overdraft)",
            ResultCode::DuplicateId => "this transaction id was used already (the first record with it stands)",
            ResultCode::LedgerMismatch => "the record's ledger is not the accounts' currency ledger",
            ResultCode::NotPermitted => "the accounts' roles do not allow this transaction",
            ResultCode::NotCentralBank => "only the central bank's key on its issuance account may do this",
            ResultCode::UnknownTaxCategory => "no tax rate is in force for this category",
            ResultCode::Overflow => "a balance would overflow",
            ResultCode::Queued => "accepted: the payer lacks liquidity now, so the payment waits in its RTGS queue and settles, is cancelled or expires later",
            ResultCode::MalformedUnexpectedAmount => "this kind moves no money: its amount must be 0",
            ResultCode::MalformedMissingRelatedId => "the transaction it acts on (related id) is missing",
            ResultCode::MalformedFlagNotForKind => "a flag is set that this kind does not take",
            ResultCode::MalformedFlagsConflict => "at most one of pending, post and void may be set",
            ResultCode::MalformedUnexpectedCreditAccount => "this kind has no credit account",
            ResultCode::MalformedTaxRateOverFull => "a tax rate is at most 100% (10000 bp)",
            ResultCode::ObserverReadOnly => "an observer account reads, never moves money",
            ResultCode::DebitAccountSuspended => "the debit account is suspended",
            ResultCode::CreditAccountSuspended => "the credit account is suspended",
            ResultCode::NotTaxAuthority => "only the tax authority's key on its own account sets tax rates",
            ResultCode::TaxRateInThePast => "a tax rate takes effect at or after the block's time",
            ResultCode::TaxRateTableFull => "the tax rate table is full",
            ResultCode::BalanceLimitExceeded => "the credit would take the payee above its balance maximum",
            ResultCode::QueueFull => "the RTGS queues are full",
            ResultCode::QueuedPaymentNotFound => "no queued payment has this id (never queued, or settled, cancelled or expired)",
            ResultCode::QueuedPaymentAlreadyHeld => "the queued payment is held already",
            ResultCode::QueuedPaymentNotHeld => "the queued payment is not held",
            ResultCode::QueuedPaymentPriorityUnchanged => "the queued payment has this priority already",
            ResultCode::AlreadySuspended => "the participant is suspended already",
            ResultCode::NotSuspended => "the participant is not suspended",
            ResultCode::RefundOfUnknownPayment => "no settled taxed payment has this id",
            ResultCode::RefundAccountsMismatch => "a refund goes from the payment's payee to its payer",
            ResultCode::RefundExceedsPayment => "refunds would exceed the payment's gross",
            ResultCode::PendingTransferNotFound => "no open pending transfer has this id",
            ResultCode::PendingTransferAlreadyPosted => "the pending transfer was posted already",
            ResultCode::PendingTransferAlreadyVoided => "the pending transfer was voided already",
            ResultCode::PendingTransferExpired => "the pending transfer timed out",
            ResultCode::PendingAccountsMismatch => "the accounts are not the pending transfer's",
            ResultCode::PendingAmountExceeded => "a post settles at most the reserved amount",
            ResultCode::PendingAmountMismatch => "a void names exactly the reserved amount",
            ResultCode::PendingTransfersFull => "the table of pending transfers is full",
            ResultCode::LinkedEventFailed => "another record of its linked chain failed: nothing of the chain settled",
            ResultCode::LinkedEventChainOpen => "the block ended inside its linked chain: nothing of the chain settled",
            ResultCode::LinkedNotAcceptedByNode => "linked records were not accepted by this node (no longer produced)",
            ResultCode::LinkedChainTooLong => "the linked chain is longer than a node takes",
            ResultCode::MalformedUnexpectedDebitAccount => "this kind names no debit account",
            ResultCode::MalformedUnknownValidatorChange => "a validator vote adds (1) or removes (2)",
            ResultCode::NotAValidator => "the signer is not a validator of the current epoch",
            ResultCode::ValidatorAlreadyMember => "the key is in the next epoch's set already",
            ResultCode::ValidatorNotMember => "the key is not in the next epoch's set",
            ResultCode::ValidatorSetWouldEmpty => "the removal would leave no validator",
            ResultCode::ValidatorSetFull => "the validator set is at its maximum",
            ResultCode::InvalidValidatorKey => "the key is not an Ed25519 public key",
            ResultCode::ValidatorChangesFull => "too many changes are pending a vote this epoch",
            ResultCode::ValidatorVoteAlreadyCounted => "this validator's vote for the change was counted already",
            ResultCode::MalformedTaxBasisConflict => "a tax rate names at most one basis",
            ResultCode::MalformedTaxRoundingConflict => "a tax rate names at most one rounding rule",
            ResultCode::TaxBasisNotNamed => "no basis named and no rate in force whose basis it could keep",
            ResultCode::TaxRoundingNotNamed => "no rounding rule named and no rate in force whose rule it could keep",
            ResultCode::Expired => "its valid-until time passed before a block took it",
            ResultCode::ValidUntilBeyondWindow => "its valid-until time is beyond the genesis's validity window",
            ResultCode::MalformedZeroValidUntil => "valid-until 0 has passed",
            ResultCode::MalformedRevocationSerial => "the revoked serial number is malformed",
            ResultCode::CertificateAlreadyRevoked => "the certificate is revoked already",
            ResultCode::RevocationListFull => "the revocation list is full",
            ResultCode::MalformedAccountFields => "the lifecycle record's fields do not fit its kind",
            ResultCode::MalformedOwnerKey => "the owner key is not an Ed25519 public key",
            ResultCode::AccountExists => "an account of that id exists already (open or closed)",
            ResultCode::HoldingBankNotOpen => "the bank named to hold the account is not an open bank account",
            ResultCode::AccountClosed => "the record names a closed account",
            ResultCode::AccountNotEmpty => "an account closes only at balance zero",
            ResultCode::AccountHasPending => "a pending transfer reserves to or from the account",
            ResultCode::AccountHasQueued => "a queued payment is from or to the account",
            ResultCode::OwnerKeyUnchanged => "the account has this owner key already",
            ResultCode::LimitBelowUse => "the account uses more than the new limits allow",
            ResultCode::RefundWindowClosed => "the refund window of the taxed payment has closed",
            ResultCode::AfterCutOff => "past the cut-off of the payment's class (customer, interbank or liquidity) for today's business day",
            ResultCode::BusinessDayClosed => "outside the business day: before its opening, after its end of day, or on a closed day",
            ResultCode::ValueDatePassed => "the warehoused payment's value date has ended",
            ResultCode::ValueDateTooFar => "the warehoused payment's value date is beyond the calendar's warehousing horizon",
            ResultCode::EndOfDayUnsettled => "still queued at the end of its business day: rejected, nothing moved",
            ResultCode::WarehouseFull => "the warehouse holds its maximum of payments",
            ResultCode::Warehoused => "accepted ahead of its value date: settles or queues at that day's opening",
            ResultCode::ValueDateClosed => "the warehoused payment's value date is a closed weekday or a holiday",
            ResultCode::NoBusinessCalendar => "the genesis has no business-day calendar: payments cannot be warehoused",
        }
    }

    /// Whether the transaction was accepted: it settled (`ok`), or it waits in an RTGS queue
    /// (`queued`) or in the warehouse for its value date (`warehoused`) and will settle, be
    /// cancelled or expire later. An accepted transaction
    /// uses up its id; a rejected one changes nothing.
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            ResultCode::Ok | ResultCode::Queued | ResultCode::Warehoused
        )
    }

    /// Whether the transaction settled in its own block.
    pub fn is_settled(self) -> bool {
        self == ResultCode::Ok
    }
}

/// Every wire value's code, `None` where no code has that value.
const WIRE_CODES: [Option<ResultCode>; 256] = {
    let mut table = [None; 256];
    let mut i = 0;
    while i < ResultCode::ALL.len() {
        table[ResultCode::ALL[i] as usize] = Some(ResultCode::ALL[i]);
        i += 1;
    }
    table
};

impl From<DecodeError> for ResultCode {
    fn from(error: DecodeError) -> ResultCode {
        match error {
            DecodeError::WrongLength { .. } => ResultCode::MalformedLength,
            DecodeError::ZeroId => ResultCode::MalformedZeroId,
            DecodeError::ZeroValidUntil => ResultCode::MalformedZeroValidUntil,
            DecodeError::ZeroAmount => ResultCode::MalformedZeroAmount,
            DecodeError::ZeroLedger => ResultCode::MalformedZeroLedger,
            DecodeError::UnknownKind(_) => ResultCode::MalformedUnknownKind,
            DecodeError::UnknownFlags(_) => ResultCode::MalformedUnknownFlags,
            DecodeError::ReservedNotZero => ResultCode::MalformedReservedNotZero,
            DecodeError::SameAccount(_) => ResultCode::MalformedSameAccount,
            DecodeError::MissingCategory => ResultCode::MalformedMissingCategory,
            DecodeError::UnexpectedCategory(_) => ResultCode::MalformedUnexpectedCategory,
            DecodeError::UnexpectedAmount { .. } => ResultCode::MalformedUnexpectedAmount,
            DecodeError::MissingRelatedId(_) => ResultCode::MalformedMissingRelatedId,
            DecodeError::FlagNotForKind { .. } => ResultCode::MalformedFlagNotForKind,
            DecodeError::FlagsConflict => ResultCode::MalformedFlagsConflict,
            DecodeError::UnexpectedCreditAccount { .. } => {
                ResultCode::MalformedUnexpectedCreditAccount
            }
            DecodeError::TaxRateOverFull(_) => ResultCode::MalformedTaxRateOverFull,
            DecodeError::UnexpectedDebitAccount { .. } => {
                ResultCode::MalformedUnexpectedDebitAccount
            }
            DecodeError::UnknownValidatorChange(_) => ResultCode::MalformedUnknownValidatorChange,
            DecodeError::TaxBasisConflict => ResultCode::MalformedTaxBasisConflict,
            DecodeError::TaxRoundingConflict => ResultCode::MalformedTaxRoundingConflict,
            DecodeError::RevocationSerial(_) => ResultCode::MalformedRevocationSerial,
            DecodeError::AccountFields { .. } => ResultCode::MalformedAccountFields,
            DecodeError::OwnerKey(_) => ResultCode::MalformedOwnerKey,
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
        for unassigned in [78, 79, 100, 255] {
            assert_eq!(ResultCode::from_wire(unassigned), None, "{unassigned}");
        }
        assert_eq!(ResultCode::MalformedAccountFields as u8, 80);
        assert_eq!(ResultCode::LimitBelowUse as u8, 89);
        assert_eq!(ResultCode::RefundWindowClosed as u8, 90);
        // wire values never move: spot-check the first and the appended ones
        assert_eq!(ResultCode::Overflow as u8, 21);
        assert_eq!(ResultCode::Queued as u8, 22);
        assert_eq!(ResultCode::LinkedNotAcceptedByNode as u8, 56);
        assert_eq!(ResultCode::LinkedChainTooLong as u8, 57);
        assert_eq!(ResultCode::ValidatorVoteAlreadyCounted as u8, 67);
        assert_eq!(ResultCode::TaxRoundingNotNamed as u8, 71);
        assert_eq!(ResultCode::Expired as u8, 72);
        assert_eq!(ResultCode::MalformedZeroValidUntil as u8, 74);
        assert_eq!(ResultCode::MalformedRevocationSerial as u8, 75);
        assert_eq!(ResultCode::RevocationListFull as u8, 77);
        assert_eq!(ResultCode::RefundWindowClosed as u8, 90);
        assert_eq!(ResultCode::AfterCutOff as u8, 91);
        assert_eq!(ResultCode::EndOfDayUnsettled as u8, 95);
        assert_eq!(ResultCode::NoBusinessCalendar as u8, 99);
        assert!(ResultCode::Warehoused.is_ok() && !ResultCode::Warehoused.is_settled());
        assert!(ResultCode::Queued.is_ok() && !ResultCode::Queued.is_settled());
        assert!(!ResultCode::InsufficientFunds.is_ok());
        for code in ResultCode::ALL {
            assert!(!code.meaning().is_empty(), "{}", code.name());
        }
    }
}
