//! The arguments every command that signs and sends a record shares (`tally tx ...`,
//! `tally pki revoke`, `tally validator vote`), and their sending and printing.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tally_engine::genesis::Genesis;
use tally_engine::keys::{public_key_of, read_key_file};
use tally_engine::net::ClientOptions;
use tally_engine::tx::{TxFields, TxRecord};
use tally_protocol::operator::{self, Sent};

/// Where to send, as whom, for which network, signed with which key.
#[derive(clap::Args, Debug)]
pub(crate) struct ClientArgs {
    /// A node's client address (host:port). Repeat for failover: when a node cannot be
    /// reached, or its connection fails before the result, the next is tried.
    #[arg(long = "node", required = true)]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub access: super::Access,
    /// The network's genesis file (network id, ledger, accounts, currency).
    #[arg(long)]
    pub genesis: PathBuf,
    /// The signing key file (`tally keygen`): the debit account's owner key (the central
    /// bank's for its kinds, the tax authority's for tax rates, a validator's for votes).
    #[arg(long)]
    pub key_file: PathBuf,
    /// The transaction id (decimal u128; default: a random one). Sending the same record
    /// again with its id is safe: a node answers `duplicate_id`, never applies it twice.
    #[arg(long)]
    pub id: Option<u128>,
    /// Seconds to wait for a connection and for the transaction's result.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
}

/// A loaded client: its genesis, key and connection options.
pub(crate) struct Loaded {
    pub genesis: Genesis,
    pub key: ed25519_zebra::SigningKey,
    pub options: ClientOptions,
    pub id: u128,
}

impl ClientArgs {
    pub(crate) fn load(&self) -> anyhow::Result<Loaded> {
        let genesis = Genesis::load(&self.genesis)?;
        let key = read_key_file(&self.key_file)
            .with_context(|| format!("key file {}", self.key_file.display()))?;
        if self.id == Some(0) {
            anyhow::bail!("--id 0 is reserved: choose a non-zero id, or leave --id out");
        }
        Ok(Loaded {
            genesis,
            key,
            options: self.options()?,
            id: self.id.unwrap_or_else(|| rand::random::<u128>().max(1)),
        })
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s.max(1))
    }

    fn options(&self) -> anyhow::Result<ClientOptions> {
        Ok(ClientOptions {
            connect_timeout: self.timeout().min(Duration::from_secs(10)),
            request_timeout: self.timeout(),
            tls: self.access.tls()?,
            ..ClientOptions::default()
        })
    }
}

impl Loaded {
    /// The record of `fields`, valid for half the genesis's validity window from now,
    /// signed with the key.
    pub(crate) fn sign(&self, fields: TxFields) -> TxRecord {
        let fields =
            fields.valid_until(tally_loadgen::workload::valid_until_from_now(&self.genesis));
        TxRecord::signed(&fields, self.genesis.network_id, &self.key)
    }

    /// The signer's public key, hex.
    pub(crate) fn signer(&self) -> String {
        hex::encode(public_key_of(&self.key))
    }

    /// Sends `record` to the first node that answers and, when `wait`, waits for its result.
    pub(crate) fn send(
        &self,
        args: &ClientArgs,
        record: &TxRecord,
        wait: bool,
    ) -> anyhow::Result<Sent> {
        Ok(operator::send(
            &args.nodes,
            &self.options,
            &self.genesis.hash(),
            record,
            wait,
            args.timeout(),
        )?)
    }

    /// Asks one query of the first node that answers.
    pub(crate) fn ask(
        &self,
        args: &ClientArgs,
        query: &tally_engine::net::query::Query,
    ) -> anyhow::Result<tally_engine::net::query::Answer> {
        Ok(operator::ask(
            &args.nodes,
            &self.options,
            Some(&self.genesis.hash()),
            query,
        )?
        .0)
    }
}

/// Prints what became of a record (a table, or one JSON object with `json`) with `extra`
/// fields (name, value: what the record said); exit status success when it was accepted
/// (`ok`, `queued`) or not waited for.
pub(crate) fn print_sent(
    sent: &Sent,
    kind: &str,
    extra: &[(&str, String)],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (result, meaning, height) = match sent.result {
        Some((code, height)) => (code.name(), code.meaning(), height),
        None => ("submitted", "taken by the node; not waited for", None),
    };
    if json {
        let mut object = serde_json::Map::new();
        object.insert("id".into(), sent.id.to_string().into());
        object.insert("kind".into(), kind.into());
        for (name, value) in extra {
            object.insert((*name).into(), value.clone().into());
        }
        object.insert("result".into(), result.into());
        object.insert("meaning".into(), meaning.into());
        object.insert("height".into(), height.into());
        object.insert("node".into(), sent.node.clone().into());
        println!("{}", serde_json::Value::Object(object));
    } else {
        let mut rows: Vec<(&str, String)> =
            vec![("id", sent.id.to_string()), ("kind", kind.into())];
        rows.extend(extra.iter().map(|(name, value)| (*name, value.clone())));
        rows.push(("result", format!("{result}: {meaning}")));
        rows.push((
            "height",
            height.map_or_else(|| "none (no block holds it)".to_string(), |h| h.to_string()),
        ));
        rows.push(("node", sent.node.clone()));
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, value) in rows {
            println!("{name:<width$}  {value}");
        }
    }
    Ok(match sent.result {
        Some((code, _)) if !code.is_ok() => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}
