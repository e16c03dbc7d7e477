//! The configuration file of `tally node` (TOML, docs/OPERATIONS.md). Every wrong field is
//! named in the error; relative paths are relative to the file's directory.

use super::peers::PeerSpec;
use super::server::ServerConfig;
use super::service::ServiceConfig;
use super::tls::{NodeTls, Revocations};
use crate::node::ValidatorConfig;
use crate::node::{Backend, NodeConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// Directory of the node's log and checkpoints (created if missing).
    pub data_dir: PathBuf,
    /// The genesis file (from `tally genesis`).
    pub genesis: PathBuf,
    /// Client protocol address, e.g. "127.0.0.1:7400".
    pub listen: String,
    /// Prometheus `/metrics` address, e.g. "127.0.0.1:9400"; omit to serve no metrics. Plain
    /// HTTP only on a loopback address, unless `metrics_tls` or
    /// `metrics_plaintext_non_loopback` is set.
    pub metrics_listen: Option<String>,
    /// Serve `/metrics` over TLS (the node's `identity`) to monitoring, central bank and
    /// auditor certificates only, on any address. Default false: plain HTTP.
    #[serde(default)]
    pub metrics_tls: bool,
    /// Allow plain-HTTP `/metrics` on an address that is not loopback. Default false: such a
    /// `metrics_listen` is refused, since anyone who reaches the port reads the node's
    /// counters without a certificate. Set it only where the port is on a private monitoring
    /// network (or behind a scraper that cannot present client certificates) and the
    /// operator accepts that.
    #[serde(default)]
    pub metrics_plaintext_non_loopback: bool,
    /// Signature backend: cpu, gpu or auto (default cpu).
    pub backend: Option<String>,
    /// Where log segments older than the previous checkpoint move (omit to keep them).
    pub archive_dir: Option<PathBuf>,
    /// The node's identity file (`tally pki issue --role validator`): TLS on the client port
    /// and the validator links. Omitted, `tally node` runs only with `--insecure-plaintext`.
    pub identity: Option<PathBuf>,
    /// Serial numbers (hex) of certificates refused by this node, in addition to the
    /// genesis's list.
    #[serde(default)]
    pub revoked: Vec<String>,
    #[serde(default)]
    pub limits: Limits,
    /// Present on a validator of a network of several (docs/OPERATIONS.md, "Validators").
    pub validator: Option<ValidatorFile>,
}

/// The `[validator]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorFile {
    /// This validator's key file (from `tally keygen`); its public key must be in the
    /// current validator set, unless `candidate` is set.
    pub key_file: PathBuf,
    /// Where the other validators connect, e.g. "127.0.0.1:7500".
    pub listen: String,
    /// Every other validator of the current set, and any candidate or follower to link with.
    pub peers: Vec<PeerFile>,
    /// This node is not a validator yet: it follows the chain (links, block sync) until the
    /// authorities vote its key in, then validates from that epoch on. Default false: a key
    /// outside the set is refused as a configuration error.
    #[serde(default)]
    pub candidate: bool,
    /// A proposer with nothing to propose waits this long before an empty block.
    pub empty_block_interval_ms: Option<u64>,
    /// Base of the propose timeout; prevote and precommit timeouts are a third of it.
    pub propose_timeout_ms: Option<u64>,
}

/// One entry of `validator.peers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFile {
    /// Hex public key, as in the genesis.
    pub public_key: String,
    /// Its `validator.listen` address.
    pub addr: String,
}

