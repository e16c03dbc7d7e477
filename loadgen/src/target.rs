//! Where load goes: nodes reached over the network through the client library, or (with the
//! `engine` feature) a node or the validators of a cluster in this process.

use crossbeam::channel::{unbounded, Sender};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
#[cfg(feature = "engine")]
use tally_engine::node::NodeHandle;
use tally_protocol::client::{Client, ClientError, ClientOptions};
use tally_protocol::message::Welcome;
use tally_protocol::query::{Answer, Query, TxStatusInfo};
use tally_protocol::result::ResultCode;
use tally_protocol::submit::{Ack, SubmitError};
use tally_protocol::tx::TxRecord;

/// Something that takes signed transactions and answers each with an [`Ack`].
///
/// `submit` behaves as a node's own `submit` (`tally_protocol::submit`): it returns how many records it took (each
/// taken record is answered exactly once through `reply`), `Busy { accepted }` when the
/// node took only the first `accepted`, and `Stopped` when it takes no more.
pub trait Target: Sync {
    fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError>;

    /// Why the target stopped, when it has (checked while waiting for the last acks).
    fn fatal_error(&self) -> Option<String>;

    /// A short description for reports ("in-process node", "node at 127.0.0.1:7400").
    fn describe(&self) -> String;

    /// The nodes the load is spread over, for the per-node figures (one entry when the
    /// target is one node).
    fn nodes(&self) -> Vec<String> {
        vec![self.describe()]
    }

    /// Records sent again to another node after theirs was lost.
    fn failed_over(&self) -> u64 {
        0
    }

    /// Nodes lost so far: "address: why", in order.
    fn lost(&self) -> Vec<String> {
        Vec::new()
    }

    /// [`Target::submit`] to the node the target picks for this batch: that node's index
    /// in [`Target::nodes`] and the outcome.
    fn submit_routed(
        &self,
        records: &[TxRecord],
        reply: &Sender<Ack>,
    ) -> (usize, Result<usize, SubmitError>) {
        (0, self.submit(records, reply))
    }
}

#[cfg(feature = "engine")]
impl Target for NodeHandle {
    fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        NodeHandle::submit(self, records, reply)
    }

    fn fatal_error(&self) -> Option<String> {
        NodeHandle::fatal_error(self)
    }

    fn describe(&self) -> String {
        "in-process node".to_string()
    }
}

/// The validators of a cluster in this process, each batch to the next validator in turn
/// (each validator passes its clients' transactions on to the others).
#[cfg(feature = "engine")]
pub struct ClusterTarget {
    handles: Vec<NodeHandle>,
    next: AtomicUsize,
}

#[cfg(feature = "engine")]
impl ClusterTarget {
    /// Spreads load over `handles` (at least one).
    pub fn new(handles: Vec<NodeHandle>) -> ClusterTarget {
        assert!(!handles.is_empty(), "a cluster has at least one validator");
        ClusterTarget {
            handles,
            next: AtomicUsize::new(0),
        }
    }
}

#[cfg(feature = "engine")]
impl Target for ClusterTarget {
    fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.handles[turn % self.handles.len()].submit(records, reply)
    }

    fn fatal_error(&self) -> Option<String> {
        self.handles.iter().find_map(NodeHandle::fatal_error)
    }

    fn describe(&self) -> String {
        format!("{} in-process validators", self.handles.len())
    }

    fn nodes(&self) -> Vec<String> {
        (0..self.handles.len())
            .map(|i| format!("in-process validator {i}"))
            .collect()
    }

    fn submit_routed(
        &self,
        records: &[TxRecord],
        reply: &Sender<Ack>,
    ) -> (usize, Result<usize, SubmitError>) {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let node = turn % self.handles.len();
        (node, self.handles[node].submit(records, reply))
    }
}

/// How a remote target notices a node that stopped answering.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    /// Silence (no frame while records await results) after which a node is probed.
    pub silence_max: Duration,
    /// How long a probed node (and a submission's receipt) may take to answer.
    pub probe_timeout: Duration,
    /// How often the watchdog looks, and a lost node is dialled again.
    pub check_every: Duration,
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness {
            silence_max: Duration::from_millis(1_500),
            probe_timeout: Duration::from_millis(1_000),
            check_every: Duration::from_millis(200),
        }
    }
}

