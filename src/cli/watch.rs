//! `tally watch`: follows accounts' events on a running node (the client protocol's
//! subscription, docs/PROTOCOL.md "Subscriptions") and prints one line per event, or one
//! JSON line per block with `--json`. When the connection ends it connects again, to the
//! next `--node` in turn, and subscribes from the block after the last one it printed, so
//! every event is printed once across node restarts and failover. `--state-file` keeps that
//! height across runs of the command.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tally_engine::events::{EventBatch, Subscription};
use tally_engine::genesis::{CurrencySpec, Genesis};
use tally_engine::net::ClientOptions;

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// A running node's client address (host:port); repeat for failover.
    #[arg(long = "node", required = true)]
    nodes: Vec<String>,
    #[command(flatten)]
    access: super::Access,
    /// An account to follow; repeat for several.
    #[arg(long = "account", required = true)]
    accounts: Vec<u64>,
    /// The first block whose events are printed (default: the block after the one in
    /// --state-file, else the node's next block).
    #[arg(long)]
    from_height: Option<u64>,
    /// A file holding the next block to print: read at start, rewritten after each block
    /// printed, so that a watch started again goes on where it stopped.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// The network's genesis file: the node is checked to run it, and amounts print in its
    /// currency.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after printing this block (or once the nodes are past it).
    #[arg(long)]
    until_height: Option<u64>,
    /// Give up after this many seconds without reaching any node.
    #[arg(long, default_value_t = 60)]
    reconnect_timeout_s: u64,
    /// One JSON line per block: {"height": H, "events": [...]}.
    #[arg(long)]
    json: bool,
}

/// The next height in the state file, if it holds one.
fn read_state(path: &Path) -> anyhow::Result<Option<u64>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            text.trim().parse::<u64>().map(Some).with_context(|| {
                format!("state file {} does not hold a block height", path.display())
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_state(path: &Path, next_height: u64) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, format!("{next_height}\n"))
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot replace {}", path.display()))
}

fn print_batch(
    batch: &EventBatch,
    currency: Option<&CurrencySpec>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(batch)?)?;
        return Ok(());
    }
    let money = |minor: u64| match currency {
        Some(currency) => currency.format(i128::from(minor)),
        None => format!("{minor} minor units"),
    };
    for event in &batch.events {
        let mut line = format!(
            "block {} {} {} {} -> {} {}",
            batch.height,
            event.kind.name(),
            event.id,
            event.payer,
            event.payee,
            money(event.amount)
        );
        if let (Some(tax), Some(account)) = (event.tax, event.tax_account) {
            line.push_str(&format!(" (tax {} to {account})", money(tax)));
        }
        if let Some(related) = event.related_id {
            line.push_str(&format!(" (of {related})"));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

pub fn run(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let genesis = match &args.genesis {
        Some(path) => Some(Genesis::load(path)?),
        None => None,
    };
    let options = ClientOptions {
        tls: args.access.tls()?,
        ..ClientOptions::default()
    };
    let mut next_height = match (args.from_height, &args.state_file) {
        (Some(height), _) => Some(height),
        (None, Some(path)) => read_state(path)?,
        (None, None) => None,
    };
    let reconnect_timeout = Duration::from_secs(args.reconnect_timeout_s.max(1));
    let mut printed_events = 0u64;
    // (block, events of it printed) while a block comes in several frames
    let mut partial: Option<(u64, usize)> = None;
    let mut start = 0usize;
    let mut stdout = std::io::stdout().lock();
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let nodes: Vec<String> = args
            .nodes
            .iter()
            .cycle()
            .skip(start)
            .take(args.nodes.len())
            .cloned()
            .collect();
        let connected = match tally_protocol::operator::connect_any(
            &nodes,
            &options,
            genesis.as_ref().map(|g| g.hash()).as_ref(),
        ) {
            Ok(connected) => connected,
            Err(error @ tally_protocol::operator::OperatorError::WrongGenesis { .. }) => {
                return Err(error.into())
            }
            Err(error) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= reconnect_timeout {
                    anyhow::bail!("no node reached within {reconnect_timeout:?}: {error}");
                }
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        unreachable_since = None;
        let client = connected.client;
        let from_height = match next_height {
            Some(height) => height,
            None => client.status()?.height + 1,
        };
        let subscription = Subscription {
            accounts: args.accounts.clone(),
            from_height,
        };
        let (_, events) = client
            .subscribe(&subscription)
            .with_context(|| format!("node {} refused the subscription", connected.node))?;
        eprintln!(
            "following accounts {:?} on {} from block {from_height}",
            args.accounts, connected.node
        );
        next_height = Some(from_height);
        let mut seen = 0usize;
        loop {
            let batch = match events.recv_timeout(Duration::from_millis(500)) {
                Ok(batch) => batch,
                Err(crossbeam::channel::RecvTimeoutError::Timeout) => {
                    if let Some(until) = args.until_height {
                        // nothing of ours came up to the node's last block: past `until`?
                        if client.status().is_ok_and(|status| status.height >= until)
                            && events.is_empty()
                        {
                            return Ok(ExitCode::SUCCESS);
                        }
                    }
                    if client.connection_error().is_some() {
                        break;
                    }
                    continue;
                }
                Err(crossbeam::channel::RecvTimeoutError::Disconnected) => break,
            };
            if args.until_height.is_some_and(|until| batch.height > until) {
                return Ok(ExitCode::SUCCESS);
            }
            let room = args.count.map(|count| count - printed_events);
            let mut shown = batch.clone();
            // a block cut by a lost connection comes again whole: what was printed of it is
            // skipped (`printed` of it in all; `seen` of it in this connection's frames)
            let printed = match partial {
                Some((height, printed)) if height == batch.height => printed,
                _ => {
                    seen = 0;
                    0
                }
            };
            let skip = printed.saturating_sub(seen).min(shown.events.len());
            shown.events.drain(..skip);
            seen += batch.events.len();
            let available = shown.events.len();
            if let Some(room) = room {
                shown.events.truncate(room as usize);
            }
            if !shown.events.is_empty() {
                print_batch(
                    &shown,
                    genesis.as_ref().map(|g| &g.currency),
                    args.json,
                    &mut stdout,
                )?;
                stdout.flush()?;
            }
            printed_events += shown.events.len() as u64;
            if shown.events.len() < available {
                // --count stopped inside the block: a later watch prints it again
                return Ok(ExitCode::SUCCESS);
            }
            if !batch.complete {
                // more of this block follows; the block counts once it is all printed
                partial = Some((batch.height, seen.max(printed)));
                continue;
            }
            partial = None;
            next_height = Some(batch.height + 1);
            if let Some(path) = &args.state_file {
                write_state(path, batch.height + 1)?;
            }
            if args.count.is_some_and(|count| printed_events >= count)
                || args.until_height.is_some_and(|until| batch.height >= until)
            {
                return Ok(ExitCode::SUCCESS);
            }
        }
        eprintln!(
            "connection to {} ended ({}); following again from block {}",
            connected.node,
            client
                .connection_error()
                .unwrap_or_else(|| "closed".to_string()),
            next_height.unwrap_or(from_height)
        );
        start = (start + 1) % args.nodes.len();
    }
}
