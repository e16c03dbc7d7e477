//! A cluster of validators on loopback in one process: for `tally demo`, the benchmarks and
//! tests. Every node is a whole node (its own data directory, log, pipeline and validator
//! links over real TCP); only the process is shared.

use super::ValidatorConfig;
use crate::genesis::{Genesis, ValidatorSpec};
use crate::keys::public_key_of;
use crate::net::peers::PeerSpec;
use crate::node::{Node, NodeConfig, NodeError};
use ed25519_zebra::SigningKey;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

/// `count` validator keys derived from `seed` (the same seed gives the same keys).
pub fn validator_keys(count: usize, seed: u64) -> Vec<SigningKey> {
    (0..count)
        .map(|index| {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            bytes[8..16].copy_from_slice(&(index as u64).to_le_bytes());
            bytes[16..].copy_from_slice(b"tally-validator!");
            SigningKey::from(*blake3::hash(&bytes).as_bytes())
        })
        .collect()
}

/// Makes `keys` the genesis's validators, in that order (the proposer rotation).
pub fn set_validators(genesis: &mut Genesis, keys: &[SigningKey]) {
    genesis.validators = keys
        .iter()
        .enumerate()
        .map(|(index, key)| ValidatorSpec {
            name: format!("validator-{index}"),
            public_key: hex::encode(public_key_of(key)),
        })
        .collect();
}

/// Node configurations for `keys` on loopback: `template` with a data directory
/// `base/validator-i` each, and validator links on ports bound here (so every address is
/// known before any node starts).
pub fn loopback_configs(
    template: &NodeConfig,
    base: &Path,
    keys: &[SigningKey],
) -> std::io::Result<Vec<NodeConfig>> {
    let listeners = keys
        .iter()
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<std::io::Result<Vec<SocketAddr>>>()?;
    let mut configs = Vec::with_capacity(keys.len());
    for (index, (key, listener)) in keys.iter().zip(listeners).enumerate() {
        let peers = keys
            .iter()
            .zip(&addrs)
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, (peer, addr))| PeerSpec {
                public_key: public_key_of(peer),
                addr: *addr,
            })
            .collect();
        let mut validator = template
            .validator
            .clone()
            .unwrap_or_else(|| ValidatorConfig::new(*key, addrs[index], Vec::new()));
        validator.signing_key = *key;
        validator.listen = addrs[index];
        validator.listener = Some(Arc::new(listener));
        validator.peers = peers;
        let mut config = template.clone();
        config.data_dir = base.join(format!("validator-{index}"));
        config.validator = Some(validator);
        configs.push(config);
    }
    Ok(configs)
}

/// Puts the validator links of `configs` (from [`loopback_configs`]) under TLS: a CA of its
/// own for network `network_id`, made here and kept nowhere else, and a validator
/// certificate for each node (its key, host 127.0.0.1). What an in-process cluster uses in
/// place of `tally cluster init`'s files.
pub fn loopback_tls(configs: &mut [NodeConfig], network_id: u64) -> Result<(), String> {
    use tally_pki::{Access, Ca, Request, Validity};
    let ca = Ca::create(network_id, Validity::days_from_now(1)).map_err(|e| e.to_string())?;
    for config in configs {
        let validator = config
            .validator
            .as_mut()
            .ok_or("a loopback configuration without a validator")?;
        let identity = ca
            .issue(&Request {
                name: format!(
                    "validator-{}",
                    &hex::encode(public_key_of(&validator.signing_key))[..16]
                ),
                access: Access::Validator,
                signers: vec![public_key_of(&validator.signing_key)],
                hosts: vec!["127.0.0.1".into()],
                validity: Validity::days_from_now(1),
            })
            .map_err(|e| e.to_string())?;
        let tls = crate::net::tls::NodeTls::new(&identity, Default::default())
            .map_err(|e| e.to_string())?;
        validator.tls = Some(Arc::new(tls));
    }
    Ok(())
}

/// Starts every node of `configs` (stopping those already started if one fails).
pub fn start(genesis: &Genesis, configs: &[NodeConfig]) -> Result<Vec<Node>, NodeError> {
    let mut nodes = Vec::with_capacity(configs.len());
    for config in configs {
        match Node::start(genesis, config.clone()) {
            Ok(node) => nodes.push(node),
            Err(error) => {
                for node in nodes {
                    node.shutdown();
                }
                return Err(error);
            }
        }
    }
    Ok(nodes)
}