/// Optional limits; each defaults to the value in [`NodeConfig::new`] / [`ServerConfig`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub mempool_tx_max: Option<usize>,
    pub sigverify_batch_tx_max: Option<usize>,
    pub block_tx_max: Option<usize>,
    pub verified_queue_batches_max: Option<usize>,
    pub commit_queue_blocks_max: Option<usize>,
    pub group_commit_blocks_max: Option<usize>,
    pub checkpoint_interval_blocks: Option<u64>,
    pub checkpoint_interval_ms: Option<u64>,
    pub checkpoint_log_bytes: Option<u64>,
    pub connections_max: Option<usize>,
    pub connection_inflight_tx_max: Option<usize>,
    pub connection_output_bytes_max: Option<usize>,
    pub submit_batch_tx_max: Option<usize>,
    pub drain_timeout_ms: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub connection_buffers_bytes_max: Option<usize>,
    pub identity_connections_max: Option<usize>,
    pub bad_signatures_max: Option<u64>,
    pub bad_signature_backoff_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    /// Per-identity quotas (docs/OPERATIONS.md, "Per-identity quotas").
    pub identity_inflight_tx_max: Option<usize>,
    pub identity_submit_tx_per_s: Option<u64>,
    pub identity_queries_per_s: Option<u64>,
    pub identity_output_bytes_max: Option<usize>,
    pub suspect_bad_signatures: Option<u64>,
    pub suspect_submit_tx_per_s: Option<u64>,
    pub suspect_duration_ms: Option<u64>,
}

/// A configuration ready to run.
#[derive(Debug)]
pub struct LoadedConfig {
    pub genesis_path: PathBuf,
    /// The node's identity, when the file names one (`service.server.tls` is then set).
    pub identity: Option<tally_pki::Identity>,
    pub node: NodeConfig,
    pub service: ServiceConfig,
}

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

fn address(path: &Path, field: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|error| ConfigError::Field {
        path: path.to_path_buf(),
        field,
        message: format!("{text:?} is not an address like 127.0.0.1:7400 ({error})"),
    })
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_toml(&text, path)
}

