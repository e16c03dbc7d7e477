//! The gateway of one participant: it signs the records of the messages its bank sends with
//! the bank's key, sends them to the nodes over the client library with the bank's identity,
//! answers each message with a pacs.002, and follows the bank's accounts' events for its
//! camt.054, camt.052 and camt.053.

use crate::books::{self, Books, ReportContext};
use crate::iso::{
    self, GroupHeader, OriginalGroupStatus, OutDocument, ReasonCode, StatusReason, StatusReport,
    TxStatus,
};
use crate::reasons;
use crate::store::{Record, Store, StoreError};
use crate::translate::{self, Directory, Item, Message, MessageRefusal, Plan, Refusal};
use ed25519_zebra::SigningKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tally_protocol::client::{submit_and_wait, Client, ClientError, ClientOptions};
use tally_protocol::events::{AccountEvent, BlockStamp, Subscription};
use tally_protocol::genesis::Genesis;
use tally_protocol::operator;
use tally_protocol::result::ResultCode;
use tally_protocol::tx::{TxFields, TxRecord};

/// Record id -> (message id, end-to-end id) of the payments this gateway sent.
type SentIds = HashMap<u128, (String, String)>;

/// Most messages' end-to-end ids remembered for the notifications of what this gateway sent.
const SENT_REMEMBERED: usize = 1_000_000;

/// What a gateway runs with.
pub struct GatewayConfig {
    /// The nodes' client addresses, in order of preference.
    pub nodes: Vec<String>,
    pub options: ClientOptions,
    pub genesis: Genesis,
    /// The participant's signing key.
    pub key: SigningKey,
    /// The accounts whose events make the notifications, reports and statements.
    pub follow: Vec<u64>,
    /// Longest wait for a record's result (past it the answer is `PDNG`).
    pub result_timeout: Duration,
    /// Where the books are kept (`books.jnl`), to reload them at the next start; `None`:
    /// in memory only, opened again from the ledger's balances at each start.
    pub data_dir: Option<PathBuf>,
}

/// Why a gateway could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the genesis does not suit the gateway: {0}")]
    Genesis(String),
    #[error(transparent)]
    Node(#[from] operator::OperatorError),
    #[error("the node failed: {0}")]
    Client(#[from] ClientError),
    #[error("no account followed is named {0:?}: give an account number or BIC the gateway follows (--follow)")]
    NotFollowed(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the books in {path} cannot be reloaded: {reason}")]
    Reload { path: PathBuf, reason: String },
    #[error("the gateway has not heard every event of account {account} yet: its books say {booked}, the node {node}; ask again")]
    Behind {
        account: u64,
        booked: i64,
        node: i64,
    },
}

/// A running gateway.
pub struct Gateway {
    pub directory: Directory,
    genesis_hash: [u8; 32],
    key: SigningKey,
    nodes: Vec<String>,
    options: ClientOptions,
    result_timeout: Duration,
    client: Mutex<Option<Arc<Client>>>,
    books: Arc<Mutex<Books>>,
    /// The books on disk, appended before the books in memory change (taken after `books`
    /// when both are held).
    store: Mutex<Option<Store>>,
    /// Record id -> (message id, end-to-end id) of what this gateway sent.
    sent: Mutex<SentIds>,
    reports: AtomicU64,
    stop: Arc<AtomicBool>,
    follower: Mutex<Option<JoinHandle<()>>>,
}

/// Now as an ISO date-time (UTC, seconds).
pub fn iso_now() -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    books::iso_of_ms(u64::try_from(now_ms).unwrap_or(u64::MAX))
}

/// Today as a business-day number (days since 1970-01-01 UTC).
pub fn today() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
        / 86_400
}

