//! The accounts the gateway follows: each one's balance at the start of its statement period
//! and the entries booked since, made from the node's account events; the camt.054
//! notifications, camt.052 intraday reports and camt.053 statements written from them
//! (docs/ISO20022.md, "Messages out").
//!
//! On a network with a business-day calendar the period is the business day: the block that
//! applies a day's end of day (its stamp names the day ended) closes every account's period,
//! and the day's statements are kept, by date and in the order they were made, for the hub
//! to fetch. Without a calendar the period closes when the hub asks for a camt.053.

use crate::iso::{
    self, AccountEntries, Amount, BalanceType, BankTxCode, CodeOrProprietary, DateChoice, Entry,
    EntryDetails, EntryStatus, GroupHeader, NetEntry, OutDocument, Refs, RelatedParties,
    ReportAccount, TotalEntries, TxDetails, TxSummary,
};
use crate::translate::Directory;
use std::collections::{BTreeMap, VecDeque};
use tally_protocol::calendar::Calendar;
use tally_protocol::events::{AccountEvent, BlockStamp, EventKind};

/// Most notifications kept for `GET /camt.054` (the oldest are dropped first).
pub const NOTIFICATIONS_KEPT: usize = 100_000;
/// Most business-day statements kept for `GET /camt.053?from=` and `?date=` (the oldest are
/// dropped first).
pub const STATEMENTS_KEPT: usize = 100_000;

/// One entry on one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookEntry {
    pub height: u64,
    pub id: u128,
    /// Minor units; positive credits the account, negative debits it.
    pub amount: i64,
    /// `BOOK` (money moved), `PDNG` (queued or warehoused: waits) or `INFO` (nothing moved:
    /// a queued payment expired or was cancelled, a warehoused one was refused).
    pub status: &'static str,
    pub event: EventKind,
    pub payer: u64,
    pub payee: u64,
    /// The time of the block that booked it (ISO date-time, UTC): `BookgDt`.
    pub booked_at: String,
    /// The business day it belongs to (`YYYY-MM-DD`): `ValDt`.
    pub value_date: String,
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
    /// The account's balance at the end of the last block that named it, as the node's
    /// events said (`None` until one did).
    pub ledger_balance: Option<i64>,
}

