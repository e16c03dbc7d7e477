//! A node with its network front: the pipeline, the client server and the `/metrics`
//! endpoint, started and stopped in the right order. `tally node` runs one of these.

use super::http::MetricsServer;
use super::server::{Server, ServerConfig, ServerError};
use crate::genesis::Genesis;
use crate::node::{Node, NodeConfig, NodeError, NodeHandle, NodeOutcome};
use std::net::SocketAddr;
use std::sync::Arc;

/// Addresses and limits of the network front.
#[derive(Clone, Debug, Default)]
pub struct ServiceConfig {
    pub server: ServerConfig,
    /// Where to serve `/metrics`; `None` serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve `/metrics` over TLS (the client port's `server.tls`) to monitoring, central bank
    /// and auditor certificates, instead of plain HTTP.
    pub metrics_tls: bool,
}

/// Why a service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running node with its network front.
pub struct NodeService {
    node: Node,
    server: Server,
    metrics: Option<MetricsServer>,
}

impl NodeService {
    /// Starts the node (recovering its data directory), then the client server and the
    /// metrics endpoint. If the network front cannot start, the node is shut down again.
    pub fn start(
        genesis: &Genesis,
        node_config: NodeConfig,
        config: ServiceConfig,
    ) -> Result<NodeService, ServiceError> {
        let mut config = config;
        if config.server.audit_log.is_none() {
            config.server.audit_log = Some(node_config.data_dir.join("audit.log"));
        }
        if config.server.directory.is_none() {
            config.server.directory = Some(Arc::new(crate::net::access::Directory::from_genesis(
                genesis,
            )));
        }
        let mut node_config = node_config;
        node_config.directory = config.server.directory.clone();
        if let Some(tls) = &config.server.tls {
            // One list: what the node's blocks revoke, its ports refuse.
            node_config.revocations = Arc::clone(tls.revocations());
        }
        let node = Node::start(genesis, node_config)?;
        let handle = node.handle();
        let metrics = match config.metrics_listen {
            Some(addr) => {
                let render_handle = handle.clone();
                let tls = match (config.metrics_tls, &config.server.tls) {
                    (false, _) => None,
                    (true, Some(tls)) => {
                        let counting = handle.clone();
                        Some(super::http::MetricsTls {
                            tls: Arc::clone(tls),
                            on_refusal: Box::new(move |refusal| {
                                let metrics = counting.metrics();
                                match refusal {
                                    Some(reason) => {
                                        metrics.metrics_tls_refused[reason.index()].inc()
                                    }
                                    None => metrics.metrics_forbidden.inc(),
                                }
                            }),
                        })
                    }
                    (true, None) => {
                        node.shutdown();
                        return Err(ServiceError::Metrics {
                            addr,
                            source: std::io::Error::other(
                                "metrics over TLS need the node's identity (TLS on the client port)",
                            ),
                        });
                    }
                };
                match MetricsServer::start(addr, tls, move || {
                    crate::node::render_metrics(&render_handle)
                }) {
                    Ok(server) => Some(server),
                    Err(source) => {
                        node.shutdown();
                        return Err(ServiceError::Metrics { addr, source });
                    }
                }
            }
            None => None,
        };
        let server = match Server::start(handle, config.server) {
            Ok(server) => server,
            Err(error) => {
                node.shutdown();
                return Err(error.into());
            }
        };
        Ok(NodeService {
            node,
            server,
            metrics,
        })
    }

    pub fn handle(&self) -> NodeHandle {
        self.node.handle()
    }

    /// Height reached by replaying the log at start.
    pub fn replayed_height(&self) -> u64 {
        self.node.replayed_height()
    }

    /// Where the node's start spent its time.
    pub fn start_cost(&self) -> crate::node::StartCost {
        self.node.start_cost()
    }

    /// The client protocol address actually bound.
    pub fn client_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The metrics address actually bound, if metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// Stops taking transactions (submits are answered Stopped), lets every accepted one
    /// finish and be acknowledged, writes those acknowledgements to the clients, closes the
    /// connections and the metrics endpoint, and returns how the node ended.
    pub fn shutdown(self) -> NodeOutcome {
        let NodeService {
            node,
            server,
            metrics,
        } = self;
        let outcome = node.shutdown();
        server.finish();
        drop(metrics);
        outcome
    }
}
