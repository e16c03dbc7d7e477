//! The files of a cluster of validator processes (`tally cluster init` and `tally cluster up`).
//!
//! A cluster directory holds, for N validators:
//!
//! - `validator-i.key`: validator i's signing key (the `tally keygen` format, mode 0600);
//! - `genesis.toml`: the genesis of the load generator's population for a workload, seed and
//!   bank count (see [`crate::session::population_for`]), with the N validators in it, so
//!   that `tally loadgen --node ... --genesis DIR/genesis.toml` signs for it;
//! - `ca/ca.pem`, `ca/ca.key`: the network's CA (`tally pki`, mode 0600 for the key);
//! - `validator-i.identity`: validator i's certificate (its validator key, host 127.0.0.1
//!   and localhost) with its TLS key and the CA's certificate;
//! - `participants/`: one identity per participant of the population's roles, each usable
//!   with `--identity PATH`: `central-bank`, `tax-authority`, `auditor`, `monitoring` and
//!   `bank-ID` for every bank (its own key; its customers by the genesis), as
//!   `NAME.identity`, and `loadgen` (the central bank's key, the tax authority's and every
//!   bank's: what the load generator submits with); beside each participant that signs
//!   records, its signing key as `NAME.key` (the `tally keygen` format, mode 0600):
//!   `central-bank.key` (the issuance account's owner, for `tally pki revoke` and every
//!   central-bank operation), `tax-authority.key` and `bank-ID.key`;
//! - `node-i.toml`: validator i's `tally node` configuration: data directory `data-i`,
//!   clients on `base_port + i`, `/metrics` on `base_port + 100 + i`, validator links on
//!   `base_port + 200 + i`, every other validator as a peer; all on 127.0.0.1, or with
//!   [`ClusterSpec::hosts`] clients and validator links on validator i's own host (its
//!   certificate names it too) and `/metrics` on that host's loopback.
//!
//! It lives in the load generator because the genesis is the load generator's population:
//! the dependency runs CLI -> loadgen -> engine, and the CLI only parses and wires.

use crate::population::Custody;
use crate::population::{Population, CENTRAL_BANK_ID, TAX_AUTHORITY_ID};
use crate::session::{population_for, population_with};
use crate::workload::WorkloadName;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use tally_engine::node::Backend;
use tally_engine::validator::cluster::set_validators;
use tally_pki::{Access, Ca, Request, Validity, DEFAULT_CA_VALIDITY_DAYS, DEFAULT_VALIDITY_DAYS};
use tally_protocol::genesis::Genesis;
use tally_protocol::keys::{generate_key, public_key_of, write_key_file};

/// Most validators of one cluster: the client, metrics and validator ports of each are 100
/// apart, so more would overlap.
pub const VALIDATORS_MAX: usize = 100;

/// Ports above `base_port` of each validator.
const METRICS_OFFSET: u16 = 100;
const VALIDATOR_OFFSET: u16 = 200;

/// What `init` makes.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub validators: usize,
    /// Clients on `base_port + i`, metrics `+ 100 + i`, validator links `+ 200 + i`; `0`
    /// chooses a base whose 3N ports are free now.
    pub base_port: u16,
    /// The population of the genesis, as `tally loadgen` makes it from the same options.
    pub workload: WorkloadName,
    pub seed: u64,
    pub banks: usize,
    /// The `transfer` workload's accounts and who signs for them (as `tally loadgen
    /// --accounts --custody`).
    pub accounts: usize,
    pub custody: Custody,
    /// Signature backend written into each node's configuration.
    pub backend: Backend,
    /// One IP address per validator, where it takes clients and validator links (and which
    /// its certificate names); empty: every validator on 127.0.0.1.
    pub hosts: Vec<std::net::IpAddr>,
}

impl Default for ClusterSpec {
    fn default() -> ClusterSpec {
        ClusterSpec {
            validators: 4,
            base_port: 7400,
            workload: WorkloadName::Mixed,
            seed: 1,
            banks: 20,
            accounts: crate::workload::TRANSFER_ACCOUNTS_DEFAULT,
            custody: Custody::Own,
            backend: Backend::Cpu,
            hosts: Vec::new(),
        }
    }
}

