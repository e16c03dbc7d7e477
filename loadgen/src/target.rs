//! Where load goes: nodes reached over the network through the client library, or (with the
//! `engine` feature) a node or the validators of a cluster in this process.

use crossbeam::channel::Sender;
#[cfg(feature = "engine")]
use tally_engine::node::NodeHandle;
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
    next: std::sync::atomic::AtomicUsize,
}

#[cfg(feature = "engine")]
impl ClusterTarget {
    /// Spreads load over `handles` (at least one).
    pub fn new(handles: Vec<NodeHandle>) -> ClusterTarget {
        assert!(!handles.is_empty(), "a cluster has at least one validator");
        ClusterTarget {
            handles,
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

#[cfg(feature = "engine")]
impl Target for ClusterTarget {
    fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.handles[turn % self.handles.len()].submit(records, reply)
    }

    fn fatal_error(&self) -> Option<String> {
        self.handles.iter().find_map(NodeHandle::fatal_error)
    }

    fn describe(&self) -> String {
        format!("{} in-process validators", self.handles.len())
    }
}

/// Nodes reached over the network through the client library (one node, or the
/// validators of a cluster), with `connections` connections to each. Batches go to the
/// connections in turn, and consecutive connections are to different nodes, so the load
/// is spread evenly over the nodes.
pub struct RemoteTarget {
    addresses: Vec<String>,
    connections: usize,
    /// Connection `c` to node `n` is at `c * addresses.len() + n`.
    clients: Vec<tally_protocol::client::Client>,
    next: std::sync::atomic::AtomicUsize,
}

impl RemoteTarget {
    /// Opens `connections` connections to each node of `addresses` (at least one).
    pub fn connect(
        addresses: &[String],
        connections: usize,
        options: &tally_protocol::client::ClientOptions,
    ) -> Result<RemoteTarget, tally_protocol::client::ClientError> {
        assert!(
            !addresses.is_empty(),
            "a remote target has at least one node"
        );
        let connections = connections.max(1);
        let mut clients = Vec::with_capacity(connections * addresses.len());
        for _ in 0..connections {
            for address in addresses {
                clients.push(tally_protocol::client::Client::connect_with(
                    address.as_str(),
                    options,
                )?);
            }
        }
        Ok(RemoteTarget {
            addresses: addresses.to_vec(),
            connections,
            clients,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// What the first node said about itself when the first connection opened.
    pub fn welcome(&self) -> &tally_protocol::message::Welcome {
        self.clients[0].welcome()
    }

    /// Each node's address and what it said when its first connection opened.
    pub fn welcomes(&self) -> impl Iterator<Item = (&str, &tally_protocol::message::Welcome)> {
        self.addresses
            .iter()
            .zip(&self.clients)
            .map(|(address, client)| (address.as_str(), client.welcome()))
    }
}

impl Target for RemoteTarget {
    fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.clients[turn % self.clients.len()].submit(records, reply)
    }

    fn fatal_error(&self) -> Option<String> {
        self.clients
            .iter()
            .find_map(|client| client.connection_error())
    }

    fn describe(&self) -> String {
        match self.addresses.as_slice() {
            [address] => format!("node at {address} ({} connections)", self.connections),
            addresses => format!(
                "{} nodes at {} ({} connections each)",
                addresses.len(),
                addresses.join(", "),
                self.connections
            ),
        }
    }
}
