//! The accounts the gateway follows: each one's balance at the start of its statement period
//! and the entries booked since, made from the node's account events; the camt.054
//! notifications, camt.052 intraday reports and camt.053 statements written from them
//! (docs/ISO20022.md, "Messages out").

use crate::iso::{
    self, AccountEntries, Amount, BalanceType, BankTxCode, CodeOrProprietary, DateChoice, Entry,
    EntryDetails, EntryStatus, GroupHeader, NetEntry, OutDocument, Refs, RelatedParties,
    ReportAccount, TotalEntries, TxDetails, TxSummary,
};
use crate::translate::Directory;
use std::collections::{BTreeMap, VecDeque};
use tally_protocol::events::EventKind;

/// Most notifications kept for `GET /camt.054` (the oldest are dropped first).
pub const NOTIFICATIONS_KEPT: usize = 100_000;

/// One entry on one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookEntry {
    pub height: u64,
    pub id: u128,
    /// Minor units; positive credits the account, negative debits it.
    pub amount: i64,
    /// `BOOK` (money moved), `PDNG` (queued: waits for liquidity) or `INFO` (a queued
    /// payment expired unsettled).
    pub status: &'static str,
    pub event: EventKind,
    pub payer: u64,
    pub payee: u64,
    /// When the gateway heard it (ISO date-time, UTC).
    pub heard: String,
}

/// One account's statement period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Book {
    pub account: u64,
    /// The balance when the period began.
    pub opening: i64,
    pub opened: String,
    pub entries: Vec<BookEntry>,
    /// Statements written so far (camt.053 `ElctrncSeqNb`).
    pub statements: u64,
}

impl Book {
    /// The opening balance plus every booked entry.
    pub fn booked_balance(&self) -> i64 {
        self.opening
            + self
                .entries
                .iter()
                .filter(|entry| entry.status == "BOOK")
                .map(|entry| entry.amount)
                .sum::<i64>()
    }
}

/// Every followed account's book and the notifications not yet dropped.
#[derive(Debug, Default)]
pub struct Books {
    pub books: BTreeMap<u64, Book>,
    /// (sequence number, account, entry).
    pub notifications: VecDeque<(u64, u64, BookEntry)>,
    pub next_sequence: u64,
    /// The last block whose events were all heard.
    pub height: u64,
}

impl Books {
    /// Books for `accounts` at their opening balances.
    pub fn open(balances: &[(u64, i64)], now: &str) -> Books {
        Books {
            books: balances
                .iter()
                .map(|(account, opening)| {
                    (
                        *account,
                        Book {
                            account: *account,
                            opening: *opening,
                            opened: now.to_string(),
                            entries: Vec::new(),
                            statements: 0,
                        },
                    )
                })
                .collect(),
            ..Books::default()
        }
    }

    /// Books an entry on `account` if it is followed.
    pub fn book(&mut self, account: u64, entry: BookEntry) {
        let Some(book) = self.books.get_mut(&account) else {
            return;
        };
        book.entries.push(entry.clone());
        self.notifications
            .push_back((self.next_sequence, account, entry));
        self.next_sequence += 1;
        while self.notifications.len() > NOTIFICATIONS_KEPT {
            self.notifications.pop_front();
        }
    }
}

/// What the reports need besides the books: the directory, the end-to-end ids of payments
/// this gateway sent, and the time.
pub struct ReportContext<'a> {
    pub directory: &'a Directory,
    pub end_to_end: &'a dyn Fn(u128) -> Option<(String, String)>,
    pub now: &'a str,
    pub message_id: String,
}

fn sign_of(amount: i64) -> &'static str {
    if amount < 0 {
        "DBIT"
    } else {
        "CRDT"
    }
}

fn amount_of(context: &ReportContext, minor: i64) -> Amount {
    Amount {
        currency: context.directory.currency.code.clone(),
        value: context.directory.format(minor.unsigned_abs()),
    }
}

fn report_account(context: &ReportContext, account: u64) -> ReportAccount {
    ReportAccount {
        id: iso::account(account).id,
        currency: context.directory.currency.code.clone(),
        servicer: context.directory.bic_of(account).map(|bic| iso::Agent {
            institution: iso::Institution {
                bic: Some(bic.to_string()),
            },
        }),
    }
}

