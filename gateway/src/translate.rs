//! ISO 20022 messages in, ledger records out: which record each transaction of a pacs.008,
//! pacs.009, pacs.004, camt.056 or camt.050 becomes, or why it is refused before a record is
//! made (docs/ISO20022.md, "Messages in").

use crate::iso::{self, Agent, Amount, CreditTransferTx, InDocument};
use crate::reasons;
use std::collections::HashMap;
use tally_protocol::genesis::{CurrencySpec, Genesis};
use tally_protocol::tx::{TxFields, TxFlags, TxKind};

/// The message types read, by the schema named in the document's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Pacs008,
    Pacs009,
    Pacs004,
    Camt056,
    Camt050,
}

impl MessageType {
    /// The message type of a schema name (`pacs.008.001.08`: any version).
    pub fn of_schema(schema: &str) -> Option<MessageType> {
        let prefix = schema.get(..8)?;
        Some(match prefix {
            "pacs.008" => MessageType::Pacs008,
            "pacs.009" => MessageType::Pacs009,
            "pacs.004" => MessageType::Pacs004,
            "camt.056" => MessageType::Camt056,
            "camt.050" => MessageType::Camt050,
            _ => return None,
        })
    }
}

/// Why a transaction (or a whole message) is refused: an ISO reason code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub info: String,
}

impl Refusal {
    pub fn new(code: &'static str, info: impl Into<String>) -> Refusal {
        Refusal {
            code,
            info: info.into(),
        }
    }
}

/// What one transaction of a message becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// One record (its `valid_until` still to set).
    Record(TxFields),
    /// A return (pacs.004): a refund when the original is a taxed payment, else a transfer
    /// back; which one the node's record of the original decides.
    Return {
        id: u128,
        reference: u128,
        original: u128,
        /// The original payee, who pays back.
        from: u64,
        /// The original payer.
        to: u64,
        amount: u64,
    },
}

/// One transaction of a message: its references, and its plan or refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub end_to_end_id: String,
    pub tx_id: Option<String>,
    pub plan: Result<Plan, Refusal>,
}

/// A message read: its id and schema, and its transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub msg_id: String,
    /// The schema named by its namespace (`pacs.008.001.08`).
    pub schema: String,
    pub kind: MessageType,
    pub items: Vec<Item>,
}

/// A whole message refused (malformed XML, an unknown schema): its id when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRefusal {
    pub msg_id: Option<String>,
    pub schema: Option<String>,
    pub refusal: Refusal,
}

/// The participants by BIC, the currency and what a record needs of the genesis.
#[derive(Clone, Debug)]
pub struct Directory {
    by_bic: HashMap<String, u64>,
    bic_of: HashMap<u64, String>,
    pub currency: CurrencySpec,
    pub ledger: u32,
    pub network_id: u64,
    /// The central bank's issuance account.
    pub central_bank: u64,
    pub validity_window_ms: u64,
    /// Whether the network runs an RTGS business day (the genesis's calendar): then a
    /// payment with a value date is sent warehoused for it, and the ledger decides.
    pub business_day: bool,
}

impl Directory {
    /// The directory of a genesis, which must name its currency's code (ISO messages carry
    /// it on every amount).
    pub fn of(genesis: &Genesis) -> Result<Directory, String> {
        if genesis.currency.code.is_empty() {
            return Err("the genesis names no currency code (currency.code): ISO 20022 amounts carry one, so the gateway needs it".into());
        }
        let mut by_bic = HashMap::new();
        let mut bic_of = HashMap::new();
        for account in &genesis.accounts {
            if let Some(bic) = &account.bic {
                by_bic.insert(bic.clone(), account.id);
                bic_of.insert(account.id, bic.clone());
            }
        }
        if by_bic.is_empty() {
            return Err("the genesis names no participant by BIC (accounts[].bic)".into());
        }
        Ok(Directory {
            by_bic,
            bic_of,
            currency: genesis.currency.clone(),
            ledger: genesis.ledger,
            network_id: genesis.network_id,
            central_bank: genesis.central_bank().id,
            validity_window_ms: genesis.settlement.validity_window_ms,
            business_day: genesis.settlement.calendar.is_some(),
        })
    }

    /// The account a BIC names (an 11-character BIC ending `XXX` also matches its 8-character
    /// form and back).
    pub fn account_of(&self, bic: &str) -> Result<u64, Refusal> {
        let alternative = match bic.len() {
            8 => format!("{bic}XXX"),
            11 if bic.ends_with("XXX") => bic[..8].to_string(),
            _ => String::new(),
        };
        self.by_bic
            .get(bic)
            .or_else(|| self.by_bic.get(&alternative))
            .copied()
            .ok_or_else(|| {
                Refusal::new(
                    reasons::BANK_IDENTIFIER_INCORRECT,
                    format!("BIC {bic} names no participant of this network"),
                )
            })
    }

