//! Helpers shared by the whole-system tests: run the built `tally` binary and read what it
//! printed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

/// A client of a node over TLS with the identity file at `identity` (`tally pki`, or one
/// that `tally cluster init` writes).
pub fn tls_client(
    identity: &Path,
    addr: impl std::net::ToSocketAddrs,
) -> Result<tally_engine::net::Client, tally_engine::net::ClientError> {
    let identity = tally_pki::Identity::load(identity).expect("a readable identity file");
    let options = tally_engine::net::ClientOptions {
        tls: Some(identity.client_config().expect("a usable identity")),
        ..tally_engine::net::ClientOptions::default()
    };
    tally_engine::net::Client::connect_with(addr, &options)
}

/// The `tally` binary of this build.
pub fn tally() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tally"))
}

/// Runs `tally` with `args` to the end.
pub fn run(args: &[&str]) -> Output {
    tally().args(args).output().expect("the tally binary runs")
}

/// Standard output and standard error together, for assertions and failure messages.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A `tally node` process started in `dir` (data in `dir/data`, genesis `dir/genesis.toml`,
/// clients on a free loopback port), with its client address and the rest of its standard
/// output (keep it while the node runs: a node whose output pipe is closed fails when it
/// prints).
pub struct NodeProcess {
    pub child: Child,
    pub address: String,
    pub stdout: Lines<BufReader<ChildStdout>>,
}

/// Writes `dir/node.toml` and starts `tally node` on it without TLS; returns once the node
/// printed the address its clients connect to.
pub fn start_node(dir: &Path) -> NodeProcess {
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\ngenesis = \"genesis.toml\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    spawn_node(&config, &["--insecure-plaintext"])
}

/// Starts `tally node` over TLS on the config file at `config` (which names its
/// `identity`); returns once the node printed the address its clients connect to.
pub fn start_tls_node(config: &Path) -> NodeProcess {
    spawn_node(config, &[])
}

fn spawn_node(config: &Path, flags: &[&str]) -> NodeProcess {
    let mut child = tally()
        .arg("node")
        .args(flags)
        .args(["--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = stdout
            .next()
            .expect("the node prints its client address")
            .unwrap();
        if let Some(address) = line.strip_prefix("clients: ") {
            break address.trim().to_string();
        }
    };
    NodeProcess {
        child,
        address,
        stdout,
    }
}

/// Runs `tally cluster init --validators 1` into `cluster` with `args` (population flags)
/// and writes `cluster/node.toml`: one node outside consensus on validator 0's certificate,
/// data in `cluster/data`, clients on a free loopback port. Returns the config's path.
pub fn single_node_cluster(cluster: &Path, args: &[&str]) -> std::path::PathBuf {
    let mut init = vec![
        "cluster",
        "init",
        "--validators",
        "1",
        "--dir",
        cluster.to_str().unwrap(),
    ];
    init.extend_from_slice(args);
    let output = run(&init);
    assert!(output.status.success(), "{}", text(&output));
    let config = cluster.join("node.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\nidentity = \"validator-0.identity\"\ngenesis = \"genesis.toml\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    config
}

impl NodeProcess {
    /// Reads the rest of the node's standard output on a thread of its own, so that the
    /// node never blocks on a full pipe, and returns the process.
    pub fn drain_output(self) -> (Child, String) {
        let NodeProcess {
            child,
            address,
            stdout,
        } = self;
        std::thread::spawn(move || for _ in stdout {});
        (child, address)
    }
}