/// One account's statement of one business day, closed by the block that ended the day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayStatement {
    /// Its place among the statements made (`GET /camt.053?from=`).
    pub sequence: u64,
    /// The business day (days since 1970-01-01) and its date.
    pub day: u64,
    pub date: String,
    /// The period closed: its opening, its entries and its statement number.
    pub book: Book,
    /// The time of the block that ended the day (the closing balance's date).
    pub closed_at: String,
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
    /// The network's business-day calendar: the period is its business day.
    pub calendar: Option<Calendar>,
    /// The business-day statements made, oldest first.
    pub day_statements: VecDeque<DayStatement>,
    pub next_statement: u64,
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
                            ledger_balance: None,
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

    /// Closes `accounts`' periods at `now` (a camt.053 asked for, on a network without a
    /// calendar): each next period opens at the closing balance.
    pub fn close_periods(&mut self, accounts: &[u64], now: &str) {
        for account in accounts {
            if let Some(book) = self.books.get_mut(account) {
                book.statements += 1;
                book.opening = book.booked_balance();
                book.opened = now.to_string();
                book.entries.clear();
            }
        }
    }

    /// The business day of a block time and its date: the calendar's, or without one the
    /// UTC date.
    fn value_date(&self, time_ms: u64) -> (u64, String) {
        match &self.calendar {
            Some(calendar) => {
                let day = calendar.day_of(time_ms);
                (day, tally_protocol::calendar::format_date(day))
            }
            None => {
                let day = time_ms / 86_400_000;
                (day, tally_protocol::calendar::format_date(day))
            }
        }
    }

    /// Books one block's events (the whole block, as a complete batch brought it). A block
    /// that ended a business day on a network with a calendar first books its `expired`
    /// events (that day's queue, rejected at its end) into the day, then closes every
    /// account's period into that day's statement; its other events open the next day.
    pub fn book_block(&mut self, height: u64, stamp: BlockStamp, events: &[AccountEvent]) {
        let booked_at = iso_of_ms(stamp.time_ms);
        match (self.calendar.is_some(), stamp.day_ended) {
            (true, Some(ended)) => {
                let date = tally_protocol::calendar::format_date(ended);
                let (closing, rest): (Vec<&AccountEvent>, Vec<&AccountEvent>) = events
                    .iter()
                    .partition(|event| event.kind == EventKind::Expired);
                for event in closing {
                    self.book_event(height, event, &booked_at, &date, false);
                }
                self.close_day(ended, &date, &booked_at);
                let (_, date) = self.value_date(stamp.time_ms);
                for event in rest {
                    self.book_event(height, event, &booked_at, &date, true);
                }
            }
            _ => {
                let (_, date) = self.value_date(stamp.time_ms);
                for event in events {
                    self.book_event(height, event, &booked_at, &date, true);
                }
            }
        }
        self.height = height;
    }

    /// Books one event on each followed account it names; `balances`: take the event's
    /// balances as the ledger's (not for a day's closing events booked before the cut,
    /// whose balances are the end of a block of the next day).
    fn book_event(
        &mut self,
        height: u64,
        event: &AccountEvent,
        booked_at: &str,
        value_date: &str,
        balances: bool,
    ) {
        if event.kind == EventKind::Cancelled {
            // the payment no longer waits: its pending entries leave the open period
            for book in self.books.values_mut() {
                book.entries
                    .retain(|entry| !(entry.id == event.id && entry.status == "PDNG"));
            }
        }
        for (account, amount, status) in movements(event) {
            self.book(
                account,
                BookEntry {
                    height,
                    id: event.id,
                    amount,
                    status,
                    event: event.kind,
                    payer: event.payer,
                    payee: event.payee,
                    booked_at: booked_at.to_string(),
                    value_date: value_date.to_string(),
                },
            );
        }
        if balances {
            for book in self.books.values_mut() {
                if let Some(balance) = event.balance_of(book.account) {
                    book.ledger_balance = Some(balance);
                }
            }
        }
    }

    /// Closes every account's period into day `day`'s statement; the next opens at its
    /// closing balance.
    fn close_day(&mut self, day: u64, date: &str, closed_at: &str) {
        for book in self.books.values_mut() {
            let closing = book.booked_balance();
            if let Some(ledger) = book.ledger_balance.filter(|ledger| *ledger != closing) {
                tracing::warn!(
                    account = book.account,
                    booked = closing,
                    ledger,
                    date,
                    "the day's statement does not end at the ledger's balance: the gateway's books missed an event"
                );
            }
            book.statements += 1;
            self.day_statements.push_back(DayStatement {
                sequence: self.next_statement,
                day,
                date: date.to_string(),
                book: book.clone(),
                closed_at: closed_at.to_string(),
            });
            self.next_statement += 1;
            book.opening = closing;
            book.opened = closed_at.to_string();
            book.entries.clear();
        }
        while self.day_statements.len() > STATEMENTS_KEPT {
            self.day_statements.pop_front();
        }
    }
}