    /// The BIC of an account, if the genesis gives it one.
    pub fn bic_of(&self, account: u64) -> Option<&str> {
        self.bic_of.get(&account).map(String::as_str)
    }

    /// Minor units of an ISO amount: its currency must be the ledger's, its decimals at most
    /// the currency's.
    pub fn amount(&self, amount: &Amount) -> Result<u64, Refusal> {
        if amount.currency != self.currency.code {
            return Err(Refusal::new(
                reasons::INVALID_CURRENCY,
                format!(
                    "currency {:?}: this network settles {}",
                    amount.currency, self.currency.code
                ),
            ));
        }
        self.currency
            .parse(amount.value.trim())
            .map_err(|error| Refusal::new(reasons::INVALID_AMOUNT, error.to_string()))
    }

    /// Minor units as an ISO amount text (`125.40`).
    pub fn format(&self, minor: u64) -> String {
        tally_protocol::amount::format_units(i128::from(minor), self.currency.minor_unit_digits)
    }
}

/// The record id of transaction `end_to_end_id` of message `msg_id` sent by `sender_bic`:
/// the first 16 bytes of a BLAKE3 hash of the three (never 0), so a message sent again makes
/// the same ids and the ledger answers `duplicate_id`.
pub fn record_id(sender_bic: &str, msg_id: &str, end_to_end_id: &str) -> u128 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tally-gateway record id v1\0");
    for part in [sender_bic, msg_id, end_to_end_id] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let bytes: [u8; 16] = hasher.finalize().as_bytes()[..16]
        .try_into()
        .expect("16 bytes");
    u128::from_le_bytes(bytes).max(1)
}

/// The record's `reference` for an end-to-end id: its bytes when it has at most 16 (read
/// back by [`reference_text`]), else a BLAKE3 hash of it with the top bit set.
pub fn reference_of(end_to_end_id: &str) -> u128 {
    let bytes = end_to_end_id.as_bytes();
    if bytes.len() <= 16 && bytes.iter().all(|b| b.is_ascii_graphic()) {
        let mut field = [0u8; 16];
        field[..bytes.len()].copy_from_slice(bytes);
        u128::from_le_bytes(field)
    } else {
        let hash = blake3::hash(bytes);
        let bytes: [u8; 16] = hash.as_bytes()[..16].try_into().expect("16 bytes");
        u128::from_le_bytes(bytes) | (1 << 127)
    }
}

/// The end-to-end id a reference holds, when it holds one whole.
pub fn reference_text(reference: u128) -> Option<String> {
    let bytes = reference.to_le_bytes();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(16);
    let text = &bytes[..end];
    (!text.is_empty()
        && text.iter().all(|b| b.is_ascii_graphic())
        && bytes[end..].iter().all(|b| *b == 0))
    .then(|| String::from_utf8_lossy(text).into_owned())
}

/// Days since 1970-01-01 of an ISO date (`2026-12-07`).
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    (civil_from_days(days) == (year, month, day)).then_some(days)
}

pub use tally_protocol::calendar::{civil_from_days, days_from_civil};

/// A payment whose value date is business day `day` (days since 1970-01-01 UTC) on a
/// network with a business day: the warehoused payment (`TxFlags::WAREHOUSED`, `reserved_a`
/// = the day). The ledger keeps it for that day's opening, applies it at once when that day
/// is open now, or refuses it with its own code (`value_date_passed`, `value_date_too_far`,
/// `value_date_closed`). Without a business day a value date after today is refused here.
pub fn warehoused(
    directory: &Directory,
    mut fields: TxFields,
    day: i64,
) -> Result<TxFields, Refusal> {
    if !directory.business_day {
        let (year, month, date) = civil_from_days(day);
        return Err(Refusal::new(
            reasons::reason_for_name("no_business_calendar").unwrap_or(reasons::INVALID_DATE),
            format!(
                "value date {year:04}-{month:02}-{date:02} is after today: this network has no business day, so it settles on the day a payment is sent and keeps no warehoused payments"
            ),
        ));
    }
    let day = u32::try_from(day).map_err(|_| {
        Refusal::new(
            reasons::INVALID_DATE,
            format!("value date day {day} is out of range"),
        )
    })?;
    fields.flags = TxFlags(fields.flags.0 | TxFlags::WAREHOUSED);
    fields.reserved_a = day;
    Ok(fields)
}

