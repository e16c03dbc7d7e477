//! `tally pki init|issue|show|revoke`: the network's CA, the certificates it issues, and their
//! revocation by the central bank over a running node's client protocol.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use tally_engine::genesis::parse_public_key;
use tally_engine::keys::{public_key_of, read_key_file};
use tally_pki::{
    read_certificate, Access, Ca, Identity, Request, Validity, DEFAULT_CA_VALIDITY_DAYS,
    DEFAULT_VALIDITY_DAYS,
};

#[derive(clap::Subcommand, Debug)]
pub enum PkiCommand {
    /// Create the network's CA: DIR/ca.pem (its certificate) and DIR/ca.key (mode 0600).
    Init(InitArgs),
    /// Issue a certificate for a validator or a participant, written with its new private
    /// key and the CA's certificate as one identity file (mode 0600).
    Issue(IssueArgs),
    /// Show what an identity file's certificate says: name, role, network, serial, signing
    /// keys, expiry.
    Show(ShowArgs),
    /// Revoke a certificate on every node: signs a revocation (kind 14) with the central
    /// bank's key, submits it and waits for its block. Once the block commits, every node
    /// refuses the serial's connections and closes the open ones. Prints the result (`ok`:
    /// revoked).
    Revoke(RevokeArgs),
}

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// Where to send the revocation; --key-file is the central bank's signing key file (the
    /// owner key of its issuance account).
    #[command(flatten)]
    client: super::client::ClientArgs,
    /// The serial number to revoke, hex, as `tally pki show` prints it.
    #[arg(long)]
    serial: String,
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The CA directory (created; refuses to overwrite a CA).
    #[arg(long)]
    dir: PathBuf,
    /// The network id (as in the genesis).
    #[arg(long)]
    network_id: u64,
    #[arg(long, default_value_t = DEFAULT_CA_VALIDITY_DAYS)]
    days: u32,
}

#[derive(clap::Args, Debug)]
pub struct IssueArgs {
    /// The CA directory (`tally pki init`).
    #[arg(long)]
    ca: PathBuf,
    /// The holder's name (A-Z a-z 0-9 . _ -).
    #[arg(long)]
    name: String,
    /// central_bank, bank, tax_authority, auditor, monitoring or validator.
    #[arg(long)]
    role: String,
    /// An Ed25519 key the holder may sign records with: hex, or a key file (repeat for
    /// several). A validator names its validator key.
    #[arg(long = "signer")]
    signers: Vec<String>,
    /// Where a validator is reached: IP address or DNS name (repeat for several).
    #[arg(long = "host")]
    hosts: Vec<String>,
    #[arg(long, default_value_t = DEFAULT_VALIDITY_DAYS)]
    days: u32,
    /// The identity file to write (refuses to overwrite).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// An identity file.
    identity: PathBuf,
}

pub fn run(command: &PkiCommand) -> anyhow::Result<ExitCode> {
    match command {
        PkiCommand::Revoke(args) => return revoke(args),
        PkiCommand::Init(args) => {
            let ca = Ca::create(args.network_id, Validity::days_from_now(args.days))?;
            ca.save(&args.dir)?;
            println!(
                "CA of network {} written to {}",
                args.network_id,
                args.dir.display()
            );
        }
        PkiCommand::Issue(args) => {
            let ca = Ca::load(&args.ca)?;
            let access = Access::from_name(&args.role).with_context(|| {
                format!(
                    "--role {:?}: use one of {}",
                    args.role,
                    Access::ALL.map(Access::name).join(", ")
                )
            })?;
            let signers = args
                .signers
                .iter()
                .map(|text| signer(text).with_context(|| format!("--signer {text}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let identity = ca.issue(&Request {
                name: args.name.clone(),
                access,
                signers,
                hosts: args.hosts.clone(),
                validity: Validity::days_from_now(args.days),
            })?;
            identity.save(&args.out)?;
            println!(
                "{} ({}) serial {} written to {}",
                identity.name,
                identity.role,
                identity.serial,
                args.out.display()
            );
        }
        PkiCommand::Show(args) => {
            let identity = Identity::load(&args.identity)?;
            let chain = identity.certificate_chain()?;
            let holder = read_certificate(&chain[0])?;
            let expires = holder
                .not_after
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            println!("name      {}", holder.name);
            println!("role      {}", holder.access);
            println!("network   {}", holder.network_id);
            println!("serial    {}", holder.serial);
            println!("expires   {expires} (Unix seconds)");
            for key in &holder.signers {
                println!("signer    {}", hex::encode(key));
            }
            for host in &holder.hosts {
                println!("host      {host}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A signing key given as hex or as a key file.
fn signer(text: &str) -> anyhow::Result<[u8; 32]> {
    if std::path::Path::new(text).is_file() {
        let key = read_key_file(std::path::Path::new(text))?;
        return Ok(public_key_of(&key));
    }
    parse_public_key(text).map_err(anyhow::Error::msg)
}

/// `tally pki revoke`: the central bank's revocation, signed, submitted and waited for.
pub(crate) fn revoke(args: &RevokeArgs) -> anyhow::Result<ExitCode> {
    use tally_engine::tx::{canonical_serial, TxFields};

    let loaded = args.client.load()?;
    let serial = canonical_serial(&args.serial).map_err(|e| anyhow::anyhow!("--serial: {e}"))?;
    let fields = TxFields::revoke_certificate(
        loaded.id,
        loaded.genesis.ledger,
        loaded.genesis.central_bank().id,
        &hex::encode(&serial),
    )
    .map_err(|e| anyhow::anyhow!("--serial: {e}"))?;
    let record = loaded.sign(fields);
    let sent = loaded.send(&args.client, &record, true)?;
    super::client::print_sent(
        &sent,
        "revoke_certificate",
        &[
            ("serial", hex::encode(&serial)),
            ("signer", loaded.signer()),
        ],
        true,
    )
}