impl Gateway {
    /// Connects to the first node that answers (checked against the genesis), reads the
    /// followed accounts' balances and starts following their events.
    pub fn start(config: GatewayConfig) -> Result<Arc<Gateway>, GatewayError> {
        let directory = Directory::of(&config.genesis).map_err(GatewayError::Genesis)?;
        let genesis_hash = config.genesis.hash();
        let connected = operator::connect_any(&config.nodes, &config.options, Some(&genesis_hash))?;
        let client = Arc::new(connected.client);
        let (mut store, records) = match &config.data_dir {
            Some(dir) => {
                let (store, records) = Store::open(dir)?;
                (Some(store), records)
            }
            None => (None, Vec::new()),
        };
        let (mut books, sent) = match store.as_ref().filter(|_| !records.is_empty()) {
            Some(opened) => {
                let calendar = config.genesis.calendar();
                let (books, sent) =
                    reload(&records, &config.follow, calendar).map_err(|reason| {
                        GatewayError::Reload {
                            path: opened.path().to_path_buf(),
                            reason,
                        }
                    })?;
                tracing::info!(path = %opened.path().display(), height = books.height, "the gateway's books reloaded; following from the block after");
                (books, sent)
            }
            None => {
                let (height, balances) = balances_at_one_height(&client, &config.follow)?;
                let opened = iso_now();
                if let Some(store) = store.as_mut() {
                    store.append(&Record::Open {
                        height,
                        balances: balances.clone(),
                        opened: opened.clone(),
                    })?;
                    store.flush()?;
                }
                let mut books = Books::open(&balances, &opened);
                books.height = height;
                (books, HashMap::new())
            }
        };
        books.calendar = config.genesis.calendar();
        let height = books.height;
        let books = Arc::new(Mutex::new(books));
        let gateway = Arc::new(Gateway {
            directory,
            genesis_hash,
            key: config.key,
            nodes: config.nodes,
            options: config.options,
            result_timeout: config.result_timeout,
            client: Mutex::new(Some(client)),
            books,
            store: Mutex::new(store),
            sent: Mutex::new(sent),
            reports: AtomicU64::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            follower: Mutex::new(None),
        });
        if !config.follow.is_empty() {
            let follower = {
                let gateway = Arc::clone(&gateway);
                let accounts = config.follow.clone();
                std::thread::Builder::new()
                    .name("tally-gateway-events".into())
                    .spawn(move || gateway.follow(accounts, height + 1))
                    .map_err(|error| {
                        GatewayError::Genesis(format!("cannot start a thread: {error}"))
                    })?
            };
            *gateway.follower.lock().expect("follower") = Some(follower);
        }
        Ok(gateway)
    }

