//! `tally status --node ADDR`: a quick look at a running node over the client protocol.

use std::process::ExitCode;
use tally_engine::net::query::{Answer, Query};
use tally_engine::net::{Client, ClientOptions};

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The node's client address (host:port, as `listen` in its config).
    #[arg(long)]
    node: String,
    #[command(flatten)]
    access: super::Access,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the connection and the answer.
    #[arg(long, default_value_t = 5)]
    timeout_s: u64,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let timeout = std::time::Duration::from_secs(args.timeout_s.max(1));
    let options = ClientOptions {
        connect_timeout: timeout,
        request_timeout: timeout,
        tls: args.access.tls()?,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(args.node.as_str(), &options)?;
    let status = client.status()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let c = &status.counters;
    let rows: Vec<(&str, String)> = vec![
        ("node", args.node.clone()),
        ("version", status.version.clone()),
        ("network", status.network_id.to_string()),
        ("genesis", status.genesis_hash.clone()),
        (
            "state",
            match &status.fatal {
                Some(reason) => format!("STOPPED: {reason}"),
                None => "running".to_string(),
            },
        ),
        ("height", status.height.to_string()),
        (
            "mempool",
            format!("{} / {}", status.mempool_depth, status.mempool_capacity),
        ),
        ("backend", status.backend.clone()),
        (
            "consensus",
            format!(
                "height {} round {}",
                status.consensus_height, status.consensus_round
            ),
        ),
        ("clients", status.client_connections.to_string()),
        ("peers", status.peers_connected.to_string()),
        ("uptime", format!("{} s", status.uptime_s)),
        ("submitted", c.submitted.to_string()),
        ("executed", c.executed.to_string()),
        ("rejected at ingress", c.rejected_at_ingress.to_string()),
        ("bad signatures", c.bad_signatures.to_string()),
        ("blocks", c.blocks.to_string()),
        ("log flushes", c.flushes.to_string()),
    ];
    let mut rows = rows;
    if let Some(day) = business_day(&client) {
        rows.push(("business day", day));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        println!("{key:<width$}  {value}");
    }
    Ok(if status.fatal.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The business day's row, on a network with a calendar: the date, the phase and the next
/// boundary with how far off it is in block time (docs/SETTLEMENT.md, "The business day").
/// `None` without a calendar, or when the node does not answer the query (a role it refuses).
fn business_day(client: &Client) -> Option<String> {
    let Ok(Answer::BusinessDay(day)) = client.query(&Query::BusinessDay) else {
        return None;
    };
    if !day.calendar {
        return None;
    }
    let mut text = format!(
        "{} (day {}), {}",
        day.date.clone().unwrap_or_default(),
        day.day,
        day.phase
    );
    if let (Some(boundary), Some(at_ms)) = (&day.next_boundary, day.next_boundary_ms) {
        let in_s = at_ms.saturating_sub(day.time_ms) as f64 / 1e3;
        text.push_str(&format!("; next {boundary} in {in_s:.0} s of block time"));
    }
    text.push_str(&format!(
        "; {} queued, {} warehoused",
        day.queued, day.warehoused
    ));
    Some(text)
}