/// One validator's files and addresses (read back from its configuration).
#[derive(Clone, Debug)]
pub struct ValidatorFiles {
    pub index: usize,
    pub public_key: [u8; 32],
    pub config: PathBuf,
    pub key_file: PathBuf,
    pub data_dir: PathBuf,
    /// Where `tally cluster up` sends the process's standard output and error.
    pub log_file: PathBuf,
    /// Where `tally cluster up` writes the process id.
    pub pid_file: PathBuf,
    pub client: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub validator_listen: SocketAddr,
}

/// A cluster directory.
#[derive(Clone, Debug)]
pub struct ClusterFiles {
    pub dir: PathBuf,
    pub genesis: PathBuf,
    pub genesis_hash: [u8; 32],
    pub validators: Vec<ValidatorFiles>,
    /// Whether `init` wrote the files now (false: an existing cluster was kept).
    pub created: bool,
}

impl ClusterFiles {
    /// The identity of the central bank's operator, which reads everything.
    pub fn operator_identity(&self) -> PathBuf {
        participant_identity_path(&self.dir, "central-bank")
    }

    /// The load generator's identity: the central bank's role, binding the central bank's
    /// key and every bank's (it submits for all of them and their customers).
    pub fn loadgen_identity(&self) -> PathBuf {
        participant_identity_path(&self.dir, "loadgen")
    }