/// Reads one document (UTF-8 XML, the default namespace of an ISO 20022 schema) into its
/// message and plans. `today` is the current business day (days since 1970-01-01 UTC).
pub fn read(directory: &Directory, xml: &[u8], today: i64) -> Result<Message, MessageRefusal> {
    let refuse = |code, info: String| MessageRefusal {
        msg_id: None,
        schema: None,
        refusal: Refusal::new(code, info),
    };
    let text = std::str::from_utf8(xml).map_err(|error| {
        refuse(
            reasons::INVALID_FILE_FORMAT,
            format!("the document is not UTF-8: {error}"),
        )
    })?;
    let document: InDocument = quick_xml::de::from_str(text).map_err(|error| {
        refuse(
            reasons::INVALID_FILE_FORMAT,
            format!("the document is not a readable ISO 20022 message: {error}"),
        )
    })?;
    let schema = document
        .xmlns
        .strip_prefix(iso::NAMESPACE_PREFIX)
        .ok_or_else(|| {
            refuse(
                reasons::INVALID_FILE_FORMAT,
                format!(
                    "the Document's namespace {:?} is not an ISO 20022 schema ({}...)",
                    document.xmlns,
                    iso::NAMESPACE_PREFIX
                ),
            )
        })?
        .to_string();
    let kind = MessageType::of_schema(&schema).ok_or_else(|| MessageRefusal {
        msg_id: None,
        schema: Some(schema.clone()),
        refusal: Refusal::new(
            reasons::TRANSACTION_NOT_SUPPORTED,
            format!("{schema} is not a message the gateway takes (pacs.008, pacs.009, pacs.004, camt.056, camt.050)"),
        ),
    })?;
    let wrong_root = |element: &str| MessageRefusal {
        msg_id: None,
        schema: Some(schema.clone()),
        refusal: Refusal::new(
            reasons::INVALID_FILE_FORMAT,
            format!("a {schema} Document holds a {element} element"),
        ),
    };
    let (msg_id, items) = match kind {
        MessageType::Pacs008 | MessageType::Pacs009 => {
            let (root, transfer) = if kind == MessageType::Pacs008 {
                ("FIToFICstmrCdtTrf", document.pacs008)
            } else {
                ("FICdtTrf", document.pacs009)
            };
            let transfer = transfer.ok_or_else(|| wrong_root(root))?;
            let msg_id = transfer.header.msg_id;
            let items = transfer
                .transactions
                .iter()
                .map(|tx| Item {
                    end_to_end_id: tx.payment_id.end_to_end_id.clone(),
                    tx_id: tx.payment_id.tx_id.clone(),
                    plan: credit_transfer(directory, kind, &msg_id, tx, today),
                })
                .collect::<Vec<_>>();
            (msg_id, items)
        }
        MessageType::Pacs004 => {
            let ret = document.pacs004.ok_or_else(|| wrong_root("PmtRtr"))?;
            let msg_id = ret.header.msg_id;
            let items = ret
                .transactions
                .iter()
                .map(|tx| Item {
                    end_to_end_id: tx.original_end_to_end_id.clone(),
                    tx_id: tx.return_id.clone(),
                    plan: payment_return(directory, &msg_id, tx),
                })
                .collect();
            (msg_id, items)
        }
        MessageType::Camt056 => {
            let request = document
                .camt056
                .ok_or_else(|| wrong_root("FIToFIPmtCxlReq"))?;
            let msg_id = request.assignment.id.clone();
            let assigner = bic(&request.assignment.assigner.agent, "Assgnmt/Assgnr/Agt");
            let items = request
                .underlying
                .iter()
                .flat_map(|underlying| underlying.transactions.iter())
                .map(|tx| Item {
                    end_to_end_id: tx.original_end_to_end_id.clone(),
                    tx_id: tx.cancellation_id.clone(),
                    plan: assigner.clone().and_then(|assigner| {
                        let payer = directory.account_of(&assigner)?;
                        let original = record_id(
                            &assigner,
                            &tx.original_group.msg_id,
                            &tx.original_end_to_end_id,
                        );
                        let own = tx
                            .cancellation_id
                            .as_deref()
                            .unwrap_or(&tx.original_end_to_end_id);
                        let id = record_id(&assigner, &msg_id, own);
                        let fields = TxFields::queue_operation(
                            TxKind::QueueCancel,
                            id,
                            directory.ledger,
                            payer,
                            original,
                            false,
                        )
                        .expect("a queue cancel is a queue operation");
                        Ok(Plan::Record(TxFields {
                            reference: reference_of(own),
                            ..fields
                        }))
                    }),
                })
                .collect();
            (msg_id, items)
        }
        MessageType::Camt050 => {
            let transfer = document.camt050.ok_or_else(|| wrong_root("LqdtyCdtTrf"))?;
            let msg_id = transfer.header.msg_id;
            let tx = &transfer.transfer;
            let item = Item {
                end_to_end_id: tx.id.end_to_end_id.clone(),
                tx_id: None,
                plan: liquidity(directory, &msg_id, tx),
            };
            (msg_id, vec![item])
        }
    };
    if items.is_empty() {
        return Err(MessageRefusal {
            msg_id: Some(msg_id),
            schema: Some(schema),
            refusal: Refusal::new(
                reasons::INVALID_FILE_FORMAT,
                "the message holds no transaction",
            ),
        });
    }
    Ok(Message {
        msg_id,
        schema,
        kind,
        items,
    })
}

