//! The ISO 20022 documents the gateway reads and writes, as serde types for quick-xml: only
//! the elements the mapping uses (docs/ISO20022.md); every other element of a valid message
//! is read past. Element names are ISO's own (XML tags), field names Rust's.

use serde::{Deserialize, Serialize};

/// The namespace prefix of every ISO 20022 message schema.
pub const NAMESPACE_PREFIX: &str = "urn:iso:std:iso:20022:tech:xsd:";

/// The versions the gateway writes.
pub const PACS_002: &str = "pacs.002.001.10";
pub const CAMT_052: &str = "camt.052.001.08";
pub const CAMT_053: &str = "camt.053.001.08";
pub const CAMT_054: &str = "camt.054.001.08";

// ---------------------------------------------------------------------------------------
// In

/// An incoming `Document`: exactly one of the message elements is present.
#[derive(Debug, Deserialize)]
pub struct InDocument {
    #[serde(rename = "@xmlns", default)]
    pub xmlns: String,
    /// pacs.008 FIToFICustomerCreditTransfer.
    #[serde(rename = "FIToFICstmrCdtTrf")]
    pub pacs008: Option<CreditTransfer>,
    /// pacs.009 FinancialInstitutionCreditTransfer.
    #[serde(rename = "FICdtTrf")]
    pub pacs009: Option<CreditTransfer>,
    /// pacs.004 PaymentReturn.
    #[serde(rename = "PmtRtr")]
    pub pacs004: Option<PaymentReturn>,
    /// camt.056 FIToFIPaymentCancellationRequest.
    #[serde(rename = "FIToFIPmtCxlReq")]
    pub camt056: Option<CancellationRequest>,
    /// camt.050 LiquidityCreditTransfer.
    #[serde(rename = "LqdtyCdtTrf")]
    pub camt050: Option<LiquidityCreditTransfer>,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq, Eq)]
pub struct GroupHeader {
    #[serde(rename = "MsgId")]
    pub msg_id: String,
    #[serde(rename = "CreDtTm", default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// pacs.008 and pacs.009 share the shape the gateway reads.
#[derive(Debug, Deserialize)]
pub struct CreditTransfer {
    #[serde(rename = "GrpHdr")]
    pub header: GroupHeader,
    #[serde(rename = "CdtTrfTxInf", default)]
    pub transactions: Vec<CreditTransferTx>,
}

#[derive(Debug, Deserialize)]
pub struct CreditTransferTx {
    #[serde(rename = "PmtId")]
    pub payment_id: PaymentId,
    #[serde(rename = "PmtTpInf")]
    pub payment_type: Option<PaymentType>,
    #[serde(rename = "IntrBkSttlmAmt")]
    pub amount: Amount,
    /// The value date (ISO date, `2026-12-07`).
    #[serde(rename = "IntrBkSttlmDt")]
    pub settlement_date: Option<String>,
    /// pacs.008: the paying customer; pacs.009: the financial institution debited.
    #[serde(rename = "Dbtr")]
    pub debtor: Option<Party>,
    #[serde(rename = "DbtrAcct")]
    pub debtor_account: Option<Account>,
    #[serde(rename = "DbtrAgt")]
    pub debtor_agent: Option<Agent>,
    #[serde(rename = "CdtrAgt")]
    pub creditor_agent: Option<Agent>,
    #[serde(rename = "Cdtr")]
    pub creditor: Option<Party>,
    #[serde(rename = "CdtrAcct")]
    pub creditor_account: Option<Account>,
    /// pacs.008: tax information; `Rcrd/Ctgy` is the ledger's tax category.
    #[serde(rename = "Tax")]
    pub tax: Option<Tax>,
}

#[derive(Debug, Deserialize)]
pub struct PaymentId {
    #[serde(rename = "InstrId")]
    pub instruction_id: Option<String>,
    #[serde(rename = "EndToEndId")]
    pub end_to_end_id: String,
    #[serde(rename = "TxId")]
    pub tx_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PaymentType {
    /// `HIGH` or `NORM`.
    #[serde(rename = "InstrPrty")]
    pub priority: Option<String>,
}

/// An amount with its currency attribute.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq, Eq)]
pub struct Amount {
    #[serde(rename = "@Ccy")]
    pub currency: String,
    #[serde(rename = "$text")]
    pub value: String,
}

/// A party: a customer's name, or a financial institution.
#[derive(Debug, Deserialize)]
pub struct Party {
    #[serde(rename = "Nm")]
    pub name: Option<String>,
    #[serde(rename = "FinInstnId")]
    pub institution: Option<Institution>,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq, Eq)]
pub struct Agent {
    #[serde(rename = "FinInstnId")]
    pub institution: Institution,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq, Eq)]