    /// The client addresses, comma-separated (for `tally loadgen --node`).
    pub fn client_list(&self) -> String {
        self.validators
            .iter()
            .map(|v| v.client.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether the genesis is the population of `spec`'s workload, seed, banks, accounts and
    /// custody (with this cluster's validators): then `tally loadgen` with those flags signs
    /// for it.
    pub fn matches_population(&self, spec: &ClusterSpec) -> bool {
        let Ok(genesis) = Genesis::load(&self.genesis) else {
            return false;
        };
        let mut ours = population_with(
            spec.workload,
            spec.seed,
            spec.banks,
            spec.accounts,
            spec.custody,
        )
        .genesis;
        ours.validators = genesis.validators.clone();
        ours.settlement = genesis.settlement.clone();
        ours == genesis
    }
}

/// Why a cluster directory cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("--validators must be between 1 and {VALIDATORS_MAX}, got {0}")]
    Validators(usize),
    #[error("--banks must be at least 2, got {0}")]
    Banks(usize),
    #[error("--banks {0}: the load generator's certificate binds every bank's key, the central bank's and the tax authority's, at most {max} keys: use fewer banks", max = tally_pki::SIGNERS_MAX)]
    TooManyBanks(usize),
    #[error("--base-port {base}: the ports of {validators} validators reach {top}, above 65535: choose a lower base")]
    Ports {
        base: u16,
        validators: usize,
        top: u32,
    },
    #[error("--hosts names {found} hosts for {validators} validators: give one per validator")]
    Hosts { found: usize, validators: usize },
    #[error("--hosts needs --base-port: free ports are only found on this machine")]
    HostsWithoutBasePort,
    #[error("found no base port whose {0} ports are all free on 127.0.0.1: pass --base-port")]
    NoFreePorts(usize),
    #[error("{dir} holds a cluster of {found} validators, not {wanted}: pass --validators {found}, or another --dir")]
    OtherSize {
        dir: PathBuf,
        found: usize,
        wanted: usize,
    },
    #[error("{dir} exists, is not empty and is not a cluster directory (no genesis.toml and node-0.toml): choose a new or empty --dir")]
    NotACluster { dir: PathBuf },
    #[error("cluster directory {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("cluster directory {dir}: {reason}")]
    Broken { dir: PathBuf, reason: String },
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> ClusterError + '_ {
    move |error| ClusterError::Io {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

/// Paths of validator `index`'s files in `dir`.
pub fn config_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("node-{index}.toml"))
}

/// Makes the cluster directory, or keeps an existing cluster of the same size, and reads
/// every validator's files back.
pub fn init(dir: &Path, spec: &ClusterSpec) -> Result<ClusterFiles, ClusterError> {
    if spec.validators == 0 || spec.validators > VALIDATORS_MAX {
        return Err(ClusterError::Validators(spec.validators));
    }
    if spec.banks < 2 {
        return Err(ClusterError::Banks(spec.banks));
    }
    if spec.banks + 2 > tally_pki::SIGNERS_MAX {
        return Err(ClusterError::TooManyBanks(spec.banks));
    }
    if !spec.hosts.is_empty() {
        if spec.hosts.len() != spec.validators {
            return Err(ClusterError::Hosts {
                found: spec.hosts.len(),
                validators: spec.validators,
            });
        }
        if spec.base_port == 0 {
            return Err(ClusterError::HostsWithoutBasePort);
        }
    }
    let hosts: Vec<std::net::IpAddr> = (0..spec.validators)
        .map(|index| {
            spec.hosts
                .get(index)
                .copied()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
        })
        .collect();
    match existing_size(dir)? {
        Existing::Empty => {}
        Existing::Cluster(found) if found == spec.validators => {
            return open(dir, spec.validators, false)
        }
        Existing::Cluster(found) => {
            return Err(ClusterError::OtherSize {
                dir: dir.to_path_buf(),
                found,
                wanted: spec.validators,
            })
        }
        Existing::Other => {
            return Err(ClusterError::NotACluster {
                dir: dir.to_path_buf(),
            })
        }
    }
    let base_port = match spec.base_port {
        0 => free_base_port(spec.validators)?,
        base => {
            let top = u32::from(base) + u32::from(VALIDATOR_OFFSET) + spec.validators as u32 - 1;
            if top > u32::from(u16::MAX) {
                return Err(ClusterError::Ports {
                    base,
                    validators: spec.validators,
                    top,
                });
            }
            base
        }
    };
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let keys: Vec<_> = (0..spec.validators).map(|_| generate_key()).collect();
    for (index, key) in keys.iter().enumerate() {
        let path = dir.join(format!("validator-{index}.key"));
        write_key_file(&path, key).map_err(|error| ClusterError::Io {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    }
    let Population {
        mut genesis,
        keys: account_keys,
        banks,
        ..
    } = population_with(
        spec.workload,
        spec.seed,
        spec.banks,
        spec.accounts,
        spec.custody,
    );
    set_validators(&mut genesis, &keys);
    let genesis_path = dir.join("genesis.toml");
    std::fs::write(&genesis_path, genesis.to_toml()).map_err(io_error(&genesis_path))?;
    let publics: Vec<[u8; 32]> = keys.iter().map(public_key_of).collect();
    let account_key = |id: u64| public_key_of(&account_keys[&id]);
    let mut holders = vec![
        (
            "central-bank".to_string(),
            Access::CentralBank,
            vec![account_key(CENTRAL_BANK_ID)],
        ),
        (
            "tax-authority".to_string(),
            Access::TaxAuthority,
            vec![account_key(TAX_AUTHORITY_ID)],
        ),
        ("auditor".to_string(), Access::Auditor, Vec::new()),
        ("monitoring".to_string(), Access::Monitoring, Vec::new()),
    ];
    let mut everyone = vec![account_key(CENTRAL_BANK_ID), account_key(TAX_AUTHORITY_ID)];
    for &bank in &banks {
        holders.push((
            format!("bank-{bank}"),
            Access::Bank,
            vec![account_key(bank)],
        ));
        everyone.push(account_key(bank));
    }
    // The load generator submits for every bank and customer, pledges and redeems for the
    // central bank, and pays out of the tax authority's account (the steady-state workloads
    // put collected tax back into circulation): the central bank's role with the tax
    // authority's and every bank's key too. For tests and benchmarks; a real network gives
    // each gateway its own.
    holders.push(("loadgen".to_string(), Access::CentralBank, everyone));
    write_pki(dir, genesis.network_id, &publics, &hosts, &holders)?;
    // The signing keys of the participants that sign records, beside their identities, so
    // that anything can be signed by hand on a local network.
    let mut signers = vec![
        ("central-bank".to_string(), CENTRAL_BANK_ID),
        ("tax-authority".to_string(), TAX_AUTHORITY_ID),
    ];
    signers.extend(banks.iter().map(|&bank| (format!("bank-{bank}"), bank)));
    for (name, account) in signers {
        let path = participant_key_path(dir, &name);
        write_key_file(&path, &account_keys[&account]).map_err(|error| ClusterError::Io {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    }
    for index in 0..spec.validators {
        let path = config_path(dir, index);
        let text = node_config(index, base_port, &publics, &hosts, spec.backend);
        std::fs::write(&path, text).map_err(io_error(&path))?;
    }
    open(dir, spec.validators, true)
}

/// Paths of the identity files `init` writes: validator `index`'s.
pub fn validator_identity_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("validator-{index}.identity"))
}

/// The identity file of participant `name` (`central-bank`, `bank-1000`, ...).
pub fn participant_identity_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("participants").join(format!("{name}.identity"))
}

/// The signing key file of participant `name` (`central-bank`, `tax-authority`,
/// `bank-1000`, ...): the owner key of its account.
pub fn participant_key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("participants").join(format!("{name}.key"))
}

/// Writes the CA, one identity per validator and one per participant.
fn write_pki(
    dir: &Path,
    network_id: u64,
    validators: &[[u8; 32]],
    hosts: &[std::net::IpAddr],
    participants: &[(String, Access, Vec<[u8; 32]>)],
) -> Result<(), ClusterError> {
    let pki_error = |path: &Path| {
        let path = path.to_path_buf();
        move |error: tally_pki::PkiError| ClusterError::Io {
            path: path.clone(),
            reason: error.to_string(),
        }
    };
    let ca_dir = dir.join("ca");
    let ca = Ca::create(
        network_id,
        Validity::days_from_now(DEFAULT_CA_VALIDITY_DAYS),
    )
    .map_err(pki_error(&ca_dir))?;
    ca.save(&ca_dir).map_err(pki_error(&ca_dir))?;
    let issue = |path: PathBuf, request: Request| {
        let identity = ca.issue(&request).map_err(pki_error(&path))?;
        identity.save(&path).map_err(|error| ClusterError::Io {
            path: path.clone(),
            reason: error.to_string(),
        })
    };
    for (index, (key, host)) in validators.iter().zip(hosts).enumerate() {
        let mut names = vec![host.to_string()];
        for local in ["127.0.0.1", "localhost"] {
            if !names.iter().any(|name| name == local) {
                names.push(local.into());
            }
        }
        issue(
            validator_identity_path(dir, index),
            Request {
                name: format!("validator-{index}"),
                access: Access::Validator,
                signers: vec![*key],
                hosts: names,
                validity: Validity::days_from_now(DEFAULT_VALIDITY_DAYS),
            },
        )?;
    }
    let participants_dir = dir.join("participants");
    std::fs::create_dir_all(&participants_dir).map_err(io_error(&participants_dir))?;
    for (name, access, signers) in participants {
        issue(
            participant_identity_path(dir, name),
            Request {
                name: name.clone(),
                access: *access,
                signers: signers.clone(),
                hosts: Vec::new(),
                validity: Validity::days_from_now(DEFAULT_VALIDITY_DAYS),
            },
        )?;
    }
    Ok(())
}

/// The population's genesis with `keys` as its validators.
pub fn cluster_genesis(
    workload: WorkloadName,
    seed: u64,
    banks: usize,
    keys: &[ed25519_zebra::SigningKey],
) -> Genesis {
    let Population { mut genesis, .. } = population_for(workload, seed, banks);
    set_validators(&mut genesis, keys);
    genesis
}

fn port(base: u16, offset: u16, index: usize) -> u16 {
    base + offset + index as u16
}

/// The text of validator `index`'s configuration.
fn node_config(
    index: usize,
    base: u16,
    publics: &[[u8; 32]],
    hosts: &[std::net::IpAddr],
    backend: Backend,
) -> String {
    let at = |index: usize, port: u16| SocketAddr::new(hosts[index], port);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Validator {index} of a cluster of {} (`tally cluster init`); see docs/OPERATIONS.md.",
        publics.len()
    );
    let _ = writeln!(text, "data_dir = \"data-{index}\"");
    let _ = writeln!(text, "identity = \"validator-{index}.identity\"");
    let _ = writeln!(text, "genesis = \"genesis.toml\"");
    let _ = writeln!(text, "listen = \"{}\"", at(index, port(base, 0, index)));
    let _ = writeln!(
        text,
        "metrics_listen = \"127.0.0.1:{}\"",
        port(base, METRICS_OFFSET, index)
    );
    let _ = writeln!(text, "backend = \"{backend}\"");
    let _ = writeln!(text, "\n[validator]");
    let _ = writeln!(text, "key_file = \"validator-{index}.key\"");
    let _ = writeln!(
        text,
        "listen = \"{}\"",
        at(index, port(base, VALIDATOR_OFFSET, index))
    );
    let _ = writeln!(text, "empty_block_interval_ms = 500");
    let _ = writeln!(text, "propose_timeout_ms = 1500");
    let _ = writeln!(text, "peers = [");
    for (other, public) in publics.iter().enumerate() {
        if other != index {
            let _ = writeln!(
                text,
                "  {{ public_key = \"{}\", addr = \"{}\" }},",
                hex::encode(public),
                at(other, port(base, VALIDATOR_OFFSET, other))
            );
        }
    }
    let _ = writeln!(text, "]");
    text
}

