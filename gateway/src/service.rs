//! The gateway of one participant: it signs the records of the messages its bank sends with
//! the bank's key, sends them to the nodes over the client library with the bank's identity,
//! answers each message with a pacs.002, and follows the bank's accounts' events for its
//! camt.054, camt.052 and camt.053.

use crate::books::{self, BookEntry, Books, ReportContext};
use crate::iso::{
    self, GroupHeader, OriginalGroupStatus, OutDocument, ReasonCode, StatusReason, StatusReport,
    TxStatus,
};
use crate::reasons;
use crate::translate::{self, Directory, Item, Message, MessageRefusal, Plan, Refusal};
use ed25519_zebra::SigningKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tally_protocol::client::{submit_and_wait, Client, ClientError, ClientOptions};
use tally_protocol::events::{AccountEvent, EventKind, Subscription};
use tally_protocol::genesis::Genesis;
use tally_protocol::operator;
use tally_protocol::result::ResultCode;
use tally_protocol::tx::{TxFields, TxRecord};

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
    /// Record id -> (message id, end-to-end id) of what this gateway sent.
    sent: Mutex<HashMap<u128, (String, String)>>,
    reports: AtomicU64,
    stop: Arc<AtomicBool>,
    follower: Mutex<Option<JoinHandle<()>>>,
}

/// Now as an ISO date-time (UTC, seconds).
pub fn iso_now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let (year, month, day) = translate::civil_from_days(since.div_euclid(86_400));
    let seconds = since.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
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
        let (height, balances) = balances_at_one_height(&client, &config.follow)?;
        let books = Arc::new(Mutex::new(Books::open(&balances, &iso_now())));
        books.lock().expect("books").height = height;
        let gateway = Arc::new(Gateway {
            directory,
            genesis_hash,
            key: config.key,
            nodes: config.nodes,
            options: config.options,
            result_timeout: config.result_timeout,
            client: Mutex::new(Some(client)),
            books,
            sent: Mutex::new(HashMap::new()),
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
            for (item, outcome) in message.items.iter().zip(&outcomes) {
                if let Ok(id) = outcome {
                    sent.insert(*id, (message.msg_id.clone(), item.end_to_end_id.clone()));
                }
            }
        }
        let results = self.submit(&records);
        let transactions = message
            .items
            .iter()
            .zip(outcomes)
            .map(|(item, outcome)| {
                tx_status(item, outcome.map(|id| (id, results.get(&id).cloned())))
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

    fn end_to_end(&self) -> impl Fn(u128) -> Option<(String, String)> + '_ {
        move |id| self.sent.lock().expect("sent").get(&id).cloned()
    }

    /// The camt.054 of notifications from sequence number `from` on.
    pub fn notifications(&self, from: u64) -> OutDocument {
        let lookup = self.end_to_end();
        let now = iso_now();
        let context = ReportContext {
            directory: &self.directory,
            end_to_end: &lookup,
            now: &now,
            message_id: self.header().msg_id,
        };
        books::camt054(&self.books.lock().expect("books"), &context, from)
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
        self.caught_up(accounts)?;
        let lookup = self.end_to_end();
        let now = iso_now();
        let context = ReportContext {
            directory: &self.directory,
            end_to_end: &lookup,
            now: &now,
            message_id: self.header().msg_id,
        };
        let mut books = self.books.lock().expect("books");
        Ok(if statement {
            books::camt053(&mut books, &context, accounts)
        } else {
            books::camt052(&books, &context, accounts)
        })
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
                            self.book_block(batch.height, &events);
                            from_height = batch.height + 1;
                        }
                    }
                    Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam::channel::RecvTimeoutError::Disconnected) => break,
                }
            }
        }
    }

    /// The movements of one event on each account it names: (account, signed minor units,
    /// status).
    fn movements(&self, event: &AccountEvent) -> Vec<(u64, i64, &'static str)> {
        let amount = event.amount as i64;
        let tax = event.tax.unwrap_or(0) as i64;
        match event.kind {
            EventKind::Settled | EventKind::Released => match event.tax_account {
                Some(tax_account) => {
                    // exclusive: the payer pays the tax on top; else it comes out of the gross
                    let exclusive = self.basis_is_exclusive(event.id);
                    let (debited, net) = if exclusive {
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
                let exclusive = event
                    .related_id
                    .is_some_and(|original| self.basis_is_exclusive(original));
                let (payee_pays, payer_gets) = if exclusive {
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
            // nothing moved: expired or rejected at the end of day, refused at its opening
            EventKind::Expired | EventKind::Rejected => vec![
                (event.payer, -amount, "INFO"),
                (event.payee, amount, "INFO"),
            ],
            // reservations are not mapped from ISO messages: no entry
            EventKind::Reserved | EventKind::ReservationExpired => Vec::new(),
        }
    }

    /// Whether taxed payment `id` was taxed on an exclusive basis (the payer paid the tax on
    /// top), as the node's record of it says.
    fn basis_is_exclusive(&self, id: u128) -> bool {
        match self.client().map(|client| client.tx_status(id)) {
            Ok(Ok(status)) => status.taxed.is_some_and(|taxed| taxed.basis == "exclusive"),
            Ok(Err(error)) => {
                tracing::warn!(%error, id = %format!("{id:032x}"), "the node did not say a taxed payment's basis: inclusive assumed");
                false
            }
            Err(error) => {
                tracing::warn!(%error, "no node to ask a taxed payment's basis: inclusive assumed");
                false
            }
        }
    }

    fn book_block(&self, height: u64, events: &[AccountEvent]) {
        let heard = iso_now();
        let moves: Vec<(u64, BookEntry)> = events
            .iter()
            .flat_map(|event| {
                self.movements(event)
                    .into_iter()
                    .map(|(account, amount, status)| {
                        (
                            account,
                            BookEntry {
                                height,
                                id: event.id,
                                amount,
                                status,
                                event: event.kind,
                                payer: event.payer,
                                payee: event.payee,
                                heard: heard.clone(),
                            },
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut books = self.books.lock().expect("books");
        for (account, entry) in moves {
            books.book(account, entry);
        }
        books.height = height;
    }
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