/// The BIC of an agent, or why it has none.
fn bic(agent: &Agent, path: &str) -> Result<String, Refusal> {
    agent.institution.bic.clone().ok_or_else(|| {
        Refusal::new(
            reasons::INVALID_FILE_FORMAT,
            format!("{path}/FinInstnId/BICFI is missing"),
        )
    })
}

/// The ledger account an `Othr/Id` names.
fn account_number(account: &iso::Account, path: &str) -> Result<u64, Refusal> {
    let text = account
        .id
        .other
        .as_ref()
        .map(|other| other.id.trim())
        .ok_or_else(|| {
            Refusal::new(
                reasons::INCORRECT_ACCOUNT,
                format!("{path}/Id/Othr/Id is missing: the ledger names accounts by number (IBANs are not read)"),
            )
        })?;
    text.parse::<u64>().map_err(|_| {
        Refusal::new(
            reasons::INCORRECT_ACCOUNT,
            format!("{path}/Id/Othr/Id {text:?} is not a ledger account number"),
        )
    })
}

/// An account given by its number, else by its agent's BIC.
fn account_or_agent(
    directory: &Directory,
    account: Option<&iso::Account>,
    account_path: &str,
    bic: Option<&str>,
    bic_path: &str,
) -> Result<u64, Refusal> {
    match (account, bic) {
        (Some(account), _) => account_number(account, account_path),
        (None, Some(bic)) => directory.account_of(bic),
        (None, None) => Err(Refusal::new(
            reasons::INVALID_FILE_FORMAT,
            format!("neither {account_path} nor {bic_path}/FinInstnId/BICFI is given"),
        )),
    }
}

fn agent_bic(agent: Option<&Agent>) -> Option<&str> {
    agent.and_then(|agent| agent.institution.bic.as_deref())
}

fn party_bic(party: Option<&iso::Party>) -> Option<&str> {
    party
        .and_then(|party| party.institution.as_ref())
        .and_then(|institution| institution.bic.as_deref())
}

/// A pacs.008 or pacs.009 transaction's record.
fn credit_transfer(
    directory: &Directory,
    kind: MessageType,
    msg_id: &str,
    tx: &CreditTransferTx,
    today: i64,
) -> Result<Plan, Refusal> {
    let customer = kind == MessageType::Pacs008;
    // pacs.008: the debtor's agent sends; pacs.009: the debtor institution.
    let (sender, sender_path) = if customer {
        (agent_bic(tx.debtor_agent.as_ref()), "CdtTrfTxInf/DbtrAgt")
    } else {
        (party_bic(tx.debtor.as_ref()), "CdtTrfTxInf/Dbtr")
    };
    let sender = sender.ok_or_else(|| {
        Refusal::new(
            reasons::INVALID_FILE_FORMAT,
            format!("{sender_path}/FinInstnId/BICFI is missing"),
        )
    })?;
    let sender_account = directory.account_of(sender)?;
    let debit = match &tx.debtor_account {
        Some(account) => account_number(account, "CdtTrfTxInf/DbtrAcct")?,
        None => sender_account,
    };
    let (creditor_bic, creditor_path) = if customer {
        (agent_bic(tx.creditor_agent.as_ref()), "CdtTrfTxInf/CdtrAgt")
    } else {
        (party_bic(tx.creditor.as_ref()), "CdtTrfTxInf/Cdtr")
    };
    if let Some(bic) = creditor_bic {
        directory.account_of(bic)?;
    }
    let credit = account_or_agent(
        directory,
        tx.creditor_account.as_ref(),
        "CdtTrfTxInf/CdtrAcct",
        creditor_bic,
        creditor_path,
    )?;
    let amount = directory.amount(&tx.amount)?;
    let e2e = &tx.payment_id.end_to_end_id;
    let id = record_id(sender, msg_id, e2e);
    let category = match &tx.tax {
        Some(tax) if customer => Some(tax_category(tax)?),
        Some(_) => {
            return Err(Refusal::new(
                reasons::TRANSACTION_NOT_SUPPORTED,
                "a pacs.009 carries no tax: send a taxed payment as a pacs.008",
            ))
        }
        None => None,
    };
    let mut fields = match category {
        Some(category) => {
            TxFields::taxed_payment(id, directory.ledger, debit, credit, amount, category)
        }
        None => TxFields::transfer(id, debit, credit, amount, directory.ledger),
    };
    fields.reference = reference_of(e2e);
    let urgent = tx
        .payment_type
        .as_ref()
        .and_then(|kind| kind.priority.as_deref())
        .is_some_and(|priority| priority == "HIGH");
    if urgent {
        fields.flags = TxFlags(TxFlags::URGENT);
    }
    if let Some(date) = &tx.settlement_date {
        let day = parse_date(date).ok_or_else(|| {
            Refusal::new(
                reasons::INVALID_DATE,
                format!("IntrBkSttlmDt {date:?} is not an ISO date (YYYY-MM-DD)"),
            )
        })?;
        if directory.business_day {
            // the ledger's calendar says which day is open, ahead or passed
            fields = warehoused(directory, fields, day)?;
        } else if day < today {
            return Err(Refusal::new(
                reasons::reason_for_name("value_date_passed").unwrap_or(reasons::INVALID_DATE),
                format!("value date {date} has passed"),
            ));
        } else if day > today {
            fields = warehoused(directory, fields, day)?;
        }
    }
    Ok(Plan::Record(fields))
}