/// Nodes reached over the network through the client library (one node, or the
/// validators of a cluster), with `connections` connections to each. Batches go to the
/// connections in turn, and consecutive connections are to different nodes, so the load
/// is spread evenly over the nodes.
///
/// A watchdog thread keeps every connection alive ([`Client::keep_alive`]): a node that
/// closes its connections or falls silent is noticed within about
/// `silence_max + probe_timeout`, and every connection to it is given up. With one node
/// that ends the run. With several, the load goes on to the others: what the lost node took and did not answer is sent again to
/// them (ids are idempotent: a record that did settle there is answered `duplicate_id`
/// elsewhere, never settled twice), and the lost node is dialled again every second.
/// Every record is answered once on the caller's channel. A record sent again and answered
/// `duplicate_id` had reached the chain through the lost node: the target asks the ledger
/// about it (a `TxStatus` query; only accepted transactions hold their id) and answers it
/// with what its first copy was answered (`ok`, or `queued`), so a failover does not show up
/// as refusals in the report.
pub struct RemoteTarget {
    inner: Arc<Remote>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// One connection as opened: a connection dialled again is another link.
#[derive(Clone)]
struct Link {
    id: u64,
    client: Arc<Client>,
}

/// A record submitted on a link and not answered yet.
struct Pending {
    link: u64,
    record: TxRecord,
    /// The node's receipt counted it as taken. Until then the submitting thread answers
    /// for it (it sends it elsewhere when the submission fails); afterwards, losing the
    /// link makes it an orphan for the other nodes.
    taken: bool,
}

/// What the target and its threads share.
struct Remote {
    addresses: Vec<String>,
    connections: usize,
    options: ClientOptions,
    liveness: Liveness,
    /// Connection `c` to node `n` is at `c * addresses.len() + n`; `None` while lost.
    clients: Vec<RwLock<Option<Link>>>,
    welcomes: Vec<Welcome>,
    next: AtomicUsize,
    /// Numbers the links (a connection dialled again is a new link).
    next_link: AtomicU64,
    /// With several nodes: records submitted and not yet answered, by id.
    in_flight: Mutex<HashMap<u128, Pending>>,
    /// Records a lost node did not answer, to go to the others.
    orphans: Mutex<Vec<TxRecord>>,
    /// The caller's channel (set by the first submission).
    reply: Mutex<Option<Sender<Ack>>>,
    /// Where the clients answer when failing over (the forwarder passes answers on).
    forward: Sender<Ack>,
    failed_over: AtomicU64,
    /// Ids in flight again after a node that may have taken them was lost (failed over, or
    /// sent elsewhere after a submission whose receipt never came); each leaves when
    /// answered.
    resent: Mutex<HashSet<u128>>,
    /// Records sent again and answered `duplicate_id`, whose first answer is looked up in
    /// the ledger: the answer and when it first came.
    duplicates: Mutex<Vec<(Ack, Instant)>>,
    /// Nodes lost during the run (address and reason), in order.
    lost: Mutex<Vec<(String, String)>>,
    stop: AtomicBool,
}

impl RemoteTarget {
    /// Opens `connections` connections to each node of `addresses` (at least one), with the
    /// client options `client` (TLS identity, network) and the default liveness bounds.
    pub fn connect(
        addresses: &[String],
        connections: usize,
        client: &ClientOptions,
    ) -> Result<RemoteTarget, ClientError> {
        RemoteTarget::connect_with(addresses, connections, Liveness::default(), client)
    }

    /// [`RemoteTarget::connect`] with the given liveness bounds.
    pub fn connect_with(
        addresses: &[String],
        connections: usize,
        liveness: Liveness,
        client: &ClientOptions,
    ) -> Result<RemoteTarget, ClientError> {
        assert!(
            !addresses.is_empty(),
            "a remote target has at least one node"
        );
        let connections = connections.max(1);
        let options = ClientOptions {
            request_timeout: liveness.silence_max + liveness.probe_timeout,
            ..client.clone()
        };
        let mut clients = Vec::with_capacity(connections * addresses.len());
        let mut welcomes = Vec::with_capacity(addresses.len());
        for c in 0..connections {
            for address in addresses {
                let client = Client::connect_with(address.as_str(), &options)?;
                if c == 0 {
                    welcomes.push(*client.welcome());
                }
                clients.push(RwLock::new(Some(Link {
                    id: clients.len() as u64,
                    client: Arc::new(client),
                })));
            }
        }
        let (forward, answers) = unbounded::<Ack>();
        let inner = Arc::new(Remote {
            addresses: addresses.to_vec(),
            connections,
            options,
            liveness,
            clients,
            welcomes,
            next: AtomicUsize::new(0),
            next_link: AtomicU64::new(connections as u64 * addresses.len() as u64),
            in_flight: Mutex::new(HashMap::new()),
            orphans: Mutex::new(Vec::new()),
            reply: Mutex::new(None),
            forward,
            failed_over: AtomicU64::new(0),
            resent: Mutex::new(HashSet::new()),
            duplicates: Mutex::new(Vec::new()),
            lost: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let watchdog = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("loadgen-watchdog".into())
                .spawn(move || {
                    let mut last_dial = Instant::now();
                    while !inner.stop.load(Ordering::Acquire) {
                        inner.watch(&mut last_dial);
                        if inner.failover() {
                            inner.send_orphans();
                            inner.resolve_duplicates();
                        }
                        std::thread::sleep(inner.liveness.check_every);
                    }
                })
                .expect("start the watchdog thread")
        };
        let forwarder = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("loadgen-forward".into())
                .spawn(move || loop {
                    match answers.recv_timeout(Duration::from_millis(50)) {
                        Ok(ack) => inner.answer(ack),
                        Err(_) if inner.stop.load(Ordering::Acquire) => break,
                        Err(_) => {}
                    }
                })
                .expect("start the forwarding thread")
        };
        Ok(RemoteTarget {
            inner,
            threads: vec![watchdog, forwarder],
        })
    }