pub struct Institution {
    #[serde(rename = "BICFI", default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
}

/// An account named by the ledger's account number in `Id/Othr/Id`.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq, Eq)]
pub struct Account {
    #[serde(rename = "Id")]
    pub id: AccountId,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq, Eq)]
pub struct AccountId {
    #[serde(rename = "IBAN", default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(rename = "Othr", default, skip_serializing_if = "Option::is_none")]
    pub other: Option<OtherId>,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq, Eq)]
pub struct OtherId {
    #[serde(rename = "Id")]
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub struct Tax {
    #[serde(rename = "Rcrd", default)]
    pub records: Vec<TaxRecord>,
}

#[derive(Debug, Deserialize)]
pub struct TaxRecord {
    #[serde(rename = "Ctgy")]
    pub category: Option<String>,
}

/// pacs.004.
#[derive(Debug, Deserialize)]
pub struct PaymentReturn {
    #[serde(rename = "GrpHdr")]
    pub header: GroupHeader,
    #[serde(rename = "TxInf", default)]
    pub transactions: Vec<ReturnTx>,
}

#[derive(Debug, Deserialize)]
pub struct ReturnTx {
    #[serde(rename = "RtrId")]
    pub return_id: Option<String>,
    #[serde(rename = "OrgnlGrpInf")]
    pub original_group: OriginalGroup,
    #[serde(rename = "OrgnlEndToEndId")]
    pub original_end_to_end_id: String,
    #[serde(rename = "RtrdIntrBkSttlmAmt")]
    pub amount: Amount,
    #[serde(rename = "OrgnlTxRef")]
    pub original: OriginalTxRef,
}

#[derive(Debug, Deserialize)]
pub struct OriginalGroup {
    #[serde(rename = "OrgnlMsgId")]
    pub msg_id: String,
    #[serde(rename = "OrgnlMsgNmId")]
    pub msg_name: Option<String>,
}

/// What a return or a cancellation says of the payment it refers to.
#[derive(Debug, Deserialize)]
pub struct OriginalTxRef {
    #[serde(rename = "DbtrAcct")]
    pub debtor_account: Option<Account>,
    #[serde(rename = "DbtrAgt")]
    pub debtor_agent: Option<Agent>,
    #[serde(rename = "CdtrAgt")]
    pub creditor_agent: Option<Agent>,
    #[serde(rename = "CdtrAcct")]
    pub creditor_account: Option<Account>,
}

/// camt.056.
#[derive(Debug, Deserialize)]
pub struct CancellationRequest {
    #[serde(rename = "Assgnmt")]
    pub assignment: Assignment,
    #[serde(rename = "Undrlyg", default)]
    pub underlying: Vec<Underlying>,
}

#[derive(Debug, Deserialize)]
pub struct Assignment {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Assgnr")]
    pub assigner: Assigner,
}

#[derive(Debug, Deserialize)]
pub struct Assigner {
    #[serde(rename = "Agt")]
    pub agent: Agent,
}

#[derive(Debug, Deserialize)]
pub struct Underlying {
    #[serde(rename = "TxInf", default)]
    pub transactions: Vec<CancellationTx>,
}

#[derive(Debug, Deserialize)]
pub struct CancellationTx {
    #[serde(rename = "CxlId")]
    pub cancellation_id: Option<String>,
    #[serde(rename = "OrgnlGrpInf")]
    pub original_group: OriginalGroup,
    #[serde(rename = "OrgnlEndToEndId")]
    pub original_end_to_end_id: String,
}

/// camt.050: `LqdtyCdtTrf` holds the header and one `LqdtyCdtTrf` transfer.
#[derive(Debug, Deserialize)]
pub struct LiquidityCreditTransfer {
    #[serde(rename = "MsgHdr")]
    pub header: GroupHeader,
    #[serde(rename = "LqdtyCdtTrf")]
    pub transfer: LiquidityTransfer,
}

#[derive(Debug, Deserialize)]
pub struct LiquidityTransfer {
    #[serde(rename = "LqdtyTrfId")]
    pub id: LiquidityTransferId,
    #[serde(rename = "Cdtr")]
    pub creditor: Agent,
    #[serde(rename = "TrfdAmt")]
    pub amount: TransferredAmount,
    #[serde(rename = "Dbtr")]
    pub debtor: Agent,
}

#[derive(Debug, Deserialize)]
pub struct LiquidityTransferId {
    #[serde(rename = "EndToEndId")]
    pub end_to_end_id: String,
}

#[derive(Debug, Deserialize)]
pub struct TransferredAmount {
    #[serde(rename = "AmtWthCcy")]
    pub amount: Amount,
}

// ---------------------------------------------------------------------------------------
// Out

/// A `Document` written by the gateway: its namespace and one message.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename = "Document")]
pub struct OutDocument {
    #[serde(rename = "@xmlns")]
    pub xmlns: String,
    #[serde(
        rename = "FIToFIPmtStsRpt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pacs002: Option<StatusReport>,
    #[serde(
        rename = "BkToCstmrDbtCdtNtfctn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub camt054: Option<Notification>,
    #[serde(
        rename = "BkToCstmrAcctRpt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub camt052: Option<AccountReport>,
    #[serde(
        rename = "BkToCstmrStmt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub camt053: Option<Statement>,
}

impl OutDocument {
    pub fn new(version: &str) -> OutDocument {
        OutDocument {
            xmlns: format!("{NAMESPACE_PREFIX}{version}"),
            pacs002: None,
            camt054: None,
            camt052: None,
            camt053: None,
        }
    }