/// The tax category of a pacs.008's `Tax/Rcrd/Ctgy`.
fn tax_category(tax: &iso::Tax) -> Result<u32, Refusal> {
    let text = tax
        .records
        .first()
        .and_then(|record| record.category.as_deref())
        .ok_or_else(|| {
            Refusal::new(
                reasons::INVALID_FILE_FORMAT,
                "CdtTrfTxInf/Tax holds no Rcrd/Ctgy: name the tax category",
            )
        })?;
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|category| *category > 0)
        .ok_or_else(|| {
            Refusal::new(
                reasons::INVALID_FILE_FORMAT,
                format!(
                    "CdtTrfTxInf/Tax/Rcrd/Ctgy {text:?} is not a tax category (a number from 1)"
                ),
            )
        })
}

/// A pacs.004 transaction: the original payment is named by its payer agent's BIC, its
/// message id and end-to-end id; the return is sent by the original payee's agent.
fn payment_return(
    directory: &Directory,
    msg_id: &str,
    tx: &iso::ReturnTx,
) -> Result<Plan, Refusal> {
    let original_ref = &tx.original;
    let payer_bic = agent_bic(original_ref.debtor_agent.as_ref()).ok_or_else(|| {
        Refusal::new(
            reasons::INVALID_FILE_FORMAT,
            "TxInf/OrgnlTxRef/DbtrAgt/FinInstnId/BICFI is missing: it names who sent the payment returned",
        )
    })?;
    let payee_bic = agent_bic(original_ref.creditor_agent.as_ref()).ok_or_else(|| {
        Refusal::new(
            reasons::INVALID_FILE_FORMAT,
            "TxInf/OrgnlTxRef/CdtrAgt/FinInstnId/BICFI is missing: it names who returns the payment",
        )
    })?;
    directory.account_of(payer_bic)?;
    directory.account_of(payee_bic)?;
    let to = account_or_agent(
        directory,
        original_ref.debtor_account.as_ref(),
        "TxInf/OrgnlTxRef/DbtrAcct",
        Some(payer_bic),
        "TxInf/OrgnlTxRef/DbtrAgt",
    )?;
    let from = account_or_agent(
        directory,
        original_ref.creditor_account.as_ref(),
        "TxInf/OrgnlTxRef/CdtrAcct",
        Some(payee_bic),
        "TxInf/OrgnlTxRef/CdtrAgt",
    )?;
    let amount = directory.amount(&tx.amount)?;
    let original = record_id(
        payer_bic,
        &tx.original_group.msg_id,
        &tx.original_end_to_end_id,
    );
    let own = tx
        .return_id
        .as_deref()
        .unwrap_or(&tx.original_end_to_end_id);
    Ok(Plan::Return {
        id: record_id(payee_bic, msg_id, own),
        reference: reference_of(own),
        original,
        from,
        to,
        amount,
    })
}

