//! `tally validator vote` and `tally validator show`: the authorities' vote on validator-set
//! changes, over a running node's client protocol.

use std::process::ExitCode;
use std::time::Duration;
use tally_engine::keys::decode_hex32;
use tally_engine::net::query::Answer;
use tally_engine::net::{Client, ClientOptions};
use tally_engine::tx::TxFields;

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
    /// Where to send the vote; --key-file is the voting validator's key file (its
    /// `validator.key_file`).
    #[command(flatten)]
    client: super::client::ClientArgs,
    /// Hex public key of the validator to add.
    #[arg(long)]
    add: Option<String>,
    /// Hex public key of the validator to remove.
    #[arg(long)]
    remove: Option<String>,
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
    /// The network's genesis file: validators are shown with their names.
    #[arg(long)]
    genesis: Option<std::path::PathBuf>,
    /// Print JSON: {epoch, heights_per_epoch, epoch_end, quorum, validators, next, pending,
    /// names} (names: key -> name, from --genesis).
    #[arg(long)]
    json: bool,
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

pub(crate) fn vote(args: &VoteArgs) -> anyhow::Result<ExitCode> {
    let loaded = args.client.load()?;
    let (add, subject_hex) = match (&args.add, &args.remove) {
        (Some(key), None) => (true, key),
        (None, Some(key)) => (false, key),
        _ => anyhow::bail!("give exactly one of --add and --remove"),
    };
    let subject = decode_hex32(subject_hex)
        .map_err(|reason| anyhow::anyhow!("validator key {subject_hex:?}: {reason}"))?;
    let fields = TxFields::validator_vote(loaded.id, loaded.genesis.ledger, add, &subject);
    let record = loaded.sign(fields);
    let sent = loaded.send(&args.client, &record, true)?;
    super::client::print_sent(
        &sent,
        "validator_vote",
        &[
            ("voter", loaded.signer()),
            ("change", if add { "add" } else { "remove" }.to_string()),
            ("validator", hex::encode(subject)),
        ],
        true,
    )
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let names: std::collections::BTreeMap<String, String> = match &args.genesis {
        Some(path) => tally_engine::genesis::Genesis::load(path)?
            .validators
            .iter()
            .map(|v| (v.public_key.to_lowercase(), v.name.clone()))
            .collect(),
        None => Default::default(),
    };
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
    if args.json {
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
                "names": names,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    // a key with its name, when the genesis names it
    let named = |key: &str| match names.get(&key.to_lowercase()) {
        Some(name) => format!("{name:<16} {key}"),
        None if names.is_empty() => key.to_string(),
        None => format!("{:<16} {key}", "(not in genesis)"),
    };
    println!(
        "epoch {epoch}: {} validators, quorum {quorum}; the epoch ends at height {epoch_end} ({heights_per_epoch} heights an epoch)",
        validators.len()
    );
    println!("in force (proposer order):");
    for key in &validators {
        println!("  {}", named(key));
    }
    if next == validators {
        println!("next epoch: the same set");
    } else {
        println!("next epoch ({} validators):", next.len());
        for key in &next {
            let mark = if validators.contains(key) { " " } else { "+" };
            println!("{mark} {}", named(key));
        }
        for key in validators.iter().filter(|key| !next.contains(key)) {
            println!("- {}", named(key));
        }
    }
    if pending.is_empty() {
        println!("no votes pending");
    } else {
        println!("votes short of a quorum ({quorum}), lapsing at height {epoch_end}:");
        for change in &pending {
            let voters: Vec<String> = change
                .voters
                .iter()
                .map(|voter| {
                    names
                        .get(&voter.to_lowercase())
                        .cloned()
                        .unwrap_or_else(|| voter.clone())
                })
                .collect();
            println!(
                "  {} {}: {} of {quorum} votes ({})",
                change.change,
                named(&change.validator),
                change.voters.len(),
                voters.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