    /// What the first node said about itself when the first connection opened.
    pub fn welcome(&self) -> &Welcome {
        &self.inner.welcomes[0]
    }

    /// Each node's address and what it said when its first connection opened.
    pub fn welcomes(&self) -> impl Iterator<Item = (&str, &Welcome)> {
        self.inner
            .addresses
            .iter()
            .zip(&self.inner.welcomes)
            .map(|(address, welcome)| (address.as_str(), welcome))
    }
}

impl Drop for RemoteTarget {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// How long a record sent again and answered `duplicate_id` may wait for its first copy to
/// show up in a node's ledger.
const DUPLICATE_LOOKUP_MAX: Duration = Duration::from_secs(10);

/// What the first copy of a transaction was answered, from what the ledger knows of it now
/// (a `TxStatus` answer): `ok`, or `queued` for a payment that entered an RTGS queue, with
/// the height of the block that carried it where the ledger still names it (a queued
/// payment's, a reservation's). `None` while the ledger does not know the id: only accepted
/// transactions hold their id, so one answered `duplicate_id` is known once its first copy's
/// block has executed.
fn first_answer(status: &TxStatusInfo) -> Option<(ResultCode, Option<u64>)> {
    match status.status.as_str() {
        "queued" | "settled_from_queue" | "cancelled" | "expired" => Some((
            ResultCode::Queued,
            status.queued.as_ref().map(|queued| queued.queued_height),
        )),
        "settled" | "pending" | "posted" | "voided" | "pending_expired" => Some((
            ResultCode::Ok,
            status
                .pending
                .as_ref()
                .map(|pending| pending.created_height),
        )),
        _ => None,
    }
}

impl Remote {
    fn failover(&self) -> bool {
        self.addresses.len() > 1
    }

    fn client(&self, connection: usize) -> Option<Link> {
        self.clients[connection]
            .read()
            .expect("client lock")
            .clone()
    }

    /// An answer from a client when failing over: passed on for a record still in flight
    /// (a `duplicate_id` for a record sent again is first looked up in the ledger).
    fn answer(&self, ack: Ack) {
        if self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .remove(&ack.id)
            .is_none()
        {
            return;
        }
        // Its one answer has come: the id leaves `resent` (which holds only records in
        // flight again, however many failovers a run has).
        let resent = self.resent.lock().expect("resent lock").remove(&ack.id);
        if ack.code == ResultCode::DuplicateId && resent {
            self.duplicates
                .lock()
                .expect("duplicates lock")
                .push((ack, Instant::now()));
            return;
        }
        self.reply_with(ack);
    }

    fn reply_with(&self, ack: Ack) {
        if let Some(reply) = self.reply.lock().expect("reply lock").as_ref() {
            let _ = reply.send(ack);
        }
    }

    /// Answers records sent again and refused as `duplicate_id` with what their first copy
    /// was answered, once a connected node's ledger shows it ([`first_answer`]). One that
    /// does not show up within `DUPLICATE_LOOKUP_MAX` (its id already released, or the
    /// duplicate was a copy still in a node's pool that never reached a block) keeps its
    /// `duplicate_id`.
    fn resolve_duplicates(&self) {
        let waiting = std::mem::take(&mut *self.duplicates.lock().expect("duplicates lock"));
        if waiting.is_empty() {
            return;
        }
        let client = (0..self.clients.len()).find_map(|c| self.client(c));
        let mut still = Vec::new();
        for (ack, since) in waiting {
            let found = client.as_ref().and_then(|link| {
                match link.client.query(&Query::TxStatus { id: ack.id }) {
                    Ok(Answer::TxStatus(status)) => first_answer(&status),
                    _ => None,
                }
            });
            match found {
                Some((code, height)) => self.reply_with(Ack {
                    id: ack.id,
                    code,
                    height,
                }),
                None if since.elapsed() >= DUPLICATE_LOOKUP_MAX => self.reply_with(ack),
                None => still.push((ack, since)),
            }
        }
        self.duplicates
            .lock()
            .expect("duplicates lock")
            .extend(still);
    }