/// A block time as an ISO date-time (UTC, seconds).
pub fn iso_of_ms(time_ms: u64) -> String {
    let since = (time_ms / 1_000) as i64;
    let (year, month, day) = crate::translate::civil_from_days(since.div_euclid(86_400));
    let seconds = since.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The movements of one event on each account it names: (account, signed minor units,
/// status). A taxed payment's basis comes with the event: on the exclusive basis the payer
/// pays the tax on top, else it comes out of the amount.
pub fn movements(event: &AccountEvent) -> Vec<(u64, i64, &'static str)> {
    let amount = event.amount as i64;
    let tax = event.tax.unwrap_or(0) as i64;
    match event.kind {
        EventKind::Settled | EventKind::Released => match event.tax_account {
            Some(tax_account) => {
                let (debited, net) = if event.exclusive {
                    (amount + tax, amount)
                } else {
                    (amount, amount - tax)
                };
                vec![
                    (event.payer, -debited, "BOOK"),
                    (event.payee, net, "BOOK"),
                    (tax_account, tax, "BOOK"),
                ]
            }
            None => vec![
                (event.payer, -amount, "BOOK"),
                (event.payee, amount, "BOOK"),
            ],
        },
        EventKind::Refunded => {
            let (payee_pays, payer_gets) = if event.exclusive {
                (amount, amount + tax)
            } else {
                (amount - tax, amount)
            };
            let mut moves = vec![
                (event.payer, -payee_pays, "BOOK"),
                (event.payee, payer_gets, "BOOK"),
            ];
            if let Some(tax_account) = event.tax_account {
                moves.push((tax_account, -tax, "BOOK"));
            }
            moves
        }
        // waiting: in an RTGS queue, or warehoused for its value date's opening
        EventKind::Queued | EventKind::Warehoused => vec![
            (event.payer, -amount, "PDNG"),
            (event.payee, amount, "PDNG"),
        ],
        // nothing moved: expired or rejected at the end of day, refused at its opening,
        // cancelled by its payer
        EventKind::Expired | EventKind::Rejected | EventKind::Cancelled => vec![
            (event.payer, -amount, "INFO"),
            (event.payee, amount, "INFO"),
        ],
        // reservations are not mapped from ISO messages: no entry
        EventKind::Reserved | EventKind::ReservationExpired => Vec::new(),
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
            date_time: entry.booked_at.clone(),
        }),
        valued: (entry.status == "BOOK").then(|| iso::DateOnly {
            date: entry.value_date.clone(),
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
            period: None,
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
    AccountEntries {
        id: format!("{}-{}", book.account, sequence.unwrap_or(book.statements)),
        ..period_entries(context, book, closing_code, sequence, context.now)
    }
}

fn period_entries(
    context: &ReportContext,
    book: &Book,
    closing_code: &str,
    sequence: Option<u64>,
    closed_at: &str,
) -> AccountEntries {
    let booked: Vec<&BookEntry> = book.entries.iter().filter(|e| e.status == "BOOK").collect();
    AccountEntries {
        id: String::new(),
        sequence,
        created: context.now.to_string(),
        period: None,
        account: report_account(context, book.account),
        balances: vec![
            balance(context, "OPBD", book.opening, &book.opened),
            balance(context, closing_code, book.booked_balance(), closed_at),
        ],
        summary: Some(summary(context, &booked)),
        entries: book.entries.iter().map(|e| entry(context, e)).collect(),
    }
}

/// A camt.053 of business-day statements already closed, in the order they were made: each
/// `Id` is the account and the day's date, its period runs to the block that ended the day,
/// and its closing balance is dated at that block.
pub fn day_camt053(context: &ReportContext, statements: &[&DayStatement]) -> OutDocument {
    let statements = statements
        .iter()
        .map(|day| AccountEntries {
            id: format!("{}-{}", day.book.account, day.date),
            period: Some(iso::FromTo {
                from: day.book.opened.clone(),
                to: day.closed_at.clone(),
            }),
            ..period_entries(
                context,
                &day.book,
                "CLBD",
                Some(day.book.statements),
                &day.closed_at,
            )
        })
        .collect();
    let mut document = OutDocument::new(iso::CAMT_053);
    document.camt053 = Some(iso::Statement {
        header: header(context),
        statements,
    });
    document
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
        let Some(book) = books.books.get(account) else {
            continue;
        };
        statements.push(account_entries(
            context,
            book,
            "CLBD",
            Some(book.statements + 1),
        ));
    }
    books.close_periods(accounts, context.now);
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
            booked_at: "2026-12-07T10:00:00Z".into(),
            value_date: "2026-12-07".into(),
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

    const HOUR_MS: u64 = 3_600_000;
    const DAY: u64 = 20_000; // 2024-10-04

    fn calendar() -> Calendar {
        Calendar {
            opening_ms: 8 * HOUR_MS as i64,
            cut_off_ms: [16 * HOUR_MS as i64; 3],
            end_of_day_ms: 18 * HOUR_MS as i64,
            closed_weekdays: 0,
            holidays: Default::default(),
            warehouse_days: 5,
            warehouse_capacity: 16,
        }
    }

    /// An event of `kind` from 10 to 11 with the ledger's balances of both after its block.
    fn event(kind: EventKind, id: u128, amount: u64, balances: (i64, i64)) -> AccountEvent {
        AccountEvent {
            kind,
            id,
            related_id: None,
            payer: 10,
            payee: 11,
            amount,
            tax: None,
            tax_account: None,
            exclusive: false,
            payer_balance: balances.0,
            payee_balance: balances.1,
            tax_account_balance: None,
        }
    }

    fn at(day: u64, ms: u64) -> BlockStamp {
        BlockStamp {
            time_ms: day * 86_400_000 + ms,
            day_ended: None,
        }
    }

    fn day_balance(statement: &AccountEntries, code: &str) -> i64 {
        let found = statement
            .balances
            .iter()
            .find(|b| b.kind.code.code == code)
            .unwrap();
        signed(&found.amount, &found.sign)
    }

    #[test]
    fn the_end_of_day_block_cuts_each_days_statement_which_adds_up_to_the_ledger() {
        let directory = Directory::of(&crate::test_genesis()).unwrap();
        let mut books = Books::open(&[(10, 1_000), (11, 500)], "2024-10-04T07:00:00Z");
        books.calendar = Some(calendar());
        let (queued, cancelled) = (20, 21);
        books.book_block(
            5,
            at(DAY, 9 * HOUR_MS),
            &[event(EventKind::Settled, 1, 300, (700, 800))],
        );
        let mut back = event(EventKind::Settled, 2, 50, (750, 750));
        (back.payer, back.payee) = (11, 10);
        books.book_block(
            6,
            at(DAY, 10 * HOUR_MS),
            &[event(EventKind::Queued, queued, 5_000, (700, 800)), back],
        );
        // a taxed payment on the exclusive basis: the payer pays the tax on top, as the
        // event says (the node is not asked)
        let taxed = AccountEvent {
            tax: Some(19),
            tax_account: Some(2),
            exclusive: true,
            tax_account_balance: Some(19),
            ..event(EventKind::Settled, 3, 100, (631, 850))
        };
        books.book_block(7, at(DAY, 11 * HOUR_MS), &[taxed]);
        // a queued payment cancelled: its pending entry leaves the period
        books.book_block(
            8,
            at(DAY, 12 * HOUR_MS),
            &[event(EventKind::Queued, cancelled, 40, (631, 850))],
        );
        books.book_block(
            9,
            at(DAY, 13 * HOUR_MS),
            &[event(EventKind::Cancelled, cancelled, 40, (631, 850))],
        );
        assert!(books.day_statements.is_empty(), "nothing cut in the day");
        // the block that ends the day: the queue's rejection belongs to the day, a payment
        // in the same block to the next one
        books.book_block(
            10,
            BlockStamp {
                day_ended: Some(DAY),
                ..at(DAY, 18 * HOUR_MS + 5_000)
            },
            &[
                event(EventKind::Settled, 4, 1, (630, 851)),
                event(EventKind::Expired, queued, 5_000, (630, 851)),
            ],
        );
        assert_eq!(books.day_statements.len(), 2, "one per account, unasked");
        let lookup = |_: u128| None;
        let context = ReportContext {
            directory: &directory,
            end_to_end: &lookup,
            now: "2024-10-05T09:00:00Z",
            message_id: "S1".into(),
        };
        let first: Vec<&DayStatement> = books.day_statements.iter().collect();
        let document = day_camt053(&context, &first);
        let xml = document.to_xml();
        assert_eq!(OutDocument::from_xml(&xml).unwrap(), document, "{xml}");
        let statements = document.camt053.unwrap().statements;
        let a = &statements[0];
        assert_eq!(a.id, "10-2024-10-04");
        assert_eq!(a.sequence, Some(1));
        let period = a.period.as_ref().unwrap();
        assert_eq!(period.to, "2024-10-04T18:00:05Z");
        let booked: i64 = a
            .entries
            .iter()
            .filter(|e| e.status.code == "BOOK")
            .map(|e| signed(&e.amount, &e.sign))
            .sum();
        assert_eq!(day_balance(a, "OPBD"), 1_000);
        assert_eq!(day_balance(a, "OPBD") + booked, day_balance(a, "CLBD"));
        assert_eq!(
            day_balance(a, "CLBD"),
            631,
            "the ledger's balance at the day's end"
        );
        assert_eq!(books.day_statements[0].book.ledger_balance, Some(631));
        // booking dates are the blocks' times, value dates the business day
        let dates: Vec<(&str, &str)> = a
            .entries
            .iter()
            .filter(|e| e.status.code == "BOOK")
            .map(|e| {
                (
                    e.booked.as_ref().unwrap().date_time.as_str(),
                    e.valued.as_ref().unwrap().date.as_str(),
                )
            })
            .collect();
        assert_eq!(
            dates,
            [
                ("2024-10-04T09:00:00Z", "2024-10-04"),
                ("2024-10-04T10:00:00Z", "2024-10-04"),
                ("2024-10-04T11:00:00Z", "2024-10-04")
            ]
        );
        let taxed_entry = a
            .entries
            .iter()
            .find(|e| e.servicer_ref == format!("{:032x}", 3));
        let taxed_entry = taxed_entry.unwrap();
        assert_eq!(signed(&taxed_entry.amount, &taxed_entry.sign), -119);
        // the cancelled payment shows no PDNG, only its INFO; the queue's end-of-day
        // rejection is the day's
        let statuses: Vec<(String, &str)> = a
            .entries
            .iter()
            .map(|e| (e.servicer_ref.clone(), e.status.code.as_str()))
            .collect();
        let of = |id: u128| format!("{id:032x}");
        assert!(!statuses.contains(&(of(cancelled), "PDNG")), "{statuses:?}");
        assert!(statuses.contains(&(of(cancelled), "INFO")), "{statuses:?}");
        assert!(statuses.contains(&(of(queued), "INFO")), "{statuses:?}");
        assert!(!statuses.iter().any(|(id, _)| *id == of(4)), "{statuses:?}");
        let b = &statements[1];
        assert_eq!(day_balance(b, "CLBD"), 850);

        // the next day opens at that closing and ends at the ledger's balance again
        books.book_block(
            11,
            BlockStamp {
                day_ended: Some(DAY + 1),
                ..at(DAY + 1, 18 * HOUR_MS)
            },
            &[],
        );
        let next: Vec<&DayStatement> = books
            .day_statements
            .iter()
            .filter(|day| day.date == "2024-10-05")
            .collect();
        assert_eq!(next.len(), 2);
        assert_eq!(next[0].sequence, 2);
        let next = day_camt053(&context, &next).camt053.unwrap().statements;
        assert_eq!(next[0].sequence, Some(2));
        assert_eq!(day_balance(&next[0], "OPBD"), 631);
        assert_eq!(day_balance(&next[0], "CLBD"), 630);
        assert_eq!(next[0].entries.len(), 1);
        assert_eq!(day_balance(&next[1], "OPBD"), 850);
        assert_eq!(day_balance(&next[1], "CLBD"), 851);
    }

    #[test]
    fn without_a_calendar_a_day_ended_cuts_nothing() {
        let mut books = Books::open(&[(10, 1_000)], "2024-10-04T07:00:00Z");
        books.book_block(
            3,
            BlockStamp {
                day_ended: Some(DAY),
                ..at(DAY + 1, 0)
            },
            &[event(EventKind::Settled, 1, 300, (700, 300))],
        );
        assert!(books.day_statements.is_empty());
        assert_eq!(books.books[&10].booked_balance(), 700);
        assert_eq!(books.books[&10].entries[0].value_date, "2024-10-05");
    }
}