    /// The XML text, with its declaration.
    pub fn to_xml(&self) -> String {
        let body = quick_xml::se::to_string(self).expect("the gateway's documents serialise");
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}\n")
    }

    /// Reads a document the gateway wrote (for clients and tests).
    pub fn from_xml(text: &str) -> Result<OutDocument, quick_xml::DeError> {
        quick_xml::de::from_str(text)
    }
}

/// pacs.002.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct StatusReport {
    #[serde(rename = "GrpHdr")]
    pub header: GroupHeader,
    #[serde(rename = "OrgnlGrpInfAndSts")]
    pub original_group: OriginalGroupStatus,
    #[serde(rename = "TxInfAndSts", default, skip_serializing_if = "Vec::is_empty")]
    pub transactions: Vec<TxStatus>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct OriginalGroupStatus {
    #[serde(rename = "OrgnlMsgId")]
    pub msg_id: String,
    #[serde(rename = "OrgnlMsgNmId")]
    pub msg_name: String,
    /// Set only when the whole message is refused (`RJCT`).
    #[serde(rename = "GrpSts", default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "StsRsnInf", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<StatusReason>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct TxStatus {
    #[serde(rename = "OrgnlEndToEndId")]
    pub end_to_end_id: String,
    #[serde(rename = "OrgnlTxId", default, skip_serializing_if = "Option::is_none")]
    pub tx_id: Option<String>,
    /// `ACSC`, `ACSP`, `PDNG` or `RJCT`.
    #[serde(rename = "TxSts")]
    pub status: String,
    #[serde(rename = "StsRsnInf", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<StatusReason>,
    /// The ledger record's id (32 hex digits).
    #[serde(rename = "ClrSysRef", default, skip_serializing_if = "Option::is_none")]
    pub clearing_ref: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct StatusReason {
    #[serde(rename = "Rsn")]
    pub reason: ReasonCode,
    #[serde(rename = "AddtlInf", default)]
    pub info: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct ReasonCode {
    #[serde(rename = "Cd")]
    pub code: String,
}

/// camt.054.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Notification {
    #[serde(rename = "GrpHdr")]
    pub header: GroupHeader,
    #[serde(rename = "Ntfctn", default)]
    pub notifications: Vec<AccountEntries>,
}

/// camt.052.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct AccountReport {
    #[serde(rename = "GrpHdr")]
    pub header: GroupHeader,
    #[serde(rename = "Rpt", default)]
    pub reports: Vec<AccountEntries>,
}

/// camt.053.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Statement {
    #[serde(rename = "GrpHdr")]
    pub header: GroupHeader,
    #[serde(rename = "Stmt", default)]
    pub statements: Vec<AccountEntries>,
}