    /// Gives up the node of `connection`, every connection to it (a node that fails one
    /// connection is lost for all): what it took and did not answer becomes orphans for the
    /// other nodes. Once per loss.
    fn lose(&self, connection: usize, reason: String) {
        let nodes = self.addresses.len();
        let node = connection % nodes;
        // Held while the node's links are taken, so that two connections failing at once
        // (the watchdog's keepalive and a sender's timeout) count one loss, not two.
        let mut lost = self.lost.lock().expect("lost lock");
        let links: Vec<Link> = (node..self.clients.len())
            .step_by(nodes)
            .filter_map(|c| self.clients[c].write().expect("client lock").take())
            .collect();
        if links.is_empty() {
            return;
        }
        let address = &self.addresses[node];
        tracing::warn!(%address, %reason, "node lost");
        lost.push((address.clone(), reason));
        drop(lost);
        if self.failover() {
            for link in links {
                self.orphan(link.id);
            }
        }
    }

    /// Moves what link `link` took and did not answer to the orphans.
    fn orphan(&self, link: u64) {
        let mut orphans: Vec<TxRecord> = {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            let ids: Vec<u128> = in_flight
                .iter()
                .filter(|(_, pending)| pending.link == link && pending.taken)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| in_flight.remove(id).map(|pending| pending.record))
                .collect()
        };
        if orphans.is_empty() {
            return;
        }
        orphans.sort_by_key(TxRecord::id);
        self.orphans.lock().expect("orphans lock").extend(orphans);
    }

    /// One look of the watchdog: keepalive on every connection; lost ones dialled again.
    fn watch(&self, last_dial: &mut Instant) {
        for connection in 0..self.clients.len() {
            if let Some(link) = self.client(connection) {
                if let Some(reason) = link
                    .client
                    .keep_alive(self.liveness.silence_max, self.liveness.probe_timeout)
                {
                    self.lose(connection, reason);
                }
            }
        }
        if self.failover() && last_dial.elapsed() >= Duration::from_secs(1) {
            *last_dial = Instant::now();
            let options = ClientOptions {
                connect_timeout: self.liveness.probe_timeout,
                ..self.options.clone()
            };
            for connection in 0..self.clients.len() {
                if self.stop.load(Ordering::Acquire) || self.client(connection).is_some() {
                    continue;
                }
                let address = &self.addresses[connection % self.addresses.len()];
                if let Ok(client) = Client::connect_with(address.as_str(), &options) {
                    tracing::info!(%address, "node answers again");
                    *self.clients[connection].write().expect("client lock") = Some(Link {
                        id: self.next_link.fetch_add(1, Ordering::Relaxed),
                        client: Arc::new(client),
                    });
                }
            }
        }
    }

