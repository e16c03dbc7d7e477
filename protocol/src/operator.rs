//! What an operator's or a participant's command does with a network: connect to the first
//! of several nodes that answers (failover), check that it runs the expected genesis, send
//! one signed record and wait for its final result, or ask one query. `tally tx`,
//! `tally query --node`, `tally pki revoke` and `tally validator vote` are built on it.

use crate::client::{submit_and_wait, Client, ClientError, ClientOptions};
use crate::query::{Answer, Query};
use crate::result::ResultCode;
use crate::tx::TxRecord;
use std::time::Duration;

/// Why an operation did not reach a result.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no node given: name at least one with --node HOST:PORT")]
    NoNodeGiven,
    #[error("no node could be reached: {}", tried.iter().map(|(node, why)| format!("{node}: {why}")).collect::<Vec<_>>().join("; "))]
    NoNodeReached { tried: Vec<(String, String)> },
    #[error("node {node} runs genesis {theirs}, not {ours} (the genesis file given): wrong network or wrong file")]
    WrongGenesis {
        node: String,
        theirs: String,
        ours: String,
    },
    #[error("node {node} did not take the transaction: {reason}")]
    NotTaken { node: String, reason: String },
    #[error("node {node} took the transaction but gave no result within {timeout:?}: ask its status with `tally query status ID`")]
    NoResult { node: String, timeout: Duration },
    #[error("node {node} refused the query: {reason}")]
    QueryRefused { node: String, reason: String },
}

/// A connection to one of the nodes named, checked against the genesis.
pub struct Connected {
    pub client: Client,
    /// The address it was given as.
    pub node: String,
}

/// Connects to the first node of `nodes` that answers, in order, and checks that it runs
/// the genesis whose hash is `genesis_hash` (none: any). A node that runs another genesis
/// is an error, not a reason to try the next: the operator named the wrong file or network.
pub fn connect_any(
    nodes: &[String],
    options: &ClientOptions,
    genesis_hash: Option<&[u8; 32]>,
) -> Result<Connected, OperatorError> {
    connect_from(nodes, 0, options, genesis_hash).map(|(connected, _)| connected)
}

/// As [`connect_any`], from `nodes[start]` on; returns the index of the node connected.
fn connect_from(
    nodes: &[String],
    start: usize,
    options: &ClientOptions,
    genesis_hash: Option<&[u8; 32]>,
) -> Result<(Connected, usize), OperatorError> {
    if nodes.is_empty() {
        return Err(OperatorError::NoNodeGiven);
    }
    let mut tried = Vec::new();
    for (index, node) in nodes.iter().enumerate().skip(start) {
        let client = match Client::connect_with(node.as_str(), options) {
            Ok(client) => client,
            Err(error) => {
                tried.push((node.clone(), error.to_string()));
                continue;
            }
        };
        if let Some(ours) = genesis_hash {
            let status = match client.status() {
                Ok(status) => status,
                Err(error) => {
                    tried.push((node.clone(), error.to_string()));
                    continue;
                }
            };
            let ours = hex::encode(ours);
            if status.genesis_hash != ours {
                return Err(OperatorError::WrongGenesis {
                    node: node.clone(),
                    theirs: status.genesis_hash,
                    ours,
                });
            }
        }
        return Ok((
            Connected {
                client,
                node: node.clone(),
            },
            index,
        ));
    }
    Err(OperatorError::NoNodeReached { tried })
}

/// What became of a record sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub id: u128,
    /// The node that took it.
    pub node: String,
    /// Its final result and block height; `None` when the caller did not wait.
    pub result: Option<(ResultCode, Option<u64>)>,
}

/// Sends one signed record to the first node of `nodes` that answers and, when `wait`,
/// waits up to `timeout` for its final result (the result of its block, or of the ingress
/// checks). A node whose connection fails before the record's result is left for the next
/// one, which is sent the same record: its id makes that safe (a record that reached the
/// chain through the lost node is answered `duplicate_id`, never applied twice).
pub fn send(
    nodes: &[String],
    options: &ClientOptions,
    genesis_hash: &[u8; 32],
    record: &TxRecord,
    wait: bool,
    timeout: Duration,
) -> Result<Sent, OperatorError> {
    let mut start = 0;
    let mut lost = Vec::new();
    loop {
        let (connected, index) = match connect_from(nodes, start, options, Some(genesis_hash)) {
            Ok(found) => found,
            Err(OperatorError::NoNodeReached { tried }) if !lost.is_empty() => {
                lost.extend(tried);
                return Err(OperatorError::NoNodeReached { tried: lost });
            }
            Err(error) => return Err(error),
        };
        let Connected { client, node } = connected;
        let outcome = if wait {
            submit_and_wait(&client, std::slice::from_ref(record), timeout).map(
                |(acks, refusal)| match acks.first() {
                    Some(ack) => Ok(Some((ack.code, ack.height))),
                    None => Err(refusal),
                },
            )
        } else {
            let (reply, _acks) = crossbeam::channel::unbounded();
            Ok(match client.submit(std::slice::from_ref(record), &reply) {
                Ok(1) => Ok(None),
                Ok(_) => Err(None),
                Err(refusal) => Err(Some(refusal)),
            })
        };
        match outcome {
            Ok(Ok(result)) => {
                return Ok(Sent {
                    id: record.id(),
                    node,
                    result,
                })
            }
            Ok(Err(refusal)) => {
                let reason = refusal.map_or_else(|| "no answer".to_string(), |r| r.to_string());
                // a refusal on a live connection is the node's answer; a dead connection
                // is a node lost
                if client.connection_error().is_none() {
                    return Err(OperatorError::NotTaken { node, reason });
                }
                lost.push((node, reason));
            }
            Err(ClientError::Timeout { .. }) => {
                return Err(OperatorError::NoResult { node, timeout });
            }
            Err(error) => lost.push((node, error.to_string())),
        }
        start = index + 1;
        if start >= nodes.len() {
            return Err(OperatorError::NoNodeReached { tried: lost });
        }
    }
}

/// Asks `query` of the first node of `nodes` that answers (checked against `genesis_hash`
/// when given); a node that refuses the query (privacy, a missing account) is not asked
/// again elsewhere.
pub fn ask(
    nodes: &[String],
    options: &ClientOptions,
    genesis_hash: Option<&[u8; 32]>,
    query: &Query,
) -> Result<(Answer, String), OperatorError> {
    let mut start = 0;
    let mut lost = Vec::new();
    loop {
        let (Connected { client, node }, index) =
            match connect_from(nodes, start, options, genesis_hash) {
                Ok(found) => found,
                Err(OperatorError::NoNodeReached { tried }) if !lost.is_empty() => {
                    lost.extend(tried);
                    return Err(OperatorError::NoNodeReached { tried: lost });
                }
                Err(error) => return Err(error),
            };
        match client.query(query) {
            Ok(answer) => return Ok((answer, node)),
            Err(ClientError::QueryFailed(reason)) => {
                return Err(OperatorError::QueryRefused { node, reason })
            }
            Err(ClientError::RequestRefused { code, text }) => {
                return Err(OperatorError::QueryRefused {
                    node,
                    reason: format!("{}: {text}", code.name()),
                })
            }
            Err(error) => lost.push((node, error.to_string())),
        }
        start = index + 1;
        if start >= nodes.len() {
            return Err(OperatorError::NoNodeReached { tried: lost });
        }
    }
}