/// One account's notification, report or statement: its balances and entries.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct AccountEntries {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(
        rename = "ElctrncSeqNb",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence: Option<u64>,
    #[serde(rename = "CreDtTm")]
    pub created: String,
    /// A business day's statement: the period it covers (from the block after the
    /// previous day's end to the block that ended this day).
    #[serde(rename = "FrToDt", default, skip_serializing_if = "Option::is_none")]
    pub period: Option<FromTo>,
    #[serde(rename = "Acct")]
    pub account: ReportAccount,
    #[serde(rename = "Bal", default)]
    pub balances: Vec<Balance>,
    #[serde(rename = "TxsSummry", default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<TxSummary>,
    #[serde(rename = "Ntry", default)]
    pub entries: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct FromTo {
    #[serde(rename = "FrDtTm")]
    pub from: String,
    #[serde(rename = "ToDtTm")]
    pub to: String,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct ReportAccount {
    #[serde(rename = "Id")]
    pub id: AccountId,
    #[serde(rename = "Ccy")]
    pub currency: String,
    #[serde(rename = "Svcr", default, skip_serializing_if = "Option::is_none")]
    pub servicer: Option<Agent>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Balance {
    #[serde(rename = "Tp")]
    pub kind: BalanceType,
    #[serde(rename = "Amt")]
    pub amount: Amount,
    /// `CRDT` (zero or above) or `DBIT` (below zero).
    #[serde(rename = "CdtDbtInd")]
    pub sign: String,
    #[serde(rename = "Dt")]
    pub date: DateChoice,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct BalanceType {
    #[serde(rename = "CdOrPrtry")]
    pub code: CodeOrProprietary,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct CodeOrProprietary {
    /// `OPBD` opening booked, `ITBD` interim booked, `CLBD` closing booked.
    #[serde(rename = "Cd")]
    pub code: String,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct DateChoice {
    #[serde(rename = "DtTm")]
    pub date_time: String,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct TxSummary {
    #[serde(rename = "TtlNtries")]
    pub total: TotalEntries,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct TotalEntries {
    #[serde(rename = "NbOfNtries")]
    pub count: u64,
    /// The sum of the entries' amounts, whatever their sign.
    #[serde(rename = "Sum")]
    pub sum: String,
    #[serde(rename = "TtlNetNtry")]
    pub net: NetEntry,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct NetEntry {
    #[serde(rename = "Amt")]
    pub amount: String,
    #[serde(rename = "CdtDbtInd")]
    pub sign: String,
}

/// One entry: money booked to (or, `PDNG`, waiting for) the account.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The block height that booked it.
    #[serde(rename = "NtryRef")]
    pub reference: String,
    #[serde(rename = "Amt")]
    pub amount: Amount,
    #[serde(rename = "CdtDbtInd")]
    pub sign: String,
    #[serde(rename = "Sts")]
    pub status: EntryStatus,
    /// The time of the block that booked it (the block timestamp consensus agreed).
    #[serde(rename = "BookgDt", default, skip_serializing_if = "Option::is_none")]
    pub booked: Option<DateChoice>,
    /// The business day it settled in.
    #[serde(rename = "ValDt", default, skip_serializing_if = "Option::is_none")]
    pub valued: Option<DateOnly>,
    /// The ledger record's id (32 hex digits).
    #[serde(rename = "AcctSvcrRef")]
    pub servicer_ref: String,
    #[serde(rename = "BkTxCd")]
    pub code: BankTxCode,
    #[serde(rename = "NtryDtls")]
    pub details: EntryDetails,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct DateOnly {
    #[serde(rename = "Dt")]
    pub date: String,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct EntryStatus {
    /// `BOOK` or `PDNG`.
    #[serde(rename = "Cd")]
    pub code: String,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct BankTxCode {
    #[serde(rename = "Prtry")]
    pub proprietary: CodeOrProprietary,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct EntryDetails {
    #[serde(rename = "TxDtls")]
    pub tx: TxDetails,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct TxDetails {
    #[serde(rename = "Refs")]
    pub refs: Refs,
    #[serde(rename = "RltdPties", default, skip_serializing_if = "Option::is_none")]
    pub parties: Option<RelatedParties>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Refs {
    #[serde(rename = "MsgId", default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// The payment's end-to-end id when this gateway sent it, else `NOTPROVIDED`.
    #[serde(rename = "EndToEndId")]
    pub end_to_end_id: String,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct RelatedParties {
    #[serde(rename = "DbtrAcct")]
    pub debtor_account: Account,
    #[serde(rename = "CdtrAcct")]
    pub creditor_account: Account,
}

/// An account element naming ledger account `id`.
pub fn account(id: u64) -> Account {
    Account {
        id: AccountId {
            iban: None,
            other: Some(OtherId { id: id.to_string() }),
        },
    }
}