fn entry(context: &ReportContext, entry: &BookEntry) -> Entry {
    let (msg_id, end_to_end_id) = match (context.end_to_end)(entry.id) {
        Some((msg_id, e2e)) => (Some(msg_id), e2e),
        None => (None, "NOTPROVIDED".to_string()),
    };
    Entry {
        reference: entry.height.to_string(),
        amount: amount_of(context, entry.amount),
        sign: sign_of(entry.amount).to_string(),
        status: EntryStatus {
            code: entry.status.to_string(),
        },
        booked: (entry.status == "BOOK").then(|| DateChoice {
            date_time: entry.heard.clone(),
        }),
        servicer_ref: format!("{:032x}", entry.id),
        code: BankTxCode {
            proprietary: CodeOrProprietary {
                code: entry.event.name().to_string(),
            },
        },
        details: EntryDetails {
            tx: TxDetails {
                refs: Refs {
                    msg_id,
                    end_to_end_id,
                },
                parties: Some(RelatedParties {
                    debtor_account: iso::account(entry.payer),
                    creditor_account: iso::account(entry.payee),
                }),
            },
        },
    }
}

fn balance(context: &ReportContext, code: &str, minor: i64, when: &str) -> iso::Balance {
    iso::Balance {
        kind: BalanceType {
            code: CodeOrProprietary {
                code: code.to_string(),
            },
        },
        amount: amount_of(context, minor),
        sign: sign_of(minor).to_string(),
        date: DateChoice {
            date_time: when.to_string(),
        },
    }
}

fn summary(context: &ReportContext, entries: &[&BookEntry]) -> TxSummary {
    let sum: u64 = entries.iter().map(|e| e.amount.unsigned_abs()).sum();
    let net: i64 = entries.iter().map(|e| e.amount).sum();
    TxSummary {
        total: TotalEntries {
            count: entries.len() as u64,
            sum: context.directory.format(sum),
            net: NetEntry {
                amount: context.directory.format(net.unsigned_abs()),
                sign: sign_of(net).to_string(),
            },
        },
    }
}

/// A camt.054 of the notifications from sequence number `from` on (each `Ntfctn` is one
/// account's entry; its `Id` is the sequence number, the next request's `from` is the last
/// plus one).
pub fn camt054(books: &Books, context: &ReportContext, from: u64) -> OutDocument {
    let notifications = books
        .notifications
        .iter()
        .filter(|(sequence, _, _)| *sequence >= from)
        .map(|(sequence, account, booked)| AccountEntries {
            id: sequence.to_string(),
            sequence: Some(*sequence),
            created: context.now.to_string(),
            account: report_account(context, *account),
            balances: Vec::new(),
            summary: None,
            entries: vec![entry(context, booked)],
        })
        .collect();
    let mut document = OutDocument::new(iso::CAMT_054);
    document.camt054 = Some(iso::Notification {
        header: header(context),
        notifications,
    });
    document
}

fn header(context: &ReportContext) -> GroupHeader {
    GroupHeader {
        msg_id: context.message_id.clone(),
        created: Some(context.now.to_string()),
    }
}

/// One account's report or statement: the opening balance, the entries of the period and
/// the balance now (`closing_code`: `ITBD` interim or `CLBD` closing), which the caller has
/// checked is the node's.
fn account_entries(
    context: &ReportContext,
    book: &Book,
    closing_code: &str,
    sequence: Option<u64>,
) -> AccountEntries {
    let booked: Vec<&BookEntry> = book.entries.iter().filter(|e| e.status == "BOOK").collect();
    AccountEntries {
        id: format!("{}-{}", book.account, sequence.unwrap_or(book.statements)),
        sequence,
        created: context.now.to_string(),
        account: report_account(context, book.account),
        balances: vec![
            balance(context, "OPBD", book.opening, &book.opened),
            balance(context, closing_code, book.booked_balance(), context.now),
        ],
        summary: Some(summary(context, &booked)),
        entries: book.entries.iter().map(|e| entry(context, e)).collect(),
    }
}