/// A base port whose 3N ports all bind on 127.0.0.1 now (another process may take one
/// before the nodes start; callers that must not fail retry on a bind error).
fn free_base_port(validators: usize) -> Result<u16, ClusterError> {
    // Start at a place that differs between processes so that parallel callers rarely
    // collide, then walk the range.
    let start = 20_000 + (std::process::id() as usize * 7_919) % 30_000;
    for attempt in 0..200 {
        let base = (20_000 + (start - 20_000 + attempt * 331) % 30_000) as u16;
        let ports = (0..validators).flat_map(|i| {
            [0, METRICS_OFFSET, VALIDATOR_OFFSET].map(|offset| port(base, offset, i))
        });
        let mut held = Vec::new();
        let all_free = ports
            .into_iter()
            .all(|p| match TcpListener::bind(("127.0.0.1", p)) {
                Ok(listener) => {
                    held.push(listener);
                    true
                }
                Err(_) => false,
            });
        if all_free {
            return Ok(base);
        }
    }
    Err(ClusterError::NoFreePorts(3 * validators))
}

enum Existing {
    Empty,
    Cluster(usize),
    Other,
}

/// What `dir` holds now.
fn existing_size(dir: &Path) -> Result<Existing, ClusterError> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Empty),
        Err(error) => return Err(io_error(dir)(error)),
    };
    if entries.next().is_none() {
        return Ok(Existing::Empty);
    }
    if !dir.join("genesis.toml").is_file() || !config_path(dir, 0).is_file() {
        return Ok(Existing::Other);
    }
    let count = (0..).take_while(|&i| config_path(dir, i).is_file()).count();
    Ok(Existing::Cluster(count))
}