/// A camt.050: from the central bank to a bank is a pledge, from a bank to the central bank
/// a redeem; both are signed with the central bank's key.
fn liquidity(
    directory: &Directory,
    msg_id: &str,
    tx: &iso::LiquidityTransfer,
) -> Result<Plan, Refusal> {
    let debtor_bic = bic(&tx.debtor, "LqdtyCdtTrf/Dbtr")?;
    let creditor_bic = bic(&tx.creditor, "LqdtyCdtTrf/Cdtr")?;
    let debtor = directory.account_of(&debtor_bic)?;
    let creditor = directory.account_of(&creditor_bic)?;
    let amount = directory.amount(&tx.amount.amount)?;
    let e2e = &tx.id.end_to_end_id;
    let id = record_id(&debtor_bic, msg_id, e2e);
    let fields = if debtor == directory.central_bank {
        TxFields::pledge(id, directory.ledger, debtor, creditor, amount)
    } else if creditor == directory.central_bank {
        TxFields::redeem(id, directory.ledger, debtor, creditor, amount)
    } else {
        return Err(Refusal::new(
            reasons::TRANSACTION_NOT_SUPPORTED,
            format!("a liquidity transfer moves reserves between the central bank and a bank: neither {debtor_bic} nor {creditor_bic} is the central bank"),
        ));
    };
    Ok(Plan::Record(TxFields {
        reference: reference_of(e2e),
        ..fields
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> Directory {
        Directory::of(&crate::test_genesis()).unwrap()
    }

    fn sample(name: &str) -> String {
        std::fs::read_to_string(format!("{}/samples/{name}.xml", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    }

    /// The sample's day (its messages are dated 2026-12-07).
    const TODAY: i64 = 20_794;

    fn record(message: &Message) -> TxFields {
        match &message.items[0].plan {
            Ok(Plan::Record(fields)) => *fields,
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn the_sample_date_is_its_day_number() {
        assert_eq!(parse_date("2026-12-07"), Some(TODAY));
        assert_eq!(civil_from_days(TODAY), (2026, 12, 7));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn a_pacs_009_is_an_urgent_transfer_between_banks() {
        let message = read(&directory(), sample("pacs.009").as_bytes(), TODAY).unwrap();
        assert_eq!(message.kind, MessageType::Pacs009);
        assert_eq!(message.msg_id, "BKAA-009-0001");
        assert_eq!(message.schema, "pacs.009.001.08");
        assert_eq!(message.items.len(), 1);
        assert_eq!(message.items[0].end_to_end_id, "E2E-009-1");
        assert_eq!(message.items[0].tx_id.as_deref(), Some("BKAA-TX-1"));
        let fields = record(&message);
        assert_eq!(fields.kind, TxKind::Transfer);
        assert_eq!(
            fields.id,
            record_id("BKAADEFF", "BKAA-009-0001", "E2E-009-1")
        );
        assert_eq!((fields.debit_account, fields.credit_account), (10, 11));
        assert_eq!(fields.amount, 25_000);
        assert_eq!(fields.ledger, 978);
        assert_eq!(fields.flags, TxFlags(TxFlags::URGENT));
        assert_eq!(
            reference_text(fields.reference).as_deref(),
            Some("E2E-009-1")
        );
    }

    #[test]
    fn a_pacs_008_with_a_tax_category_is_a_taxed_payment_between_customers() {
        let message = read(&directory(), sample("pacs.008").as_bytes(), TODAY).unwrap();
        assert_eq!(message.kind, MessageType::Pacs008);
        let fields = record(&message);
        assert_eq!(fields.kind, TxKind::TaxedPayment);
        assert_eq!(fields.category, 1);
        assert_eq!((fields.debit_account, fields.credit_account), (100, 200));
        assert_eq!(fields.amount, 11_900);
        assert_eq!(
            fields.id,
            record_id("BKAADEFF", "BKAA-008-0001", "INV-2026-0042")
        );
        assert_eq!(fields.flags, TxFlags::default());
        // without the tax element: a transfer
        let untaxed = sample("pacs.008").replace(
            "<Tax>\n        <Rcrd>\n          <Ctgy>1</Ctgy>\n        </Rcrd>\n      </Tax>",
            "",
        );
        let fields = record(&read(&directory(), untaxed.as_bytes(), TODAY).unwrap());
        assert_eq!(fields.kind, TxKind::Transfer);
    }

    #[test]
    fn a_pacs_004_names_the_payment_it_returns() {
        let message = read(&directory(), sample("pacs.004").as_bytes(), TODAY).unwrap();
        assert_eq!(message.kind, MessageType::Pacs004);
        assert_eq!(message.items[0].end_to_end_id, "INV-2026-0042");
        assert_eq!(
            message.items[0].plan,
            Ok(Plan::Return {
                id: record_id("BKBBDEFF", "BKBB-004-0001", "RTR-0042"),
                reference: reference_of("RTR-0042"),
                original: record_id("BKAADEFF", "BKAA-008-0001", "INV-2026-0042"),
                from: 200,
                to: 100,
                amount: 11_900,
            })
        );
    }

    #[test]
    fn a_camt_056_cancels_the_queued_payment_it_names() {
        let message = read(&directory(), sample("camt.056").as_bytes(), TODAY).unwrap();
        assert_eq!(message.kind, MessageType::Camt056);
        assert_eq!(message.msg_id, "BKAA-056-0001");
        let fields = record(&message);
        assert_eq!(fields.kind, TxKind::QueueCancel);
        assert_eq!(fields.debit_account, 10);
        assert_eq!(
            fields.related_id,
            record_id("BKAADEFF", "BKAA-009-0002", "E2E-009-2")
        );
        assert_eq!(fields.id, record_id("BKAADEFF", "BKAA-056-0001", "CXL-1"));
    }

    #[test]
    fn a_camt_050_from_the_central_bank_is_a_pledge_and_to_it_a_redeem() {
        let message = read(&directory(), sample("camt.050").as_bytes(), TODAY).unwrap();
        let fields = record(&message);
        assert_eq!(fields.kind, TxKind::Pledge);
        assert_eq!((fields.debit_account, fields.credit_account), (1, 10));
        assert_eq!(fields.amount, 100_000);
        let back = sample("camt.050")
            .replace(
                "<Cdtr><FinInstnId><BICFI>BKAADEFF",
                "<Cdtr><FinInstnId><BICFI>CENTDEFF",
            )
            .replace(
                "<Dbtr><FinInstnId><BICFI>CENTDEFF",
                "<Dbtr><FinInstnId><BICFI>BKAADEFF",
            );
        let fields = record(&read(&directory(), back.as_bytes(), TODAY).unwrap());
        assert_eq!(fields.kind, TxKind::Redeem);
        assert_eq!((fields.debit_account, fields.credit_account), (10, 1));
        let between_banks = sample("camt.050").replace(
            "<Dbtr><FinInstnId><BICFI>CENTDEFF",
            "<Dbtr><FinInstnId><BICFI>BKBBDEFF",
        );
        let refusal = read(&directory(), between_banks.as_bytes(), TODAY)
            .unwrap()
            .items[0]
            .plan
            .clone()
            .unwrap_err();
        assert_eq!(refusal.code, "AG03");
    }

    fn refusal_of(xml: &str) -> Refusal {
        read(&directory(), xml.as_bytes(), TODAY).unwrap().items[0]
            .plan
            .clone()
            .unwrap_err()
    }

    /// On a network with a business day a value date makes a warehoused payment whatever
    /// the gateway's clock says: the ledger's calendar decides which day is open.
    #[test]
    fn a_value_date_on_a_network_with_a_business_day_is_a_warehoused_payment() {
        let mut directory = directory();
        directory.business_day = true;
        let pacs009 = sample("pacs.009");
        for (date, day) in [
            ("2026-12-06", 20_793),
            ("2026-12-07", 20_794),
            ("2026-12-09", 20_796),
        ] {
            let xml = pacs009.replace(
                "</IntrBkSttlmAmt>",
                &format!("</IntrBkSttlmAmt><IntrBkSttlmDt>{date}</IntrBkSttlmDt>"),
            );
            let fields = record(&read(&directory, xml.as_bytes(), TODAY).unwrap());
            assert_ne!(fields.flags.0 & TxFlags::WAREHOUSED, 0, "{date}");
            assert_eq!(fields.reserved_a, day, "{date}");
        }
        // without a value date, a plain payment
        let fields = record(&read(&directory, pacs009.as_bytes(), TODAY).unwrap());
        assert_eq!(fields.flags.0 & TxFlags::WAREHOUSED, 0);
        assert_eq!(fields.reserved_a, 0);
    }

    #[test]
    fn each_bad_transaction_is_refused_with_its_own_reason() {
        let pacs009 = sample("pacs.009");
        let unknown = refusal_of(&pacs009.replace(
            "<Cdtr><FinInstnId><BICFI>BKBBDEFF",
            "<Cdtr><FinInstnId><BICFI>NOBKDEFF",
        ));
        assert_eq!(unknown.code, "RC01");
        assert!(
            unknown.info.contains("NOBKDEFF names no participant"),
            "{}",
            unknown.info
        );
        let currency = refusal_of(&pacs009.replace("Ccy=\"EUR\"", "Ccy=\"USD\""));
        assert_eq!(currency.code, "AM11");
        assert!(
            currency.info.contains("\"USD\": this network settles EUR"),
            "{}",
            currency.info
        );
        let decimals = refusal_of(&pacs009.replace("250.00", "250.001"));
        assert_eq!(decimals.code, "AM12");
        assert!(
            decimals.info.contains("has 3 decimals"),
            "{}",
            decimals.info
        );
        let zero = refusal_of(&pacs009.replace("250.00", "0.00"));
        assert_eq!(zero.code, "AM12");
        let passed = refusal_of(&pacs009.replace(
            "<IntrBkSttlmAmt",
            "<IntrBkSttlmDt>2026-12-06</IntrBkSttlmDt><IntrBkSttlmAmt",
        ));
        // IntrBkSttlmDt follows the amount in the schema; either order is read
        assert_eq!(passed.code, "DT01");
        assert!(passed.info.contains("has passed"), "{}", passed.info);
        let ahead = refusal_of(&pacs009.replace(
            "</IntrBkSttlmAmt>",
            "</IntrBkSttlmAmt><IntrBkSttlmDt>2026-12-08</IntrBkSttlmDt>",
        ));
        assert_eq!(ahead.code, "DT01");
        assert!(
            ahead.info.contains("2026-12-08 is after today"),
            "{}",
            ahead.info
        );
        let today = read(
            &directory(),
            pacs009
                .replace(
                    "</IntrBkSttlmAmt>",
                    "</IntrBkSttlmAmt><IntrBkSttlmDt>2026-12-07</IntrBkSttlmDt>",
                )
                .as_bytes(),
            TODAY,
        )
        .unwrap();
        assert!(today.items[0].plan.is_ok());
        let account = refusal_of(&sample("pacs.008").replace("<Id>100</Id>", "<Id>ES91</Id>"));
        assert_eq!(account.code, "AC01");
        let category =
            refusal_of(&sample("pacs.008").replace("<Ctgy>1</Ctgy>", "<Ctgy>VAT</Ctgy>"));
        assert_eq!(category.code, "FF01");
        assert!(category.info.contains("Ctgy \"VAT\""), "{}", category.info);
    }

    #[test]
    fn a_message_that_cannot_be_read_is_refused_whole() {
        let directory = directory();
        for (xml, code, says) in [
            (
                "<Document><FICdtTrf>".to_string(),
                "FF01",
                "not a readable ISO 20022 message",
            ),
            ("not xml at all".to_string(), "FF01", "not a readable"),
            (
                sample("pacs.009").replace(
                    "urn:iso:std:iso:20022:tech:xsd:pacs.009.001.08",
                    "urn:example",
                ),
                "FF01",
                "not an ISO 20022 schema",
            ),
            (
                sample("pacs.009").replace("pacs.009.001.08", "pain.001.001.09"),
                "AG03",
                "pain.001.001.09 is not a message the gateway takes",
            ),
            (
                sample("pacs.009").replace("pacs.009.001.08", "pacs.008.001.08"),
                "FF01",
                "a pacs.008.001.08 Document holds a FIToFICstmrCdtTrf",
            ),
        ] {
            let refusal = read(&directory, xml.as_bytes(), TODAY).unwrap_err();
            assert_eq!(refusal.refusal.code, code, "{xml}");
            assert!(
                refusal.refusal.info.contains(says),
                "{}",
                refusal.refusal.info
            );
        }
        let refusal = read(&directory, &[0xff, 0xfe, 0x00], TODAY).unwrap_err();
        assert!(refusal.refusal.info.contains("not UTF-8"));
    }

    #[test]
    fn a_genesis_without_a_currency_code_or_bics_is_refused() {
        let mut genesis = crate::test_genesis();
        genesis.currency.code = String::new();
        assert!(Directory::of(&genesis)
            .unwrap_err()
            .contains("names no currency code"));
        let mut genesis = crate::test_genesis();
        for account in &mut genesis.accounts {
            account.bic = None;
        }
        assert!(Directory::of(&genesis)
            .unwrap_err()
            .contains("names no participant by BIC"));
    }

    #[test]
    fn ids_are_stable_and_references_keep_short_end_to_end_ids() {
        let a = record_id("BKAADEFF", "M1", "E1");
        assert_eq!(a, record_id("BKAADEFF", "M1", "E1"));
        assert_ne!(a, record_id("BKBBDEFF", "M1", "E1"));
        assert_ne!(a, record_id("BKAADEFF", "M1E", "1"));
        assert_eq!(
            reference_text(reference_of("INV-1")).as_deref(),
            Some("INV-1")
        );
        assert_eq!(
            reference_text(reference_of("an end-to-end id of 35 characters..")),
            None
        );
        // an 8-character BIC and its 11-character form name the same participant
        let directory = directory();
        assert_eq!(directory.account_of("BKBBDEFF"), Ok(11));
        assert_eq!(directory.account_of("BKAADEFFXXX"), Ok(10));
    }
}