/// A camt.052 intraday report of `accounts`' books (the period stays open).
pub fn camt052(books: &Books, context: &ReportContext, accounts: &[u64]) -> OutDocument {
    let reports = accounts
        .iter()
        .filter_map(|account| books.books.get(account))
        .map(|book| account_entries(context, book, "ITBD", None))
        .collect();
    let mut document = OutDocument::new(iso::CAMT_052);
    document.camt052 = Some(iso::AccountReport {
        header: header(context),
        reports,
    });
    document
}

/// A camt.053 statement of `accounts`' books; each period closes, and the next opens at
/// this one's closing balance.
pub fn camt053(books: &mut Books, context: &ReportContext, accounts: &[u64]) -> OutDocument {
    let mut statements = Vec::new();
    for account in accounts {
        let Some(book) = books.books.get_mut(account) else {
            continue;
        };
        book.statements += 1;
        statements.push(account_entries(
            context,
            book,
            "CLBD",
            Some(book.statements),
        ));
        book.opening = book.booked_balance();
        book.opened = context.now.to_string();
        book.entries.clear();
    }
    let mut document = OutDocument::new(iso::CAMT_053);
    document.camt053 = Some(iso::Statement {
        header: header(context),
        statements,
    });
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(height: u64, id: u128, amount: i64, status: &'static str) -> BookEntry {
        BookEntry {
            height,
            id,
            amount,
            status,
            event: EventKind::Settled,
            payer: 10,
            payee: 11,
            heard: "2026-12-07T10:00:00Z".into(),
        }
    }

    fn signed(amount: &Amount, sign: &str) -> i64 {
        let minor = amount.value.replace('.', "").parse::<i64>().unwrap();
        if sign == "DBIT" {
            -minor
        } else {
            minor
        }
    }

    #[test]
    fn a_statement_adds_up_and_the_next_opens_at_its_close() {
        let directory = Directory::of(&crate::test_genesis()).unwrap();
        let mut books = Books::open(&[(10, 1_000), (11, -50)], "2026-12-07T08:00:00Z");
        books.book(10, entry(3, 7, -1_250, "BOOK"));
        books.book(10, entry(4, 8, 90_000, "PDNG"));
        books.book(11, entry(3, 7, 1_250, "BOOK"));
        books.book(12, entry(3, 7, 5, "BOOK")); // not followed: no entry
        assert_eq!(books.notifications.len(), 3);
        let lookup = |id: u128| (id == 7).then(|| ("M1".to_string(), "E1".to_string()));
        let context = ReportContext {
            directory: &directory,
            end_to_end: &lookup,
            now: "2026-12-07T18:00:00Z",
            message_id: "S1".into(),
        };
        let document = camt053(&mut books, &context, &[10, 11]);
        let xml = document.to_xml();
        let read = OutDocument::from_xml(&xml).unwrap();
        assert_eq!(read, document, "{xml}");
        let statements = read.camt053.unwrap().statements;
        let a = &statements[0];
        assert_eq!(a.balances[0].kind.code.code, "OPBD");
        assert_eq!(signed(&a.balances[0].amount, &a.balances[0].sign), 1_000);
        assert_eq!(a.balances[1].kind.code.code, "CLBD");
        assert_eq!(signed(&a.balances[1].amount, &a.balances[1].sign), -250);
        assert_eq!(a.balances[1].sign, "DBIT");
        assert_eq!(a.entries.len(), 2);
        assert_eq!(a.entries[0].details.tx.refs.end_to_end_id, "E1");
        assert_eq!(a.entries[1].details.tx.refs.end_to_end_id, "NOTPROVIDED");
        assert_eq!(a.entries[1].status.code, "PDNG");
        assert_eq!(a.summary.as_ref().unwrap().total.count, 1);
        let b = &statements[1];
        assert_eq!(signed(&b.balances[1].amount, &b.balances[1].sign), 1_200);
        // the next period opens at the close, with no entries
        let next = camt053(&mut books, &context, &[10])
            .camt053
            .unwrap()
            .statements;
        assert_eq!(next[0].sequence, Some(2));
        assert!(next[0].entries.is_empty());
        assert_eq!(
            signed(&next[0].balances[0].amount, &next[0].balances[0].sign),
            -250
        );
        // notifications from a sequence number on
        let notes = camt054(&books, &context, 1).camt054.unwrap().notifications;
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].sequence, Some(1));
    }
}