/// Parses a config whose relative paths are relative to `path`'s directory.
pub fn from_toml(text: &str, path: &Path) -> Result<LoadedConfig, ConfigError> {
    let file: NodeFile = toml::from_str(text).map_err(|error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: error.to_string().trim_end().to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let field = |field: &'static str, message: String| ConfigError::Field {
        path: path.to_path_buf(),
        field,
        message,
    };
    let mut node = NodeConfig::new(resolve(&file.data_dir));
    if let Some(backend) = &file.backend {
        node.backend = backend
            .parse::<Backend>()
            .map_err(|error| field("backend", error.to_string()))?;
    }
    node.archive_dir = file.archive_dir.as_deref().map(resolve);
    let limits = &file.limits;
    let positive = |name: &'static str, value: Option<usize>, slot: &mut usize| {
        if let Some(value) = value {
            if value == 0 {
                return Err(field(name, "must be at least 1".into()));
            }
            *slot = value;
        }
        Ok(())
    };
    positive(
        "limits.mempool_tx_max",
        limits.mempool_tx_max,
        &mut node.mempool_tx_max,
    )?;
    positive(
        "limits.sigverify_batch_tx_max",
        limits.sigverify_batch_tx_max,
        &mut node.sigverify_batch_tx_max,
    )?;
    positive(
        "limits.block_tx_max",
        limits.block_tx_max,
        &mut node.block_tx_max,
    )?;
    positive(
        "limits.verified_queue_batches_max",
        limits.verified_queue_batches_max,
        &mut node.verified_queue_batches_max,
    )?;
    positive(
        "limits.commit_queue_blocks_max",
        limits.commit_queue_blocks_max,
        &mut node.commit_queue_blocks_max,
    )?;
    positive(
        "limits.group_commit_blocks_max",
        limits.group_commit_blocks_max,
        &mut node.group_commit_blocks_max,
    )?;
    if let Some(interval) = limits.checkpoint_interval_blocks {
        node.checkpoint_interval_blocks = interval;
    }
    if let Some(interval) = limits.checkpoint_interval_ms {
        node.checkpoint_interval_ms = interval;
    }
    if let Some(bytes) = limits.checkpoint_log_bytes {
        node.checkpoint_log_bytes = bytes;
    }
    if let Some((name, message)) = crate::node::checkpoint_cadence_problem(&node) {
        return Err(field(name, message));
    }
    let mut server = ServerConfig {
        listen: address(path, "listen", &file.listen)?,
        ..ServerConfig::default()
    };
    positive(
        "limits.connections_max",
        limits.connections_max,
        &mut server.connections_max,
    )?;
    positive(
        "limits.connection_inflight_tx_max",
        limits.connection_inflight_tx_max,
        &mut server.connection_inflight_tx_max,
    )?;
    positive(
        "limits.connection_output_bytes_max",
        limits.connection_output_bytes_max,
        &mut server.connection_output_bytes_max,
    )?;
    positive(
        "limits.identity_connections_max",
        limits.identity_connections_max,
        &mut server.identity_connections_max,
    )?;
    positive(
        "limits.identity_inflight_tx_max",
        limits.identity_inflight_tx_max,
        &mut server.identity_inflight_tx_max,
    )?;
    positive(
        "limits.identity_output_bytes_max",
        limits.identity_output_bytes_max,
        &mut server.identity_output_bytes_max,
    )?;
    for (name, value, slot) in [
        (
            "limits.identity_submit_tx_per_s",
            limits.identity_submit_tx_per_s,
            &mut server.identity_submit_tx_per_s,
        ),
        (
            "limits.identity_queries_per_s",
            limits.identity_queries_per_s,
            &mut server.identity_queries_per_s,
        ),
        (
            "limits.suspect_bad_signatures",
            limits.suspect_bad_signatures,
            &mut server.suspect_bad_signatures,
        ),
        (
            "limits.suspect_submit_tx_per_s",
            limits.suspect_submit_tx_per_s,
            &mut server.suspect_submit_tx_per_s,
        ),
    ] {
        if let Some(value) = value {
            if value == 0 {
                return Err(field(name, "must be at least 1".into()));
            }
            *slot = value;
        }
    }
    if let Some(ms) = limits.suspect_duration_ms {
        server.suspect_duration = Duration::from_millis(ms);
    }
    if let Some(max) = limits.bad_signatures_max {
        server.bad_signatures_max = max;
    }
    if let Some(ms) = limits.bad_signature_backoff_ms {
        server.bad_signature_backoff = Duration::from_millis(ms);
    }
    positive(
        "limits.connection_buffers_bytes_max",
        limits.connection_buffers_bytes_max,
        &mut server.connection_buffers_bytes_max,
    )?;
    positive(
        "limits.submit_batch_tx_max",
        limits.submit_batch_tx_max,
        &mut server.submit_batch_tx_max,
    )?;
    if let Some(ms) = limits.drain_timeout_ms {
        server.drain_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = limits.handshake_timeout_ms {
        server.handshake_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = limits.idle_timeout_ms {
        server.idle_timeout = Duration::from_millis(ms);
    }
    let identity = match &file.identity {
        None => None,
        Some(identity_path) => {
            let identity = tally_pki::Identity::load(&resolve(identity_path))
                .map_err(|error| field("identity", error.to_string()))?;
            for (i, serial) in file.revoked.iter().enumerate() {
                if serial.is_empty() || hex::decode(serial).is_err() {
                    return Err(field(
                        "revoked",
                        format!("revoked[{i}] {serial:?} is not a hex serial number"),
                    ));
                }
            }
            let revocations = Arc::new(Revocations::new(file.revoked.iter().cloned()));
            let tls = NodeTls::new(&identity, revocations)
                .map_err(|error| field("identity", error.to_string()))?;
            server.tls = Some(Arc::new(tls));
            Some(identity)
        }
    };
    server.check().map_err(|message| field("limits", message))?;
    if let Some(validator) = &file.validator {
        let mut validator = validator_config(path, validator, &resolve)?;
        validator.tls = server.tls.clone();
        node.validator = Some(validator);
    }
    let metrics_listen = file
        .metrics_listen
        .as_deref()
        .map(|text| address(path, "metrics_listen", text))
        .transpose()?;
    if metrics_listen == Some(server.listen) && server.listen.port() != 0 {
        return Err(field(
            "metrics_listen",
            format!("{} is also `listen`: use another port", server.listen),
        ));
    }
    if file.metrics_tls && server.tls.is_none() {
        return Err(field(
            "metrics_tls",
            "metrics over TLS need the node's `identity`".into(),
        ));
    }
    if let Some(addr) = metrics_listen {
        if !file.metrics_tls && !addr.ip().is_loopback() && !file.metrics_plaintext_non_loopback {
            return Err(field(
                "metrics_listen",
                format!(
                    "{addr} is not a loopback address, and plain-HTTP /metrics there is open to \
                     anyone who reaches it: set metrics_tls = true (served over TLS to \
                     monitoring, central bank and auditor certificates), bind it to 127.0.0.1, \
                     or set metrics_plaintext_non_loopback = true on a private monitoring network"
                ),
            ));
        }
    }
    Ok(LoadedConfig {
        genesis_path: resolve(&file.genesis),
        identity,
        node,
        service: ServiceConfig {
            server,
            metrics_listen,
            metrics_tls: file.metrics_tls,
        },
    })
}

fn validator_config(
    path: &Path,
    file: &ValidatorFile,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<ValidatorConfig, ConfigError> {
    let field = |field: &'static str, message: String| ConfigError::Field {
        path: path.to_path_buf(),
        field,
        message,
    };
    let key_path = resolve(&file.key_file);
    let key = crate::keys::read_key_file(&key_path)
        .map_err(|error| field("validator.key_file", error.to_string()))?;
    let listen = address(path, "validator.listen", &file.listen)?;
    let mut peers = Vec::with_capacity(file.peers.len());
    for (index, peer) in file.peers.iter().enumerate() {
        let public_key = crate::keys::decode_hex32(&peer.public_key).map_err(|reason| {
            field(
                "validator.peers",
                format!("peers[{index}].public_key: {reason}"),
            )
        })?;
        let addr = peer.addr.parse().map_err(|error| {
            field(
                "validator.peers",
                format!(
                    "peers[{index}].addr {:?} is not an address like 127.0.0.1:7500 ({error})",
                    peer.addr
                ),
            )
        })?;
        peers.push(PeerSpec { public_key, addr });
    }
    let mut config = ValidatorConfig::new(key, listen, peers);
    config.candidate = file.candidate;
    if let Some(ms) = file.empty_block_interval_ms {
        config.empty_block_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = file.propose_timeout_ms {
        if ms == 0 {
            return Err(field(
                "validator.propose_timeout_ms",
                "must be at least 1".into(),
            ));
        }
        config.timeouts = crate::consensus::TimeoutConfig {
            propose_ms: ms,
            propose_delta_ms: ms / 3,
            prevote_ms: ms / 3,
            prevote_delta_ms: ms / 6,
            precommit_ms: ms / 3,
            precommit_delta_ms: ms / 6,
        };
    }
    if config.timeouts.propose_ms <= config.empty_block_interval.as_millis() as u64 {
        return Err(field(
            "validator.empty_block_interval_ms",
            format!(
                "{} ms must be below the propose timeout ({} ms), or every idle height changes round",
                config.empty_block_interval.as_millis(),
                config.timeouts.propose_ms
            ),
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LoadedConfig, String> {
        from_toml(text, Path::new("/etc/tally/node.toml")).map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"
data_dir = "data"
genesis = "/srv/genesis.toml"
listen = "127.0.0.1:7400"
metrics_listen = "127.0.0.1:9400"
backend = "auto"
[limits]
mempool_tx_max = 1000
submit_batch_tx_max = 512
"#;

    #[test]
    fn a_good_file_gives_the_configs() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.node.data_dir, Path::new("/etc/tally/data"));
        assert_eq!(config.genesis_path, Path::new("/srv/genesis.toml"));
        assert_eq!(config.node.backend, Backend::Auto);
        assert_eq!(config.node.mempool_tx_max, 1000);
        assert_eq!(config.service.server.submit_batch_tx_max, 512);
        // the checkpoint cadence's defaults, and each key read
        let cadence = config.node.checkpoint_cadence();
        assert_eq!(
            (
                cadence.interval_ms,
                cadence.log_bytes,
                cadence.interval_blocks
            ),
            (60_000, 1 << 30, 0)
        );
        let text = format!(
            "{GOOD}checkpoint_interval_ms = 0\ncheckpoint_log_bytes = 268435456\ncheckpoint_interval_blocks = 100\n"
        );
        let cadence = parse(&text).unwrap().node.checkpoint_cadence();
        assert_eq!(
            (
                cadence.interval_ms,
                cadence.log_bytes,
                cadence.interval_blocks
            ),
            (0, 1 << 28, 100)
        );
        assert_eq!(
            config.service.metrics_listen,
            Some("127.0.0.1:9400".parse().unwrap())
        );
    }

    #[test]
    fn every_wrong_field_is_named() {
        let cases = [
            (
                GOOD.replace("backend = \"auto\"", "backend = \"tpu\""),
                "`backend`",
            ),
            (GOOD.replace("127.0.0.1:7400", "localhost"), "`listen`"),
            (GOOD.replace("127.0.0.1:9400", "9400"), "`metrics_listen`"),
            (
                GOOD.replace("127.0.0.1:9400", "127.0.0.1:7400"),
                "`metrics_listen`",
            ),
            (
                GOOD.replace("mempool_tx_max = 1000", "mempool_tx_max = 0"),
                "limits.mempool_tx_max",
            ),
            (
                GOOD.replace("mempool_tx_max = 1000", "mempool_txmax = 5"),
                "mempool_txmax",
            ),
            (
                GOOD.replace("mempool_tx_max = 1000", "mempool_tx_max = -5"),
                "mempool_tx_max",
            ),
            (
                GOOD.replace("submit_batch_tx_max = 512", "submit_batch_tx_max = 9000"),
                "submit_batch_tx_max",
            ),
            (GOOD.replace("listen = \"127.0.0.1:7400\"\n", ""), "listen"),
            (format!("{GOOD}\ncolour = 1\n"), "colour"),
            (
                format!("{GOOD}checkpoint_interval_ms = 500\n"),
                "limits.checkpoint_interval_ms",
            ),
            (
                format!("{GOOD}checkpoint_log_bytes = 1000\n"),
                "limits.checkpoint_log_bytes",
            ),
            (
                format!("{GOOD}checkpoint_log_bytes = -1\n"),
                "checkpoint_log_bytes",
            ),
        ];
        for (text, needle) in cases {
            let error = parse(&text).expect_err(needle);
            assert!(error.contains(needle), "{needle:?} not in {error:?}");
            assert!(error.contains("/etc/tally/node.toml"), "{error}");
        }
    }

    #[test]
    fn plain_metrics_listen_only_on_loopback_unless_allowed() {
        // loopback, IPv4 and IPv6: plain HTTP is fine
        assert!(parse(GOOD).is_ok());
        assert!(parse(&GOOD.replace("127.0.0.1:9400", "[::1]:9400")).is_ok());
        // any other address is refused, naming the options
        let open = GOOD.replace("127.0.0.1:9400", "0.0.0.0:9400");
        let error = parse(&open).unwrap_err();
        assert!(error.contains("`metrics_listen`"), "{error}");
        assert!(error.contains("metrics_tls"), "{error}");
        assert!(error.contains("metrics_plaintext_non_loopback"), "{error}");
        let error = parse(&GOOD.replace("127.0.0.1:9400", "10.1.2.3:9400")).unwrap_err();
        assert!(error.contains("not a loopback address"), "{error}");
        // the explicit option allows it
        let allowed = open.replace(
            "backend = \"auto\"",
            "backend = \"auto\"\nmetrics_plaintext_non_loopback = true",
        );
        let config = parse(&allowed).unwrap();
        assert_eq!(
            config.service.metrics_listen,
            Some("0.0.0.0:9400".parse().unwrap())
        );
        assert!(!config.service.metrics_tls);
        // metrics over TLS need the node's identity
        let tls_without_identity = open.replace(
            "backend = \"auto\"",
            "backend = \"auto\"\nmetrics_tls = true",
        );
        let error = parse(&tls_without_identity).unwrap_err();
        assert!(error.contains("`metrics_tls`"), "{error}");
    }
}