    /// Submits on `connection`, keeping track of what it takes when failing over.
    fn submit_on(
        &self,
        connection: usize,
        link: &Link,
        records: &[TxRecord],
        reply: &Sender<Ack>,
    ) -> Result<usize, SubmitError> {
        if !self.failover() {
            return link.client.submit(records, reply);
        }
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            for record in records {
                in_flight.insert(
                    record.id(),
                    Pending {
                        link: link.id,
                        record: *record,
                        taken: false,
                    },
                );
            }
        }
        let outcome = link.client.submit(records, &self.forward);
        let taken = match &outcome {
            Ok(taken)
            | Err(SubmitError::Busy { accepted: taken })
            | Err(SubmitError::OverQuota {
                accepted: taken, ..
            }) => *taken,
            Err(SubmitError::Stopped { .. }) => 0,
        };
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            for (index, record) in records.iter().enumerate() {
                let Some(pending) = in_flight.get_mut(&record.id()) else {
                    continue;
                };
                if pending.link != link.id {
                    continue;
                }
                if index < taken {
                    pending.taken = true;
                } else {
                    // Not taken: the caller sends it again, here or elsewhere.
                    in_flight.remove(&record.id());
                }
            }
        }
        // Lost while the receipt was on its way: what it took goes to the others.
        if self.client(connection).is_none_or(|now| now.id != link.id) {
            self.orphan(link.id);
        }
        outcome
    }

    /// Submits `records` to the next connection that is up, giving up connections that
    /// stop on the way: (node, outcome).
    fn submit_somewhere(
        &self,
        records: &[TxRecord],
        reply: &Sender<Ack>,
    ) -> (usize, Result<usize, SubmitError>) {
        let count = self.clients.len();
        let mut last_reason = None;
        for _ in 0..count {
            let connection = self.next.fetch_add(1, Ordering::Relaxed) % count;
            let Some(link) = self.client(connection) else {
                continue;
            };
            let node = connection % self.addresses.len();
            if last_reason.is_some() {
                // The node given up on the way may have taken them before its receipt was
                // lost: a `duplicate_id` now means they reached the chain through it.
                self.resent
                    .lock()
                    .expect("resent lock")
                    .extend(records.iter().map(TxRecord::id));
            }
            match self.submit_on(connection, &link, records, reply) {
                Err(SubmitError::Stopped { reason }) => {
                    self.lose(connection, reason.clone());
                    if !self.failover() {
                        return (node, Err(SubmitError::Stopped { reason }));
                    }
                    last_reason = Some(reason);
                }
                outcome => return (node, outcome),
            }
        }
        let reason = last_reason
            .or_else(|| {
                self.lost
                    .lock()
                    .expect("lost lock")
                    .last()
                    .map(|l| l.1.clone())
            })
            .unwrap_or_else(|| "every node is lost".to_string());
        (0, Err(SubmitError::Stopped { reason }))
    }

    /// Sends what lost nodes left unanswered to the others (the watchdog does, between its
    /// looks).
    fn send_orphans(&self) {
        if self.orphans.lock().expect("orphans lock").is_empty() {
            return;
        }
        let orphans = std::mem::take(&mut *self.orphans.lock().expect("orphans lock"));
        let mut rest = &orphans[..];
        let reply = self.forward.clone();
        while !rest.is_empty() {
            let batch = &rest[..rest.len().min(1024)];
            // Marked before they go: an answer can come before the receipt is read.
            self.resent
                .lock()
                .expect("resent lock")
                .extend(batch.iter().map(TxRecord::id));
            match self.submit_somewhere(batch, &reply).1 {
                Ok(taken) | Err(SubmitError::Busy { accepted: taken }) if taken > 0 => {
                    self.failed_over.fetch_add(taken as u64, Ordering::Relaxed);
                    rest = &rest[taken..];
                }
                _ => break,
            }
        }
        if !rest.is_empty() {
            let mut orphans = self.orphans.lock().expect("orphans lock");
            let newer = std::mem::take(&mut *orphans);
            orphans.extend_from_slice(rest);
            orphans.extend(newer);
        }
    }
}

impl Target for RemoteTarget {
    fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        self.submit_routed(records, reply).1
    }

    fn submit_routed(
        &self,
        records: &[TxRecord],
        reply: &Sender<Ack>,
    ) -> (usize, Result<usize, SubmitError>) {
        let inner = &*self.inner;
        if inner.failover() {
            inner
                .reply
                .lock()
                .expect("reply lock")
                .get_or_insert_with(|| reply.clone());
        }
        inner.submit_somewhere(records, reply)
    }

    fn fatal_error(&self) -> Option<String> {
        let inner = &*self.inner;
        let lost = inner.lost.lock().expect("lost lock");
        if !inner.failover() {
            return lost.first().map(|(_, reason)| reason.clone());
        }
        let up = (0..inner.clients.len()).any(|c| inner.client(c).is_some());
        if up {
            return None;
        }
        Some(format!(
            "every node is lost: {}",
            lost.iter()
                .map(|(address, reason)| format!("{address}: {reason}"))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    }

    fn describe(&self) -> String {
        let inner = &*self.inner;
        match inner.addresses.as_slice() {
            [address] => format!("node at {address} ({} connections)", inner.connections),
            addresses => format!(
                "{} nodes at {} ({} connections each)",
                addresses.len(),
                addresses.join(", "),
                inner.connections
            ),
        }
    }

    fn nodes(&self) -> Vec<String> {
        self.inner.addresses.clone()
    }

    fn failed_over(&self) -> u64 {
        self.inner.failed_over.load(Ordering::Relaxed)
    }

    fn lost(&self) -> Vec<String> {
        self.inner
            .lost
            .lock()
            .expect("lost lock")
            .iter()
            .map(|(address, reason)| format!("{address}: {reason}"))
            .collect()
    }
}