/// Reads an existing cluster of `validators` (every configuration checked as `tally node`
/// checks it, and the genesis's validators compared with the key files).
pub fn open(dir: &Path, validators: usize, created: bool) -> Result<ClusterFiles, ClusterError> {
    let broken = |reason: String| ClusterError::Broken {
        dir: dir.to_path_buf(),
        reason,
    };
    let genesis_path = dir.join("genesis.toml");
    let genesis = Genesis::load(&genesis_path).map_err(|error| broken(error.to_string()))?;
    if genesis.validators.len() != validators {
        return Err(broken(format!(
            "genesis.toml names {} validators, but there are {validators} node configurations",
            genesis.validators.len()
        )));
    }
    let mut out = Vec::with_capacity(validators);
    for index in 0..validators {
        let config = config_path(dir, index);
        let loaded =
            tally_engine::net::config::load(&config).map_err(|error| broken(error.to_string()))?;
        let validator =
            loaded.node.validator.as_ref().ok_or_else(|| {
                broken(format!("{} has no [validator] section", config.display()))
            })?;
        let public_key = public_key_of(&validator.signing_key);
        if genesis.validators[index].public_key != hex::encode(public_key) {
            return Err(broken(format!(
                "the key of {} is not validator {index} of genesis.toml",
                config.display()
            )));
        }
        out.push(ValidatorFiles {
            index,
            public_key,
            key_file: dir.join(format!("validator-{index}.key")),
            data_dir: loaded.node.data_dir.clone(),
            log_file: dir.join(format!("node-{index}.log")),
            pid_file: dir.join(format!("node-{index}.pid")),
            client: loaded.service.server.listen,
            metrics: loaded.service.metrics_listen,
            validator_listen: validator.listen,
            config,
        });
    }
    Ok(ClusterFiles {
        dir: dir.to_path_buf(),
        genesis: genesis_path,
        genesis_hash: genesis.hash(),
        validators: out,
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(validators: usize, base_port: u16) -> ClusterSpec {
        ClusterSpec {
            validators,
            base_port,
            banks: 2,
            ..ClusterSpec::default()
        }
    }

    #[test]
    fn init_writes_keys_genesis_and_configs_with_the_port_plan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let files = init(&path, &spec(4, 30_000)).unwrap();
        assert!(files.created);
        assert_eq!(files.validators.len(), 4);
        let genesis = Genesis::load(&files.genesis).unwrap();
        assert_eq!(genesis.validators.len(), 4);
        // The population is loadgen's: same accounts and network as its own genesis.
        let mut loadgen = population_for(WorkloadName::Mixed, 1, 2).genesis;
        loadgen.validators = genesis.validators.clone();
        assert_eq!(loadgen, genesis);
        for v in &files.validators {
            let i = v.index as u16;
            assert_eq!(
                v.client,
                format!("127.0.0.1:{}", 30_000 + i).parse().unwrap()
            );
            assert_eq!(
                v.metrics,
                Some(format!("127.0.0.1:{}", 30_100 + i).parse().unwrap())
            );
            assert_eq!(
                v.validator_listen,
                format!("127.0.0.1:{}", 30_200 + i).parse().unwrap()
            );
            assert_eq!(v.data_dir, path.join(format!("data-{i}")));
            let loaded = tally_engine::net::config::load(&v.config).unwrap();
            let peers = &loaded.node.validator.unwrap().peers;
            assert_eq!(peers.len(), 3);
            assert!(peers.iter().all(|p| p.public_key != v.public_key));
            // Its identity binds its validator key and the cluster's host.
            let identity =
                tally_pki::Identity::load(&validator_identity_path(&path, v.index)).unwrap();
            let holder =
                tally_pki::read_certificate(&identity.certificate_chain().unwrap()[0]).unwrap();
            assert_eq!(
                (holder.access, holder.signers, holder.network_id),
                (Access::Validator, vec![v.public_key], genesis.network_id)
            );
        }
        // One identity per role and per bank, each binding its account's key.
        let owner = |id: u64| {
            let account = genesis.accounts.iter().find(|a| a.id == id).unwrap();
            tally_protocol::keys::decode_hex32(&account.owner).unwrap()
        };
        let banks: Vec<u64> = genesis
            .accounts
            .iter()
            .filter(|a| a.role == tally_protocol::genesis::Role::Bank)
            .map(|a| a.id)
            .collect();
        assert_eq!(banks.len(), 2);
        let mut expected = vec![
            (
                "central-bank".to_string(),
                Access::CentralBank,
                vec![owner(1)],
            ),
            (
                "tax-authority".to_string(),
                Access::TaxAuthority,
                vec![owner(2)],
            ),
            ("auditor".to_string(), Access::Auditor, vec![]),
            ("monitoring".to_string(), Access::Monitoring, vec![]),
        ];
        for bank in banks {
            expected.push((format!("bank-{bank}"), Access::Bank, vec![owner(bank)]));
        }
        for (name, access, signers) in expected {
            let identity =
                tally_pki::Identity::load(&participant_identity_path(&path, &name)).unwrap();
            let holder =
                tally_pki::read_certificate(&identity.certificate_chain().unwrap()[0]).unwrap();
            // Each participant that signs has its key beside its identity.
            let key = participant_key_path(&path, &name);
            if signers.is_empty() {
                assert!(!key.exists(), "{name} signs nothing but got a key file");
            } else {
                let key = tally_protocol::keys::read_key_file(&key).unwrap();
                assert_eq!(vec![public_key_of(&key)], signers, "{name}'s key file");
            }
            assert_eq!(
                (holder.name, holder.access, holder.signers),
                (name, access, signers)
            );
        }
        assert_eq!(
            files.client_list(),
            "127.0.0.1:30000,127.0.0.1:30001,127.0.0.1:30002,127.0.0.1:30003"
        );
        // Same size again: kept as it is (same keys).
        let again = init(&path, &spec(4, 31_000)).unwrap();
        assert!(!again.created);
        assert_eq!(again.genesis_hash, files.genesis_hash);
        assert_eq!(again.validators[0].client, files.validators[0].client);
        // Another size: refused, naming both.
        let error = init(&path, &spec(3, 30_000)).unwrap_err().to_string();
        assert!(error.contains("cluster of 4 validators, not 3"), "{error}");
    }

    #[test]
    fn bad_requests_and_foreign_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let error = init(dir.path(), &spec(4, 30_000)).unwrap_err().to_string();
        assert!(error.contains("not a cluster directory"), "{error}");
        let fresh = dir.path().join("new");
        for (spec, needle) in [
            (spec(0, 30_000), "--validators"),
            (spec(101, 30_000), "--validators"),
            (spec(4, 65_400), "above 65535"),
            (
                ClusterSpec {
                    banks: 1,
                    ..spec(4, 30_000)
                },
                "--banks",
            ),
            (
                ClusterSpec {
                    hosts: vec!["10.0.0.1".parse().unwrap()],
                    ..spec(2, 30_000)
                },
                "--hosts names 1 hosts for 2 validators",
            ),
            (
                ClusterSpec {
                    hosts: vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
                    ..spec(2, 0)
                },
                "--hosts needs --base-port",
            ),
        ] {
            let error = init(&fresh, &spec).unwrap_err().to_string();
            assert!(error.contains(needle), "{needle:?} not in {error}");
            assert!(!fresh.exists(), "nothing written for a bad request");
        }
    }

    #[test]
    fn hosts_place_each_validator_and_its_certificate_on_its_own_address() {
        let dir = tempfile::tempdir().unwrap();
        let hosts: Vec<std::net::IpAddr> =
            vec!["10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap()];
        let files = init(
            dir.path(),
            &ClusterSpec {
                hosts: hosts.clone(),
                ..spec(2, 30_000)
            },
        )
        .unwrap();
        for v in &files.validators {
            let host = hosts[v.index];
            let i = v.index as u16;
            assert_eq!(v.client, SocketAddr::new(host, 30_000 + i));
            assert_eq!(v.validator_listen, SocketAddr::new(host, 30_200 + i));
            assert_eq!(
                v.metrics,
                Some(format!("127.0.0.1:{}", 30_100 + i).parse().unwrap())
            );
            let loaded = tally_engine::net::config::load(&v.config).unwrap();
            let peer = &loaded.node.validator.unwrap().peers[0];
            assert_eq!(
                peer.addr,
                SocketAddr::new(hosts[1 - v.index], 30_200 + 1 - i)
            );
            let identity =
                tally_pki::Identity::load(&validator_identity_path(dir.path(), v.index)).unwrap();
            let holder =
                tally_pki::read_certificate(&identity.certificate_chain().unwrap()[0]).unwrap();
            assert_eq!(
                holder.hosts,
                vec![host.to_string(), "127.0.0.1".into(), "localhost".into()]
            );
        }
    }

    #[test]
    fn base_port_zero_finds_free_ports() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), &spec(2, 0)).unwrap();
        let base = files.validators[0].client.port();
        assert!(base >= 20_000);
        assert_eq!(files.validators[1].client.port(), base + 1);
        assert_eq!(files.validators[1].validator_listen.port(), base + 201);
    }
}
