//! `tally validator vote` and `tally validator show`: the authorities' vote on validator-set
//! changes, over a running node's client protocol.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tally_engine::genesis::Genesis;
use tally_engine::keys::{decode_hex32, public_key_of, read_key_file};
use tally_engine::net::client::submit_and_wait;
use tally_engine::net::query::Answer;
use tally_engine::net::{Client, ClientOptions};
use tally_engine::tx::{TxFields, TxRecord};

#[derive(clap::Subcommand, Debug)]
pub enum ValidatorCommand {
    /// Vote, as a validator of the current epoch, to add or remove a validator from the next
    /// epoch on. Prints the vote's result (`ok`: counted; the change is adopted once a quorum
    /// of the current set voted for it).
    Vote(VoteArgs),
    /// The validator set in force, the next epoch's keys so far and the votes pending.
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("change").required(true).args(["add", "remove"])))]
pub struct VoteArgs {
    /// A node's client address (host:port).
    #[arg(long)]
    node: String,
    /// The voting validator's key file (its `validator.key_file`).
    #[arg(long)]
    key_file: PathBuf,
    /// The network's genesis file (network id and ledger the vote is signed for).
    #[arg(long)]
    genesis: PathBuf,
    /// Hex public key of the validator to add.
    #[arg(long)]
    add: Option<String>,
    /// Hex public key of the validator to remove.
    #[arg(long)]
    remove: Option<String>,
    /// The vote's transaction id (default: a random one).
    #[arg(long)]
    id: Option<u128>,
    /// Seconds to wait for the vote's block.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    #[command(flatten)]
    access: super::Access,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// A node's client address (host:port).
    #[arg(long)]
    node: String,
    /// Seconds to wait for the connection and the answer.
    #[arg(long, default_value_t = 5)]
    timeout_s: u64,
    #[command(flatten)]
    access: super::Access,
}

pub fn run(command: &ValidatorCommand) -> anyhow::Result<ExitCode> {
    match command {
        ValidatorCommand::Vote(args) => vote(args),
        ValidatorCommand::Show(args) => show(args),
    }
}

fn connect(node: &str, timeout_s: u64, access: &super::Access) -> anyhow::Result<Client> {
    let timeout = Duration::from_secs(timeout_s.max(1));
    let options = ClientOptions {
        connect_timeout: timeout,
        request_timeout: timeout,
        tls: access.tls()?,
        ..ClientOptions::default()
    };
    Ok(Client::connect_with(node, &options)?)
}

fn vote(args: &VoteArgs) -> anyhow::Result<ExitCode> {
    let genesis = Genesis::load(&args.genesis)?;
    let key = read_key_file(&args.key_file)
        .with_context(|| format!("validator key file {}", args.key_file.display()))?;
    let (add, subject_hex) = match (&args.add, &args.remove) {
        (Some(key), None) => (true, key),
        (None, Some(key)) => (false, key),
        _ => anyhow::bail!("give exactly one of --add and --remove"),
    };
    let subject = decode_hex32(subject_hex)
        .map_err(|reason| anyhow::anyhow!("validator key {subject_hex:?}: {reason}"))?;
    let id = args.id.unwrap_or_else(|| rand::random::<u128>().max(1));
    let fields = TxFields::validator_vote(id, genesis.ledger, add, &subject)
        .valid_until(tally_loadgen::workload::valid_until_from_now(&genesis));
    let record = TxRecord::signed(&fields, genesis.network_id, &key);
    let client = connect(&args.node, args.timeout_s, &args.access)?;
    let status = client.status()?;
    if status.genesis_hash != hex::encode(genesis.hash()) {
        anyhow::bail!(
            "node {} runs genesis {}, not {} ({})",
            args.node,
            status.genesis_hash,
            hex::encode(genesis.hash()),
            args.genesis.display()
        );
    }
    let (acks, refusal) = submit_and_wait(
        &client,
        &[record],
        Duration::from_secs(args.timeout_s.max(1)),
    )?;
    let Some(ack) = acks.first() else {
        anyhow::bail!(
            "node {} did not take the vote: {}",
            args.node,
            refusal.map_or_else(|| "no answer".to_string(), |r| r.to_string())
        );
    };
    let voter = hex::encode(public_key_of(&key));
    println!(
        "{}",
        serde_json::json!({
            "id": id.to_string(),
            "voter": voter,
            "change": if add { "add" } else { "remove" },
            "validator": hex::encode(subject),
            "result": ack.code.name(),
            "height": ack.height,
        })
    );
    Ok(if ack.code.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.node, args.timeout_s, &args.access)?;
    let Answer::Validators {
        epoch,
        heights_per_epoch,
        epoch_end,
        quorum,
        validators,
        next,
        pending,
    } = client.validators()?
    else {
        unreachable!("Client::validators answers Answer::Validators");
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "epoch": epoch,
            "heights_per_epoch": heights_per_epoch,
            "epoch_end": epoch_end,
            "quorum": quorum,
            "validators": validators,
            "next": next,
            "pending": pending,
        }))?
    );
    Ok(ExitCode::SUCCESS)
}