    /// Stops following events.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(follower) = self.follower.lock().expect("follower").take() {
            let _ = follower.join();
        }
    }

    /// The client connection, made again when it failed.
    fn client(&self) -> Result<Arc<Client>, GatewayError> {
        let mut slot = self.client.lock().expect("client");
        if let Some(client) = slot.as_ref() {
            if client.connection_error().is_none() {
                return Ok(Arc::clone(client));
            }
        }
        let connected =
            operator::connect_any(&self.nodes, &self.options, Some(&self.genesis_hash))?;
        let client = Arc::new(connected.client);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Signs `fields`, valid for half the genesis's validity window from now.
    fn sign(&self, fields: TxFields) -> TxRecord {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let valid_until =
            (now_ms / 1_000 * 1_000).saturating_add(self.directory.validity_window_ms / 2);
        TxRecord::signed(
            &fields.valid_until(valid_until),
            self.directory.network_id,
            &self.key,
        )
    }

    /// Answers one message (the body of a POST) with its pacs.002.
    pub fn handle(&self, xml: &[u8]) -> OutDocument {
        match translate::read(&self.directory, xml, today()) {
            Ok(message) => self.settle(message),
            Err(refusal) => group_refusal(&refusal),
        }
    }

    /// Sends the records of a message read and reports what became of each.
    fn settle(&self, message: Message) -> OutDocument {
        let mut records = Vec::new();
        let mut outcomes: Vec<Result<u128, Refusal>> = Vec::with_capacity(message.items.len());
        for item in &message.items {
            let fields = match &item.plan {
                Ok(Plan::Record(fields)) => Ok(*fields),
                Ok(Plan::Return {
                    id,
                    reference,
                    original,
                    from,
                    to,
                    amount,
                }) => self.return_fields(*id, *reference, *original, *from, *to, *amount),
                Err(refusal) => Err(refusal.clone()),
            };
            outcomes.push(fields.map(|fields| {
                records.push(self.sign(fields));
                fields.id
            }));
        }
        {
            let mut sent = self.sent.lock().expect("sent");
            if sent.len() + records.len() > SENT_REMEMBERED {
                sent.clear();
            }
            let mut store = self.store.lock().expect("store");
            for (item, outcome) in message.items.iter().zip(&outcomes) {
                if let Ok(id) = outcome {
                    sent.insert(*id, (message.msg_id.clone(), item.end_to_end_id.clone()));
                    if let Some(store) = store.as_mut() {
                        let record = Record::Sent {
                            id: *id,
                            msg_id: message.msg_id.clone(),
                            end_to_end_id: item.end_to_end_id.clone(),
                        };
                        if let Err(error) = store.append(&record) {
                            tracing::error!(%error, "the gateway cannot keep a sent payment's ids on disk");
                        }
                    }
                }
            }
        }
        let results = self.submit(&records);
        let cancellation = message.schema.starts_with("camt.056");
        let transactions = message
            .items
            .iter()
            .zip(outcomes)
            .map(|(item, outcome)| {
                let status = tx_status(item, outcome.map(|id| (id, results.get(&id).cloned())));
                if cancellation {
                    cancelled(status)
                } else {
                    status
                }
            })
            .collect();
        let mut document = OutDocument::new(iso::PACS_002);
        document.pacs002 = Some(StatusReport {
            header: self.header(),
            original_group: OriginalGroupStatus {
                msg_id: message.msg_id,
                msg_name: message.schema,
                status: None,
                reason: None,
            },
            transactions,
        });
        document
    }

    /// A return's record: a refund when the original is a settled taxed payment, else a
    /// transfer back.
    fn return_fields(
        &self,
        id: u128,
        reference: u128,
        original: u128,
        from: u64,
        to: u64,
        amount: u64,
    ) -> Result<TxFields, Refusal> {
        let ledger = self.directory.ledger;
        let taxed = self
            .client()
            .map_err(|error| Refusal::new(reasons::NOT_SPECIFIED, error.to_string()))?
            .tx_status(original)
            .map_err(|error| Refusal::new(reasons::NOT_SPECIFIED, error.to_string()))?
            .taxed
            .is_some();
        let fields = if taxed {
            TxFields::refund(id, ledger, from, to, amount, original)
        } else {
            TxFields::transfer(id, from, to, amount, ledger)
        };
        Ok(TxFields {
            reference,
            ..fields
        })
    }

    /// Submits `records` and waits for their results: each id's (code, height), or why
    /// there is none (not taken, no result in time).
    fn submit(&self, records: &[TxRecord]) -> HashMap<u128, Result<ResultCode, String>> {
        let mut results = HashMap::new();
        if records.is_empty() {
            return results;
        }
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => {
                for record in records {
                    results.insert(record.id(), Err(format!("no node: {error}")));
                }
                return results;
            }
        };
        match submit_and_wait(&client, records, self.result_timeout) {
            Ok((acks, refusal)) => {
                for ack in acks {
                    results.insert(ack.id, Ok(ack.code));
                }
                if let Some(refusal) = refusal {
                    for record in records {
                        results
                            .entry(record.id())
                            .or_insert_with(|| Err(format!("not taken: {refusal}")));
                    }
                }
            }
            Err(ClientError::Timeout { .. }) => {}
            Err(error) => {
                for record in records {
                    results.insert(record.id(), Err(format!("node failed: {error}")));
                }
            }
        }
        results
    }

    fn header(&self) -> GroupHeader {
        let n = self.reports.fetch_add(1, Ordering::Relaxed);
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        GroupHeader {
            msg_id: format!("TALLY-{since}-{n}"),
            created: Some(iso_now()),
        }
    }

    /// The followed account an account number or BIC names.
    pub fn followed(&self, name: &str) -> Result<u64, GatewayError> {
        let account = match name.parse::<u64>() {
            Ok(account) => account,
            Err(_) => self
                .directory
                .account_of(name)
                .map_err(|_| GatewayError::NotFollowed(name.to_string()))?,
        };
        if self
            .books
            .lock()
            .expect("books")
            .books
            .contains_key(&account)
        {
            Ok(account)
        } else {
            Err(GatewayError::NotFollowed(name.to_string()))
        }
    }

    /// Runs `make` with the context of an outgoing report: the directory, the sent
    /// payments' ids, now, and a new message id.
    fn with_report_context<R>(&self, make: impl FnOnce(&ReportContext) -> R) -> R {
        let end_to_end = |id| self.sent.lock().expect("sent").get(&id).cloned();
        let now = iso_now();
        make(&ReportContext {
            directory: &self.directory,
            end_to_end: &end_to_end,
            now: &now,
            message_id: self.header().msg_id,
        })
    }

    /// The camt.054 of notifications from sequence number `from` on.
    pub fn notifications(&self, from: u64) -> OutDocument {
        self.with_report_context(|context| {
            books::camt054(&self.books.lock().expect("books"), context, from)
        })
    }

    /// Waits (up to the result timeout) until every book of `accounts` has heard the events
    /// that make the node's balance.
    fn caught_up(&self, accounts: &[u64]) -> Result<(), GatewayError> {
        let deadline = Instant::now() + self.result_timeout;
        loop {
            let client = self.client()?;
            let mut behind = None;
            for account in accounts {
                let node = client.balance(*account)?.unwrap_or(0);
                let booked = self.books.lock().expect("books").books[account].booked_balance();
                if node != booked {
                    behind = Some(GatewayError::Behind {
                        account: *account,
                        booked,
                        node,
                    });
                    break;
                }
            }
            match behind {
                None => return Ok(()),
                Some(error) if Instant::now() >= deadline => return Err(error),
                Some(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// A camt.052 intraday report (`statement` false) or a camt.053 statement that closes
    /// the period (`statement` true) of `accounts`; its balances are checked against the
    /// node's first.
    pub fn report(&self, accounts: &[u64], statement: bool) -> Result<OutDocument, GatewayError> {
        if statement && self.daily_statements() {
            return Err(GatewayError::BadRequest(
                "on a network with a business-day calendar each day's camt.053 is made at its end of day: fetch them with from= or date=".into(),
            ));
        }
        self.caught_up(accounts)?;
        self.with_report_context(|context| {
            let mut books = self.books.lock().expect("books");
            Ok(if statement {
                if let Some(store) = self.store.lock().expect("store").as_mut() {
                    store.append(&Record::Closed {
                        accounts: accounts.to_vec(),
                        now: context.now.to_string(),
                    })?;
                }
                books::camt053(&mut books, context, accounts)
            } else {
                books::camt052(&books, context, accounts)
            })
        })
    }

    /// Whether statements are cut at each business day's end (the genesis has a calendar)
    /// rather than when the hub asks.
    pub fn daily_statements(&self) -> bool {
        self.books.lock().expect("books").calendar.is_some()
    }

    /// The business-day statements of `accounts` kept: those whose statement number
    /// (`ElctrncSeqNb`) is `from` or more, and of the day `date` (`YYYY-MM-DD`) when given,
    /// in the order they were made.
    pub fn day_statements(
        &self,
        accounts: &[u64],
        from: u64,
        date: Option<&str>,
    ) -> Result<OutDocument, GatewayError> {
        if let Some(date) = date {
            tally_protocol::calendar::parse_date(date).map_err(|error| {
                GatewayError::BadRequest(format!("date={date} is not a date (YYYY-MM-DD): {error}"))
            })?;
        }
        let books = self.books.lock().expect("books");
        if books.calendar.is_none() {
            return Err(GatewayError::BadRequest(
                "this network has no business-day calendar: a camt.053 closes the period when asked (GET /camt.053 without from= or date=)".into(),
            ));
        }
        let chosen: Vec<&books::DayStatement> = books
            .day_statements
            .iter()
            .filter(|day| day.book.statements >= from)
            .filter(|day| date.is_none_or(|date| day.date == date))
            .filter(|day| accounts.contains(&day.book.account))
            .collect();
        Ok(self.with_report_context(|context| books::day_camt053(context, &chosen)))
    }

    /// The accounts followed.
    pub fn accounts(&self) -> Vec<u64> {
        self.books
            .lock()
            .expect("books")
            .books
            .keys()
            .copied()
            .collect()
    }

    /// Follows `accounts`' events from `from_height` on, subscribing again after a lost
    /// connection from the block after the last one heard whole.
    fn follow(&self, accounts: Vec<u64>, mut from_height: u64) {
        let subscription = |from_height| Subscription {
            accounts: accounts.clone(),
            from_height,
        };
        while !self.stop.load(Ordering::SeqCst) {
            let connected = match operator::connect_any(
                &self.nodes,
                &self.options,
                Some(&self.genesis_hash),
            ) {
                Ok(connected) => connected,
                Err(error) => {
                    tracing::warn!(%error, "the gateway cannot reach a node to follow its accounts");
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            };
            let batches = match connected.client.subscribe(&subscription(from_height)) {
                Ok((_, batches)) => batches,
                Err(error) => {
                    tracing::warn!(%error, "the node refused the gateway's subscription");
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            };
            let mut pending: Vec<AccountEvent> = Vec::new();
            while !self.stop.load(Ordering::SeqCst) {
                match batches.recv_timeout(Duration::from_millis(200)) {
                    Ok(batch) => {
                        pending.extend(batch.events);
                        if batch.complete {
                            let events = std::mem::take(&mut pending);
                            if let Err(error) = self.book_block(batch.height, batch.stamp, events) {
                                tracing::error!(%error, height = batch.height, "the gateway cannot keep a block's events on disk: it follows again from that block");
                                std::thread::sleep(Duration::from_millis(500));
                                break;
                            }
                            from_height = batch.height + 1;
                        }
                    }
                    Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam::channel::RecvTimeoutError::Disconnected) => break,
                }
            }
        }
    }

    /// Books one whole block, written to disk first.
    fn book_block(
        &self,
        height: u64,
        stamp: BlockStamp,
        events: Vec<AccountEvent>,
    ) -> Result<(), StoreError> {
        let mut books = self.books.lock().expect("books");
        if height <= books.height {
            return Ok(()); // booked already (a subscription resumed inside a block)
        }
        let record = Record::Block {
            height,
            stamp,
            events,
        };
        if let Some(store) = self.store.lock().expect("store").as_mut() {
            store.append(&record)?;
        }
        let Record::Block { events, .. } = record else {
            unreachable!("made above")
        };
        books.book_block(height, stamp, &events);
        Ok(())
    }
}

/// The books and the sent payments' ids made again from the records on disk, which must
/// follow the accounts `follow` names.
fn reload(
    records: &[Record],
    follow: &[u64],
    calendar: Option<tally_protocol::calendar::Calendar>,
) -> Result<(Books, SentIds), String> {
    let Some(Record::Open {
        height,
        balances,
        opened,
    }) = records.first()
    else {
        return Err("they do not begin with the books' opening".into());
    };
    let mut followed: Vec<u64> = balances.iter().map(|(account, _)| *account).collect();
    let mut asked = follow.to_vec();
    followed.sort_unstable();
    asked.sort_unstable();
    if followed != asked {
        return Err(format!(
            "they follow accounts {followed:?}, the gateway was started to follow {asked:?}: follow the same accounts, or give another --data-dir"
        ));
    }
    let mut books = Books::open(balances, opened);
    books.height = *height;
    books.calendar = calendar;
    let mut sent = HashMap::new();
    for record in &records[1..] {
        match record {
            Record::Open { .. } => return Err("they hold a second opening".into()),
            Record::Block {
                height,
                stamp,
                events,
            } => {
                if *height <= books.height {
                    return Err(format!(
                        "block {height} follows block {}: blocks are booked in height order",
                        books.height
                    ));
                }
                books.book_block(*height, *stamp, events);
            }
            Record::Closed { accounts, now } => books.close_periods(accounts, now),
            Record::Sent {
                id,
                msg_id,
                end_to_end_id,
            } => {
                sent.insert(*id, (msg_id.clone(), end_to_end_id.clone()));
            }
        }
    }
    Ok((books, sent))
}

/// The followed accounts' balances at one height (read again while a block lands between).
fn balances_at_one_height(
    client: &Client,
    accounts: &[u64],
) -> Result<(u64, Vec<(u64, i64)>), GatewayError> {
    loop {
        let before = client.status()?.height;
        let mut balances = Vec::with_capacity(accounts.len());
        for account in accounts {
            balances.push((*account, client.balance(*account)?.unwrap_or(0)));
        }
        if client.status()?.height == before {
            return Ok((before, balances));
        }
    }
}

/// A pacs.002 refusing a whole message.
pub fn group_refusal(refusal: &MessageRefusal) -> OutDocument {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut document = OutDocument::new(iso::PACS_002);
    document.pacs002 = Some(StatusReport {
        header: GroupHeader {
            msg_id: format!("TALLY-{since}-RJCT"),
            created: Some(iso_now()),
        },
        original_group: OriginalGroupStatus {
            msg_id: refusal
                .msg_id
                .clone()
                .unwrap_or_else(|| "NOTPROVIDED".into()),
            msg_name: refusal
                .schema
                .clone()
                .unwrap_or_else(|| "NOTPROVIDED".into()),
            status: Some("RJCT".into()),
            reason: Some(status_reason(
                refusal.refusal.code,
                refusal.refusal.info.clone(),
            )),
        },
        transactions: Vec::new(),
    });
    document
}

/// Most characters of one `AddtlInf` (ISO's Max105Text); longer text goes on in the next.
pub const ADDITIONAL_INFO_CHARS_MAX: usize = 105;

fn status_reason(code: &str, info: String) -> StatusReason {
    let chars: Vec<char> = info.chars().collect();
    StatusReason {
        reason: ReasonCode {
            code: code.to_string(),
        },
        info: chars
            .chunks(ADDITIONAL_INFO_CHARS_MAX)
            .map(|chunk| chunk.iter().collect())
            .collect(),
    }
}

/// A camt.056's transaction status: the queue cancel settled is the payment cancelled
/// (`CANC`: "cancelled after a request for cancellation"), not a payment settled.
fn cancelled(status: TxStatus) -> TxStatus {
    if status.status == "ACSC" {
        TxStatus {
            status: "CANC".into(),
            ..status
        }
    } else {
        status
    }
}

/// The status of one transaction: refused before sending, or the node's result.
fn tx_status(
    item: &Item,
    outcome: Result<(u128, Option<Result<ResultCode, String>>), Refusal>,
) -> TxStatus {
    let (status, reason, id) = match outcome {
        Err(refusal) => (
            "RJCT",
            Some(status_reason(refusal.code, refusal.info)),
            None,
        ),
        Ok((id, None)) => (
            "PDNG",
            Some(status_reason(
                reasons::NOT_SPECIFIED,
                "the node took the payment but gave no result in time; its camt.054 follows".into(),
            )),
            Some(id),
        ),
        Ok((id, Some(Err(why)))) => (
            "RJCT",
            Some(status_reason(reasons::NOT_SPECIFIED, why)),
            Some(id),
        ),
        Ok((id, Some(Ok(code)))) => match code {
            ResultCode::Ok => ("ACSC", None, Some(id)),
            // accepted, settling later: from its queue, or at its value date's opening
            ResultCode::Queued | ResultCode::Warehoused => ("ACSP", None, Some(id)),
            code => (
                "RJCT",
                Some(status_reason(
                    reasons::reason_for(code).unwrap_or(reasons::NOT_SPECIFIED),
                    format!("{}: {}", code.name(), code.meaning()),
                )),
                Some(id),
            ),
        },
    };
    TxStatus {
        end_to_end_id: item.end_to_end_id.clone(),
        tx_id: item.tx_id.clone(),
        status: status.to_string(),
        reason,
        clearing_ref: id.map(|id| format!("{id:032x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additional_information_is_cut_into_iso_sized_pieces() {
        let long = "x".repeat(ADDITIONAL_INFO_CHARS_MAX * 2 + 3);
        let reason = status_reason("AM05", long.clone());
        assert_eq!(reason.info.len(), 3);
        assert!(reason
            .info
            .iter()
            .all(|piece| piece.chars().count() <= ADDITIONAL_INFO_CHARS_MAX));
        assert_eq!(reason.info.concat(), long);
        assert_eq!(
            status_reason("AM05", "short".into()).info,
            vec!["short".to_string()]
        );
    }

    #[test]
    fn each_result_is_its_status() {
        let item = Item {
            end_to_end_id: "E1".into(),
            tx_id: Some("T1".into()),
            plan: Err(Refusal::new("FF01", "unused")),
        };
        let of = |code| tx_status(&item, Ok((5, Some(Ok(code)))));
        assert_eq!(of(ResultCode::Ok).status, "ACSC");
        assert_eq!(
            of(ResultCode::Ok).clearing_ref.as_deref(),
            Some("00000000000000000000000000000005")
        );
        assert_eq!(of(ResultCode::Queued).status, "ACSP");
        assert_eq!(of(ResultCode::Warehoused).status, "ACSP");
        let rejected = of(ResultCode::InsufficientFunds);
        assert_eq!(rejected.status, "RJCT");
        let reason = rejected.reason.unwrap();
        assert_eq!(reason.reason.code, "AM04");
        assert!(reason.info[0].starts_with("insufficient_funds: "));
        // the warehouse at its capacity: refused, with the agent's own reason
        let full = of(ResultCode::WarehouseFull);
        assert_eq!(full.status, "RJCT");
        let reason = full.reason.unwrap();
        assert_eq!(reason.reason.code, "MS03");
        assert!(reason.info[0].starts_with("warehouse_full: the warehouse holds its maximum"));
        // a camt.056's settled cancel reports the payment cancelled; a refused one stays RJCT
        assert_eq!(cancelled(of(ResultCode::Ok)).status, "CANC");
        assert_eq!(
            cancelled(of(ResultCode::QueuedPaymentNotFound)).status,
            "RJCT"
        );
        assert_eq!(tx_status(&item, Ok((5, None))).status, "PDNG");
        let refused = tx_status(
            &item,
            Err(Refusal::new("RC01", "BIC X names no participant")),
        );
        assert_eq!(refused.status, "RJCT");
        assert_eq!(refused.clearing_ref, None);
        assert_eq!(refused.reason.unwrap().reason.code, "RC01");
    }
}
